"""The operator catalogue: the generator finds a model's operators, arguments survive the trip
to YAML and back with their structure, and every workload's operators are in the checked-in
catalogue (the test that fails when a workload starts using an operator the catalogue lacks).
"""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from bench.function import args as argspec
from bench.function import catalogue, replay
from bench.function.trace import OpRecorder, recording
from bench.tools import function_catalogue


class Tiny(torch.nn.Module):
    """A small model written for the test: conv, batch norm, GELU, attention, a loss."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = torch.nn.Conv2d(3, 4, 3, padding=1)
        self.bn = torch.nn.BatchNorm2d(4)
        self.proj = torch.nn.Linear(4, 8)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = F.gelu(self.bn(self.conv(x)))  # (b, 4, 4, 4)
        seq = h.flatten(2).transpose(1, 2)  # (b, 16, 4)
        q = self.proj(seq).view(x.shape[0], 16, 2, 4).transpose(1, 2)
        return F.scaled_dot_product_attention(q, q, q, is_causal=True).mean(dim=(1, 2))


@pytest.fixture(scope="module")
def tiny_catalogue():
    torch.manual_seed(0)
    model = Tiny()
    x = torch.randn(2, 3, 4, 4)
    target = torch.tensor([1, 3])
    recorder = OpRecorder()
    with recording(recorder, "tiny/train"):
        loss = F.cross_entropy(model(x), target)
        loss.backward()
    with torch.inference_mode(), recording(recorder, "tiny/infer"):
        model.eval()
        model(x)
    return catalogue.assemble(recorder, [{"workload": "tiny", "mode": "train",
                                          "precision": "fp32"}], log=lambda *_: None)


def test_the_generator_finds_the_operators_of_a_small_model(tiny_catalogue):
    by_op = tiny_catalogue.by_op
    for op in ("aten.convolution.default", "aten.native_batch_norm.default",
               "aten.gelu.default", "aten.scaled_dot_product_attention.default",
               "aten.nll_loss_forward.default", "aten._log_softmax.default",
               "aten.convolution_backward.default", "aten.gelu_backward.default"):
        assert op in by_op, op
    conv = by_op["aten.convolution.default"]
    assert conv.differentiated and "forward" in conv.phases
    assert conv.calls[0].backward and conv.calls[0].variants[:3] == ["fp32", "fp16", "bf16"]
    assert "tiny/train" in conv.seen_in
    assert any("tiny/infer" in e.seen_in for e in tiny_catalogue.entries)
    # backward kernels are seen in the backward phase and not differentiated themselves
    grad = by_op["aten.convolution_backward.default"]
    assert grad.phases == ["backward"] and not grad.calls[0].backward
    # the CPU's attention kernel is recorded as the portable operator, and said so
    assert "aten._scaled_dot_product_flash_attention_for_cpu.default" not in by_op
    excluded = {x["op"]: x["reason"] for x in tiny_catalogue.excluded}
    assert "portable" in excluded["aten._scaled_dot_product_flash_attention_for_cpu.default"]
    assert by_op["aten.scaled_dot_product_attention.default"].calls[0].backward
    # integer targets are kept exactly, so a replay indexes the same classes
    nll = by_op["aten.nll_loss_forward.default"].calls[0]
    assert nll.args[1]["T"]["values"] == [1, 3]


def test_the_catalogue_survives_yaml(tmp_path, tiny_catalogue):
    path = catalogue.write(tiny_catalogue, tmp_path / "catalogue.yaml")
    loaded = catalogue.load(path)
    assert [e.op for e in loaded.entries] == [e.op for e in tiny_catalogue.entries]
    assert loaded.by_op["aten.gelu.default"].calls[0].args == \
        tiny_catalogue.by_op["aten.gelu.default"].calls[0].args
    assert len(loaded.sha256) == 64
    assert loaded.covers("aten._scaled_dot_product_flash_attention_for_cpu.default")


def test_a_malformed_catalogue_names_the_fix(tmp_path):
    from bench.errors import UserError

    bad = tmp_path / "catalogue.yaml"
    bad.write_text("version: 99\n", encoding="utf-8")
    with pytest.raises(UserError, match="invoke function-catalogue"):
        catalogue.load(bad)


def test_rebuilt_arguments_keep_layout_and_share_values_between_the_sides():
    base = torch.arange(24.0).view(2, 3, 4)
    permuted = base.permute(0, 2, 1)  # strided, not contiguous
    idx = torch.tensor([2, 0, 1])
    encoded = argspec.encode([permuted, idx, torch.float32, 3])
    spec = encoded[0]["T"]
    assert spec["stride"] == [12, 1, 4] and spec["storage"] == 24
    assert encoded[1]["T"]["values"] == [2, 0, 1]
    rebuild = argspec.Rebuild("fp16", torch.device("cpu"), seed=7)
    dev, ref = rebuild.build(encoded)
    assert dev[0].dtype == torch.float16 and ref[0].dtype == torch.float64
    assert dev[0].stride() == ref[0].stride() == (12, 1, 4)
    assert torch.equal(dev[0].double(), ref[0])  # the same values on both sides
    assert dev[1].tolist() == [2, 0, 1] and dev[2] is torch.float32 and dev[3] == 3
    # the values stay in the recorded range, and the same seed draws the same values
    assert float(dev[0].min()) >= 0 and float(dev[0].max()) <= 23
    again, _ = argspec.Rebuild("fp16", torch.device("cpu"), seed=7).build(encoded)
    assert torch.equal(again[0], dev[0])


def test_a_mask_of_two_values_is_redrawn_from_those_values():
    mask = torch.tensor([[0.0, float("-inf")], [0.0, 0.0]])
    spec = argspec.encode(mask)["T"]
    assert spec["choices"] == [float("-inf"), 0.0]
    dev, _ref = argspec.Rebuild("bf16", torch.device("cpu"), seed=1).build({"T": spec})
    assert set(dev.float().flatten().tolist()) <= {0.0, float("-inf")}


def test_a_case_seed_does_not_depend_on_what_ran_before():
    assert replay.case_seed(0, "aten.gelu.default", 0, "fp16") == \
        replay.case_seed(0, "aten.gelu.default", 0, "fp16")
    assert replay.case_seed(0, "aten.gelu.default", 0, "fp16") != \
        replay.case_seed(0, "aten.gelu.default", 0, "bf16")


@pytest.mark.slow
def test_every_workload_operator_is_in_the_checked_in_catalogue():
    """Traces every model workload (small configurations) as the generator does; an operator
    the catalogue lacks fails here with the command that regenerates it."""
    checked_in = catalogue.load()
    recorder, _targets = function_catalogue.trace_all(longtail=False, log=lambda *_: None)
    missing = catalogue.missing_from(checked_in, recorder)
    assert not missing, (f"operators the catalogue lacks (and where they ran): {missing}; "
                         f"regenerate it with `{catalogue.REGENERATE}` and commit "
                         "bench/function/catalogue.yaml")
