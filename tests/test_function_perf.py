"""Operator performance beyond GEMM and conv: the transformer block's and the long tail's
byte counts against numbers worked out by hand, and both workloads run once at tiny sizes
(structure only: every point measured, placed against the peaks or told why not)."""

from __future__ import annotations

import pytest
import torch

from bench.child import run_repeat
from bench.config import Entry, RunRules
from bench.function.longtail import BY_NAME, case_bytes
from bench.micro import formulas
from bench.records import RepeatSpec
from bench.workloads import get_workload


def test_transformer_block_bytes_by_hand():
    # hidden 4, heads 2, kv_heads 1, head_dim 2, intermediate 8: weights
    # 4 * (4 + 2) * 2 (q, k, v, o) + 3 * 4 * 8 (MLP) + 2 * 4 (norms) = 48 + 96 + 8 = 152;
    # activations 1 * 3 * 4 = 12 per tensor
    dims = (1, 3, 4, 2, 1, 2, 8)
    # forward: weights + x + y = 152 + 24 elements, 2 bytes each
    assert formulas.transformer_block_bytes(*dims, elem_bytes=2) == (152 + 24) * 2
    # backward: dy, x read, weights read, dx and weight gradients written
    assert formulas.transformer_block_bytes(*dims, elem_bytes=2, backward=True) == \
        (3 * 12 + 2 * 152) * 2


def test_a_long_tail_case_moves_its_inputs_and_output_once():
    case = BY_NAME["gather"].build(1024, torch.float32, torch.device("cpu"),
                                   torch.Generator().manual_seed(0))
    # 4 x 256 float32 input, int64 index of the same shape, float32 output
    assert case_bytes(case, case()) == 1024 * 4 + 1024 * 8 + 1024 * 4


def _run(workload: str, mode: str, precision: str, **params):
    cls = get_workload(workload)
    entry = Entry(id=workload, workload=workload, mode=mode, config="small",
                  precision=precision, params={**cls.configs["small"], **params},
                  rules=RunRules(warmup_iters=0, min_iters=2, min_duration_s=0.0))
    return run_repeat(RepeatSpec("cpu", entry, seed=0, repeat=0))


@pytest.mark.parametrize("mode", ["infer", "train"])
def test_the_transformer_block_runs_at_each_llm_shape(mode):
    result = _run("transformer-block", mode, "fp32", seq_len=[16])
    assert result["status"] == "ok", result.get("error")
    points = result["points"]
    assert {p["params"]["model"] for p in points} == set(get_workload(
        "transformer-block").configs["small"]["model"])
    for point in points:
        m = point["metrics"]
        assert m["flop_per_s"]["value"] > 0
        # % of peak: a figure, or none with the reason (a CPU has no spec sheet peak here)
        assert m["pct_of_peak"]["value"] is not None or m["pct_of_peak"].get("reason")


def test_the_long_tail_is_placed_against_the_memory_bound_limit():
    result = _run("op-longtail", "infer", "fp32", ops=["gather", "layer_norm", "topk"],
                  elements=[4096])
    assert result["status"] == "ok", result.get("error")
    assert {p["params"]["op"] for p in result["points"]} == {"gather", "layer_norm", "topk"}
    for point in result["points"]:
        m = point["metrics"]
        assert m["bytes"]["value"] > 0 and m["bytes_per_s"]["value"] > 0
        bound = m["memory_bound_time_s"]
        if bound["value"] is None:  # no bandwidth figure for this device: said why
            assert bound.get("reason") and m["time_over_memory_bound"]["value"] is None
        else:
            assert m["time_over_memory_bound"]["value"] == pytest.approx(
                m["time_s"]["value"] / bound["value"])
