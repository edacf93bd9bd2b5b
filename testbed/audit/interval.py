"""The audit's statistics: a confidence interval of re-measured / submitted over the repeats,
and the verdict it supports against a tolerance band. Small pure functions; docs/audit.md
works an example through by hand.

The interval is analytic, not a bootstrap: submissions and re-runs have two to a dozen
repeats, where a bootstrap of the repeats has only a handful of distinct resamples. It is
Student's t interval of the difference of the two sides' means on the log scale (so of their
ratio), with the spread pooled over both sides' repeats: the same device running the same
configuration has one relative spread, which both samples estimate. Pooling also means a
submitter's own repeats cannot make a claim unfalsifiable: with every re-run repeat added,
the spread the submission wrote weighs less.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass, replace
from statistics import NormalDist

RATIO, DIFFERENCE = "ratio", "difference"
INF = math.inf


def _betacf(a: float, b: float, x: float) -> float:
    """Continued fraction of the incomplete beta function (modified Lentz)."""
    tiny, qab, qap, qam = 1e-300, a + b, a + 1.0, a - 1.0
    c, d = 1.0, 1.0 - qab * x / qap
    d = 1.0 / (d if abs(d) > tiny else tiny)
    h = d
    for m in range(1, 300):
        m2 = 2 * m
        for aa in (m * (b - m) * x / ((qam + m2) * (a + m2)),
                   -(a + m) * (qab + m) * x / ((a + m2) * (qap + m2))):
            d = 1.0 + aa * d
            d = 1.0 / (d if abs(d) > tiny else tiny)
            c = 1.0 + aa / c
            c = c if abs(c) > tiny else tiny
            h *= d * c
        if abs(d * c - 1.0) < 1e-14:
            break
    return h


def _betainc(a: float, b: float, x: float) -> float:
    """Regularised incomplete beta function I_x(a, b)."""
    if x <= 0.0:
        return 0.0
    if x >= 1.0:
        return 1.0
    front = math.exp(math.lgamma(a + b) - math.lgamma(a) - math.lgamma(b)
                     + a * math.log(x) + b * math.log1p(-x))
    if x < (a + 1.0) / (a + b + 2.0):
        return front * _betacf(a, b, x) / a
    return 1.0 - front * _betacf(b, a, 1.0 - x) / b


def student_t_cdf(t: float, df: float) -> float:
    tail = 0.5 * _betainc(df / 2.0, 0.5, df / (df + t * t))
    return 1.0 - tail if t >= 0 else tail


def student_t_quantile(p: float, df: float) -> float:
    """The p-quantile of Student's t with ``df`` degrees of freedom (bisection on the CDF)."""
    if not 0.0 < p < 1.0:
        raise ValueError(f"probability must be in (0, 1), got {p}")
    if df <= 0:
        raise ValueError(f"degrees of freedom must be positive, got {df}")
    if p < 0.5:
        return -student_t_quantile(1.0 - p, df)
    low, high = 0.0, 1.0
    while student_t_cdf(high, df) < p:
        high *= 2.0
    for _ in range(200):
        mid = (low + high) / 2.0
        if student_t_cdf(mid, df) < p:
            low = mid
        else:
            high = mid
        if high - low < 1e-12 * max(1.0, high):
            break
    return (low + high) / 2.0


@dataclass(frozen=True)
class Interval:
    """The confidence interval of one metric: re-measured / submitted on the ratio scale (a
    ``rel`` band), re-measured - submitted on the difference scale (an ``abs`` band)."""

    scale: str  # RATIO or DIFFERENCE
    estimate: float  # the two values' ratio (or difference)
    low: float
    high: float
    level: float  # 0.95
    df: int  # n_submitted + n_remeasured - 2
    n_submitted: int
    n_remeasured: int
    spread: float  # pooled standard deviation: of the logs (about the CV) or in the unit
    spread_submitted: float | None  # the submitted repeats' own, on the same scale
    cv_submitted: float | None  # each side's own relative spread, for the reader
    cv_remeasured: float | None

    def as_dict(self) -> dict[str, float | int | str | None]:
        on = "log ratio" if self.scale == RATIO else "difference"
        return {"method": f"pooled-variance Student t on the {on}", **asdict(self)}

    def describe(self) -> str:
        pct = f"{self.level:.0%}"
        if self.scale == RATIO:
            return (f"re-measured / submitted {self.estimate:.3f}, {pct} interval "
                    f"[{self.low:.3f}, {self.high:.3f}]")
        return (f"re-measured - submitted {self.estimate:+.4g}, {pct} interval "
                f"[{self.low:+.4g}, {self.high:+.4g}]")


def cv(values: Sequence[float]) -> float | None:
    """Sample standard deviation over mean; None for fewer than two values or a zero mean."""
    if len(values) < 2:
        return None
    mean = math.fsum(values) / len(values)
    if mean == 0:
        return None
    var = math.fsum((v - mean) ** 2 for v in values) / (len(values) - 1)
    return math.sqrt(var) / abs(mean)


def _sum_sq(values: Sequence[float]) -> float:
    mean = math.fsum(values) / len(values)
    return math.fsum((v - mean) ** 2 for v in values)


def ratio_interval(submitted: float, sub_repeats: Sequence[float], remeasured: float,
                   re_repeats: Sequence[float], level: float = 0.95,
                   scale: str = RATIO) -> Interval | str:
    """The interval of ``remeasured / submitted`` (or their difference), or why there is none.

    ``submitted`` and ``remeasured`` are the two documents' figures (the claim and its
    re-measurement); the repeats give the spread. On the ratio scale the logs of the repeats
    are pooled: s^2 = (SS_sub + SS_re) / (m + k - 2), and the interval is
    exp(log(re / sub) +- t(1 - (1 - level) / 2, m + k - 2) * s * sqrt(1/m + 1/k)).
    """
    m, k = len(sub_repeats), len(re_repeats)
    if m < 1 or k < 1:
        return "no per-repeat figures"
    df = m + k - 2
    if df < 1:
        return "one repeat on each side: there is no spread to judge by"
    if scale == RATIO:
        values = [*sub_repeats, *re_repeats, submitted, remeasured]
        if any(v <= 0 for v in values):
            return "a figure is zero or negative, so it has no ratio"
        sub_logs = [math.log(v) for v in sub_repeats]
        re_logs = [math.log(v) for v in re_repeats]
        centre = math.log(remeasured / submitted)
    else:
        sub_logs, re_logs, centre = list(sub_repeats), list(re_repeats), remeasured - submitted
    spread = math.sqrt((_sum_sq(sub_logs) + _sum_sq(re_logs)) / df)
    half = student_t_quantile(1 - (1 - level) / 2, df) * spread * math.sqrt(1 / m + 1 / k)
    low, high = centre - half, centre + half
    if scale == RATIO:
        centre, low, high = math.exp(centre), math.exp(low), math.exp(high)
    own = math.sqrt(_sum_sq(sub_logs) / (m - 1)) if m > 1 else None
    return Interval(scale=scale, estimate=centre, low=low, high=high, level=level, df=df,
                    n_submitted=m, n_remeasured=k, spread=spread, spread_submitted=own,
                    cv_submitted=cv(sub_repeats), cv_remeasured=cv(re_repeats))


def ideal_interval(interval: Interval) -> Interval:
    """The interval endless quiet re-run repeats would leave around the same estimate: the
    submission's own m repeats at their own spread (or the pooled one, if smaller or the only
    one), with the normal quantile. One that straddles the band even then cannot be decided
    by re-running."""
    z = NormalDist().inv_cdf(1 - (1 - interval.level) / 2)
    spread = min(s for s in (interval.spread, interval.spread_submitted) if s is not None)
    half = z * spread / math.sqrt(interval.n_submitted)
    if interval.scale == RATIO:
        low, high = interval.estimate * math.exp(-half), interval.estimate * math.exp(half)
    else:
        low, high = interval.estimate - half, interval.estimate + half
    return replace(interval, low=low, high=high, n_remeasured=0)


@dataclass(frozen=True)
class Band:
    """The tolerance band on the interval's scale, and how far host load may move a figure:
    ``low``/``high`` are the band; ``load_low``/``load_high`` the band widened on the side
    a slowed-down host moves the metric to (equal to the band when the load explains
    nothing); ``better`` the side a figure better than claimed lies on ("above" for a metric
    whose higher values are better, "below" for lower; None: the metric has no direction)."""

    low: float
    high: float
    load_low: float
    load_high: float
    better: str | None = None

    def describe(self, scale: str) -> str:
        def edge(v: float) -> str:
            return "unbounded" if math.isinf(v) else (f"{v:.3f}" if scale == RATIO else f"{v:+.4g}")
        return f"{edge(self.low)} .. {edge(self.high)}"


BETTER = {"higher": "above", "lower": "below"}


def band_for(scale: str, rel: float | None, abs_: float | None,
             direction: str | None = None, worsened_by_load: bool = False,
             factor: float = 1.0) -> Band:
    """The band of a ``rel`` rule as a ratio (1 - rel .. 1 + rel), of an ``abs`` rule as a
    difference (-abs .. +abs). ``direction``
    (bench/metrics.yaml: higher, lower or neither is better) says which side is better than
    claimed; for a metric a loaded host makes worse (``worsened_by_load``), ``factor`` >= 1,
    the slowdown the host's load could explain, widens the worse side."""
    if scale == RATIO:
        low, high = 1 - (rel or 0.0), 1 + (rel or 0.0)
    else:
        low, high = -(abs_ or 0.0), abs_ or 0.0
    load_low, load_high = low, high
    if scale == RATIO and factor > 1.0 and worsened_by_load:
        if direction == "higher":
            load_low = low / factor
        elif direction == "lower":
            load_high = high * factor
    return Band(low, high, load_low, load_high, BETTER.get(direction or ""))


def judge(interval: Interval, band: Band) -> tuple[str, str]:
    """pass when the interval lies inside the band, fail when it lies wholly outside the band
    widened by the host's load, inconclusive otherwise (with which edge it straddles, or that
    only the load separates it from a fail). For a metric with a direction, a re-run wholly
    better than claimed is inconclusive, never a fail: an inflated claim shows the other way,
    and a submission measured on a busier machine this way."""
    text = interval.describe()
    scale = interval.scale
    if band.low <= interval.low and interval.high <= band.high:
        return "pass", f"{text} inside the band {band.describe(scale)}"
    if interval.high < band.load_low or interval.low > band.load_high:
        where = "below" if interval.high < band.load_low else "above"
        if where == band.better:
            # Better than claimed: what an inflated claim never shows, and what a submission
            # measured on a busier machine than this re-run does. Not reproduced; not a fail.
            return "inconclusive", (f"{text} wholly {where} the band {band.describe(scale)}: "
                                    "the re-run did better than claimed (an under-claim), "
                                    "which a submission measured on a busier machine shows, "
                                    "never an inflated claim")
        widened = (band.load_low, band.load_high) != (band.low, band.high)
        extra = (f" (and outside {band.load_low:.3f} .. {band.load_high:.3f}, the band widened "
                 "by the host's load)") if widened else ""
        return "fail", f"{text} wholly {where} the band {band.describe(scale)}{extra}"
    if interval.high < band.low or interval.low > band.high:
        where = "below" if interval.high < band.low else "above"
        if where == band.better:
            return "inconclusive", (f"{text} wholly {where} the band {band.describe(scale)}: "
                                    "the re-run did better than claimed (an under-claim)")
        return "inconclusive", (f"{text} outside the band {band.describe(scale)}, but the "
                                "host's load during the re-run could explain it (too noisy)")
    edge = band.low if interval.low < band.low else band.high
    shown = f"{edge:.3f}" if scale == RATIO else f"{edge:+.4g}"
    return "inconclusive", f"{text} straddles the band's edge {shown}"
