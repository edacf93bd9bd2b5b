"""The arithmetic of the function checks, against numbers worked out by hand: tolerances,
the comparison of outputs, tie-tolerant indices, operator classes and support rates, the
model-function measures, and the transformer block's FLOP count."""

from __future__ import annotations

import math

import pytest
import torch

from bench.function import compare
from bench.function.model import (
    allowed_error,
    decisions,
    gradient_errors,
    greedy_agreement,
    norm_rel_err,
    reference_dtype,
)
from bench.micro import formulas
from bench.workloads.function_ops import operator_class, support


def test_tolerances_are_multiples_of_each_dtype_epsilon():
    rtol, atol = compare.tolerance("fp16")
    assert rtol == pytest.approx(8 * 2**-10) and atol == pytest.approx(8 * 2**-10)
    rtol, _ = compare.tolerance("bf16")
    assert rtol == pytest.approx(4 * 2**-7)
    rtol, _ = compare.tolerance("fp32")
    assert rtol == pytest.approx(256 * 2**-23)
    assert compare.tolerance("fp64") == compare.tolerance("fp32")
    assert compare.tolerance("fp16", factor=2)[0] == pytest.approx(16 * 2**-10)


def test_scale_is_the_99th_percentile_of_the_reference_with_a_floor():
    ref = torch.cat([torch.ones(99), torch.tensor([1e6])]).double()
    assert compare.output_scale(ref) == 1.0  # one huge masked value does not set the scale
    assert compare.output_scale(torch.zeros(10, dtype=torch.float64)) == compare.SCALE_FLOOR


def test_an_error_is_judged_against_rtol_times_the_value_plus_atol_times_the_scale():
    ref = torch.tensor([1.0, 2.0, 4.0], dtype=torch.float64)
    rtol, atol = compare.tolerance("fp32")
    # scale S = 4 (99th percentile of [1, 2, 4]); allowed at 1.0: rtol * 1 + atol * 4
    allowed = rtol * 1.0 + atol * 4.0
    ok = compare.compare_tensor(torch.tensor([1.0 + allowed * 0.5, 2.0, 4.0]), ref, "fp32")
    assert ok.ok and ok.err_over_tol == pytest.approx(0.5, rel=0.05)
    bad = compare.compare_tensor(torch.tensor([1.1, 2.0, 4.0]), ref, "fp32")
    assert not bad.ok
    assert bad.max_abs_err == pytest.approx(0.1, rel=1e-6)
    assert bad.max_rel_err == pytest.approx(0.1, rel=1e-6)
    assert "fp32 tolerance" in bad.problems[0]


def test_the_reference_is_rounded_to_the_device_dtype_first():
    # 1e5 overflows fp16: inf is then the right fp16 answer, not a mismatch
    ref = torch.tensor([1e5, 1.0], dtype=torch.float64)
    assert compare.compare_tensor(torch.tensor([math.inf, 1.0], dtype=torch.float16), ref,
                                  "fp16").ok
    # a NaN on the device only is wrong whatever the tolerance
    bad = compare.compare_tensor(torch.tensor([math.nan, 1.0]), torch.tensor(
        [2.0, 1.0], dtype=torch.float64), "bf16")
    assert not bad.ok and "NaN" in bad.problems[0]


def test_integers_compare_exactly_and_shapes_must_match():
    assert compare.compare_tensor(torch.tensor([1, 2]), torch.tensor([1, 2]), "fp32").ok
    bad = compare.compare_tensor(torch.tensor([1, 3]), torch.tensor([1, 2]), "fp32")
    assert not bad.ok and "1 of 2 integer" in bad.problems[0]
    assert not compare.compare_tensor(torch.zeros(2), torch.zeros(3, dtype=torch.float64),
                                      "fp32").ok


def test_output_trees_numbers_and_none():
    assert compare.compare_outputs([torch.ones(2), 3, None], [torch.ones(2).double(), 3, None],
                                   "fp32").ok
    assert not compare.compare_outputs([torch.ones(2)], [torch.ones(2).double(), 1], "fp32").ok
    assert not compare.compare_outputs(True, False, "fp32").ok


def test_ties_may_pick_either_index_but_indices_must_point_at_the_values():
    x = torch.tensor([[1.0, 3.0, 3.0, 0.0]])
    ref_vals, ref_idx = torch.tensor([[3.0]], dtype=torch.float64), torch.tensor([[1]])
    # the device picked the other 3.0: right
    ok = compare.compare_indexed("aten.topk.default", (torch.tensor([[3.0]]), torch.tensor(
        [[2]])), (ref_vals, ref_idx), x, [x, 1], {}, "fp32")
    assert ok is not None and ok.ok
    # an index that points at 1.0 while the value says 3.0: wrong
    bad = compare.compare_indexed("aten.topk.default", (torch.tensor([[3.0]]), torch.tensor(
        [[0]])), (ref_vals, ref_idx), x, [x, 1], {}, "fp32")
    assert bad is not None and not bad.ok and "do not point" in bad.problems[0]
    # argmax over the flattened input
    ok = compare.compare_indexed("aten.argmax.default", torch.tensor(2), torch.tensor(1),
                                 x, [x], {}, "fp32")
    assert ok is not None and ok.ok
    assert compare.compare_indexed("aten.add.Tensor", x, x, x, [x], {}, "fp32") is None


def test_random_operators_compare_shapes_only():
    assert compare.compare_random(torch.rand(3), torch.rand(3, dtype=torch.float64)).ok
    assert not compare.compare_random(torch.rand(3), torch.rand(4)).ok


def test_an_operators_class_is_its_worst_pass_and_rates_leave_out_the_unjudged():
    assert operator_class(["pass", "cpu_fallback"]) == "cpu_fallback"
    assert operator_class(["wrong", "unsupported"]) == "unsupported"
    assert operator_class(["pass", "crash"]) == "crash"
    assert operator_class(["skipped"]) == "skipped"
    matrix = {"a": {"fp32": "pass", "fp16": "wrong"}, "b": {"fp32": "pass", "fp16": "pass"},
              "c": {"fp32": "skipped", "fp16": "crash"}, "d": {"fp32": "cpu_fallback"}}
    rates = support(matrix, ["fp32", "fp16"])
    # fp32: a, b pass, d fell back, c unjudged -> 2 of 3
    assert rates["fp32"]["operators"] == 4 and rates["fp32"]["skipped"] == 1
    assert rates["fp32"]["rate_pct"] == pytest.approx(200 / 3)
    # fp16: a wrong, b pass, c crash -> 1 of 3
    assert rates["fp16"]["rate_pct"] == pytest.approx(100 / 3)
    assert rates["fp16"]["wrong"] == 1 and rates["fp16"]["crash"] == 1


def test_model_measures():
    assert norm_rel_err(torch.tensor([3.0, 4.0]), torch.tensor([3.0, 4.0])) == 0.0
    # ||(0, 1)|| / ||(3, 4)|| = 1 / 5
    assert norm_rel_err(torch.tensor([3.0, 5.0]), torch.tensor([3.0, 4.0])) == pytest.approx(0.2)
    ref = torch.tensor([[1.0, 0.0, 0.0], [1.0, 0.99, 0.0]])
    dev = torch.tensor([[1.0, 0.0, 0.0], [0.99, 1.0, 0.0]])
    d = decisions(dev, ref, -1, threshold=0.1)
    # row 0 decisive (margin 1.0) and agrees; row 1 a near tie (margin 0.01) and differs
    assert d == {"positions": 2, "agreement_pct": 50.0, "decisive": 1,
                 "decisive_disagreements": 0}
    d = decisions(dev, ref, -1, threshold=0.001)
    assert d["decisive"] == 2 and d["decisive_disagreements"] == 1


def test_greedy_tokens_agree_until_a_divergence_which_a_near_tie_excuses():
    ref = torch.tensor([[1, 2, 3, 4]])
    margins = torch.tensor([[5.0, 5.0, 0.001, 5.0]])
    same = greedy_agreement(ref.clone(), ref, margins, 0.01)
    assert same == {"requested": 4, "agreeing": 4, "diverged_at": None, "near_tie": False}
    tie = greedy_agreement(torch.tensor([[1, 2, 9, 9]]), ref, margins, 0.01)
    assert tie["agreeing"] == 2 and tie["diverged_at"] == 2 and tie["near_tie"]
    decisive = greedy_agreement(torch.tensor([[1, 9, 9, 9]]), ref, margins, 0.01)
    assert decisive["diverged_at"] == 1 and not decisive["near_tie"]


def test_gradient_errors_pool_all_parameters_and_name_the_worst():
    # diff^2 and ref^2 per parameter: total sqrt((1 + 0) / (4 + 96)) = 0.1
    total, worst = gradient_errors([("a", 1.0, 4.0), ("b", 0.0, 96.0)])
    assert total == pytest.approx(0.1)
    assert worst == (pytest.approx(0.5), "a")
    # a parameter whose reference gradient is negligible does not become "the worst"
    _total, worst = gradient_errors([("a", 1e-20, 1e-30), ("b", 1.0, 100.0)])
    assert worst[1] == "b"


def test_an_ill_conditioned_gradient_is_allowed_a_multiple_of_the_cpus_own_error():
    assert allowed_error(1e-3, None) == 1e-3
    assert allowed_error(1e-3, 1e-5) == 1e-3  # well conditioned: the tolerance decides
    # U-Net's case: the CPU's float32 gradients are 4.7e-3 off float64; 4 x that is allowed
    assert allowed_error(1e-3, 4.7e-3) == pytest.approx(4 * 4.7e-3)


def test_reference_dtype_falls_back_to_float32_then_gives_up():
    model = torch.nn.Linear(10, 10)  # 110 parameters
    assert reference_dtype(model, 10**9)[0] == torch.float64
    # float64 needs 110 * 8 * 2 = 1760 B for inference at a 50 % share: 3000 B is too little
    dtype, note = reference_dtype(model, 3000)
    assert dtype == torch.float32 and "float32" in note
    dtype, note = reference_dtype(model, 1000)
    assert dtype is None and "does not fit" in note


def test_the_training_probe_loss_is_the_models_own_objective_in_float64_too():
    """The model-function check of llm-pretrain/llm-finetune computes the next-token loss
    itself (transformers' loss would cast a float64 reference to float32): it must be the
    loss the model gives, ignored labels included, and keep float64."""
    from transformers import LlamaConfig, LlamaForCausalLM

    from bench.workloads.llm_train import probe_loss

    torch.manual_seed(0)
    model = LlamaForCausalLM(LlamaConfig(vocab_size=32, hidden_size=16, intermediate_size=32,
                                         num_hidden_layers=1, num_attention_heads=2,
                                         num_key_value_heads=1))
    ids = torch.randint(0, 32, (2, 6))
    labels = ids.clone()
    labels[0, :3] = -100  # a prompt the loss skips
    batch = {"input_ids": ids, "labels": labels, "attention_mask": torch.ones_like(ids)}
    ours = probe_loss("alpaca", model, batch)
    assert ours.item() == pytest.approx(model(**batch).loss.item(), rel=1e-5)
    assert probe_loss("causal", model.double(), batch).dtype == torch.float64


def test_transformer_block_flop_by_hand():
    # b=1, s=4, hidden=8, heads=2, kv_heads=1, head_dim=4, intermediate=16
    # projections 2*4*8*(2*2+2*1)*4 = 1536; mlp 2*4*3*8*16 = 3072;
    # attention 4*1*2*16*4 = 512, causal half 256
    assert formulas.transformer_block_flop(1, 4, 8, 2, 1, 4, 16) == 1536 + 3072 + 256
    assert formulas.transformer_block_flop(1, 4, 8, 2, 1, 4, 16, causal=False) == 5120
    assert formulas.transformer_block_flop(1, 4, 8, 2, 1, 4, 16, backward=True) == 2 * 4864
    # weights 8*6*4 + 3*8*16 + 2*8 = 592; activations 32 -> forward (592 + 64) * 2 bytes
    assert formulas.transformer_block_bytes(1, 4, 8, 2, 1, 4, 16, 2) == 1312


def test_transformer_block_flop_matches_pytorchs_counter():
    from torch.utils.flop_counter import FlopCounterMode

    from bench.llm.architectures import DecoderShape
    from bench.workloads.transformer_block import DecoderBlock

    s = DecoderShape(layers=1, hidden=32, intermediate=64, heads=4, kv_heads=2, head_dim=8,
                     vocab=10, tied_embeddings=False, qkv_bias=False)
    block = DecoderBlock(s)
    x = torch.randn(2, 16, 32)
    with FlopCounterMode(display=False) as counter:
        block(x)
    # The counter has no formula for the CPU's attention kernel: it counts the projections and
    # the MLP, which must be the formula less its attention term (4 b h s^2 d, not causal).
    attention = 4 * 2 * 4 * 16 * 16 * 8
    assert counter.get_total_flops() == formulas.transformer_block_flop(
        2, 16, 32, 4, 2, 8, 64, causal=False) - attention
