"""Device backends by vendor name, and detection of the one this process can use."""

from __future__ import annotations

from bench.devices.base import Detection, DeviceBackend, MemoryStats
from bench.devices.corex import CorexBackend
from bench.devices.cpu import CpuBackend
from bench.devices.cuda import CudaBackend
from bench.devices.jetson import JetsonBackend
from bench.devices.mlu import MluBackend
from bench.errors import UserError

BACKENDS: dict[str, type[DeviceBackend]] = {
    "cpu": CpuBackend,
    "cuda": CudaBackend,
    "mlu": MluBackend,
    "corex": CorexBackend,
    "jetson": JetsonBackend,
}

# The most specific stacks first: CoreX and Jetson also answer torch.cuda.is_available().
DETECTION_ORDER = ("mlu", "corex", "jetson", "cuda", "cpu")

__all__ = ["BACKENDS", "Detection", "DeviceBackend", "MemoryStats", "detect", "get_backend"]


def get_backend(vendor: str) -> DeviceBackend:
    """The backend for ``vendor`` ('auto' picks the first available), prepared for use."""
    if vendor == "auto":
        vendor = detect()
    cls = BACKENDS.get(vendor)
    if cls is None:
        raise UserError(
            f"Unknown vendor {vendor!r}.",
            f"Choose one of: auto, {', '.join(BACKENDS)} (see `python -m bench list`).",
        )
    detection = cls.detect()
    if not detection.available:
        raise UserError(
            f"Vendor {vendor!r} is not usable in this environment: {detection.reason}.",
            "Run inside that vendor's image (`invoke bench --vendor "
            f"{vendor}`), or pick `--device auto` to use what is present.",
        )
    backend = cls()
    backend.prepare()
    return backend


def detect() -> str:
    for vendor in DETECTION_ORDER:
        if BACKENDS[vendor].detect().available:
            return vendor
    return "cpu"
