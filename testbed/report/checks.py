"""Plausibility checks, run on every result before any score (docs/report.md).

Schema validation proves a document is well-formed; these checks ask whether its numbers can
be true. Published evaluations have printed a 1.68 MW power reading and a throughput table
that was a copy of the temperature table: each check below exists to catch one such
mistake. They read the raw values (not trusting the schema's bounds), so they also work on
documents from an older or looser schema.

A failed check marks the metrics it concerns; the report shows the mark and the reason
wherever the value appears, and scores leave the value out. A value derived from a marked one
(items/J from throughput and power, FLOP/s from throughput) shares its fate: it is marked too.

Results of kind ``published`` (a table imported by ``invoke import``) go through the same
checks, except those about a timed window and telemetry, which a printed table does not have.
They judge what the publication printed: a check that needs a fact the table does not print
(``workload.unknowns``: a batch size, a configuration) does not apply to that row, and says
why; a fact the user assumed in its place (``assumptions``, ``invoke import --assume``) is
named in every message of a check that used it.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from itertools import pairwise
from typing import Any

from bench.documents import AnyMetrics, AnyResultDoc, DeviceSpec
from bench.metrics import catalogue, spec_for
from bench.specs import peak_for, per_device

ALL_METRICS = "*"

# Metrics computed from telemetry samples inside the timed window, what a metric is computed
# from (where the document says it was computed: a ``definition``, or the published cell's
# status ``derived``), and which are always the throughput in other units (tokens/s,
# sequences/s): the catalogue's source, derived_from and always_derived (bench/metrics.yaml).
TELEMETRY_METRICS = catalogue().with_source("telemetry")
THROUGHPUT = "throughput_items_per_s"
DERIVED_FROM: dict[str, tuple[str, ...]] = {
    name: spec.derived_from for name, spec in catalogue().names.items() if spec.derived_from}
ALWAYS_DERIVED = tuple(name for name, spec in catalogue().names.items() if spec.always_derived)
PUBLISHED_KIND = "bench.published"


def is_published(doc: AnyResultDoc) -> bool:
    """A published table's row (``invoke import``), not a measurement of this test-bed."""
    return doc.get("kind") == PUBLISHED_KIND


def is_derived(name: str, entry: Any) -> bool:
    """Whether a metric entry was computed from other metrics of the same result."""
    if name in ALWAYS_DERIVED:
        return True
    return isinstance(entry, dict) and ("definition" in entry or entry.get("status") == "derived")


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
    # The same margin bounds throughput x FLOPs per item and x bytes per item.
    bandwidth_margin: float = 1.05
    # A peak estimated from the host's flags and clock (the cpu reference) is no bound: a VM
    # may report the nominal clock below turbo, a core may have one FMA unit or two. Only a
    # figure beyond this factor of it is impossible.
    estimate_margin: float = 2.0
    clock_skew_s: float = 1.0
    # Inference: throughput vs batch x streams / mean latency per batch.
    latency_rel_tol: float = 0.25
    # Cross-device: a value more than this factor beyond what the spec sheets' peaks predict
    # relative to the other devices is an outlier (a warning, kept out of others' scales).
    outlier_factor: float = 10.0


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
    """One check on one result: whether it applied (and on what) and what failed; where it
    did not apply for want of a fact the result lacks, why (``not_applicable``)."""

    check: str
    applied: bool
    findings: list[Finding] = field(default_factory=list)
    basis: str = ""
    not_applicable: str = ""


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
    "throughput_bound": "throughput x work per item within the device's peak and bandwidth",
    "latency_throughput": "throughput = batch x streams / mean latency",
    "identical_columns": "no metric table is a copy of another",
    "outliers": "no device far beyond what the spec sheets predict against the others",
}


def _num(entry: Any) -> float | None:
    """The numeric value of a metric entry (or a bare number); None for null/bool/missing."""
    value = entry.get("value") if isinstance(entry, dict) else entry
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value)


def _metric_sets(doc: AnyResultDoc) -> Iterator[tuple[int | None, AnyMetrics]]:
    """The result's metrics, then each grid point's (with its index)."""
    yield None, doc.get("metrics") or {}
    for i, point in enumerate(doc.get("points") or []):
        yield i, point.get("metrics") or {}


def _where(point: int | None) -> str:
    return "" if point is None else f" (grid point {point})"


def _series(doc: AnyResultDoc, name: str) -> list[float]:
    out: list[float] = []
    for dev in (doc.get("telemetry") or {}).get("devices") or []:
        out += [float(v) for v in (dev.get("series") or {}).get(name) or []
                if isinstance(v, int | float) and not isinstance(v, bool)]
    return out


def _off(value: float, expected: float) -> str:
    """How far ``value`` is from ``expected``: a percentage, or a factor when it is large."""
    if expected == 0:
        return "an infinite factor"
    off = abs(value - expected) / abs(expected)
    if off < 9:
        return f"{off:.0%}"
    return f"a factor of {max(value, expected) / min(value, expected):.3g}" \
        if value > 0 and expected > 0 else f"{off:.3g}x"


def _fmt(value: float) -> str:
    return f"{value:.4g}"


def assumed(doc: AnyResultDoc, *facts: str) -> str:
    """`` (assumed, not printed: --assume config=full)`` where a published row's ``facts``
    rest on what the user assumed (``invoke import --assume``); "" otherwise."""
    given = [a.get("given", "?") for a in doc.get("assumptions") or []
             if isinstance(a, dict) and any(f in (a.get("covers") or ()) for f in facts)]
    return f" (assumed, not printed: {'; '.join(dict.fromkeys(given))})" if given else ""


def unknown(doc: AnyResultDoc, fact: str) -> str | None:
    """Why a published row does not know ``fact`` (``workload.unknowns``); None if it does."""
    if not is_published(doc):
        return None
    why = ((doc.get("workload") or {}).get("unknowns") or {}).get(fact)
    return str(why) if why else None


# -- bounds shared by several checks -------------------------------------------------------
def devices_of(doc: AnyResultDoc) -> int:
    """How many devices a result's throughput and power were measured on.

    A published row says (``device.count``: "8x A100"); a measurement runs on one device
    unless its workload spans several (what it resolved: ``info.world_size`` or
    ``info.devices``; else ``params.nproc`` x ``params.nnodes``, where ``nproc`` may be
    "auto"): the count in the provenance is what the machine has, not what the workload used.
    """
    def count_of(value: Any) -> int | None:
        return value if isinstance(value, int) and not isinstance(value, bool) else None

    if is_published(doc):
        count = count_of((doc.get("device") or {}).get("count"))
    else:
        wl = doc.get("workload") or {}
        info, params = wl.get("info") or {}, wl.get("params") or {}
        count = count_of(info.get("world_size")) or count_of(info.get("devices"))
        # The devices the entry's telemetry summed (every device its ranks used, on every
        # node): its power is their sum.
        count = count or count_of((doc.get("placement") or {}).get("telemetry_devices"))
        if count is None and count_of(params.get("nproc")):
            count = params["nproc"] * (count_of(params.get("nnodes")) or 1)
    return count if count is not None and count > 1 else 1


def precision_of(doc: AnyResultDoc, point: int | None) -> str | None:
    params = (doc.get("points") or [])[point].get("params", {}) if point is not None else {}
    return params.get("precision") or params.get("dtype") or \
        (doc.get("workload") or {}).get("precision_used")


def _flop_hint(spec: DeviceSpec | None, precision: str | None, needed: float) -> str:
    """Why an fp32 figure above the fp32 peak may still be a real (but not fp32) run."""
    tf32 = ((per_device(spec) or {}).get("peak_flops") or {}).get("tf32")
    if precision == "fp32" and tf32 and needed <= tf32:
        return (" (within the TF32 tensor-core peak: either the figure is wrong or the run "
                "was not fp32, e.g. cuDNN's default TF32 convolutions)")
    return ""


@dataclass(frozen=True)
class Bound:
    """Whether a throughput passes its physical bound: True, False, or None (no bound);
    ``assumed``: the assumptions the work per item rests on ("" when printed or counted)."""

    ok: bool | None
    text: str
    assumed: str = ""


def throughput_bound(metrics: AnyMetrics, doc: AnyResultDoc,
                     spec: DeviceSpec | None, s: CheckSettings,
                     point: int | None = None) -> Bound:
    """throughput x FLOPs per item against the peak, and x bytes per item against the memory
    bandwidth, both x the devices the throughput was measured on."""
    thr = _num(metrics.get(THROUGHPUT))
    fpi, bpi = _num(metrics.get("flop_per_item")), _num(metrics.get("bytes_per_item"))
    if thr is None or not (fpi or bpi):
        if thr is not None and point is None and unknown(doc, "config"):
            return Bound(None, f"FLOPs per item unknown: the configuration is "
                               f"{unknown(doc, 'config')} (a config or flop_per_item column, "
                               "or --assume config=NAME, gives it)")
        if thr is not None and point is None and is_published(doc):
            return Bound(None, "FLOPs per item unknown: not a workload of this test-bed, and "
                               "the table prints no flop_per_item")
        return Bound(None, "no throughput with FLOPs or bytes per item")
    if spec is None:
        return Bound(None, "no spec sheet")
    note = assumed(doc, *(["flop_per_item"] if fpi else []),
                   *(["bytes_per_item"] if bpi else [])) if point is None else ""
    n = devices_of(doc)
    times = f" x {n} devices" if n > 1 else ""
    unit = (metrics.get(THROUGHPUT) or {}).get("unit", "items/s")
    verdict: Bound = Bound(None, "no peak or bandwidth on the spec sheet")
    precision = precision_of(doc, point)
    peak, which = peak_for(spec, precision)
    # an estimated sheet (the cpu reference's) bounds only beyond its wider margin
    estimated = bool(spec.get("estimate"))
    peak_margin = s.estimate_margin if estimated else s.peak_margin
    if estimated:
        which += " (an estimate)"
    if fpi and peak:
        need, limit = thr * fpi, peak * n * peak_margin
        if need > limit:
            return Bound(False, (
                f"{THROUGHPUT} = {_fmt(thr)} {unit}{_where(point)} x {_fmt(fpi)} FLOP per item"
                f"{assumed(doc, 'flop_per_item') if point is None else ''} "
                f"= {need / 1e12:.4g} TFLOP/s, more than the {which} of {peak / 1e12:.4g} "
                f"TFLOP/s{times} (x{peak_margin:g} allowed)"
                + _flop_hint(spec, precision, need / n)), note)
        verdict = Bound(True, f"{need / (peak * n):.1%} of the {which}{times}", note)
    bandwidth = (per_device(spec) or {}).get("memory_bandwidth_bytes_per_s")
    if bpi and bandwidth:
        bw_margin = s.estimate_margin if estimated else s.bandwidth_margin
        need, limit = thr * bpi, bandwidth * n * bw_margin
        if need > limit:
            return Bound(False, (
                f"{THROUGHPUT} = {_fmt(thr)} {unit}{_where(point)} x {_fmt(bpi)} bytes per "
                f"item{assumed(doc, 'bytes_per_item') if point is None else ''} = "
                f"{need / 1e9:.4g} GB/s, more than the {spec['name']} memory bandwidth "
                f"of {bandwidth / 1e9:.4g} GB/s{times} (x{bw_margin:g} allowed)"), note)
        verdict = Bound(True, "; ".join(t for t in (
            verdict.text if verdict.ok else "",
            f"{need / (bandwidth * n):.1%} of the memory bandwidth{times}") if t), note)
    return verdict


def power_bound(value: float | None, doc: AnyResultDoc, spec: DeviceSpec | None,
                s: CheckSettings) -> bool | None:
    """Whether an average power is physically possible (None: no reading)."""
    if value is None:
        return None
    limit = (spec or {}).get("power_limit_w")
    top = limit * s.power_mean_margin if limit else s.power_ceiling_w
    return 0 <= value <= top * devices_of(doc)


# -- physical bound of the throughput --------------------------------------------------------
def check_throughput_bound(doc: AnyResultDoc, spec: DeviceSpec | None,
                           s: CheckSettings) -> CheckOutcome:
    estimated = bool((spec or {}).get("estimate"))
    basis = (f"{spec['name']} peak FLOP/s and memory bandwidth ("
             + ("estimated from the host's flags, cores and clock" if estimated
                else f"spec sheet {spec['id']}")
             + f"), x{s.estimate_margin if estimated else s.peak_margin:g} allowed"
             if spec else "no spec sheet")
    out = CheckOutcome("throughput_bound", False, basis=basis)
    for point, metrics in _metric_sets(doc):
        bound = throughput_bound(metrics, doc, spec, s, point)
        if bound.ok is None:
            if point is None and bound.text.startswith("FLOPs per item unknown"):
                out.not_applicable = bound.text
            continue
        out.applied = True
        if bound.ok is False:
            out.findings.append(Finding("throughput_bound", (THROUGHPUT,),
                                        f"{bound.text}: no device of this model could do it",
                                        point))
    return out


# -- energy efficiency ---------------------------------------------------------------------
def _efficiency_culprit(eff: float, thr: float, power: float, thr_ok: bool | None,
                        power_ok: bool | None) -> tuple[tuple[str, ...], str]:
    """Which of items/J, throughput and power disagrees with the other two and the bounds."""
    implied_power, implied_thr = thr / eff if eff else math.inf, eff * power
    if power_ok is False and thr_ok is not False:
        return ("power_w_mean",), (
            f"the power is impossible and items/J agrees with the throughput at a power of "
            f"{_fmt(implied_power)} W: the power reading is the wrong one")
    if thr_ok is False and power_ok is not False:
        return (THROUGHPUT,), (
            f"the throughput fails its own bound and items/J agrees with the power at a "
            f"throughput of {_fmt(implied_thr)}: the throughput is the wrong one")
    if thr_ok is False and power_ok is False:
        return ("items_per_j", THROUGHPUT, "power_w_mean"), (
            "throughput and power both fail their own bounds: none of the three can be trusted")
    return ("items_per_j",), (
        "throughput and power pass their own bounds, so items/J is the odd one out"
        if thr_ok and power_ok else "items/J is the value computed from the other two")


def check_efficiency(doc: AnyResultDoc, spec: DeviceSpec | None,
                     s: CheckSettings) -> CheckOutcome:
    out = CheckOutcome("efficiency", False, basis=f"relative tolerance {s.efficiency_rel_tol:.0%}")
    for point, metrics in _metric_sets(doc):
        eff = _num(metrics.get("items_per_j"))
        thr = _num(metrics.get(THROUGHPUT))
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
        bound = throughput_bound(metrics, doc, spec, s, point)
        thr_ok = bound.ok
        # the throughput's bound rests on FLOPs per item of an assumed config: say so
        note = bound.assumed if thr_ok is not None else ""
        power_ok = power_bound(power, doc, spec, s)
        if not math.isclose(eff, expected, rel_tol=s.efficiency_rel_tol):
            marked, why = _efficiency_culprit(eff, thr, power, thr_ok, power_ok)
            out.findings.append(Finding(
                "efficiency", marked,
                f"items_per_j = {_fmt(eff)} {unit}{_where(point)} but throughput / power = "
                f"{_fmt(thr)} / {_fmt(power)} W = {_fmt(expected)} {unit} (off by "
                f"{_off(eff, expected)}, tolerance {s.efficiency_rel_tol:.0%}): {why}{note}",
                point))
        elif thr_ok is False and power_ok is not False and \
                not is_derived("items_per_j", metrics.get("items_per_j")):
            # items/J agrees with an impossible throughput at a possible power: it is
            # impossible too (a reported items/J; a computed one follows its throughput).
            out.findings.append(Finding(
                "efficiency", ("items_per_j",),
                f"items_per_j = {_fmt(eff)} {unit}{_where(point)} agrees with throughput / "
                f"power, but the throughput fails its own bound{note}: at {_fmt(power)} W no "
                "device could reach this efficiency either", point))
        elif power_ok is False and not is_derived("items_per_j", metrics.get("items_per_j")) \
                and thr_ok is not True:
            # A reported items/J that agrees with throughput / power although the power is
            # impossible: the throughput carries the same scale error (a row scaled by 1e6).
            why = f"fails its own bound too{note}" if thr_ok is False else \
                "has no bound of its own to pass (no FLOPs per item or no peak)"
            out.findings.append(Finding(
                "efficiency", (THROUGHPUT,),
                f"power_w_mean = {_fmt(power)} W{_where(point)} is impossible, yet items_per_j "
                f"= {_fmt(eff)} {unit} agrees with throughput / power: the throughput carries "
                f"the same error, and it {why}", point))
    return out


# -- power ---------------------------------------------------------------------------------
def check_power_limit(doc: AnyResultDoc, spec: DeviceSpec | None,
                      s: CheckSettings) -> CheckOutcome:
    limit = (spec or {}).get("power_limit_w")
    n = devices_of(doc)
    times = f" x {n} devices" if n > 1 else ""
    if limit:
        mean_max, sample_max = (limit * n * s.power_mean_margin,
                                limit * n * s.power_sample_margin)
        basis = (f"{spec['name']} board power limit {limit:g} W (spec sheet {spec['id']}): "
                 f"mean up to {s.power_mean_margin:g}x, samples up to {s.power_sample_margin:g}x")
    else:
        mean_max = sample_max = s.power_ceiling_w * n
        basis = (f"no spec sheet with a power limit: absolute ceiling {s.power_ceiling_w:g} W "
                 "per device")
    if n > 1:
        basis += f"; the entry's power sums {n} devices"
    out = CheckOutcome("power_limit", False, basis=basis)
    source = f"the {spec['name']} limit of {limit:g} W{times}" if limit else \
        f"the {s.power_ceiling_w:g} W ceiling for any single device{times}"
    # items/J is marked with the power where it was computed from it (DERIVED_FROM); a
    # published items/J of its own is judged by the efficiency check.
    marked_power = ("power_w_mean", "energy_j")
    for point, metrics in _metric_sets(doc):
        for name in ("power_w_mean", "idle_power_w"):
            value = _num(metrics.get(name))
            if value is None:
                continue
            out.applied = True
            if value < 0 or value > mean_max:
                why = "is negative" if value < 0 else (
                    f"exceeds {source} (x{s.power_mean_margin:g} allowed)" if limit
                    else f"exceeds {source}")
                marked = marked_power if name == "power_w_mean" else (name,)
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
                "power_limit", marked_power,
                f"a telemetry power sample reads {_fmt(bad)} W, outside 0 .. {_fmt(sample_max)} "
                f"W ({source})"))
    return out


# -- utilisation ---------------------------------------------------------------------------
def check_utilisation_range(doc: AnyResultDoc, spec: DeviceSpec | None,
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
def memory_capacity_bytes(doc: AnyResultDoc,
                          spec: DeviceSpec | None) -> tuple[float | None, str]:
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


def check_memory_capacity(doc: AnyResultDoc, spec: DeviceSpec | None,
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
def check_temperature_range(doc: AnyResultDoc, spec: DeviceSpec | None,
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


def check_timestamps(doc: AnyResultDoc, spec: DeviceSpec | None,
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


def check_telemetry_coverage(doc: AnyResultDoc, spec: DeviceSpec | None,
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
# A metric the catalogue does not declare (a submitter's own) is held to the naming convention
# that names carry units (CONVENTIONS.md): what its suffix promises.
UNDECLARED_UNIT_RULES: tuple[tuple[str, Callable[[str], bool], str], ...] = (
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
    """The unit a metric must have: the catalogue's (bench/metrics.yaml; its ``{item}`` is the
    workload's item unit, any item where that is not known), else what an undeclared name's
    suffix promises."""
    spec = spec_for(name)
    if spec is not None:
        declared = spec.unit
        if "{item}" not in declared:
            return (lambda u: u == declared), declared
        if item_unit:
            unit = declared.replace("{item}", item_unit)
            return (lambda u: u == unit), unit
        shape = re.compile(re.escape(declared).replace(re.escape("{item}"), "[^/]+"))
        return (lambda u: shape.fullmatch(u) is not None), declared.replace("{item}", "<item>")
    for pattern, ok, text in UNDECLARED_UNIT_RULES:
        if re.search(pattern, name):
            return ok, text
    return None


def check_units(doc: AnyResultDoc, spec: DeviceSpec | None,
                s: CheckSettings) -> CheckOutcome:
    item_unit = (doc.get("workload") or {}).get("item_unit")
    out = CheckOutcome("units", False, basis="unit is the catalogue's (bench/metrics.yaml)")
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
                    f"{name}{_where(point)} has unit {entry['unit']!r}; its unit is {text}",
                    point))
    return out


# -- peak FLOP/s ---------------------------------------------------------------------------
def check_peak_flops(doc: AnyResultDoc, spec: DeviceSpec | None,
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
        # A model workload's FLOP/s is its throughput x FLOPs per item: throughput_bound
        # judges the throughput itself, and the FLOP/s shares its fate.
        if value is None or not peak or is_derived("flop_per_s", metrics.get("flop_per_s")):
            continue
        out.applied = True
        # a multi-device job's FLOP/s (training over N ranks) is bounded by N peaks
        devices = devices_of(doc)
        if value > peak * devices * margin:
            of = f"{devices} x " if devices > 1 else ""
            out.findings.append(Finding(
                "peak_flops", ("flop_per_s", "pct_of_peak"),
                f"flop_per_s = {value / 1e12:.4g} TFLOP/s{_where(point)} exceeds {of}"
                + (f"{margin:g} x " if estimated else "") + f"the {spec['name']} {precision} "
                f"peak of {peak / 1e12:.4g} TFLOP/s" + (" (an estimate)" if estimated else ""),
                point))
    return out


# -- latency and throughput ------------------------------------------------------------------
def batch_items(doc: AnyResultDoc) -> tuple[float | None, str]:
    """Items one stream's timed iteration processes, and where that figure comes from.

    A measurement records items and iterations of every repeat (with concurrent streams,
    every stream's iterations: ``bench.timing.concurrent_loop``), which is exact, and right
    where a step makes more than a batch (an LSTM generation step makes batch x gen_len
    characters); a published row states its batch size.
    """
    reps = [r for r in doc.get("repeats") or []
            if r.get("status") == "ok" and r.get("iterations") and r.get("items")]
    if reps:
        return (math.fsum(r["items"] for r in reps) / math.fsum(r["iterations"] for r in reps),
                "items per timed iteration")
    wl = doc.get("workload") or {}
    params = wl.get("params") or {}
    batch = params.get("batch_size") or params.get("infer_batch_size") or \
        (wl.get("info") or {}).get("batch_size")
    if isinstance(batch, int | float) and not isinstance(batch, bool) and batch > 0:
        return float(batch), "batch_size"
    return None, "no batch size"


def check_latency_throughput(doc: AnyResultDoc, spec: DeviceSpec | None,
                             s: CheckSettings) -> CheckOutcome:
    """Inference: throughput = batch x concurrent streams / mean latency per batch.

    Latency and throughput of one measurement are two views of the same timed loop, so
    they agree within the loop's overhead (and, with concurrent streams, by Little's law).
    A per-batch latency of 0.4 ms beside 17 items/s at batch 1 cannot both be true.

    A published row is judged on what it prints: without a batch size (and no assumed one)
    the check does not apply; without a stream count, streams are at least 1, so only a
    throughput below batch / latency is impossible (above it, more streams may explain it).
    """
    out = CheckOutcome("latency_throughput", False,
                       basis=f"batch x streams / latency_mean_s within "
                             f"{s.latency_rel_tol:.0%} of the throughput (inference timed "
                             "loops; not LoadGen scenarios)")
    wl = doc.get("workload") or {}
    # LoadGen's scenarios (a result's ``scenario``) are open loops: queries arrive on their
    # own schedule, so a latency holds queueing and the device may idle between queries.
    if wl.get("mode") != "infer" or wl.get("group") in ("llm", "micro") or doc.get("scenario"):
        return out
    metrics = doc.get("metrics") or {}
    thr, latency = _num(metrics.get(THROUGHPUT)), _num(metrics.get("latency_mean_s"))
    if thr is None or latency is None or latency <= 0 or thr <= 0:
        return out
    batch, source = batch_items(doc)
    if batch is None:
        if unknown(doc, "batch_size"):
            out.not_applicable = (f"the batch size is {unknown(doc, 'batch_size')} (a batch "
                                  "column, or --assume batch_size=N, gives it)")
        return out
    streams_unknown = unknown(doc, "streams")
    streams = (wl.get("params") or {}).get("streams") or 1
    if not isinstance(streams, int | float) or isinstance(streams, bool) or streams < 1:
        streams = 1
    note = assumed(doc, "batch_size", "streams")
    out.applied = True
    expected = batch * streams / latency
    off = abs(thr - expected) / expected
    unit = (metrics.get(THROUGHPUT) or {}).get("unit", "items/s")
    if streams_unknown:
        # at least one stream: only a throughput below batch / latency is impossible
        if thr < expected * (1 - s.latency_rel_tol):
            out.findings.append(Finding(
                "latency_throughput", (THROUGHPUT, "latency_mean_s"),
                f"{THROUGHPUT} = {_fmt(thr)} {unit} but {_fmt(batch)} ({source}{note}) / "
                f"latency_mean_s {latency * 1e3:.4g} ms = {_fmt(expected)} {unit} with one "
                f"stream, and more streams (their number is {streams_unknown}) only raise "
                f"it (off by {_off(thr, expected)}, tolerance {s.latency_rel_tol:.0%}): one "
                "of the two is wrong"))
        return out
    if off > s.latency_rel_tol:
        out.findings.append(Finding(
            "latency_throughput", (THROUGHPUT, "latency_mean_s"),
            f"{THROUGHPUT} = {_fmt(thr)} {unit} but {_fmt(batch)} ({source}) x {_fmt(streams)} "
            f"stream(s){note} / latency_mean_s {latency * 1e3:.4g} ms = {_fmt(expected)} "
            f"{unit} (off by {_off(thr, expected)}, tolerance {s.latency_rel_tol:.0%}): one of "
            "the two is wrong"))
    return out


CHECKS: tuple[Callable[[AnyResultDoc, DeviceSpec | None, CheckSettings],
                       CheckOutcome], ...] = (
    check_efficiency, check_power_limit, check_utilisation_range, check_memory_capacity,
    check_temperature_range, check_timestamps, check_telemetry_coverage, check_units,
    check_peak_flops, check_throughput_bound, check_latency_throughput,
)
# A printed table has no timed window and no telemetry series to check.
NOT_FOR_PUBLISHED = ("timestamps", "telemetry_coverage")


def derived_closure(metrics: Iterable[str], entries: AnyMetrics) -> tuple[str, ...]:
    """``metrics`` and every metric of ``entries`` computed from them (DERIVED_FROM)."""
    marked = list(dict.fromkeys(metrics))
    changed = ALL_METRICS not in marked
    while changed:
        changed = False
        for name, inputs in DERIVED_FROM.items():
            if name not in marked and name in entries and is_derived(name, entries[name]) \
                    and any(i in marked for i in inputs):
                marked.append(name)
                changed = True
    return tuple(marked)


def _with_derived(finding: Finding, doc: AnyResultDoc) -> Finding:
    entries = doc.get("metrics") or {}
    if finding.point is not None:
        entries = ((doc.get("points") or [])[finding.point].get("metrics") or {})
    metrics = derived_closure(finding.metrics, entries)
    return finding if metrics == finding.metrics else \
        Finding(finding.check, metrics, finding.message, finding.point)


def run_checks(doc: AnyResultDoc, spec: DeviceSpec | None,
               settings: CheckSettings | None = None) -> list[CheckOutcome]:
    """Every per-result check on one result document; findings also mark the values
    derived from the values they mark."""
    settings = settings or CheckSettings()
    outcomes = []
    for check in CHECKS:
        if is_published(doc) and check.__name__.removeprefix("check_") in NOT_FOR_PUBLISHED:
            outcomes.append(CheckOutcome(check.__name__.removeprefix("check_"), False,
                                         basis="published table: no timed window or telemetry"))
            continue
        outcome = check(doc, spec, settings)
        outcome.findings = [_with_derived(f, doc) for f in outcome.findings]
        outcomes.append(outcome)
    return outcomes


# -- across results: identical columns ------------------------------------------------------
@dataclass(frozen=True)
class ColumnCopy:
    metrics: tuple[str, str]
    cells: tuple[tuple[str, str], ...]  # (device, workload) pairs with identical values
    message: str


def identical_columns(table: dict[str, dict[tuple[str, str], tuple[float, str]]],
                      min_cells: int = 3, rel_tol: float = 1e-9,
                      where: str = "") -> list[ColumnCopy]:
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
                    f"{len(common)} cells they share{where}: one table is a copy of the other"))
    return found


def column_copies(table: dict[str, dict[tuple[str, str], tuple[float, str]]],
                  slices: dict[str, set[tuple[str, str]]], min_cells: int = 3
                  ) -> list[ColumnCopy]:
    """Copied tables over the whole report and within each slice (a mode, a mode and
    workload group, one publication): a training column copied from another metric hides
    among inference cells, or another source's cells, that differ when the whole report is
    compared at once.

    ``slices``: slice title -> its (device, workload) cells. A copy found in a larger slice
    is not reported again for a smaller one.
    """
    found = identical_columns(table, min_cells)
    seen = [(set(c.metrics), set(c.cells)) for c in found]
    for title, cells in slices.items():
        part = {m: {c: v for c, v in values.items() if c in cells}
                for m, values in table.items()}
        for copy in identical_columns(part, min_cells, where=f" in {title}"):
            if any(set(copy.metrics) == m and set(copy.cells) <= c for m, c in seen):
                continue
            seen.append((set(copy.metrics), set(copy.cells)))
            found.append(copy)
    return found


# -- across devices: values far beyond what the spec sheets predict -------------------------
def spec_outliers(values: dict[str, float], peaks: dict[str, float], factor: float,
                  better: int) -> dict[str, float]:
    """Devices whose value, divided by their peak, exceeds ``factor`` x the median of the
    other devices' (for a smaller-is-better metric such as latency, its inverse does).

    Returns device -> how many times the others' median it reaches. Only devices with a
    value and a peak take part; it needs two. Only the too-good side is judged: a device far
    below its peak is a fact about its software, while one far above the others' share of
    theirs sets the scale for everyone and flattens every other bar.
    """
    share = {d: (v if better > 0 else 1.0 / v) / peaks[d] for d, v in values.items()
             if d in peaks and peaks[d] > 0 and v > 0}
    out = {}
    for d, e in share.items():
        others = sorted(x for k, x in share.items() if k != d)
        if not others:
            continue
        mid = len(others) // 2
        median = others[mid] if len(others) % 2 else (others[mid - 1] + others[mid]) / 2
        if e > factor * median:
            out[d] = e / median
    return out
