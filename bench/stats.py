"""Statistics of the run rules: small pure functions, tested against hand-worked numbers.

Percentiles use the nearest-rank method (as MLPerf LoadGen does): the p-th percentile is the
smallest observed value with at least p % of the observations at or below it. It is always a
measured latency, never an interpolation between two.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from itertools import pairwise

# p95 beside p50/p90/p99: what users of MLPerf and optimum-benchmark read latency tails by.
LATENCY_PERCENTILES = (50, 90, 95, 99)


def percentile(values: Sequence[float], p: float) -> float:
    """Nearest-rank percentile, ``0 < p <= 100``."""
    if not values:
        raise ValueError("percentile of an empty sequence")
    if not 0 < p <= 100:
        raise ValueError(f"percentile must be in (0, 100], got {p}")
    ordered = sorted(values)
    rank = math.ceil(p / 100 * len(ordered))
    return ordered[max(rank, 1) - 1]


@dataclass(frozen=True)
class Summary:
    """Mean, sample standard deviation (n-1) and coefficient of variation of repeats."""

    n: int
    mean: float
    std: float | None
    cv: float | None
    min: float
    max: float

    def as_dict(self) -> dict[str, float | int | None]:
        return asdict(self)


def summarize(values: Sequence[float]) -> Summary:
    if not values:
        raise ValueError("summary of an empty sequence")
    n = len(values)
    mean = math.fsum(values) / n
    if n < 2:
        std = cv = None
    else:
        std = math.sqrt(math.fsum((v - mean) ** 2 for v in values) / (n - 1))
        cv = std / mean if mean != 0 else None
    return Summary(n=n, mean=mean, std=std, cv=cv, min=min(values), max=max(values))


def latency_summary(latencies_s: Sequence[float]) -> dict[str, float]:
    """Mean and nearest-rank percentiles of per-iteration latencies, in seconds."""
    out = {"mean_s": math.fsum(latencies_s) / len(latencies_s)}
    for p in LATENCY_PERCENTILES:
        out[f"p{p}_s"] = percentile(latencies_s, p)
    return out


def interpolate(pts: Sequence[tuple[float, float]], t: float) -> float:
    """Linear interpolation at ``t`` between time-ordered ``(t, value)`` samples."""
    for (t0, v0), (t1, v1) in pairwise(pts):
        if t0 <= t <= t1:
            return v0 if t1 == t0 else v0 + (v1 - v0) * (t - t0) / (t1 - t0)
    raise ValueError(f"{t} is outside the samples")


def trapezoid_energy_j(t_s: Sequence[float], power_w: Sequence[float | None],
                       start_s: float, end_s: float) -> float | None:
    """Energy over ``[start_s, end_s]`` by the trapezoidal rule on timestamped power samples.

    Power at the window edges is interpolated linearly between the neighbouring samples, so the
    integral covers the window exactly. Returns None when fewer than two valid samples bracket
    the window (the caller records why).
    """
    pts = [(t, p) for t, p in zip(t_s, power_w, strict=True) if p is not None]
    if len(pts) < 2 or end_s <= start_s:
        return None
    if pts[0][0] > start_s or pts[-1][0] < end_s:
        return None

    inner = [(t, p) for t, p in pts if start_s < t < end_s]
    series = [(start_s, interpolate(pts, start_s)), *inner, (end_s, interpolate(pts, end_s))]
    return math.fsum((t1 - t0) * (p0 + p1) / 2 for (t0, p0), (t1, p1) in pairwise(series))


def window_mean(t_s: Sequence[float], values: Sequence[float | None],
                start_s: float, end_s: float) -> float | None:
    """Plain mean of the valid samples taken inside ``[start_s, end_s]`` (docs/telemetry.md)."""
    inside = [v for t, v in zip(t_s, values, strict=True)
              if v is not None and start_s <= t <= end_s]
    return math.fsum(inside) / len(inside) if inside else None


def window_max(t_s: Sequence[float], values: Sequence[float | None],
               start_s: float, end_s: float) -> float | None:
    inside = [v for t, v in zip(t_s, values, strict=True)
              if v is not None and start_s <= t <= end_s]
    return max(inside) if inside else None
