"""NVIDIA Jetson boards: jtop (jetson-stats), falling back to parsing ``tegrastats`` lines.

Jetson has no NVML: the GPU shares the board's RAM, power comes from INA3221 rails and
there is no GPU-only rail and no energy counter (docs/telemetry.md). Power is the board input
rail ``VDD_IN`` (``POM_5V_IN`` on Nano/TX) where the module has one; where it has none (AGX
Orin: ``VDD_GPU_SOC``, ``VDD_CPU_CV``, ``VIN_SYS_5V0`` ...) it is the sum of the listed rails,
as jtop computes its total, and the result says so [unverified: that sum is not the board
input]. Memory is the shared RAM. tegrastats line formats handled:

* Xavier NX, JetPack 4.x: ``GR3D_FREQ 33%`` and rails without units ``VDD_IN 3902/3611``
* JetPack 5 (Xavier NX, Orin): ``GR3D_FREQ 0%@[114]`` and ``VDD_IN 6030mW/6030mW``
* JetPack 6 (Orin): ``GR3D_FREQ 14%@[420]`` or ``@[0,0]`` per GPC, lowercase ``gpu@50.7C``
"""

from __future__ import annotations

import contextlib
import re
import subprocess
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any

from bench.documents import Info, JsonObject
from bench.telemetry.base import MIB, AdapterUnavailable, Sample, TelemetryAdapter

BOARD_RAILS = ("VDD_IN", "POM_5V_IN")
OFFLINE_TEMP_C = -256.0  # what tegrastats and jtop print for a sensor that is off

_RAM = re.compile(r"\bRAM (\d+)/(\d+)MB\b")
_GR3D = re.compile(r"\bGR3D_FREQ (\d+)%(?:@\[?([\d,]+)\]?)?(?=\s|$)")
_GPU_TEMP = re.compile(r"(?<![A-Za-z0-9_])(?:GPU|gpu)@(-?\d+(?:\.\d+)?)C\b")
_RAIL = re.compile(r"(?<![A-Za-z0-9_])([A-Z][A-Z0-9_]*) (\d+)(?:mW)?/(\d+)(?:mW)?(?![0-9A-Za-z])")
_NOT_RAILS = {"RAM", "SWAP", "IRAM", "CPU", "EMC_FREQ", "GR3D_FREQ"}


@dataclass
class TegraReading:
    """One tegrastats line in SI units; ``reasons`` says why a field is None."""

    values: dict[str, float | None]
    reasons: dict[str, str]
    rails_w: dict[str, float] = field(default_factory=dict)
    power_scope: str | None = None


def parse_tegrastats_line(line: str) -> TegraReading:
    """Parse one ``tegrastats`` line. Never raises; a field not found is None with a reason."""
    values: dict[str, float | None] = dict.fromkeys(
        ("util_pct", "mem_used_bytes", "mem_total_bytes", "power_w", "temp_c", "clock_hz"))
    reasons: dict[str, str] = {}
    ram = _RAM.search(line)
    if ram and int(ram.group(1)) <= int(ram.group(2)):
        values["mem_used_bytes"] = float(int(ram.group(1)) * MIB)
        values["mem_total_bytes"] = float(int(ram.group(2)) * MIB)
    else:
        reasons["mem_used_bytes"] = reasons["mem_total_bytes"] = "no readable 'RAM u/tMB' field"
    gr3d = _GR3D.search(line)
    if gr3d and int(gr3d.group(1)) <= 100:
        values["util_pct"] = float(gr3d.group(1))
        freqs = [int(f) for f in (gr3d.group(2) or "").split(",") if f]
        if freqs:
            values["clock_hz"] = max(freqs) * 1e6
        else:
            reasons["clock_hz"] = "GR3D_FREQ carries no frequency on this JetPack"
    else:
        reasons["util_pct"] = reasons["clock_hz"] = "no readable 'GR3D_FREQ n%' field"
    temp = _GPU_TEMP.search(line)
    if temp and float(temp.group(1)) != OFFLINE_TEMP_C:
        values["temp_c"] = float(temp.group(1))
    elif temp:
        reasons["temp_c"] = "the GPU thermal zone is offline (-256C)"
    else:
        reasons["temp_c"] = "no 'GPU@t C' field"
    rails = {m.group(1): int(m.group(2)) / 1000.0 for m in _RAIL.finditer(line)
             if m.group(1) not in _NOT_RAILS}
    scope = None
    board = next((r for r in BOARD_RAILS if r in rails), None)
    if board:
        values["power_w"] = rails[board]
        scope = f"board input rail {board}"
    elif rails:
        connected = {k: v for k, v in rails.items() if k != "NC"}
        values["power_w"] = sum(connected.values())
        scope = ("sum of the rails " + "+".join(connected) + " (no VDD_IN on this module; "
                 "not the board input) [unverified]")
    else:
        reasons["power_w"] = "no power rail field"
    return TegraReading(values, reasons, rails, scope)


class TegrastatsAdapter(TelemetryAdapter):
    """Keeps one ``tegrastats --interval MS`` process running and reads its latest line."""

    name = "tegrastats"
    STALE_INTERVALS = 5

    def __init__(self, device_indices: list[int], interval_s: float = 0.1,
                 command: str = "tegrastats") -> None:
        super().__init__(device_indices)
        self.interval_s = interval_s
        interval_ms = max(1, round(interval_s * 1000))
        self.argv = [command, "--interval", str(interval_ms)]
        try:
            self.proc = subprocess.Popen(self.argv, stdout=subprocess.PIPE,
                                         stderr=subprocess.DEVNULL, text=True, errors="replace")
        except OSError as exc:
            raise AdapterUnavailable(f"{command} cannot start: {exc}") from exc
        self._lines: deque[tuple[float, str]] = deque(maxlen=1)
        self._seen = threading.Event()
        self._reader = threading.Thread(target=self._pump, name="tegrastats", daemon=True)
        self._reader.start()
        if not self._seen.wait(timeout=max(5.0, 20 * interval_s)):
            self.close()
            raise AdapterUnavailable(f"{command} printed no line within "
                                     f"{max(5.0, 20 * interval_s):g} s")
        self.scope = {"mem_used_bytes": "shared CPU+GPU RAM", "util_pct": "GR3D_FREQ load"}
        self.last_line: str | None = None

    def _pump(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self._lines.append((time.monotonic(), line.rstrip("\n")))
            self._seen.set()

    def read(self) -> list[Sample]:
        if not self._lines:
            raise RuntimeError("tegrastats has printed nothing yet")
        t_line, line = self._lines[-1]
        age = time.monotonic() - t_line
        if age > max(1.0, self.STALE_INTERVALS * self.interval_s):
            state = "exited" if self.proc.poll() is not None else "is silent"
            raise RuntimeError(f"tegrastats {state}: its last line is {age:.1f} s old")
        self.last_line = line
        reading = parse_tegrastats_line(line)
        for key, reason in reading.reasons.items():
            self.missing(key, reason)
        self.missing("energy_j", "Jetson has no energy counter: energy is integrated power")
        self.missing("throttle", "tegrastats reports no throttle state")
        if reading.power_scope:
            self.scope["power_w"] = reading.power_scope
        return [Sample(**reading.values) for _ in self.device_indices]

    def describe(self) -> Info:
        return {"backend": self.name, "source": " ".join(self.argv),
                "example_line": self.last_line, "field_scope": self.scope}

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if self.proc.stdout is not None:
            with contextlib.suppress(OSError):
                self.proc.stdout.close()


class JtopAdapter(TelemetryAdapter):
    """jetson-stats' client (needs the jtop service, whose version must match the client)."""

    name = "jtop"

    def __init__(self, device_indices: list[int], interval_s: float = 0.1,
                 jtop_module: Any = None) -> None:
        super().__init__(device_indices)
        if jtop_module is None:
            try:
                import jtop as jtop_module
            except ImportError as exc:
                raise AdapterUnavailable(f"jetson-stats is not installed ({exc})") from exc
        self.module = jtop_module
        self.client = jtop_module.jtop(interval=max(interval_s, 0.1))
        try:
            self.client.start()
        except Exception as exc:  # JtopException: service down, version mismatch, permission
            raise AdapterUnavailable(f"jtop: {exc}") from exc
        self.scope = {"mem_used_bytes": "shared CPU+GPU RAM", "util_pct": "GPU load"}

    def _gpu(self) -> JsonObject | None:
        gpus = list(dict(self.client.gpu).values())
        return gpus[0] if gpus else None

    def _temp(self) -> float | None:
        temps = dict(self.client.temperature)
        entry = next((v for k, v in temps.items() if k.lower() == "gpu"), None)
        if entry is None:
            return self.missing("temp_c", "jtop lists no 'gpu' thermal zone")
        temp = entry.get("temp")
        if not entry.get("online", True) or temp is None or float(temp) == OFFLINE_TEMP_C:
            return self.missing("temp_c", "the GPU thermal zone is offline")
        return float(temp)

    def read(self) -> list[Sample]:
        if not self.client.ok(spin=True):  # raises the client's own error if it has one
            raise RuntimeError("the jtop client stopped")
        sample = Sample(temp_c=self._temp())
        gpu = self._gpu()
        if gpu is None:
            self.missing("util_pct", "jtop lists no GPU")
            self.missing("clock_hz", "jtop lists no GPU")
        else:
            load = gpu.get("status", {}).get("load")
            sample.util_pct = (float(load) if load is not None and 0 <= float(load) <= 100
                               else self.missing("util_pct", f"jtop GPU load {load!r}"))
            cur_khz = gpu.get("freq", {}).get("cur")
            sample.clock_hz = (float(cur_khz) * 1e3 if cur_khz else
                               self.missing("clock_hz", "jtop reports no GPU frequency"))
        ram = dict(self.client.memory).get("RAM", {})
        if ram.get("tot"):
            sample.mem_used_bytes = float(ram["used"]) * 1024  # jtop reports KB (KiB)
            sample.mem_total_bytes = float(ram["tot"]) * 1024
        else:
            self.missing("mem_used_bytes", "jtop reports no RAM total")
        total = dict(self.client.power).get("tot", {})
        if total.get("power") is not None:
            sample.power_w = float(total["power"]) / 1000.0
            rail = total.get("name")
            self.scope["power_w"] = (f"board input rail {rail}" if rail else
                                     "jtop total: the sum of all rails (no VDD_IN on this "
                                     "module; not the board input) [unverified]")
        else:
            self.missing("power_w", "jtop reports no total power")
        self.missing("energy_j", "Jetson has no energy counter: energy is integrated power")
        self.missing("throttle", "jtop reports no throttle state")
        return [sample for _ in self.device_indices]

    def describe(self) -> Info:
        return {"backend": self.name, "source": "jetson-stats (jtop client)",
                "service_interval_s": getattr(self.client, "interval", None),
                "field_scope": self.scope}

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self.client.close()
