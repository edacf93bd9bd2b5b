"""Energy and coverage of one timed window from timestamped telemetry: small pure functions.

Both energy figures need samples that bracket the window (one at or before its start, one at
or after its end); the runner samples for the whole run, so a window inside it is bracketed
unless samples failed. Values at the window's edges are interpolated linearly between the
neighbouring samples, so each figure covers the window exactly.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from itertools import pairwise

from bench.stats import interpolate, trapezoid_energy_j


def _valid(t_s: Sequence[float], values: Sequence[float | None]) -> list[tuple[float, float]]:
    return [(t, v) for t, v in zip(t_s, values, strict=True) if v is not None]


def integrated_energy_j(t_s: Sequence[float], power_w: Sequence[float | None],
                        start_s: float, end_s: float) -> tuple[float | None, str | None]:
    """Trapezoidal integral of power over ``[start_s, end_s]``, or None with the reason."""
    pts = _valid(t_s, power_w)
    if not pts:
        return None, "no power samples"
    if pts[0][0] > start_s or pts[-1][0] < end_s:
        return None, "the power samples do not bracket the window"
    return trapezoid_energy_j(t_s, power_w, start_s, end_s), None


def counter_energy_j(t_s: Sequence[float], energy_j: Sequence[float | None],
                     start_s: float, end_s: float) -> tuple[float | None, str | None]:
    """Difference of a cumulative energy counter across ``[start_s, end_s]``.

    The counter is read at the window's edges by linear interpolation between the bracketing
    samples. A counter that goes backwards inside the bracket (driver reload, wrap not handled
    by the adapter) gives None with the reason, never a negative or made-up energy.
    """
    pts = _valid(t_s, energy_j)
    if not pts:
        return None, "no energy counter samples"
    if pts[0][0] > start_s or pts[-1][0] < end_s:
        return None, "the energy counter samples do not bracket the window"
    first = max(i for i, (t, _) in enumerate(pts) if t <= start_s)
    last = min(i for i, (t, _) in enumerate(pts) if t >= end_s)
    span = pts[first:last + 1]
    if any(b < a for (_, a), (_, b) in pairwise(span)):
        return None, "the energy counter went backwards inside the window"
    return interpolate(span, end_s) - interpolate(span, start_s), None


def window_coverage(t_s: Sequence[float], values: Sequence[float | None], start_s: float,
                    end_s: float, interval_s: float) -> dict[str, float | int | bool | None]:
    """How well valid samples of one field cover ``[start_s, end_s]``.

    ``expected`` is the window's duration over the requested interval; ``max_gap_s`` is the
    longest stretch of the window without a valid sample (edges included); ``bracketed`` says
    whether a valid sample exists at or before the start and at or after the end.
    """
    pts = _valid(t_s, values)
    inside = [t for t, _ in pts if start_s <= t <= end_s]
    edges = [start_s, *inside, end_s]
    duration = end_s - start_s
    expected = duration / interval_s if interval_s > 0 else math.nan
    return {
        "valid_samples": len(inside),
        "expected_samples": expected,
        "ratio": len(inside) / expected if expected and math.isfinite(expected) else None,
        "max_gap_s": max((b - a for a, b in pairwise(edges)), default=duration),
        "bracketed": bool(pts) and pts[0][0] <= start_s and pts[-1][0] >= end_s,
    }
