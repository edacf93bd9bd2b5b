"""The sampler, the host adapter on a real (fixture) RAPL tree, and the NVML adapter on a stub
``pynvml`` module (the lowest level: NVML's own function names and units)."""

from __future__ import annotations

import time
import types

import pytest

from bench.telemetry import Sample, Sampler, TelemetryAdapter, open_adapter
from bench.telemetry import host as host_mod
from bench.telemetry.host import HostAdapter, counter_delta, find_rapl_domains
from bench.telemetry.nvml import NvmlAdapter, physical_indices, throttle_names


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
    assert sampler.error_report() == {"count": 2, "messages": {"OSError: device busy": 2}}
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
    assert 0 <= sample.util_pct <= 100
    assert 0 < sample.mem_used_bytes < sample.mem_total_bytes


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


def test_nvml_unsupported_field_is_null_with_reason():
    adapter = NvmlAdapter([0], pynvml=stub_pynvml(fail_energy=True))
    s = adapter.read()[0]
    assert s.energy_j is None and s.power_w == 250.0
    assert adapter.unavailable["energy_j"] == "NVML: Not Supported"


def test_nvml_index_mapping_follows_cuda_visible_devices():
    assert physical_indices([0, 1], "3,5") == [3, 5]
    assert physical_indices([0], None) == [0]
    assert physical_indices([0], "GPU-8f3c") == [0]  # UUIDs left to NVML order


def test_throttle_names():
    assert throttle_names(None, 0) == "none"
    assert throttle_names(None, 0x1 | 0x8) == "gpu_idle+hw_slowdown"


def test_missing_vendor_library_falls_back_to_host_with_reason():
    adapter, note = open_adapter("nvml", [0])  # no NVIDIA driver on this machine
    assert adapter.name == "host"
    assert "nvml telemetry unavailable" in note
