"""GEMM: achieved FLOP/s of a square matrix multiply (C = A @ B, 2 n^3 FLOP per GEMM)."""

from __future__ import annotations

from typing import Any

import torch

from bench.devices.base import PRECISION_DTYPES
from bench.workloads import register
from bench.workloads.base import Workload


def gemm_flop(m: int, n: int, k: int) -> int:
    """FLOP of one (m x k) @ (k x n) product: a multiply and an add per term."""
    return 2 * m * n * k


@register
class GemmWorkload(Workload):
    name = "gemm"
    description = "square matrix multiply, achieved FLOP/s"
    group = "micro"
    modes = ("infer",)
    item_unit = "GEMMs"
    configs = {
        "small": {"n": 512},
        "full": {"n": 8192},
    }

    def setup(self) -> None:
        self.check_precision()
        n = self.params["n"]
        dtype = PRECISION_DTYPES[self.ctx.precision]
        if self.ctx.precision == "tf32":
            torch.backends.cuda.matmul.allow_tf32 = True
        elif self.ctx.backend.device_type == "cuda":
            torch.backends.cuda.matmul.allow_tf32 = False
        gen = torch.Generator(device="cpu").manual_seed(self.ctx.seed)
        self.a = torch.randn(n, n, generator=gen).to(self.ctx.device, dtype)
        self.b = torch.randn(n, n, generator=gen).to(self.ctx.device, dtype)
        self.out = torch.empty_like(self.a)
        self.extra["flop_per_gemm"] = gemm_flop(n, n, n)

    def step(self) -> int:
        torch.matmul(self.a, self.b, out=self.out)
        return 1

    def metrics(self, loop: dict[str, Any]) -> dict[str, dict[str, Any]]:
        flop = self.extra["flop_per_gemm"] * loop["items"]
        return {"flop_per_s": {"value": flop / loop["window"]["duration_s"], "unit": "FLOP/s"}}
