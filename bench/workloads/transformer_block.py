"""Operator performance beyond GEMM and convolution: one decoder block at the shapes of the
three LLMs (docs/function.md).

The block is what every layer of Qwen2, Llama-3 and GLM-4 computes: RMSNorm, q/k/v
projections with grouped-query attention through ``scaled_dot_product_attention`` (causal;
the device picks its own kernel), the output projection, RMSNorm and the gated SiLU MLP, with
residual connections. Rotary embeddings are left out (element-wise, no FLOP to speak of).
Shapes come from ``bench.llm.architectures`` (the published configurations, or the reduced
ones in the small configuration). It is timed like the operator sweeps (bench.micro.sweep):
forward, and in ``train`` mode the backward pass alone; FLOP/s, % of the precision's peak
(bench.micro.peaks) and the arithmetic intensity (bench.micro.formulas) per point.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from bench.documents import Params
from bench.errors import UserError
from bench.llm.architectures import ARCHITECTURES, SCALES, DecoderShape
from bench.micro import formulas
from bench.workload import register
from bench.workloads.micro_ops import PASSES, Built, OperatorSweep

RMS_EPS = 1e-6


class DecoderBlock(nn.Module):
    """A pre-norm decoder layer with grouped-query attention and a gated MLP."""

    def __init__(self, s: DecoderShape) -> None:
        super().__init__()
        self.s = s
        q_dim, kv_dim = s.heads * s.head_dim, s.kv_heads * s.head_dim
        self.norm1 = nn.Parameter(torch.ones(s.hidden))
        self.q = nn.Linear(s.hidden, q_dim, bias=s.qkv_bias)
        self.k = nn.Linear(s.hidden, kv_dim, bias=s.qkv_bias)
        self.v = nn.Linear(s.hidden, kv_dim, bias=s.qkv_bias)
        self.o = nn.Linear(q_dim, s.hidden, bias=s.o_bias)
        self.norm2 = nn.Parameter(torch.ones(s.hidden))
        self.gate = nn.Linear(s.hidden, s.intermediate, bias=s.mlp_bias)
        self.up = nn.Linear(s.hidden, s.intermediate, bias=s.mlp_bias)
        self.down = nn.Linear(s.intermediate, s.hidden, bias=s.mlp_bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        s = self.s
        b, t, _ = x.shape
        h = F.rms_norm(x, (s.hidden,), self.norm1, RMS_EPS)
        q = self.q(h).view(b, t, s.heads, s.head_dim).transpose(1, 2)
        k = self.k(h).view(b, t, s.kv_heads, s.head_dim).transpose(1, 2)
        v = self.v(h).view(b, t, s.kv_heads, s.head_dim).transpose(1, 2)
        if s.kv_heads != s.heads:  # each key/value head serves heads / kv_heads query heads
            k = k.repeat_interleave(s.heads // s.kv_heads, dim=1)
            v = v.repeat_interleave(s.heads // s.kv_heads, dim=1)
        attn = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        x = x + self.o(attn.transpose(1, 2).reshape(b, t, s.heads * s.head_dim))
        h = F.rms_norm(x, (s.hidden,), self.norm2, RMS_EPS)
        return x + self.down(F.silu(self.gate(h)) * self.up(h))


def block_shape(model: str, scale: str) -> DecoderShape:
    return DecoderShape.from_config(ARCHITECTURES[model].build_config(scale))


@register
class TransformerBlock(OperatorSweep):
    name = "transformer-block"
    description = ("one decoder block (GQA attention via scaled_dot_product_attention + gated "
                   "MLP) at the three LLMs' shapes, forward/backward: TFLOP/s, % of peak")
    grid = ("model", "batch", "seq_len")
    default_precision = "bf16"
    configs = {
        "small": {"architecture": "reduced", "model": list(ARCHITECTURES), "batch": [2],
                  "seq_len": [64]},
        "full": {"architecture": "published", "model": list(ARCHITECTURES), "batch": [1],
                 "seq_len": [1024, 4096]},
    }

    @classmethod
    def validate_params(cls, params: Params) -> None:
        if params["architecture"] not in SCALES:
            raise UserError(f"architecture is {params['architecture']!r}.",
                            f"Use one of: {', '.join(SCALES)}.")
        unknown = [m for m in params["model"] if m not in ARCHITECTURES]
        if unknown:
            raise UserError(f"model {unknown} is not an LLM of the suite.",
                            f"Use some of: {', '.join(ARCHITECTURES)}.")

    def setup(self) -> None:
        super().setup()
        self.extra["shapes"] = {m: vars(block_shape(m, self.params["architecture"]))
                                for m in self.params["model"]}
        self.extra["flop_convention"] = ("projections, causal attention (half of QK^T and PV) "
                                         "and MLP matrix products; backward = 2 x forward")

    def build(self, combo: Params) -> Built:
        s = block_shape(combo["model"], self.params["architecture"])
        b, t = combo["batch"], combo["seq_len"]
        dev, train = self.ctx.device, self.ctx.mode == "train"
        torch.manual_seed(self.ctx.seed)
        module = DecoderBlock(s).to(dev, self.dtype).requires_grad_(train)
        x = (torch.randn(b, t, s.hidden, dtype=self.dtype, device=dev) * 0.1
             ).requires_grad_(train)
        dims = (b, t, s.hidden, s.heads, s.kv_heads, s.head_dim, s.intermediate)
        return Built(module, x, flop={
            p: formulas.transformer_block_flop(*dims, backward=p == "backward") for p in PASSES},
            nbytes={p: formulas.transformer_block_bytes(*dims, self.elem,
                                                        backward=p == "backward")
                    for p in PASSES})
