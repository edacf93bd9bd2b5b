"""The power study (`invoke audit-study`, testbed/audit/study.py): the consistent forgery on
real documents, the table from audits, and one tiny study end to end on a workload whose time
is a sleep (so it means the same on a busy machine), with one CPU kept busy."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys

import psutil
import pytest

from bench.validate import validate_file
from testbed.audit.study import (
    Audit,
    caught_from,
    forge,
    forge_run,
    forged_scale,
    markdown,
    table_rows,
)
from testbed.audit.submission import load_submission
from tests.conftest import FIXTURES, ROOT, bench_env

RUN = ROOT / "results" / "reference" / "h100" / "probe-run-2-instant-power"
CI_TOLERANCES = FIXTURES / "audit-tolerances-ci.yaml"


def test_a_consistent_forgery_scales_rates_up_and_times_down_and_nothing_else():
    doc = json.loads((RUN / "resnet-infer.json").read_text())
    forged = forge(doc, 2.0)
    m, f = doc["metrics"], forged["metrics"]
    assert f["throughput_items_per_s"]["value"] == pytest.approx(
        2 * m["throughput_items_per_s"]["value"])
    assert f["throughput_items_per_s"]["per_repeat"] == pytest.approx(
        [2 * v for v in m["throughput_items_per_s"]["per_repeat"]])
    assert f["flop_per_s"]["value"] == pytest.approx(2 * m["flop_per_s"]["value"])
    assert f["latency_p50_s"]["value"] == pytest.approx(m["latency_p50_s"]["value"] / 2)
    assert f["cold_first_iter_s"]["value"] == pytest.approx(m["cold_first_iter_s"]["value"] / 2)
    for name in ("device_mem_used_bytes_peak", "flop_per_item", "energy_j", "power_w_mean",
                 "device_util_pct", "clock_hz_mean"):
        assert f.get(name) == m.get(name), name
    for a, b in zip(doc["repeats"], forged["repeats"], strict=True):
        assert b["throughput_items_per_s"] == pytest.approx(2 * a["throughput_items_per_s"])
        assert b["latencies_s"] == pytest.approx([x / 2 for x in a["latencies_s"]])
    assert forged["sha256"] != doc["sha256"]
    assert forged_scale("pct_of_peak", 3.0) == 3.0 and forged_scale("ttft_s", 4.0) == 0.25
    assert forged_scale("mfu_pct", 3.0) == 3.0 and forged_scale("h2d_pinned_pct_of_peak", 2) == 2
    assert forged_scale("items_per_j", 3.0) == 3.0 and forged_scale("clock_hz_mean", 3) is None
    assert forged_scale("host_bound", 3.0) is None
    assert forged_scale("energy_j", 3.0) is None  # a time-like figure in joules: left


def test_a_forged_run_passes_every_check_of_the_files(tmp_path):
    """Re-sealed with its manifest: only re-measuring can catch it."""
    run = forge_run(RUN, tmp_path / "run", 3.0)
    for path in run.glob("*.json"):
        assert validate_file(path, run).ok, path
    _, checks = load_submission(run)
    assert not [c for c in checks if c.status == "fail" and c.id in (
        "sha256", "manifest_listing", "schema", "manifest")], [
        (c.id, c.subject, c.message) for c in checks if c.status == "fail"]
    gemm = json.loads((run / "gemm-bf16.json").read_text())
    original = json.loads((RUN / "gemm-bf16.json").read_text())
    assert gemm["points"][0]["metrics"]["throughput_items_per_s"]["value"] == pytest.approx(
        3 * original["points"][0]["metrics"]["throughput_items_per_s"]["value"])


def _audit(kind, factor, verdict, power=1.2, failed=()):
    return Audit(kind=kind, factor=factor, submission="s", verdict=verdict,
                 exit_code={"pass": 0, "fail": 1, "inconclusive": 3}[verdict], wall_s=10.0,
                 failed=list(failed), power={"e": power}, slowdown=1.1)


def test_the_table_and_the_factor_caught_from():
    audits = ([_audit("honest", 1.0, "pass")] * 9 + [_audit("honest", 1.0, "inconclusive")]
              + [_audit("x1.1", 1.1, "fail")] * 5 + [_audit("x1.1", 1.1, "pass")] * 5
              + [_audit("x1.2", 1.2, "fail")] * 9 + [_audit("x1.2", 1.2, "inconclusive")]
              + [_audit("x3", 3.0, "fail", failed=["e throughput_items_per_s"])] * 10)
    rows = table_rows(audits)
    assert [(r["kind"], r["caught"]) for r in rows] == [("honest", None), ("x1.1", 5),
                                                        ("x1.2", 9), ("x3", 10)]
    assert caught_from(rows) == 1.2
    # A miss above a caught factor: caught from the next one up only.
    rows[2]["caught"] = 8
    assert caught_from(rows) == 3.0
    record = {"machine": {"cpus": 2, "cpu_model": "x", "memory_gib": 24.0},
              "config": {"suite": "smoke", "only": None, "busy": True},
              "load_before": {"load_1m": 0.5, "load_5m": 0.4, "busy_cpus": 0.1},
              "load_during": {"load_1m_mean": 1.5, "load_1m_max": 2.0, "busy_cpus_mean": 1.9},
              "submissions": [{"wall_s": 40.0}], "rows": table_rows(audits),
              "caught_from": 1.2}
    text = markdown(record)
    assert "| honest | 10 | 9 | 1 | 0 |  |" in text
    assert "| forged: rates x1.2, times / 1.2 | 10 | 0 | 1 | 9 | 9/10 |" in text
    assert "Caught at 9 of 10 or better from x1.2 on." in text
    assert "one CPU kept busy" in text and "Load before: 1-minute average 0.50" in text


SUITE = """name: study-sleep
description: a tiny submission for the power study's test
seed: 5
rules: {warmup_iters: 1, min_iters: 5, min_duration_s: 0.5, repeats: 3, timeout_s: 120}
telemetry: {interval_s: 0.1, idle_s: 0.2}
entries:
  - {workload: test-sleep-long, mode: infer}
"""


@pytest.mark.slow
def test_a_tiny_study_end_to_end_with_a_cpu_kept_busy(tmp_path):
    """One honest submission and its x3 forgery, audited with one CPU kept busy by another
    process: the honest audit does not fail, the forgery does, naming the throughput; the
    load is recorded before and during, the busy process is gone afterwards."""
    suite = tmp_path / "suite.yaml"
    suite.write_text(SUITE)
    out = tmp_path / "study"
    proc = subprocess.run([sys.executable, "-m", "invoke", "audit-study", "--suite", str(suite),
                           "--honest", "1", "--factors", "3", "--per-factor", "1", "--busy",
                           "--tolerance", str(CI_TOLERANCES), "--out", str(out)],
                          cwd=ROOT, env=bench_env(), capture_output=True, text=True,
                          timeout=900)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    record = json.loads((out / "study.json").read_text())
    honest, forged = record["audits"]
    assert honest["kind"] == "honest" and honest["verdict"] != "fail", honest
    assert forged["kind"] == "x3" and forged["verdict"] == "fail", forged
    assert "test-sleep-long-infer throughput_items_per_s" in forged["failed"]
    assert record["load_before"]["load_1m"] >= 0 and record["load_during"]["samples"] >= 1
    assert not psutil.pid_exists(record["busy_pid"]) or psutil.Process(
        record["busy_pid"]).status() == psutil.STATUS_ZOMBIE
    assert "| forged: rates x3, times / 3 | 1 |" in proc.stdout
    assert "| honest | 1 |" in proc.stdout and "Honest audits that failed: 0." in proc.stdout
    assert (out / "forged-x3-1" / "manifest.json").is_file()


def test_study_options_are_checked(tmp_path):
    (tmp_path / "used").mkdir()
    (tmp_path / "used" / "x").write_text("")
    for args, says in ((["--factors", "a"], "take numbers"),
                       (["--factors", "-1"], "positive"),
                       (["--honest", "0"], "at least one honest"),
                       (["--out", str(tmp_path / "used")], "not empty")):
        proc = subprocess.run([sys.executable, "-m", "invoke", "audit-study", *args],
                              cwd=ROOT, capture_output=True, text=True, timeout=120)
        assert proc.returncode == 2 and says in proc.stderr, (args, proc.stderr)
        assert "Traceback" not in proc.stderr
    shutil.rmtree(tmp_path / "used")
