"""Plausibility checks, run on every result before any score (docs/report.md).

Schema validation proves a document is well-formed; these checks ask whether its numbers can
be true. Published evaluations have printed a 1.68 MW power reading and a throughput table
that was a copy of the temperature table: each check below exists to catch one such
mistake. They read the raw values (not trusting the schema's bounds), so they also work on
documents from an older or looser schema.

A failed check marks the metrics it concerns; the report shows the mark and the reason
wherever the value appears, and scores leave the value out.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from itertools import pairwise
from typing import Any

from bench.specs import per_device

ALL_METRICS = "*"

# Metrics computed from telemetry samples inside the timed window (results.py).
TELEMETRY_METRICS = (
    "device_util_pct", "device_mem_used_bytes_mean", "device_mem_used_bytes_peak",
    "device_mem_used_pct_mean", "device_mem_used_pct_peak", "power_w_mean", "temp_c_mean",
    "clock_hz_mean", "energy_j", "energy_counter_j", "items_per_j", "host_bound",
)
POWER_METRICS = ("power_w_mean", "energy_j", "items_per_j")


@dataclass(frozen=True)
class CheckSettings:
    """Tolerances of the checks (documented in docs/report.md)."""

    efficiency_rel_tol: float = 0.02
    # Mean power may exceed the spec sheet's board limit only by measurement error; single
    # samples may spike above it for a moment.
    power_mean_margin: float = 1.10
    power_sample_margin: float = 1.50
    # Without a spec sheet: no accelerator card, module or CPU package of this class draws
    # 2 kW. A reading above is a unit error (mW read as W and the like).
    power_ceiling_w: float = 2000.0
    memory_margin: float = 1.01
    temp_range_c: tuple[float, float] = (-40.0, 130.0)
    # Telemetry coverage: the share of the timed window not lost in gaps longer than
    # gap_factor x the requested sampling interval.
    min_coverage: float = 0.8
    gap_factor: float = 2.0
    peak_margin: float = 1.05
    # A peak estimated from the host's flags and clock (the cpu reference) is no bound: a VM
    # may report the nominal clock below turbo, a core may have one FMA unit or two. Only a
    # figure beyond this factor of it is impossible.
    estimate_margin: float = 2.0
    clock_skew_s: float = 1.0


@dataclass(frozen=True)
class Finding:
    """A failed check: which check, which metrics it marks, and why (one sentence)."""

    check: str
    metrics: tuple[str, ...]
    message: str
    point: int | None = None

    def marks(self, metric: str) -> bool:
        return ALL_METRICS in self.metrics or metric in self.metrics


@dataclass
class CheckOutcome:
    """One check on one result: whether it applied (and on what) and what failed."""

    check: str
    applied: bool
    findings: list[Finding] = field(default_factory=list)
    basis: str = ""


CHECK_TITLES = {
    "efficiency": "energy efficiency = throughput / power",
    "power_limit": "power within the device's limits",
    "utilisation_range": "utilisation within [0, 100] %",
    "memory_capacity": "memory within capacity",
    "temperature_range": "temperature physically possible",
    "timestamps": "timestamps ordered",
    "telemetry_coverage": "telemetry covers the timed window",
    "units": "units consistent with metric names",
    "peak_flops": "achieved FLOP/s within the device's peak",
    "identical_columns": "no metric table is a copy of another",
}


def _num(entry: Any) -> float | None:
    """The numeric value of a metric entry (or a bare number); None for null/bool/missing."""
    value = entry.get("value") if isinstance(entry, dict) else entry
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value)


def _metric_sets(doc: dict[str, Any]) -> Iterator[tuple[int | None, dict[str, Any]]]:
    """The result's metrics, then each grid point's (with its index)."""
    yield None, doc.get("metrics") or {}
    for i, point in enumerate(doc.get("points") or []):
        yield i, point.get("metrics") or {}


def _where(point: int | None) -> str:
    return "" if point is None else f" (grid point {point})"


def _series(doc: dict[str, Any], name: str) -> list[float]:
    out: list[float] = []
    for dev in (doc.get("telemetry") or {}).get("devices") or []:
        out += [float(v) for v in (dev.get("series") or {}).get(name) or []
                if isinstance(v, int | float) and not isinstance(v, bool)]
    return out


def _fmt(value: float) -> str:
    return f"{value:.4g}"


# -- energy efficiency ---------------------------------------------------------------------
def check_efficiency(doc: dict[str, Any], spec: dict[str, Any] | None,
                     s: CheckSettings) -> CheckOutcome:
    out = CheckOutcome("efficiency", False, basis=f"relative tolerance {s.efficiency_rel_tol:.0%}")
    for point, metrics in _metric_sets(doc):
        eff = _num(metrics.get("items_per_j"))
        thr = _num(metrics.get("throughput_items_per_s"))
        power = _num(metrics.get("power_w_mean"))
        if eff is None or thr is None:
            continue
        out.applied = True
        unit = (metrics.get("items_per_j") or {}).get("unit", "items/J")
        if power is None or power <= 0:
            out.findings.append(Finding(
                "efficiency", ("items_per_j",),
                f"items_per_j = {_fmt(eff)} {unit}{_where(point)} but there is no positive "
                "average power to divide the throughput by", point))
            continue
        expected = thr / power
        if not math.isclose(eff, expected, rel_tol=s.efficiency_rel_tol):
            off = abs(eff - expected) / expected if expected else math.inf
            out.findings.append(Finding(
                "efficiency", ("items_per_j",),
                f"items_per_j = {_fmt(eff)} {unit}{_where(point)} but throughput / power = "
                f"{_fmt(thr)} / {_fmt(power)} W = {_fmt(expected)} {unit} (off by {off:.0%}, "
                f"tolerance {s.efficiency_rel_tol:.0%})", point))
    return out


# -- power ---------------------------------------------------------------------------------
def check_power_limit(doc: dict[str, Any], spec: dict[str, Any] | None,
                      s: CheckSettings) -> CheckOutcome:
    limit = (spec or {}).get("power_limit_w")
    # An entry on several devices reports their summed power; each sample is one device's.
    devices = int((doc.get("placement") or {}).get("telemetry_devices") or 1)
    if limit:
        mean_max, sample_max = limit * s.power_mean_margin, limit * s.power_sample_margin
        basis = (f"{spec['name']} board power limit {limit:g} W (spec sheet {spec['id']}): "
                 f"mean up to {s.power_mean_margin:g}x, samples up to {s.power_sample_margin:g}x")
    else:
        mean_max = sample_max = s.power_ceiling_w
        basis = (f"no spec sheet with a power limit: absolute ceiling {s.power_ceiling_w:g} W "
                 "per device")
    if devices > 1:
        basis += f"; the entry's power sums {devices} devices"
    out = CheckOutcome("power_limit", False, basis=basis)
    source = f"the {spec['name']} limit of {limit:g} W" if limit else \
        f"the {s.power_ceiling_w:g} W ceiling for any single device"
    if devices > 1:
        source += f" x {devices} devices"
    for point, metrics in _metric_sets(doc):
        for name in ("power_w_mean", "idle_power_w"):
            value = _num(metrics.get(name))
            if value is None:
                continue
            out.applied = True
            if value < 0 or value > mean_max * devices:
                why = "is negative" if value < 0 else (
                    f"exceeds {source} (x{s.power_mean_margin:g} allowed)" if limit
                    else f"exceeds {source}")
                marked = POWER_METRICS if name == "power_w_mean" else (name,)
                out.findings.append(Finding(
                    "power_limit", marked,
                    f"{name} = {_fmt(value)} W{_where(point)} {why}: a unit or scale error "
                    "(mW read as W?)", point))
    samples = _series(doc, "power_w")
    if samples:
        out.applied = True
        top, low = max(samples), min(samples)
        if top > sample_max or low < 0:
            bad = top if top > sample_max else low
            out.findings.append(Finding(
                "power_limit", POWER_METRICS,
                f"a telemetry power sample reads {_fmt(bad)} W, outside 0 .. {_fmt(sample_max)} "
                f"W ({source})"))
    return out


# -- utilisation ---------------------------------------------------------------------------
def check_utilisation_range(doc: dict[str, Any], spec: dict[str, Any] | None,
                            s: CheckSettings) -> CheckOutcome:
    out = CheckOutcome("utilisation_range", False, basis="0 <= util <= 100 %")
    for point, metrics in _metric_sets(doc):
        value = _num(metrics.get("device_util_pct"))
        if value is None:
            continue
        out.applied = True
        if not 0 <= value <= 100:
            out.findings.append(Finding(
                "utilisation_range", ("device_util_pct", "host_bound"),
                f"device_util_pct = {_fmt(value)} %{_where(point)} is outside [0, 100]", point))
    samples = _series(doc, "util_pct")
    if samples:
        out.applied = True
        bad = [v for v in samples if not 0 <= v <= 100]
        if bad:
            out.findings.append(Finding(
                "utilisation_range", ("device_util_pct", "host_bound"),
                f"{len(bad)} utilisation sample(s) outside [0, 100] %, e.g. {_fmt(bad[0])} %"))
    return out


# -- memory --------------------------------------------------------------------------------
def memory_capacity_bytes(doc: dict[str, Any],
                          spec: dict[str, Any] | None) -> tuple[float | None, str]:
    """The device's memory: spec sheet (per framework device), else what the backend reported,
    else telemetry."""
    spec = per_device(spec)
    if spec and spec.get("memory_bytes"):
        return float(spec["memory_bytes"]), f"spec sheet {spec['id']}"
    dev = (doc.get("provenance") or {}).get("device") or {}
    if _num(dev.get("memory_total_bytes")):
        return float(dev["memory_total_bytes"]), "memory_total_bytes reported by the backend"
    totals = _series(doc, "mem_total_bytes")
    if totals:
        return max(totals), "mem_total_bytes in the telemetry"
    return None, "no memory capacity known"


def check_memory_capacity(doc: dict[str, Any], spec: dict[str, Any] | None,
                          s: CheckSettings) -> CheckOutcome:
    capacity, source = memory_capacity_bytes(doc, spec)
    out = CheckOutcome("memory_capacity", False,
                       basis=f"capacity {capacity / 2**30:.4g} GiB ({source})" if capacity
                       else source)
    byte_metrics = ("device_mem_used_bytes_mean", "device_mem_used_bytes_peak",
                    "framework_mem_peak_bytes")
    for point, metrics in _metric_sets(doc):
        for name in ("device_mem_used_pct_mean", "device_mem_used_pct_peak"):
            value = _num(metrics.get(name))
            if value is None:
                continue
            out.applied = True
            if not 0 <= value <= 100 * s.memory_margin:
                out.findings.append(Finding(
                    "memory_capacity", (name,),
                    f"{name} = {_fmt(value)} %{_where(point)} is outside [0, 100]", point))
        if capacity is None:
            continue
        for name in byte_metrics:
            value = _num(metrics.get(name))
            if value is None:
                continue
            out.applied = True
            if value < 0 or value > capacity * s.memory_margin:
                out.findings.append(Finding(
                    "memory_capacity", (name,),
                    f"{name} = {value / 2**30:.4g} GiB{_where(point)} is more than the device "
                    f"has ({capacity / 2**30:.4g} GiB, {source})", point))
    used = _series(doc, "mem_used_bytes")
    if capacity is not None and used:
        out.applied = True
        if max(used) > capacity * s.memory_margin:
            out.findings.append(Finding(
                "memory_capacity", ("device_mem_used_bytes_mean", "device_mem_used_bytes_peak",
                                    "device_mem_used_pct_mean", "device_mem_used_pct_peak"),
                f"a telemetry sample shows {max(used) / 2**30:.4g} GiB used of "
                f"{capacity / 2**30:.4g} GiB ({source})"))
    return out


# -- temperature ---------------------------------------------------------------------------
def check_temperature_range(doc: dict[str, Any], spec: dict[str, Any] | None,
                            s: CheckSettings) -> CheckOutcome:
    low, high = s.temp_range_c
    out = CheckOutcome("temperature_range", False, basis=f"{low:g} .. {high:g} degC")
    values = [(p, _num(m.get("temp_c_mean"))) for p, m in _metric_sets(doc)]
    for point, value in values:
        if value is None:
            continue
        out.applied = True
        if not low <= value <= high:
            out.findings.append(Finding(
                "temperature_range", ("temp_c_mean",),
                f"temp_c_mean = {_fmt(value)} degC{_where(point)} is outside {low:g} .. "
                f"{high:g} degC (Fahrenheit, kelvin or millidegrees?)", point))
    samples = _series(doc, "temp_c")
    if samples:
        out.applied = True
        bad = [v for v in samples if not low <= v <= high]
        if bad:
            out.findings.append(Finding(
                "temperature_range", ("temp_c_mean",),
                f"{len(bad)} temperature sample(s) outside {low:g} .. {high:g} degC, e.g. "
                f"{_fmt(bad[0])}"))
    return out


# -- timestamps ----------------------------------------------------------------------------
def _epoch(text: Any) -> float | None:
    try:
        return datetime.fromisoformat(str(text)).timestamp()
    except ValueError:
        return None


def check_timestamps(doc: dict[str, Any], spec: dict[str, Any] | None,
                     s: CheckSettings) -> CheckOutcome:
    out = CheckOutcome("timestamps", True,
                       basis="start <= end; telemetry and windows in order, inside the run")
    problems: list[str] = []
    started, ended = _epoch(doc.get("started_at")), _epoch(doc.get("ended_at"))
    if started is None or ended is None:
        problems.append("started_at/ended_at are not ISO 8601 date-times")
    elif ended < started:
        problems.append(f"ended_at {doc['ended_at']} is before started_at {doc['started_at']}")
    tel = doc.get("telemetry") or {}
    for name in ("t_s", "t_wall"):
        times = tel.get(name) or []
        back = next((i for i, (a, b) in enumerate(pairwise(times)) if b < a), None)
        if back is not None:
            problems.append(f"telemetry.{name} goes backwards at sample {back + 1} "
                            f"({_fmt(times[back])} -> {_fmt(times[back + 1])})")
    previous_end: float | None = None
    for rep in doc.get("repeats") or []:
        w = rep.get("window")
        if not w:
            continue
        i = rep.get("index")
        start, end = _num(w.get("start_s")), _num(w.get("end_s"))
        if start is None or end is None or end <= start:
            problems.append(f"repeat {i}: window ends ({w.get('end_s')}) before it starts "
                            f"({w.get('start_s')})")
            continue
        duration = _num(w.get("duration_s"))
        if duration is not None and not math.isclose(duration, end - start, rel_tol=0.01,
                                                     abs_tol=1e-3):
            problems.append(f"repeat {i}: duration_s {_fmt(duration)} differs from end - start "
                            f"= {_fmt(end - start)}")
        if previous_end is not None and start < previous_end:
            problems.append(f"repeat {i}: window starts before the previous repeat's ended")
        previous_end = end
        wall0, wall1 = _num(w.get("start_wall")), _num(w.get("end_wall"))
        if started is not None and ended is not None and wall0 is not None and \
                wall1 is not None and (wall0 < started - s.clock_skew_s
                                       or wall1 > ended + s.clock_skew_s):
            problems.append(f"repeat {i}: the timed window lies outside started_at .. ended_at")
    if problems:
        out.findings.append(Finding("timestamps", (ALL_METRICS,), "; ".join(problems)))
    return out


# -- telemetry coverage --------------------------------------------------------------------
def window_coverage(t_s: Iterable[float], start_s: float, end_s: float,
                    interval_s: float, gap_factor: float = 2.0) -> float:
    """Share of a window not lost in sampling gaps longer than ``gap_factor`` x the interval.

    The window's edges count as samples, so a window shorter than one allowed gap is fully
    covered (its telemetry metrics then say themselves that there were no samples).
    """
    duration = end_s - start_s
    if duration <= 0:
        return 0.0
    edges = [start_s, *sorted(t for t in t_s if start_s <= t <= end_s), end_s]
    allowed = gap_factor * interval_s
    lost = math.fsum(max(0.0, b - a - allowed) for a, b in pairwise(edges))
    return max(0.0, 1.0 - lost / duration)


def check_telemetry_coverage(doc: dict[str, Any], spec: dict[str, Any] | None,
                             s: CheckSettings) -> CheckOutcome:
    tel = doc.get("telemetry") or {}
    interval = _num((tel.get("interval") or {}).get("requested_s"))
    out = CheckOutcome("telemetry_coverage", False,
                       basis=f"at least {s.min_coverage:.0%} of each timed window without a "
                             f"gap over {s.gap_factor:g}x the sampling interval")
    if not interval:
        return out
    t_s = [float(t) for t in tel.get("t_s") or []]
    windows = [(None, r.get("index"), r["window"]) for r in doc.get("repeats") or []
               if r.get("status") == "ok" and r.get("window")]
    for i, point in enumerate(doc.get("points") or []):
        windows += [(i, None, w) for w in point.get("windows") or []]
    for point, rep, w in windows:
        start, end = _num(w.get("start_s")), _num(w.get("end_s"))
        if start is None or end is None or end <= start:
            continue
        out.applied = True
        cov = window_coverage(t_s, start, end, interval, s.gap_factor)
        if cov < s.min_coverage:
            where = f"repeat {rep}" if point is None else f"grid point {point}"
            out.findings.append(Finding(
                "telemetry_coverage", TELEMETRY_METRICS,
                f"{where}: telemetry covers {cov:.0%} of the {end - start:.3g} s timed window "
                f"(samples every {interval:g} s requested, gaps over {s.gap_factor:g}x lost)",
                point))
    return out


# -- units ---------------------------------------------------------------------------------
UNIT_RULES: tuple[tuple[str, Callable[[str], bool], str], ...] = (
    (r"_per_s(_|$)", lambda u: u.endswith("/s"), "a rate (unit ending in /s)"),
    (r"_per_j$", lambda u: u.endswith("/J"), "per joule (unit ending in /J)"),
    (r"_pct(_|$)", lambda u: u == "%", "%"),
    (r"_bytes(_|$)", lambda u: u == "B", "B"),
    (r"_w(_|$)", lambda u: u == "W", "W"),
    (r"_j$", lambda u: u == "J", "J"),
    (r"_c(_|$)", lambda u: u == "degC", "degC"),
    (r"_hz(_|$)", lambda u: u == "Hz", "Hz"),
    (r"_s$", lambda u: u == "s", "s"),
)


def expected_unit(name: str, item_unit: str | None = None) -> tuple[Callable[[str], bool],
                                                                       str] | None:
    """What unit a metric's name promises (names carry units, CONVENTIONS.md)."""
    if name == "throughput_items_per_s" and item_unit:
        return (lambda u: u == f"{item_unit}/s"), f"{item_unit}/s"
    if name == "items_per_j" and item_unit:
        return (lambda u: u == f"{item_unit}/J"), f"{item_unit}/J"
    if name.endswith("_per_item_j"):
        unit = f"J/{item_unit}" if item_unit else "J/<item>"
        return (lambda u: u == unit if item_unit else u.startswith("J/")), unit
    for pattern, ok, text in UNIT_RULES:
        if re.search(pattern, name):
            return ok, text
    return None


def check_units(doc: dict[str, Any], spec: dict[str, Any] | None,
                s: CheckSettings) -> CheckOutcome:
    item_unit = (doc.get("workload") or {}).get("item_unit")
    out = CheckOutcome("units", False, basis="unit agrees with the metric's name")
    for point, metrics in _metric_sets(doc):
        for name, entry in metrics.items():
            if not isinstance(entry, dict) or "unit" not in entry:
                continue
            rule = expected_unit(name, item_unit)
            if rule is None:
                continue
            out.applied = True
            ok, text = rule
            if not ok(str(entry["unit"])):
                out.findings.append(Finding(
                    "units", (name,),
                    f"{name}{_where(point)} has unit {entry['unit']!r}; its name says {text}",
                    point))
    return out


# -- peak FLOP/s ---------------------------------------------------------------------------
def check_peak_flops(doc: dict[str, Any], spec: dict[str, Any] | None,
                     s: CheckSettings) -> CheckOutcome:
    spec = per_device(spec)
    peaks = (spec or {}).get("peak_flops") or {}
    estimated = bool((spec or {}).get("estimate"))
    margin = s.estimate_margin if estimated else s.peak_margin
    out = CheckOutcome("peak_flops", False,
                       basis=(f"{spec['name']} peaks (" + ("estimated from the host's flags, "
                              "cores and clock" if estimated else f"spec sheet {spec['id']}")
                              + f"), x{margin:g} allowed") if spec else "no spec sheet")
    default_precision = (doc.get("workload") or {}).get("precision_used")
    points = doc.get("points") or []
    for point, metrics in _metric_sets(doc):
        params = points[point].get("params", {}) if point is not None else {}
        precision = params.get("precision") or params.get("dtype") or default_precision
        pct = _num(metrics.get("pct_of_peak"))
        if pct is not None:
            out.applied = True
            if not 0 <= pct <= 100 * margin:
                out.findings.append(Finding(
                    "peak_flops", ("pct_of_peak", "flop_per_s"),
                    f"pct_of_peak = {_fmt(pct)} %{_where(point)}: more than the device's peak",
                    point))
        value = _num(metrics.get("flop_per_s"))
        peak = peaks.get(precision)
        if value is None or not peak:
            continue
        out.applied = True
        # a multi-device job's FLOP/s (training over N ranks) is bounded by N peaks
        devices = _num(((doc.get("workload") or {}).get("info") or {}).get("devices")) or 1
        devices = int(devices) if 1 <= devices <= 1e6 else 1
        if value > peak * devices * margin:
            of = f"{devices} x " if devices > 1 else ""
            out.findings.append(Finding(
                "peak_flops", ("flop_per_s", "pct_of_peak"),
                f"flop_per_s = {value / 1e12:.4g} TFLOP/s{_where(point)} exceeds {of}"
                + (f"{margin:g} x " if estimated else "") + f"the {spec['name']} {precision} "
                f"peak of {peak / 1e12:.4g} TFLOP/s" + (" (an estimate)" if estimated else ""),
                point))
    return out


CHECKS: tuple[Callable[[dict[str, Any], dict[str, Any] | None, CheckSettings],
                       CheckOutcome], ...] = (
    check_efficiency, check_power_limit, check_utilisation_range, check_memory_capacity,
    check_temperature_range, check_timestamps, check_telemetry_coverage, check_units,
    check_peak_flops,
)


def run_checks(doc: dict[str, Any], spec: dict[str, Any] | None,
               settings: CheckSettings | None = None) -> list[CheckOutcome]:
    """Every per-result check on one result document."""
    settings = settings or CheckSettings()
    return [check(doc, spec, settings) for check in CHECKS]


# -- across results: identical columns ------------------------------------------------------
@dataclass(frozen=True)
class ColumnCopy:
    metrics: tuple[str, str]
    cells: tuple[tuple[str, str], ...]  # (device, workload) pairs with identical values
    message: str


def identical_columns(table: dict[str, dict[tuple[str, str], tuple[float, str]]],
                      min_cells: int = 3, rel_tol: float = 1e-9) -> list[ColumnCopy]:
    """Pairs of metrics with different units whose values agree in every common cell.

    ``table[metric][(device, workload)] = (value, unit)``. Two tables in different units
    cannot both be right if every number is the same (the published throughput table that
    was a copy of the temperature table). Needs ``min_cells`` common cells with at least two
    distinct values, so a couple of zeros cannot trip it.
    """
    found = []
    names = sorted(table)
    for i, a in enumerate(names):
        for b in names[i + 1:]:
            common = sorted(set(table[a]) & set(table[b]))
            if len(common) < min_cells:
                continue
            pairs = [(table[a][c], table[b][c]) for c in common]
            if any(ua == ub for (_, ua), (_, ub) in pairs):
                continue
            values = [va for (va, _), _ in pairs]
            if len(set(values)) < 2:
                continue
            if all(math.isclose(va, vb, rel_tol=rel_tol, abs_tol=0.0)
                   for (va, _), (vb, _) in pairs):
                unit_a, unit_b = pairs[0][0][1], pairs[0][1][1]
                found.append(ColumnCopy(
                    (a, b), tuple(common),
                    f"{a} ({unit_a}) and {b} ({unit_b}) have the same value in all "
                    f"{len(common)} cells they share: one table is a copy of the other"))
    return found
