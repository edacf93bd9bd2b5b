"""A workload that raises, hangs or is killed is recorded with that status; the others' results
survive, complete and valid."""

from __future__ import annotations

import json
import time

from bench.validate import validate_file
from tests.conftest import FIXTURES, run_bench


def test_failures_are_isolated(tmp_path):
    out = tmp_path / "run"
    start = time.monotonic()
    proc = run_bench("run", "--suite", str(FIXTURES / "suites" / "faulty.yaml"), "--device",
                     "cpu", "--out", str(out), timeout=1500)
    elapsed = time.monotonic() - start
    assert proc.returncode == 1, proc.stderr  # some workloads failed: non-zero, not usage (2)
    docs = {p.stem: json.loads(p.read_text()) for p in out.glob("*.json")
            if p.name != "manifest.json"}
    assert set(docs) == {"good-first", "test-raise-infer", "test-hang-infer", "test-kill-infer",
                         "test-oom-infer", "good-last"}
    for path in out.glob("*.json"):
        assert validate_file(path).ok, (path, validate_file(path).problems)

    for good in ("good-first", "good-last"):
        assert docs[good]["status"] == "ok"
        assert len(docs[good]["repeats"]) == 2
        assert docs[good]["metrics"]["throughput_items_per_s"]["value"] > 0

    raised = docs["test-raise-infer"]
    assert raised["status"] == "error"
    assert raised["error"]["type"] == "ValueError"
    assert "deliberate failure in step 3" in raised["error"]["message"]
    assert any("deliberate failure" in line for line in raised["error"]["traceback"])
    assert len(raised["repeats"]) == 1  # no point repeating a failure

    hung = docs["test-hang-infer"]
    assert hung["status"] == "timeout"
    assert "timeout of 4 s" in hung["error"]["message"]

    killed = docs["test-kill-infer"]
    assert killed["status"] == "killed"
    assert killed["error"]["signal"] == "SIGKILL"

    oom = docs["test-oom-infer"]
    assert oom["status"] == "oom"
    assert oom["metrics"] == {}

    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["state"] == "finished"
    assert {e["id"]: e["status"] for e in manifest["entries"]} == {
        "good-first": "ok", "test-raise-infer": "error", "test-hang-infer": "timeout",
        "test-kill-infer": "killed", "test-oom-infer": "oom", "good-last": "ok"}
    # The hang cost its timeout (4 s) plus the stop grace, not the step's hour (the bound is
    # loose: six fresh child processes on a loaded 2-core machine take minutes, not an hour).
    assert elapsed < 1200


def test_a_cpu_fallback_is_recorded(tmp_path):
    suite = tmp_path / "s.yaml"
    suite.write_text("name: s\nrules: {warmup_iters: 1, min_iters: 3, min_duration_s: 0.05, "
                     "repeats: 1}\ntelemetry: {idle_s: 0}\nentries:\n"
                     "  - {workload: test-cpu-fallback, mode: infer}\n"
                     "  - {workload: test-sleep, mode: infer}\n")
    out = tmp_path / "run"
    proc = run_bench("run", "--suite", str(suite), "--device", "cpu", "--out", str(out))
    assert proc.returncode == 0, proc.stderr
    fell = json.loads((out / "test-cpu-fallback-infer.json").read_text())
    [message] = fell["workload"]["info"]["cpu_fallback"]
    assert "will fall back to run on the CPU" in message
    clean = json.loads((out / "test-sleep-infer.json").read_text())
    assert "cpu_fallback" not in clean["workload"]["info"]


def test_a_grid_that_times_out_keeps_its_finished_points(tmp_path):
    suite = tmp_path / "s.yaml"
    suite.write_text("name: s\nrules: {warmup_iters: 1, min_iters: 3, min_duration_s: 0.05, "
                     "repeats: 1, timeout_s: 6}\ntelemetry: {idle_s: 0, interval_s: 0.05}\n"
                     "entries:\n  - {workload: test-grid-hang, mode: infer}\n")
    out = tmp_path / "run"
    proc = run_bench("run", "--suite", str(suite), "--device", "cpu", "--out", str(out))
    assert proc.returncode == 1, proc.stderr
    doc = json.loads((out / "test-grid-hang-infer.json").read_text())
    assert validate_file(out / "test-grid-hang-infer.json").ok
    assert doc["status"] == "timeout"
    assert [p["params"]["sleep_ms"] for p in doc["points"]] == [5, 10]
    assert all(p["status"] == "ok" for p in doc["points"])
    assert 100 < doc["points"][0]["metrics"]["throughput_items_per_s"]["value"] <= 200
