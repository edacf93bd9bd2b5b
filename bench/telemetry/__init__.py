"""Telemetry: one sampler, one small adapter per vendor management API."""

from __future__ import annotations

from collections.abc import Callable

from bench.errors import UserError
from bench.telemetry.base import SAMPLE_FIELDS, Sample, TelemetryAdapter
from bench.telemetry.sampler import Sampler


def _host(indices: list[int]) -> TelemetryAdapter:
    from bench.telemetry.host import HostAdapter

    return HostAdapter(indices)


def _nvml(indices: list[int]) -> TelemetryAdapter:
    from bench.telemetry.nvml import NvmlAdapter

    return NvmlAdapter(indices)


ADAPTERS: dict[str, Callable[[list[int]], TelemetryAdapter]] = {
    "host": _host,
    "nvml": _nvml,
}

__all__ = ["ADAPTERS", "SAMPLE_FIELDS", "Sample", "Sampler", "TelemetryAdapter", "open_adapter"]


def open_adapter(name: str, device_indices: list[int]) -> tuple[TelemetryAdapter, str | None]:
    """The adapter ``name``; falls back to host telemetry (with the reason) if it cannot open."""
    factory = ADAPTERS.get(name)
    if factory is None:
        if name in ("cndev", "ixml", "jtop"):
            fallback = ADAPTERS["host"](device_indices)
            return fallback, f"telemetry backend {name!r} is not implemented yet; host used"
        raise UserError(f"Unknown telemetry backend {name!r}.",
                        f"Choose one of: {', '.join(ADAPTERS)}.")
    try:
        return factory(device_indices), None
    except Exception as exc:
        if name == "host":
            raise
        return ADAPTERS["host"](device_indices), f"{name} telemetry unavailable ({exc}); host used"
