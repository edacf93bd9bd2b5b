"""Device backends by vendor name, and detection of the one this process can use.

A vendor is the module ``bench/devices/<vendor>.py`` holding one ``DeviceBackend`` subclass
whose ``vendor`` is the module's name (see :mod:`bench.vendors`); nothing here lists them.
"""

from __future__ import annotations

import importlib

from bench.devices.base import Detection, DeviceBackend, MemoryStats
from bench.errors import UserError
from bench.vendors import VENDORS, vendor_list

__all__ = ["BACKENDS", "DETECTION_ORDER", "Detection", "DeviceBackend", "MemoryStats",
           "backend_class", "detect", "get_backend"]


def backend_class(vendor: str) -> type[DeviceBackend]:
    """The backend class in ``bench/devices/<vendor>.py`` (exactly one, named by ``vendor``)."""
    module = importlib.import_module(f"bench.devices.{vendor}")
    found = [obj for obj in vars(module).values()
             if isinstance(obj, type) and issubclass(obj, DeviceBackend)
             and obj.__module__ == module.__name__]
    if len(found) != 1 or found[0].vendor != vendor:
        raise TypeError(f"bench/devices/{vendor}.py must define exactly one DeviceBackend "
                        f"subclass with vendor = {vendor!r} (found {[c.__name__ for c in found]})")
    return found[0]


BACKENDS: dict[str, type[DeviceBackend]] = {v: backend_class(v) for v in VENDORS}

# Lower rank is tried first: the stacks that also answer torch.cuda.is_available() (CoreX,
# Jetson, ROCm) before plain CUDA, and the CPU, which is always there, last. Each detect()
# also refuses the others' environments, so the order only breaks ties.
DETECTION_ORDER: tuple[str, ...] = tuple(sorted(BACKENDS, key=lambda v: (
    BACKENDS[v].detect_rank, v)))


def get_backend(vendor: str) -> DeviceBackend:
    """The backend for ``vendor`` ('auto' picks the first available), prepared for use."""
    if vendor == "auto":
        vendor = detect()
    cls = BACKENDS.get(vendor)
    if cls is None:
        raise UserError(
            f"Unknown vendor {vendor!r}.",
            f"Choose one of: auto, {vendor_list()} (see `python -m bench list`).",
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
