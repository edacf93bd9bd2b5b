"""The scorecard's arithmetic (docs/scorecard.md), as small pure functions.

Every score is a fraction of the baseline (1.0 = the baseline's figure). The evaluation
template's rules: an item with no data is "NA" and scores 0; an item that did not pass its
acceptance scores 0. ``None`` stands for NA here and ``na_zero`` turns it into the 0 that
enters a sum, so the table can still show "NA" where the arithmetic used 0.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

from bench.llm.soak import longest_failure_free_s
from bench.llm.train_formulas import loss_difference_variance
from bench.metrics import spec_for

__all__ = ["longest_failure_free_s"]  # one definition: the soak records h with it


def na_zero(score: float | None) -> float:
    """The template's rule: NA (no data) scores 0."""
    return 0.0 if score is None else float(score)


def weighted_sum(scores: Mapping[str, float | None], weights: Mapping[str, float]) -> float:
    """Sum of weight x score over the weighted names; a name without a score counts 0."""
    return math.fsum(w * na_zero(scores.get(name)) for name, w in weights.items())


def weighted_mean(scores: Mapping[str, float | None], weights: Mapping[str, float]) -> float:
    """``weighted_sum`` divided by the weights' sum (weights that do not sum to 1, as the
    template's communication table's 100.4 %, still give 1.0 at the baseline)."""
    total = math.fsum(weights.values())
    if total <= 0:
        raise ValueError("the weights sum to zero")
    return weighted_sum(scores, weights) / total


def ratio(test: float | None, baseline: float | None, higher_is_better: bool = True
          ) -> float | None:
    """test / baseline (baseline / test where smaller is better); NA when either is missing
    or not positive."""
    if test is None or baseline is None or test <= 0 or baseline <= 0:
        return None
    return test / baseline if higher_is_better else baseline / test


def metric_ratio(metric: str, test: float | None, baseline: float | None) -> float | None:
    """``ratio`` of a metric the way the catalogue says is better (bench/metrics.yaml:
    test / baseline for a rate, baseline / test for a time)."""
    spec = spec_for(metric)
    if spec is None or not spec.better:
        raise ValueError(f"{metric} has no better direction in bench/metrics.yaml")
    return ratio(test, baseline, higher_is_better=spec.better > 0)


# -- training and fine-tuning ------------------------------------------------------------
def support_rate(trained: Mapping[str, bool | None], alphas: Mapping[str, float]) -> float:
    """Model support rate: sum of alpha_i x [model i trained]; a model not run counts 0."""
    return math.fsum(a for name, a in alphas.items() if trained.get(name))


def performance(tgs: Mapping[str, float | None], tgs_baseline: Mapping[str, float | None],
                weights: Mapping[str, float]) -> float:
    """Sum of W_i x TGS_i / TGS_baseline,i; a model without either TGS counts 0."""
    return math.fsum(w * na_zero(ratio(tgs.get(name), tgs_baseline.get(name)))
                     for name, w in weights.items())


def curve_within_tolerance(test: Sequence[float], baseline: Sequence[float],
                           tolerance: float) -> bool:
    """Whether a loss curve follows the baseline's: the mean absolute step-by-step
    difference over the common steps is at most ``tolerance`` x the baseline's mean loss."""
    n = min(len(test), len(baseline))
    if n == 0:
        return False
    mad = math.fsum(abs(test[i] - baseline[i]) for i in range(n)) / n
    return mad <= tolerance * abs(math.fsum(baseline[:n]) / n)


def stability_variance(test: Sequence[float], baseline: Sequence[float], steps: int = 100
                       ) -> float | None:
    """The template's var = (1/n) x sum (d_i - mean d)^2, d_i = L_i - L_baseline,i, over the
    first ``steps`` steps both curves have (NA without a common step)."""
    return loss_difference_variance(list(test[:steps]), list(baseline[:steps]))


def stability_score(crashes: int, failure_free_s: float, window_s: float,
                    variance: float | None, crash_weight: float = 0.6,
                    hours_weight: float = 0.2, variance_weight: float = 0.2) -> float:
    """0.6 x 1/(C+1)^2 + 0.2 x h/window + 0.2 x (1 - min(1, var)); the template's window is
    72 h, a shorter soak scales h to its own window. NA variance (no baseline run) scores
    its term 0."""
    if crashes < 0 or window_s <= 0:
        raise ValueError("crash count must be >= 0 and the window positive")
    h = min(max(failure_free_s, 0.0), window_s) / window_s
    var_term = 0.0 if variance is None else 1.0 - min(1.0, variance)
    return (crash_weight / (crashes + 1) ** 2 + hours_weight * h
            + variance_weight * var_term)


# -- checkpoint and communication ------------------------------------------------------------
def checkpoint_score(save_s: float | None, load_s: float | None, base_save_s: float | None,
                     base_load_s: float | None, save_weight: float = 0.7,
                     load_weight: float = 0.3) -> float | None:
    """save_weight x base save / save + load_weight x base load / load (shorter is better);
    NA when neither time can be compared, a missing one counts 0."""
    save = metric_ratio("checkpoint_save_s", save_s, base_save_s)
    load = metric_ratio("checkpoint_load_s", load_s, base_load_s)
    if save is None and load is None:
        return None
    return save_weight * na_zero(save) + load_weight * na_zero(load)


def percent_of_baseline(score: float) -> str:
    return f"{score * 100:.1f} %"


def headline(overall: float, baseline_device: str) -> str:
    """The template's one sentence."""
    return f"Overall, {percent_of_baseline(overall)} of the {baseline_device}."
