"""Score arithmetic (docs/report.md): small pure functions, tested by hand-worked numbers.

Composite score of the published evaluation, per workload over the devices compared::

    x~_i  = -a + 2a (x_i - min_i) / (max_i - min_i)      (min/max over the devices)
    score = sum_i k_i * sigmoid(s_i * x~_i)               s_i = +1 larger is better, -1 smaller

Decisions (docs/report.md says them to readers too):

- ``max == min`` (all devices equal on a metric, or only one device): x~ = 0, so every device
  gets sigmoid(0) = 0.5 for it. No device is better, and the midpoint says so.
- The weights k_i are relative: they are divided by their sum over the metrics actually
  scored for the workload, so a score lies in (0, 1) whatever the number of metrics, and 0.5
  means "average on everything".
- A metric enters a workload's composite only if every compared device has a usable value
  for it (measured and passing the plausibility checks); otherwise it is left out for all
  devices and the report says which device lacked it and why.

Baseline-relative scores are oriented so that 1.0 equals the baseline and more is better:
test / baseline for larger-is-better metrics, baseline / test for smaller-is-better ones.
The large-model protocol scores each TTFT tier as 0.9 x throughput ratio + 0.1 x load-time
ratio.
"""

from __future__ import annotations

import math
from collections.abc import Collection, Hashable, Mapping
from dataclasses import dataclass, field
from typing import TypeVar

from bench.llm.generation import TTFT_TIERS
from bench.metrics import spec_for

K = TypeVar("K", bound=Hashable)

DEFAULT_A = 3.0


def _tier_title(low_s: float, high_s: float) -> str:
    if math.isinf(high_s):
        return f"TTFT ({low_s * 1000:g} ms, inf)"
    return f"TTFT ({low_s * 1000:g}, {high_s * 1000:g}] ms"


# The tiers are the generation protocol's (bench.llm.generation), titled for the report.
LLM_TIERS: tuple[tuple[str, str], ...] = tuple(
    (name, _tier_title(low, high)) for name, low, high in TTFT_TIERS)
LOAD_METRIC = "model_load_s"
LLM_THROUGHPUT_WEIGHT = 0.9
LLM_LOAD_WEIGHT = 0.1


def sigmoid(x: float) -> float:
    """The logistic function, numerically safe for large |x|."""
    if x >= 0:
        return 1.0 / (1.0 + math.exp(-x))
    z = math.exp(x)
    return z / (1.0 + z)


def minmax_scale(values: Mapping[K, float], a: float = DEFAULT_A,
                 outside: Collection[K] = ()) -> dict[K, float]:
    """Map each value to [-a, a] by the min and max over ``values``; 0 for all if max == min.

    ``outside``: keys whose values do not set the min and max (a value far beyond what the
    spec sheets predict would flatten everyone else's scale); they are mapped by the others'
    min and max and clipped to [-a, a].
    """
    if a <= 0:
        raise ValueError(f"a must be positive, got {a}")
    if not values:
        return {}
    inside = [v for k, v in values.items() if k not in outside] or list(values.values())
    low, high = min(inside), max(inside)
    if high == low:
        return {k: 0.0 if k not in outside or v == low else math.copysign(a, v - low)
                for k, v in values.items()}
    return {k: max(-a, min(a, -a + 2 * a * (v - low) / (high - low)))
            for k, v in values.items()}


@dataclass(frozen=True)
class MetricPart:
    """One metric's share in a device's composite score."""

    metric: str
    value: float
    scaled: float  # x~
    weight: float  # normalised k_i
    contribution: float  # k_i * sigmoid(+/- x~)


@dataclass
class Composite:
    score: float
    parts: list[MetricPart] = field(default_factory=list)


@dataclass
class CompositeResult:
    """Composite scores of one workload: per device, the metrics used and those left out."""

    scores: dict[Hashable, Composite]
    used: list[str]
    dropped: dict[str, tuple[Hashable, str]]  # metric -> (a device lacking it, why)


def composite_scores(table: Mapping[str, Mapping[K, float | None]],
                     directions: Mapping[str, int], weights: Mapping[str, float],
                     devices: list[K], a: float = DEFAULT_A,
                     missing_reasons: Mapping[tuple[str, K], str] | None = None,
                     outliers: Collection[tuple[str, K]] = ()) -> CompositeResult:
    """Composite score of each of ``devices`` from ``table[metric][device]``.

    ``directions[metric]`` is +1 when larger is better and -1 when smaller is better;
    ``weights[metric]`` the relative weight k (metrics with weight 0 or no direction are not
    scored). ``outliers``: (metric, device) values kept out of that metric's min and max.
    """
    missing_reasons = missing_reasons or {}
    used: list[str] = []
    dropped: dict[str, tuple[Hashable, str]] = {}
    for metric in weights:
        if weights[metric] <= 0 or directions.get(metric, 0) == 0:
            continue
        column = table.get(metric, {})
        lacking = [d for d in devices if column.get(d) is None]
        if lacking:
            dropped[metric] = (lacking[0], missing_reasons.get((metric, lacking[0]), "no value"))
            continue
        used.append(metric)
    total = math.fsum(weights[m] for m in used)
    scores: dict[Hashable, Composite] = {d: Composite(0.0) for d in devices}
    for metric in used:
        column = {d: float(table[metric][d]) for d in devices}  # type: ignore[arg-type]
        scaled = minmax_scale(column, a, {d for m, d in outliers if m == metric})
        k = weights[metric] / total
        for d in devices:
            contribution = k * sigmoid(directions[metric] * scaled[d])
            scores[d].parts.append(MetricPart(metric, column[d], scaled[d], k, contribution))
    for comp in scores.values():
        comp.score = math.fsum(p.contribution for p in comp.parts)
    if not used:
        scores = {}
    return CompositeResult(scores, used, dropped)


def relative_score(test: float | None, baseline: float | None, direction: int) -> float | None:
    """Test relative to baseline, 1.0 = equal and more = better; None if undefined."""
    if test is None or baseline is None or direction == 0:
        return None
    if direction > 0:
        return test / baseline if baseline > 0 else None
    return baseline / test if test > 0 else None


@dataclass(frozen=True)
class TierScore:
    tier: str
    score: float | None
    throughput_ratio: float | None
    load_ratio: float | None
    note: str = ""


def llm_tier_scores(test: Mapping[str, float | None], baseline: Mapping[str, float | None],
                    throughput_weight: float = LLM_THROUGHPUT_WEIGHT,
                    load_weight: float = LLM_LOAD_WEIGHT) -> list[TierScore]:
    """Per TTFT tier: 0.9 x (test / baseline max throughput) + 0.1 x (baseline / test load time).

    A tier the baseline never reached is not scored. A tier the baseline reached and the
    test device did not scores 0 for its throughput part (it cannot serve at that latency).
    """
    load = relative_score(test.get(LOAD_METRIC), baseline.get(LOAD_METRIC),
                          spec_for(LOAD_METRIC).better)
    out = []
    for metric, _title in LLM_TIERS:
        base, mine = baseline.get(metric), test.get(metric)
        if base is None or base <= 0:
            out.append(TierScore(metric, None, None, load, "baseline has no grid point here"))
            continue
        if load is None:
            out.append(TierScore(metric, None, None, None, "no model load time to compare"))
            continue
        if mine is None:
            ratio, note = 0.0, "no grid point of the test device in this tier"
        else:
            ratio, note = mine / base, ""
        out.append(TierScore(metric, throughput_weight * ratio + load_weight * load, ratio,
                             load, note))
    return out


def weighted_geomean(values: Mapping[str, float | None], weights: Mapping[str, float]
                     ) -> float | None:
    """Weighted geometric mean of the ratios present (None if nothing to average).

    Ratios are summarised geometrically, as SPEC CPU does: a ratio of 89 and one of 1/89
    cancel, where an arithmetic mean would let the 89 outweigh everything else. A ratio of
    0 (nothing achieved) makes the mean 0.
    """
    pairs = [(v, weights.get(m, 0.0)) for m, v in values.items() if v is not None]
    pairs = [(v, w) for v, w in pairs if w > 0]
    total = math.fsum(w for _, w in pairs)
    if total <= 0 or any(v < 0 for v, _ in pairs):
        return None
    if any(v == 0 for v, _ in pairs):
        return 0.0
    return math.exp(math.fsum(w * math.log(v) for v, w in pairs) / total)


def weighted_mean(values: Mapping[str, float | None], weights: Mapping[str, float]
                  ) -> float | None:
    """Mean of the values present, weighted by ``weights`` (None if nothing to average)."""
    pairs = [(v, weights.get(m, 0.0)) for m, v in values.items() if v is not None]
    total = math.fsum(w for _, w in pairs)
    if total <= 0:
        return None
    return math.fsum(v * w for v, w in pairs) / total
