"""Typed telemetry samples in SI units, and the adapter interface every vendor implements.

An adapter reads one sample per device from the vendor's management API. A field it cannot
read is ``None`` and the adapter says why in ``unavailable`` (never a zero that looks real).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, fields
from typing import Any, ClassVar

# Field name -> unit. The names carry their units (CONVENTIONS: units in names).
SAMPLE_FIELDS: dict[str, str] = {
    "util_pct": "%",
    "mem_used_bytes": "B",
    "mem_total_bytes": "B",
    "power_w": "W",
    "temp_c": "degC",
    "clock_hz": "Hz",
    "energy_j": "J",
    "throttle": "reasons",
}


@dataclass
class Sample:
    """One reading of one device. ``energy_j`` is a cumulative counter where the device has one."""

    util_pct: float | None = None
    mem_used_bytes: float | None = None
    mem_total_bytes: float | None = None
    power_w: float | None = None
    temp_c: float | None = None
    clock_hz: float | None = None
    energy_j: float | None = None
    throttle: str | None = None

    def values(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in fields(self)}


class TelemetryAdapter(ABC):
    """Reads the devices a run uses. Subclasses are small: one vendor API each."""

    name: ClassVar[str]

    def __init__(self, device_indices: list[int]) -> None:
        self.device_indices = device_indices
        self.unavailable: dict[str, str] = {}

    @abstractmethod
    def read(self) -> list[Sample]:
        """One sample per device in ``device_indices``; raises on a failed reading."""

    def describe(self) -> dict[str, Any]:
        """Source and device names for the result (called once, after the first read)."""
        return {"backend": self.name}

    def close(self) -> None:  # noqa: B027 - optional hook
        """Release the management API."""
