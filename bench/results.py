"""Result documents: metrics with units (docs/telemetry.md) derived from the repeats' timed
windows and the telemetry series, sealed with a sha256 over the canonical body.

Telemetry figures are computed per repeat window and then summarised over repeats (mean,
std, CV, per-repeat values), like throughput. Energy is reported both ways where both exist:
``energy_integrated_j`` (trapezoidal integral of power) and ``energy_counter_j`` (the device's
cumulative counter); ``energy_j`` is the counter where every window has it, otherwise the
integral, and says which in ``source``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from bench.documents import (
    ErrorRecord,
    IdleRecord,
    Metric,
    Metrics,
    PointDoc,
    RepeatResult,
    Snapshot,
    WindowFigures,
)
from bench.jsonio import finite_or_none
from bench.metrics import aggregation, unit_of
from bench.stats import latency_summary, summarize, window_max, window_mean
from bench.telemetry.combine import combine_figures
from bench.telemetry.energy import counter_energy_j, integrated_energy_j, window_coverage
from bench.telemetry.sampler import interval_stats

SCHEMA_VERSION = "1.0"
STATUSES = ("ok", "oom", "unsupported", "timeout", "error", "killed", "interrupted")
# Statuses that are legitimate measurements of a device (the run itself did not fail).
EXPECTED_FAILURES = ("oom", "unsupported")



def metric(value: float | None, unit: str, reason: str | None = None, **extra: Any) -> Metric:
    """A metric entry: a value with its unit, or null with the reason it is missing."""
    if isinstance(value, float) and not math.isfinite(value):
        reason = f"non-finite value ({value}): the computation diverged or divided by zero"
        value = None
    out: Metric = {"value": value, "unit": unit}
    if value is None:
        out["reason"] = reason or "not measured"
    out.update({k: finite_or_none(v) for k, v in extra.items()})
    return out


def summary_metric(values: Sequence[float], unit: str) -> Metric:
    """Mean over repeats, with n, std, CV, min, max and the per-repeat values."""
    s = summarize(values)
    return metric(s.mean, unit, n=s.n, std=s.std, cv=s.cv, min=s.min, max=s.max,
                  per_repeat=list(values))


def minimum_metric(entries: Sequence[Metric]) -> Metric:
    """The repeats' entries of a metric the catalogue aggregates by its minimum (a count that
    must reach a requested figure, an LLM point's output tokens per sequence, where the
    shortest repeat is the fact to show and a mean would hide it) as one: the minimum value, the
    largest ``max`` (or value), n and the per-repeat values; other keys (``requested``) as
    the first repeat has them. Null with the first reason if no repeat has a value; a note
    says how many repeats had none."""
    def numeric(e: Metric) -> bool:
        return isinstance(e.get("value"), int | float) and not isinstance(e.get("value"), bool)

    valued = [e for e in entries if numeric(e)]
    missing = [e for e in entries if not numeric(e)]
    if not valued:
        return {**entries[0]}
    out = {**valued[0], "value": min(e["value"] for e in valued),
           "max": max(e.get("max", e["value"]) for e in valued),
           "n": len(valued), "per_repeat": [e.get("value") for e in entries]}
    if missing:
        out["note"] = (f"{len(missing)} of {len(entries)} repeat(s) without a value: "
                       f"{missing[0].get('reason', 'not measured')}")
    return out


def repeat_metric(values: Sequence[float | None], unit: str, reason: str,
                  **extra: Any) -> Metric:
    """Like :func:`summary_metric` over the repeats that have a value; null with ``reason`` if
    none has. ``per_repeat`` keeps a null for each repeat without a value."""
    valid = [v for v in values if v is not None and math.isfinite(v)]
    if not valid:
        return metric(None, unit, reason, **extra)
    s = summarize(valid)
    out = metric(s.mean, unit, n=s.n, std=s.std, cv=s.cv, min=s.min, max=s.max,
                 per_repeat=[finite_or_none(v) for v in values], **extra)
    if len(valid) < len(values):
        out["note"] = f"{len(values) - len(valid)} of {len(values)} repeat(s) without a value: " \
                      f"{reason}"
    return out


@dataclass
class TelemetryContext:
    """What the metric builders need from the sampler for one result document."""

    snapshot: Snapshot
    interval_s: float
    unavailable: dict[str, str] = field(default_factory=dict)
    scope: dict[str, str] = field(default_factory=dict)
    # None when the telemetry measures the device the workload ran on; otherwise why not
    # (an accelerator run that fell back to host telemetry).
    not_the_device: str | None = None
    # Device indices whose power the telemetry counts on another device (a BI-V150 card's
    # second GPU): left out of the entry's power sum rather than making it null.
    power_elsewhere: frozenset[int] = frozenset()
    # The devices the entry used (their indices); None: every device sampled.
    devices: tuple[int, ...] | None = None


def device_window(t: Sequence[float], series: dict[str, list[Any]], start: float, end: float,
                  interval_s: float) -> WindowFigures:
    """Telemetry figures of one device over one timed window (monotonic seconds)."""
    def get(name: str) -> list[Any]:  # a series an adapter does not sample reads as empty
        return series.get(name) or [None] * len(t)

    used = get("mem_used_bytes")
    total = get("mem_total_bytes")
    used_pct = [u / c * 100 if u is not None and c else None
                for u, c in zip(used, total, strict=True)]
    power = get("power_w")
    integrated, integrated_reason = integrated_energy_j(t, power, start, end)
    counter, counter_reason = counter_energy_j(t, get("energy_j"), start, end)
    return {
        "coverage": {name: window_coverage(t, get(name), start, end, interval_s)
                     for name in ("util_pct", "power_w", "mem_used_bytes")},
        "util_pct": window_mean(t, get("util_pct"), start, end),
        "mem_used_bytes_mean": window_mean(t, used, start, end),
        "mem_used_bytes_peak": window_max(t, used, start, end),
        "mem_used_pct_mean": window_mean(t, used_pct, start, end),
        "mem_used_pct_peak": window_max(t, used_pct, start, end),
        "power_w": window_mean(t, power, start, end),
        "host_util_pct": window_mean(t, get("host_util_pct"), start, end),
        "host_mem_used_bytes_mean": window_mean(t, get("host_mem_used_bytes"), start, end),
        "host_mem_used_bytes_peak": window_max(t, get("host_mem_used_bytes"), start, end),
        "temp_c": window_mean(t, get("temp_c"), start, end),
        "clock_hz": window_mean(t, get("clock_hz"), start, end),
        "energy_integrated_j": integrated,
        "energy_integrated_reason": integrated_reason,
        "energy_counter_j": counter,
        "energy_counter_reason": counter_reason,
    }


def window_telemetry(tel: TelemetryContext, start: float, end: float) -> WindowFigures:
    """Telemetry figures of one timed window (monotonic seconds) over the devices the entry
    used (``tel.devices``), combined as ``bench.telemetry.combine`` says; with several
    devices each one's figures are kept in ``devices``."""
    snap = tel.snapshot
    t = snap["t_mono_s"]
    errors = sum(1 for e in snap.get("error_t_mono_s", []) if start <= e <= end)
    inside = [ti for ti in t if start <= ti <= end]
    base: WindowFigures = {"samples": len(inside), "errors": errors,
                            "interval": interval_stats(inside, tel.interval_s)}
    chosen = [d for d in snap["devices"] if tel.devices is None or d["index"] in tel.devices]
    if not chosen:
        return base
    figures = [device_window(t, d["series"], start, end, tel.interval_s) for d in chosen]
    out = {**base, **combine_figures(figures, [d["index"] in tel.power_elsewhere
                                               for d in chosen])}
    if len(chosen) > 1:
        out["devices"] = [{"index": d["index"], **{k: v for k, v in f.items()
                                                   if k != "coverage"}}
                          for d, f in zip(chosen, figures, strict=True)]
    return out


def _reason(tel: TelemetryContext | None, field_name: str, fallback: str) -> str:
    if tel is None:
        return "no telemetry"
    if tel.not_the_device:
        return tel.not_the_device
    return tel.unavailable.get(field_name) or fallback


NO_SAMPLES = "no telemetry samples inside the timed window (window shorter than the interval?)"

# metric name, window key, Sample field (for the reason); the unit and how the repeats
# aggregate are the catalogue's (bench/metrics.yaml)
TELEMETRY_METRICS: tuple[tuple[str, str, str], ...] = (
    ("device_util_pct", "util_pct", "util_pct"),
    ("device_mem_used_bytes_mean", "mem_used_bytes_mean", "mem_used_bytes"),
    ("device_mem_used_bytes_peak", "mem_used_bytes_peak", "mem_used_bytes"),
    ("device_mem_used_pct_mean", "mem_used_pct_mean", "mem_used_bytes"),
    ("device_mem_used_pct_peak", "mem_used_pct_peak", "mem_used_bytes"),
    ("power_w_mean", "power_w", "power_w"),
    ("temp_c_mean", "temp_c", "temp_c"),
    ("clock_hz_mean", "clock_hz", "clock_hz"),
)
# Whole-host figures, where the adapter reads them beside the device's own (the cpu
# reference): host readings are the host's whatever the device is, so they are kept even
# when the telemetry is not the device's.
HOST_METRICS: tuple[tuple[str, str, str], ...] = (
    ("host_util_pct", "host_util_pct", "host_util_pct"),
    ("host_mem_used_bytes_mean", "host_mem_used_bytes_mean", "host_mem_used_bytes"),
    ("host_mem_used_bytes_peak", "host_mem_used_bytes_peak", "host_mem_used_bytes"),
)


def unit(name: str) -> str:
    """The catalogue's unit of a harness metric (one without the item unit in it)."""
    declared = unit_of(name)
    if declared is None:
        raise KeyError(f"{name} has no unit in bench/metrics.yaml")
    return declared


def over_repeats(name: str, metric: Metric) -> Metric:
    """``metric`` made from the repeats as the catalogue aggregates ``name``: a peak over the
    run is the largest repeat's figure, not their mean (the mean is what repeat_metric and
    summary_metric made)."""
    per_repeat = [v for v in metric.get("per_repeat") or [] if v is not None]
    if per_repeat and aggregation(name) == "max":
        return {**metric, "value": max(per_repeat)}
    return metric


def energy_metrics(windows: list[WindowFigures], items: list[float], durations: list[float],
                   item_unit: str, idle_power_w: float | None, tel: TelemetryContext | None,
                   idle_reason: str) -> dict[str, Metric]:
    """Energy of each window both ways, the primary figure, per item and above idle."""
    scope = {"scope": tel.scope.get("power_w")} if tel and tel.scope.get("power_w") else {}
    out: dict[str, Metric] = {}
    integrated = [w.get("energy_integrated_j") for w in windows]
    counter = [w.get("energy_counter_j") for w in windows]

    def why(key: str, field_name: str) -> str:
        reasons = {w.get(key) for w in windows if w.get(key)}
        return _reason(tel, field_name, "; ".join(sorted(reasons)) or NO_SAMPLES)

    out["energy_integrated_j"] = repeat_metric(
        integrated, unit("energy_integrated_j"), why("energy_integrated_reason", "power_w"),
        method="trapezoidal integral of power over the timed window", **scope)
    out["energy_counter_j"] = repeat_metric(
        counter, unit("energy_counter_j"), why("energy_counter_reason", "energy_j"),
        method="difference of the device's cumulative energy counter across the window")
    if windows and all(v is not None for v in counter):
        primary, source = counter, "counter"
    else:
        primary, source = integrated, "power_integral"
    out["energy_j"] = repeat_metric(primary, unit("energy_j"),
                                    out["energy_integrated_j"].get("reason", NO_SAMPLES),
                                    source=source, **scope)
    per_item = [e / n if e is not None and n else None for e, n in zip(primary, items,
                                                                       strict=True)]
    out["energy_per_item_j"] = repeat_metric(
        per_item, unit_of("energy_per_item_j", item_unit),
        out["energy_j"].get("reason", NO_SAMPLES), source=source)
    if idle_power_w is None:
        above = [None] * len(primary)
        reason = f"no idle power ({idle_reason})"
    else:
        above = [e - idle_power_w * d if e is not None else None
                 for e, d in zip(primary, durations, strict=True)]
        reason = out["energy_j"].get("reason", NO_SAMPLES)
    out["energy_above_idle_j"] = repeat_metric(
        above, unit("energy_above_idle_j"), reason,
        definition="energy_j minus idle_power_w x window duration")
    return out


def entry_idle(idle: IdleRecord | None, devices: Sequence[int]) -> IdleRecord | None:
    """The idle baseline of the devices an entry used: with per-device idle figures (the run
    samples several devices), their power summed over ``devices``; otherwise as measured."""
    if not idle or not idle.get("devices"):
        return idle
    chosen = [d for d in idle["devices"] if d["index"] in devices]
    powers = [d.get("power_w") for d in chosen]
    out = {**idle, "devices_used": list(devices)}
    if chosen and all(p is not None for p in powers):
        out["power_w"] = math.fsum(powers)
    else:
        out["power_w"] = None
        out["reason"] = idle.get("reason") or "no idle power for every device the entry used"
    return out


def cold_start_metrics(ok: list[RepeatResult]) -> Metrics:
    """Load time and first-iteration latency of every repeat (each a fresh process), apart
    from the steady state: what a compiling backend or a lazy vendor runtime costs once."""
    cold = [r.get("cold_start") or {} for r in ok]
    return {
        "cold_load_s": repeat_metric(
            [c.get("load_s") for c in cold], unit("cold_load_s"),
            "the repeat recorded no load time",
            definition="workload setup in a fresh process: model built or weights read and "
                       "moved to the device, inputs made"),
        "cold_first_iter_s": repeat_metric(
            [c.get("first_iter_s") for c in cold], unit("cold_first_iter_s"),
            "the repeat's own process timed no loop (a LoadGen scenario, or workers that "
            "time themselves)",
            definition="latency of the repeat's first iteration, before warm-up "
                       "(compilation and lazy initialisation included)"),
    }


def build_metrics(repeats: list[RepeatResult], tel: TelemetryContext | None, item_unit: str,
                  vendor: str, host_bound_util_pct: float,
                  idle: IdleRecord | None) -> Metrics:
    """All metrics of a workload from its successful repeats (empty if none succeeded)."""
    ok = [r for r in repeats if r["status"] == "ok" and "window" in r]
    if not ok:
        return {}
    metrics: dict[str, Metric] = {
        "throughput_items_per_s": summary_metric([r["throughput_items_per_s"] for r in ok],
                                                 unit_of("throughput_items_per_s", item_unit)),
    }
    latencies = [x for r in ok for x in r["latencies_s"]]
    lat = latency_summary(latencies)
    for key, value in lat.items():
        metrics[f"latency_{key}"] = metric(value, unit(f"latency_{key}"), n=len(latencies))

    metrics.update(cold_start_metrics(ok))

    windows = [r.get("telemetry") or {} for r in ok]
    usable = tel is not None and tel.not_the_device is None
    for name, key, field_name in TELEMETRY_METRICS:
        values = [w.get(key) for w in windows] if usable else [None] * len(ok)
        extra = {"scope": tel.scope[field_name]} if usable and field_name in tel.scope else {}
        metrics[name] = over_repeats(name, repeat_metric(
            values, unit(name), _reason(tel, field_name, NO_SAMPLES), **extra))
    if tel is not None and "host_util_pct" in tel.scope:
        for name, key, field_name in HOST_METRICS:
            metrics[name] = over_repeats(name, repeat_metric(
                [w.get(key) for w in windows], unit(name),
                tel.unavailable.get(field_name) or NO_SAMPLES, scope=tel.scope[field_name]))

    idle_power = idle.get("power_w") if idle else None
    idle_reason = (idle or {}).get("reason", "idle power not measured")
    metrics.update(energy_metrics(
        windows if usable else [{} for _ in ok], [r["items"] for r in ok],
        [r["window"]["duration_s"] for r in ok], item_unit, idle_power, tel, idle_reason))

    throughput = metrics["throughput_items_per_s"]["value"]
    power = metrics["power_w_mean"]["value"]
    metrics["items_per_j"] = metric(
        throughput / power if power else None, unit_of("items_per_j", item_unit),
        f"no average power ({metrics['power_w_mean'].get('reason', 'zero')})",
        definition="throughput_items_per_s / power_w_mean (docs/telemetry.md)")

    peaks = [r["memory"]["peak_allocated_bytes"] for r in ok
             if r.get("memory", {}).get("peak_allocated_bytes") is not None]
    note = next((r["memory"].get("note") for r in ok if r.get("memory", {}).get("note")), None)
    metrics["framework_mem_peak_bytes"] = metric(
        max(peaks) if peaks else None, unit("framework_mem_peak_bytes"),
        "the framework reports no peak allocation",
        **({"note": note} if note else {}))

    metrics["idle_power_w"] = metric(idle_power, unit("idle_power_w"), idle_reason)

    metrics["telemetry_errors"] = metric(
        sum(w.get("errors", 0) for w in windows), unit("telemetry_errors"),
        definition="failed telemetry readings inside the timed windows",
        per_repeat=[w.get("errors", 0) for w in windows])

    util = metrics["device_util_pct"]["value"]
    if vendor == "cpu":
        host_bound, reason = None, "the device is the host CPU: host-bound does not apply"
    elif util is None:
        host_bound, reason = None, "no device utilisation reading"
    else:
        host_bound, reason = util < host_bound_util_pct, None
    metrics["host_bound"] = {"value": host_bound, "unit": unit("host_bound"),
                             "threshold_util_pct": host_bound_util_pct,
                             **({"reason": reason} if reason else {})}

    extra_names = {name for r in ok for name in r.get("metrics", {})}
    for name in sorted(extra_names):
        entries = [r.get("metrics", {}).get(name) or {} for r in ok]
        if aggregation(name) == "min":
            metrics[name] = minimum_metric(entries)
            continue
        values = [e.get("value") if isinstance(e.get("value"), int | float)
                  and not isinstance(e.get("value"), bool) else None for e in entries]
        reason = next((e["reason"] for e in entries if e.get("reason")),
                      "the workload reported no value")
        metrics[name] = over_repeats(name, repeat_metric(
            values, next(e["unit"] for e in entries if "unit" in e), reason))
    return metrics


def implausible_measurement(repeat: RepeatResult) -> str | None:
    """Why an ``ok`` repeat's throughput is no measurement (None when it is one).

    A figure no device could produce must not reach a score: no items (a batch of 0), or a
    throughput that is not a finite positive number (a window of zero length gives infinity,
    which JSON cannot even hold). Such a repeat becomes an ``error`` with this reason, and the
    entry's document keeps every other repeat."""
    if repeat.get("status") != "ok":
        return None
    value = repeat.get("throughput_items_per_s")
    if isinstance(value, bool) or not isinstance(value, int | float):
        return ("the workload reported no finite throughput (infinite or missing: was the "
                "timed window empty?)")
    if not math.isfinite(value) or value <= 0:
        return (f"the workload reported a throughput of {value!r} items/s: it processed no "
                "items (is a batch size 0?) or its window was empty")
    return None


def workload_status(repeats: list[RepeatResult]) -> tuple[str, ErrorRecord | None]:
    """The workload's status is its first failed repeat's (or ok), with that error."""
    for r in repeats:
        if r["status"] != "ok":
            return r["status"], r.get("error")
    return "ok", None


def _mean_of(windows: list[WindowFigures], key: str) -> float | None:
    values = [w[key] for w in windows if w.get(key) is not None]
    return math.fsum(values) / len(values) if values else None


def _max_of(windows: list[WindowFigures], key: str) -> float | None:
    values = [w[key] for w in windows if w.get(key) is not None]
    return max(values) if values else None


# metric name, window key, Sample field (for the reason); over the point's windows (one per
# repeat) as the catalogue aggregates it: a peak's maximum, else the mean
POINT_TELEMETRY: tuple[tuple[str, str, str], ...] = (
    ("device_util_pct", "util_pct", "util_pct"),
    ("device_mem_used_bytes_peak", "mem_used_bytes_peak", "mem_used_bytes"),
    ("power_w_mean", "power_w", "power_w"),
    ("temp_c_mean", "temp_c", "temp_c"),
    ("energy_integrated_j", "energy_integrated_j", "power_w"),
    ("energy_counter_j", "energy_counter_j", "energy_j"),
)


def build_points(repeats: list[RepeatResult], tel: TelemetryContext | None, item_unit: str,
                 origin: float) -> list[PointDoc] | None:
    """Grid points (LLM grid, operator sweeps) aggregated over the successful repeats.

    A workload's measurement may carry ``points``: ``{params, status, error?, window?,
    metrics}``, one per grid point, in the same order in every repeat. Each metric becomes the
    mean over repeats (with its per-repeat values), or the minimum for the counts of
    ``MIN_OVER_REPEATS``; a point with a timed window also gets the
    telemetry of that window, so e.g. every LLM grid point has its own power and energy.
    """
    # A repeat that timed out or was killed keeps the points it finished (saved as it went).
    ok = [r for r in repeats if r.get("points")]
    if not ok:
        return None
    out = []
    for i, first in enumerate(ok[0]["points"]):
        same = [r["points"][i] for r in ok if i < len(r["points"])]
        good = [p for p in same if p["status"] == "ok"]
        failed = next((p for p in same if p["status"] != "ok"), None)
        point: PointDoc = {"params": first["params"],
                                 "status": failed["status"] if failed else "ok",
                                 "error": failed.get("error") if failed else None,
                                 "metrics": {}}
        names = sorted({n for p in same for n in p.get("metrics", {})})
        for name in names:
            entries = [p["metrics"][name] for p in same if name in p.get("metrics", {})]
            values = [e["value"] for e in entries if isinstance(e.get("value"), int | float)
                      and not isinstance(e.get("value"), bool)]
            if aggregation(name) == "min":
                point["metrics"][name] = minimum_metric(entries)
            elif values and len(entries) > 1:
                point["metrics"][name] = over_repeats(
                    name, summary_metric(values, entries[0]["unit"]))
            else:
                point["metrics"][name] = {**entries[0]}
        windows = [p["window"] for p in good if p.get("window")]
        if windows:
            point["windows"] = [{"start_s": w["start_mono"] - origin,
                                 "end_s": w["end_mono"] - origin} for w in windows]
            if tel is not None:
                _point_telemetry(point, windows, tel, item_unit)
        out.append(point)
    return out


def _point_telemetry(point: PointDoc, windows: list[WindowFigures],
                     tel: TelemetryContext, item_unit: str) -> None:
    figures = [window_telemetry(tel, w["start_mono"], w["end_mono"]) for w in windows]
    point_telemetry_metrics(point, figures, tel, item_unit)


# The metrics of a grid point that come from telemetry (re-derived when nodes are combined).
POINT_TELEMETRY_NAMES = frozenset({name for name, *_ in POINT_TELEMETRY}
                                  | {"energy_j", "telemetry_errors", "items_per_j"})


def point_telemetry_metrics(point: PointDoc, figures: list[WindowFigures],
                            tel: TelemetryContext, item_unit: str) -> None:
    """A grid point's telemetry metrics from its windows' figures (one per repeat); a metric
    the workload reported itself is kept."""
    for name, key, field_name in POINT_TELEMETRY:
        if name in point["metrics"]:
            continue
        agg = _max_of if aggregation(name) == "max" else _mean_of
        value = agg(figures, key) if tel.not_the_device is None else None
        point["metrics"][name] = metric(value, unit(name),
                                        _reason(tel, field_name, NO_SAMPLES))
    counter = point["metrics"]["energy_counter_j"]["value"]
    point["metrics"].setdefault("energy_j", {
        **(point["metrics"]["energy_counter_j"] if counter is not None
           else point["metrics"]["energy_integrated_j"]),
        "source": "counter" if counter is not None else "power_integral"})
    point["metrics"]["telemetry_errors"] = metric(sum(f["errors"] for f in figures),
                                                  unit("telemetry_errors"))
    thr = point["metrics"].get("throughput_items_per_s", {}).get("value")
    power = point["metrics"]["power_w_mean"]["value"]
    if thr is not None and "items_per_j" not in point["metrics"]:
        point["metrics"]["items_per_j"] = metric(
            thr / power if power else None, unit_of("items_per_j", item_unit),
            "no average power in the window")
