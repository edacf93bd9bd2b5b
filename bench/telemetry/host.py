"""Host telemetry for the CPU reference: psutil, and Intel/AMD RAPL energy where readable.

RAPL exposes a cumulative energy counter per package (``energy_uj``) that wraps at
``max_energy_range_uj``. Power is the counter's rate between two readings. In a VM or without
permission the counter is absent: power is then null with the reason, never zero.
"""

from __future__ import annotations

import glob
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psutil

from bench.telemetry.base import Sample, TelemetryAdapter

RAPL_ROOT = Path(os.environ.get("BENCH_RAPL_ROOT", "/sys/class/powercap"))
TEMPERATURE_SENSORS = ("coretemp", "k10temp", "zenpower", "cpu_thermal", "acpitz")


@dataclass
class RaplDomain:
    path: Path
    max_range_uj: int

    def read_uj(self) -> int:
        return int((self.path / "energy_uj").read_text().strip())


def find_rapl_domains(root: Path | None = None) -> tuple[list[RaplDomain], str | None]:
    """Package-level RAPL domains (``intel-rapl:N``, not sub-zones), or why there are none."""
    root = root or RAPL_ROOT
    paths = sorted(Path(p) for p in glob.glob(str(root / "intel-rapl:*"))
                   if ":" in Path(p).name and Path(p).name.count(":") == 1)
    if not paths:
        return [], f"no RAPL package domains under {root} (VM, non-x86 host or no powercap driver)"
    domains = []
    for path in paths:
        try:
            max_range = int((path / "max_energy_range_uj").read_text().strip())
            domain = RaplDomain(path, max_range)
            domain.read_uj()
        except (OSError, ValueError) as exc:
            return [], f"RAPL counter {path}/energy_uj not readable: {exc}"
        domains.append(domain)
    return domains, None


def counter_delta(before: int, after: int, max_range: int) -> int:
    """Difference of a wrapping counter."""
    return after - before if after >= before else after + max_range - before


class HostAdapter(TelemetryAdapter):
    name = "host"
    measures = "host"

    def __init__(self, device_indices: list[int] | None = None) -> None:
        super().__init__(device_indices or [0])
        psutil.cpu_percent(interval=None)  # prime: the first call has no reference point
        self.domains, self._rapl_reason = find_rapl_domains()
        reader = getattr(psutil, "sensors_temperatures", None)
        self._has_sensor = bool(reader) and any(reader().get(k) for k in TEMPERATURE_SENSORS)
        self._energy_uj = 0
        self._last: tuple[float, list[int]] | None = None
        self.scope = {
            "util_pct": "all logical CPUs of the host (psutil.cpu_percent)",
            "mem_used_bytes": "host memory in use (total - available)",
            "power_w": "sum of the RAPL package domains (CPU sockets; not DRAM, not the board)",
            "energy_j": "RAPL package counters accumulated since the adapter opened",
        }

    def _rapl(self) -> tuple[float | None, float | None]:
        if not self.domains:
            self.missing("power_w", str(self._rapl_reason))
            self.missing("energy_j", str(self._rapl_reason))
            return None, None
        now = time.monotonic()
        values = [d.read_uj() for d in self.domains]
        power = None
        if self._last is not None:
            t0, before = self._last
            delta = sum(counter_delta(b, a, d.max_range_uj)
                        for b, a, d in zip(before, values, self.domains, strict=True))
            self._energy_uj += delta
            if now > t0:
                power = delta / 1e6 / (now - t0)
        else:
            self.field_misses["power_w"] += 1  # the first reading has no reference point
        self._last = (now, values)
        return power, self._energy_uj / 1e6

    def _temperature(self) -> float | None:
        if not self._has_sensor:  # checked once: scanning hwmon costs more than the rest
            return self.missing("temp_c", "no CPU temperature sensor visible to psutil")
        temps = psutil.sensors_temperatures()
        for key in TEMPERATURE_SENSORS:
            entries = temps.get(key) if temps else None
            if entries:
                return max(e.current for e in entries)
        return self.missing("temp_c", "the CPU temperature sensor gave no reading")

    def _clock(self) -> float | None:
        try:
            freq = psutil.cpu_freq()
        except (OSError, NotImplementedError):
            freq = None
        if freq is None or not freq.current:
            return self.missing("clock_hz", "psutil.cpu_freq() unavailable")
        return freq.current * 1e6

    def read(self) -> list[Sample]:
        vm = psutil.virtual_memory()
        power, energy = self._rapl()
        sample = Sample(
            util_pct=psutil.cpu_percent(interval=None),
            mem_used_bytes=float(vm.total - vm.available),
            mem_total_bytes=float(vm.total),
            power_w=power,
            temp_c=self._temperature(),
            clock_hz=self._clock(),
            energy_j=energy,
        )
        self.missing("throttle", "the host API reports no throttle state")
        return [sample for _ in self.device_indices]

    def describe(self) -> dict[str, Any]:
        return {
            "backend": self.name,
            "source": "psutil" + (" + RAPL" if self.domains else ""),
            "rapl_domains": [str(d.path) for d in self.domains],
            "scope": "whole host (all CPUs, system memory)",
            "field_scope": self.scope,
        }
