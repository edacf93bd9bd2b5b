"""NVIDIA data-centre and desktop GPUs through the CUDA build of PyTorch."""

from __future__ import annotations

import torch

from bench.devices.base import Detection, DeviceBackend


def is_corex_build() -> bool:
    return "+corex" in torch.__version__


def is_hip_build() -> bool:
    """ROCm (and Hygon DTK) builds answer torch.cuda through HIP and set torch.version.hip."""
    return bool(getattr(torch.version, "hip", None))


def is_jetson() -> bool:
    from bench.devices.jetson import TEGRA_RELEASE_FILE

    return TEGRA_RELEASE_FILE.exists()


class CudaBackend(DeviceBackend):
    vendor = "cuda"
    device_type = "cuda"
    dist_backend = "nccl"
    telemetry = "nvml"
    visible_devices_env = "CUDA_VISIBLE_DEVICES"
    detect_rank = 50

    @classmethod
    def detect(cls) -> Detection:
        if is_hip_build():
            return Detection(False, f"torch {torch.__version__} is a ROCm (HIP "
                                    f"{torch.version.hip}) build: use vendor rocm")
        if is_corex_build():
            return Detection(False,
                             f"torch {torch.__version__} is Iluvatar CoreX: use vendor corex")
        if is_jetson():
            return Detection(False, "this is a Jetson board: use vendor jetson")
        if not torch.cuda.is_available():
            return Detection(False, f"torch {torch.__version__} sees no CUDA device")
        if "iluvatar" in torch.cuda.get_device_name(0).lower():
            return Detection(False, "the CUDA device is an Iluvatar GPU: use vendor corex")
        return Detection(True, f"{torch.cuda.device_count()} CUDA device(s)")

    def amp_dtypes(self) -> tuple[torch.dtype, ...]:
        if torch.cuda.is_bf16_supported():
            return (torch.float16, torch.bfloat16)
        return (torch.float16,)

    def supports_tf32(self) -> bool:
        major, _ = torch.cuda.get_device_capability()
        return major >= 8

    def is_oom(self, exc: BaseException) -> bool:
        return isinstance(exc, torch.cuda.OutOfMemoryError) or super().is_oom(exc)

    def driver_version(self) -> str | None:
        try:
            import pynvml

            pynvml.nvmlInit()
            try:
                version = pynvml.nvmlSystemGetDriverVersion()
            finally:
                pynvml.nvmlShutdown()
            return version.decode() if isinstance(version, bytes) else str(version)
        except Exception:
            return None

    def sdk_version(self) -> str | None:
        return f"CUDA {torch.version.cuda}" if torch.version.cuda else None
