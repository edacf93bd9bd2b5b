"""The stability soak (run rule soak_s; docs/scorecard.md): faults injected at the lowest
level (tests/faulty_soak_worker.py) are each counted once, recovered from, and the training
goes on from the checkpoint on the loss curve an uninterrupted run follows."""

from __future__ import annotations

import json
import signal

import pytest

from bench.llm import soak
from bench.validate import validate_file
from tests.conftest import run_bench

SUITE = """
name: soak-test
seed: 0
rules: {warmup_iters: 0, min_iters: 14, min_duration_s: 0, repeats: 1, timeout_s: 600}
entries:
  - {id: plain, workload: llm-pretrain, mode: train, config: small, precision: fp32,
     params: {seq_len: 32, checkpoint: false}}
  - {id: soak, workload: test-soak-faults, mode: train, config: small, precision: fp32,
     params: {seq_len: 32, soak_checkpoint_every: 3, soak_hang_s: 60, soak_max_steps: 14},
     rules: {soak_s: 500}}
"""


@pytest.fixture(scope="module")
def soak_run(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("soak")
    (tmp / "suite.yaml").write_text(SUITE)
    proc = run_bench("run", "--suite", str(tmp / "suite.yaml"), "--device", "cpu", "--out",
                     str(tmp / "run"), "--quiet", timeout=580,
                     BENCH_TEST_SOAK_FAULTS="kill@4,nan@7,oom@10")
    docs = {p.stem: json.loads(p.read_text()) for p in (tmp / "run").glob("*.json")
            if p.name != "manifest.json"}
    return proc, docs, tmp / "run"


def test_each_fault_is_counted_once_and_recovered_from(soak_run):
    proc, docs, out = soak_run
    assert proc.returncode == 0, proc.stderr[-2000:]
    doc = docs["soak"]
    assert doc["status"] == "ok", doc.get("error")
    assert validate_file(out / "soak.json").ok
    info = doc["workload"]["info"]["soak"]
    crashes = info["crashes"]
    assert [(c["class"], c["step"]) for c in crashes] == [
        ("signal", 4), ("nan", 7), ("oom", 10)]
    assert "SIGKILL" in crashes[0]["message"] and "out of memory" in crashes[2]["message"]
    assert "NonFiniteLoss" in crashes[1]["message"]
    for c in crashes:
        assert c["recovered_s"] > c["t_s"] and c["recovery_s"] == pytest.approx(
            c["recovered_s"] - c["t_s"])
    m = doc["metrics"]
    assert m["soak_crashes"]["value"] == 3
    assert info["crash_classes"] == {"nan": 1, "oom": 1, "signal": 1}
    assert m["soak_recovery_mean_s"]["value"] == pytest.approx(
        sum(c["recovery_s"] for c in crashes) / 3)
    assert 0 < m["soak_failure_free_s"]["value"] < m["soak_duration_s"]["value"]
    assert info["starts"] == 4 and info["steps_completed"] == 14 and info["ended"] == "max_steps"
    assert doc["rules"]["soak_s"] == 500


def test_the_loss_curve_continues_as_without_the_faults(soak_run):
    _, docs, _ = soak_run
    plain = docs["plain"]["repeats"][0]["series"]["loss"]
    soaked = docs["soak"]["repeats"][0]["series"]["loss"]
    assert len(soaked) == 14 and len(plain) >= 14
    assert soaked == pytest.approx(plain[:14], rel=1e-5)
    assert soaked[-1] < soaked[0]  # it learns


def test_exit_classes():
    assert soak.classify_exit(-signal.SIGKILL, None, "") == ("signal", "killed by SIGKILL")
    assert soak.classify_exit(3, {"class": "oom", "message": "OOM"}, "") == ("oom", "OOM")
    assert soak.classify_exit(1, None, "a\nTraceback: boom\n") == (
        "error", "exit code 1: Traceback: boom")


def test_step_lines_are_read_whole(tmp_path):
    path = tmp_path / "steps.jsonl"
    path.write_text('{"step": 1}\n{"step": 2}\n{"st')
    lines, offset = soak.read_steps(path, 0)
    assert [x["step"] for x in lines] == [1, 2]
    path.write_text(path.read_text() + 'ep": 3}\n')
    lines, _ = soak.read_steps(path, offset)
    assert lines == [{"step": 3}]


def test_soak_rules_are_checked(tmp_path):
    suite = tmp_path / "bad.yaml"
    suite.write_text(SUITE.replace("rules: {soak_s: 500}", "rules: {soak_s: 900}"))
    proc = run_bench("run", "--suite", str(suite), "--device", "cpu", "--out",
                     str(tmp_path / "run"), "--quiet")
    assert proc.returncode == 2
    assert "timeout_s (600) must exceed soak_s (900)" in proc.stderr


def test_the_watchdog_kills_a_hung_process_and_restarts_it(tmp_path):
    """A training process that stops stepping (tests/hanging_soak_worker.py: two steps,
    then sleeps on its first start) is killed after hang_s, counted as a hang, restarted."""
    spec = tmp_path / "spec.json"
    spec.write_text("{}")
    settings = soak.SoakSettings(soak_s=30, checkpoint_every=1, hang_s=1.0, max_steps=4,
                                 startup_s=20)
    rec = soak.run_soak(spec, tmp_path / "soak", settings, "tests.hanging_soak_worker")
    assert [(c.kind, c.step) for c in rec.crashes] == [("hang", 3)]
    assert "watchdog" in rec.crashes[0].message
    assert rec.crashes[0].recovery_s is not None and rec.starts == 2
    assert rec.loss_curve() == [1.0, 0.5, 1 / 3, 0.25]
