"""The reference backend: the host CPU with the stock PyTorch build."""

from __future__ import annotations

import platform
import resource
from typing import Any

import psutil
import torch

from bench.devices.base import Detection, DeviceBackend, MemoryStats


def cpu_model_name() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as fh:
            for line in fh:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


class CpuBackend(DeviceBackend):
    vendor = "cpu"
    device_type = "cpu"
    dist_backend = "gloo"
    telemetry = "host"
    detect_rank = 100

    @classmethod
    def detect(cls) -> Detection:
        return Detection(True, "the host CPU is always present")

    def device(self, index: int = 0) -> torch.device:
        return torch.device("cpu")

    def synchronize(self, index: int | None = None) -> None:
        """CPU kernels are synchronous: nothing to wait for."""

    def device_count(self) -> int:
        return 1

    def new_stream(self) -> None:
        """The CPU has no streams: concurrent host threads share its cores."""
        return None

    def int8_unsupported(self, kind: str) -> str | None:
        if "x86" in torch.backends.quantized.supported_engines or \
                "fbgemm" in torch.backends.quantized.supported_engines:
            return None
        return (f"this PyTorch build has no x86/fbgemm quantized engine (engines: "
                f"{', '.join(torch.backends.quantized.supported_engines)})")

    def device_name(self, index: int = 0) -> str:
        return cpu_model_name()

    def memory_stats(self, index: int = 0) -> MemoryStats:
        vm = psutil.virtual_memory()
        rss = psutil.Process().memory_info().rss
        peak_rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # KiB on Linux
        return MemoryStats(
            allocated_bytes=rss,
            peak_allocated_bytes=peak_rss,
            free_bytes=vm.available,
            total_bytes=vm.total,
            note="CPU PyTorch has no allocator statistics: allocated/peak are the process RSS",
        )

    def reset_peak_memory(self, index: int = 0) -> None:
        """ru_maxrss cannot be reset; each repeat runs in a fresh process instead."""

    def is_oom(self, exc: BaseException) -> bool:
        """The CPU allocator reports exhaustion as a plain RuntimeError ("DefaultCPUAllocator:
        can't allocate memory" / "not enough memory"), not as torch.OutOfMemoryError."""
        if super().is_oom(exc):
            return True
        text = str(exc)
        return isinstance(exc, RuntimeError) and "DefaultCPUAllocator" in text and (
            "can't allocate memory" in text or "not enough memory" in text)

    def amp_dtypes(self) -> tuple[torch.dtype, ...]:
        return (torch.bfloat16, torch.float16)

    def sdk_version(self) -> str | None:
        return f"torch {torch.__version__}"

    def info(self, index: int = 0) -> dict[str, Any]:
        doc = super().info(index)
        doc["threads"] = torch.get_num_threads()
        doc["logical_cores"] = psutil.cpu_count(logical=True)
        return doc
