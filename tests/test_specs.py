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
