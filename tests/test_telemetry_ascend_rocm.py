"""Ascend and ROCm / Hygon telemetry, faked at the lowest level so the adapter code is real.

* libdcmi: tests/fixtures/telemetry/stub_dcmi.c, compiled by gcc and loaded through ctypes.
* amdsmi: a stand-in Python package (tests/fixtures/fake_vendor/amdsmi) with the call style of
  ROCm 6's amdsmi, reading recorded-style values from tests/fixtures/telemetry/amdsmi/.
* npu-smi, rocm-smi, hy-smi: executables on PATH printing recorded output
  (tests/fixtures/telemetry/fake_tool.py; the sources of each fixture are in SOURCES.md).
"""

from __future__ import annotations

import ctypes
import sys

import pytest

from bench.telemetry import Sampler, open_adapter
from bench.telemetry import ascend as ascend_mod
from bench.telemetry import rocm as rocm_mod
from bench.telemetry.ascend import DcmiAdapter, NpuSmiAdapter, parse_npu_smi
from bench.telemetry.base import MIB, AdapterUnavailable
from bench.telemetry.cards import MI250X, attribute_card_power
from bench.telemetry.rocm import (
    AmdsmiAdapter,
    HySmiAdapter,
    RocmSmiAdapter,
    number,
    parse_hy_smi,
    parse_rocm_smi_json,
)
from tests.conftest import FIXTURES
from tests.test_telemetry_vendors import fake_tools, stub_libs  # noqa: F401 - fixtures

TELEMETRY = FIXTURES / "telemetry"


@pytest.fixture(autouse=True)
def host_render_nodes(tmp_path, monkeypatch):
    """The render nodes this process can open (``/dev/dri``) and their PCI devices (sysfs),
    as a directory tree: none by default; ``give(bdf, ...)`` adds some, as a container that
    was given only those GPUs sees them."""
    dev_dri, sys_drm = tmp_path / "dev" / "dri", tmp_path / "sys" / "class" / "drm"
    dev_dri.mkdir(parents=True)
    sys_drm.mkdir(parents=True)
    monkeypatch.setattr(rocm_mod, "DEV_DRI", dev_dri)
    monkeypatch.setattr(rocm_mod, "SYS_DRM", sys_drm)

    def give(*bdfs: str) -> None:
        for k, bdf in enumerate(bdfs):
            pci = tmp_path / "sys" / "devices" / "pci0000:00" / bdf
            pci.mkdir(parents=True)
            (sys_drm / f"renderD{128 + k}").mkdir()
            (sys_drm / f"renderD{128 + k}" / "device").symlink_to(pci)
            (dev_dri / f"renderD{128 + k}").touch()

    return give


# -- Ascend: libdcmi ------------------------------------------------------------------------
@pytest.fixture
def dcmi_stub(stub_libs, monkeypatch):  # noqa: F811
    monkeypatch.setenv("BENCH_DCMI_LIBRARY", str(stub_libs["dcmi"]))
    monkeypatch.delenv("ASCEND_RT_VISIBLE_DEVICES", raising=False)
    lib = ctypes.CDLL(str(stub_libs["dcmi"]))  # the same loaded image the adapter uses
    lib.stub_reset()
    lib.stub_set.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_char_p, ctypes.c_longlong]
    lib.stub_set_name.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_char_p]
    lib.stub_sizeof.restype = ctypes.c_size_t
    return lib


def test_dcmi_structures_match_the_c_layout(dcmi_stub):
    for name in ("ChipInfo", "HbmInfo"):
        assert ctypes.sizeof(getattr(ascend_mod, name)) == dcmi_stub.stub_sizeof(name.encode())


def test_dcmi_reads_si_units(dcmi_stub):
    dcmi_stub.stub_set(1, 0, b"util", 87)
    dcmi_stub.stub_set(1, 0, b"power_dw", 3015)  # 301.5 W in DCMI's 0.1 W steps
    dcmi_stub.stub_set(1, 0, b"hbm_used_mb", 60112)
    dcmi_stub.stub_set(1, 0, b"temp_c", 52)
    adapter = DcmiAdapter([1])
    s = adapter.read()[0]
    assert s.util_pct == 87.0 and s.power_w == 301.5 and s.temp_c == 52.0
    assert s.mem_used_bytes == 60112 * MIB and s.mem_total_bytes == 65536 * MIB
    assert s.clock_hz == 1.8e9
    assert s.energy_j is None and "integrated power" in adapter.unavailable["energy_j"]
    info = adapter.describe()
    assert info["devices"] == ["Ascend910B3"]
    assert info["chips"] == [{"card": 1, "device": 0, "logic_id": 1}]


def test_dcmi_older_driver_lists_cards_with_card_num_list(stub_libs, monkeypatch):  # noqa: F811
    monkeypatch.setenv("BENCH_DCMI_LIBRARY", str(stub_libs["dcmi_old"]))
    ctypes.CDLL(str(stub_libs["dcmi_old"])).stub_reset()
    adapter = DcmiAdapter([0, 1])
    assert [c.card for c in adapter.chips] == [0, 1]
    assert adapter.read()[1].power_w == 92.7


def test_dcmi_visible_devices_and_card_ids(dcmi_stub, monkeypatch):
    dcmi_stub.stub_set_layout(4, 1, 4)  # cards 4..7, as a host numbers them after a 4-card box
    dcmi_stub.stub_set_name(3, 0, b"910B4")
    monkeypatch.setenv("ASCEND_RT_VISIBLE_DEVICES", "3")
    adapter = DcmiAdapter([0])
    assert adapter.physical == [3] and adapter.chips[0].card == 7
    assert adapter.names == ["Ascend910B4"]


def test_dcmi_failing_and_impossible_fields_are_null_with_reasons(dcmi_stub):
    dcmi_stub.stub_set(0, 0, b"fail", 2 | 8)  # power and frequency not supported
    dcmi_stub.stub_set(0, 0, b"util", 250)
    dcmi_stub.stub_set(0, 0, b"hbm_used_mb", 70000)  # more than the 65536 installed
    adapter = DcmiAdapter([0])
    s = adapter.read()[0]
    assert s.power_w is None and s.clock_hz is None and s.util_pct is None
    assert s.mem_used_bytes is None and s.temp_c == 40.0
    assert "dcmi_get_device_power_info returned -8255" in adapter.unavailable["power_w"]
    assert "250 %" in adapter.unavailable["util_pct"]
    assert "70000 of 65536" in adapter.unavailable["mem_used_bytes"]


def test_dcmi_two_chip_card_counts_its_power_once(dcmi_stub):
    dcmi_stub.stub_set_layout(1, 2, 0)  # an Atlas A3 card: two chips
    dcmi_stub.stub_set(0, 1, b"fail", 2)  # the second chip has no power reading of its own
    adapter = DcmiAdapter([0, 1])
    first, second = adapter.read()
    assert first.power_w == 92.7 and second.power_w is None
    assert "counted once, on NPU 0" in adapter.unavailable["power_w"]
    assert adapter.power_counted_elsewhere() == {1}  # left out of an entry's power sum
    alone = DcmiAdapter([1])  # a run on the second chip alone gets its card's power
    assert alone.read()[0].power_w == 92.7 and "power_w" not in alone.unavailable


def test_npu_smi_two_chip_card_counts_its_power_once(fake_tools):  # noqa: F811
    fake_tools("npu-smi", "a3_two_chips_per_npu.txt")
    adapter = NpuSmiAdapter([0, 1, 3])  # both chips of NPU 0, the second chip of NPU 1
    both0, second0, second1 = adapter.read()
    assert (both0.power_w, second0.power_w, second1.power_w) == (162.8, None, 167.1)
    assert adapter.unavailable["power_w"] == "NPU 0's card power is counted once, on its chip 0"
    assert adapter.power_counted_elsewhere() == {1}
    assert second0.mem_used_bytes == 2876 * MIB and second1.mem_used_bytes == 10568 * MIB


def test_dcmi_init_failure_and_absent_device_are_unavailable(dcmi_stub, tmp_path, monkeypatch):
    dcmi_stub.stub_set_init_ret(-8012)
    with pytest.raises(AdapterUnavailable, match="dcmi_init returned -8012"):
        DcmiAdapter([0])
    dcmi_stub.stub_reset()
    with pytest.raises(AdapterUnavailable, match=r"no NPU \[5\]"):
        DcmiAdapter([5])
    monkeypatch.setenv("BENCH_DCMI_LIBRARY", str(tmp_path / "missing.so"))
    with pytest.raises(AdapterUnavailable, match=r"libdcmi\.so not loadable"):
        DcmiAdapter([0])


# -- Ascend: npu-smi info -------------------------------------------------------------------
def read_fixture(tool: str, name: str) -> str:
    return (TELEMETRY / tool / name).read_text(encoding="utf-8")


def test_npu_smi_parser_reads_every_recorded_layout():
    b3 = parse_npu_smi(read_fixture("npu-smi", "910b3_x3_idle.txt"))
    assert [(c.npu, c.chip, c.name) for c in b3] == [(0, 0, "910B3"), (1, 0, "910B3"),
                                                       (2, 0, "910B3")]
    assert b3[0].values == {"power_w": 101.8, "temp_c": 43.0, "util_pct": 0.0,
                            "mem_used_bytes": 3318 * MIB, "mem_total_bytes": 65536 * MIB}
    container = parse_npu_smi(read_fixture("npu-smi", "910b1_container_npu6.txt"))
    assert [(c.npu, c.values["power_w"]) for c in container] == [(6, 100.8)]
    old = parse_npu_smi(read_fixture("npu-smi", "910a_npu_smi_22.txt"))  # no HBM column
    assert old[0].values["mem_total_bytes"] == 21534 * MIB
    assert old[0].values["power_w"] is None and "'NA'" in old[0].reasons["power_w"]
    a3 = parse_npu_smi(read_fixture("npu-smi", "a3_two_chips_per_npu.txt"))
    assert [(c.npu, c.chip, c.values["power_w"]) for c in a3] == [
        (0, 0, 162.8), (0, 1, None), (1, 0, 167.1), (1, 1, None)]
    assert parse_npu_smi(read_fixture("npu-smi", "910b4_with_processes.txt"))[0].values[
        "mem_total_bytes"] == 32768 * MIB  # the process table below is not a chip
    assert parse_npu_smi(read_fixture("npu-smi", "garbage.txt")) == []
    assert parse_npu_smi("") == []


def test_npu_smi_na_and_malformed_cells_are_null_with_reasons():
    alarm, warning, half, ok = parse_npu_smi(read_fixture("npu-smi", "na_and_malformed.txt"))
    assert all(v is None for v in alarm.values.values()) and alarm.health == "Alarm"
    assert warning.values["power_w"] is None and "'99.6x'" in warning.reasons["power_w"]
    assert warning.values["util_pct"] is None and "130 %" in warning.reasons["util_pct"]
    assert "70000/65536" in warning.reasons["mem_used_bytes"]
    assert half.values["power_w"] == 88.6 and half.values["util_pct"] is None
    assert "no second row" in half.reasons["util_pct"]
    assert ok.values["mem_used_bytes"] == 20701 * MIB


def test_npu_smi_adapter_maps_visible_devices_and_counts_failures(fake_tools, monkeypatch):  # noqa: F811
    fake_tools("npu-smi", "910b3_busy_frames.txt")
    monkeypatch.setenv("ASCEND_RT_VISIBLE_DEVICES", "1")
    adapter = NpuSmiAdapter([0])  # consumes frame 1 while probing
    assert adapter.ids == [(1, 0)] and adapter.names == ["910B3"]
    assert adapter.describe()["tool_version"] == "24.1.rc1"
    s = adapter.read()[0]  # frame 2
    assert (s.util_pct, s.power_w) == (42.0, 96.9)
    assert s.clock_hz is None and "no clock" in adapter.unavailable["clock_hz"]
    fake_tools("npu-smi", "failing.txt")
    sampler = Sampler(adapter, interval_s=1.0)
    sampler.sample_once()
    report = sampler.error_report()
    (message,) = report["messages"]
    assert report["count"] == 1 and "exited with 255" in message and "-8020" in message


def test_dcmi_chain_falls_back_to_npu_smi(fake_tools, monkeypatch, tmp_path):  # noqa: F811
    monkeypatch.setenv("BENCH_DCMI_LIBRARY", str(tmp_path / "none.so"))
    fake_tools("npu-smi", "910b4_with_processes.txt")
    adapter, selection = open_adapter("dcmi", [0])
    assert adapter.name == "npu-smi" and "fell back to 'npu-smi'" in selection["note"]
    assert adapter.read()[0].mem_total_bytes == 32768 * MIB


def test_npu_smi_absent_chip_is_unavailable(fake_tools):  # noqa: F811
    fake_tools("npu-smi", "910b1_container_npu6.txt")
    with pytest.raises(AdapterUnavailable, match=r"lists 1 chip\(s\); no NPU \[1\]"):
        NpuSmiAdapter([1])


# -- AMD: amdsmi ----------------------------------------------------------------------------
@pytest.fixture
def fake_amdsmi(monkeypatch):
    monkeypatch.syspath_prepend(str(FIXTURES / "fake_vendor"))
    monkeypatch.delitem(sys.modules, "amdsmi", raising=False)
    for var in ("HIP_VISIBLE_DEVICES", "ROCR_VISIBLE_DEVICES", "CUDA_VISIBLE_DEVICES",
                "FAKE_AMDSMI_IMPORT", "BENCH_TELEMETRY"):
        monkeypatch.delenv(var, raising=False)

    def use(fixture: str) -> None:
        monkeypatch.setenv("FAKE_AMDSMI", str(TELEMETRY / "amdsmi" / fixture))

    yield use
    sys.modules.pop("amdsmi", None)


def test_amdsmi_reads_si_units_and_the_energy_counter(fake_amdsmi):
    fake_amdsmi("mi300x_x2_rocm62.json")
    adapter = AmdsmiAdapter([0, 1])
    idle, busy = adapter.read()
    assert (idle.util_pct, idle.power_w, idle.temp_c) == (0.0, 170.0, 50.0)
    assert idle.mem_used_bytes == 283 * MIB and idle.mem_total_bytes == 196592 * MIB
    assert busy.clock_hz == 2100e6 and busy.util_pct == 97.0
    assert idle.energy_j == pytest.approx(60983721542 * 15.259 / 1e6)
    again = adapter.read()[0]
    assert again.energy_j - idle.energy_j == pytest.approx(655360 * 15.259 / 1e6)  # 10.0 J
    info = adapter.describe()
    assert info["devices"] == ["AMD Instinct MI300X"] * 2
    assert info["power_key"] == "current_socket_power"
    assert adapter.scope["power_w"] == "socket power (amdsmi current_socket_power)"
    adapter.close()


def test_amdsmi_follows_hip_order_and_visible_devices(fake_amdsmi, monkeypatch):
    fake_amdsmi("mi300x_hip_order_reversed.json")
    monkeypatch.setenv("HIP_VISIBLE_DEVICES", "1")
    s = AmdsmiAdapter([0]).read()[0]
    assert s.power_w == 300.0  # amdsmi's first handle is HIP device 1


def test_amdsmi_in_a_container_reads_only_its_own_gpus(fake_amdsmi, host_render_nodes):
    """amdsmi reads the host's sysfs and lists every GPU; the container was given the render
    node of the second one only, which HIP calls device 0."""
    fake_amdsmi("mi300x_x2_rocm62.json")
    host_render_nodes("0000:c2:00.0")
    adapter = AmdsmiAdapter([0])
    assert adapter.read()[0].util_pct == 97.0  # the busy GPU, not amdsmi's first
    info = adapter.describe()
    assert info["physical_indices"] == [1] and info["hip_indices"] == [0]
    assert "lists 2 GPUs; this process can open 1 (0000:c2:00.0)" in info[
        "restricted_to_own_gpus"]
    with pytest.raises(AdapterUnavailable, match="1 GPU\\(s\\) this process can open"):
        AmdsmiAdapter([1])


def test_own_gpus_worked_by_hand():
    from bench.telemetry.rocm import own_gpus

    listed = ["0000:05:00.0", "0000:26:00.0", "0000:46:00.0"]
    assert own_gpus(listed, {"0000:46:00.0", "0000:05:00.0"})[0] == [0, 2]
    assert own_gpus(listed, set())[0] == [0, 1, 2]  # nothing visible: nothing filtered
    assert own_gpus(listed, {"0000:99:00.0"})[0] == [0, 1, 2]  # unrelated: not ours to judge
    assert own_gpus([None, "0000:26:00.0"], {"0000:26:00.0"})[0] == [0, 1]  # unknown address


def test_amdsmi_mi250x_package_power_is_counted_once(fake_amdsmi):
    fake_amdsmi("mi250x_package_rocm60.json")
    adapter = AmdsmiAdapter([0, 1])
    primary, secondary = adapter.read()
    assert primary.power_w == 468.0 and secondary.power_w is None
    assert "counted once, on GCD 0" in adapter.unavailable["power_w"]
    assert adapter.power_counted_elsewhere() == {1}
    assert "whole MI250X package (GCDs 0+1, power read on GCD 0)" in adapter.scope["power_w"]
    assert primary.energy_j == pytest.approx(4286349568 * 15.259 / 1e6)  # pre-6.2.1 key
    assert secondary.energy_j is None
    only_secondary = AmdsmiAdapter([1])  # the run uses GCD 1 alone: its package's power
    assert only_secondary.read()[0].power_w == 468.0
    assert "the run uses 1 of its 2 GCDs" in only_secondary.scope["power_w"]


def test_amdsmi_na_and_failing_calls_are_null_with_reasons(fake_amdsmi):
    fake_amdsmi("na_and_failing_calls.json")
    adapter = AmdsmiAdapter([0])
    s = adapter.read()[0]
    assert all(v is None for v in s.values().values())
    why = adapter.unavailable
    assert why["util_pct"] == "amdsmi printed 'N/A' for gfx_activity"
    assert "AMDSMI_STATUS_NOT_SUPPORTED" in why["mem_used_bytes"]
    assert "current_socket_power='N/A'" in why["power_w"]
    assert "AMDSMI_STATUS_TIMEOUT" in why["temp_c"]
    assert "unusable energy counter" in why["energy_j"]
    assert adapter.describe()["devices"] == [None]


def test_amdsmi_missing_or_broken_is_unavailable(fake_amdsmi, monkeypatch):
    fake_amdsmi("init_fails.json")
    with pytest.raises(AdapterUnavailable, match="AMDSMI_STATUS_DRIVER_NOT_LOADED"):
        AmdsmiAdapter([0])
    monkeypatch.setenv("FAKE_AMDSMI_IMPORT", "OSError")
    monkeypatch.delitem(sys.modules, "amdsmi")  # imported afresh, as in a new process
    with pytest.raises(AdapterUnavailable, match=r"must match ROCm's libamd_smi\.so"):
        AmdsmiAdapter([0])
    monkeypatch.setitem(sys.modules, "amdsmi", None)  # not installed
    with pytest.raises(AdapterUnavailable, match="not installed"):
        AmdsmiAdapter([0])


# -- AMD: rocm-smi --json -------------------------------------------------------------------
def test_rocm_smi_parser_reads_strings_and_skips_warnings():
    cards = parse_rocm_smi_json(read_fixture("rocm-smi", "mi300x_x4_idle.json"))
    assert sorted(cards) == [0, 1, 2, 3] and cards[0].name == "AMD Instinct MI300X"
    assert cards[1].values["power_w"] == 176.0 and cards[1].values["temp_c"] == 51.0
    assert cards[0].values["mem_total_bytes"] == 206141652992.0
    assert cards[0].values["energy_j"] == pytest.approx(930566.4311679)
    noisy = parse_rocm_smi_json(read_fixture("rocm-smi", "warnings_before_json.json"))
    assert noisy[0].values["util_pct"] == 87.0 and noisy[0].values["temp_c"] == 45.0
    assert parse_rocm_smi_json(read_fixture("rocm-smi", "truncated.json")) == {}
    assert parse_rocm_smi_json("not json at all {") == {}


def test_rocm_smi_na_and_malformed_values_are_null_with_reasons():
    cards = parse_rocm_smi_json(read_fixture("rocm-smi", "na_and_malformed.json"))
    assert sorted(cards) == [0, 1]  # "card2": "oops" and "cardX" are not cards
    na, bad = cards[0], cards[1]
    assert all(v is None for v in na.values.values())
    assert "'-1'" in na.reasons["util_pct"]  # rocm-smi's failed utilisation
    assert bad.values["util_pct"] is None and "'250'" in bad.reasons["util_pct"]
    assert bad.values["temp_c"] is None and "'hot'" in bad.reasons["temp_c"]
    assert bad.values["power_w"] is None  # "1e3" is not how rocm-smi prints a number
    assert bad.values["mem_total_bytes"] is None and bad.values["energy_j"] is None


def test_rocm_smi_in_a_container_reads_only_its_own_gpus(fake_tools, host_render_nodes):  # noqa: F811
    fake_tools("rocm-smi", "mi300x_x4_idle.json")
    host_render_nodes("0000:46:00.0", "0000:65:00.0")  # cards 2 and 3 of the host
    adapter = RocmSmiAdapter([0, 1])
    assert [s.power_w for s in adapter.read()] == [177.0, 176.0]
    assert adapter.physical == [2, 3] and adapter.describe()["hip_indices"] == [0, 1]


def test_hy_smi_cannot_tell_a_containers_dcus_apart(fake_tools, host_render_nodes):  # noqa: F811
    fake_tools("hy-smi", "k100_ai_x4_idle.txt")
    host_render_nodes("0000:c1:00.0")
    with pytest.raises(AdapterUnavailable, match="no PCI address to tell which"):
        HySmiAdapter([0])


def test_rocm_smi_mi250x_secondary_die(fake_tools):  # noqa: F811
    fake_tools("rocm-smi", "mi250x_package_frames.json")
    adapter = RocmSmiAdapter([1])  # probe: frame 1
    s = adapter.read()[0]  # frame 2, busy: the package's power, read on GCD 0
    assert s.power_w == 468.0 and s.util_pct == 100.0 and s.temp_c == 74.0
    assert s.energy_j is None  # GCD 1's counter stays 0
    assert "whole MI250X package" in adapter.describe()["field_scope"]["power_w"]
    assert "power_w" not in adapter.unavailable


def test_amdsmi_chain_falls_back_to_rocm_smi_then_hy_smi(fake_tools, monkeypatch):  # noqa: F811
    monkeypatch.setitem(sys.modules, "amdsmi", None)
    fake_tools("rocm-smi", "mi300x_x4_idle.json")
    adapter, selection = open_adapter("amdsmi", [2])
    assert adapter.name == "rocm-smi" and adapter.read()[0].power_w == 177.0
    assert "amdsmi Python package is not installed" in selection["attempts"][0]["reason"]
    fake_tools("rocm-smi", "failing.json")
    fake_tools("hy-smi", "k100_ai_x4_idle.txt")
    adapter, selection = open_adapter("amdsmi", [3])
    assert adapter.name == "hy-smi" and adapter.read()[0].power_w == 138.0
    assert [a["status"] for a in selection["attempts"]] == ["failed", "failed", "used"]
    assert "Driver not initialized" in selection["attempts"][1]["reason"]


# -- Hygon: hy-smi --------------------------------------------------------------------------
def test_hy_smi_parser_reads_every_recorded_layout():
    k100 = parse_hy_smi(read_fixture("hy-smi", "k100_ai_x4_idle.txt"))
    assert sorted(k100) == [0, 1, 2, 3]
    assert k100[3].values == {"temp_c": 49.0, "power_w": 138.0, "util_pct": 0.0}
    busy = parse_hy_smi(read_fixture("hy-smi", "busy_x8_manual.txt"))
    assert busy[0].values["util_pct"] == 74.0 and len(busy) == 8
    lc = parse_hy_smi(read_fixture("hy-smi", "k100_lc_trailing_spaces.txt"))
    assert lc[0].values == {"temp_c": 33.0, "power_w": 132.0, "util_pct": 0.0}
    degree = parse_hy_smi(read_fixture("hy-smi", "z100_degree_sign_na_mode.txt"))
    assert degree[0].values["temp_c"] == 51.0 and degree[1].values["temp_c"] == 49.0
    assert parse_hy_smi(read_fixture("hy-smi", "garbage.txt")) == {}


def test_hy_smi_na_and_malformed_rows_are_null_with_reasons(fake_tools):  # noqa: F811
    fake_tools("hy-smi", "na_and_malformed.txt")
    adapter = HySmiAdapter([0, 1, 2, 3])
    na, bad, short, ok = adapter.read()
    assert na.temp_c is None and na.power_w is None and na.util_pct is None
    assert bad.power_w is None and bad.util_pct is None and bad.temp_c == 48.0
    assert short.power_w is None and short.temp_c is None
    assert adapter.field_misses["power_w"] == 3  # the N/A, the garbage and the short row
    assert ok.util_pct == 3.0 and ok.power_w == 24.0
    assert ok.mem_used_bytes is None and "VRAM% only" in adapter.unavailable["mem_used_bytes"]
    assert adapter.unavailable["temp_c"] == "hy-smi printed 'N/A' for temp"


# -- pure pieces, worked by hand ------------------------------------------------------------
def test_mi250x_package_attribution_worked_by_hand():
    names = dict.fromkeys(range(4), "AMD Instinct MI250X")
    # GCD 0 is the primary die of package 0+1, GCD 3 the primary of package 2+3 (the die
    # that reports may be either one, rocm-smi says "usually one above or below")
    power = {0: 468.0, 1: None, 2: None, 3: 300.0}
    a = attribute_card_power([0, 1, 2], names, power, MI250X)
    assert a.power_w == {0: 468.0, 1: None, 2: 300.0}
    assert sum(p for p in a.power_w.values() if p) == 768.0  # each package once
    assert a.scope[2].startswith("whole MI250X package (GCDs 2+3, power read on GCD 3)")
    plain = attribute_card_power([0], {0: "AMD Instinct MI300X"}, {0: 700.0}, MI250X)
    assert plain.power_w == {0: 700.0} and plain.scope[0] == "GCD 0 board power"


@pytest.mark.parametrize(("value", "expected"), [
    ("45.0", 45.0), ("118.0W", 118.0), ("51.0°C", 51.0), ("0.0%", 0.0), (170, 170.0),
    (12.5, 12.5), ("-1", -1.0), ("N/A", None), ("N/A (Secondary die)", None), ("", None),
    (None, None), ("abc", None), (True, None), ("1e3", None)])
def test_number_reads_vendor_values(value, expected):
    got, why = number(value, "x", "tool")
    assert got == expected
    assert (why is None) == (expected is not None)


def test_chains_are_registered():
    from bench.telemetry import FALLBACKS

    assert FALLBACKS["dcmi"] == ("dcmi", "npu-smi", "host")
    assert FALLBACKS["amdsmi"] == ("amdsmi", "rocm-smi", "hy-smi", "host")
