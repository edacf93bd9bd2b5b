"""The reference backend: the host CPU with the stock PyTorch build."""

from __future__ import annotations

import platform
import resource

import psutil
import torch

from bench.devices.base import Detection, DeviceBackend, MemoryStats
from bench.documents import DeviceSpec, Info


def cpu_model_name() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as fh:
            for line in fh:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def peak_rss_bytes() -> int | None:
    """This process's peak resident set (``VmHWM``), or None off Linux."""
    try:
        with open("/proc/self/status", encoding="ascii") as fh:
            for line in fh:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return None


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

    # Set by reset_peak_memory: whether the kernel's peak-RSS mark was reset (None: never
    # asked), which decides what the peak means.
    _peak_reset: bool | None = None

    def memory_stats(self, index: int = 0) -> MemoryStats:
        vm = psutil.virtual_memory()
        rss = psutil.Process().memory_info().rss
        hwm = peak_rss_bytes()
        if self._peak_reset and hwm is not None:
            peak, scope = hwm, ("peak RSS of the repeat's process from the end of setup "
                                "(warm-up and timed loop; the kernel's VmHWM after a reset)")
        else:
            peak = hwm or resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # KiB
            scope = ("lifetime peak RSS of the repeat's process, model construction included "
                     "(the kernel's peak mark could not be reset here)")
        return MemoryStats(
            allocated_bytes=rss,
            peak_allocated_bytes=peak,
            free_bytes=vm.available,
            total_bytes=vm.total,
            note=f"CPU PyTorch has no allocator statistics: {scope}; data-loader workers "
                 "and ranks are not included (device_mem_used_bytes_* cover the whole tree)",
        )

    def reset_peak_memory(self, index: int = 0) -> None:
        """Reset the kernel's peak-RSS mark (``/proc/self/clear_refs``, Linux 4.0+), so the
        peak covers the measurement, as the CUDA allocator's reset does."""
        try:
            with open("/proc/self/clear_refs", "w", encoding="ascii") as fh:
                fh.write("5")
            self._peak_reset = True
        except OSError:
            self._peak_reset = False

    def is_oom(self, exc: BaseException) -> bool:
        """The CPU allocator reports exhaustion as a plain RuntimeError ("DefaultCPUAllocator:
        can't allocate memory" / "not enough memory"), not as torch.OutOfMemoryError."""
        if super().is_oom(exc):
            return True
        text = str(exc)
        return isinstance(exc, RuntimeError) and "DefaultCPUAllocator" in text and (
            "can't allocate memory" in text or "not enough memory" in text)

    def compile_unsupported(self) -> str | None:
        """Inductor compiles C++ for the CPU: without a C++ compiler it cannot."""
        import os
        import shutil

        reason = super().compile_unsupported()
        if reason is None and not any(shutil.which(c) for c in (
                os.environ.get("CXX") or "", "g++", "c++", "clang++") if c):
            reason = ("Inductor compiles C++ for the CPU and no C++ compiler (g++, c++, "
                      "clang++ or $CXX) is on the PATH")
        return reason

    def amp_dtypes(self) -> tuple[torch.dtype, ...]:
        return (torch.bfloat16, torch.float16)

    def sdk_version(self) -> str | None:
        return f"torch {torch.__version__}"

    def spec_sheet(self, index: int = 0) -> DeviceSpec | None:
        """A published sheet if one matches, else the estimate from the host's flags, cores
        (as many as the run's threads may use) and clock (``bench.specs.host_cpu``)."""
        from bench.specs.host_cpu import estimate_spec, host_facts

        return super().spec_sheet(index) or estimate_spec(host_facts(torch.get_num_threads()))

    def info(self, index: int = 0) -> Info:
        doc = super().info(index)
        doc["threads"] = torch.get_num_threads()
        doc["logical_cores"] = psutil.cpu_count(logical=True)
        sheet = self.spec_sheet(index)
        if sheet is not None and "estimate" in sheet:
            doc["spec_estimate"] = sheet  # the report's reference for this device
        return doc
