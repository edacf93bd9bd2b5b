"""The device backend interface: what the harness needs from an accelerator's PyTorch build.

A backend is a small class per vendor (as in ByteMLPerf's ``backends/<HW>``). It answers
detection, the torch device string, synchronisation, memory statistics, the AMP dtypes the
device supports, the distributed backend name and the versions that go into provenance.
Everything vendor-specific lives in the subclass; the harness only calls this interface.
"""

from __future__ import annotations

import contextlib
import os
import re
import warnings
from abc import ABC, abstractmethod
from dataclasses import asdict, dataclass
from typing import Any, ClassVar

import torch

from bench.documents import DeviceSpec, Info

# Operators a device cannot run and that its PyTorch build runs on the host instead announce it
# as a Python warning (PyTorch's TORCH_WARN, e.g. "... will fall back to run on the CPU"); a
# repeat (bench.child) and the operator-function test (bench.function.worker) record them.
MAX_FALLBACK_MESSAGES = 10
CPU_FALLBACK = re.compile(r"fall(s|ing)?[ -]?back.*\bcpu\b|\bcpu\b.*fall(s|ing)?[ -]?back",
                          re.IGNORECASE | re.DOTALL)


def cpu_fallbacks(caught: list[warnings.WarningMessage]) -> list[str]:
    """The distinct warnings that say an operator ran on the CPU instead of the device."""
    found: list[str] = []
    for w in caught:
        text = str(w.message).strip()
        if CPU_FALLBACK.search(text) and text not in found:
            found.append(text)
    return found[:MAX_FALLBACK_MESSAGES]


def grad_scaler(device_type: str, enabled: bool) -> Any:
    """A loss scaler for fp16 training (a no-op when disabled); old torch builds keep it
    under ``torch.<device>.amp`` instead of ``torch.amp``."""
    if hasattr(torch.amp, "GradScaler"):
        return torch.amp.GradScaler(device_type, enabled=enabled)
    return getattr(torch, device_type).amp.GradScaler(enabled=enabled)  # pragma: no cover


@dataclass(frozen=True)
class Detection:
    available: bool
    reason: str


@dataclass(frozen=True)
class MemoryStats:
    """Framework-level memory of one device, in bytes; None where the API has no such figure."""

    allocated_bytes: int | None = None
    peak_allocated_bytes: int | None = None
    reserved_bytes: int | None = None
    free_bytes: int | None = None
    total_bytes: int | None = None
    note: str | None = None

    def as_dict(self) -> Info:
        return asdict(self)


PRECISION_DTYPES: dict[str, torch.dtype] = {
    "fp32": torch.float32,
    "tf32": torch.float32,
    "fp16": torch.float16,
    "bf16": torch.bfloat16,
}


class DeviceBackend(ABC):
    """One vendor's accelerator as seen through its PyTorch build."""

    vendor: ClassVar[str]
    device_type: ClassVar[str]
    dist_backend: ClassVar[str]
    telemetry: ClassVar[str]
    visible_devices_env: ClassVar[str | None] = None
    # Auto-detection tries lower ranks first (see bench.devices.DETECTION_ORDER): a vendor
    # stack 20, plain CUDA 50 (other stacks also answer torch.cuda), the host CPU 100.
    detect_rank: ClassVar[int] = 20

    @classmethod
    @abstractmethod
    def detect(cls) -> Detection:
        """Whether this vendor's device and PyTorch build are usable in this process."""

    def prepare(self) -> None:  # noqa: B027 - optional hook
        """Import vendor extensions that register the device with torch (e.g. ``torch_mlu``)."""

    def device(self, index: int = 0) -> torch.device:
        return torch.device(self.device_type, index)

    @property
    def module(self) -> Any:
        """The ``torch.<device_type>`` module (``torch.cuda``, ``torch.mlu``)."""
        return getattr(torch, self.device_type)

    def synchronize(self, index: int | None = None) -> None:
        self.module.synchronize(index)

    def device_count(self) -> int:
        return int(self.module.device_count())

    # -- streams (concurrent inference) ----------------------------------------------------
    def new_stream(self) -> Any | None:
        """A device stream of its own for one host thread (None: the device has none, and
        concurrent host threads share its one queue)."""
        make = getattr(self.module, "Stream", None)
        return make(device=self.device(0)) if make is not None else None

    def stream_context(self, stream: Any | None) -> contextlib.AbstractContextManager[Any]:
        """Work issued inside goes to ``stream`` (``torch.<device>.stream``)."""
        use = getattr(self.module, "stream", None)
        return use(stream) if stream is not None and use is not None \
            else contextlib.nullcontext()

    def stream_synchronize(self, stream: Any | None) -> None:
        """Wait for ``stream``'s work only (the whole device where there is no stream), so one
        thread's latency does not include another thread's batches."""
        if stream is None:
            self.synchronize()
        else:
            stream.synchronize()

    def int8_unsupported(self, kind: str) -> str | None:
        """Why this device cannot run a post-training int8 ``kind`` model ("static" convolution
        networks, "dynamic" linear/LSTM layers); None when it can (see ``bench.quantize``)."""
        return (f"no int8 inference path for {self.vendor} in this image: PyTorch's own "
                "quantized kernels (fbgemm/x86/oneDNN) run on the CPU only, and the vendor's "
                "int8 engine (e.g. TensorRT for NVIDIA GPUs) is not wired into the test-bed")

    def device_name(self, index: int = 0) -> str:
        return str(self.module.get_device_name(index))

    def memory_stats(self, index: int = 0) -> MemoryStats:
        mod = self.module
        free = total = None
        if hasattr(mod, "mem_get_info"):
            free, total = (int(x) for x in mod.mem_get_info(index))
        return MemoryStats(
            allocated_bytes=int(mod.memory_allocated(index)),
            peak_allocated_bytes=int(mod.max_memory_allocated(index)),
            reserved_bytes=int(mod.memory_reserved(index)),
            free_bytes=free,
            total_bytes=total,
        )

    def reset_peak_memory(self, index: int = 0) -> None:
        self.module.reset_peak_memory_stats(index)

    @abstractmethod
    def amp_dtypes(self) -> tuple[torch.dtype, ...]:
        """Reduced-precision dtypes usable with ``torch.autocast`` on this device."""

    def supports_precision(self, precision: str) -> bool:
        if precision == "fp32":
            return True
        if precision == "tf32":
            return self.supports_tf32()
        dtype = PRECISION_DTYPES.get(precision)
        return dtype is not None and dtype in self.amp_dtypes()

    def supports_tf32(self) -> bool:
        return False

    def set_tf32(self, enabled: bool) -> Info:
        """Allow (or forbid) TF32 for float32 matrix products and convolutions; returns the
        state for the result.

        Set explicitly for every run, because the defaults differ (cuDNN convolutions use TF32
        by default on Ampere and later, matmuls do not): ``fp32`` must mean fp32 everywhere.
        """
        torch.set_float32_matmul_precision("high" if enabled else "highest")
        state: Info = {"float32_matmul_precision":
                                 torch.get_float32_matmul_precision()}
        if self.device_type == "cuda":
            torch.backends.cuda.matmul.allow_tf32 = enabled
            torch.backends.cudnn.allow_tf32 = enabled
            state["cuda_matmul_allow_tf32"] = enabled
            state["cudnn_allow_tf32"] = enabled
        else:
            vendor_backends = getattr(torch.backends, self.device_type, None)
            matmul = getattr(vendor_backends, "matmul", None)
            if matmul is not None and hasattr(matmul, "allow_tf32"):
                matmul.allow_tf32 = enabled
                state[f"{self.device_type}_matmul_allow_tf32"] = enabled
        return state

    def compile_unsupported(self) -> str | None:
        """Why ``torch.compile`` with its default backend (Inductor) cannot compile for this
        device, or None. A failure this cannot foresee still shows at the first iteration,
        which records the workload ``unsupported`` with Dynamo's message."""
        import importlib.util

        try:
            import torch._dynamo

            if not torch._dynamo.is_dynamo_supported():
                return "TorchDynamo does not support this Python build"
        except Exception as exc:  # an old or stripped torch build
            return f"TorchDynamo cannot be loaded ({type(exc).__name__}: {exc})"
        try:  # a private registry: if it moves, the first iteration answers instead
            from torch._inductor.codegen.common import (
                get_scheduling_for_device,
                init_backend_registration,
            )

            init_backend_registration()
            if get_scheduling_for_device(self.device_type) is None:
                return (f"the default backend (Inductor) has no code generator for device type "
                        f"{self.device_type!r}")
        except ImportError:
            pass
        if self.device_type == "cuda" and importlib.util.find_spec("triton") is None:
            return "Inductor writes Triton kernels for GPUs and triton is not installed"
        return None

    def is_oom(self, exc: BaseException) -> bool:
        """Whether ``exc`` means the device ran out of memory (recorded as status ``oom``)."""
        if isinstance(exc, torch.OutOfMemoryError | MemoryError):
            return True
        return isinstance(exc, RuntimeError) and "out of memory" in str(exc).lower()

    def driver_version(self) -> str | None:
        return None

    def sdk_version(self) -> str | None:
        return None

    def visible_devices(self) -> str | None:
        return os.environ.get(self.visible_devices_env) if self.visible_devices_env else None

    def spec_sheet(self, index: int = 0) -> DeviceSpec | None:
        """The device's spec sheet (``bench/specs/devices``), matched by the name it reports."""
        from bench.specs import find_spec

        return find_spec(self.device_name(index), self.vendor)

    def info(self, index: int = 0) -> Info:
        """Device facts for the result's provenance."""
        stats = self.memory_stats(index)
        return {
            "vendor": self.vendor,
            "device_type": self.device_type,
            "name": self.device_name(index),
            "count": self.device_count(),
            "memory_total_bytes": stats.total_bytes,
            "driver_version": self.driver_version(),
            "sdk_version": self.sdk_version(),
            "dist_backend": self.dist_backend,
            "telemetry_backend": self.telemetry,
            "visible_devices": self.visible_devices(),
            "amp_dtypes": [str(d).removeprefix("torch.") for d in self.amp_dtypes()],
        }
