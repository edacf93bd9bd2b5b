"""Huawei Ascend NPUs: the DCMI library through ctypes, falling back to ``npu-smi info``.

DCMI (``libdcmi.so``, shipped with the NPU driver) is what Huawei's own npu-exporter reads.
The calls and structures below are transcribed from the public ``dcmi_interface_api.h`` in
Ascend/ascend-npu-exporter (``devmanager/dcmi``), with the units that exporter applies:
power in 0.1 W (``dcmi_get_device_power_info``), temperature in degC, HBM size and use in MB
(taken as MiB: npu-smi prints 65536 for a 64 GB 910B), utilisation type 2 = AI Core,
frequency type 7 = AI Core current (MHz). A device is addressed by (card, device-in-card);
torch_npu's index is the DCMI logic id. There is no energy counter: energy is integrated
power. [unverified on hardware: no NPU is lent to this project's CI.]

``npu-smi info`` prints one table for all NPUs: two rows per chip (``NPU Name | Health |
Power(W) Temp(C) Hugepages-Usage(page)`` and ``Chip | Bus-Id | AICore(%) Memory-Usage(MB)
HBM-Usage(MB)``). The parser reads the column names from the header, so the layouts of
npu-smi 21.x to 25.x (with or without the HBM column) parse alike. A card with two chips
(Atlas A3, 310P) reports its power on the first chip and ``-`` on the second.
"""

from __future__ import annotations

import ctypes
import os
import re
from dataclasses import dataclass, field
from typing import Any

from bench.documents import Info
from bench.telemetry.base import (
    MIB,
    AdapterUnavailable,
    Sample,
    TelemetryAdapter,
    ToolError,
    c_function,
    load_first_library,
    physical_indices,
    run_tool,
)

VISIBLE_ENV = "ASCEND_RT_VISIBLE_DEVICES"
DCMI_SUCCESS = 0
MAX_CARDS = 64
UTIL_AICORE = 2
FREQ_AICORE_CURRENT = 7
NA_TOKENS = {"na", "n/a", "-", "--", ""}


# -- DCMI -----------------------------------------------------------------------------------
class ChipInfo(ctypes.Structure):
    """struct dcmi_chip_info."""

    _fields_ = [("chip_type", ctypes.c_ubyte * 32), ("chip_name", ctypes.c_ubyte * 32),
                ("chip_ver", ctypes.c_ubyte * 32), ("aicore_cnt", ctypes.c_uint)]


class HbmInfo(ctypes.Structure):
    """struct dcmi_hbm_info (sizes in MB)."""

    _fields_ = [("memory_size", ctypes.c_ulonglong), ("freq", ctypes.c_uint),
                ("memory_usage", ctypes.c_ulonglong), ("temp", ctypes.c_int),
                ("bandwith_util_rate", ctypes.c_uint)]


class DcmiError(Exception):
    def __init__(self, function: str, code: int) -> None:
        self.code = code
        super().__init__(f"{function} returned {code}")


def dcmi_library_paths() -> list[str]:
    override = os.environ.get("BENCH_DCMI_LIBRARY")
    if override:
        return [override]
    return ["/usr/local/dcmi/libdcmi.so", "/usr/local/Ascend/driver/lib64/driver/libdcmi.so",
            "libdcmi.so"]


def _text(raw: Any) -> str:
    return bytes(raw).split(b"\0", 1)[0].decode(errors="replace").strip()


@dataclass(frozen=True)
class Chip:
    """One NPU chip as DCMI addresses it."""

    card: int
    device: int
    logic_id: int


class Dcmi:
    """Thin ctypes shell around libdcmi: one method per call the adapter makes."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.lib = ctypes.CDLL(path)

    def has(self, name: str) -> bool:
        return c_function(self.lib, name) is not None

    def call(self, name: str, *args: Any) -> None:
        fn = c_function(self.lib, name)
        if fn is None:
            raise DcmiError(name, -99998)  # npu-exporter's FUNCTION_NOT_FOUND
        ret = fn(*args)
        if ret != DCMI_SUCCESS:
            raise DcmiError(name, ret)

    def init(self) -> None:
        self.call("dcmi_init")

    def cards(self) -> list[int]:
        """Card ids: ``dcmi_get_card_list`` (newer drivers) or ``dcmi_get_card_num_list``."""
        num = ctypes.c_int(0)
        ids = (ctypes.c_int * MAX_CARDS)()
        name = "dcmi_get_card_list" if self.has("dcmi_get_card_list") else \
            "dcmi_get_card_num_list"
        self.call(name, ctypes.byref(num), ids, ctypes.c_int(MAX_CARDS))
        if not 0 <= num.value <= MAX_CARDS:
            raise DcmiError(f"{name} (card count {num.value})", -1)
        return [ids[i] for i in range(num.value) if ids[i] >= 0]

    def chips(self) -> list[Chip]:
        """Every chip of every card, ordered by logic id (torch_npu's device order)."""
        out = []
        for card in self.cards():
            n = ctypes.c_int(0)
            self.call("dcmi_get_device_num_in_card", ctypes.c_int(card), ctypes.byref(n))
            for device in range(n.value):
                logic = ctypes.c_int(-1)
                self.call("dcmi_get_device_logic_id", ctypes.byref(logic), ctypes.c_int(card),
                          ctypes.c_int(device))
                out.append(Chip(card, device, logic.value))
        return sorted(out, key=lambda c: c.logic_id)

    def _int(self, name: str, chip: Chip, *extra: Any, unsigned: bool = False) -> int:
        value = ctypes.c_uint(0) if unsigned else ctypes.c_int(0)
        self.call(name, ctypes.c_int(chip.card), ctypes.c_int(chip.device), *extra,
                  ctypes.byref(value))
        return int(value.value)

    def name(self, chip: Chip) -> str | None:
        info = ChipInfo()
        try:
            self.call("dcmi_get_device_chip_info", ctypes.c_int(chip.card),
                      ctypes.c_int(chip.device), ctypes.byref(info))
        except DcmiError:
            return None
        kind, name = _text(info.chip_type), _text(info.chip_name)
        return f"{kind}{name}" if kind and not name.startswith(kind) else (name or None)

    def utilization_pct(self, chip: Chip) -> int:
        return self._int("dcmi_get_device_utilization_rate", chip, ctypes.c_int(UTIL_AICORE),
                         unsigned=True)

    def power_decawatts(self, chip: Chip) -> int:
        """Power in units of 0.1 W."""
        return self._int("dcmi_get_device_power_info", chip)

    def temperature_c(self, chip: Chip) -> int:
        return self._int("dcmi_get_device_temperature", chip)

    def frequency_mhz(self, chip: Chip) -> int:
        return self._int("dcmi_get_device_frequency", chip, ctypes.c_int(FREQ_AICORE_CURRENT),
                         unsigned=True)

    def hbm_mib(self, chip: Chip) -> tuple[int, int]:
        """(used, total) HBM in MB (MiB)."""
        info = HbmInfo()
        self.call("dcmi_get_device_hbm_info", ctypes.c_int(chip.card), ctypes.c_int(chip.device),
                  ctypes.byref(info))
        return int(info.memory_usage), int(info.memory_size)


def load_dcmi() -> Dcmi:
    return load_first_library("libdcmi.so", dcmi_library_paths(), Dcmi)


def card_power_carriers(chips: list[Chip]) -> dict[int, str]:
    """For chips that share a card with an earlier used chip: why their power is None.

    DCMI and npu-smi report the power of a multi-chip card (Atlas A3, 310P) once, on its
    first chip [unverified for DCMI]; counting it on two chips would add it twice.
    """
    first: dict[int, int] = {}
    reasons: dict[int, str] = {}
    for chip in chips:
        if chip.card in first:
            reasons[chip.logic_id] = (f"card {chip.card}'s power is counted once, on NPU "
                                      f"{first[chip.card]}")
        else:
            first[chip.card] = chip.logic_id
    return reasons


class DcmiAdapter(TelemetryAdapter):
    name = "dcmi"

    def __init__(self, device_indices: list[int], library: Dcmi | None = None) -> None:
        super().__init__(device_indices)
        self.dcmi = library or load_dcmi()
        try:
            self.dcmi.init()
            chips = self.dcmi.chips()
        except DcmiError as exc:
            raise AdapterUnavailable(f"dcmi: {exc}") from exc
        by_logic = {c.logic_id: c for c in chips}
        self.physical = physical_indices(device_indices, os.environ.get(VISIBLE_ENV))
        absent = [i for i in self.physical if i not in by_logic]
        if absent:
            raise AdapterUnavailable(f"DCMI lists logic ids {sorted(by_logic)}; no NPU {absent}")
        self.chips = [by_logic[i] for i in self.physical]
        self.shared_power = card_power_carriers(self.chips)
        self.share_power(self.physical, frozenset(self.shared_power))
        self.names = [self.dcmi.name(c) for c in self.chips]
        self.scope = {"util_pct": "AI Core utilisation (dcmi_get_device_utilization_rate)",
                      "power_w": "NPU card power (dcmi_get_device_power_info, 0.1 W steps)",
                      "temp_c": "chip temperature", "clock_hz": "AI Core frequency",
                      "mem_used_bytes": "HBM in use (dcmi_get_device_hbm_info)"}

    def _field(self, name: str, fn: Any) -> Any:
        try:
            return fn()
        except DcmiError as exc:
            return self.missing(name, f"dcmi: {exc}")

    def _read_one(self, chip: Chip) -> Sample:
        dc = self.dcmi
        util = self._field("util_pct", lambda: dc.utilization_pct(chip))
        if util is not None and not 0 <= util <= 100:
            util = self.missing("util_pct", f"DCMI reported utilisation {util} %, not 0-100")
        mem = self._field("mem_used_bytes", lambda: dc.hbm_mib(chip))
        if mem is not None and (mem[1] <= 0 or mem[0] > mem[1]):
            mem = self.missing("mem_used_bytes", f"DCMI reported HBM {mem[0]} of {mem[1]} MB")
        power = None
        if chip.logic_id in self.shared_power:
            self.missing("power_w", self.shared_power[chip.logic_id])
        else:
            # the card's power is reported on its first chip, whichever chip the run uses
            first = Chip(chip.card, 0, -1)
            power = self._field("power_w", lambda: dc.power_decawatts(first))
            if power is not None and power < 0:
                power = self.missing("power_w", f"DCMI reported a negative power {power / 10} W")
        temp = self._field("temp_c", lambda: dc.temperature_c(chip))
        if temp is not None and not -40 <= temp <= 150:
            temp = self.missing("temp_c", f"DCMI reported {temp} degC")
        freq = self._field("clock_hz", lambda: dc.frequency_mhz(chip))
        if freq is not None and freq <= 0:
            freq = self.missing("clock_hz", f"DCMI reported a frequency of {freq} MHz")
        used, total = mem if mem is not None else (None, None)
        return Sample(
            util_pct=float(util) if util is not None else None,
            mem_used_bytes=float(used * MIB) if used is not None else None,
            mem_total_bytes=float(total * MIB) if total is not None else None,
            power_w=power / 10.0 if power is not None else None,
            temp_c=float(temp) if temp is not None else None,
            clock_hz=freq * 1e6 if freq is not None else None,
        )

    def read(self) -> list[Sample]:
        samples = [self._read_one(c) for c in self.chips]
        self.missing("energy_j", "Ascend has no energy counter: energy is integrated power")
        self.missing("throttle", "DCMI's calls used here report no throttle state")
        return samples

    def describe(self) -> Info:
        return {"backend": self.name, "source": f"libdcmi ({self.dcmi.path}) through ctypes",
                "devices": self.names, "physical_indices": self.physical,
                "chips": [{"card": c.card, "device": c.device, "logic_id": c.logic_id}
                          for c in self.chips],
                "field_scope": self.scope}

    def close(self) -> None:
        """DCMI has no shutdown call (npu-exporter only unloads the library)."""


# -- npu-smi info ---------------------------------------------------------------------------
@dataclass
class NpuChip:
    """One chip of ``npu-smi info``: SI values (None where unreadable) and why each is None."""

    npu: int
    chip: int
    name: str | None
    health: str | None
    values: dict[str, float | None] = field(default_factory=dict)
    reasons: dict[str, str] = field(default_factory=dict)


_FIRST = re.compile(r"^(\d+)\s+(\S*\D\S*)$")  # "0     910B3": NPU id and a name
_SECOND = re.compile(r"^(\d+)(?:\s+(\d+))?$")  # "0" or "0     0" (chip, device / phy-id)
_PAIR = re.compile(r"\s*/\s*")
_NUM = re.compile(r"^-?\d+(?:\.\d+)?$")
ROW1_FIELDS = {"power(w)": "power_w", "temp(c)": "temp_c"}
ROW2_FIELDS = {"aicore(%)": "util_pct"}
ROW2_KEYS = ("util_pct", "mem_used_bytes", "mem_total_bytes")


def _cells(line: str) -> list[str] | None:
    text = line.strip()
    if not (text.startswith("|") and text.endswith("|")):
        return None
    return [c.strip() for c in text[1:-1].split("|")]


def _columns(cell: str) -> list[str]:
    return [c.lower() for c in cell.split()]


def _tokens(cell: str) -> list[str]:
    """``86.8  35  0    / 0`` -> ["86.8", "35", "0/0"]; pairs keep their slash."""
    return _PAIR.sub("/", cell).split()


def _number(token: str | None, what: str) -> tuple[float | None, str | None]:
    if token is None:
        return None, f"npu-smi printed no {what}"
    if token.lower() in NA_TOKENS:
        return None, f"npu-smi printed {token!r} for {what}"
    if _NUM.match(token):
        return float(token), None
    return None, f"npu-smi printed an unreadable {what} {token[:30]!r}"


def _pair(token: str | None, what: str) -> tuple[tuple[float, float] | None, str | None]:
    if token is None or "/" not in token:
        return None, f"npu-smi printed no {what} pair ({(token or '')[:30]!r})"
    used, total = token.split("/", 1)
    u, why_u = _number(used, what)
    t, why_t = _number(total, what)
    if u is None or t is None:
        return None, why_u or why_t
    if t <= 0 or u > t:
        return None, f"npu-smi printed {what} {used}/{total}"
    return (u, t), None


def npu_smi_version(text: str) -> str | None:
    match = re.search(r"npu-smi\s+(\S+)", text)
    return match.group(1) if match else None


@dataclass
class _Pending:
    npu: int
    name: str
    health: str | None
    row1: list[str]


def parse_npu_smi(text: str) -> list[NpuChip]:
    """Chips of ``npu-smi info``'s summary table, in table order. Never raises on any input.

    The header's two rows name the columns of the third cell; each chip is a first row
    (``NPU Name | Health | values``) followed by a second row (``Chip [Device] | Bus-Id |
    values``). Memory is the ``HBM-Usage(MB)`` column where there is one, else
    ``Memory-Usage(MB)``. The process table below the summary is ignored. A first row without
    its second keeps its power and temperature; its utilisation and memory are None.
    """
    head1: list[str] = []
    head2: list[str] = []
    chips: list[NpuChip] = []
    pending: _Pending | None = None

    def flush() -> None:
        nonlocal pending
        if pending is not None:
            seen = sum(1 for c in chips if c.npu == pending.npu)
            chip = _chip(pending, seen, None, head1, head2)
            chips.append(chip)
        pending = None

    for line in text.splitlines():
        cells = _cells(line)
        if cells is None:
            continue
        if len(cells) != 3:
            flush()
            continue
        first = cells[0].split()
        if first[:2] == ["NPU", "Name"]:
            head1 = _columns(cells[2])
            continue
        if first[:1] == ["Chip"] and cells[1].startswith("Bus-Id"):
            head2 = _columns(cells[2])
            continue
        bottom = _SECOND.match(cells[0])
        if pending is not None and bottom:
            chips.append(_chip(pending, int(bottom.group(1)), _tokens(cells[2]), head1, head2))
            pending = None
            continue
        flush()
        top = _FIRST.match(cells[0])
        if top:
            pending = _Pending(int(top.group(1)), top.group(2), cells[1] or None,
                               _tokens(cells[2]))
    flush()
    return chips


def _chip(first: _Pending, chip: int, row2: list[str] | None, head1: list[str],
          head2: list[str]) -> NpuChip:
    out = NpuChip(first.npu, chip, first.name, first.health)
    if not head1 or not head2:
        out.reasons.update(dict.fromkeys(("util_pct", "power_w", "temp_c", "mem_used_bytes",
                                          "mem_total_bytes"), "npu-smi printed no header"))
        return out
    for column, key in ROW1_FIELDS.items():
        value, why = _number(dict(zip(head1, first.row1, strict=False)).get(column), column)
        out.values[key] = value
        if why:
            out.reasons[key] = why
    if row2 is None:
        for key in ROW2_KEYS:
            out.values[key] = None
            out.reasons[key] = f"npu-smi printed no second row for NPU {first.npu}"
        return out
    cols2 = dict(zip(head2, row2, strict=False))
    for column, key in ROW2_FIELDS.items():
        value, why = _number(cols2.get(column), column)
        out.values[key] = value
        if why:
            out.reasons[key] = why
    util = out.values.get("util_pct")
    if util is not None and not 0 <= util <= 100:
        out.values["util_pct"] = None
        out.reasons["util_pct"] = f"npu-smi printed AICore {util:g} %, not 0-100"
    mem_col = "hbm-usage(mb)" if "hbm-usage(mb)" in head2 else "memory-usage(mb)"
    pair, why = _pair(cols2.get(mem_col), mem_col)
    out.values["mem_used_bytes"] = pair[0] * MIB if pair else None
    out.values["mem_total_bytes"] = pair[1] * MIB if pair else None
    if why:
        out.reasons["mem_used_bytes"] = out.reasons["mem_total_bytes"] = why
    return out


class NpuSmiAdapter(TelemetryAdapter):
    name = "npu-smi"

    def __init__(self, device_indices: list[int], timeout_s: float = 10.0) -> None:
        super().__init__(device_indices)
        self.timeout_s = timeout_s
        self.physical = physical_indices(device_indices, os.environ.get(VISIBLE_ENV))
        try:
            text = run_tool(["npu-smi", "info"], timeout_s)
        except ToolError as exc:
            raise AdapterUnavailable(str(exc)) from exc
        self.version = npu_smi_version(text)
        chips = parse_npu_smi(text)
        absent = [i for i in self.physical if i >= len(chips)]
        if absent:
            raise AdapterUnavailable(f"npu-smi's table lists {len(chips)} chip(s); no NPU "
                                     f"{absent}")
        self.ids = [(chips[i].npu, chips[i].chip) for i in self.physical]
        # npu-smi prints a card's power once: later chips of a used card count on the first
        first_of_card: set[int] = set()
        self.power_shared = set()
        for logical, (npu, _chip) in zip(self.device_indices, self.ids, strict=True):
            if npu in first_of_card:
                self.power_shared.add(logical)
            first_of_card.add(npu)
        self.names = [chips[i].name for i in self.physical]
        self.scope = {"util_pct": "npu-smi AICore(%)",
                      "power_w": "NPU card power (npu-smi Power(W); a card's second chip "
                                 "prints '-')",
                      "mem_used_bytes": "npu-smi HBM-Usage(MB) (Memory-Usage(MB) on tables "
                                        "without an HBM column)"}

    def read(self) -> list[Sample]:
        chips = {(c.npu, c.chip): c
                 for c in parse_npu_smi(run_tool(["npu-smi", "info"], self.timeout_s))}
        if not chips:
            raise ToolError("npu-smi printed no chip table")
        samples = []
        counted: dict[int, int] = {}  # NPU -> the used chip its card's power is counted on
        for npu, chip in self.ids:
            found = chips.get((npu, chip))
            if found is None:
                for key in ("util_pct", "mem_used_bytes", "mem_total_bytes", "power_w",
                            "temp_c"):
                    self.missing(key, f"npu-smi printed no row for NPU {npu} chip {chip}")
                samples.append(Sample())
                continue
            values = dict(found.values)
            reasons = dict(found.reasons)
            card = chips.get((npu, 0), found)  # npu-smi prints a card's power on chip 0
            reasons.pop("power_w", None)
            if npu in counted:
                values["power_w"] = None
                reasons["power_w"] = (f"NPU {npu}'s card power is counted once, on its chip "
                                      f"{counted[npu]}")
            else:
                counted[npu] = chip
                values["power_w"] = card.values.get("power_w")
                if values["power_w"] is None:
                    reasons["power_w"] = card.reasons.get("power_w", "npu-smi printed no power")
            for key, reason in reasons.items():
                self.missing(key, reason)
            samples.append(Sample(**values))
        self.missing("clock_hz", "npu-smi's summary table has no clock")
        self.missing("energy_j", "Ascend has no energy counter: energy is integrated power")
        self.missing("throttle", "npu-smi's summary table has no throttle state")
        return samples

    def describe(self) -> Info:
        return {"backend": self.name, "source": "npu-smi info (summary table)",
                "tool_version": self.version,
                "devices": self.names, "physical_indices": self.physical,
                "npu_chip": [list(i) for i in self.ids], "field_scope": self.scope}

