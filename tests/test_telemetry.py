"""The sampler, the host adapter on a real (fixture) RAPL tree, the NVML adapter on a stub
``pynvml`` module (the lowest level: NVML's own function names and units), adapter selection
with its fallback chain, and the energy/coverage arithmetic of result documents against
hand-worked numbers. Vendor adapters on stub libraries and tools: test_telemetry_vendors.py."""

from __future__ import annotations

import time
import types

import pytest

from bench.errors import UserError
from bench.results import TelemetryContext, build_metrics, window_telemetry
from bench.runner import no_device_telemetry
from bench.telemetry import Sample, Sampler, TelemetryAdapter, open_adapter
from bench.telemetry import host as host_mod
from bench.telemetry.energy import counter_energy_j, integrated_energy_j, window_coverage
from bench.telemetry.host import HostAdapter, counter_delta, find_rapl_domains
from bench.telemetry.nvml import NvmlAdapter, physical_indices, throttle_names
from bench.telemetry.sampler import interval_stats


class Scripted(TelemetryAdapter):
    """Returns queued readings; an Exception in the queue is raised as a failed reading."""

    name = "scripted"

    def __init__(self, readings):
        super().__init__([0])
        self.readings = list(readings)

    def read(self):
        item = self.readings.pop(0) if self.readings else Sample(util_pct=1.0)
        if isinstance(item, Exception):
            raise item
        return [item]


def test_sampler_counts_errors_and_keeps_samples():
    adapter = Scripted([Sample(util_pct=10.0), OSError("device busy"), OSError("device busy"),
                        Sample(util_pct=30.0, power_w=50.0)])
    sampler = Sampler(adapter, interval_s=1.0)
    for _ in range(4):
        sampler.sample_once()
    assert sampler.errors == 2
    report = sampler.error_report()
    assert report["count"] == 2 and report["in_window"] == 2
    assert report["messages"] == {"OSError: device busy": 2}
    assert len(sampler.snapshot()["error_t_mono_s"]) == 2
    snap = sampler.snapshot()
    assert snap["devices"][0]["series"]["util_pct"] == [10.0, 30.0]
    assert snap["devices"][0]["series"]["power_w"] == [None, 50.0]
    assert snap["t_s"][0] == 0.0 and snap["t_s"][1] > 0


def test_sampler_thread_achieves_its_interval():
    sampler = Sampler(Scripted([]), interval_s=0.02)
    with sampler:
        time.sleep(0.5)
    achieved = sampler.achieved_interval()
    assert 20 <= achieved["samples"] <= 30
    assert achieved["mean_s"] == pytest.approx(0.02, rel=0.2)
    assert achieved["p99_jitter_s"] < 0.02


def test_snapshot_cuts_to_window():
    sampler = Sampler(Scripted([]), interval_s=1.0)
    for _ in range(3):
        sampler.sample_once()
    t = sampler.t_mono
    snap = sampler.snapshot(t[1], t[2])
    assert snap["t_mono_s"] == t[1:]
    assert snap["t_s"][0] == 0.0


def test_discard_before_keeps_only_recent_samples():
    sampler = Sampler(Scripted([Sample(util_pct=float(i)) for i in range(5)]), interval_s=1.0)
    for _ in range(5):
        sampler.sample_once()
    cut = sampler.t_mono[3]
    assert sampler.discard_before(cut) == 3
    snap = sampler.snapshot()
    assert snap["devices"][0]["series"]["util_pct"] == [3.0, 4.0]
    assert snap["t_mono_s"][0] == cut and len(sampler.read_s) == 2


def make_rapl(root, packages):
    for i, (energy, max_range) in enumerate(packages):
        d = root / f"intel-rapl:{i}"
        d.mkdir(parents=True)
        (d / "energy_uj").write_text(f"{energy}\n")
        (d / "max_energy_range_uj").write_text(f"{max_range}\n")
        sub = root / f"intel-rapl:{i}:0"  # a sub-zone (core): must not be double counted
        sub.mkdir()
        (sub / "energy_uj").write_text("1\n")
        (sub / "max_energy_range_uj").write_text(f"{max_range}\n")


def test_rapl_counter_wraps():
    assert counter_delta(100, 250, 1000) == 150
    assert counter_delta(900, 100, 1000) == 200


def test_no_rapl_gives_null_power_with_reason(tmp_path, monkeypatch):
    monkeypatch.setattr(host_mod, "RAPL_ROOT", tmp_path)
    adapter = HostAdapter()
    sample = adapter.read()[0]
    assert sample.power_w is None and sample.energy_j is None
    assert "no RAPL package domains" in adapter.unavailable["power_w"]
    # no benchmark process tree tracked: the device fields (its share) are unknown, the
    # whole-host figures are read
    assert sample.util_pct is None and sample.mem_used_bytes is None
    assert 0 <= sample.host_util_pct <= 100
    assert 0 < sample.host_mem_used_bytes < sample.mem_total_bytes


def test_host_power_from_rapl_packages(tmp_path, monkeypatch):
    make_rapl(tmp_path, [(1_000_000, 2**32), (5_000_000, 2**32)])
    monkeypatch.setattr(host_mod, "RAPL_ROOT", tmp_path)
    domains, reason = find_rapl_domains(tmp_path)
    assert reason is None and len(domains) == 2  # sub-zones excluded
    adapter = HostAdapter()
    assert adapter.read()[0].power_w is None  # the first reading has no reference
    # 1 s later: package 0 used 30 J, package 1 used 20 J -> 50 W in total
    (tmp_path / "intel-rapl:0" / "energy_uj").write_text("31000000\n")
    (tmp_path / "intel-rapl:1" / "energy_uj").write_text("25000000\n")
    t0 = adapter._last[0]
    monkeypatch.setattr(host_mod.time, "monotonic", lambda: t0 + 1.0)
    sample = adapter.read()[0]
    assert sample.power_w == pytest.approx(50.0)
    assert sample.energy_j == pytest.approx(50.0)
    assert "power_w" not in adapter.unavailable


def test_unreadable_rapl_is_reported(tmp_path, monkeypatch):
    make_rapl(tmp_path, [(1, 2**32)])
    (tmp_path / "intel-rapl:0" / "energy_uj").write_text("permission denied?")
    _, reason = find_rapl_domains(tmp_path)
    assert "not readable" in reason


class NVMLError(Exception):
    pass


def stub_pynvml(power_mw=250_000, energy_mj=1_234_567, fail_energy=False):
    """NVML's Python API as nvidia-ml-py exposes it, with a recorded A100's readings."""
    nv = types.SimpleNamespace()
    nv.NVMLError = NVMLError
    nv.NVML_TEMPERATURE_GPU = 0
    nv.NVML_CLOCK_SM = 1
    nv.calls = []
    nv.nvmlInit = lambda: nv.calls.append("init")
    nv.nvmlShutdown = lambda: nv.calls.append("shutdown")
    nv.nvmlDeviceGetHandleByIndex = lambda i: f"handle{i}"
    nv.nvmlDeviceGetName = lambda h: b"NVIDIA A100-SXM4-80GB"
    nv.nvmlDeviceGetUtilizationRates = lambda h: types.SimpleNamespace(gpu=87, memory=40)
    nv.nvmlDeviceGetMemoryInfo = lambda h: types.SimpleNamespace(
        used=10 * 2**30, total=80 * 2**30, free=70 * 2**30)
    nv.nvmlDeviceGetPowerUsage = lambda h: power_mw
    nv.nvmlDeviceGetTemperature = lambda h, sensor: 61
    nv.nvmlDeviceGetClockInfo = lambda h, clock: 1410

    def energy(h):
        if fail_energy:
            raise NVMLError("Not Supported")
        return energy_mj

    nv.nvmlDeviceGetTotalEnergyConsumption = energy
    nv.nvmlDeviceGetCurrentClocksEventReasons = lambda h: 0x4 | 0x20
    return nv


def test_nvml_units_are_si():
    nv = stub_pynvml()
    adapter = NvmlAdapter([0], pynvml=nv)
    s = adapter.read()[0]
    assert s.util_pct == 87.0
    assert s.mem_used_bytes == 10 * 2**30 and s.mem_total_bytes == 80 * 2**30
    assert s.power_w == 250.0  # mW -> W
    assert s.temp_c == 61.0
    assert s.clock_hz == 1.41e9  # MHz -> Hz
    assert s.energy_j == pytest.approx(1234.567)  # mJ -> J
    assert s.throttle == "sw_power_cap+sw_thermal_slowdown"
    assert adapter.describe()["devices"] == ["NVIDIA A100-SXM4-80GB"]
    adapter.close()
    assert nv.calls == ["init", "shutdown"]


def test_nvml_without_process_lists_says_so():
    adapter = NvmlAdapter([0], pynvml=stub_pynvml())  # a library without the process calls
    assert "running processes are not readable" in adapter.processes_unavailable


def test_nvml_unsupported_field_is_null_with_reason():
    adapter = NvmlAdapter([0], pynvml=stub_pynvml(fail_energy=True))
    s = adapter.read()[0]
    assert s.energy_j is None and s.power_w == 250.0
    assert adapter.unavailable["energy_j"] == "nvml: Not Supported"


def test_nvml_reads_instant_power_where_the_driver_has_it():
    """Hopper's nvmlDeviceGetPowerUsage is a one-second average: the instant field is read
    where it answers, the average where it does not (older drivers, NVML-compatible libs)."""
    def field_values(ret, mw):
        return lambda h, ids: [types.SimpleNamespace(
            fieldId=ids[0], nvmlReturn=ret, valueType=1, value=types.SimpleNamespace(uiVal=mw))]

    nv = stub_pynvml(power_mw=250_000)
    nv.nvmlDeviceGetFieldValues = field_values(0, 312_000)
    adapter = NvmlAdapter([0], pynvml=nv)
    assert adapter.read()[0].power_w == 312.0
    assert "instant" in adapter.scope["power_w"]

    nv = stub_pynvml(power_mw=250_000)
    nv.nvmlDeviceGetFieldValues = field_values(3, 0)  # NVML_ERROR_NOT_SUPPORTED
    adapter = NvmlAdapter([0], pynvml=nv)
    assert adapter.read()[0].power_w == 250.0
    assert "nvmlDeviceGetPowerUsage" in adapter.scope["power_w"]


def test_nvml_index_mapping_follows_cuda_visible_devices():
    assert physical_indices([0, 1], "3,5") == [3, 5]
    assert physical_indices([0], None) == [0]
    assert physical_indices([0], "GPU-8f3c") == [0]  # UUIDs left to NVML order


def test_throttle_names():
    assert throttle_names(0) == "none"
    assert throttle_names(0x1 | 0x8) == "gpu_idle+hw_slowdown"


def test_missing_vendor_library_falls_back_to_host_with_reason(monkeypatch):
    monkeypatch.delenv("BENCH_TELEMETRY", raising=False)
    adapter, selection = open_adapter("nvml", [0])  # no NVIDIA driver on this machine
    assert adapter.name == "host"
    assert selection["requested"] == "nvml" and selection["used"] == "host"
    assert selection["attempts"][0]["backend"] == "nvml"
    assert selection["attempts"][0]["status"] == "failed"
    assert "fell back to 'host'" in selection["note"]


def test_fallback_chain_is_recorded_step_by_step(tmp_path, monkeypatch):
    monkeypatch.setenv("BENCH_CNDEV_LIBRARY", str(tmp_path / "absent" / "libcndev.so"))
    monkeypatch.setenv("PATH", str(tmp_path))  # no cnmon either
    monkeypatch.delenv("BENCH_TELEMETRY", raising=False)
    adapter, selection = open_adapter("cndev", [0])
    assert adapter.name == "host"
    assert selection["chain"] == ["cndev", "cnmon", "host"]
    steps = [(a["backend"], a["status"]) for a in selection["attempts"]]
    assert steps == [("cndev", "failed"), ("cnmon", "failed"), ("host", "used")]
    assert "libcndev.so not loadable" in selection["attempts"][0]["reason"]
    assert "cnmon not found" in selection["attempts"][1]["reason"]


def test_every_adapter_of_the_table_resolves_to_its_class():
    """ADAPTERS names each adapter by module and class, imported only when a chain reaches it:
    each must resolve to a TelemetryAdapter whose constructor takes what ``open`` passes it,
    and every name of every chain (and only those) has an adapter and a fallback chain."""
    import importlib
    import inspect

    from bench.telemetry import ADAPTERS, CHAINS, FALLBACKS

    named = {"host", *(name for chain in CHAINS for name in chain)}
    assert set(ADAPTERS) == set(FALLBACKS) == named
    for name, ref in ADAPTERS.items():
        cls = getattr(importlib.import_module(f"bench.telemetry.{ref.module}"), ref.cls)
        assert issubclass(cls, TelemetryAdapter), name
        inspect.signature(cls).bind([0], *((0.1,) if ref.takes_interval else ()))
        assert FALLBACKS[name][0] == name and FALLBACKS[name][-1] == "host"


def test_environment_override_and_unknown_backend(monkeypatch):
    monkeypatch.setenv("BENCH_TELEMETRY", "host")
    adapter, selection = open_adapter("nvml", [0])
    assert adapter.name == "host" and selection["overridden_by_env"]
    assert selection["note"] is None  # host was asked for and used
    monkeypatch.setenv("BENCH_TELEMETRY", "smi")
    with pytest.raises(UserError, match="BENCH_TELEMETRY=smi"):
        open_adapter("nvml", [0])


def test_host_readings_are_never_an_accelerators():
    host = HostAdapter()
    assert no_device_telemetry("cpu", host, {}) is None
    why = no_device_telemetry("mlu", host, {"note": "telemetry 'cndev' fell back to 'host'"})
    assert "no mlu device telemetry" in why and "fell back" in why


# -- arithmetic, against numbers worked out by hand ------------------------------------------
def test_interval_stats_hand_worked():
    stats = interval_stats([0.0, 0.1, 0.25, 0.35], 0.1)
    # gaps 0.1, 0.15, 0.1: mean 0.35/3; |gap - 0.1| = 0, 0.05, 0 -> nearest-rank p99 = 0.05
    assert stats["mean_s"] == pytest.approx(0.35 / 3)
    assert stats["p99_jitter_s"] == pytest.approx(0.05)
    assert stats["max_gap_s"] == pytest.approx(0.15)
    assert stats["samples"] == 4
    assert interval_stats([1.0], 0.1)["mean_s"] is None


def test_integrated_energy_interpolates_the_window_edges():
    t = [0.0, 1.0, 2.0, 3.0]
    p = [100.0, 100.0, 200.0, 200.0]
    # window [0.5, 2.5]: 0.5 s at 100 W + 1 s averaging 150 W + 0.5 s at 200 W = 300 J
    assert integrated_energy_j(t, p, 0.5, 2.5) == (pytest.approx(300.0), None)
    assert integrated_energy_j(t, [None, 100.0, 200.0, 200.0], 0.5, 2.5)[0] is None
    assert "bracket" in integrated_energy_j(t, p, -1.0, 2.0)[1]


def test_counter_energy_is_the_interpolated_difference():
    t = [0.0, 1.0, 2.0, 3.0]
    e = [100.0, 110.0, 130.0, 160.0]
    # E(0.5) = 105, E(2.5) = 145 -> 40 J
    assert counter_energy_j(t, e, 0.5, 2.5) == (pytest.approx(40.0), None)
    value, reason = counter_energy_j(t, [100.0, 110.0, 5.0, 20.0], 0.5, 2.5)
    assert value is None and "backwards" in reason
    assert counter_energy_j(t, [None] * 4, 0.5, 2.5) == (None, "no energy counter samples")


def test_window_coverage_hand_worked():
    cov = window_coverage([0.0, 0.1, 0.2, 0.5], [1.0, 1.0, 1.0, 1.0], 0.05, 0.45, 0.1)
    # inside: 0.1, 0.2 -> 2 of an expected 0.4/0.1 = 4; gaps .05, .1, .25
    assert cov["valid_samples"] == 2
    assert cov["expected_samples"] == pytest.approx(4.0)
    assert cov["ratio"] == pytest.approx(0.5)
    assert cov["max_gap_s"] == pytest.approx(0.25)
    assert cov["bracketed"] is True
    empty = window_coverage([0.0, 1.0], [None, None], 0.2, 0.6, 0.1)
    assert empty["valid_samples"] == 0 and empty["max_gap_s"] == pytest.approx(0.4)
    assert empty["bracketed"] is False


def synthetic_snapshot():
    """A device at 100 W for 2 s then 200 W, with an energy counter that agrees, sampled
    every 0.5 s, one failed reading at t = 2.25."""
    t = [i * 0.5 for i in range(9)]  # 0 .. 4 s
    power = [100.0 if ti < 2.0 else 200.0 for ti in t]
    energy, acc = [], 1000.0
    for i, ti in enumerate(t):
        if i:
            acc += (power[i - 1] + power[i]) / 2 * (ti - t[i - 1])
        energy.append(acc)
    series = {"util_pct": [50.0] * 9, "mem_used_bytes": [4e9] * 9, "mem_total_bytes": [8e9] * 9,
              "power_w": power, "temp_c": [60.0] * 9, "clock_hz": [1.4e9] * 9,
              "energy_j": energy, "throttle": ["none"] * 9}
    return {"t_mono_s": t, "t_s": t, "t_wall": t, "error_t_mono_s": [2.25],
            "devices": [{"index": 0, "series": series}]}


def ok_repeat(start, end, items):
    return {"status": "ok", "window": {"start_mono": start, "end_mono": end,
                                       "duration_s": end - start},
            "items": items, "throughput_items_per_s": items / (end - start),
            "latencies_s": [0.01] * 5, "memory": {}}


def test_result_energy_metrics_hand_worked():
    tel = TelemetryContext(snapshot=synthetic_snapshot(), interval_s=0.5,
                           scope={"power_w": "GPU board"})
    repeats = [ok_repeat(0.5, 1.5, 100), ok_repeat(1.5, 3.5, 400)]
    for r in repeats:
        r["telemetry"] = window_telemetry(tel, r["window"]["start_mono"],
                                          r["window"]["end_mono"])
    m = build_metrics(repeats, tel, "images", "cuda", 30.0, {"power_w": 40.0})
    # repeat 0: 1 s at 100 W = 100 J. repeat 1: the samples ramp from 100 W at 1.5 s to
    # 200 W at 2.0 s, then stay: 0.5 s x 150 W + 1.5 s x 200 W = 375 J (trapezoid and counter
    # agree because the counter was built by the same rule).
    assert m["energy_integrated_j"]["per_repeat"] == [pytest.approx(100), pytest.approx(375)]
    assert m["energy_counter_j"]["per_repeat"] == [pytest.approx(100), pytest.approx(375)]
    assert m["energy_j"]["source"] == "counter"
    assert m["energy_j"]["value"] == pytest.approx(237.5)
    assert m["energy_j"]["scope"] == "GPU board"
    # J per image: 100/100 = 1.0 and 375/400 = 0.9375
    assert m["energy_per_item_j"]["per_repeat"] == [pytest.approx(1.0), pytest.approx(0.9375)]
    assert m["energy_per_item_j"]["unit"] == "J/images"
    # above idle (40 W): 100 - 40 x 1 = 60 and 375 - 40 x 2 = 295
    assert m["energy_above_idle_j"]["per_repeat"] == [pytest.approx(60), pytest.approx(295)]
    # plain sample means inside each window: {100,100,100} and {100,200,200,200,200}
    assert m["power_w_mean"]["per_repeat"] == [pytest.approx(100), pytest.approx(180)]
    assert m["power_w_mean"]["value"] == pytest.approx(140)
    # SPEC: items/J = throughput / average power = mean(100, 200) / 140
    assert m["items_per_j"]["value"] == pytest.approx(150 / 140)
    assert m["telemetry_errors"]["per_repeat"] == [0, 1]  # the failed reading at 2.25 s
    assert m["device_mem_used_pct_mean"]["value"] == pytest.approx(50.0)
    assert m["idle_power_w"]["value"] == 40.0
    cov = repeats[1]["telemetry"]["coverage"]["power_w"]
    assert cov["valid_samples"] == 5 and cov["bracketed"]


def test_integrated_energy_is_primary_without_a_counter():
    snap = synthetic_snapshot()
    snap["devices"][0]["series"]["energy_j"] = [None] * 9
    tel = TelemetryContext(snapshot=snap, interval_s=0.5,
                           unavailable={"energy_j": "NVML: Not Supported"})
    repeats = [ok_repeat(0.5, 1.5, 100)]
    repeats[0]["telemetry"] = window_telemetry(tel, 0.5, 1.5)
    m = build_metrics(repeats, tel, "images", "cuda", 30.0, None)
    assert m["energy_j"]["source"] == "power_integral"
    assert m["energy_j"]["value"] == pytest.approx(100)
    assert m["energy_counter_j"]["value"] is None
    assert m["energy_counter_j"]["reason"] == "NVML: Not Supported"
    assert m["energy_above_idle_j"]["value"] is None
    assert "no idle power" in m["energy_above_idle_j"]["reason"]


def test_host_fallback_is_not_reported_as_the_accelerator():
    tel = TelemetryContext(snapshot=synthetic_snapshot(), interval_s=0.5,
                           not_the_device="no mlu device telemetry (cndev fell back to host)")
    repeats = [ok_repeat(0.5, 1.5, 100)]
    repeats[0]["telemetry"] = window_telemetry(tel, 0.5, 1.5)
    m = build_metrics(repeats, tel, "images", "mlu", 30.0, None)
    for name in ("device_util_pct", "power_w_mean", "energy_j", "energy_per_item_j"):
        assert m[name]["value"] is None, name
        assert "no mlu device telemetry" in m[name]["reason"]
    assert m["host_bound"]["value"] is None


# -- the overhead benchmark's statistics (the figure itself is printed, never asserted) -------
def test_ratio_summary_and_verdict():
    from bench.tools.telemetry_overhead import ratio_summary, verdict

    s = ratio_summary([0.98, 1.0, 0.99, 1.01, 0.97])
    assert s["median"] == 0.99 and s["q1"] == 0.98 and s["q3"] == 1.0
    assert s["loss_pct"] == pytest.approx(1.0)
    assert s["ci95_low"] <= s["median"] <= s["ci95_high"]
    assert ratio_summary([0.98, 1.0, 0.99, 1.01, 0.97]) == s  # seeded bootstrap

    def result(ratios):
        return {"ratio_to_off": {"off-again": ratio_summary([1.0, 1.0]),
                                 "10 Hz": ratio_summary(ratios)},
                "sampler_cpu_fraction": {"10 Hz": 0.004}, "conditions": {"cpu_count": 2}}

    assert "within" in verdict(result([0.999, 1.0, 1.001] * 5))
    assert "ABOVE" in verdict(result([0.95, 0.96, 0.97] * 5))
    noisy = verdict(result([0.7, 1.3, 0.9, 1.1, 1.0] * 3))
    assert "cannot resolve" in noisy and "CPU-time bound is 0.20 %" in noisy


@pytest.mark.slow
def test_overhead_command_runs_the_real_arrangement(tmp_path):
    import json
    import subprocess
    import sys

    from tests.conftest import ROOT

    out = tmp_path / "overhead.json"
    proc = subprocess.run([sys.executable, "-m", "bench.tools.telemetry_overhead",
                           "--rounds", "2", "--round-s", "0.05", "--out", str(out)], cwd=ROOT,
                          capture_output=True, text=True, timeout=180)
    assert proc.returncode == 0, proc.stderr
    assert "10 Hz: median throughput loss" in proc.stdout
    figures = json.loads(out.read_text())
    assert set(figures["ratio_to_off"]) == {"off-again", "10 Hz", "100 Hz"}
    assert figures["conditions"]["adapter"] == "host"
    assert figures["throughput_items_per_s"]["off"] > 0


def test_wait_past_brackets_a_window_end():
    sampler = Sampler(Scripted([]), interval_s=0.05)
    with sampler:
        end = time.monotonic()
        assert sampler.wait_past(end)
        assert sampler.t_mono[-1] > end
    # a stopped sampler never brings another sample: give up at once instead of waiting
    assert not sampler.wait_past(time.monotonic(), timeout_s=5.0)
