"""Device spec sheets: every file is valid and the lookup by reported device name works."""

from __future__ import annotations

from bench.specs import find_spec, load_specs


def test_every_spec_sheet_is_valid():
    specs = load_specs()
    assert specs, "at least one spec sheet"
    assert len({s["id"] for s in specs}) == len(specs)


def test_lookup_by_reported_name():
    a100 = find_spec("NVIDIA A100-SXM4-80GB")
    assert a100 is not None and a100["peak_flops"]["bf16"] == 312e12
    assert find_spec("NVIDIA A100-SXM4-80GB", vendor="mlu") is None
    assert find_spec("Some Unknown Accelerator") is None
    assert find_spec(None) is None


def test_a_two_device_card_is_compared_per_device():
    """BI-V150 shows as two GPUs: each gets half the card's compute, memory and bandwidth,
    while power stays the card's (telemetry reports card power)."""
    from bench.specs import per_device
    from testbed.report.checks import memory_capacity_bytes

    card = find_spec("Iluvatar BI-V150", vendor="corex")
    assert card["devices_per_card"] == 2
    one = per_device(card)
    assert one["memory_bytes"] == card["memory_bytes"] / 2
    assert one["memory_bandwidth_bytes_per_s"] == card["memory_bandwidth_bytes_per_s"] / 2
    assert one["peak_flops"]["fp16"] == card["peak_flops"]["fp16"] / 2
    assert one["power_limit_w"] == card["power_limit_w"]
    assert per_device(find_spec("NVIDIA A100-SXM4-80GB")) == find_spec("NVIDIA A100-SXM4-80GB")
    capacity, basis = memory_capacity_bytes({}, card)
    assert capacity == card["memory_bytes"] / 2 and "iluvatar-bi-v150" in basis
