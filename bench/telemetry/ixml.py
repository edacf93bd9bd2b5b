"""Iluvatar CoreX GPUs (MR-V100, BI-V100, BI-V150): libixml, falling back to ``ixsmi``.

``libixml.so`` is NVML-compatible (same function names and units), so
:class:`IxmlAdapter` is the NVML adapter on a ctypes binding of libixml. Without the library,
:class:`IxsmiAdapter` asks ``ixsmi --query-gpu=... --format=csv,noheader,nounits`` once per
sample. CoreX 4.x names the power column ``gpu.power.draw``; CoreX 3.x calls it ``power.draw``:
the adapter tries the first and falls back to the second, and records which one answered.

A BI-V150 card appears as two GPUs and only the odd index of the pair reports the card's
board power (the vendor's sample: ``N/A`` on GPU 0, ``103W`` on GPU 1).
:func:`bench.telemetry.cards.attribute_card_power` gives each card's power to exactly one of
the GPUs a run uses, says in the result that it is the whole card's power, and never adds it
twice. The pairing of GPU 2k with 2k+1 follows the
vendor's sample output [unverified beyond it]; BI-V150S is not treated as a two-GPU card
[unverified]. No energy counter is known for CoreX [unverified]: energy is integrated power.
"""

from __future__ import annotations

import csv
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.documents import Info
from bench.telemetry.base import (
    MIB,
    AdapterUnavailable,
    Sample,
    TelemetryAdapter,
    ToolError,
    load_first_library,
    physical_indices,
    run_tool,
)
from bench.telemetry.cards import (
    BI_V150,
    PowerAttribution,
    attribute_card_power,
    card_pair,
    partner_indices,
)
from bench.telemetry.nvml import NvmlAdapter
from bench.telemetry.nvml_abi import NvmlLibrary

TWO_GPU_CARD = BI_V150.pattern
__all__ = ["IxmlAdapter", "IxsmiAdapter", "PowerAttribution", "attribute_card_power",
           "card_pair", "load_ixml", "parse_ixsmi_csv", "partner_indices"]
COREX_HOME = Path(os.environ.get("COREX_HOME", "/usr/local/corex"))


# -- libixml --------------------------------------------------------------------------------
def ixml_library_paths() -> list[str]:
    override = os.environ.get("BENCH_IXML_LIBRARY")
    if override:
        return [override]
    return [str(COREX_HOME / "lib64" / "libixml.so"), str(COREX_HOME / "lib" / "libixml.so"),
            "libixml.so"]


def load_ixml() -> NvmlLibrary:
    return load_first_library("libixml.so", ixml_library_paths(), NvmlLibrary)


class IxmlAdapter(NvmlAdapter):
    name = "ixml"
    source = "libixml (NVML-compatible API through ctypes)"

    def __init__(self, device_indices: list[int], library: Any = None) -> None:
        super().__init__(device_indices, pynvml=library or load_ixml())
        count = self.nvml.nvmlDeviceGetCount()
        self.names: dict[int, str | None] = dict(zip(self.physical, self.device_names(),
                                                     strict=True))
        self.partners: dict[int, Any] = {}
        for j in partner_indices(self.physical, self.names):
            if j < count:
                handle = self.nvml.nvmlDeviceGetHandleByIndex(j)
                self.partners[j] = handle
                self.names[j] = self._name(handle)
        self.two_gpu_cards = any(TWO_GPU_CARD.search(n or "") for n in self.names.values())
        self.attribution: PowerAttribution | None = None

    def _name(self, handle: Any) -> str | None:
        try:
            return self.nvml.nvmlDeviceGetName(handle)
        except self.nvml.NVMLError:
            return None

    def _power(self, handle: Any) -> float | None:
        try:
            return self.nvml.nvmlDeviceGetPowerUsage(handle) / 1000.0
        except self.nvml.NVMLError:
            return None

    def _power_mw(self, h: Any) -> float | None:
        if self.two_gpu_cards:  # read raw here; attribute_card_power gives the reasons
            power_w = self._power(h)
            return power_w * 1000.0 if power_w is not None else None
        return super()._power_mw(h)

    def read(self) -> list[Sample]:
        samples = [self._read_one(h) for h in self.handles]
        if not self.two_gpu_cards:
            return samples
        raw = {i: s.power_w for i, s in zip(self.physical, samples, strict=True)}
        raw.update({j: self._power(h) for j, h in self.partners.items()})
        self.attribution = attribute_card_power(self.physical, self.names, raw)
        self.share_power(self.physical, self.attribution.elsewhere)
        for i, sample in zip(self.physical, samples, strict=True):
            sample.power_w = self.attribution.power_w[i]
            if i in self.attribution.reasons:
                self.missing("power_w", self.attribution.reasons[i])
            if sample.energy_j is not None:
                sample.energy_j = None
                self.missing("energy_j", "a per-GPU energy counter cannot be attributed to a "
                                         "two-GPU BI-V150 card; energy is integrated power")
        self.scope["power_w"] = self.attribution.scope[self.physical[0]]
        return samples

    def describe(self) -> Info:
        out = super().describe()
        if self.attribution is not None:
            out["power_attribution"] = {str(i): s for i, s in self.attribution.scope.items()}
        return out


# -- ixsmi ----------------------------------------------------------------------------------
POWER_FIELDS = ("gpu.power.draw", "power.draw")  # CoreX 4.x, CoreX 3.x
NA_TOKENS = {"n/a", "[n/a]", "not supported", "[not supported]", "[unknown error]",
             "unknown error", "[insufficient permissions]", "err!", "[gpu is lost]"}
_NUMBER = re.compile(r"^(-?\d+(?:\.\d+)?)\s*(MiB|W|MHz|%|C)?$")

# query column -> (Sample field, factor to SI, negative allowed)
IXSMI_COLUMNS: dict[str, tuple[str, float, bool]] = {
    "memory.total": ("mem_total_bytes", MIB, False),
    "memory.used": ("mem_used_bytes", MIB, False),
    "utilization.gpu": ("util_pct", 1.0, False),
    "temperature.gpu": ("temp_c", 1.0, True),
    "power": ("power_w", 1.0, False),
    "clocks.current.sm": ("clock_hz", 1e6, False),
}


def query_fields(power_field: str) -> list[str]:
    return ["index", "name", "memory.total", "memory.used", "utilization.gpu",
            "temperature.gpu", power_field, "clocks.current.sm"]


def ixsmi_argv(power_field: str) -> list[str]:
    return ["ixsmi", f"--query-gpu={','.join(query_fields(power_field))}",
            "--format=csv,noheader,nounits"]


@dataclass
class IxsmiRow:
    """One GPU's line: SI values (None where unreadable) and why each None is None."""

    index: int
    name: str | None
    values: dict[str, float | None]
    reasons: dict[str, str]


def parse_value(token: str, factor: float, negative_ok: bool) -> tuple[float | None, str | None]:
    """One CSV cell to an SI value, or None with the reason (N/A, garbage, negative)."""
    text = token.strip()
    if text.lower() in NA_TOKENS or not text:
        return None, f"ixsmi printed {text!r}"
    match = _NUMBER.match(text)
    if not match:
        return None, f"ixsmi printed an unreadable value {text[:40]!r}"
    value = float(match.group(1))
    if value < 0 and not negative_ok:
        return None, f"ixsmi printed a negative value {text!r}"
    return value * factor, None


def parse_ixsmi_csv(text: str, power_field: str) -> tuple[dict[int, IxsmiRow], list[str]]:
    """Rows of ``ixsmi --query-gpu=<query_fields(power_field)> --format=csv,noheader,nounits``.

    Returns the rows by GPU index and the problems found (lines that could not be read at
    all: wrong column count, no integer index). Never raises on any input.
    """
    columns = query_fields(power_field)
    rows: dict[int, IxsmiRow] = {}
    problems: list[str] = []
    for n, line in enumerate(text.splitlines(), 1):
        try:
            cells = next(csv.reader([line], skipinitialspace=True), [])
        except csv.Error as exc:
            problems.append(f"line {n}: not CSV ({exc})")
            continue
        if not cells or all(not c.strip() for c in cells):
            continue
        if len(cells) != len(columns):
            problems.append(f"line {n}: {len(cells)} column(s), expected {len(columns)}")
            continue
        by_name = dict(zip(columns, cells, strict=True))
        index_text = by_name["index"].strip()
        if not index_text.isdigit():
            problems.append(f"line {n}: GPU index {index_text[:20]!r} is not an integer")
            continue
        values: dict[str, float | None] = {}
        reasons: dict[str, str] = {}
        for column, (name, factor, negative_ok) in IXSMI_COLUMNS.items():
            cell = by_name[power_field if column == "power" else column]
            value, reason = parse_value(cell, factor, negative_ok)
            values[name] = value
            if reason:
                reasons[name] = f"{reason} for {power_field if column == 'power' else column}"
        if values["util_pct"] is not None and values["util_pct"] > 100:
            reasons["util_pct"] = f"utilization.gpu {values['util_pct']:g} is above 100 %"
            values["util_pct"] = None
        name = by_name["name"].strip() or None
        rows[int(index_text)] = IxsmiRow(int(index_text), name, values, reasons)
    return rows, problems


class IxsmiAdapter(TelemetryAdapter):
    name = "ixsmi"

    def __init__(self, device_indices: list[int], timeout_s: float = 5.0) -> None:
        super().__init__(device_indices)
        self.timeout_s = timeout_s
        self.physical = physical_indices(device_indices, os.environ.get("CUDA_VISIBLE_DEVICES"))
        self.power_field, rows = self._probe()
        self.names = {i: r.name for i, r in rows.items()}
        missing = [i for i in self.physical if i not in rows]
        if missing:
            raise AdapterUnavailable(f"ixsmi lists no GPU {missing} (it lists {sorted(rows)})")
        self.attribution: PowerAttribution | None = None
        self.scope = {"util_pct": "ixsmi utilization.gpu",
                      "power_w": f"GPU board power (ixsmi {self.power_field})"}

    def _probe(self) -> tuple[str, dict[int, IxsmiRow]]:
        """Find which power column this CoreX version accepts (4.x first, then 3.x)."""
        failures = []
        for power_field in POWER_FIELDS:
            try:
                out = run_tool(ixsmi_argv(power_field), self.timeout_s)
            except ToolError as exc:
                failures.append(f"{power_field}: {exc}")
                continue
            if "not a valid field" in out.lower():
                failures.append(f"{power_field}: {out.strip().splitlines()[0]}")
                continue
            rows, problems = parse_ixsmi_csv(out, power_field)
            if rows:
                return power_field, rows
            failures.append(f"{power_field}: no readable line ({'; '.join(problems[:3])})")
        raise AdapterUnavailable("ixsmi query failed: " + " | ".join(failures))

    def read(self) -> list[Sample]:
        rows, problems = parse_ixsmi_csv(run_tool(ixsmi_argv(self.power_field),
                                                  self.timeout_s), self.power_field)
        if not rows:
            raise ToolError("ixsmi printed no readable line: " + "; ".join(problems[:3]))
        self.names.update({i: r.name for i, r in rows.items()})
        samples = []
        for i in self.physical:
            row = rows.get(i)
            if row is None:
                for name in ("util_pct", "mem_used_bytes", "mem_total_bytes", "power_w",
                             "temp_c", "clock_hz"):
                    self.missing(name, f"ixsmi printed no line for GPU {i}")
                samples.append(Sample())
                continue
            for name, reason in row.reasons.items():
                if not (name == "power_w" and self._two_gpu_card(i)):  # attributed below
                    self.missing(name, reason)
            samples.append(Sample(**row.values))
        self.missing("energy_j", "CoreX has no energy counter [unverified]: energy is "
                                 "integrated power")
        self.missing("throttle", "ixsmi's query reports no throttle state")
        if any(self._two_gpu_card(i) for i in self.physical):
            raw = {i: r.values["power_w"] for i, r in rows.items()}
            self.attribution = attribute_card_power(self.physical, self.names, raw)
            self.share_power(self.physical, self.attribution.elsewhere)
            for i, sample in zip(self.physical, samples, strict=True):
                sample.power_w = self.attribution.power_w[i]
                if i in self.attribution.reasons:
                    self.missing("power_w", self.attribution.reasons[i])
            self.scope["power_w"] = self.attribution.scope[self.physical[0]]
        return samples

    def _two_gpu_card(self, index: int) -> bool:
        return bool(TWO_GPU_CARD.search(self.names.get(index) or ""))

    def describe(self) -> Info:
        out = {"backend": self.name, "source": "ixsmi --query-gpu (CSV)",
               "power_field": self.power_field, "physical_indices": self.physical,
               "devices": [self.names.get(i) for i in self.physical], "field_scope": self.scope}
        if self.attribution is not None:
            out["power_attribution"] = {str(i): s for i, s in self.attribution.scope.items()}
        return out
