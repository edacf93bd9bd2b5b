"""AMD Instinct (MI250X, MI300X) and Hygon DCU through PyTorch's ROCm (HIP) build.

ROCm's PyTorch answers the unchanged ``torch.cuda`` API (device string ``cuda``), so only
detection, versions and telemetry differ from NVIDIA. The build is told apart by
``torch.version.hip`` (a CUDA build leaves it None; CoreX marks ``+corex`` instead).
Collectives use the ``nccl`` backend name, which is RCCL underneath. Hygon's DCU Toolkit (DTK)
ships a HIP build of the same kind (``torch.version.hip`` set, ``dtk`` in the version).
"""

from __future__ import annotations

import re

import torch

from bench.devices.base import Detection, DeviceBackend

DRIVER_VERSION_FILES = ("/sys/module/amdgpu/version", "/sys/module/hydcu/version")


def hip_version() -> str | None:
    return getattr(torch.version, "hip", None) or None


def dtk_version(torch_version: str) -> str | None:
    """Hygon DTK from the torch build: ``2.1.0+das.opt1.dtk24041`` -> ``24.04.1``
    [the local-version layout is taken from public DTK wheels, unverified for every release]."""
    match = re.search(r"dtk[._-]?(\d{2})\.?(\d{2})\.?(\d)?", torch_version)
    if not match:
        return None
    return ".".join(p for p in match.groups() if p)


class RocmBackend(DeviceBackend):
    vendor = "rocm"
    device_type = "cuda"
    dist_backend = "nccl"
    telemetry = "amdsmi"
    visible_devices_env = "HIP_VISIBLE_DEVICES"

    @classmethod
    def detect(cls) -> Detection:
        hip = hip_version()
        if not hip:
            return Detection(False, f"torch {torch.__version__} is not a ROCm (HIP) build")
        if not torch.cuda.is_available():
            return Detection(False, f"the ROCm build of torch (HIP {hip}) sees no GPU")
        return Detection(True, f"{torch.cuda.device_count()} ROCm device(s), HIP {hip}")

    def amp_dtypes(self) -> tuple[torch.dtype, ...]:
        if torch.cuda.is_bf16_supported():
            return (torch.float16, torch.bfloat16)
        return (torch.float16,)

    def supports_tf32(self) -> bool:
        """PyTorch on ROCm ignores allow_tf32 unless HIPBLASLT_ALLOW_TF32=1 on MI300
        [unverified]: a tf32 entry is reported unsupported rather than run as fp32."""
        return False

    def is_oom(self, exc: BaseException) -> bool:
        return isinstance(exc, torch.cuda.OutOfMemoryError) or super().is_oom(exc)

    def sdk_version(self) -> str | None:
        parts = [f"HIP {hip_version()}" if hip_version() else None]
        dtk = dtk_version(torch.__version__)
        if dtk:
            parts.append(f"Hygon DTK {dtk}")
        return ", ".join(p for p in parts if p) or None

    def driver_version(self) -> str | None:
        for path in DRIVER_VERSION_FILES:
            try:
                with open(path, encoding="utf-8") as fh:
                    text = fh.read().strip()
            except OSError:
                continue
            if text:
                return text
        return None
