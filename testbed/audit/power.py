"""What an audit can detect: the power statement of a judged metric, the prediction of what
more re-run repeats would decide, and the repeats a submission needs.

An inflated claim (a rate claimed f times higher than the device does, a latency f times
lower) shows as re-measured / submitted = 1/f (or f). The audit fails it when the interval's
far edge lies beyond the band's edge on the worse side (widened by the slowdown the host's
load caused), so with the pooled spread s of the logs over m submitted and k re-measured
repeats, and t = t(1 - alpha/2, m + k - 2), the estimate must lie t * se beyond that edge,
se = s * sqrt(1/m + 1/k). The estimate itself scatters by se around log(1/f); to be beyond
with probability P it must be z(P) * se further still. So the smallest inflation caught with
probability P is

    f = exp((t + z(P)) * se) / edge          (higher is better: edge = (1 - rel) / slowdown)
    f = edge * exp((t + z(P)) * se)          (lower is better:  edge = (1 + rel) * slowdown)

(the normal approximation of the estimate's scatter; docs/audit.md, "What an audit can
detect"). P is 0.9: "caught at 9 audits of 10".
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from statistics import NormalDist

from bench.documents import (
    MetricRecord,
    PowerEntry,
    PowerRecord,
    PowerSummary,
    ResultDoc,
    SubmissionAllows,
)
from testbed.audit.interval import RATIO, Band, Interval, judge, student_t_quantile

PROBABILITY = 0.9  # the chance of catching the inflation the statement names


def _t(level: float, df: int) -> float:
    return student_t_quantile(1 - (1 - level) / 2, df)


def detectable_inflation(spread: float, m: int, k: int, level: float, edge: float,
                         direction: str, probability: float = PROBABILITY) -> float | None:
    """The smallest factor f by which a claim better than the device (a rate x f, a time / f)
    fails with ``probability``, for the pooled log spread ``spread`` of ``m`` submitted and
    ``k`` re-measured repeats against the band's ``edge`` on the worse side (a ratio: below
    1 for ``higher`` is better, above 1 for ``lower``). None: no such factor (no spread to
    judge by, or the band has no edge on that side)."""
    df = m + k - 2
    if df < 1 or not math.isfinite(edge) or edge <= 0 or direction not in ("higher", "lower"):
        return None
    reach = (_t(level, df) + NormalDist().inv_cdf(probability)) * spread * math.sqrt(
        1 / m + 1 / k)
    return math.exp(reach) / edge if direction == "higher" else edge * math.exp(reach)


def worse_edge(band: Band, direction: str) -> float:
    """The edge an inflated claim must cross: the (load-widened) band's on the worse side."""
    return band.load_low if direction == "higher" else band.load_high


def power_statement(interval: Interval, band: Band, direction: str | None,
                    probability: float = PROBABILITY) -> PowerRecord:
    """The record's ``power``: the smallest inflation this submission's repeats and this
    re-run could have caught, with what it rests on; ``inflation`` null with the reason
    where there is none."""
    out: PowerRecord = {"probability": probability, "inflation": None,
                           "n_submitted": interval.n_submitted,
                           "n_remeasured": interval.n_remeasured, "spread": interval.spread}
    if interval.scale != RATIO:
        out["reason"] = "judged as an amount (an abs band), not as a ratio"
        return out
    if direction not in ("higher", "lower"):
        # No direction: a deviation either way fails; say how large, both ways.
        up = detectable_inflation(interval.spread, interval.n_submitted,
                                  interval.n_remeasured, interval.level, band.load_low,
                                  "higher", probability)
        down = detectable_inflation(interval.spread, interval.n_submitted,
                                    interval.n_remeasured, interval.level, band.load_high,
                                    "lower", probability)
        found = [f for f in (up, down) if f is not None]
        out["inflation"] = max(found) if found else None
        out["basis"] = "no direction: a deviation of this factor either way"
        if not found:
            out["reason"] = "the band has no edge a deviation could cross"
        return out
    edge = worse_edge(band, direction)
    out["inflation"] = detectable_inflation(interval.spread, interval.n_submitted,
                                            interval.n_remeasured, interval.level, edge,
                                            direction, probability)
    out["basis"] = (f"a claim {'higher' if direction == 'higher' else 'lower'} than the device "
                    f"by this factor fails with probability {probability:.0%} against the "
                    f"edge {edge:.3f}" + (" (widened by the host's load)"
                                          if edge not in (band.low, band.high) else ""))
    if out["inflation"] is None:
        out["reason"] = "the band has no edge on the side an inflated claim shows"
    return out


def predicted(interval: Interval, band: Band, more: int) -> str:
    """The status the same estimate and spread would get with ``more`` re-run repeats."""
    k = interval.n_remeasured + more
    df = interval.n_submitted + k - 2
    half = _t(interval.level, df) * interval.spread * math.sqrt(1 / interval.n_submitted
                                                                 + 1 / k)
    if interval.scale == RATIO:
        low, high = interval.estimate * math.exp(-half), interval.estimate * math.exp(half)
    else:
        low, high = interval.estimate - half, interval.estimate + half
    return judge(replace(interval, low=low, high=high, n_remeasured=k, df=df), band)[0]


def repeats_to_decide(interval: Interval, band: Band, budget: int) -> int | None:
    """The fewest re-run repeats (at most ``budget``) after which the same estimate and
    spread would be a pass or a fail; None when even ``budget`` would not decide it (nothing
    left can be decided: the audit stops re-running)."""
    for more in range(1, budget + 1):
        if predicted(interval, band, more) in ("pass", "fail"):
            return more
    return None


@dataclass(frozen=True)
class Design:
    """What a suite's repeat count allows at a given CV (docs/audit.md, "Repeats")."""

    cv: float  # the throughput's coefficient of variation on the reference machine
    inflation: float  # the inflation to catch (1.10: 10 %)
    rel: float  # the throughput band (tolerances.yaml: 0.05)
    level: float = 0.95
    probability: float = PROBABILITY

    def spread(self) -> float:
        """The standard deviation of the logs for this CV (lognormal)."""
        return math.sqrt(math.log1p(self.cv ** 2))

    def caught_from(self, m: int, k: int | None = None) -> float | None:
        """The smallest inflation caught with ``m`` submitted and ``k`` (default ``m``: the
        first re-run, as submitted) re-measured repeats on a quiet machine."""
        return detectable_inflation(self.spread(), m, m if k is None else k, self.level,
                                    1 - self.rel, "higher", self.probability)

    def repeats_needed(self, most: int = 100) -> int | None:
        """The fewest repeats for which the first re-run (as many repeats) catches
        ``inflation``; None beyond ``most``."""
        for m in range(2, most + 1):
            caught = self.caught_from(m)
            if caught is not None and caught <= self.inflation:
                return m
        return None


THROUGHPUT = "throughput_items_per_s"


def _log_spread(values: list[float]) -> float | None:
    if len(values) < 2 or min(values) <= 0:
        return None
    logs = [math.log(v) for v in values]
    mean = math.fsum(logs) / len(logs)
    return math.sqrt(math.fsum((x - mean) ** 2 for x in logs) / (len(logs) - 1))


def submission_allows(entry: str, doc: ResultDoc, rel: float | None, level: float,
                      most_repeats: int) -> SubmissionAllows:
    """Said up front, before anything is re-run: the smallest throughput inflation this
    submission's repeats let an audit catch on a quiet machine (slowdown 1), with the first
    re-run (as many repeats as submitted) and at best (``most_repeats`` re-measured, every
    re-run for more evidence made), at the submission's own spread."""
    figure = (doc.get("metrics") or {}).get(THROUGHPUT) or {}
    per = [v for v in figure.get("per_repeat") or []
           if isinstance(v, int | float) and not isinstance(v, bool)]
    out: SubmissionAllows = {"entry": entry, "metric": THROUGHPUT, "n_submitted": len(per),
                           "cv_submitted": figure.get("cv"), "first_rerun": None,
                           "at_best": None, "probability": PROBABILITY}
    spread = _log_spread(per)
    if rel is None:
        out["reason"] = "the throughput has no relative band in the tolerance file"
    elif spread is None:
        out["reason"] = (f"{len(per)} submitted repeat(s): the submission states no spread, "
                         "so only the re-run's repeats will say what can be detected")
    else:
        m = len(per)
        out["first_rerun"] = detectable_inflation(spread, m, m, level, 1 - rel, "higher")
        out["at_best"] = detectable_inflation(spread, m, most_repeats, level, 1 - rel,
                                              "higher")
    return out


def describe_allows(a: SubmissionAllows) -> str:
    if a["at_best"] is None:
        return f"{a['entry']}: {a.get('reason', 'unknown')}"
    cv = f" at a CV of {a['cv_submitted']:.1%}" if a.get("cv_submitted") is not None else ""
    text = (f"{a['entry']}: {a['n_submitted']} repeats{cv}: a throughput claimed "
            f"x{a['first_rerun']:.3g} too high or more is caught by the first re-run, "
            f"x{a['at_best']:.3g} at best")
    if a["at_best"] > 2:
        text += f" (no inflation below {a['at_best']:.1f}-fold is detectable)"
    return text


def power_summary(records: list[MetricRecord], allows: list[SubmissionAllows]
                  ) -> PowerSummary:
    """The verdict's ``summary.power``: per entry the smallest throughput inflation the
    audit could have caught (its own figure's, else the least sensitive grid point's), and
    what the submission allowed up front."""
    entries: list[PowerEntry] = []
    for entry in dict.fromkeys(r["entry"] for r in records):
        mine = [r for r in records if r["entry"] == entry and r["metric"] == THROUGHPUT
                and (r.get("power") or {}).get("inflation") is not None
                and r["status"] in ("pass", "fail", "inconclusive")]
        own = [r for r in mine if r["point"] is None]
        chosen = own or sorted(mine, key=lambda r: r["power"]["inflation"])[-1:]
        if chosen:
            r = chosen[0]
            entries.append({"entry": entry, "point": r["point"], "metric": THROUGHPUT,
                            "inflation": r["power"]["inflation"], "status": r["status"],
                            "points": 0 if own else len(mine)})
    return {"probability": PROBABILITY, "metric": THROUGHPUT, "entries": entries,
            "submission": allows}


def headline(summary: PowerSummary) -> str | None:
    """The terminal's power line."""
    if not summary["entries"]:
        return None
    parts = [f"x{e['inflation']:.3g} ({e['entry']}"
             + (f", least sensitive of {e['points']} points" if e["points"] else "") + ")"
             for e in summary["entries"]]
    return (f"power: a throughput claimed {', '.join(parts)} too high or more would have "
            f"failed here, {summary['probability']:.0%} of the time")


# -- the repeats of the suites meant for submission (docs/audit.md) --------------------------
# The throughput CV a suite meant for submission is designed for: the H100 reference runs
# (results/reference/h100) measured 0.15-0.6 % on ResNet, GEMM, device copy and BERT's second
# run, 0.3 % typically; 1 % leaves room. At it, DESIGN_REPEATS repeats let the audit's first
# re-run (as many repeats) catch a DESIGN_INFLATION-fold claim 9 times in 10 on a quiet machine.
DESIGN_CV = 0.01
DESIGN_INFLATION = 1.10
# The bundled suites not meant for submitting rates to an audit, and why.
NOT_FOR_SUBMISSION = {
    "function-full": "function, not speed: every figure is a count or a share judged equal",
    "soak-full": "one 72-hour soak: its figures are counts and times of that soak",
    "scenarios-full": "MLPerf's own rules: one run of 600 s LoadGen tests per scenario, whose "
                      "verdict LoadGen gives; a server QPS is a search step (15 % band)",
}


def submission_design(rel: float) -> Design:
    return Design(cv=DESIGN_CV, inflation=DESIGN_INFLATION, rel=rel)
