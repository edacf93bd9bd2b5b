"""What users of other benchmark tools expect to set on every run: run rules and compile from
the command line (recorded as overrides), threads and CPUs as device settings, and the cold
start measured apart from the steady state."""

from __future__ import annotations

import pytest

from bench.config import (
    DeviceSettings,
    RunRules,
    format_cpus,
    load_suite,
    parse_cpus,
    parse_override,
)
from bench.errors import UserError
from bench.timing import first_step, timed_loop

# -- --set: parameters, run rules, compile -----------------------------------------------------


@pytest.mark.parametrize(("text", "parsed"), [
    ("resnet-train.batch_size=64", ("resnet-train", "batch_size", 64)),
    ("rules.min_duration_s=30", ("*", "rules.min_duration_s", 30)),
    ("resnet-train.rules.repeats=5", ("resnet-train", "rules.repeats", 5)),
    ("a.b.rules.warmup_iters=0", ("a.b", "rules.warmup_iters", 0)),  # dotted entry ids
    ("resnet-infer.compile=true", ("resnet-infer", "compile", True)),
    ("gemm-fp32.sizes=[256, 512]", ("gemm-fp32", "sizes", [256, 512])),
])
def test_override_forms(text, parsed):
    assert parse_override(text) == parsed


@pytest.mark.parametrize(("text", "words"), [
    ("batch_size=64", "not of a known form"),
    ("rules.nope=1", "names no run rule 'nope'"),
    ("resnet-train.rules.=1", "not of a known form"),
    ("x.batch_size", "not of a known form"),
])
def test_bad_overrides_say_what_is_accepted(text, words):
    with pytest.raises(UserError) as err:
        parse_override(text)
    assert words in str(err.value)


def test_rule_overrides_apply_to_all_or_one_entry_and_are_recorded():
    suite = load_suite("smoke", overrides=["rules.min_duration_s=30",
                                           "resnet-train.rules.repeats=5",
                                           "resnet-infer.compile=true"])
    by_id = {e.id: e for e in suite.entries}
    assert {e.rules.min_duration_s for e in suite.entries} == {30}
    assert by_id["resnet-train"].rules.repeats == 5
    assert by_id["resnet-infer"].rules.repeats == 2  # the suite's
    # Recorded exactly as parameter overrides are (so the report marks them O).
    assert by_id["resnet-train"].overrides == {"rules.min_duration_s": 30, "rules.repeats": 5}
    assert by_id["resnet-infer"].overrides == {"rules.min_duration_s": 30, "compile": True}
    assert by_id["resnet-infer"].compile and not by_id["resnet-train"].compile
    # A rule override is not a parameter.
    assert "rules.repeats" not in by_id["resnet-train"].params


@pytest.mark.parametrize(("override", "words"), [
    ("rules.repeats=0", "rules.repeats=0 (entry 'resnet-infer'): 0 is less than the minimum"),
    ("rules.min_duration_s=soon", "'soon' is not of type 'number'"),
    ("resnet-infer.compile=3", "compile is true or false"),
    ("nosuch.rules.repeats=2", "match no entry"),
])
def test_bad_rule_or_compile_values_are_usage_errors(override, words):
    with pytest.raises(UserError) as err:
        load_suite("smoke", overrides=[override])
    assert words in str(err.value)


# -- device settings ------------------------------------------------------------------------------
def test_cpu_lists_round_trip():
    assert parse_cpus("0-3,8, 10-11") == (0, 1, 2, 3, 8, 10, 11)
    assert format_cpus((0, 1, 2, 3, 8, 10, 11)) == "0-3,8,10-11"
    assert parse_cpus(5) == (5,)
    for bad in ("a-b", "3-1", "1,,2"):
        with pytest.raises(UserError):
            parse_cpus(bad)


def test_threads_default_to_the_pinned_cpus_and_interop_to_threads():
    assert DeviceSettings(cpus=(0, 1, 2)).effective() == DeviceSettings(3, 3, (0, 1, 2))
    assert DeviceSettings(threads=2).effective() == DeviceSettings(2, 2, None)
    assert DeviceSettings(threads=4, interop_threads=1).effective().interop_threads == 1
    assert DeviceSettings().effective() == DeviceSettings()
    assert DeviceSettings(4, None, (0, 1)).cli_args() == ["--threads", "4", "--cpus", "0-1"]


def test_command_line_device_settings_win_over_entry_and_suite(tmp_path):
    suite = tmp_path / "s.yaml"
    suite.write_text(
        "name: s\ndevice: {threads: 2, cpus: '0-1'}\nentries:\n"
        "  - {id: a, workload: gemm, mode: infer}\n"
        "  - {id: b, workload: gemm, mode: infer, device: {threads: 1}}\n")
    by_id = {e.id: e for e in load_suite(str(suite)).entries}
    assert by_id["a"].device == DeviceSettings(2, None, (0, 1))
    assert by_id["b"].device == DeviceSettings(1, None, (0, 1))
    cli = {e.id: e for e in load_suite(str(suite), device=DeviceSettings(threads=3)).entries}
    assert cli["a"].device.threads == cli["b"].device.threads == 3
    assert cli["b"].device.cpus == (0, 1)
    # Device settings are not overrides: they make another device, not another workload.
    assert cli["a"].overrides == {}


def test_bad_device_settings_in_a_suite_name_the_field(tmp_path):
    suite = tmp_path / "s.yaml"
    suite.write_text("name: s\nentries:\n  - {workload: gemm, mode: infer, "
                     "device: {threads: 0}}\n")
    with pytest.raises(UserError) as err:
        load_suite(str(suite))
    assert "$.entries[0].device.threads" in str(err.value)


def test_threads_from_the_command_line_are_checked():
    with pytest.raises(UserError, match="not a thread count"):
        DeviceSettings.from_cli(threads="0")
    with pytest.raises(UserError, match="not a thread count"):
        DeviceSettings.from_cli(threads="four")
    assert DeviceSettings.from_cli("2", None, "0,1") == DeviceSettings(2, None, (0, 1))


# -- cold start ------------------------------------------------------------------------------------
class Clock:
    """Advances by the next of ``costs`` on each step (the first step is the cold one)."""

    def __init__(self, costs: list[float]) -> None:
        self.now, self.costs = 10.0, list(costs)

    def __call__(self) -> float:
        return self.now

    def step(self) -> int:
        self.now += self.costs.pop(0) if self.costs else 0.1
        return 1


def test_the_first_step_is_timed_before_warm_up_and_kept_out_of_the_window():
    clock = Clock([5.0, 0.2, 0.1])
    with first_step() as first:
        loop = timed_loop(clock.step, lambda: None, RunRules(warmup_iters=2, min_iters=3,
                                                              min_duration_s=0), clock=clock)
    assert first.latency_s == loop.first_step_s == 5.0
    assert loop.latencies_s == pytest.approx([0.1, 0.1, 0.1])  # warm-up excluded


def test_without_warm_up_the_first_timed_step_is_the_cold_one():
    clock = Clock([3.0])
    with first_step() as first:
        loop = timed_loop(clock.step, lambda: None, RunRules(warmup_iters=0, min_iters=2,
                                                              min_duration_s=0), clock=clock)
    assert first.latency_s == 3.0 and loop.latencies_s == pytest.approx([3.0, 0.1])


def test_only_the_first_loop_of_a_repeat_is_its_cold_start():
    clock = Clock([4.0, 0.1, 0.1, 2.0])
    rules = RunRules(warmup_iters=1, min_iters=1, min_duration_s=0)
    with first_step() as first:
        timed_loop(clock.step, lambda: None, rules, clock=clock)  # a grid's first point
        second = timed_loop(clock.step, lambda: None, rules, clock=clock)
    assert first.latency_s == 4.0
    assert second.first_step_s == pytest.approx(0.1)  # each loop knows its own first step
