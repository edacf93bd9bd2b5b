"""The Server scenario's search for the highest target QPS that LoadGen finds VALID.

MLPerf leaves the Server's target QPS to the submitter; LoadGen's own FindPeakPerformance
mode searches it but logs only the answer. This is the same search (a valid lower bound,
doubled until a rate fails, then bisected) with every step kept: each step is one complete
LoadGen performance run at one target QPS, and the result records them all.

The search is bounded three ways, and its outcome says which one ended it (``stop``):
``max_steps`` runs; a time ``Budget`` (a step whose forecast ends after the deadline is not
started, so a repeat ends inside its timeout with what it found); and what a step proves
about the rates below it (a run that met the latency bound but was INVALID for another
reason, or a device slower than the bound even without queueing: a lower rate cannot help).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

# Why the search ended (``SearchOutcome.stop``): bounds within the precision; the step limit;
# the time budget; a step showing that no lower rate can meet the latency bound (the device is
# slower than the bound without any queueing); one showing that a lower rate cannot fix what
# made it INVALID (too few queries, too short).
STOPS = ("converged", "max_steps", "budget", "latency_floor", "invalid_not_latency")


@dataclass(frozen=True)
class Budget:
    """How long the search may run: a deadline on ``clock`` and a forecast of how long one
    step at a target QPS will take. A step whose forecast ends after the deadline is not
    started."""

    deadline: float
    forecast: Callable[[float], float]
    clock: Callable[[], float] = time.monotonic

    def left_s(self) -> float:
        return self.deadline - self.clock()

    def refusal(self, qps: float) -> str | None:
        """Why a step at ``qps`` does not fit (None: it does)."""
        need, left = self.forecast(qps), self.left_s()
        if need <= left:
            return None
        return (f"the time budget ran out: a step at {qps:.4g} QPS would take about "
                f"{need:.0f} s and {max(left, 0):.0f} s were left")


@dataclass
class SearchOutcome:
    best_qps: float | None  # the highest target QPS whose run was VALID (None: none was)
    upper_qps: float | None  # the lowest that was not (None: none failed)
    steps: list[dict[str, Any]] = field(default_factory=list)
    converged: bool = False
    reason: str = ""
    stop: str = ""  # one of STOPS


class _Stopped(Exception):
    def __init__(self, stop: str, reason: str) -> None:
        super().__init__(reason)
        self.stop, self.reason = stop, reason


def search_peak(run: Callable[[float], dict[str, Any]], start_qps: float, precision: float,
                max_steps: int, budget: Budget | None = None) -> SearchOutcome:
    """Search with ``run(qps) -> step`` (a dict with at least ``valid``; optionally
    ``latency_ok``, ``early_stopping_only`` (INVALID only because LoadGen's early stopping
    could not confirm the bound), ``why``, ``floor`` (why no lower rate can meet the bound: the
    search stops when two tests in a row say so) and
    ``cut_by_budget`` (the run was cut short at the deadline, so it bounds nothing)).

    1. From ``start_qps``, halve until a rate is valid (a lower bound).
    2. Double from the lower bound until a rate is invalid (an upper bound).
    3. Bisect until ``(upper - lower) / lower <= precision``.
    At most ``max_steps`` runs, and after the first none that the ``budget`` says would end
    too late.
    """
    if start_qps <= 0 or max_steps < 1:
        raise ValueError("the search needs a positive start rate and at least one step")
    steps: list[dict[str, Any]] = []
    lower: float | None = None
    upper: float | None = None

    def test(qps: float, phase: str) -> bool:
        if len(steps) >= max_steps:
            raise _Stopped("max_steps", f"stopped after {max_steps} step(s)")
        # The first step always runs (cut short at the deadline by ``run`` if it must be),
        # so the repeat has a LoadGen test to report.
        refusal = budget.refusal(qps) if budget is not None and steps else None
        if refusal is not None:
            raise _Stopped("budget", refusal)
        step = {"index": len(steps), "phase": phase, "target_qps": qps, **run(qps)}
        steps.append(step)
        if step.get("cut_by_budget"):
            raise _Stopped("budget", f"the time budget ran out during the step at {qps:.4g} "
                                     "QPS: LoadGen stopped it early, so it bounds nothing")
        return bool(step["valid"])

    try:
        qps = start_qps
        while lower is None:
            if test(qps, "lower bound"):
                lower = qps
                break
            upper = qps
            step = steps[-1]
            if step.get("latency_ok") and not step.get("early_stopping_only"):
                # INVALID with the latency bound met (too few queries, the minimum duration):
                # a lower rate only makes that worse. (Early stopping alone is different: a
                # lower rate leaves fewer queries over the bound.)
                raise _Stopped("invalid_not_latency",
                               f"{qps:.4g} QPS met the latency bound but LoadGen found the run "
                               f"INVALID ({step.get('why', 'see its summary')}): a lower rate "
                               "cannot fix that; raise min_query_count or min_duration_s")
            if step.get("floor") and len(steps) > 1 and steps[-2].get("floor"):
                # two tests in a row: one alone may have met a passing burst of other work
                raise _Stopped("latency_floor",
                               f"no target QPS can meet the latency bound: {step['floor']}")
            qps /= 2
        while upper is None:
            qps = lower * 2
            if test(qps, "upper bound"):
                lower = qps
            else:
                upper = qps
        while (upper - lower) / lower > precision:
            mid = (lower + upper) / 2
            if test(mid, "bisection"):
                lower = mid
            else:
                upper = mid
        stop = "converged"
        reason = f"converged: {lower:.4g} valid, {upper:.4g} not, within {precision:.0%}"
    except _Stopped as stopped:
        stop, reason = stopped.stop, stopped.reason
        if stop in ("max_steps", "budget"):
            if lower is None:
                missed = all(st.get("latency_ok") is False for st in steps)
                reason += (f"; no target QPS {'met the latency bound' if missed else 'was VALID'}"
                           f" in {len(steps)} step(s), down to {steps[-1]['target_qps']:.4g} QPS")
            elif upper is None:
                reason += f"; every rate up to {lower:.4g} QPS was valid"
            else:
                reason += f" between {lower:.4g} (valid) and {upper:.4g} QPS"
    return SearchOutcome(lower, upper, steps, stop == "converged", reason, stop)
