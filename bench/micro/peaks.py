"""The reference every micro-benchmark figure is reported next to: the device's spec sheet.

Peaks come only from ``bench/specs/devices/*.json`` (looked up by the device name the backend
reports). A card that the framework shows as several devices (``devices_per_card``) is
compared per device: its compute peaks, memory and memory bandwidth are divided among them.
Where there is no sheet, or the sheet has no figure, the percentage is null with the reason.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from bench.documents import DeviceSpec, Info
from bench.micro.formulas import pct_of
from bench.results import Metric, metric
from bench.specs import per_device


@dataclass(frozen=True)
class DevicePeaks:
    """Per-device reference figures from one spec sheet (SI units), or why there are none."""

    spec_id: str | None
    device_name: str
    vendor: str
    devices_per_card: int = 1
    flop_per_s: dict[str, float | None] = field(default_factory=dict)
    memory_bytes: float | None = None
    memory_bandwidth_bytes_per_s: float | None = None
    host_link_bytes_per_s: float | None = None
    interconnect_bytes_per_s: float | None = None
    missing_reason: str | None = None

    @classmethod
    def from_spec(cls, spec: DeviceSpec | None, device_name: str,
                  vendor: str) -> DevicePeaks:
        if spec is None:
            return cls(None, device_name, vendor, missing_reason=(
                f"no spec sheet in bench/specs/devices matches device {device_name!r} "
                f"(vendor {vendor})"))
        device = per_device(spec)
        return cls(
            spec_id=spec["id"], device_name=device_name, vendor=vendor,
            devices_per_card=int(spec.get("devices_per_card", 1)),
            flop_per_s=dict(device["peak_flops"]),
            memory_bytes=device.get("memory_bytes"),
            memory_bandwidth_bytes_per_s=device.get("memory_bandwidth_bytes_per_s"),
            host_link_bytes_per_s=spec.get("host_link_bytes_per_s"),
            interconnect_bytes_per_s=spec.get("interconnect_bytes_per_s"),
        )

    def _reason(self, what: str) -> str:
        if self.missing_reason:
            return self.missing_reason
        return f"spec sheet {self.spec_id} gives no {what} (null: not published)"

    def peak_flops(self, precision: str) -> tuple[float | None, str | None]:
        value = self.flop_per_s.get(precision)
        return value, None if value else self._reason(f"{precision} peak")

    def peak(self, name: str) -> tuple[float | None, str | None]:
        """One of the bandwidth attributes by name, with the reason when it is missing."""
        value = getattr(self, name)
        return value, None if value else self._reason(name)

    def info(self) -> Info:
        """What the result records about its reference (so % of peak can be re-derived)."""
        return {"spec": self.spec_id, "device_name": self.device_name,
                "devices_per_card": self.devices_per_card,
                "peak_flop_per_s": self.flop_per_s or None,
                "memory_bandwidth_bytes_per_s": self.memory_bandwidth_bytes_per_s,
                "host_link_bytes_per_s": self.host_link_bytes_per_s,
                "interconnect_bytes_per_s": self.interconnect_bytes_per_s,
                **({"reason": self.missing_reason} if self.missing_reason else {})}


def device_peaks(backend: Any) -> DevicePeaks:
    """The spec-sheet reference of the backend's first device (the cpu's is an estimate)."""
    name = backend.device_name(0)
    return DevicePeaks.from_spec(backend.spec_sheet(0), name, backend.vendor)


def pct_metric(value: float | None, peak: float | None, reason: str | None) -> Metric:
    """``value`` as % of ``peak``; null with the reason when either is missing."""
    if value is None:
        return metric(None, "%", "nothing measured")
    if not peak:
        return metric(None, "%", reason or "no peak figure")
    return metric(pct_of(value, peak), "%")
