"""Result documents: metrics with units (SPEC section 5) derived from the repeats' timed
windows and the telemetry series, sealed with a sha256 over the canonical body."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from bench.jsonio import finite_or_none
from bench.stats import latency_summary, summarize, trapezoid_energy_j, window_max, window_mean

SCHEMA_VERSION = "1.0"
STATUSES = ("ok", "oom", "unsupported", "timeout", "error", "killed", "interrupted")
# Statuses that are legitimate measurements of a device (the run itself did not fail).
EXPECTED_FAILURES = ("oom", "unsupported")

Metric = dict[str, Any]


def metric(value: float | None, unit: str, reason: str | None = None, **extra: Any) -> Metric:
    """A metric entry: a value with its unit, or null with the reason it is missing."""
    value = finite_or_none(value)
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


def _series(telemetry: dict[str, Any], field: str, device: int = 0) -> list[Any]:
    return telemetry["devices"][device]["series"][field]


def window_telemetry(telemetry: dict[str, Any], start: float, end: float) -> dict[str, Any]:
    """Telemetry figures of one timed window (monotonic seconds) on the first device."""
    t = telemetry["t_mono_s"]
    if not telemetry["devices"]:
        return {"samples": 0}
    used = _series(telemetry, "mem_used_bytes")
    total = _series(telemetry, "mem_total_bytes")
    used_pct = [u / c * 100 if u is not None and c else None for u, c in zip(used, total,
                                                                               strict=True)]
    energies = _series(telemetry, "energy_j")
    counter = None
    inside = [(ti, e) for ti, e in zip(t, energies, strict=True)
              if e is not None and start <= ti <= end]
    if len(inside) >= 2:
        # Counter difference between the first and last sample inside the window, scaled to
        # the window's length (the counter updates every 20-100 ms on NVIDIA).
        (t0, e0), (t1, e1) = inside[0], inside[-1]
        if t1 > t0:
            counter = (e1 - e0) / (t1 - t0) * (end - start)
    return {
        "samples": sum(1 for ti in t if start <= ti <= end),
        "util_pct": window_mean(t, _series(telemetry, "util_pct"), start, end),
        "mem_used_bytes_mean": window_mean(t, used, start, end),
        "mem_used_bytes_peak": window_max(t, used, start, end),
        "mem_used_pct_mean": window_mean(t, used_pct, start, end),
        "mem_used_pct_peak": window_max(t, used_pct, start, end),
        "power_w": window_mean(t, _series(telemetry, "power_w"), start, end),
        "temp_c": window_mean(t, _series(telemetry, "temp_c"), start, end),
        "clock_hz": window_mean(t, _series(telemetry, "clock_hz"), start, end),
        "energy_j": trapezoid_energy_j(t, _series(telemetry, "power_w"), start, end),
        "energy_counter_j": counter,
    }


def _mean_of(windows: list[dict[str, Any]], key: str) -> float | None:
    values = [w[key] for w in windows if w.get(key) is not None]
    return math.fsum(values) / len(values) if values else None


def _max_of(windows: list[dict[str, Any]], key: str) -> float | None:
    values = [w[key] for w in windows if w.get(key) is not None]
    return max(values) if values else None


def build_metrics(repeats: list[dict[str, Any]], telemetry: dict[str, Any] | None,
                  unavailable: dict[str, str], item_unit: str, vendor: str,
                  host_bound_util_pct: float, idle: dict[str, Any] | None) -> dict[str, Metric]:
    """All metrics of a workload from its successful repeats (empty if none succeeded)."""
    ok = [r for r in repeats if r["status"] == "ok" and "window" in r]
    if not ok:
        return {}
    per_s = f"{item_unit}/s"
    metrics: dict[str, Metric] = {
        "throughput_items_per_s": summary_metric([r["throughput_items_per_s"] for r in ok],
                                                 per_s),
    }
    latencies = [x for r in ok for x in r["latencies_s"]]
    lat = latency_summary(latencies)
    for key, value in lat.items():
        metrics[f"latency_{key}"] = metric(value, "s", n=len(latencies))

    no_tel = "no telemetry samples inside the timed window (window shorter than the interval?)"
    windows = []
    if telemetry is not None:
        windows = [window_telemetry(telemetry, r["window"]["start_mono"], r["window"]["end_mono"])
                   for r in ok]

    def tel(name: str, key: str, unit: str, field: str, agg: Any = _mean_of) -> None:
        value = agg(windows, key) if windows else None
        reason = unavailable.get(field) or (no_tel if telemetry is not None else "no telemetry")
        metrics[name] = metric(value, unit, reason)

    tel("device_util_pct", "util_pct", "%", "util_pct")
    tel("device_mem_used_bytes_mean", "mem_used_bytes_mean", "B", "mem_used_bytes")
    tel("device_mem_used_bytes_peak", "mem_used_bytes_peak", "B", "mem_used_bytes", _max_of)
    tel("device_mem_used_pct_mean", "mem_used_pct_mean", "%", "mem_used_bytes")
    tel("device_mem_used_pct_peak", "mem_used_pct_peak", "%", "mem_used_bytes", _max_of)
    tel("power_w_mean", "power_w", "W", "power_w")
    tel("temp_c_mean", "temp_c", "degC", "temp_c")
    tel("clock_hz_mean", "clock_hz", "Hz", "clock_hz")
    tel("energy_j", "energy_j", "J", "power_w")
    tel("energy_counter_j", "energy_counter_j", "J", "energy_j")

    throughput = metrics["throughput_items_per_s"]["value"]
    power = metrics["power_w_mean"]["value"]
    metrics["items_per_j"] = metric(
        throughput / power if power else None, f"{item_unit}/J",
        f"no average power ({metrics['power_w_mean'].get('reason', 'zero')})")

    peaks = [r["memory"]["peak_allocated_bytes"] for r in ok
             if r.get("memory", {}).get("peak_allocated_bytes") is not None]
    note = next((r["memory"].get("note") for r in ok if r.get("memory", {}).get("note")), None)
    metrics["framework_mem_peak_bytes"] = metric(
        max(peaks) if peaks else None, "B", "the framework reports no peak allocation",
        **({"note": note} if note else {}))

    idle_power = idle.get("power_w") if idle else None
    metrics["idle_power_w"] = metric(idle_power, "W",
                                     (idle or {}).get("reason", "idle power not measured"))

    util = metrics["device_util_pct"]["value"]
    if vendor == "cpu":
        host_bound, reason = None, "the device is the host CPU: host-bound does not apply"
    elif util is None:
        host_bound, reason = None, "no device utilisation reading"
    else:
        host_bound, reason = util < host_bound_util_pct, None
    metrics["host_bound"] = {"value": host_bound, "unit": "bool",
                             "threshold_util_pct": host_bound_util_pct,
                             **({"reason": reason} if reason else {})}

    extra_names = {name for r in ok for name in r.get("metrics", {})}
    for name in sorted(extra_names):
        values = [r["metrics"][name]["value"] for r in ok
                  if r.get("metrics", {}).get(name, {}).get("value") is not None]
        unit = next(r["metrics"][name]["unit"] for r in ok if name in r.get("metrics", {}))
        reason = next((r["metrics"][name]["reason"] for r in ok
                       if r.get("metrics", {}).get(name, {}).get("reason")), None)
        metrics[name] = summary_metric(values, unit) if values else metric(None, unit, reason)
    return metrics


def workload_status(repeats: list[dict[str, Any]]) -> tuple[str, dict[str, Any] | None]:
    """The workload's status is its first failed repeat's (or ok), with that error."""
    for r in repeats:
        if r["status"] != "ok":
            return r["status"], r.get("error")
    return "ok", None


POINT_TELEMETRY = (
    ("device_util_pct", "util_pct", "%", "util_pct"),
    ("device_mem_used_bytes_peak", "mem_used_bytes_peak", "B", "mem_used_bytes"),
    ("power_w_mean", "power_w", "W", "power_w"),
    ("temp_c_mean", "temp_c", "degC", "temp_c"),
    ("energy_j", "energy_j", "J", "power_w"),
)


def build_points(repeats: list[dict[str, Any]], telemetry: dict[str, Any] | None,
                 unavailable: dict[str, str], item_unit: str,
                 origin: float) -> list[dict[str, Any]] | None:
    """Grid points (LLM grid, operator sweeps) aggregated over the successful repeats.

    A workload's measurement may carry ``points``: ``{params, status, error?, window?,
    metrics}``, one per grid point, in the same order in every repeat. Each metric becomes the
    mean over repeats (with its per-repeat values); a point with a timed window also gets the
    telemetry of that window, so e.g. every LLM grid point has its own power and energy.
    """
    ok = [r for r in repeats if r["status"] == "ok" and r.get("points")]
    if not ok:
        return None
    out = []
    for i, first in enumerate(ok[0]["points"]):
        same = [r["points"][i] for r in ok if i < len(r["points"])]
        good = [p for p in same if p["status"] == "ok"]
        failed = next((p for p in same if p["status"] != "ok"), None)
        point: dict[str, Any] = {"params": first["params"],
                                 "status": failed["status"] if failed else "ok",
                                 "error": failed.get("error") if failed else None,
                                 "metrics": {}}
        names = sorted({n for p in same for n in p.get("metrics", {})})
        for name in names:
            entries = [p["metrics"][name] for p in same if name in p.get("metrics", {})]
            values = [e["value"] for e in entries if isinstance(e.get("value"), int | float)
                      and not isinstance(e.get("value"), bool)]
            unit = entries[0]["unit"]
            if values and len(entries) > 1:
                point["metrics"][name] = summary_metric(values, unit)
            else:
                point["metrics"][name] = {**entries[0]}
        windows = [p["window"] for p in good if p.get("window")]
        if windows:
            point["windows"] = [{"start_s": w["start_mono"] - origin,
                                 "end_s": w["end_mono"] - origin} for w in windows]
            if telemetry is not None:
                tel = [window_telemetry(telemetry, w["start_mono"], w["end_mono"])
                       for w in windows]
                for name, key, unit, field in POINT_TELEMETRY:
                    if name not in point["metrics"]:
                        agg = _max_of if key.endswith("_peak") else _mean_of
                        point["metrics"][name] = metric(
                            agg(tel, key), unit,
                            unavailable.get(field, "no telemetry samples in the window"))
                thr = point["metrics"].get("throughput_items_per_s", {}).get("value")
                power = point["metrics"]["power_w_mean"]["value"]
                if thr is not None and "items_per_j" not in point["metrics"]:
                    point["metrics"]["items_per_j"] = metric(
                        thr / power if power else None, f"{item_unit}/J",
                        "no average power in the window")
        out.append(point)
    return out
