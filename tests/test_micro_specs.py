"""Spec sheets of the evaluated devices: each reported device name finds exactly its sheet, and
the per-device reference of multi-device cards is the card's figure divided among them."""

from __future__ import annotations

import re

import pytest

from bench.micro.peaks import DevicePeaks, pct_metric
from bench.specs import find_spec, load_specs

# (name the vendor's PyTorch reports, vendor) -> sheet id (None: deliberately no sheet)
REPORTED_NAMES = [
    ("NVIDIA A100-SXM4-80GB", "cuda", "a100-sxm4-80gb"),
    ("NVIDIA A100 80GB PCIe", "cuda", "a100-pcie-80gb"),
    ("NVIDIA A100-SXM4-40GB", "cuda", "a100-sxm4-40gb"),
    ("NVIDIA A100-PCIE-40GB", "cuda", "a100-pcie-40gb"),
    ("NVIDIA H100 80GB HBM3", "cuda", "h100-sxm5-80gb"),
    ("NVIDIA H100 PCIe", "cuda", "h100-pcie-80gb"),
    ("NVIDIA H200", "cuda", "h200-sxm-141gb"),
    ("NVIDIA GeForce RTX 4090", "cuda", "rtx-4090"),
    ("Xavier", "jetson", "jetson-xavier-nx"),
    ("MLU370-X8", "mlu", "mlu370-x8"),
    ("MLU370-M8", "mlu", "mlu370-m8"),
    ("Iluvatar BI-V150", "corex", "iluvatar-bi-v150"),
    ("Iluvatar MR-V100", "corex", "iluvatar-mr-v100"),
    ("NVIDIA H200 NVL", "cuda", None),  # a different part (PCIe, 600 W): no sheet yet
    ("NVIDIA H100 NVL", "cuda", None),
    ("Intel(R) Xeon(R) Processor", "cpu", None),
]


@pytest.mark.parametrize(("name", "vendor", "sheet"), REPORTED_NAMES)
def test_reported_name_finds_exactly_its_sheet(name, vendor, sheet):
    found = find_spec(name, vendor)
    assert (found and found["id"]) == sheet
    matching = [s["id"] for s in load_specs()
                if any(re.search(p, name, re.IGNORECASE) for p in s["match"])]
    assert matching == ([sheet] if sheet else []), f"{name} matches {matching}"


def test_every_evaluated_device_has_a_sheet_with_sources():
    ids = {s["id"] for s in load_specs()}
    assert {sheet for _, _, sheet in REPORTED_NAMES if sheet} <= ids
    for spec in load_specs():
        assert spec["sources"] and all(s.strip() for s in spec["sources"])
        # dense peaks only, and never a number where the vendor publishes none
        for precision, value in spec["peak_flops"].items():
            assert value is None or value > 1e11, (spec["id"], precision)


def test_power_limits_of_the_published_evaluations_devices_name_their_source():
    expected = {"a100-sxm4-40gb": 400, "a100-pcie-40gb": 250, "iluvatar-mr-v100": 150,
                "mlu370-x8": 250, "mlu370-m8": None}
    for sheet, watts in expected.items():
        spec = next(s for s in load_specs() if s["id"] == sheet)
        assert spec["power_limit_w"] == watts, sheet
        source = spec["figure_sources"]["power_limit_w"]
        # a figure names where it comes from; a missing one says that none is public
        assert (str(watts) in source) if watts else "not public" in source, sheet


def test_a100_40gb_parts_differ_from_the_80gb_only_in_memory_and_power():
    for small, large in (("a100-sxm4-40gb", "a100-sxm4-80gb"),
                         ("a100-pcie-40gb", "a100-pcie-80gb")):
        a, b = (next(s for s in load_specs() if s["id"] == i) for i in (small, large))
        assert a["peak_flops"] == b["peak_flops"]
        assert a["memory_bytes"] == 40 * 2**30 and a["memory_bandwidth_bytes_per_s"] == 1555e9


def test_multi_device_card_is_compared_per_device():
    bi150 = find_spec("Iluvatar BI-V150", "corex")
    peaks = DevicePeaks.from_spec(bi150, "Iluvatar BI-V150", "corex")
    assert peaks.devices_per_card == 2
    assert peaks.flop_per_s["fp16"] == 98e12  # 196 TFLOPS per card, two GPUs
    assert peaks.memory_bandwidth_bytes_per_s == pytest.approx(563.2e9)
    assert peaks.memory_bytes == 32 * 2**30
    assert peaks.host_link_bytes_per_s == 32e9  # the shared link is not divided
    h100 = DevicePeaks.from_spec(find_spec("NVIDIA H100 80GB HBM3"), "H100", "cuda")
    assert h100.peak_flops("bf16") == (989.4e12, None)


def test_missing_peaks_say_why():
    none = DevicePeaks.from_spec(None, "Some CPU", "cpu")
    value, reason = none.peak_flops("bf16")
    assert value is None and "no spec sheet" in reason and "Some CPU" in reason
    xavier = DevicePeaks.from_spec(find_spec("Xavier", "jetson"), "Xavier", "jetson")
    value, reason = xavier.peak_flops("bf16")
    assert value is None and "jetson-xavier-nx gives no bf16 peak" in reason
    assert pct_metric(50.0, 200.0, None) == {"value": 25.0, "unit": "%"}
    assert pct_metric(50.0, None, reason) == {"value": None, "unit": "%", "reason": reason}
