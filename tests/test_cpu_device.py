"""The cpu reference as a device with honest scopes: its utilisation and memory are the
benchmark's own, the host's are kept apart; its peak is estimated from the host; threads and
CPUs reach the child; torch.compile is a recorded choice."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time

import psutil
import pytest

from bench.child import run_repeat
from bench.config import Entry, RunRules
from bench.records import RepeatSpec
from bench.schema import validation_errors
from bench.specs.host_cpu import HostFacts, estimate_spec, flop_per_cycle, host_facts
from bench.telemetry.host import HostAdapter, ProcessTree, share_pct, tree_usage
from tests.conftest import run_bench


def facts(flags: str, cores: int = 2, clock_hz: float | None = 2.0e9, vendor: str =
          "GenuineIntel", family: int = 6, machine: str = "x86_64", threads: int | None = None
          ) -> HostFacts:
    return HostFacts(model_name="Test CPU", vendor_id=vendor, family=family,
                     flags=frozenset(flags.split()), machine=machine, cores=cores,
                     logical_cpus=cores, clock_hz=clock_hz, clock_source="test",
                     memory_bytes=2**34, threads=threads)


# -- the estimated spec sheet ------------------------------------------------------------------
def test_avx512_server_core_peaks_by_hand():
    # 2 FLOP per FMA x 16 fp32 lanes x 2 FMA units = 64 FLOP/cycle; 4 cores at 3 GHz.
    spec = estimate_spec(facts("sse2 avx avx2 fma avx512f avx512_vnni", cores=4,
                               clock_hz=3.0e9))
    peaks = spec["peak_flops"]
    assert peaks["fp32"] == 4 * 64 * 3.0e9 == 768e9
    assert peaks["fp64"] == 384e9
    assert peaks["bf16"] == peaks["fp16"] == 768e9  # no bf16/fp16 units: computed as fp32
    assert peaks["int8"] == 4 * 256 * 3.0e9  # VNNI: 4 int8 MACs per 32-bit lane
    assert peaks["tf32"] is None
    assert spec["estimate"]["flop_per_cycle_per_core"]["fp32"] == 64
    assert validation_errors(spec, "device-spec") == []


def test_amx_and_fp16_units():
    per = flop_per_cycle(facts("avx2 fma avx512f avx512_fp16 amx_bf16 amx_int8"))
    assert (per["fp32"], per["fp16"], per["bf16"], per["int8"]) == (64, 128, 1024, 2048)


def test_zen4_runs_avx512_on_256_bit_units():
    spec = estimate_spec(facts("avx2 fma avx512f avx512_bf16", vendor="AuthenticAMD",
                               family=0x19, clock_hz=2.5e9))
    assert spec["estimate"]["vector_bits"] == 256
    assert spec["peak_flops"]["fp32"] == 2 * 32 * 2.5e9  # 2 cores x 2 x 8 lanes x 2 units
    assert spec["peak_flops"]["bf16"] == 2 * 64 * 2.5e9


@pytest.mark.parametrize(("flags", "machine", "fp32"), [
    ("sse2 avx avx2 fma", "x86_64", 32),  # Haswell and later without AVX-512
    ("sse2", "x86_64", 16),
    ("fp asimd", "aarch64", 16),  # NEON: 4 lanes
])
def test_vector_width_from_the_flags(flags, machine, fp32):
    assert flop_per_cycle(facts(flags, machine=machine))["fp32"] == fp32


def test_a_one_thread_run_can_use_one_core_and_no_clock_means_no_estimate():
    one = estimate_spec(facts("avx2 fma", cores=8, threads=1))
    assert one["estimate"]["cores"] == 1 and one["peak_flops"]["fp32"] == 32 * 2.0e9
    assert estimate_spec(facts("avx2 fma", clock_hz=None)) is None


def test_this_host_gets_a_valid_labelled_estimate():
    spec = estimate_spec(host_facts())
    if spec is None:
        pytest.skip("this host reports no CPU clock")
    assert spec["estimate"]["method"] and spec["memory_bandwidth_bytes_per_s"] is None
    assert validation_errors(spec, "device-spec") == []


# -- the benchmark's own share of the host ------------------------------------------------------
def test_share_of_the_allotted_cpus_by_hand():
    assert share_pct(1.5, 1.0, 2) == 75.0
    assert share_pct(2.1, 1.0, 2) == 100.0  # two readings microseconds apart: clamped
    assert share_pct(-0.1, 1.0, 2) is None
    assert share_pct(0.5, 0.0, 2) is None


BUSY = ("import subprocess, sys, time\n"
        "child = subprocess.Popen([sys.executable, '-c', 'import time\\nend = time.time() + 5\\n"
        "while time.time() < end: pass'])\n"
        "x = b'x' * (50 * 2**20)\n"  # written, so resident
        "print('ready', flush=True)\n"
        "end = time.time() + 5\n"
        "while time.time() < end: pass\n"
        "child.wait()\n")


def test_a_process_tree_is_measured_with_its_descendants():
    proc = subprocess.Popen([sys.executable, "-c", BUSY], stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None and proc.stdout.readline().strip() == "ready"
        usage = tree_usage(psutil.Process(proc.pid))
        assert usage.processes == 2
        assert usage.rss_bytes > 50 * 2**20  # the bytearray is resident
        assert usage.cpus == len(os.sched_getaffinity(0))
        tree = ProcessTree(proc.pid)
        time.sleep(0.3)
        share, rss = tree.read()
        assert share is not None and 0 <= share <= 100 and rss > 0
    finally:
        proc.kill()
        proc.wait()


def test_the_host_adapter_reads_the_tracked_tree_and_the_host_apart():
    adapter = HostAdapter()
    proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(5)"])
    try:
        (untracked,) = adapter.read()
        assert untracked.util_pct is None and untracked.mem_used_bytes is None
        assert untracked.host_util_pct is not None and untracked.host_mem_used_bytes > 0
        adapter.track(proc.pid)
        time.sleep(0.2)
        (tracked,) = adapter.read()
        assert tracked.util_pct is not None and tracked.mem_used_bytes > 0
        assert tracked.mem_used_bytes < tracked.host_mem_used_bytes
        adapter.track(None)
        assert adapter.read()[0].util_pct is None
    finally:
        proc.kill()
        proc.wait()
    assert "process tree" in adapter.scope["util_pct"]
    assert "other processes included" in adapter.scope["host_util_pct"]


# -- torch.compile as a recorded choice ---------------------------------------------------------
def spec_for(workload: str, compile_: bool) -> RepeatSpec:
    entry = Entry(id=workload, workload=workload, mode="infer", config="small",
                  precision="fp32", params={"batch_size": 2},
                  rules=RunRules(warmup_iters=1, min_iters=2, min_duration_s=0),
                  compile=compile_)
    return RepeatSpec("cpu", entry, seed=0, repeat=0)


def test_compiling_a_workload_without_a_model_is_unsupported_with_the_reason(monkeypatch):
    monkeypatch.setenv("BENCH_WORKLOAD_MODULES", "tests.faulty_workloads")
    result = run_repeat(spec_for("test-sleep", True))
    assert result["status"] == "unsupported"
    assert "no model to compile" in result["error"]["message"]
    eager = run_repeat(spec_for("test-sleep", False))
    assert eager["status"] == "ok"
    assert eager["info"]["compile"] == {"requested": False, "used": False, "mode": "eager"}
    assert eager["cold_start"]["first_iter_s"] > 0


def test_a_cpu_without_a_cxx_compiler_cannot_compile(monkeypatch):
    from bench.devices.cpu import CpuBackend

    monkeypatch.setenv("PATH", "/nonexistent")
    monkeypatch.delenv("CXX", raising=False)
    assert "no C++ compiler" in CpuBackend().compile_unsupported()


# -- a run with threads, CPUs, rule overrides: what its result records --------------------------
def test_a_pinned_one_thread_run_records_its_device_settings(tmp_path):
    suite = tmp_path / "s.yaml"
    suite.write_text("name: s\nrules: {warmup_iters: 1, min_iters: 3, min_duration_s: 0.05, "
                     "repeats: 1, timeout_s: 120}\ntelemetry: {interval_s: 0.05, idle_s: 0.1}\n"
                     "entries:\n  - {id: sleep, workload: test-sleep, mode: infer}\n")
    out = tmp_path / "run"
    cpu = min(os.sched_getaffinity(0))
    proc = run_bench("run", "--suite", str(suite), "--device", "cpu", "--out", str(out),
                     "--threads", "1", "--cpus", str(cpu), "--set", "rules.min_iters=4")
    assert proc.returncode == 0, proc.stderr[-2000:]
    doc = json.loads((out / "sleep.json").read_text())
    assert validation_errors(doc, "result") == []
    settings = doc["provenance"]["device_settings"]
    assert settings["requested"] == {"threads": 1, "interop_threads": None, "cpus": [cpu]}
    applied = settings["applied"]
    assert (applied["threads"], applied["interop_threads"], applied["cpus"]) == (1, 1, str(cpu))
    assert applied["env"]["OMP_NUM_THREADS"] == "1"
    assert doc["rules"]["min_iters"] == 4
    assert doc["workload"]["overrides"] == {"rules.min_iters": 4}
    assert doc["workload"]["compile"]["mode"] == "eager"
    m = doc["metrics"]
    for name in ("latency_p95_s", "cold_load_s", "cold_first_iter_s", "host_util_pct"):
        assert m[name]["unit"] == "s" if name != "host_util_pct" else "%", name
    assert "process tree" in m["device_util_pct"]["scope"]
    assert "other processes" in m["host_util_pct"]["scope"]
    assert doc["repeats"][0]["cold_start"]["load_s"] >= 0

    from testbed.report.analysis import result_marks

    assert "rules.min_iters=4" in result_marks(doc)["O"]


def test_cpus_this_process_may_not_use_are_refused(tmp_path):
    proc = run_bench("run", "--suite", "smoke", "--out", str(tmp_path / "r"), "--cpus",
                     "4096")
    assert proc.returncode == 2
    assert "may not use" in proc.stderr and "Traceback" not in proc.stderr


@pytest.mark.slow
def test_a_compiled_run_compiles_and_its_first_iteration_pays_for_it(tmp_path):
    """A real torch.compile (Inductor, C++ for the CPU) of a tiny model in the child: the
    result says compiled, and the compilation is in the cold start, not the steady state.
    (Inductor's on-disk cache makes a second run of this test faster.)"""
    suite = tmp_path / "s.yaml"
    suite.write_text("name: s\nrules: {warmup_iters: 1, min_iters: 3, min_duration_s: 0.05, "
                     "repeats: 1, timeout_s: 900}\ntelemetry: {interval_s: 0.1, idle_s: 0.1}\n"
                     "entries:\n  - {id: tiny, workload: test-tiny-model, mode: infer, "
                     "compile: true}\n")
    out = tmp_path / "run"
    proc = run_bench("run", "--suite", str(suite), "--device", "cpu", "--out", str(out),
                     timeout=900)
    assert proc.returncode == 0, proc.stderr[-2000:]
    doc = json.loads((out / "tiny.json").read_text())
    assert doc["status"] == "ok"
    record = doc["workload"]["compile"]
    assert record == {"requested": True, "used": True, "mode": "torch.compile",
                      "backend": "inductor", "modules": ["Sequential"],
                      "graphs": record["graphs"]}
    assert record["graphs"] >= 1  # TorchDynamo really compiled the model
    assert doc["workload"]["overrides"] == {}  # asked for by the suite, not --set
    assert doc["metrics"]["cold_first_iter_s"]["value"] == \
        doc["repeats"][0]["cold_start"]["first_iter_s"]
