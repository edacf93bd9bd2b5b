"""Cambricon MLUs: libcndev through ctypes, falling back to parsing ``cnmon``'s table.

The structures below are transcribed from Cambricon's ``cndev.h`` as shipped in the public
mlu-exporter (``pkg/cndev/include/cndev.h``, releases v1.6.7 of 2022 and v2.0.x of 2025).
Newer drivers (CNDEV_VERSION_6) identify devices by handles from
``cndevGetDeviceHandleByIndex`` and report memory and power through ``cndevGetMemoryUsageV2``
and ``cndevGetDevicePowerInfo`` (structures without a version field); older ones (versions
3-5) take the device index directly and use ``cndevGetMemoryUsage``/``cndevGetPowerInfo``
with a leading ``version`` field. Versioned calls are tried at version 6 first and retried at
5, 4, 3 when the library answers CNDEV_ERROR_UNSUPPORTED_API_VERSION.

Units (header comments): power in W (integers), memory in "MB" which mlu-exporter converts
with 1024*1024 and cnmon prints as MiB, so MiB is used; temperatures in degC; frequency MHz.
[unverified on hardware here: no MLU is lent to this project's CI.] MLU370 has no energy
counter (docs/telemetry.md): energy is integrated power.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

from bench.documents import Info
from bench.telemetry.base import (
    MIB,
    AdapterUnavailable,
    Sample,
    TelemetryAdapter,
    ToolError,
    c_function,
    error_string_function,
    load_first_library,
    physical_indices,
    run_tool,
)

c_int32, c_uint32, c_int64, c_uint64 = ctypes.c_int32, ctypes.c_uint32, ctypes.c_int64, \
    ctypes.c_uint64
c_uint8, c_uint16 = ctypes.c_uint8, ctypes.c_uint16

CNDEV_SUCCESS = 0
CNDEV_ERROR_UNSUPPORTED_API_VERSION = 3
CNDEV_VERSIONS = (6, 5, 4, 3)
NEUWARE_HOME = Path(os.environ.get("NEUWARE_HOME", "/usr/local/neuware"))


class CardInfo(ctypes.Structure):
    _fields_ = [("version", c_int32), ("number", c_uint32)]


class MemoryInfoV2(ctypes.Structure):
    """cndevMemoryInfoV2_t (no version field)."""

    _fields_ = [("physicalMemoryTotal", c_int64), ("physicalMemoryUsed", c_int64),
                ("reservedMemory", c_int64), ("virtualMemoryTotal", c_int64),
                ("virtualMemoryUsed", c_int64), ("globalMemory", c_uint64),
                ("reserved", c_uint64 * 16)]


class MemoryInfoV1(ctypes.Structure):
    """cndevMemoryInfo_t of the version-5 API."""

    _fields_ = [("version", c_int32), ("physicalMemoryTotal", c_int64),
                ("physicalMemoryUsed", c_int64), ("virtualMemoryTotal", c_int64),
                ("virtualMemoryUsed", c_int64), ("channelNumber", c_int64),
                ("channelMemoryUsed", c_int64 * 20)]


class DevicePowerInfo(ctypes.Structure):
    """cndevDevicePowerInfo_t (no version field)."""

    _fields_ = [("usage", c_int32), ("cap", c_int32), ("machine", c_int32), ("tdp", c_int32),
                ("maxPower", c_int32), ("reserved", c_int32 * 16)]


class PowerInfoV1(ctypes.Structure):
    """cndevPowerInfo_t of the version-5 API."""

    _fields_ = [("version", c_int32), ("usage", c_int32), ("cap", c_int32),
                ("usageDecimal", c_int32), ("machine", c_int32), ("capDecimal", c_int32),
                ("thermalDesignPower", c_uint16)]


class TemperatureInfo(ctypes.Structure):
    """cndevTemperatureInfo_t; ``isp`` is the newest field (older libraries leave it alone)."""

    _fields_ = [("version", c_int32), ("board", c_int32), ("cluster", c_int32 * 20),
                ("memoryDie", c_int32 * 8), ("chip", c_int32), ("airInlet", c_int32),
                ("airOutlet", c_int32), ("memory", c_int32), ("videoInput", c_int32),
                ("cpu", c_int32), ("isp", c_int32)]


class UtilizationInfo(ctypes.Structure):
    _fields_ = [("version", c_int32), ("averageCoreUtilization", c_int32),
                ("coreUtilization", c_int32 * 80)]


class FrequencyInfo(ctypes.Structure):
    """cndevFrequencyInfo_t; fields after ``fastDfsFlag`` are version 6 only."""

    _fields_ = [("version", c_int32), ("boardFreq", c_int32), ("ddrFreq", c_int32),
                ("overtempDfsFlag", c_uint8), ("fastDfsFlag", c_uint8),
                ("mluClusterFreqCount", c_uint16), ("mluClusterFreq", c_uint16 * 20),
                ("boardDefaultFreq", c_int32), ("boardFreqArange", c_int32 * 2)]


class ThrottleReason(ctypes.Structure):
    """cndevPerformanceThrottleReason_t (version 6); each reason a cndevEnableStatusEnum_t."""

    _fields_ = [("version", c_int32), ("tdp", ctypes.c_int), ("powerSetting", ctypes.c_int),
                ("clockSetting", ctypes.c_int), ("frequencyLocked", ctypes.c_int),
                ("powerBrake", ctypes.c_int), ("thermalSlowdown", ctypes.c_int)]


THROTTLE_FIELDS = {"tdp": "tdp", "powerSetting": "power_setting",
                   "clockSetting": "clock_setting", "frequencyLocked": "frequency_locked",
                   "powerBrake": "power_brake", "thermalSlowdown": "thermal_slowdown"}


class CndevError(Exception):
    def __init__(self, function: str, code: int, message: str) -> None:
        self.code = code
        super().__init__(f"{function}: {message} (cndevRet_t {code})")


def cndev_library_paths() -> list[str]:
    override = os.environ.get("BENCH_CNDEV_LIBRARY")
    if override:
        return [override]
    return [str(NEUWARE_HOME / "lib64" / "libcndev.so"), "libcndev.so"]


class Cndev:
    """Thin ctypes shell around libcndev: one method per call the adapter makes."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.lib = ctypes.CDLL(path)
        self.versions: dict[str, int] = {}
        self._errstr = error_string_function(self.lib, "cndevGetErrorString")

    def _fn(self, name: str) -> Any:
        return c_function(self.lib, name)

    def has(self, name: str) -> bool:
        return self._fn(name) is not None

    def message(self, code: int) -> str:
        if self._errstr is not None:
            raw = self._errstr(code)
            if raw:
                return raw.decode(errors="replace")
        return "error"

    def call(self, name: str, *args: Any) -> None:
        fn = self._fn(name)
        if fn is None:
            raise CndevError(name, -1, f"{self.path} does not export it")
        ret = fn(*args)
        if ret != CNDEV_SUCCESS:
            raise CndevError(name, ret, self.message(ret))

    def versioned(self, name: str, struct: ctypes.Structure, *args: Any) -> ctypes.Structure:
        """Call ``name(&struct, *args)`` at the newest API version the library accepts."""
        versions = (self.versions[name],) if name in self.versions else CNDEV_VERSIONS
        for version in versions:
            struct.version = version
            try:
                self.call(name, ctypes.byref(struct), *args)
            except CndevError as exc:
                if exc.code == CNDEV_ERROR_UNSUPPORTED_API_VERSION and version != versions[-1]:
                    continue
                raise
            self.versions[name] = version
            return struct
        raise AssertionError("unreachable")

    def init(self) -> None:
        self.call("cndevInit", c_int32(0))

    def release(self) -> None:
        self.call("cndevRelease")

    def device_count(self) -> int:
        return int(self.versioned("cndevGetDeviceCount", CardInfo()).number)

    def handle(self, index: int) -> int:
        if not self.has("cndevGetDeviceHandleByIndex"):
            return index  # API versions <= 5 address devices by index
        handle = c_int32(-1)
        self.call("cndevGetDeviceHandleByIndex", c_int32(index), ctypes.byref(handle))
        return handle.value

    def name(self, handle: int) -> str | None:
        fn = self._fn("cndevGetCardNameStringByDevId")
        if fn is None:
            return None
        fn.restype = ctypes.c_char_p
        raw = fn(c_int32(handle))
        return raw.decode(errors="replace") if raw else None

    def memory_mib(self, handle: int) -> tuple[int, int]:
        """(used, total) in MiB; total falls back to globalMemory when the physical one is 0."""
        if self.has("cndevGetMemoryUsageV2"):
            mem = MemoryInfoV2()
            self.call("cndevGetMemoryUsageV2", ctypes.byref(mem), c_int32(handle))
            total = mem.physicalMemoryTotal if mem.physicalMemoryTotal > 0 else mem.globalMemory
            return int(mem.physicalMemoryUsed), int(total)
        old = self.versioned("cndevGetMemoryUsage", MemoryInfoV1(), c_int32(handle))
        return int(old.physicalMemoryUsed), int(old.physicalMemoryTotal)

    def power_w(self, handle: int) -> int:
        if self.has("cndevGetDevicePowerInfo"):
            info = DevicePowerInfo()
            self.call("cndevGetDevicePowerInfo", ctypes.byref(info), c_int32(handle))
            return int(info.usage)
        # usageDecimal is ignored as mlu-exporter ignores it [unverified meaning]
        return int(self.versioned("cndevGetPowerInfo", PowerInfoV1(), c_int32(handle)).usage)

    def temperature(self, handle: int) -> TemperatureInfo:
        return self.versioned("cndevGetTemperatureInfo", TemperatureInfo(), c_int32(handle))

    def utilization(self, handle: int) -> int:
        return int(self.versioned("cndevGetDeviceUtilizationInfo", UtilizationInfo(),
                                  c_int32(handle)).averageCoreUtilization)

    def frequency_mhz(self, handle: int) -> int:
        return int(self.versioned("cndevGetFrequencyInfo", FrequencyInfo(),
                                  c_int32(handle)).boardFreq)

    def throttle(self, handle: int) -> str:
        info = self.versioned("cndevGetPerformanceThrottleReason", ThrottleReason(),
                              c_int32(handle))
        names = [name for field, name in THROTTLE_FIELDS.items() if getattr(info, field)]
        return "+".join(names) if names else "none"


def load_cndev() -> Cndev:
    return load_first_library("libcndev.so", cndev_library_paths(), Cndev)


class CndevAdapter(TelemetryAdapter):
    name = "cndev"
    visible_devices_env: ClassVar[str] = "MLU_VISIBLE_DEVICES"

    def __init__(self, device_indices: list[int], library: Cndev | None = None) -> None:
        super().__init__(device_indices)
        self.cndev = library or load_cndev()
        try:
            self.cndev.init()
        except CndevError as exc:
            raise AdapterUnavailable(str(exc)) from exc
        count = self.cndev.device_count()
        self.physical = physical_indices(device_indices,
                                         os.environ.get(self.visible_devices_env))
        absent = [i for i in self.physical if i >= count]
        if absent:
            raise AdapterUnavailable(f"cndev reports {count} MLU(s); no MLU {absent}")
        self.handles = [self.cndev.handle(i) for i in self.physical]
        self.scope = {"util_pct": "average MLU core utilisation",
                      "power_w": "MLU card power (cndevGetDevicePowerInfo usage, integer W)",
                      "temp_c": "chip temperature", "clock_hz": "IPU (board) frequency"}

    def _field(self, name: str, fn: Any) -> Any:
        try:
            return fn()
        except CndevError as exc:
            return self.missing(name, f"cndev: {exc}")

    def _read_one(self, h: int) -> Sample:
        cn = self.cndev
        mem = self._field("mem_used_bytes", lambda: cn.memory_mib(h))
        temp = self._field("temp_c", lambda: cn.temperature(h))
        util = self._field("util_pct", lambda: cn.utilization(h))
        if util is not None and not 0 <= util <= 100:
            util = self.missing("util_pct", f"cndev reported utilisation {util} %, not 0-100")
        power = self._field("power_w", lambda: cn.power_w(h))
        if power is not None and power < 0:
            power = self.missing("power_w", f"cndev reported a negative power {power} W")
        freq = self._field("clock_hz", lambda: cn.frequency_mhz(h))
        if freq is not None and freq <= 0:
            freq = self.missing("clock_hz", f"cndev reported a frequency of {freq} MHz")
        throttle = self._field("throttle", lambda: cn.throttle(h))
        self.missing("energy_j", "cndev has no energy counter: energy is integrated power")
        used, total = mem if mem is not None else (None, None)
        return Sample(
            util_pct=float(util) if util is not None else None,
            mem_used_bytes=float(used * MIB) if used is not None else None,
            mem_total_bytes=float(total * MIB) if total else None,
            power_w=float(power) if power is not None else None,
            temp_c=float(temp.chip) if temp is not None else None,
            clock_hz=float(freq) * 1e6 if freq is not None else None,
            throttle=throttle,
        )

    def read(self) -> list[Sample]:
        return [self._read_one(h) for h in self.handles]

    def describe(self) -> Info:
        return {"backend": self.name, "source": f"libcndev ({self.cndev.path}) through ctypes",
                "devices": [self.cndev.name(h) for h in self.handles],
                "physical_indices": self.physical,
                "api_versions": dict(self.cndev.versions),
                "new_api": self.cndev.has("cndevGetDeviceHandleByIndex"),
                "field_scope": self.scope}

    def close(self) -> None:
        with contextlib.suppress(CndevError):
            self.cndev.release()


# -- cnmon ----------------------------------------------------------------------------------
@dataclass
class CnmonCard:
    """One card of cnmon's table: SI values (None where unreadable) and the reasons."""

    index: int
    name: str | None
    values: dict[str, float | None]
    reasons: dict[str, str]


_CARD_CELL = re.compile(r"^(\d+)\s+(\S+)\s+(\S+)(?:\s+(\S+))?$")
_BUS = re.compile(r"^[0-9A-Fa-f]{4,8}:[0-9A-Fa-f]{2}:[0-9A-Fa-f]{2}\.[0-7]$")
_PCT = re.compile(r"^(\d+(?:\.\d+)?)\s*%")
_TEMP = re.compile(r"^(-?\d+(?:\.\d+)?)\s*C$")
_POWER = re.compile(r"^(\S+?)\s*(?:W)?\s*/\s*(\S+?)\s*(?:W)?$")
_MEM = re.compile(r"^(\S+?)\s*(?:MiB)?\s*/\s*(\S+?)\s*(?:MiB)?$")
_NUM = re.compile(r"^\d+(?:\.\d+)?$")


def _cells(line: str) -> list[str] | None:
    """The inner cells of a ``| a | b | c |`` table row, or None for any other line."""
    text = line.strip()
    if not (text.startswith("|") and text.endswith("|")) or text.count("|") != 4:
        return None
    return [c.strip() for c in text[1:-1].split("|")]


def _number(token: str, what: str) -> tuple[float | None, str | None]:
    if _NUM.match(token):
        return float(token), None
    if token.upper() in ("N/A", "NA", "-"):
        return None, f"cnmon printed {token!r} for {what}"
    return None, f"cnmon printed an unreadable {what} {token[:30]!r}"


def parse_cnmon(text: str) -> dict[int, CnmonCard]:
    """Cards of ``cnmon``'s summary table (CNMON v5.x layout, as recorded under tests/).

    Each card is two rows: ``| Card VF Name Firmware | Bus-Id | Util Ecc-Error |`` then
    ``| Fan Temp Usage/Cap | Used/Total | SR-IOV Compute-Mode |``. Any cell that cannot be read
    gives None with the reason; a first row without its second gives a card whose values are
    all None. Never raises on any input.
    """
    cards: dict[int, CnmonCard] = {}
    lines = text.splitlines()
    for i, line in enumerate(lines):
        cells = _cells(line)
        if cells is None:
            continue
        head = _CARD_CELL.match(cells[0])
        if not head or not _BUS.match(cells[1]):
            continue
        index = int(head.group(1))
        values: dict[str, float | None] = dict.fromkeys(
            ("util_pct", "mem_used_bytes", "mem_total_bytes", "power_w", "temp_c"))
        reasons: dict[str, str] = {}
        util = _PCT.match(cells[2])
        if util and float(util.group(1)) <= 100:
            values["util_pct"] = float(util.group(1))
        elif cells[2].upper().startswith("N/A"):
            reasons["util_pct"] = "cnmon printed 'N/A' for utilisation"
        else:
            reasons["util_pct"] = f"cnmon printed an unreadable utilisation {cells[2][:30]!r}"
        second = _cells(lines[i + 1]) if i + 1 < len(lines) else None
        if second is None or _CARD_CELL.match(second[0]):
            for key in ("mem_used_bytes", "mem_total_bytes", "power_w", "temp_c"):
                reasons[key] = f"cnmon printed no second row for card {index}"
        else:
            _parse_second_row(second, values, reasons)
        cards[index] = CnmonCard(index, head.group(3), values, reasons)
    return cards


def _parse_second_row(cells: list[str], values: dict[str, float | None],
                      reasons: dict[str, str]) -> None:
    parts = cells[0].split(None, 2)  # fan, temp, "usage W/ cap W"
    if len(parts) == 3:
        temp = _TEMP.match(parts[1])
        if temp:
            values["temp_c"] = float(temp.group(1))
        elif parts[1].upper() == "N/A":
            reasons["temp_c"] = "cnmon printed 'N/A' for temperature"
        else:
            reasons["temp_c"] = f"cnmon printed an unreadable temperature {parts[1][:30]!r}"
        power = _POWER.match(parts[2])
        if power:
            values["power_w"], why = _number(power.group(1), "power")
            if why:
                reasons["power_w"] = why
        else:
            reasons["power_w"] = f"cnmon printed an unreadable power {parts[2][:30]!r}"
    else:
        reasons["temp_c"] = reasons["power_w"] = (
            f"cnmon's Fan/Temp/Power cell is unreadable: {cells[0][:40]!r}")
    mem = _MEM.match(cells[1])
    if mem:
        for key, token in (("mem_used_bytes", mem.group(1)), ("mem_total_bytes", mem.group(2))):
            value, why = _number(token, "memory")
            values[key] = value * MIB if value is not None else None
            if why:
                reasons[key] = why
    else:
        reasons["mem_used_bytes"] = reasons["mem_total_bytes"] = (
            f"cnmon printed an unreadable memory cell {cells[1][:40]!r}")


class CnmonAdapter(TelemetryAdapter):
    name = "cnmon"

    def __init__(self, device_indices: list[int], timeout_s: float = 5.0) -> None:
        super().__init__(device_indices)
        self.timeout_s = timeout_s
        self.physical = physical_indices(device_indices, os.environ.get("MLU_VISIBLE_DEVICES"))
        try:
            cards = parse_cnmon(run_tool(["cnmon"], timeout_s))
        except ToolError as exc:
            raise AdapterUnavailable(str(exc)) from exc
        absent = [i for i in self.physical if i not in cards]
        if absent:
            raise AdapterUnavailable(f"cnmon's table has no card {absent} "
                                     f"(it lists {sorted(cards)})")
        self.names = {i: cards[i].name for i in self.physical}
        self.scope = {"util_pct": "cnmon Util (MLU core utilisation)",
                      "power_w": "cnmon Pwr:Usage (card power, integer W)"}

    def read(self) -> list[Sample]:
        cards = parse_cnmon(run_tool(["cnmon"], self.timeout_s))
        if not cards:
            raise ToolError("cnmon printed no card table")
        samples = []
        for i in self.physical:
            card = cards.get(i)
            if card is None:
                for key in ("util_pct", "mem_used_bytes", "mem_total_bytes", "power_w",
                            "temp_c"):
                    self.missing(key, f"cnmon printed no row for card {i}")
                samples.append(Sample())
                continue
            for key, reason in card.reasons.items():
                self.missing(key, reason)
            samples.append(Sample(**card.values))
        self.missing("clock_hz", "cnmon's summary table has no clock")
        self.missing("energy_j", "cndev has no energy counter: energy is integrated power")
        self.missing("throttle", "cnmon's summary table has no throttle state")
        return samples

    def describe(self) -> Info:
        return {"backend": self.name, "source": "cnmon summary table (text)",
                "devices": [self.names.get(i) for i in self.physical],
                "physical_indices": self.physical, "field_scope": self.scope}
