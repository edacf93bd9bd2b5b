"""One repeat of a scenario entry: the workload served to LoadGen, one test (or the Server's
search of several), and the repeat's measurement in the form the runner aggregates.

The repeat's timed window is the LoadGen test that gives its result (for the Server, the run
at the highest valid target QPS), so the telemetry, throughput and latencies of the result
describe that run. Its latencies are the SUT's: each sample from ``issue_query`` to its
completion. The scenario's own figures (the percentile latency, the QPS, samples per second,
VALID or INVALID) are LoadGen's, read from its detail log, which stays in the run directory.
"""

from __future__ import annotations

import math
import statistics
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from bench.documents import JsonObject, Metrics, RepeatResult, ScenarioRecord, ScenarioRun
from bench.scenarios import loadgen
from bench.scenarios.loadgen import Hints, TestRun
from bench.scenarios.rules import ScenarioRules, scaled
from bench.scenarios.search import Budget, search_peak
from bench.scenarios.sut import Stats, Sut

T = TypeVar("T")
HEADLINE = {"single_stream": "single_stream_latency_s", "multi_stream": "multi_stream_latency_s",
            "server": "server_qps", "offline": "offline_samples_per_s"}


def warm_up(runner: Any, rules: ScenarioRules, max_batch: int, iters: int,
            streams: int) -> tuple[Hints, dict[str, Any]]:
    """Run the batch shapes the test will use (not timed for the result) and derive LoadGen's
    hints from their median times. A shape's first run is not counted: it pays for lazy
    initialisation (oneDNN primitives, cuDNN autotuning, the allocator growing), 5 times a
    later run's for ResNet-34 on the CPU."""
    ran = [0]

    def median_time(size: int) -> float:
        times = []
        for _ in range(max(iters, 1) + 1):
            ran[0] += size
            t0 = time.monotonic()
            runner.run(list(range(size)), None)
            times.append(time.monotonic() - t0)
        return statistics.median(times[1:])

    count = rules.performance_sample_count
    one = median_time(1)
    spq = min(rules.samples_per_query or 1, count)
    query = median_time(spq) if rules.scenario == "multi_stream" else one
    batch = min(max_batch, count)
    full = median_time(batch) if batch > 1 else one
    hints = Hints(sample_latency_s=one, query_latency_s=query,
                  samples_per_s=streams * batch / full)
    return hints, {"sample_latency_s": one, "query_latency_s": query,
                   "batch": batch, "batch_latency_s": full,
                   "estimated_samples_per_s": hints.samples_per_s, "samples": ran[0]}


def in_a_serving_thread(work: Callable[[], T]) -> T:
    """``work()`` in a thread of its own, as the SUT's workers run every batch. PyTorch's CPU
    kernels do not run alike in the main thread and in another one: on the busy 2-core
    machine a ResNet-34 batch took 0.25-2.8 s in the main thread and 20-40 ms in a worker, so
    a warm-up in the main thread made the hints (and the Server search's start) 50 times too
    slow."""
    box: dict[str, Any] = {}

    def run() -> None:
        try:
            box["value"] = work()
        except BaseException as exc:  # raised again in the caller's thread
            box["error"] = exc

    thread = threading.Thread(target=run, name="sut-warm-up", daemon=True)
    thread.start()
    thread.join()
    if "error" in box:
        raise box["error"]
    return box["value"]


def step_record(run: TestRun, stats: Stats, rules: ScenarioRules) -> dict[str, Any]:
    """What one LoadGen test says, with the SUT's own counts beside it."""
    d = run.detail
    pct = rules.target_latency_percentile or 90
    kind = "per_query" if rules.scenario == "multi_stream" else ""
    record: dict[str, Any] = {
        "valid": run.valid, "verdict": loadgen.verdict(d),
        "latency_ok": bool(d.get("result_perf_constraints_met", True)),
        "latency_percentile": pct,
        "latency_s": loadgen.latency_s(d, pct, kind),
        "mean_latency_s": (d["result_mean_latency_ns"] * loadgen.NS
                           if isinstance(d.get("result_mean_latency_ns"), int | float) else None),
        "duration_s": run.duration_s,
        "loadgen_queries": d.get("result_query_count"),
        "loadgen_samples": (d["result_query_count"] * d["generated_samples_per_query"]
                            if isinstance(d.get("result_query_count"), int)
                            and isinstance(d.get("generated_samples_per_query"), int) else None),
        "sut": stats.record(),
        "logs": run.files,
    }
    for key, name in (("result_scheduled_samples_per_sec", "scheduled_qps"),
                      ("result_completed_samples_per_sec", "completed_qps"),
                      ("result_samples_per_second", "samples_per_s"),
                      ("result_qps_without_loadgen_overhead", "qps_without_loadgen_overhead"),
                      ("result_completed_tokens_per_second", "tokens_per_s")):
        if isinstance(d.get(key), int | float):
            record[name] = d[key]
    if not run.valid:
        record["why"] = "; ".join(
            k.removesuffix("_met").replace("_", " ") + " not met"
            for k, v in record["verdict"].items() if v is False) \
            or record["verdict"].get("invalid_reason") or "see its summary"
        verdict = record["verdict"]
        # The latency bound met but too few queries over the bound for LoadGen's early
        # stopping to confirm it: a lower rate leaves fewer over the bound, so it may pass.
        record["early_stopping_only"] = bool(
            record["latency_ok"] and verdict.get("early_stopping_met") is False
            and verdict.get("min_duration_met") is not False
            and verdict.get("min_queries_met") is not False)
    if rules.token_latencies:
        record["ttft_s"] = loadgen.latency_s(d, pct, "first_token")
        record["tpot_s"] = loadgen.latency_s(d, pct, "tpot")
    return record


def step_forecast_s(qps: float, rules: ScenarioRules, capacity: float) -> float:
    """How long a Server test at ``qps`` will take: LoadGen issues max(min_query_count,
    qps x min_duration_s) queries at that rate; above the device's ``capacity`` (samples/s)
    the backlog drains at the capacity. With a tenth and a second of slack."""
    queries = max(rules.min_query_count, math.ceil(qps * rules.min_duration_s))
    issue_s = max(rules.min_duration_s, queries / qps)
    drain_s = queries / capacity if capacity > 0 else 0.0
    forecast = max(issue_s, drain_s)
    if rules.max_duration_s:
        forecast = min(forecast, rules.max_duration_s)
    return forecast * 1.1 + 1.0


def latency_floor(stats: Stats, rules: ScenarioRules) -> str | None:
    """Why no target QPS can meet the latency bound, from one test's compute times alone
    (None: a lower rate might). A sample's latency is at least its batch's compute time, and
    a batch of one takes at least its share of a larger batch's, so counting each sample at
    its batch's time divided by the batch size, without any queueing, bounds from below what
    a lower rate can reach. Not for token latencies (their bound is not the batch's time).
    The share must fall short of the percentile by two standard errors (7.5 points for 64
    samples at the 90th)."""
    bound = rules.target_latency_s
    if not bound or rules.token_latencies or not stats.batch_sizes:
        return None
    pct = rules.target_latency_percentile or 90
    samples = sum(stats.batch_sizes)
    within = sum(n for n, t in zip(stats.batch_sizes, stats.compute_s, strict=True)
                 if t / n <= bound)
    # Clearly short of the percentile: by two standard errors of a share of this many
    # samples, so that a busy host's few slow batches in one test do not end the search.
    need = pct / 100
    if within / samples >= need - 2 * math.sqrt(need * (1 - need) / samples):
        return None
    per_sample = sorted(t / n for n, t in zip(stats.batch_sizes, stats.compute_s, strict=True))
    return (f"even without queueing only {within / samples:.0%} of the samples could have been "
            f"answered within {bound * 1e3:.4g} ms (the {pct:g}th percentile needs {pct:g} %): "
            f"the device took a median {statistics.median(per_sample) * 1e3:.4g} ms of compute "
            "per sample; a lower rate does not make it faster")


def retuned_hints(record: dict[str, Any], hints: Hints, streams: int) -> Hints | None:
    """New hints from a test that LoadGen found too short (None: it was not)."""
    verdict = record["verdict"]
    if record["valid"] or (verdict.get("min_duration_met") is not False
                           and verdict.get("min_queries_met") is not False):
        return None
    rate = record.get("samples_per_s") or record.get("qps_without_loadgen_overhead")
    mean = record.get("mean_latency_s")
    return Hints(sample_latency_s=min(hints.sample_latency_s, mean or hints.sample_latency_s),
                 query_latency_s=min(hints.query_latency_s, mean or hints.query_latency_s),
                 samples_per_s=max(hints.samples_per_s, 1.5 * (rate or 0)))


def check_answers(stats: Stats, record: dict[str, Any]) -> None:
    """Every sample LoadGen issued was answered exactly once (else the run is an error)."""
    problem = stats.problem()
    expected = record.get("loadgen_samples")
    if problem is None and expected is not None and expected != len(stats.issued):
        problem = f"LoadGen issued {expected} samples, the SUT received {len(stats.issued)}"
    if problem:
        raise RuntimeError(f"the system under test broke LoadGen's protocol: {problem}")


def scenario_metrics(rules: ScenarioRules, record: dict[str, Any],
                     best_qps: float | None, search_reason: str) -> Metrics:
    """The scenario's figures (LoadGen's), as workload metrics of the repeat."""
    pct = record["latency_percentile"]
    valid = 1.0 if record["valid"] and (rules.scenario != "server" or best_qps) else 0.0
    out: Metrics = {
        "loadgen_valid_fraction": {"value": valid, "unit": "fraction",
                                   "definition": "share of repeats LoadGen found VALID"}}

    def lat(name: str, value: float | None, why: str) -> None:
        out[name] = ({"value": value, "unit": "s", "percentile": pct, "source": "loadgen"}
                     if value is not None else {"value": None, "unit": "s", "reason": why})

    missing = "LoadGen's detail log has no such percentile"
    if rules.scenario == "single_stream":
        lat("single_stream_latency_s", record["latency_s"], missing)
    elif rules.scenario == "multi_stream":
        lat("multi_stream_latency_s", record["latency_s"], missing)
    elif rules.scenario == "offline":
        value = record.get("samples_per_s")
        out["offline_samples_per_s"] = {"value": value, "unit": "samples/s",
                                        "source": "loadgen"} if value is not None else \
            {"value": None, "unit": "samples/s", "reason": "no rate in LoadGen's log"}
    else:
        out["server_qps"] = ({"value": best_qps, "unit": "queries/s", "source": "search",
                              "definition": "highest target QPS LoadGen found VALID"}
                             if best_qps else {"value": None, "unit": "queries/s",
                                               "reason": search_reason})
        why = search_reason if not best_qps else missing
        lat("server_latency_s", record["latency_s"] if best_qps else None, why)
        if record.get("completed_qps") is not None and best_qps:
            out["server_completed_qps"] = {"value": record["completed_qps"],
                                           "unit": "queries/s", "source": "loadgen"}
        if rules.token_latencies:
            lat("server_ttft_s", record.get("ttft_s") if best_qps else None, why)
            lat("server_tpot_s", record.get("tpot_s") if best_qps else None, why)
            if record.get("tokens_per_s") is not None and best_qps:
                out["server_tokens_per_s"] = {"value": record["tokens_per_s"],
                                              "unit": "tokens/s", "source": "loadgen"}
    return out


def measure_scenario(workload: Any, rules: ScenarioRules, log_dir: Path,
                     run_root: Path | None = None,
                     deadline: float | None = None) -> dict[str, Any]:
    """Serve ``workload`` to LoadGen under ``rules``; the repeat's measurement. ``deadline``
    (monotonic): when the Server search must have ended (the repeat's timeout less what the
    result still needs); None: bounded by its steps only."""
    lg = loadgen.import_loadgen()
    ctx = workload.ctx
    streams = 1 if rules.token_latencies else workload.streams
    max_batch = int(rules.max_batch or workload.serving_batch_size())
    runners = workload.serving_runners(streams, rules)
    ctx.progress({"phase": "point", "message": "scenario warm-up"})
    hints, warm = in_a_serving_thread(
        lambda: warm_up(runners[0], rules, max_batch, ctx.rules.warmup_iters, streams))
    timeout = rules.batch_timeout_s if rules.scenario == "server" else None
    sut = Sut(lg, runners, max_batch, timeout, rules.token_latencies)
    count = rules.performance_sample_count
    qsl = lg.ConstructQSL(count, count, lambda _samples: None, lambda _samples: None)
    handle = lg.ConstructSUT(sut.issue_query, sut.flush_queries)
    runs: list[tuple[TestRun, Stats, dict[str, Any]]] = []

    def one_test(directory: Path, target_qps: float | None = None,
                 cap_s: float | None = None) -> dict[str, Any]:
        stats = sut.new_test()
        run = loadgen.start_test(lg, handle, qsl, loadgen.test_settings(lg, rules, hints,
                                                                         target_qps, cap_s),
                                 directory, run_root)
        if sut.error is not None:
            raise sut.error
        record = step_record(run, stats, rules)
        check_answers(stats, record)
        runs.append((run, stats, record))
        if cap_s is not None and not run.valid \
                and record["verdict"].get("min_queries_met") is False \
                and (not rules.max_duration_s or cap_s < rules.max_duration_s) \
                and run.duration_s >= 0.9 * cap_s:
            # LoadGen stopped issuing at the budget's cap, not at the rules' own limit
            record["cut_by_budget"] = True
        if rules.scenario == "server" and not run.valid and streams == 1:
            floor = latency_floor(stats, rules)
            if floor is not None:
                record["floor"] = floor
        service = stats.service_samples_per_s()
        if service:
            capacity[0] = service * streams
        return record

    capacity = [hints.samples_per_s]  # samples/s, the last test's measured compute rate
    budget = None
    if deadline is not None:
        budget = Budget(deadline, lambda qps: step_forecast_s(qps, rules, capacity[0]))
    search_started = time.monotonic()
    sut.start()
    outcome = None
    try:
        if rules.scenario == "server":
            start = rules.search_start_qps or max(hints.samples_per_s / 2, 1e-3)

            def step(qps: float) -> dict[str, Any]:
                ctx.progress({"phase": "point",
                              "message": f"server step {len(runs) + 1}: {qps:.4g} QPS"})
                cap = budget.left_s() if budget is not None else None
                return one_test(log_dir / f"step-{len(runs):02d}", qps, cap)

            outcome = search_peak(step, start, rules.search_precision, rules.search_max_steps,
                                  budget)
        else:
            ctx.progress({"phase": "point", "message": f"LoadGen {rules.scenario}"})
            first = one_test(log_dir)
            retuned = retuned_hints(first, hints, streams)
            if retuned is not None:
                # LoadGen sized the test from the warm-up's hints and it fell short of the
                # minimum duration or query count: what a submitter does, once, with the
                # rate the first test measured (both tests' logs are kept).
                hints = retuned
                ctx.progress({"phase": "point", "message": f"LoadGen {rules.scenario} "
                                                           "(hints retuned)"})
                one_test(log_dir / "retuned")
    finally:
        lg.DestroySUT(handle)
        lg.DestroyQSL(qsl)
        sut.stop()
    if outcome is not None and outcome.best_qps is not None:
        chosen = runs[next(s["index"] for s in outcome.steps
                           if s["valid"] and s["target_qps"] == outcome.best_qps)]
    else:
        chosen = runs[-1]
    run, stats, record = chosen
    items_per_sample = workload.items_per_sample()
    items = stats.tokens if rules.token_latencies else len(stats.issued) * items_per_sample
    scenario: ScenarioRun = {
        "name": rules.scenario, "valid": record["valid"], "verdict": record["verdict"],
        "loadgen_version": run.detail.get("loadgen_version"),
        "result": {k: v for k, v in record.items() if k not in ("logs", "verdict", "valid")},
        "logs": record["logs"],
        "warmup": warm,
        "batching": {"max_batch": max_batch, "timeout_s": timeout, "streams": streams,
                     "mean_batch": stats.record()["mean_batch"],
                     "max_batch_formed": stats.record()["max_batch_formed"]},
        "effective_settings": {k.removeprefix("effective_"): v for k, v in run.detail.items()
                               if k.startswith("effective_")},
    }
    if outcome is None and len(runs) > 1:
        scenario["attempts"] = [{k: v for k, v in r[2].items() if k != "verdict"}
                                | {"verdict": r[2]["verdict"]} for r in runs]
        scenario["retuned_hints"] = {"sample_latency_s": hints.sample_latency_s,
                                     "query_latency_s": hints.query_latency_s,
                                     "samples_per_s": hints.samples_per_s}
    if outcome is not None:
        scenario["search"] = {"best_qps": outcome.best_qps, "upper_qps": outcome.upper_qps,
                              "converged": outcome.converged, "stop": outcome.stop,
                              "reason": outcome.reason,
                              "budget_s": (deadline - search_started
                                           if deadline is not None else None),
                              "elapsed_s": time.monotonic() - search_started,
                              "steps": outcome.steps}
    return {
        "window": run.window(), "iterations": max(stats.queries, 1), "items": items,
        "latencies_s": stats.latencies_s, "throughput_items_per_s": items / run.duration_s,
        "metrics": scenario_metrics(rules, record,
                                    outcome.best_qps if outcome else None,
                                    outcome.reason if outcome else ""),
        "scenario": scenario,
    }


def scenario_document(workload: str, rules: JsonObject,
                      repeats: list[RepeatResult]) -> ScenarioRecord:
    """The result's ``scenario`` section: the rules, what they scale of MLPerf's, LoadGen's
    version and its verdict over the repeats (VALID only if every measured repeat was)."""
    resolved = ScenarioRules(**rules)
    measured = [r["scenario"] for r in repeats if r.get("status") == "ok" and r.get("scenario")]
    if not measured:
        verdict = "not measured"
    else:
        verdict = "VALID" if all(m["valid"] for m in measured) else "INVALID"
    return {
        "name": resolved.scenario,
        "mlperf_model": resolved.mlperf_model,
        "loadgen": {"package": "mlcommons-loadgen",
                    "version": next((m.get("loadgen_version") for m in measured), None)},
        "rules": rules,
        "scaled": scaled(resolved, workload),
        "headline_metric": HEADLINE[resolved.scenario],
        "verdict": verdict,
        "repeats_valid": [m["valid"] for m in measured],
    }
