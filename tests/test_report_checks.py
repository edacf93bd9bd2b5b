"""Each plausibility check, tripped by a result made for it (and passed by real results).

The documents are real smoke results (tests/fixtures/results) or accelerator results made
from them (tests/report_fixtures.py); most stay schema-valid, so the checks catch what the
schema cannot. Utilisation above 100 % is also rejected by the schema: the check is tested on
the raw document, and the report test shows the loader listing such a file as invalid.
"""

from __future__ import annotations

import copy

import pytest

from bench.jsonio import seal
from bench.schema import validation_errors
from bench.specs import find_spec
from testbed.report import checks
from testbed.report.checks import CheckSettings, identical_columns, run_checks, window_coverage
from tests.report_fixtures import (
    A100,
    A100_MEMORY,
    ONE_THREAD,
    TWO_THREADS,
    accelerator,
    as_sweep,
    load,
)

SPEC = find_spec(A100, "cuda")
S = CheckSettings()


def a100(entry: str = "resnet-infer") -> dict:
    return accelerator(TWO_THREADS, entry, A100, "cuda", A100_MEMORY, 14.0, 300, 60, 65, 34)


def failures(doc: dict, spec: dict | None = SPEC) -> dict[str, list[checks.Finding]]:
    out: dict[str, list[checks.Finding]] = {}
    for outcome in run_checks(doc, spec, S):
        if outcome.findings:
            out[outcome.check] = outcome.findings
    return out


def schema_valid(doc: dict) -> bool:
    return not validation_errors(seal(doc), "result")


@pytest.mark.parametrize("run", [ONE_THREAD, TWO_THREADS])
@pytest.mark.parametrize("entry", ["resnet-infer", "resnet-train", "gemm-infer"])
def test_real_results_pass_every_check(run, entry):
    assert failures(load(run, entry), None) == {}


def test_fixture_accelerators_pass_every_check():
    assert SPEC is not None and SPEC["power_limit_w"] == 400
    assert failures(a100()) == {}
    assert failures(as_sweep(a100("gemm-infer"), 19.5e12, 2039e9)) == {}


def test_efficiency_must_equal_throughput_over_power():
    doc = a100()
    m = doc["metrics"]
    expected = m["throughput_items_per_s"]["value"] / m["power_w_mean"]["value"]
    m["items_per_j"]["value"] = expected * 1.5
    assert schema_valid(doc)
    found = failures(doc)["efficiency"]
    assert found[0].metrics == ("items_per_j",)
    assert "off by 50%" in found[0].message and "tolerance 2%" in found[0].message
    m["items_per_j"]["value"] = expected * 1.01  # within 2 %
    assert "efficiency" not in failures(doc)


def test_efficiency_without_power_is_flagged():
    doc = a100()
    doc["metrics"]["power_w_mean"] = {"value": None, "unit": "W", "reason": "lost"}
    assert "no positive average power" in failures(doc)["efficiency"][0].message


def test_power_above_the_spec_sheet_limit():
    doc = a100()
    doc["metrics"]["power_w_mean"]["value"] = 480.0  # 1.2 x 400 W
    doc["metrics"]["items_per_j"]["value"] = \
        doc["metrics"]["throughput_items_per_s"]["value"] / 480.0
    assert schema_valid(doc)
    found = failures(doc)
    assert list(found) == ["power_limit"]
    assert "400 W" in found["power_limit"][0].message
    assert set(found["power_limit"][0].metrics) == {"power_w_mean", "energy_j", "items_per_j"}
    doc["metrics"]["power_w_mean"]["value"] = 430.0  # within the 10 % margin
    doc["metrics"]["items_per_j"]["value"] = \
        doc["metrics"]["throughput_items_per_s"]["value"] / 430.0
    assert "power_limit" not in failures(doc)


def test_the_published_megawatt_reading_without_a_spec_sheet():
    doc = accelerator(ONE_THREAD, "resnet-infer", "MLU370-X8", "mlu", 24 * 2**30, 6.0, 150,
                      40, 55, 31)
    doc["metrics"]["power_w_mean"]["value"] = 1.68e6
    assert schema_valid(doc)
    message = failures(doc, None)["power_limit"][0].message
    assert "1.68e+06 W" in message and "2000 W ceiling" in message


def test_a_power_sample_spike_above_the_limit():
    doc = a100()
    doc["telemetry"]["devices"][0]["series"]["power_w"][3] = 700.0  # > 1.5 x 400 W
    found = failures(doc)["power_limit"]
    assert any("sample reads 700 W" in f.message for f in found)


def test_utilisation_outside_0_100_on_the_raw_document():
    doc = a100()
    doc["metrics"]["device_util_pct"]["value"] = 130.0
    assert not schema_valid(doc)  # the schema rejects it too
    found = failures(doc)["utilisation_range"]
    assert "130 %" in found[0].message
    doc = a100()
    doc["telemetry"]["devices"][0]["series"]["util_pct"][0] = -5.0
    assert "outside [0, 100]" in failures(doc)["utilisation_range"][0].message


def test_memory_above_the_device_capacity():
    doc = a100()
    doc["metrics"]["device_mem_used_bytes_peak"]["value"] = 96 * 2**30
    assert schema_valid(doc)
    found = failures(doc)["memory_capacity"]
    assert "96 GiB" in found[0].message and "80 GiB" in found[0].message
    assert "a100-sxm4-80gb" in found[0].message


def test_framework_peak_above_host_memory_on_the_cpu():
    doc = load(TWO_THREADS, "resnet-train")
    doc["metrics"]["framework_mem_peak_bytes"]["value"] = 10 * doc["provenance"]["device"][
        "memory_total_bytes"]
    assert schema_valid(doc)
    found = failures(doc, None)["memory_capacity"]
    assert found[0].metrics == ("framework_mem_peak_bytes",)
    assert "reported by the backend" in found[0].message


def test_temperature_in_millidegrees():
    doc = a100()
    doc["metrics"]["temp_c_mean"]["value"] = 65000.0
    assert schema_valid(doc)
    assert "Fahrenheit, kelvin or millidegrees" in failures(doc)["temperature_range"][0].message


def test_timestamps_out_of_order():
    doc = a100()
    doc["ended_at"], doc["started_at"] = doc["started_at"], doc["ended_at"]
    assert schema_valid(doc)
    found = failures(doc)["timestamps"][0]
    assert found.metrics == (checks.ALL_METRICS,) and "before started_at" in found.message

    doc = a100()
    t = doc["telemetry"]["t_s"]
    t[5], t[6] = t[6], t[5]
    assert "telemetry.t_s goes backwards at sample 6" in failures(doc)["timestamps"][0].message

    doc = a100()
    first, second = doc["repeats"][0]["window"], doc["repeats"][1]["window"]
    second["start_s"] = first["start_s"]  # the second repeat starts inside the first
    assert "before the previous repeat" in failures(doc)["timestamps"][0].message


def test_window_coverage_by_hand():
    # window 0..10 s, interval 1 s, gaps over 2 s are lost:
    # samples 0.5, 1.5, 2.5, 7.5, 8.5, 9.5 -> gaps 0.5, 1, 1, 5, 1, 1, 0.5 -> lost 5 - 2 = 3
    assert window_coverage([0.5, 1.5, 2.5, 7.5, 8.5, 9.5], 0, 10, 1.0) == pytest.approx(0.7)
    assert window_coverage([float(i) for i in range(11)], 0, 10, 1.0) == 1.0
    assert window_coverage([], 0, 1.5, 1.0) == 1.0  # shorter than one allowed gap
    assert window_coverage([], 0, 10, 1.0) == pytest.approx(0.2)
    assert window_coverage([], 5, 5, 1.0) == 0.0


def without_samples_in_repeat_1(doc: dict) -> dict:
    window = doc["repeats"][1]["window"]
    tel = doc["telemetry"]
    keep = [i for i, t in enumerate(tel["t_s"]) if not window["start_s"] < t < window["end_s"]]
    tel["t_s"] = [tel["t_s"][i] for i in keep]
    tel["t_wall"] = [tel["t_wall"][i] for i in keep]
    for name, values in tel["devices"][0]["series"].items():
        tel["devices"][0]["series"][name] = [values[i] for i in keep]
    return doc


def test_telemetry_that_stops_inside_the_timed_window():
    doc = without_samples_in_repeat_1(a100())
    assert schema_valid(doc)
    found = failures(doc)["telemetry_coverage"][0]
    # no sample in a 1 s window; the first 2 x 0.1 s of each gap count as covered
    assert found.message.startswith("repeat 1: telemetry covers 20% of the 1 s timed window")
    assert "power_w_mean" in found.metrics and "throughput_items_per_s" not in found.metrics


def test_a_telemetry_gap_marks_every_figure_made_from_the_window_samples():
    """Bug: a gap in a timed window's telemetry marked power_w_mean, energy_j and
    energy_counter_j, but not energy_integrated_j (the integral of those very samples),
    energy_per_item_j and energy_above_idle_j (made from energy_j) or the whole host's
    figures of the window: they stayed unmarked, and in scores."""
    found = failures(without_samples_in_repeat_1(a100()))["telemetry_coverage"][0]
    for name in ("energy_integrated_j", "energy_per_item_j", "energy_above_idle_j",
                 "host_util_pct", "host_mem_used_bytes_mean", "host_mem_used_bytes_peak"):
        assert name in found.metrics, name
    assert "idle_power_w" not in found.metrics  # measured before the run, not in a window


def test_units_that_contradict_the_metric_name():
    doc = a100()
    doc["metrics"]["temp_c_mean"]["unit"] = "degF"  # the schema leaves this unit to the name
    doc["metrics"]["throughput_items_per_s"]["unit"] = "tokens/s"  # the workload counts images
    assert schema_valid(doc)
    found = {f.metrics[0]: f.message for f in failures(doc)["units"]}
    assert "'degF'" in found["temp_c_mean"] and "degC" in found["temp_c_mean"]
    assert "images/s" in found["throughput_items_per_s"]


def test_flop_per_s_above_the_peak():
    doc = as_sweep(a100("gemm-infer"), 19.5e12, 2039e9)
    doc["points"][4]["metrics"]["flop_per_s"]["value"] = 30e12
    doc["points"][5]["metrics"]["pct_of_peak"]["value"] = 150.0
    found = failures(doc)["peak_flops"]
    assert {f.point for f in found} == {4, 5}
    assert any("fp32 peak of 19.5 TFLOP/s" in f.message for f in found)
    assert failures(copy.deepcopy(doc), None)["peak_flops"][0].point == 5  # % still checked


def test_a_multi_device_training_job_is_bounded_by_its_devices_peaks():
    doc = a100()
    doc["workload"]["precision_used"] = "bf16"
    doc["metrics"]["flop_per_s"] = {"value": 8 * 0.45 * 312e12, "unit": "FLOP/s"}
    doc["workload"]["info"]["devices"] = 8  # 45 % MFU on 8 A100s: plausible
    assert "peak_flops" not in failures(doc)
    doc["workload"]["info"]["devices"] = 2  # the same FLOP/s from 2 devices: impossible
    assert "2 x the" in failures(doc)["peak_flops"][0].message


def test_throughput_bound_from_bytes_per_item():
    """A memory-bound figure (an LLM's decode: every weight read once per step) is bounded
    by the memory bandwidth, whatever its FLOPs."""
    doc = a100()
    m = doc["metrics"]
    bandwidth = SPEC["memory_bandwidth_bytes_per_s"]
    m["bytes_per_item"] = {"value": 1e9, "unit": "B/images"}  # 1 GB of weights per item
    m["throughput_items_per_s"]["value"] = 0.5 * bandwidth / 1e9
    assert "throughput_bound" not in failures(doc)
    m["throughput_items_per_s"]["value"] = 2 * bandwidth / 1e9  # twice what memory can feed
    (found,) = failures(doc)["throughput_bound"]
    assert "memory bandwidth" in found.message and "throughput_items_per_s" in found.metrics


def test_an_estimated_cpu_sheet_bounds_a_throughput_only_beyond_twice_its_peak():
    from bench.specs.host_cpu import estimate_spec, host_facts

    sheet = estimate_spec(host_facts(2))
    assert sheet is not None and sheet["estimate"]
    peak = sheet["peak_flops"]["fp32"]
    doc = load(TWO_THREADS, "resnet-infer")
    m = doc["metrics"]
    m["flop_per_item"] = {"value": 1e9, "unit": "FLOP/images"}
    m["throughput_items_per_s"]["value"] = 1.5 * peak / 1e9  # a turbo clock beats the estimate
    assert "throughput_bound" not in failures(doc, sheet)
    m["throughput_items_per_s"]["value"] = 2.5 * peak / 1e9
    (found,) = failures(doc, sheet)["throughput_bound"]
    assert "(an estimate)" in found.message and "x2 allowed" in found.message


def test_a_training_job_with_nproc_auto_counts_the_ranks_it_resolved():
    """``nproc: auto`` resolves to the devices present (``info.world_size``): the bound of
    throughput x FLOPs per item is that many peaks, not one."""
    doc = a100()
    m = doc["metrics"]
    doc["workload"]["precision_used"] = "bf16"
    doc["workload"]["params"]["nproc"] = "auto"
    m["flop_per_item"] = {"value": 6e9, "unit": "FLOP/images"}
    m["throughput_items_per_s"]["value"] = 4 * 0.5 * 312e12 / 6e9  # 50 % of 4 bf16 peaks
    doc["workload"]["info"]["world_size"] = 4
    assert checks.devices_of(doc) == 4
    assert "throughput_bound" not in failures(doc)
    doc["workload"]["info"]["world_size"] = 1
    assert "throughput_bound" in failures(doc)  # the same throughput from one A100


def test_identical_columns_across_metrics_with_different_units():
    cells = [("gpu", "resnet"), ("gpu", "bert"), ("npu", "resnet"), ("npu", "bert")]
    temps = [61.0, 64.0, 55.0, 58.0]
    table = {"temp_c_mean": {c: (t, "degC") for c, t in zip(cells, temps, strict=True)},
             "throughput_items_per_s": {c: (t, "images/s")
                                        for c, t in zip(cells, temps, strict=True)},
             "power_w_mean": {c: (t * 4, "W") for c, t in zip(cells, temps, strict=True)}}
    found = identical_columns(table)
    assert [c.metrics for c in found] == [("temp_c_mean", "throughput_items_per_s")]
    assert "copy" in found[0].message and len(found[0].cells) == 4
    # the same unit (mean and peak of one quantity) or one repeated value is no evidence
    same_unit = {"a_pct": {c: (1.0 + i, "%") for i, c in enumerate(cells)},
                 "b_pct": {c: (1.0 + i, "%") for i, c in enumerate(cells)}}
    constant = {"x_w": {c: (0.0, "W") for c in cells}, "y_c": {c: (0.0, "degC") for c in cells}}
    assert identical_columns(same_unit) == [] and identical_columns(constant) == []
    assert identical_columns({k: dict(list(v.items())[:2]) for k, v in table.items()}) == []


def test_measured_power_unit_error_marks_power_and_the_items_per_j_made_from_it():
    """A measured items/J is the harness's throughput / power: it agrees by construction, so
    its agreement says nothing about the throughput (which the timed loop measured)."""
    doc = a100()
    doc["metrics"]["power_w_mean"]["value"] *= 1e6
    doc["metrics"]["items_per_j"]["value"] /= 1e6
    found = failures(doc)
    assert set(found) == {"power_limit"}
    assert found["power_limit"][0].metrics == ("power_w_mean", "energy_j", "items_per_j")


def test_efficiency_names_the_value_that_breaks_the_bounds():
    doc = a100()
    m = doc["metrics"]
    thr, power = m["throughput_items_per_s"]["value"], m["power_w_mean"]["value"]
    m["items_per_j"] = {"value": thr / power, "unit": "images/J"}  # reported, not computed
    m["power_w_mean"]["value"] = power * 1000  # the power alone is wrong
    found = failures(doc)["efficiency"][0]
    assert found.metrics == ("power_w_mean",) and "power reading is the wrong one" in \
        found.message


def test_latency_must_agree_with_throughput():
    doc = a100()
    doc["metrics"]["latency_mean_s"]["value"] /= 100
    (found,) = failures(doc)["latency_throughput"]
    assert set(found.metrics) >= {"throughput_items_per_s", "latency_mean_s"}
    assert "items per timed iteration" in found.message


def test_latency_of_concurrent_streams_follows_littles_law():
    """Four streams each waiting 4x as long per batch deliver the same throughput."""
    doc = a100()
    doc["metrics"]["latency_mean_s"]["value"] *= 4
    assert "latency_throughput" in failures(doc)  # one stream: 4x too slow for its throughput
    doc["workload"]["params"]["streams"] = 4
    assert "latency_throughput" not in failures(doc)
    doc["workload"]["params"]["streams"] = 2
    (found,) = failures(doc)["latency_throughput"]
    assert "x 2 stream(s)" in found.message


@pytest.mark.parametrize("scenario", ["server", "offline"])
def test_latency_check_skips_loadgen_scenarios(scenario):
    """A Server scenario's throughput is the arrival rate LoadGen offers, and its latency
    holds queueing (Offline: one huge query): neither is batch / latency of a timed loop."""
    from bench.scenarios.measure import scenario_document

    doc = a100()
    doc["metrics"]["latency_mean_s"]["value"] *= 40  # queueing at a low arrival rate
    assert "latency_throughput" in failures(doc)  # as a timed loop it would contradict
    doc["scenario"] = scenario_document("resnet", {"scenario": scenario}, [])
    assert schema_valid(doc)
    outcomes = {o.check: o for o in run_checks(doc, SPEC, S)}
    assert not outcomes["latency_throughput"].applied
    assert "latency_throughput" not in failures(doc)


def test_throughput_bound_from_flops_per_item():
    doc = a100()
    m = doc["metrics"]
    # ResNet-34 at 64 x 64: 0.598 GFLOP per image (bench.flops); 19.5 TFLOP/s fp32 peak
    m["flop_per_item"] = {"value": 5.98183936e8, "unit": "FLOP/images"}
    assert "throughput_bound" not in failures(doc)
    m["throughput_items_per_s"]["value"] = 19.5e12 * 1.06 / 5.98183936e8
    (found,) = failures(doc)["throughput_bound"]
    assert "fp32 peak of 19.5 TFLOP/s" in found.message
    assert "TF32 tensor-core peak" in found.message  # the likely explanation, named
