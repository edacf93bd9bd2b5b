"""Vendor adapters we cannot run here, faked at the lowest level so the adapter code is real.

* libcndev and libixml: small C libraries (tests/fixtures/telemetry/stub_*.c) compiled with gcc
  into a temporary directory and loaded by the adapters through ctypes, as the real ones are.
* cnmon, ixsmi, tegrastats: executables on PATH that print recorded output
  (tests/fixtures/telemetry/fake_tool.py and the fixture files beside it).
* jtop: a stub ``jtop`` module with jetson-stats' client interface and recorded readings.
"""

from __future__ import annotations

import ctypes
import json
import shutil
import subprocess
import sys
import time
import types
from pathlib import Path

import pytest

from bench.telemetry import Sampler, open_adapter
from bench.telemetry import cndev as cndev_mod
from bench.telemetry.base import MIB, AdapterUnavailable, ToolError
from bench.telemetry.cndev import CndevAdapter, CnmonAdapter, load_cndev
from bench.telemetry.ixml import IxmlAdapter, IxsmiAdapter, attribute_card_power, load_ixml
from bench.telemetry.jetson import JtopAdapter, TegrastatsAdapter
from tests.conftest import FIXTURES, run_bench

TELEMETRY = FIXTURES / "telemetry"
FAKE_TOOLS = ("cnmon", "ixsmi", "tegrastats", "npu-smi", "rocm-smi", "hy-smi")


# -- building the stubs ---------------------------------------------------------------------
def compile_stub(source: Path, out: Path, *defines: str) -> Path:
    gcc = shutil.which("gcc")
    if gcc is None:
        pytest.fail("gcc is needed to build the stub vendor libraries (apt-get install gcc)")
    subprocess.run([gcc, "-shared", "-fPIC", "-O1", "-Wall", *defines, "-o",
                    str(out), str(source)], check=True)
    return out


@pytest.fixture(scope="module")
def stub_libs(tmp_path_factory):
    d = tmp_path_factory.mktemp("stublibs")
    return {
        "cndev": compile_stub(TELEMETRY / "stub_cndev.c", d / "libcndev.so"),
        "cndev_v5": compile_stub(TELEMETRY / "stub_cndev.c", d / "libcndev_v5.so",
                                 "-DOLD_API"),
        "ixml": compile_stub(TELEMETRY / "stub_ixml.c", d / "libixml.so"),
        "dcmi": compile_stub(TELEMETRY / "stub_dcmi.c", d / "libdcmi.so"),
        "dcmi_old": compile_stub(TELEMETRY / "stub_dcmi.c", d / "libdcmi_old.so",
                                 "-DOLD_CARD_LIST"),
    }


@pytest.fixture
def cndev_stub(stub_libs, monkeypatch):
    monkeypatch.setenv("BENCH_CNDEV_LIBRARY", str(stub_libs["cndev"]))
    monkeypatch.delenv("MLU_VISIBLE_DEVICES", raising=False)
    lib = ctypes.CDLL(str(stub_libs["cndev"]))  # the same loaded image the adapter uses
    lib.stub_reset()
    lib.stub_set.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_longlong]
    lib.stub_sizeof.restype = ctypes.c_size_t
    return lib


@pytest.fixture
def ixml_stub(stub_libs, monkeypatch):
    monkeypatch.setenv("BENCH_IXML_LIBRARY", str(stub_libs["ixml"]))
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    lib = ctypes.CDLL(str(stub_libs["ixml"]))
    lib.stub_reset()
    lib.stub_set_name.argtypes = [ctypes.c_int, ctypes.c_char_p]
    lib.stub_set_power_mw.argtypes = [ctypes.c_int, ctypes.c_longlong]
    return lib


@pytest.fixture
def fake_tools(tmp_path, monkeypatch):
    """The vendor tools on PATH (cnmon, ixsmi, tegrastats, npu-smi, rocm-smi, hy-smi), each
    printing the fixture set with ``use(tool, fixture)``."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for tool in FAKE_TOOLS:
        wrapper = bin_dir / tool
        wrapper.write_text(f'#!/bin/sh\nexec "{sys.executable}" '
                           f'"{TELEMETRY / "fake_tool.py"}" {tool} "$@"\n')
        wrapper.chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}:/usr/bin:/bin")
    monkeypatch.setenv("FAKE_STATE", str(tmp_path / "state"))
    for var in ("CUDA_VISIBLE_DEVICES", "MLU_VISIBLE_DEVICES", "BENCH_TELEMETRY",
                "ASCEND_RT_VISIBLE_DEVICES", "HIP_VISIBLE_DEVICES", "ROCR_VISIBLE_DEVICES"):
        monkeypatch.delenv(var, raising=False)

    def use(tool: str, fixture: str) -> None:
        env = "FAKE_" + tool.upper().replace("-", "_")
        monkeypatch.setenv(env, str(TELEMETRY / tool / fixture))

    return use


# -- Cambricon: libcndev --------------------------------------------------------------------
def test_cndev_structures_match_the_c_layout(cndev_stub):
    for name in ("CardInfo", "MemoryInfoV2", "MemoryInfoV1", "DevicePowerInfo", "PowerInfoV1",
                 "TemperatureInfo", "UtilizationInfo", "FrequencyInfo", "ThrottleReason"):
        assert ctypes.sizeof(getattr(cndev_mod, name)) == cndev_stub.stub_sizeof(name.encode()), \
            name


def test_cndev_reads_si_units_through_device_handles(cndev_stub):
    cndev_stub.stub_set(0, b"used_mib", 17890)
    cndev_stub.stub_set(0, b"power_w", 141)
    cndev_stub.stub_set(0, b"util", 87)
    cndev_stub.stub_set(0, b"chip_c", 58)
    cndev_stub.stub_set(0, b"thermal", 1)
    adapter = CndevAdapter([0])
    s = adapter.read()[0]
    assert s.util_pct == 87.0
    assert s.mem_used_bytes == 17890 * MIB and s.mem_total_bytes == 23374 * MIB
    assert s.power_w == 141.0 and s.temp_c == 58.0
    assert s.clock_hz == 1.3e9
    assert s.throttle == "thermal_slowdown"
    assert s.energy_j is None and "integrated power" in adapter.unavailable["energy_j"]
    info = adapter.describe()
    assert info["devices"] == ["MLU370-X8"] and info["new_api"] is True
    assert info["api_versions"]["cndevGetTemperatureInfo"] == 6
    adapter.close()
    assert cndev_stub.stub_initialised() == 0  # cndevRelease was called


def test_cndev_negotiates_an_older_api_version(cndev_stub):
    cndev_stub.stub_set_max_version(4)  # a driver that answers UNSUPPORTED_API_VERSION to 6, 5
    adapter = CndevAdapter([0])
    assert adapter.read()[0].util_pct == 0.0
    assert adapter.describe()["api_versions"]["cndevGetDeviceUtilizationInfo"] == 4


def test_cndev_version5_library_addresses_devices_by_index(stub_libs, monkeypatch):
    monkeypatch.setenv("BENCH_CNDEV_LIBRARY", str(stub_libs["cndev_v5"]))
    lib = ctypes.CDLL(str(stub_libs["cndev_v5"]))
    lib.stub_reset()
    lib.stub_set.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_longlong]
    lib.stub_set(1, b"power_w", 77)
    adapter = CndevAdapter([1])
    s = adapter.read()[0]
    assert s.power_w == 77.0 and s.mem_total_bytes == 23374 * MIB
    assert s.throttle is None  # no cndevGetPerformanceThrottleReason before version 6
    assert "does not export" in adapter.unavailable["throttle"]
    assert adapter.describe()["new_api"] is False
    assert adapter.describe()["api_versions"]["cndevGetPowerInfo"] == 5


def test_cndev_unsupported_field_and_visible_devices(cndev_stub, monkeypatch):
    cndev_stub.stub_set(1, b"fail_power", 1)
    cndev_stub.stub_set(1, b"util", 40)
    monkeypatch.setenv("MLU_VISIBLE_DEVICES", "1")  # torch's mlu:0 is physical MLU 1
    adapter = CndevAdapter([0])
    s = adapter.read()[0]
    assert adapter.physical == [1] and s.util_pct == 40.0
    assert s.power_w is None
    assert adapter.unavailable["power_w"] == \
        "cndev: cndevGetDevicePowerInfo: not supported (cndevRet_t 10)"


def test_cndev_init_failure_is_unavailable_with_the_drivers_message(cndev_stub):
    cndev_stub.stub_set_init_ret(1)
    with pytest.raises(AdapterUnavailable, match="cndevInit: No Driver"):
        CndevAdapter([0])
    cndev_stub.stub_set_init_ret(0)
    with pytest.raises(AdapterUnavailable, match="no MLU \\[5\\]"):
        CndevAdapter([5])


def test_missing_libcndev_is_unavailable(tmp_path, monkeypatch):
    monkeypatch.setenv("BENCH_CNDEV_LIBRARY", str(tmp_path / "libcndev.so"))
    with pytest.raises(AdapterUnavailable, match=r"libcndev\.so not loadable"):
        load_cndev()


# -- Cambricon: cnmon fallback --------------------------------------------------------------
def test_cnmon_adapter_reads_the_table(fake_tools):
    fake_tools("cnmon", "mlu370_x8_idle.txt")
    adapter = CnmonAdapter([1])
    s = adapter.read()[0]
    assert (s.util_pct, s.power_w, s.temp_c) == (0.0, 106.0, 39.0)
    assert s.mem_used_bytes == 0.0 and s.mem_total_bytes == 23374 * MIB
    assert s.clock_hz is None and "no clock" in adapter.unavailable["clock_hz"]
    assert adapter.describe()["devices"] == ["MLU370-X8"]


def test_cnmon_failures_are_counted_by_the_sampler(fake_tools):
    fake_tools("cnmon", "mlu370_x4_busy_frames.txt")
    adapter = CnmonAdapter([0])  # consumes frame 1 while probing
    sampler = Sampler(adapter, interval_s=1.0)
    sampler.sample_once()  # frame 2: 91 %, 145 W
    sampler.sample_once()  # frame 3: cnmon exits 1
    sampler.sample_once()  # frame 1 again
    series = sampler.snapshot()["devices"][0]["series"]
    assert series["util_pct"] == [91.0, 87.0]
    assert series["power_w"] == [145.0, 141.0]
    report = sampler.error_report()
    assert report["count"] == 1
    (message,) = report["messages"]
    assert "exited with 1" in message and "Device or resource busy" in message


def test_cnmon_na_and_missing_rows_are_null_with_reasons(fake_tools):
    fake_tools("cnmon", "na_and_truncated.txt")
    adapter = CnmonAdapter([0, 1])
    vf, truncated = adapter.read()
    assert vf.power_w is None and vf.util_pct is None and vf.mem_used_bytes is None
    assert vf.mem_total_bytes == 5844 * MIB  # the readable half of "N/A MiB/ 5844 MiB"
    assert truncated.util_pct == 12.0 and truncated.power_w is None
    assert adapter.unavailable["power_w"] == "cnmon printed 'N/A' for power"
    assert adapter.field_misses["power_w"] == 2


def test_cnmon_garbage_or_absent_card_is_unavailable(fake_tools):
    fake_tools("cnmon", "garbage.txt")
    with pytest.raises(AdapterUnavailable, match="no card \\[0\\]"):
        CnmonAdapter([0])


def test_cndev_chain_falls_back_to_cnmon(fake_tools, monkeypatch, tmp_path):
    monkeypatch.setenv("BENCH_CNDEV_LIBRARY", str(tmp_path / "none.so"))
    fake_tools("cnmon", "mlu370_x8_idle.txt")
    adapter, selection = open_adapter("cndev", [0])
    assert adapter.name == "cnmon" and selection["used"] == "cnmon"
    assert "fell back to 'cnmon'" in selection["note"]


# -- Iluvatar: libixml ----------------------------------------------------------------------
def test_ixml_bi_v150_card_power_comes_from_the_odd_gpu_once(ixml_stub):
    ixml_stub.stub_set_util(0, 96)
    adapter = IxmlAdapter([0])  # the run uses GPU 0; its card's power is reported on GPU 1
    s = adapter.read()[0]
    assert s.util_pct == 96.0 and s.power_w == 103.0
    assert s.mem_total_bytes == 32768 * MIB and s.clock_hz == 1.5e9 and s.temp_c == 35.0
    assert "whole BI-V150 card (GPUs 0+1" in adapter.scope["power_w"]
    assert "uses 1 of its 2 GPUs" in adapter.scope["power_w"]
    assert adapter.describe()["devices"] == ["Iluvatar BI-V150"]
    assert "exports none of nvmlDeviceGetTotalEnergyConsumption" in \
        adapter.unavailable["energy_j"]
    adapter.close()
    assert ixml_stub.stub_initialised() == 0


def test_ixml_both_gpus_of_a_card_never_double_count(ixml_stub):
    ixml_stub.stub_set_count(4)
    ixml_stub.stub_set_power_mw(3, 250_000)
    adapter = IxmlAdapter([0, 1, 2, 3])
    powers = [s.power_w for s in adapter.read()]
    assert powers == [103.0, None, None, 250.0] or powers == [103.0, None, 250.0, None]
    assert sum(p for p in powers if p) == 353.0  # two cards, each once
    assert "counted once, on GPU 0" in adapter.unavailable["power_w"]
    # the entry's sum leaves out exactly the GPUs whose card is counted on another
    assert adapter.power_counted_elsewhere() == {i for i, p in enumerate(powers) if p is None}


def test_ixml_single_gpu_boards_keep_their_own_power(ixml_stub):
    ixml_stub.stub_set_name(0, b"Iluvatar MR-V100")
    ixml_stub.stub_set_power_mw(0, 75_500)
    adapter = IxmlAdapter([0])
    assert adapter.read()[0].power_w == 75.5
    assert adapter.scope["power_w"] == "GPU board power (nvmlDeviceGetPowerUsage)"


@pytest.fixture
def pynvml_on_stub(stub_libs, monkeypatch):
    """The real pynvml on the stub NVML library (its nvmlLib set, as its loader would set it
    to libnvidia-ml.so.1), so the adapter and pynvml above the C calls are the real code."""
    import pynvml

    lib = ctypes.CDLL(str(stub_libs["ixml"]))
    lib.stub_reset()
    lib.stub_set_throttle.argtypes = [ctypes.c_int, ctypes.c_longlong]
    lib.stub_add_process.argtypes = [ctypes.c_int, ctypes.c_uint, ctypes.c_ulonglong]
    monkeypatch.setattr(pynvml, "nvmlLib", lib)
    monkeypatch.setattr(pynvml, "_nvmlGetFunctionPointer_cache", {})
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    return pynvml, lib


def test_nvml_throttle_reasons_and_device_processes_through_pynvml(pynvml_on_stub):
    from bench.telemetry.nvml import NvmlAdapter

    pynvml, lib = pynvml_on_stub
    assert lib.stub_sizeof_process_info() == ctypes.sizeof(pynvml.c_nvmlProcessInfo_v3_t)
    lib.stub_set_throttle(0, 0x4 | 0x40)  # the power cap and a hardware thermal slowdown
    lib.stub_add_process(0, 4242, 3 * 2**30)
    lib.stub_add_process(0, 4243, 2**64 - 1)  # NVML_VALUE_NOT_AVAILABLE
    lib.stub_add_process(1, 5000, 1024)
    adapter = NvmlAdapter([0, 1], pynvml=pynvml)
    first, second = adapter.read()
    # the driver has no clock-event call: the older throttle-reasons call answers
    assert first.throttle == "sw_power_cap+hw_thermal_slowdown"
    assert second.throttle is None and "Not Supported" in adapter.unavailable["throttle"]
    assert adapter.processes_unavailable is None
    assert adapter.device_processes() == [
        {"device": 0, "pid": 4242, "used_memory_bytes": 3.0 * 2**30},
        {"device": 0, "pid": 4243, "used_memory_bytes": None},
        {"device": 1, "pid": 5000, "used_memory_bytes": 1024.0}]
    adapter.close()


def test_ixml_lists_device_processes_through_the_nvml_abi(ixml_stub):
    from bench.telemetry.nvml_abi import NvmlProcessInfo

    assert ixml_stub.stub_sizeof_process_info() == ctypes.sizeof(NvmlProcessInfo)
    ixml_stub.stub_add_process.argtypes = [ctypes.c_int, ctypes.c_uint, ctypes.c_ulonglong]
    ixml_stub.stub_add_process(0, 31337, 512 * MIB)
    adapter = IxmlAdapter([0])
    assert adapter.processes_unavailable is None
    assert adapter.device_processes() == [
        {"device": 0, "pid": 31337, "used_memory_bytes": float(512 * MIB)}]
    adapter.close()


def test_missing_libixml_is_unavailable(tmp_path, monkeypatch):
    monkeypatch.setenv("BENCH_IXML_LIBRARY", str(tmp_path / "libixml.so"))
    with pytest.raises(AdapterUnavailable, match=r"libixml\.so not loadable"):
        load_ixml()


def test_card_attribution_hand_worked():
    names = {i: "Iluvatar BI-V150" for i in range(4)}
    power = {0: None, 1: 103.0, 2: None, 3: 250.0}
    one = attribute_card_power([1], names, power)
    assert one.power_w == {1: 103.0} and "read on GPU 1" in one.scope[1]
    both = attribute_card_power([1, 0], names, power)
    assert both.power_w == {1: 103.0, 0: None} and both.elsewhere == {0}
    assert "counted once, on GPU 1" in both.reasons[0]
    even_only = attribute_card_power([2], names, {2: 90.0, 3: None})
    assert even_only.power_w == {2: 90.0} and "read on GPU 2" in even_only.scope[2]
    mixed = attribute_card_power([0], {0: "Iluvatar BI-V150S"}, {0: None})
    assert mixed.power_w == {0: None} and mixed.reasons[0] == "GPU 0 reports no power"


# -- Iluvatar: ixsmi fallback ---------------------------------------------------------------
def test_ixsmi_corex4_bi_v150(fake_tools):
    fake_tools("ixsmi", "bi_v150_corex4.json")
    adapter = IxsmiAdapter([0])
    assert adapter.power_field == "gpu.power.draw"
    s = adapter.read()[0]  # second frame: GPU 0 busy, card at 254 W reported on GPU 1
    assert s.util_pct == 96.0 and s.power_w == 254.0 and s.temp_c == 61.0
    assert s.mem_used_bytes == 20480 * MIB
    assert "whole BI-V150 card" in adapter.describe()["power_attribution"]["0"]


def test_ixsmi_corex3_uses_power_draw(fake_tools):
    fake_tools("ixsmi", "bi_v100_corex3.json")
    adapter = IxsmiAdapter([1])
    assert adapter.power_field == "power.draw"
    s = adapter.read()[0]
    assert s.power_w == 56.0 and s.clock_hz == 1.5e9


def test_ixsmi_odd_cells_are_null_with_reasons(fake_tools):
    fake_tools("ixsmi", "mr_v100_odd_cells.json")
    adapter = IxsmiAdapter([0, 1])
    a, b = adapter.read()
    assert a.mem_used_bytes is None and a.util_pct is None and a.power_w is None
    assert a.clock_hz == 1e9 and a.temp_c == 33.0  # "1000 MHz" still reads as 1000
    assert b.mem_total_bytes is None and b.util_pct is None and b.power_w is None
    assert b.temp_c == -5.0 and b.clock_hz is None
    assert adapter.unavailable["mem_used_bytes"] == "ixsmi printed '[N/A]' for memory.used"
    assert "'ERR!'" in adapter.unavailable["power_w"]


def test_ixsmi_garbage_is_unavailable(fake_tools):
    fake_tools("ixsmi", "garbage.json")
    with pytest.raises(AdapterUnavailable, match="no readable line"):
        IxsmiAdapter([0])


def test_ixml_chain_falls_back_to_ixsmi(fake_tools, monkeypatch, tmp_path):
    monkeypatch.setenv("BENCH_IXML_LIBRARY", str(tmp_path / "none.so"))
    fake_tools("ixsmi", "bi_v100_corex3.json")
    adapter, selection = open_adapter("ixml", [0])
    assert adapter.name == "ixsmi"
    assert [a["status"] for a in selection["attempts"]] == ["failed", "used"]


# -- Jetson: tegrastats ---------------------------------------------------------------------
@pytest.mark.parametrize(("fixture", "power_w", "scope"), [
    ("xavier_nx_jp4.txt", {3.902, 6.84}, "board input rail VDD_IN"),
    ("orin_nano_jp6.txt", {5.251, 7.31}, "board input rail VDD_IN"),
    ("orin_agx_jp6.txt", {9.027, 33.084}, "sum of the rails"),
])
def test_tegrastats_adapter_reads_a_running_process(fake_tools, fixture, power_w, scope):
    fake_tools("tegrastats", fixture)
    adapter = TegrastatsAdapter([0], interval_s=0.05)
    try:
        sampler = Sampler(adapter, interval_s=0.05)
        with sampler:
            deadline = time.monotonic() + 5.0  # both recorded lines seen (slack for load)
            while (len(set(sampler.snapshot()["devices"][0]["series"]["power_w"])) < 2
                   and time.monotonic() < deadline):
                time.sleep(0.05)
        series = sampler.snapshot()["devices"][0]["series"]
        assert set(series["power_w"]) <= power_w and len(set(series["power_w"])) == 2
        assert sampler.errors == 0
        assert adapter.scope["power_w"].startswith(scope)
        assert all(m is not None and m > 0 for m in series["mem_total_bytes"])
    finally:
        adapter.close()
    assert adapter.proc.poll() is not None  # the tool was stopped


def test_tegrastats_going_silent_is_a_counted_error(fake_tools, monkeypatch):
    fake_tools("tegrastats", "orin_nano_jp5.txt")
    monkeypatch.setenv("FAKE_TEGRASTATS_LINES", "1")
    adapter = TegrastatsAdapter([0], interval_s=0.05)
    try:
        assert adapter.read()[0].power_w == 4.952
        time.sleep(1.2)  # > max(1 s, 5 intervals) without a line
        sampler = Sampler(adapter, interval_s=0.05)
        sampler.sample_once()
        assert sampler.errors == 1
        assert "is silent" in next(iter(sampler.error_report()["messages"]))
    finally:
        adapter.close()


def test_tegrastats_missing_is_unavailable(fake_tools, monkeypatch, tmp_path):
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(AdapterUnavailable, match="cannot start"):
        TegrastatsAdapter([0])


# -- Jetson: jtop (stub module with jetson-stats' client interface) -------------------------
def stub_jtop_module(fail_start: bool = False, total_name: str | None = "VDD_IN",
                     gpu_temp: dict | None = None) -> types.ModuleType:
    """``jtop.jtop`` as jetson-stats 4.x exposes it, with an Orin Nano's recorded readings."""

    class JtopException(Exception):
        pass

    class jtop:  # jetson-stats names its client class in lower case
        def __init__(self, interval=1.0):
            self.interval = 0.5  # the service's own interval
            self.started = False

        def start(self):
            if fail_start:
                raise JtopException("The jtop.service is not active. Please run:\n"
                                    "sudo jtop --install-service")
            self.started = True

        def ok(self, spin=False):
            return self.started

        def close(self):
            self.started = False

        gpu = {"gpu": {"type": "integrated", "status": {"load": 87.3, "railgate": False},
                       "freq": {"governor": "nvhost_podgov", "cur": 612000, "max": 625000,
                                "min": 306000}}}
        memory = {"RAM": {"tot": 7620000, "used": 4410000, "free": 900000, "shared": 1200000},
                  "SWAP": {"tot": 3810000, "used": 0}}
        temperature = {"cpu": {"online": True, "temp": 50.1},
                       "gpu": gpu_temp or {"online": True, "temp": 50.7},
                       "tj": {"online": True, "temp": 50.9}}
        power = {"rail": {"VDD_CPU_GPU_CV": {"online": True, "volt": 4984, "curr": 442,
                                             "power": 2204, "avg": 2010}},
                 "tot": {"online": True, "volt": 5000, "curr": 1462, "power": 7310,
                         "avg": 7422, **({"name": total_name} if total_name else {})}}

    module = types.ModuleType("jtop")
    module.jtop = jtop
    module.JtopException = JtopException
    return module


def test_jtop_adapter_converts_units():
    adapter = JtopAdapter([0], jtop_module=stub_jtop_module())
    s = adapter.read()[0]
    assert s.util_pct == 87.3 and s.clock_hz == 612e6  # kHz -> Hz
    assert s.mem_used_bytes == 4410000 * 1024 and s.mem_total_bytes == 7620000 * 1024
    assert s.power_w == 7.31 and s.temp_c == 50.7
    assert adapter.scope["power_w"] == "board input rail VDD_IN"
    assert adapter.describe()["service_interval_s"] == 0.5


def test_jtop_offline_sensor_and_summed_rails():
    adapter = JtopAdapter([0], jtop_module=stub_jtop_module(
        total_name=None, gpu_temp={"online": False, "temp": -256}))
    s = adapter.read()[0]
    assert s.temp_c is None and "offline" in adapter.unavailable["temp_c"]
    assert "sum of all rails" in adapter.scope["power_w"]


def test_jtop_service_down_is_unavailable():
    with pytest.raises(AdapterUnavailable, match=r"jtop\.service is not active"):
        JtopAdapter([0], jtop_module=stub_jtop_module(fail_start=True))


def test_jtop_chain_falls_back_to_tegrastats(fake_tools, monkeypatch):
    fake_tools("tegrastats", "orin_nano_jp6.txt")
    monkeypatch.setitem(sys.modules, "jtop", None)  # jetson-stats not installed
    adapter, selection = open_adapter("jtop", [0], interval_s=0.05)
    try:
        assert adapter.name == "tegrastats"
        assert "jetson-stats is not installed" in selection["attempts"][0]["reason"]
    finally:
        adapter.close()


# -- a whole run on a faked vendor tool -----------------------------------------------------
@pytest.mark.slow
def test_result_document_carries_cnmon_telemetry(fake_tools, tmp_path):
    fake_tools("cnmon", "mlu370_x4_busy_frames.txt")
    out = tmp_path / "run"
    proc = run_bench("run", "--suite", str(FIXTURES / "suites" / "quick.yaml"), "--only",
                     "test-sleep-infer", "--device", "cpu", "--out", str(out),
                     BENCH_TELEMETRY="cnmon")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    doc = json.loads((out / "test-sleep-infer.json").read_text())
    tel = doc["telemetry"]
    assert tel["backend"] == "cnmon" and tel["selection"]["overridden_by_env"]
    assert tel["errors"]["count"] > 0  # every third cnmon call fails: counted, not hidden
    assert any("Device or resource busy" in m for m in tel["errors"]["messages"])
    assert 141.0 <= doc["metrics"]["power_w_mean"]["value"] <= 145.0  # frames: 141 W, 145 W
    assert doc["metrics"]["energy_j"]["source"] == "power_integral"
    assert doc["metrics"]["energy_j"]["value"] > 0
    assert doc["metrics"]["energy_per_item_j"]["unit"] == "J/items"
    assert doc["metrics"]["energy_counter_j"]["value"] is None
    for r in doc["repeats"]:
        assert r["telemetry"]["coverage"]["power_w"]["bracketed"]
    validate = run_bench("validate", str(out / "test-sleep-infer.json"))
    assert validate.returncode == 0, validate.stdout + validate.stderr


def test_tool_errors_name_the_tool(tmp_path, monkeypatch):
    from bench.telemetry.base import run_tool

    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(ToolError, match="ixsmi not found on PATH"):
        run_tool(["ixsmi"])
