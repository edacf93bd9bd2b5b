"""MLPerf scenarios through LoadGen, concurrent streams and INT8 (docs/scenarios.md).

The served workload sleeps a known time per batch (tests/serving_workloads.py), so what
LoadGen measures can be worked out by hand; LoadGen is the real one (mlcommons-loadgen).
"""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path

import pytest

import tests.serving_workloads  # noqa: F401  (registers test-serve)
from bench.config import RunRules, load_suite
from bench.devices.cpu import CpuBackend
from bench.errors import UserError
from bench.quantize import agreement
from bench.scenarios.measure import latency_floor, measure_scenario, step_forecast_s
from bench.scenarios.rules import resolve, scaled
from bench.scenarios.search import Budget, search_peak
from bench.scenarios.sut import Stats
from bench.timing import StreamStep, concurrent_loop
from bench.workloads import WorkloadContext, get_workload
from tests.conftest import require_module, run_bench

require_module("mlperf_loadgen", "`pip install mlcommons-loadgen` (a dependency on x86_64)",
               module_level=True)

FAST = {"min_duration_s": 0.5, "min_query_count": 64, "performance_sample_count": 32,
        "target_latency_percentile": 90}


def served(params=None, streams=1):
    cls = get_workload("test-serve")
    p = {**cls.configs["small"], "streams": streams, **(params or {})}
    ctx = WorkloadContext(backend=CpuBackend(), mode="infer", params=p, precision="fp32",
                          seed=0, rules=RunRules(warmup_iters=1))
    w = cls(ctx)
    w.setup()
    return w


def run_scenario(tmp_path, scenario, params=None, **rules):
    w = served(params)
    r = resolve("test-serve", scenario, {**FAST, **rules})
    w.served.clear()
    return w, measure_scenario(w, r, tmp_path / "logs", tmp_path)


@pytest.mark.parametrize("scenario", ["single_stream", "multi_stream", "offline", "server"])
def test_every_sample_loadgen_issues_is_answered_exactly_once(tmp_path, scenario):
    extra = {"target_latency_s": 1.0, "search_start_qps": 100, "search_max_steps": 1} \
        if scenario == "server" else {}
    w, m = run_scenario(tmp_path, scenario, {"service_s": 0.002}, **extra)
    sc = m["scenario"]
    sut = sc["result"]["sut"]
    loadgen_samples = sc["result"]["loadgen_samples"]
    assert loadgen_samples and loadgen_samples == sut["samples_issued"]
    assert sut["samples_answered"] == sut["samples_answered_once"] == loadgen_samples
    assert len(m["latencies_s"]) == loadgen_samples
    # the workload itself served exactly the rows of every LoadGen test it ran (a test that
    # LoadGen found too short is run once more with retuned hints), warm-up excluded
    tests = sc.get("attempts") or [sc["result"]]
    for t in tests:
        assert t["sut"]["samples_answered_once"] == t["loadgen_samples"]
    assert sum(w.served) - sc["warmup"]["samples"] == sum(t["loadgen_samples"] for t in tests)
    # the warm-up ran its batches where the SUT runs them: never in the main thread
    assert w.threads and not any(w.threads)
    if scenario == "multi_stream":
        assert sc["effective_settings"]["samples_per_query"] == 8
        assert sut["queries_issued"] * 8 == loadgen_samples
    kept = {Path(f["path"]).name: tmp_path / f["path"] for f in sc["logs"]}
    assert set(kept) == {"mlperf_log_summary.txt", "mlperf_log_detail.txt"}
    assert not list(tmp_path.rglob("*.json")), "LoadGen's empty JSON logs must not remain"
    summary = kept["mlperf_log_summary.txt"].read_text()
    assert f"Result is : {'VALID' if sc['valid'] else 'INVALID'}" in summary


@pytest.mark.parametrize("scenario", ["single_stream", "multi_stream"])
def test_loadgen_latencies_are_the_stub_models_service_time(tmp_path, scenario):
    """Each batch sleeps 20 ms: a sample (single stream) or a query of 8 samples in batches
    of up to 4 (multi-stream: at least one batch) cannot be answered faster, and on a busy
    machine a sleep overshoots by milliseconds, not seconds. LoadGen's percentile, its mean
    and the SUT's own latencies must all say so, in seconds (a unit slip of 1000x, either
    way, fails here)."""
    service = 0.02
    _, m = run_scenario(tmp_path, scenario, {"service_s": service, "batch_size": 4})
    name = f"{scenario}_latency_s"
    figure = m["metrics"][name]
    assert figure["unit"] == "s" and figure["source"] == "loadgen"
    result = m["scenario"]["result"]
    # A multi-stream query is 8 samples in two batches of 4: 40 ms at least; its samples'
    # own latencies (LoadGen's mean, the SUT's) 20 ms for the first batch, 40 for the second.
    query = service if scenario == "single_stream" else 2 * service
    for what, value, floor in (
            (name, figure["value"], query), ("mean", result["mean_latency_s"], service),
            ("SUT median", sorted(m["latencies_s"])[len(m["latencies_s"]) // 2], service)):
        assert floor * 0.999 <= value < query + 0.25, (what, value)
    assert result["latency_s"] == figure["value"]
    assert figure["percentile"] == FAST["target_latency_percentile"]


def test_server_search_converges_on_a_known_service_time(tmp_path):
    """One stream, batches of one, 10 ms each: the server saturates at 100 QPS. Under a
    100 ms bound at the 90th percentile in one-second tests, rates above ~110 QPS queue up
    for longer than the bound (a backlog of (rate - 100) x 1 s / 100 s per query) and rates
    below ~90 wait little: the search must land near 100 QPS."""
    _, m = run_scenario(tmp_path, "server", {"service_s": 0.01}, target_latency_s=0.1,
                        max_batch=1, search_start_qps=40, search_precision=0.1,
                        min_duration_s=1.0)
    search = m["scenario"]["search"]
    best = m["metrics"]["server_qps"]["value"]
    assert search["converged"], search["reason"]
    assert 60 <= best <= 130, search["steps"]
    steps = search["steps"]
    assert [s["target_qps"] for s in steps[:3]] == [40, 80, 160]
    assert all({"valid", "latency_s", "logs", "sut"} <= set(s) for s in steps)
    assert best == max(s["target_qps"] for s in steps if s["valid"])
    assert m["scenario"]["valid"] and m["metrics"]["loadgen_valid_fraction"]["value"] == 1.0


def test_a_missed_latency_bound_is_invalid_as_loadgen_says(tmp_path):
    """Each sample takes 10 ms of compute and the bound is 4 ms: LoadGen finds the first
    rate INVALID, and the search stops at the next (two tests in a row say so), since no lower
    rate makes the device faster."""
    _, m = run_scenario(tmp_path, "server", {"service_s": 0.01}, target_latency_s=0.004,
                        max_batch=1, search_start_qps=64, search_max_steps=4)
    assert m["metrics"]["server_qps"]["value"] is None
    reason = m["metrics"]["server_qps"]["reason"]
    assert "no target QPS can meet the latency bound" in reason and "0% of the samples" in reason
    search = m["scenario"]["search"]
    assert search["stop"] == "latency_floor" and len(search["steps"]) == 2
    assert m["metrics"]["loadgen_valid_fraction"]["value"] == 0.0
    assert not m["scenario"]["valid"]
    for step in m["scenario"]["search"]["steps"]:
        assert step["verdict"]["result"] == "INVALID"
        assert step["verdict"]["latency_constraints_met"] is False
    summary = (tmp_path / "logs" / "step-00" / "mlperf_log_summary.txt").read_text()
    assert "Result is : INVALID" in summary


def test_search_by_hand():
    """Valid up to 37.3 QPS, from 10: 10, 20, 40 (fails), 30, 35, 37.5 (fails), 36.25, then
    (37.5 - 36.25) / 36.25 = 3.4 % <= 5 %."""
    out = search_peak(lambda q: {"valid": q <= 37.3}, 10, 0.05, 12)
    assert [s["target_qps"] for s in out.steps] == [10, 20, 40, 30, 35, 37.5, 36.25]
    assert out.best_qps == 36.25 and out.upper_qps == 37.5 and out.converged
    none = search_peak(lambda q: {"valid": False}, 8, 0.05, 3)
    assert none.best_qps is None and [s["target_qps"] for s in none.steps] == [8, 4, 2]
    short = search_peak(lambda q: {"valid": False, "latency_ok": True, "why": "x"}, 8, .05, 5)
    assert short.best_qps is None and len(short.steps) == 1 and "min_query_count" in short.reason
    assert short.stop == "invalid_not_latency" and none.stop == "max_steps"
    assert out.stop == "converged"
    # LoadGen's early stopping alone unmet at 8 QPS: a lower rate has fewer late queries
    early = search_peak(lambda q: {"valid": q <= 4, "latency_ok": True,
                                   "early_stopping_only": q > 4}, 8, .05, 5)
    assert [s["target_qps"] for s in early.steps][:2] == [8, 4] and early.best_qps >= 4
    floor = search_peak(lambda q: {"valid": False, "floor": "too slow"}, 8, .05, 5)
    assert floor.stop == "latency_floor" and len(floor.steps) == 2 and "too slow" in floor.reason
    # one test that says so is not enough: a burst of other work may have slowed it
    burst = search_peak(lambda q: {"valid": q <= 4, "floor": "slow" if q > 4 else None}, 8,
                        .05, 5)
    assert burst.best_qps is not None and burst.stop != "latency_floor"


class Clock:
    """A clock that steps advance: each LoadGen test "takes" ``seconds(qps)``."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_search_stops_at_its_time_budget_with_what_it_found():
    """Valid up to 37.3 QPS from 10, each test lasting 64 queries / rate, forecast exactly:
    10 (6.4 s), 20 (3.2 s), 40 (1.6 s), 30 (2.13 s) fit in 14 s; 35 (1.83 s) would end at
    15.2 s, so the search stops before it, with 30 valid and 40 not."""
    clock = Clock()

    def run(qps: float) -> dict:
        clock.now += 64 / qps
        return {"valid": qps <= 37.3}

    budget = Budget(deadline=14.0, forecast=lambda q: 64 / q, clock=clock)
    out = search_peak(run, 10, 0.05, 12, budget)
    assert [s["target_qps"] for s in out.steps] == [10, 20, 40, 30]
    assert out.stop == "budget" and not out.converged
    assert out.best_qps == 30 and out.upper_qps == 40
    assert "35 QPS would take about 2 s" in out.reason and "between 30 (valid) and 40" \
        in out.reason
    # the first step runs even past the deadline (LoadGen's run is cut short there instead)
    late = search_peak(run, 10, 0.05, 12, Budget(deadline=clock.now - 1, forecast=lambda q: 1,
                                                 clock=clock))
    assert len(late.steps) == 1 and late.stop == "budget"
    # a step LoadGen stopped at the deadline bounds nothing: not an upper bound
    cut = search_peak(lambda q: {"valid": q <= 5, "cut_by_budget": q > 5}, 4, 0.05, 12)
    assert [s["target_qps"] for s in cut.steps] == [4, 8]
    assert cut.best_qps == 4 and cut.upper_qps is None and cut.stop == "budget"


def test_step_forecast_by_hand():
    r = resolve("test-serve", "server", {**FAST, "target_latency_s": 0.1})
    # 64 queries at 8 QPS: 8 s of issuing; the device keeps up (100 samples/s)
    assert step_forecast_s(8, r, 100) == pytest.approx(8 * 1.1 + 1)
    # 200 QPS for 0.5 s = 100 queries (more than 64) on a device of 50 samples/s: 2 s
    assert step_forecast_s(200, r, 50) == pytest.approx(2 * 1.1 + 1)


def test_early_stopping_alone_is_told_apart_from_a_short_test(tmp_path):
    """LoadGen's detail log as it reads when the bound was met but early stopping could not
    confirm it (a lower rate may pass), and when too few queries ran (none can)."""
    from bench.scenarios.loadgen import TestRun
    from bench.scenarios.measure import step_record

    r = resolve("test-serve", "server", {**FAST, "target_latency_s": 0.05})
    detail = {"result_validity": "INVALID", "result_perf_constraints_met": True,
              "result_min_duration_met": True, "result_min_queries_met": True,
              "early_stopping_met": False}
    record = step_record(TestRun(0, 1, 0, tmp_path, detail), Stats(), r)
    assert record["early_stopping_only"] and "early stopping not met" in record["why"]
    short = step_record(TestRun(0, 1, 0, tmp_path, {**detail, "result_min_queries_met": False}),
                        Stats(), r)
    assert not short["early_stopping_only"]


def test_latency_floor_by_hand():
    """Batches of 2, 2, 1 samples computed in 200, 20 and 3 ms: at best 100, 10 and 3 ms per
    sample, so 3 of 5 samples could meet 50 ms (60 %, short of the 90th percentile's 90 %);
    under 150 ms all could."""
    r = resolve("test-serve", "server", {**FAST, "target_latency_s": 0.05})
    stats = Stats(batch_sizes=[2, 2, 1], compute_s=[0.2, 0.02, 0.003])
    floor = latency_floor(stats, r)
    assert floor is not None and "only 60% of the samples" in floor and "50 ms" in floor
    loose = resolve("test-serve", "server", {**FAST, "target_latency_s": 0.15})
    assert latency_floor(stats, loose) is None
    # 64 samples: the 90th percentile is clearly missed below 90 % - 2 x 3.75 % = 82.5 %;
    # 56 of 64 (87.5 %) in time may be a busy host's noise, 52 of 64 (81 %) is not
    slow = [0.2] * 8 + [0.01] * 56
    assert latency_floor(Stats(batch_sizes=[1] * 64, compute_s=slow), r) is None
    slower = [0.2] * 12 + [0.01] * 52
    assert "only 81% of the samples" in latency_floor(Stats(batch_sizes=[1] * 64,
                                                            compute_s=slower), r)


def test_the_deadline_counts_from_the_process_start():
    """The runner's timeout runs from the child's start, before Python and torch loaded: this
    process is older than a second, so its deadline is that much earlier than now + timeout."""
    import psutil

    from bench.child import repeat_deadline

    age = time.time() - psutil.Process().create_time()
    assert age > 1
    assert repeat_deadline(100) == pytest.approx(time.monotonic() + 100 - age, abs=0.5)


def test_a_server_step_is_cut_at_the_deadline_and_says_so(tmp_path):
    """At 5 QPS one test lasts 64 / 5 = 12.8 s; with 2 s left LoadGen is told to stop issuing
    at the deadline, and the search ends there with the reason, instead of running past a
    repeat's timeout."""
    w = served({"service_s": 0.002})
    r = resolve("test-serve", "server", {**FAST, "target_latency_s": 0.5,
                                         "search_start_qps": 5})
    m = measure_scenario(w, r, tmp_path / "logs", tmp_path, deadline=time.monotonic() + 2)
    search = m["scenario"]["search"]
    (step,) = search["steps"]
    assert step["cut_by_budget"] and step["loadgen_queries"] < 64
    assert step["verdict"]["min_queries_met"] is False
    assert step["duration_s"] < 12.8 / 2, "LoadGen was not stopped at the deadline"
    assert search["stop"] == "budget" and 0 < search["budget_s"] <= 2
    assert m["metrics"]["server_qps"]["value"] is None
    assert "time budget ran out" in m["metrics"]["server_qps"]["reason"]


def test_rules_are_mlperf_unless_the_suite_says_and_scaled_lists_it():
    r = resolve("resnet", "server")
    assert (r.target_latency_s, r.target_latency_percentile, r.min_duration_s) == (0.015, 99, 600)
    assert r.mlperf_model == "resnet50" and r.performance_sample_count == 1024
    assert scaled(r, "resnet") == []
    llm = resolve("qwen2-0.5b", "server")
    assert (llm.ttft_latency_s, llm.tpot_latency_s) == (2.0, 0.1) and llm.token_latencies
    small = resolve("bert", "offline", {"min_duration_s": 1})
    assert scaled(small, "bert") == [{"setting": "min_duration_s", "mlperf": 600, "used": 1}]
    with pytest.raises(UserError, match="scenario rule 'latency' is unknown"):
        resolve("resnet", "server", {"latency": 1})
    suite = load_suite("scenarios")
    server = next(e for e in suite.entries if e.id == "resnet-infer-server")
    assert server.scenario_rules["target_latency_s"] == 0.05
    assert server.scenario_rules["min_duration_s"] == 1.0
    assert [e.id for e in suite.entries if e.params.get("streams", 1) > 1] == [
        "resnet-infer-streams-2", "resnet-infer-streams-4"]


def test_streams_need_inference_on_synthetic_batches(tmp_path):
    bad = tmp_path / "s.yaml"
    bad.write_text("name: s\nentries:\n  - {workload: resnet, mode: train, "
                   "params: {streams: 2}}\n")
    with pytest.raises(UserError, match="applies to inference only"):
        load_suite(str(bad))
    bad.write_text("name: s\nentries:\n  - {workload: resnet, mode: infer, "
                   "params: {streams: 2, data: loader}}\n")
    with pytest.raises(UserError, match="data: synthetic"):
        load_suite(str(bad))


def test_concurrent_loop_runs_every_stream_in_one_window():
    threads: set[str] = set()

    def step() -> int:
        threads.add(threading.current_thread().name)
        time.sleep(0.005)
        return 2

    rules = RunRules(warmup_iters=1, min_iters=4, min_duration_s=0.05)
    loop = concurrent_loop([StreamStep(step, lambda: None) for _ in range(3)], rules)
    assert len(threads) == 3
    assert all(s["iterations"] >= 4 for s in loop.per_stream)
    assert loop.iterations == sum(s["iterations"] for s in loop.per_stream)
    assert loop.items == 2 * loop.iterations == sum(s["items"] for s in loop.per_stream)
    assert len(loop.latencies_s) == loop.iterations and loop.duration_s >= 0.05


def test_streams_sweep_knee_by_hand():
    from testbed.report.scenarios import knee, speedup

    assert knee([(1, 100), (2, 190), (4, 250), (8, 260)]) == (
        4, "8 streams add +4% throughput over 4 (less than 10%)")
    assert knee([(1, 100), (2, 200)])[0] is None
    assert speedup(30.0, 3.0, True) == 10.0 and speedup(0.01, 0.1, False) == 10.0


def test_int8_agreement_by_hand_and_recorded():
    import torch

    a = [torch.tensor([[1.0, 3.0, 2.0], [0.0, 0.5, 0.2]])]
    b = [torch.tensor([[1.0, 2.5, 2.9], [0.1, 0.5, 0.2]])]
    ag = agreement(a, b)
    assert (ag.positions, ag.top1_agreement) == (2, 0.5)
    assert ag.max_abs_logit_error == pytest.approx(0.9) and ag.max_abs_fp32_logit == 3.0
    cls = get_workload("lstm")
    ctx = WorkloadContext(backend=CpuBackend(), mode="infer", params=dict(cls.configs["small"]),
                          precision="int8", seed=0, rules=RunRules())
    w = cls(ctx)
    w.setup()
    info = w.info()["int8"]
    assert info["flow"] == "torch.ao.quantization.quantize_dynamic"
    assert info["layers"] == ["LSTM", "Linear"]
    assert 0.5 <= info["agreement"]["top1_agreement"] <= 1.0
    metrics = w.metrics({"throughput_items_per_s": 1.0})
    assert metrics["int8_top1_agreement"]["value"] == info["agreement"]["top1_agreement"]
    assert "Dynamic" in type(w.model.lstm).__module__ + type(w.model.lstm).__name__ or \
        "quantized" in type(w.model.lstm).__module__


def test_scenario_suite_runs_validates_and_reports(tmp_path):
    suite = tmp_path / "s.yaml"
    suite.write_text("""name: t-scen
seed: 0
rules: {warmup_iters: 1, min_iters: 3, min_duration_s: 0.2, repeats: 1, timeout_s: 120}
telemetry: {interval_s: 0.1, idle_s: 0.1}
scenario_rules:
  common: {min_duration_s: 0.5, min_query_count: 64, performance_sample_count: 16,
           target_latency_percentile: 90}
entries:
  - {workload: test-serve, mode: infer, scenario: server, params: {service_s: 0.002},
     scenario_rules: {target_latency_s: 0.5, search_start_qps: 50, search_max_steps: 2}}
  - {workload: test-serve, mode: infer, sweep: {streams: [1, 2]}}
""")
    out = tmp_path / "run"
    proc = run_bench("run", "--suite", str(suite), "--out", str(out),
                     BENCH_WORKLOAD_MODULES="tests.faulty_workloads,tests.serving_workloads")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    doc = json.loads((out / "test-serve-infer-server.json").read_text())
    assert doc["scenario"]["verdict"] == "VALID" and doc["metrics"]["server_qps"]["value"]
    logs = doc["repeats"][0]["scenario"]["search"]["steps"][0]["logs"]
    assert {Path(x["path"]).name for x in logs} == {"mlperf_log_summary.txt",
                                                     "mlperf_log_detail.txt"}
    assert all((out / x["path"]).is_file() for x in logs)
    assert not list((out / "loadgen").rglob("*.json"))
    check = run_bench("validate", str(out))
    assert check.returncode == 0, check.stdout + check.stderr
    from testbed.report.build import write_report

    report = write_report([out], tmp_path / "report")
    html = report.html.read_text()
    assert "MLPerf scenarios (LoadGen)" in html and "Concurrent streams" in html
    assert "data-chart='latency-qps'" in html
