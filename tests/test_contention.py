"""A run that knows it was disturbed (bench.contention, docs/measurement.md).

The quiet and disturbed paths are tested with /proc faked at the lowest level: files in the
kernel's formats (tests/fake_proc.py) that the monitor's real code reads. First by hand, one
reading at a time, with the figures worked out below; then a whole run pointed at a fake
/proc that a thread keeps moving (quiet: no warning; busy: a warning, reasons, an error
with --require-quiet); and once on this machine with three busy processes beside it
(tests/test_end_to_end.py).
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from bench.contention import (
    ContentionMonitor,
    descendants,
    judge,
    read_host_cpu,
    throttle_figures,
)
from bench.progress import Display, disturbed_summary
from bench.rules import QuietRules
from bench.validate import validate_file
from tests.conftest import ROOT, bench_env
from tests.fake_proc import FakeKernel, FakeProc

HARNESS, CHILD, WORKER, STRANGER = 100, 200, 201, 300


def monitor_over(proc: FakeProc, readings: list[tuple[float, dict]]) -> ContentionMonitor:
    """A monitor of the harness HARNESS, fed one reading per (time, state) without a thread."""
    monitor = ContentionMonitor(lambda: [HARNESS], proc=proc.root)
    for now, state in readings:
        proc.host(**state["host"])
        proc.process(HARNESS, 1, {HARNESS: state["harness"]})
        proc.process(CHILD, HARNESS, {CHILD: state["child"], 202: state.get("idle", (0, 0))})
        proc.process(STRANGER, 1, {STRANGER: (now, 0.0)})  # not ours, whatever it does
        monitor.sample(now)
    return monitor


def state(busy, child, harness=(0.0, 0.0), steal=0.0, load=0.1):
    return {"host": {"busy_s": busy, "steal_s": steal, "load": load}, "harness": harness,
            "child": child}


# -- by hand ---------------------------------------------------------------------------------
def test_a_quiet_window_by_hand(tmp_path):
    # Over 10..11 s: the child's thread ran 0.9 s and never waited, the harness 0.05 s, the
    # host was busy 0.97 s: other processes used 0.02 CPU; nothing slowed the child (x1.0).
    proc = FakeProc(tmp_path / "proc")
    m = monitor_over(proc, [(10.0, state(5.0, (2.0, 0.0), (1.0, 0.0))),
                            (11.0, state(5.97, (2.9, 0.0), (1.05, 0.0)))])
    w = m.window(10.0, 11.0)
    assert w["cpus"] == 2 and w["threads"] == 2  # the child's two threads measure
    assert w["slowdown"] == pytest.approx(1.0) and w["cpu_wait_fraction"] == 0.0
    assert w["bench_cpus"] == pytest.approx(0.95)
    assert w["other_cpus"] == pytest.approx(0.02)
    assert w["steal_cpus"] == 0.0 and w["load_avg_1m_max"] == 0.1
    assert "reason" not in w
    record = judge([w], None, QuietRules())
    assert record == {"value": False, "thresholds": QuietRules().to_dict(),
                      "require_quiet": False}


def test_a_disturbed_window_by_hand(tmp_path):
    # The child ran 0.5 s and waited 0.5 s of its second: slowed x2 (life 1 / (1 - 0.5)).
    # The host was busy 1.95 s of its 2 CPU-seconds, 0.55 of them ours: others used 1.4 CPUs
    # (bound 0.25 x 2 = 0.5). The hypervisor took 0.2 CPU (bound 0.05 x 2 = 0.1).
    proc = FakeProc(tmp_path / "proc")
    m = monitor_over(proc, [(10.0, state(5.0, (2.0, 0.0), (1.0, 0.0), steal=1.0, load=3.0)),
                            (11.0, state(6.95, (2.5, 0.5), (1.05, 0.0), steal=1.2, load=4.5))])
    w = m.window(10.0, 11.0)
    assert w["slowdown"] == pytest.approx(2.0) and w["cpu_wait_fraction"] == 0.5
    assert w["other_cpus"] == pytest.approx(1.4) and w["steal_cpus"] == pytest.approx(0.2)
    assert w["load_avg_1m_max"] == 4.5
    record = judge([w, w], 0.03, QuietRules())
    assert record["value"] is True
    by = {r["code"]: r for r in record["reasons"]}
    assert set(by) == {"host_cpu", "slowdown", "steal"}
    assert (by["host_cpu"]["figure"], by["host_cpu"]["threshold"], by["host_cpu"]["unit"]) == \
        (1.4, 0.5, "CPUs")
    assert "other processes used 1.4 of 2 CPUs" in by["host_cpu"]["message"]
    assert by["host_cpu"]["message"].endswith("re-run on a quiet machine")
    assert (by["slowdown"]["figure"], by["slowdown"]["threshold"]) == (2.0, 1.25)
    assert "x2.00" in by["slowdown"]["message"]
    assert by["steal"]["figure"] == 0.2 and "dedicated host" in by["steal"]["message"]


def test_only_the_readings_around_the_window_count(tmp_path):
    # Busy before the window, quiet inside it (readings at 9, 10, 11, 12; window 10..11).
    proc = FakeProc(tmp_path / "proc")
    m = monitor_over(proc, [(9.0, state(0.0, (0.0, 0.0))),
                            (10.0, state(2.0, (0.0, 0.0))),
                            (11.0, state(2.9, (0.9, 0.0))),
                            (12.0, state(4.9, (0.9, 0.0)))])
    w = m.window(10.0, 11.0)
    assert w["other_cpus"] == pytest.approx(0.0) and w["slowdown"] == pytest.approx(1.0)


def test_nothing_readable_is_unknown_not_quiet(tmp_path):
    m = ContentionMonitor(lambda: [HARNESS], proc=tmp_path / "empty")
    m.sample(1.0)
    m.sample(2.0)
    w = m.window(1.0, 2.0)
    assert w["other_cpus"] is None and w["slowdown"] is None
    assert "/proc/stat" in w["reason"] and "schedstat" in w["reason"]
    record = judge([w], None, QuietRules())
    assert record["value"] is None and "not measured" in record["unjudged"][0]
    # the repeats' spread alone still decides what it can
    assert judge([w], 0.3, QuietRules())["value"] is True


def test_the_process_tree_is_found_by_parent(tmp_path):
    proc = FakeProc(tmp_path / "proc")
    proc.process(HARNESS, 1, {HARNESS: (0, 0)})
    proc.process(CHILD, HARNESS, {CHILD: (0, 0)})
    proc.process(WORKER, CHILD, {WORKER: (0, 0)}, name="pt_main thread) x")  # ')' in a name
    proc.process(STRANGER, 1, {STRANGER: (0, 0)})
    (proc.root / "self").mkdir()  # not a pid
    assert descendants(proc.root, {HARNESS}) == {CHILD, WORKER}
    assert descendants(proc.root, {STRANGER}) == set()


def test_host_cpu_times_in_clock_ticks(tmp_path):
    proc = FakeProc(tmp_path / "proc")
    proc.host(busy_s=12.5, steal_s=0.25, cpus=4)
    cpu = read_host_cpu(proc.root)
    assert (cpu.busy_s, cpu.steal_s, cpu.cpus) == (12.5, 0.25, 4)
    # an old kernel's line without a steal column
    (proc.root / "stat").write_text("cpu  100 0 50 900 0 0 0\ncpu0 100 0 50 900 0 0 0\n")
    assert read_host_cpu(proc.root).steal_s is None


def test_a_reused_thread_id_is_another_thread(tmp_path):
    proc = FakeProc(tmp_path / "proc")
    m = ContentionMonitor(lambda: [HARNESS], proc=proc.root)
    proc.host(0.0)
    proc.process(HARNESS, 1, {HARNESS: (0, 0)})
    proc.process(CHILD, HARNESS, {CHILD: (5.0, 5.0)}, start=100)
    m.sample(1.0)
    proc.process(CHILD, HARNESS, {CHILD: (0.1, 0.0)}, start=900)  # a new process, same pid
    m.sample(2.0)
    assert len(m.series) == 2 and all(len(points) == 1 for points in m.series.values())


# -- the device's own figures -------------------------------------------------------------------
def test_throttle_readings_by_hand():
    t = [0.0, 0.1, 0.2, 0.3, 0.4, 0.5]
    gpu0 = ["none", "sw_power_cap", "sw_power_cap+hw_thermal_slowdown", "hw_thermal_slowdown",
            None, "none"]
    gpu1 = ["none"] * 6
    fig = throttle_figures(t, [gpu0, gpu1], 0.1, 0.4, QuietRules().throttle_reasons)
    # inside 0.1..0.4: gpu0 has 3 readings (None is no reading), gpu1 4: 7 readings; thermal
    # in 2 of them, the power cap in 2 (the device's own limit: not a disturbance)
    assert fig["readings"] == 7
    assert fig["reasons"] == {"hw_thermal_slowdown": 2 / 7, "sw_power_cap": 2 / 7}
    assert fig["disturbing_share"] == pytest.approx(2 / 7)
    record = judge([{"throttle": fig}], None, QuietRules())
    (reason,) = record["reasons"]
    assert reason["code"] == "throttle" and reason["figure"] == 28.6 and reason["unit"] == "%"
    assert "hw_thermal_slowdown" in reason["message"] and "sw_power_cap" not in \
        reason["message"]
    power_cap_only = throttle_figures(t, [["sw_power_cap"] * 6], 0, 1, ("hw_slowdown",))
    assert power_cap_only["disturbing_share"] == 0.0
    assert throttle_figures(t, [[None] * 6], 0, 1, ())["disturbing_share"] is None


def test_other_processes_on_the_device(tmp_path):
    proc = FakeProc(tmp_path / "proc")
    listing = [{"device": 0, "pid": CHILD, "used_memory_bytes": 2**30},
               {"device": 0, "pid": 4242, "used_memory_bytes": 3 * 2**30}]
    m = ContentionMonitor(lambda: [HARNESS], proc=proc.root,
                          probe=lambda: [dict(p) for p in listing])
    proc.host(0.0)
    proc.process(HARNESS, 1, {HARNESS: (0, 0)})
    proc.process(CHILD, HARNESS, {CHILD: (0, 0)})
    m.sample(10.0)
    m.sample(11.5)
    seen = m.window(10.2, 11.0)["device_processes"]
    assert seen["other"] == 1 and seen["other_memory_bytes"] == 3 * 2**30
    assert [p["benchmark"] for p in seen["processes"]] == [True, False]
    (reason,) = judge([{"device_processes": seen}], None, QuietRules())["reasons"]
    assert reason["code"] == "device_processes" and reason["figure"] == 1
    assert "pid 4242 (3.00 GiB)" in reason["message"]
    # only the benchmark: quiet
    listing.pop()
    m.sample(12.6)
    assert m.window(12.7, 12.8)["device_processes"]["other"] == 0
    # pids of another namespace, none ours (a container): cannot be told, never a reason
    listing[:] = [{"device": 0, "pid": 77, "used_memory_bytes": None}]
    m.sample(13.7)
    seen = m.window(13.75, 13.8)["device_processes"]
    assert seen["other"] is None and "pid namespace" in seen["reason"]
    assert judge([{"device_processes": seen}], None, QuietRules())["value"] is not True


def test_a_failing_probe_is_a_reason_not_a_crash(tmp_path):
    def probe():
        raise RuntimeError("NVML: GPU is lost")

    m = ContentionMonitor(lambda: [], proc=tmp_path / "none", probe=probe)
    m.sample(1.0)
    assert m.window(0.5, 1.5)["device_processes"]["reason"] == "RuntimeError: NVML: GPU is lost"


# -- the judgment and its words ---------------------------------------------------------------
def test_a_repeat_spread_is_a_reason():
    record = judge([{"other_cpus": 0.0, "cpus": 2, "slowdown": 1.0}], 0.452, QuietRules())
    (reason,) = record["reasons"]
    assert (reason["code"], reason["figure"], reason["threshold"], reason["unit"]) == \
        ("spread", 45.2, 10.0, "%")
    assert "may be unstable" in reason["message"]
    assert judge([{"other_cpus": 0.0, "cpus": 2}], 0.452,
                 QuietRules().merged({"max_cv": 0.5}))["value"] is False


def test_the_summary_names_the_fix_and_the_figure():
    busy = judge([{"other_cpus": 1.5, "cpus": 2}], None, QuietRules())
    spread = judge([{"other_cpus": 0.0, "cpus": 2}], 0.3, QuietRules())
    text = disturbed_summary([("resnet-infer", busy), ("resnet-train", busy),
                              ("gemm-infer", spread)], 3)
    assert text.startswith("3 of 3 entries were disturbed while they measured "
                           "(resnet-infer, resnet-train, gemm-infer)")
    assert ": re-run on a quiet machine; other processes used 1.5 of 2 CPUs" in text


def test_the_display_warns_only_for_a_disturbed_entry(tmp_path):
    import io

    from bench.config import load_suite

    entry = load_suite("smoke").entries[0]
    stream = io.StringIO()
    display = Display(stream)
    doc = {"status": "ok", "metrics": {}, "disturbed": {"value": False}}
    display.entry_finished(entry, doc, tmp_path / "x.json", [])
    display.entry_finished(entry, {**doc, "disturbed": judge(
        [{"other_cpus": 1.5, "cpus": 2}], None, QuietRules())}, tmp_path / "x.json", [])
    display.run_finished({"entries": [{"status": "ok"}, {"status": "ok"}]}, tmp_path)
    lines = stream.getvalue().splitlines()
    warnings = [ln for ln in lines if ln.startswith("warning:")]
    assert len(warnings) == 2
    assert warnings[0].startswith(f"warning: {entry.id} was disturbed while it measured: "
                                  "other processes used 1.5 of 2 CPUs")
    assert warnings[1].startswith("warning: 1 of 2 entries was disturbed")


def test_quiet_thresholds_from_the_suite_and_the_command_line(tmp_path):
    from bench.config import load_suite
    from bench.errors import UserError

    suite = tmp_path / "s.yaml"
    suite.write_text("name: q\nquiet: {max_cv: 0.2}\nentries:\n"
                     "  - {workload: gemm, mode: infer}\n")
    loaded = load_suite(str(suite), overrides=["quiet.max_slowdown=1.5"])
    assert (loaded.quiet.max_cv, loaded.quiet.max_slowdown) == (0.2, 1.5)
    assert not loaded.entries[0].overrides  # a threshold is no override of the measurement
    for bad, needle in (("quiet.max_cv=-1", "minimum"), ("quiet.max_slow=2", "no quiet "
                                                         "threshold"),
                        ("quiet.max_cv=.nan", "not usable")):
        with pytest.raises(UserError, match=needle):
            load_suite(str(suite), overrides=[bad])


# -- a whole run over a fake /proc ------------------------------------------------------------
SUITE = ("name: fakeproc\nrules: {warmup_iters: 1, min_iters: 3, min_duration_s: 0.3, "
         "repeats: 1}\ntelemetry: {interval_s: 0.05, idle_s: 0}\nentries:\n"
         "  - {workload: test-sleep, mode: infer}\n")


def run_over_fake_proc(tmp_path: Path, *args: str, **kernel: float):
    suite = tmp_path / "suite.yaml"
    suite.write_text(SUITE)
    root = FakeProc(tmp_path / "proc")
    out = tmp_path / "run"
    proc = subprocess.Popen(
        [sys.executable, "-m", "bench", "run", "--suite", str(suite), "--device", "cpu",
         "--out", str(out), *args], cwd=ROOT, text=True, stdout=subprocess.PIPE,
        stderr=subprocess.PIPE, env=bench_env(BENCH_PROC_ROOT=str(root.root)))
    with FakeKernel(root, proc.pid, **kernel):
        _, stderr = proc.communicate(timeout=300)
    return proc.returncode, stderr, json.loads((out / "test-sleep-infer.json").read_text()), out


def test_a_quiet_run_says_so_and_warns_of_nothing(tmp_path):
    code, err, doc, out = run_over_fake_proc(tmp_path)
    assert code == 0, err
    assert "warning" not in err and "preflight: the machine is quiet" in err
    assert doc["disturbed"]["value"] is False and "reasons" not in doc["disturbed"]
    c = doc["repeats"][0]["contention"]
    # the fake kernel moves its files every 20 ms, one after the other: a reading may see a
    # tick between two files, a few hundredths of a CPU over a window of 0.3 s
    assert c["slowdown"] == pytest.approx(1.0) and c["other_cpus"] == pytest.approx(0, abs=0.15)
    assert validate_file(out / "test-sleep-infer.json").ok
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["preflight"]["busy"] is False and manifest["entries"][0]["disturbed"] is False


def test_a_busy_run_warns_and_says_why(tmp_path):
    code, err, doc, _ = run_over_fake_proc(tmp_path, other_cpus=1.5, child_cpus=0.45,
                                           child_wait=0.5, load=6.0)
    assert code == 0, err
    # 1.5 CPUs, give or take the fake kernel's ticks between two files (see above)
    assert re.search(r"preflight: the machine is busy \(other processes kept 1\.[4-7] of 2 "
                     r"CPUs busy, load average 6\.0\)", err), err
    assert re.search(r"warning: test-sleep-infer was disturbed while it measured: other "
                     r"processes used 1\.[4-7] of 2 CPUs", err), err
    assert "warning: 1 of 1 entry was disturbed" in err
    assert {r["code"] for r in doc["disturbed"]["reasons"]} == {"host_cpu", "slowdown"}
    assert doc["status"] == "ok"


def test_require_quiet_makes_a_disturbed_entry_an_error(tmp_path):
    code, err, doc, out = run_over_fake_proc(tmp_path, "--require-quiet", other_cpus=1.5)
    assert code == 1
    assert "error   ERROR: the measurement was disturbed and --require-quiet" in err
    assert doc["status"] == "error" and doc["error"]["type"] == "Disturbed"
    assert "--require-quiet" in doc["error"]["message"]
    assert doc["disturbed"]["require_quiet"] is True
    assert doc["metrics"]["throughput_items_per_s"]["value"] > 0  # measured, kept
    assert validate_file(out / "test-sleep-infer.json").ok
