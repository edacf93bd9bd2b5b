"""NVIDIA Jetson boards (Xavier NX, Orin) with the L4T PyTorch build.

The GPU shares memory with the CPU, so the device memory total is the board's RAM. Detection
by ``/etc/nv_tegra_release`` (mounted into containers by the vendor spec) or an integrated
CUDA device. Jetson has no NCCL, so collectives use gloo.
"""

from __future__ import annotations

import re
from pathlib import Path

import torch

from bench.devices.base import Detection, DeviceBackend

TEGRA_RELEASE_FILE = Path("/etc/nv_tegra_release")


def l4t_release(text: str) -> str | None:
    """``# R35 (release), REVISION: 2.1, ...`` -> ``35.2.1``."""
    match = re.search(r"R(\d+)\s*\(release\),\s*REVISION:\s*([0-9.]+)", text)
    return f"{match.group(1)}.{match.group(2)}" if match else None


class JetsonBackend(DeviceBackend):
    vendor = "jetson"
    device_type = "cuda"
    dist_backend = "gloo"
    telemetry = "jtop"
    visible_devices_env = "CUDA_VISIBLE_DEVICES"

    @classmethod
    def detect(cls) -> Detection:
        if getattr(torch.version, "hip", None):  # an AMD APU is integrated too
            return Detection(False, "torch is a ROCm (HIP) build, not L4T")
        if not torch.cuda.is_available():
            return Detection(False, "torch sees no CUDA device")
        if TEGRA_RELEASE_FILE.exists():
            return Detection(True, f"{TEGRA_RELEASE_FILE} present")
        if getattr(torch.cuda.get_device_properties(0), "is_integrated", False):
            return Detection(True, "the CUDA device is integrated (shared memory)")
        return Detection(False, f"no {TEGRA_RELEASE_FILE} and the GPU is not integrated")

    def amp_dtypes(self) -> tuple[torch.dtype, ...]:
        if torch.cuda.is_bf16_supported():
            return (torch.float16, torch.bfloat16)
        return (torch.float16,)

    def sdk_version(self) -> str | None:
        try:
            release = l4t_release(TEGRA_RELEASE_FILE.read_text(encoding="utf-8"))
        except OSError:
            release = None
        cuda = f"CUDA {torch.version.cuda}" if torch.version.cuda else None
        return ", ".join(x for x in (f"L4T {release}" if release else None, cuda) if x) or None
