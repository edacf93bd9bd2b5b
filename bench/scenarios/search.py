"""The Server scenario's search for the highest target QPS that LoadGen finds VALID.

MLPerf leaves the Server's target QPS to the submitter; LoadGen's own FindPeakPerformance
mode searches it but logs only the answer. This is the same search (a valid lower bound,
doubled until a rate fails, then bisected) with every step kept: each step is one complete
LoadGen performance run at one target QPS, and the result records them all.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any


@dataclass
class SearchOutcome:
    best_qps: float | None  # the highest target QPS whose run was VALID (None: none was)
    upper_qps: float | None  # the lowest that was not (None: none failed)
    steps: list[dict[str, Any]] = field(default_factory=list)
    converged: bool = False
    reason: str = ""


def search_peak(run: Callable[[float], dict[str, Any]], start_qps: float, precision: float,
                max_steps: int) -> SearchOutcome:
    """Search with ``run(qps) -> step`` (a dict with at least ``valid``).

    1. From ``start_qps``, halve until a rate is valid (a lower bound).
    2. Double from the lower bound until a rate is invalid (an upper bound).
    3. Bisect until ``(upper - lower) / lower <= precision``.
    At most ``max_steps`` runs in all; the outcome says whether it converged.
    """
    if start_qps <= 0 or max_steps < 1:
        raise ValueError("the search needs a positive start rate and at least one step")
    steps: list[dict[str, Any]] = []

    def test(qps: float, phase: str) -> bool:
        step = {"index": len(steps), "phase": phase, "target_qps": qps, **run(qps)}
        steps.append(step)
        return bool(step["valid"])

    lower: float | None = None
    upper: float | None = None
    qps = start_qps
    while len(steps) < max_steps:
        if test(qps, "lower bound"):
            lower = qps
            break
        upper = qps
        if steps[-1].get("latency_ok"):
            # INVALID with the latency bound met (too few queries for early stopping, the
            # minimum duration): a lower rate only makes that worse.
            return SearchOutcome(None, upper, steps, False,
                                 f"{qps:.4g} QPS met the latency bound but LoadGen found the "
                                 f"run INVALID ({steps[-1].get('why', 'see its summary')}): "
                                 "a lower rate cannot fix that; raise min_query_count or "
                                 "min_duration_s")
        qps /= 2
    if lower is None:
        return SearchOutcome(None, upper, steps, False,
                             f"no target QPS met the latency bound in {len(steps)} step(s), "
                             f"down to {qps * 2:.4g} QPS")
    while upper is None and len(steps) < max_steps:
        qps = lower * 2
        if test(qps, "upper bound"):
            lower = qps
        else:
            upper = qps
    while upper is not None and (upper - lower) / lower > precision \
            and len(steps) < max_steps:
        mid = (lower + upper) / 2
        if test(mid, "bisection"):
            lower = mid
        else:
            upper = mid
    converged = upper is not None and (upper - lower) / lower <= precision
    if converged:
        reason = f"converged: {lower:.4g} valid, {upper:.4g} not, within {precision:.0%}"
    elif upper is None:
        reason = f"every rate up to {lower:.4g} QPS was valid after {len(steps)} step(s)"
    else:
        reason = (f"stopped after {max_steps} step(s) between {lower:.4g} (valid) and "
                  f"{upper:.4g} QPS")
    return SearchOutcome(lower, upper, steps, converged, reason)
