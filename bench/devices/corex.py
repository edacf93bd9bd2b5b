"""Iluvatar CoreX (MR-V100, BI-V100, BI-V150): a CUDA-compatible stack.

CoreX's PyTorch build exposes the unchanged ``torch.cuda`` API (device string ``cuda``), so
only detection, versions and telemetry differ from NVIDIA. Detection (docs/vendors.md): a
``+corex`` local version in ``torch.__version__`` or "Iluvatar" in the device name.
"""

from __future__ import annotations

import re

import torch

from bench.devices.base import Detection, DeviceBackend
from bench.devices.cuda import is_hip_build


def corex_version(torch_version: str) -> str | None:
    """``2.1.1+corex.4.1.0`` -> ``4.1.0``."""
    match = re.search(r"\+corex[.-]?([0-9][0-9A-Za-z.]*)", torch_version)
    return match.group(1) if match else None


class CorexBackend(DeviceBackend):
    vendor = "corex"
    device_type = "cuda"
    dist_backend = "nccl"
    telemetry = "ixml"
    visible_devices_env = "CUDA_VISIBLE_DEVICES"

    @classmethod
    def detect(cls) -> Detection:
        is_corex = "+corex" in torch.__version__
        if is_hip_build():
            return Detection(False, "torch is a ROCm (HIP) build, not CoreX")
        if not is_corex and not torch.cuda.is_available():
            return Detection(False, f"torch {torch.__version__} is not a CoreX build")
        if not torch.cuda.is_available():
            return Detection(False, "the CoreX build of torch sees no Iluvatar device")
        if not is_corex and "iluvatar" not in torch.cuda.get_device_name(0).lower():
            return Detection(False, "the CUDA device is not an Iluvatar GPU")
        return Detection(True, f"{torch.cuda.device_count()} Iluvatar device(s)")

    def amp_dtypes(self) -> tuple[torch.dtype, ...]:
        if torch.cuda.is_bf16_supported():
            return (torch.float16, torch.bfloat16)
        return (torch.float16,)

    def sdk_version(self) -> str | None:
        version = corex_version(torch.__version__)
        return f"CoreX {version}" if version else None
