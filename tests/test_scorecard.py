"""The scorecard's arithmetic against numbers worked out by hand (docs/scorecard.md)."""

from __future__ import annotations

import re

import pytest
import yaml

from bench.errors import UserError
from bench.micro import formulas as mf
from testbed.scorecard import formulas as sf
from testbed.scorecard.settings import SETTINGS_FILE, load_settings


def test_deepspeed_throughput_reproduces_the_template_check():
    # 4259924984 x 4 x 2 x 8 / 0.126905 s = 2148.3 Gbit/s
    bits = mf.deepspeed_bits_per_s("all_reduce", 4259924984 * 4, 0.126905, 8)
    assert bits / 1e9 == pytest.approx(2148.338, abs=0.01)
    # all_gather: world x per-rank size; 8 x 536870912 B in 16.915 ms
    assert mf.deepspeed_bits_per_s("all_gather", 536870912, 0.016915, 8) / 1e9 == \
        pytest.approx(2031.292, rel=2e-5)  # the table rounds durations to 1 us
    assert mf.deepspeed_bits_per_s("broadcast", 1000, 1.0, 8) == 8000
    with pytest.raises(ValueError):
        mf.deepspeed_bits_per_s("gather", 1, 1.0, 2)


def test_deepspeed_message_of_an_all_gather_is_the_per_rank_input():
    assert mf.deepspeed_message_bytes("all_gather", 8 * 4096, 8) == 4096
    assert mf.deepspeed_message_bytes("all_to_all", 8 * 4096, 8) == 8 * 4096


def test_every_row_of_the_template_table_agrees_with_the_definition():
    for p in load_settings().comm_points:
        got = mf.deepspeed_bits_per_s(p.op, p.message_bytes, p.duration_ms / 1e3, p.devices)
        assert got / 1e9 == pytest.approx(p.throughput_gbit_per_s, rel=2e-4), p


def test_communication_weights_are_the_template_s():
    points = {p.key: p.weight for p in load_settings().comm_points}
    assert points["all_reduce@8"] == points["all_reduce@32"] == 0.25
    assert {points[f"{op}@{n}"] for op in ("all_gather", "all_to_all", "broadcast", "p2p")
            for n in (8, 32)} == {0.063}


def test_na_scores_zero_and_weights_are_normalised():
    assert sf.na_zero(None) == 0.0
    assert sf.weighted_mean({"a": 1.0, "b": None}, {"a": 1, "b": 1}) == 0.5
    assert sf.weighted_sum({"a": 0.5}, {"a": 0.4, "b": 0.6}) == pytest.approx(0.2)


def test_support_rate_and_performance():
    alphas = {"a": 0.25, "b": 0.25, "c": 0.25, "d": 0.25}
    assert sf.support_rate({"a": True, "b": False, "c": None}, alphas) == 0.25
    # 0.5 x 50/100 + 0.25 x 30/60 + 0.25 x NA(0) = 0.375
    assert sf.performance({"a": 50.0, "b": 30.0}, {"a": 100.0, "b": 60.0, "c": 10.0},
                          {"a": 0.5, "b": 0.25, "c": 0.25}) == pytest.approx(0.375)


def test_stability_score_formula():
    day = 24 * 3600.0
    # 0.6 / (1+1)^2 + 0.2 x 36/72 + 0.2 x (1 - 0.25) = 0.15 + 0.1 + 0.15
    assert sf.stability_score(1, 1.5 * day, 3 * day, 0.25) == pytest.approx(0.4)
    assert sf.stability_score(0, 3 * day, 3 * day, 0.0) == pytest.approx(1.0)
    # var above 1 is capped; NA variance scores its term 0
    assert sf.stability_score(0, 60.0, 60.0, 7.0) == pytest.approx(0.8)
    assert sf.stability_score(0, 60.0, 60.0, None) == pytest.approx(0.8)
    assert sf.stability_score(2, 30.0, 60.0, 0.5) == pytest.approx(0.6 / 9 + 0.1 + 0.1)


def test_stability_variance_over_the_first_steps():
    # d = 0.5, 0.5, -0.5; mean 1/6; (1/3)^2 + (1/3)^2 + (2/3)^2 = 2/3; / 3 = 2/9
    assert sf.stability_variance([1, 2, 3], [0.5, 1.5, 3.5]) == pytest.approx(2 / 9)
    assert sf.stability_variance([1, 2, 3], [0.5, 1.5, 3.5], steps=2) == 0.0
    assert sf.stability_variance([], [1.0]) is None


def test_longest_failure_free_stretch():
    assert sf.longest_failure_free_s(0, 100, [(60, 62), (30, 35)]) == 38
    assert sf.longest_failure_free_s(0, 100, [(30, None)]) == 30
    assert sf.longest_failure_free_s(0, 100, []) == 100


def test_checkpoint_score_and_curve_tolerance():
    assert sf.checkpoint_score(2.0, 1.0, 1.0, 0.5) == pytest.approx(0.7 * 0.5 + 0.3 * 0.5)
    assert sf.checkpoint_score(2.0, None, 1.0, 0.5) == pytest.approx(0.35)
    assert sf.checkpoint_score(None, None, 1.0, 0.5) is None
    assert sf.curve_within_tolerance([2.0, 1.0], [2.1, 1.0], 0.05)
    assert not sf.curve_within_tolerance([2.0, 1.0], [2.5, 1.0], 0.05)


def test_headline_sentence():
    assert sf.headline(0.1234, "NVIDIA A100") == "Overall, 12.3 % of the NVIDIA A100."


def test_basic_specs_are_the_template_s_a100_values():
    values = {v["key"]: v["value"] for v in load_settings().section("basic_specs")["values"]}
    assert values["fp16"] == values["bf16"] == 312e12 and values["tf32"] == 156e12
    assert (values["fp32"], values["int8"]) == (19.5e12, 624e12)
    assert (values["memory_bytes"], values["memory_bandwidth"]) == (80e9, 2039e9)
    assert (values["h2d"], values["d2h"], values["d2d"]) == (22.3e9, 15.0e9, 1587.6e9)
    assert (values["float_per_w"], values["int_per_w"]) == (0.557e12, 1.116e12)


def test_settings_file_is_valid_and_bad_settings_are_named(tmp_path):
    s = load_settings()
    assert s.section("checkpoint")["save_weight"] == 0.7
    assert s.stability["window_s"] == 72 * 3600
    doc = yaml.safe_load(SETTINGS_FILE.read_text())
    doc["training"]["models"]["pretrain-bert-base"]["alpha"] = 0.5
    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump(doc))
    with pytest.raises(UserError, match=r"alpha values sum to 1\.25"):
        load_settings(bad)
    doc["checkpoint"]["save_weight"] = "much"
    bad.write_text(yaml.safe_dump(doc))
    with pytest.raises(UserError, match="checkpoint"):
        load_settings(bad)


@pytest.mark.timeout(60)
def test_settings_are_read_as_every_user_yaml_is(tmp_path):
    """The suite loader's reader (bench.schema.read_yaml_file): a FIFO is refused by name (it
    blocked forever), and so is nesting deeper than the limit."""
    import os

    fifo = tmp_path / "settings.yaml"
    os.mkfifo(fifo)
    with pytest.raises(UserError, match=re.escape(f"Scorecard settings {fifo} is a FIFO")):
        load_settings(fifo)
    deep = tmp_path / "deep.yaml"
    deep.write_text("a: " + "[" * 100 + "]" * 100 + "\n")
    with pytest.raises(UserError, match=re.escape(f"Scorecard settings {deep} nests deeper than")):
        load_settings(deep)


def _fixed_devices(params: dict) -> int | None:
    """The devices a collectives entry uses when its suite fixes them (nproc x nnodes);
    None for 'every device' / 'every node of the run'."""
    nproc, nnodes = params.get("nproc"), params.get("nnodes")
    return nproc * nnodes if isinstance(nproc, int) and isinstance(nnodes, int) else None


def test_micro_full_measures_every_point_of_the_template_table():
    from bench.config import load_suite

    entries = [e for e in load_suite("micro-full").entries if e.workload == "collectives"]
    for p in load_settings().comm_points:
        assert any(
            _fixed_devices(e.params) == p.devices and p.op in e.params["ops"]
            and any(mf.deepspeed_message_bytes(p.op, n, p.devices) == p.message_bytes
                    for n in e.params["sizes_bytes"]) for e in entries), p
