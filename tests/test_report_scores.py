"""Score arithmetic against numbers worked out by hand (docs/report.md)."""

from __future__ import annotations

import math

import pytest

from bench.errors import UserError
from testbed.report.metrics import ScoreSettings, parse_weights, score_settings
from testbed.report.scores import (
    composite_scores,
    llm_tier_scores,
    minmax_scale,
    relative_score,
    sigmoid,
    weighted_mean,
)

# sigmoid(1) = 1 / (1 + e^-1) = 0.7310585786, sigmoid(3) = 0.9525741268
S1, S3 = 0.7310585786300049, 0.9525741268224334


def test_sigmoid_by_hand():
    assert sigmoid(0) == 0.5
    assert sigmoid(1) == pytest.approx(S1, abs=1e-12)
    assert sigmoid(-3) == pytest.approx(1 - S3, abs=1e-12)
    assert sigmoid(-800) == 0.0 and sigmoid(800) == 1.0  # no overflow


def test_minmax_maps_to_minus_a_plus_a():
    # x = 10, 20, 40 with a = 3: -3 + 6 (x - 10) / 30 -> -3, -1, +3
    assert minmax_scale({"A": 10, "B": 20, "C": 40}, 3) == pytest.approx(
        {"A": -3.0, "B": -1.0, "C": 3.0})
    # a = 1: -1 + 2 (x - 10) / 30 -> -1, -1/3, 1
    assert minmax_scale({"A": 10, "B": 20, "C": 40}, 1) == pytest.approx(
        {"A": -1.0, "B": -1 / 3, "C": 1.0})


def test_minmax_with_max_equal_min_gives_zero():
    assert minmax_scale({"A": 5.0, "B": 5.0}) == {"A": 0.0, "B": 0.0}
    assert minmax_scale({"only": 7.0}) == {"only": 0.0}
    with pytest.raises(ValueError):
        minmax_scale({"A": 1.0}, a=0)


def test_composite_three_devices_by_hand():
    # throughput (larger better): 10, 20, 40 -> x~ = -3, -1, +3 -> sigmoid(x~)
    # power (smaller better): 100, 200, 200 -> x~ = -3, +3, +3 -> sigmoid(-x~)
    # equal weights -> k = 1/2 each:
    #   A: (s(-3) + s(3)) / 2 = 0.5
    #   B: (s(-1) + s(-3)) / 2 = (0.2689414214 + 0.0474258732) / 2 = 0.1581836473
    #   C: (s(3) + s(-3)) / 2 = 0.5
    table = {"throughput_items_per_s": {"A": 10.0, "B": 20.0, "C": 40.0},
             "power_w_mean": {"A": 100.0, "B": 200.0, "C": 200.0}}
    result = composite_scores(table, {"throughput_items_per_s": 1, "power_w_mean": -1},
                              {"throughput_items_per_s": 1.0, "power_w_mean": 1.0},
                              ["A", "B", "C"], a=3)
    scores = {d: c.score for d, c in result.scores.items()}
    assert scores["A"] == pytest.approx(0.5, abs=1e-12)
    assert scores["B"] == pytest.approx(0.1581836473, abs=1e-9)
    assert scores["C"] == pytest.approx(0.5, abs=1e-12)
    part = result.scores["B"].parts[0]
    assert (part.metric, part.scaled, part.weight) == ("throughput_items_per_s", -1.0, 0.5)
    assert part.contribution == pytest.approx(0.5 * (1 - S1), abs=1e-12)


def test_composite_weights_are_relative_and_a_is_a_setting():
    # weights 3:1 -> k = 0.75, 0.25; two devices, a = 1 -> x~ = -1, +1
    # X: 0.75 s(-1) + 0.25 s(-(-1)) = 0.75 * 0.2689414214 + 0.25 * 0.7310585786 = 0.3844707107
    table = {"throughput_items_per_s": {"X": 1.0, "Y": 2.0},
             "power_w_mean": {"X": 1.0, "Y": 2.0}}
    result = composite_scores(table, {"throughput_items_per_s": 1, "power_w_mean": -1},
                              {"throughput_items_per_s": 3.0, "power_w_mean": 1.0},
                              ["X", "Y"], a=1)
    assert result.scores["X"].score == pytest.approx(0.75 * (1 - S1) + 0.25 * S1, abs=1e-12)
    assert result.scores["Y"].score == pytest.approx(0.75 * S1 + 0.25 * (1 - S1), abs=1e-12)


def test_composite_equal_devices_score_one_half():
    table = {"throughput_items_per_s": {"A": 3.0, "B": 3.0}}
    result = composite_scores(table, {"throughput_items_per_s": 1},
                              {"throughput_items_per_s": 1.0}, ["A", "B"])
    assert {d: c.score for d, c in result.scores.items()} == {"A": 0.5, "B": 0.5}


def test_composite_leaves_out_a_metric_one_device_lacks_and_says_why():
    table = {"throughput_items_per_s": {"A": 1.0, "B": 2.0},
             "power_w_mean": {"A": 100.0, "B": None}}
    result = composite_scores(table, {"throughput_items_per_s": 1, "power_w_mean": -1},
                              {"throughput_items_per_s": 1.0, "power_w_mean": 1.0},
                              ["A", "B"], a=3,
                              missing_reasons={("power_w_mean", "B"): "no RAPL"})
    assert result.used == ["throughput_items_per_s"]
    assert result.dropped == {"power_w_mean": ("B", "no RAPL")}
    # one metric, weight 1: A = s(-3), B = s(3)
    assert result.scores["A"].score == pytest.approx(1 - S3, abs=1e-12)
    assert result.scores["B"].score == pytest.approx(S3, abs=1e-12)


def test_relative_score_is_oriented_so_more_is_better():
    assert relative_score(90.0, 100.0, +1) == pytest.approx(0.9)
    assert relative_score(20.0, 10.0, -1) == pytest.approx(0.5)  # twice as slow to load
    assert relative_score(None, 10.0, +1) is None
    assert relative_score(5.0, 0.0, +1) is None
    assert relative_score(0.0, 10.0, -1) is None


def test_llm_tier_scores_by_hand():
    # tier 1: 0.9 * 900/1000 + 0.1 * 10/20 = 0.81 + 0.05 = 0.86
    # tier 2: the test device has no grid point there -> 0.9 * 0 + 0.1 * 0.5 = 0.05
    # tier 3: the baseline has none -> not scored
    # tier 4: 0.9 * 3000/2000 + 0.05 = 1.4
    test = {"model_load_s": 20.0, "tier_max_tokens_per_s_0_500ms": 900.0,
            "tier_max_tokens_per_s_500_1000ms": None,
            "tier_max_tokens_per_s_1000_3000ms": 50.0,
            "tier_max_tokens_per_s_3000ms_inf": 3000.0}
    base = {"model_load_s": 10.0, "tier_max_tokens_per_s_0_500ms": 1000.0,
            "tier_max_tokens_per_s_500_1000ms": 1500.0,
            "tier_max_tokens_per_s_1000_3000ms": None,
            "tier_max_tokens_per_s_3000ms_inf": 2000.0}
    tiers = llm_tier_scores(test, base)
    assert [t.score for t in tiers] == pytest.approx([0.86, 0.05, None, 1.4])
    assert tiers[0].throughput_ratio == pytest.approx(0.9)
    assert tiers[0].load_ratio == pytest.approx(0.5)
    assert "no grid point" in tiers[1].note and "baseline" in tiers[2].note


def test_weighted_mean_skips_missing_values():
    assert weighted_mean({"a": 1.0, "b": 3.0, "c": None}, {"a": 1, "b": 3, "c": 5}) == \
        pytest.approx((1 * 1 + 3 * 3) / 4)
    assert weighted_mean({"a": None}, {"a": 1}) is None


def test_score_settings_parse_and_reject_bad_input():
    settings = score_settings("2.5", ["throughput_items_per_s=2", "temp_c_mean=0"])
    assert settings.a == 2.5
    assert settings.weights["throughput_items_per_s"] == 2.0
    assert settings.weights["temp_c_mean"] == 0.0
    assert ScoreSettings().a == 3.0
    assert set(ScoreSettings().weights_for("train")) == set(ScoreSettings().weights) - {
        "latency_mean_s"}
    for bad in (["throughput_items_per_s"], ["throughput_items_per_s=-1"],
                ["clock_hz_mean=1"], ["nonsense=1"], ["throughput_items_per_s=nan"],
                ["throughput_items_per_s=inf"]):
        with pytest.raises(UserError):
            parse_weights(bad)
    for a in ("0", "-1", "abc", "inf"):
        with pytest.raises(UserError):
            score_settings(a)
    with pytest.raises(UserError):
        parse_weights([f"{m}=0" for m in ScoreSettings().weights])
    assert math.isclose(sum(ScoreSettings().weights.values()), len(ScoreSettings().weights))


def test_micro_benchmarks_score_one_measurement_once():
    """A GEMM's throughput is its FLOP/s and its latency that point's time per call: the
    composite must not count the same measurement three times."""
    settings = ScoreSettings()
    micro = settings.weights_for("infer", "micro")
    cv = settings.weights_for("infer", "cv")
    assert "throughput_items_per_s" in micro
    assert "flop_per_s" not in micro and "latency_mean_s" not in micro
    assert "latency_mean_s" in cv


def test_geometric_mean_of_ratios_by_hand():
    from testbed.report.scores import weighted_geomean, weighted_mean

    # One ratio of 89 (an edge board's power against a datacenter card's) and one of 1/89
    # cancel; their arithmetic mean would say 44.5x.
    ratios = {"power_w_mean": 89.0, "throughput_items_per_s": 1 / 89}
    even = {"power_w_mean": 1.0, "throughput_items_per_s": 1.0}
    assert weighted_geomean(ratios, even) == pytest.approx(1.0)
    assert weighted_mean(ratios, even) == pytest.approx(44.5056, rel=1e-4)
    # weights: (2^2 * 8^1)^(1/3) = 32^(1/3)
    assert weighted_geomean({"a": 2.0, "b": 8.0}, {"a": 2.0, "b": 1.0}) == pytest.approx(
        32 ** (1 / 3))
    assert weighted_geomean({"a": 0.0, "b": 8.0}, {"a": 1.0, "b": 1.0}) == 0.0
    assert weighted_geomean({"a": None}, {"a": 1.0}) is None


def test_minmax_scale_keeps_outliers_out_of_the_range():
    from testbed.report.scores import minmax_scale

    values = {"a": 10.0, "b": 20.0, "wild": 1e6}
    # without the outlier's say: a -> -3, b -> +3, the outlier clipped to +3
    assert minmax_scale(values, 3.0, {"wild"}) == {"a": -3.0, "b": 3.0, "wild": 3.0}
    # with it, 10 and 20 would both sit at -3 (flattened)
    flat = minmax_scale(values, 3.0)
    assert flat["a"] == pytest.approx(-3.0) and flat["b"] == pytest.approx(-2.99994)


def test_spec_outliers_by_hand():
    from testbed.report.checks import spec_outliers

    peaks = {"a100": 312e12, "pcie": 312e12, "mlu": 48e12}
    # shares of peak: a100 2400/312, pcie 2000/312, mlu 4000/48 = 11.7x their median
    found = spec_outliers({"a100": 2400, "pcie": 2000, "mlu": 4000}, peaks, 10.0, +1)
    assert set(found) == {"mlu"}
    assert found["mlu"] == pytest.approx((4000 / 48) / (2200 / 312))
    assert spec_outliers({"a100": 2400, "pcie": 2000, "mlu": 900}, peaks, 10.0, +1) == {}
    # latency: smaller is better, its inverse is the speed
    assert set(spec_outliers({"a100": 0.0267, "mlu": 0.0001}, peaks, 10.0, -1)) == {"mlu"}
    # a device without a peak takes no part; one device alone has nothing to compare with
    assert spec_outliers({"a100": 2400, "cpu": 1e9}, {"a100": 312e12}, 10.0, +1) == {}


def test_every_latency_percentile_is_checked_against_the_spec_sheets():
    """Bug: the report's list of metrics a device's speed predicts (its outlier check
    against the spec sheets' peaks) held the p50, p90 and p99 latencies but not p95: an
    impossible p95 beside plausible others went unflagged. The catalogue's depends_on:
    device_speed decides now."""
    from bench.stats import LATENCY_PERCENTILES
    from testbed.report.analysis import OUTLIER_METRICS

    assert {f"latency_p{p}_s" for p in LATENCY_PERCENTILES} <= set(OUTLIER_METRICS)
