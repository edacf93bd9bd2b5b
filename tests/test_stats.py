"""Run-rule statistics against numbers worked out by hand."""

from __future__ import annotations

import math

import pytest

from bench.stats import (
    latency_summary,
    percentile,
    summarize,
    trapezoid_energy_j,
    window_max,
    window_mean,
)


def test_nearest_rank_percentiles_of_ten_values():
    values = [0.10, 0.20, 0.30, 0.40, 0.50, 0.60, 0.70, 0.80, 0.90, 1.00]
    # rank = ceil(p/100 * 10): p50 -> 5th, p90 -> 9th, p99 -> ceil(9.9) = 10th value
    assert percentile(values, 50) == 0.50
    assert percentile(values, 90) == 0.90
    assert percentile(values, 99) == 1.00
    assert percentile(values, 100) == 1.00
    assert percentile(values, 1) == 0.10  # ceil(0.1) = 1st value


def test_p95_of_forty_latencies_is_the_38th():
    values = [float(i) for i in range(40, 0, -1)]  # 1..40 ms, reversed
    # rank = ceil(0.95 * 40) = 38; p90 = ceil(36) = 36th; p99 = ceil(39.6) = 40th
    assert percentile(values, 95) == 38.0
    lat = latency_summary(values)
    assert (lat["p50_s"], lat["p90_s"], lat["p95_s"], lat["p99_s"]) == (20.0, 36.0, 38.0, 40.0)


def test_percentile_is_order_independent_and_always_an_observation():
    values = [5.0, 1.0, 4.0, 2.0, 3.0]
    assert percentile(values, 50) == 3.0  # ceil(2.5) = 3rd of 1..5
    assert percentile(values, 90) == 5.0  # ceil(4.5) = 5th
    assert percentile(values, 20) == 1.0  # ceil(1.0) = 1st


def test_percentile_rejects_bad_input():
    with pytest.raises(ValueError):
        percentile([], 50)
    with pytest.raises(ValueError):
        percentile([1.0], 0)


def test_summary_mean_std_cv():
    # 2, 4, 4, 4, 5, 5, 7, 9: mean 5, squared deviations sum 32, sample var 32/7
    s = summarize([2, 4, 4, 4, 5, 5, 7, 9])
    assert s.n == 8
    assert s.mean == 5
    assert s.std == pytest.approx(math.sqrt(32 / 7))  # 2.138...
    assert s.cv == pytest.approx(math.sqrt(32 / 7) / 5)
    assert (s.min, s.max) == (2, 9)


def test_summary_of_one_repeat_has_no_spread():
    s = summarize([3.5])
    assert (s.mean, s.std, s.cv) == (3.5, None, None)


def test_latency_summary():
    lat = latency_summary([0.010, 0.012, 0.011, 0.050])
    assert lat["mean_s"] == pytest.approx(0.02075)  # 0.083 / 4
    assert lat["p50_s"] == 0.011  # ceil(2) = 2nd of sorted 0.010 0.011 0.012 0.050
    assert lat["p90_s"] == 0.050  # ceil(3.6) = 4th
    assert lat["p95_s"] == 0.050  # ceil(3.8) = 4th
    assert lat["p99_s"] == 0.050


def test_trapezoid_energy_constant_power():
    t = [0.0, 1.0, 2.0, 3.0]
    p = [100.0, 100.0, 100.0, 100.0]
    assert trapezoid_energy_j(t, p, 0.5, 2.5) == pytest.approx(200.0)  # 100 W x 2 s


def test_trapezoid_energy_ramp_interpolates_window_edges():
    # Power rises 0 -> 300 W over 3 s (100 W/s). Window [0.5, 2.5]: power 50 -> 250 W,
    # area = 2 s x (50 + 250) / 2 = 300 J.
    t = [0.0, 1.0, 2.0, 3.0]
    p = [0.0, 100.0, 200.0, 300.0]
    assert trapezoid_energy_j(t, p, 0.5, 2.5) == pytest.approx(300.0)


def test_trapezoid_energy_skips_missing_samples_and_needs_bracketing():
    t = [0.0, 1.0, 2.0]
    assert trapezoid_energy_j(t, [10.0, None, 10.0], 0.0, 2.0) == pytest.approx(20.0)
    assert trapezoid_energy_j(t, [10.0, 10.0, 10.0], 0.5, 3.0) is None  # not covered
    assert trapezoid_energy_j(t, [None, None, 10.0], 0.0, 2.0) is None


def test_window_mean_and_max_only_use_samples_inside():
    t = [0.0, 1.0, 2.0, 3.0]
    v = [90.0, 10.0, 20.0, 99.0]
    assert window_mean(t, v, 0.5, 2.5) == 15.0
    assert window_max(t, v, 0.5, 2.5) == 20.0
    assert window_mean(t, v, 3.5, 4.0) is None
