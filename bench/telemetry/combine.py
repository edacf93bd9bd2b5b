"""One entry's telemetry figures from several devices (or several nodes): small pure functions.

An entry that runs on eight devices, or on eight devices on each of four nodes, has one
figure per device for each timed window. The entry's figure combines them by what the field
means: power and energy add up (the entry drew the sum), memory in bytes adds up, utilisation
and clock are averaged, temperature and the fullest device's memory share are maxima. A field
is null for the entry when any device lacks it (a partial sum would understate the entry and
look real), except for devices whose power the telemetry deliberately counts on another
device (the two GPUs of a BI-V150 card share one reading): those are left out of the sum.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

from bench.documents import WindowCoverage, WindowFigures

Figures = WindowFigures  # one device's (or one node's) figures of a window


def _sum(values: list[float]) -> float:
    return math.fsum(values)


def _mean(values: list[float]) -> float:
    return math.fsum(values) / len(values)


# window key -> how the devices' values combine
COMBINE: dict[str, Callable[[list[float]], float]] = {
    "util_pct": _mean,
    "mem_used_bytes_mean": _sum,
    "mem_used_bytes_peak": _sum,  # sum of per-device peaks: an upper bound of the joint peak
    "mem_used_pct_mean": _mean,
    "mem_used_pct_peak": max,
    "power_w": _sum,
    "temp_c": max,
    "clock_hz": _mean,
    "energy_integrated_j": _sum,
    "energy_counter_j": _sum,
    # Whole-host figures (the cpu device's telemetry): one host's, so never summed; over
    # several nodes the busiest host's.
    "host_util_pct": max,
    "host_mem_used_bytes_mean": max,
    "host_mem_used_bytes_peak": max,
}
# fields whose value a device may leave to another one (see the module docstring)
SHAREABLE = frozenset({"power_w", "energy_integrated_j", "energy_counter_j"})
# the reason keys that go with a figure
REASONS = {"energy_integrated_j": "energy_integrated_reason",
           "energy_counter_j": "energy_counter_reason"}


def combine_coverage(coverages: Sequence[WindowCoverage]) -> WindowCoverage:
    """The weakest coverage of one field over the devices (fewest samples, widest gap)."""
    ratios = [c["ratio"] for c in coverages if c.get("ratio") is not None]
    return {
        "valid_samples": min(c["valid_samples"] for c in coverages),
        "expected_samples": coverages[0]["expected_samples"],
        "ratio": min(ratios) if len(ratios) == len(coverages) else None,
        "max_gap_s": max(c["max_gap_s"] for c in coverages),
        "bracketed": all(c["bracketed"] for c in coverages),
    }


def combine_figures(per_device: Sequence[Figures], shared: Sequence[bool] | None = None,
                    names: Sequence[str] | None = None) -> Figures:
    """The entry's window figures from each device's (same keys as one device's figures).

    ``shared[i]`` says device ``i`` has its power counted on another device; its power and
    energy are then left out of the sums instead of making them null. ``names`` say what the
    parts are in a reason (default "device 0 of 2", ...; nodes give their names).
    """
    if len(per_device) == 1:
        return dict(per_device[0])
    shared = list(shared) if shared is not None else [False] * len(per_device)
    out: Figures = {}
    for key, how in COMBINE.items():
        counted = [f for f, s in zip(per_device, shared, strict=True)
                   if not (s and key in SHAREABLE)]
        values = [f.get(key) for f in counted]
        if counted and all(v is not None for v in values):
            out[key] = how(values)
        else:
            out[key] = None
        reason_key = REASONS.get(key)
        if reason_key:
            missing = [i for i, f in enumerate(per_device)
                       if f.get(key) is None and not (shared[i] and key in SHAREABLE)]
            part = (names[missing[0]] if names else
                    f"device {missing[0]} of {len(per_device)}") if missing else ""
            out[reason_key] = (None if out[key] is not None else
                               f"{part}: {per_device[missing[0]].get(reason_key) or 'no value'}"
                               if missing else "no device reports it")
    coverages = [f["coverage"] for f in per_device if f.get("coverage")]
    if len(coverages) == len(per_device):
        out["coverage"] = {name: combine_coverage([c[name] for c in coverages])
                           for name in coverages[0]}
    return out
