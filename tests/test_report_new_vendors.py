"""The report on Ascend and ROCm / Hygon results: devices named, spec sheets found and used.

The results are the project's real smoke runs attributed to these devices with power and
temperature series (tests/report_fixtures.py), as for the other accelerators.
"""

from __future__ import annotations

import pytest

from bench.specs import find_spec, per_device
from testbed.report import load_results, write_report
from testbed.report.analysis import analyse
from testbed.report.checks import CheckSettings, run_checks
from tests.report_fixtures import TWO_THREADS, accelerator, write

GIB = 2**30
DEVICES = {  # reported name -> (vendor, memory, speed-up, busy W, idle W, spec sheet)
    "Ascend910B3": ("ascend", 64 * GIB, 9.0, 290, 95, "ascend-910b3"),
    "Ascend910A": ("ascend", 32 * GIB, 6.0, 250, 70, "ascend-910a"),
    "AMD Instinct MI300X": ("rocm", 192 * GIB, 20.0, 650, 170, "amd-mi300x"),
    "AMD Instinct MI250X": ("rocm", 64 * GIB, 11.0, 420, 95, "amd-mi250x"),
    "K100_AI": ("rocm", 64 * GIB, 8.0, 380, 118, "hygon-k100-ai"),
}


def result(name: str) -> dict:
    vendor, memory, speed, busy_w, idle_w, _ = DEVICES[name]
    return accelerator(TWO_THREADS, "resnet-infer", name, vendor, memory, speed, busy_w, idle_w,
                       70, 40)


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("vendors")
    runs = []
    for i, name in enumerate(DEVICES):
        write(result(name), tmp / f"run{i}")
        runs.append(tmp / f"run{i}")
    return runs, write_report(runs, tmp / "report")


def test_each_device_is_named_and_finds_its_spec_sheet(report):
    runs, files = report
    analysis = analyse(load_results(runs))
    found = {d.name: (d.vendor, d.spec and d.spec["id"]) for d in analysis.devices.values()}
    assert found == {name: (v[0], v[5]) for name, v in DEVICES.items()}
    markdown = files.markdown.read_text(encoding="utf-8")
    html = files.html.read_text(encoding="utf-8")
    for name in DEVICES:
        assert name in markdown and name in html


def test_every_result_passes_the_checks_against_its_sheet():
    for name in DEVICES:
        doc = result(name)
        spec = find_spec(name, DEVICES[name][0])
        assert [o.check for o in run_checks(doc, spec, CheckSettings()) if o.findings] == [], \
            name


def test_a_power_beyond_the_sheets_limit_is_caught():
    doc = result("AMD Instinct MI300X")
    doc["metrics"]["power_w_mean"]["value"] = 1500.0  # twice the 750 W TBP: a scale error
    doc["metrics"]["items_per_j"]["value"] = (
        doc["metrics"]["throughput_items_per_s"]["value"] / 1500.0)
    spec = find_spec("AMD Instinct MI300X", "rocm")
    found = {o.check: o for o in run_checks(doc, spec, CheckSettings()) if o.findings}
    assert "power_limit" in found and "750 W" in found["power_limit"].findings[0].message


def test_an_mi250x_gcd_owns_half_the_package():
    package = find_spec("AMD Instinct MI250X", "rocm")
    gcd = per_device(package)
    assert gcd["memory_bytes"] == 64 * GIB and gcd["peak_flops"]["fp16"] == 191.5e12
    assert gcd["power_limit_w"] == 500  # telemetry reads the package's power


def test_derived_910b_peaks_worked_by_hand():
    """20 AI cores x 16x16x16 MACs x 2 FLOP x 1.8 GHz = 294.912 TFLOPS (910B3)."""
    assert find_spec("Ascend910B3", "ascend")["peak_flops"]["fp16"] == 20 * 4096 * 2 * 1.8e9
    assert find_spec("Ascend910B4", "ascend")["peak_flops"]["bf16"] == 20 * 4096 * 2 * 1.5e9
    assert find_spec("Ascend910B2", "ascend")["peak_flops"]["int8"] == 2 * 24 * 4096 * 2 * 1.8e9
    assert find_spec("Ascend910B2C", "ascend") is None  # another SKU: no sheet, no guess
    assert find_spec("910ProB", "ascend") is None
