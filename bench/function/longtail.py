"""The long tail: operators users hit beyond GEMM and convolution, written once and used twice.

Each ``LongTailOp`` builds one call of a PyTorch operator from a size ``n`` (elements of its
main input), a floating-point dtype, a device and a seeded generator. The operator catalogue
traces every one at a tiny size on the CPU (forward and backward), so their ATen operators are
tested for function like the models' own; the ``op-longtail`` workload times them at a large
size and places them against the memory-bound limit (bytes moved / spec bandwidth).

Shapes are chosen so every input element is read once (an embedding's ids are a permutation
of its rows, a gather's index covers its input): the compulsory traffic is then exactly the
bytes of the inputs plus the outputs (``case_bytes``). ``flop_per_element`` is a nominal
count of arithmetic per element (one per add, multiply, compare or transcendental; zero for
pure data movement), counted over the larger of the biggest floating-point input and the
floating-point output (a reduction works on every input element, an upsampling on every output
element: ``nominal_flop``), used only to place a point on the FLOP roofline; the memory-bound
comparison uses bytes alone.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F


@dataclass
class LongTailCase:
    """One built call: ``fn(*inputs)``; ``grad`` marks inputs that are differentiated."""

    fn: Callable[..., Any]
    inputs: tuple[Any, ...]
    grad: tuple[int, ...] = ()

    def __call__(self) -> Any:
        return self.fn(*self.inputs)


@dataclass(frozen=True)
class LongTailOp:
    name: str
    what: str
    build: Callable[[int, torch.dtype, torch.device, torch.Generator], LongTailCase]
    flop_per_element: float = 0.0  # nominal (see the module docstring)
    timed: bool = True  # timed by op-longtail (int8 GEMM belongs to the GEMM benchmark)


def _rand(shape: tuple[int, ...], dtype: torch.dtype, device: torch.device,
          gen: torch.Generator, low: float = -1.0, high: float = 1.0) -> torch.Tensor:
    x = torch.rand(shape, generator=gen, dtype=torch.float32) * (high - low) + low
    return x.to(device=device, dtype=dtype)


def _perm(n: int, device: torch.device, gen: torch.Generator) -> torch.Tensor:
    return torch.randperm(n, generator=gen).to(device)


def _rows(n: int, width: int = 256) -> tuple[int, int]:
    """A 2-D shape of about n elements with rows of ``width`` (fewer for tiny n)."""
    w = min(width, max(1, n))
    return max(1, n // w), w


def _image(n: int, channels: int = 8, batch: int = 2) -> tuple[int, int, int, int]:
    side = max(4, math.isqrt(max(n // (channels * batch), 16)))
    return batch, channels, side, side


def _row_perm(rows: int, cols: int, device: torch.device, gen: torch.Generator) -> torch.Tensor:
    keys = torch.rand(rows, cols, generator=gen)
    return keys.argsort(dim=1).to(device)


def _two_d(fn: Callable[..., Any], grad: bool = True, low: float = -1.0,
           high: float = 1.0) -> Callable[..., LongTailCase]:
    def build(n: int, dtype: torch.dtype, device: torch.device,
              gen: torch.Generator) -> LongTailCase:
        return LongTailCase(fn, (_rand(_rows(n), dtype, device, gen, low, high),),
                            (0,) if grad else ())
    return build


def _index_select(n, dtype, device, gen):
    r, w = _rows(n)
    return LongTailCase(lambda x, i: torch.index_select(x, 0, i),
                        (_rand((r, w), dtype, device, gen), _perm(r, device, gen)), (0,))


def _gather(n, dtype, device, gen):
    r, w = _rows(n)
    return LongTailCase(lambda x, i: torch.gather(x, 1, i),
                        (_rand((r, w), dtype, device, gen), _row_perm(r, w, device, gen)),
                        (0,))


def _scatter(n, dtype, device, gen):
    r, w = _rows(n)
    return LongTailCase(lambda x, i, s: x.scatter(1, i, s),
                        (_rand((r, w), dtype, device, gen), _row_perm(r, w, device, gen),
                         _rand((r, w), dtype, device, gen)), (0, 2))


def _scatter_add(n, dtype, device, gen):
    r, w = _rows(n)
    idx = torch.randint(0, w, (r, w), generator=gen).to(device)
    return LongTailCase(lambda x, i, s: x.scatter_add(1, i, s),
                        (_rand((r, w), dtype, device, gen), idx,
                         _rand((r, w), dtype, device, gen)), (0, 2))


def _index_add(n, dtype, device, gen):
    r, w = _rows(n)
    return LongTailCase(lambda x, i, s: x.index_add(0, i, s),
                        (_rand((r, w), dtype, device, gen), _perm(r, device, gen),
                         _rand((r, w), dtype, device, gen)), (0, 2))


def _index_put(n, dtype, device, gen):
    r, w = _rows(n)
    return LongTailCase(lambda x, i, v: x.index_put((i,), v),
                        (_rand((r, w), dtype, device, gen), _perm(r, device, gen),
                         _rand((r, w), dtype, device, gen)), (0, 2))


def _masked(fn: Callable[..., Any], grad: tuple[int, ...] = (0,)) -> Callable[..., LongTailCase]:
    def build(n, dtype, device, gen):
        shape = _rows(n)
        mask = (torch.rand(shape, generator=gen) < 0.5).to(device)
        return LongTailCase(fn, (_rand(shape, dtype, device, gen), mask), grad)
    return build


def _where(n, dtype, device, gen):
    shape = _rows(n)
    mask = (torch.rand(shape, generator=gen) < 0.5).to(device)
    return LongTailCase(torch.where, (mask, _rand(shape, dtype, device, gen),
                                      _rand(shape, dtype, device, gen)), (1, 2))


def _sparse(fn: Callable[..., Any]) -> Callable[..., LongTailCase]:
    """Half the elements zero, so nonzero / unique / masked_select have real work."""
    def build(n, dtype, device, gen):
        shape = _rows(n)
        x = torch.randint(-64, 64, shape, generator=gen).float()
        x = torch.where(torch.rand(shape, generator=gen) < 0.5, torch.zeros(()), x)
        return LongTailCase(fn, (x.to(device=device, dtype=dtype),))
    return build


def _embedding(n, dtype, device, gen):
    r, w = _rows(n, 128)
    return LongTailCase(F.embedding, (_perm(r, device, gen).view(-1, 1),
                                      _rand((r, w), dtype, device, gen)), (1,))


def _embedding_bag(n, dtype, device, gen):
    r, w = _rows(n, 128)
    bags = max(1, r // 4)
    offsets = torch.arange(0, r, max(1, r // bags))[:bags].to(device)
    return LongTailCase(lambda i, wt, o: F.embedding_bag(i, wt, o, mode="mean"),
                        (_perm(r, device, gen), _rand((r, w), dtype, device, gen), offsets),
                        (1,))


def _interp(mode: str, **kw: Any) -> Callable[..., LongTailCase]:
    def build(n, dtype, device, gen):
        b, c, h, w = _image(n // 4)
        return LongTailCase(lambda x: F.interpolate(x, scale_factor=2, mode=mode, **kw),
                            (_rand((b, c, h, w), dtype, device, gen),), (0,))
    return build


def _grid_sample(n, dtype, device, gen):
    b, c, h, w = _image(n)
    grid = _rand((b, h, w, 2), dtype, device, gen, -1.0, 1.0)
    return LongTailCase(lambda x, g: F.grid_sample(x, g, mode="bilinear", align_corners=False),
                        (_rand((b, c, h, w), dtype, device, gen), grid), (0, 1))


def _norm(kind: str) -> Callable[..., LongTailCase]:
    def build(n, dtype, device, gen):
        if kind in ("group_norm", "batch_norm", "instance_norm"):
            shape = _image(n)
            c = shape[1]
            weight, bias = _rand((c,), dtype, device, gen, 0.5, 1.5), \
                _rand((c,), dtype, device, gen)
            x = _rand(shape, dtype, device, gen)
            if kind == "group_norm":
                return LongTailCase(lambda x, w, b: F.group_norm(x, 2, w, b),
                                    (x, weight, bias), (0, 1, 2))
            if kind == "instance_norm":
                return LongTailCase(lambda x, w, b: F.instance_norm(x, weight=w, bias=b),
                                    (x, weight, bias), (0, 1, 2))
            return LongTailCase(
                lambda x, w, b: F.batch_norm(x, None, None, w, b, training=True),
                (x, weight, bias), (0, 1, 2))
        r, w = _rows(n)
        x, weight = _rand((r, w), dtype, device, gen), _rand((w,), dtype, device, gen, 0.5, 1.5)
        if kind == "rms_norm":
            return LongTailCase(lambda x, wt: F.rms_norm(x, (w,), wt, 1e-6), (x, weight),
                                (0, 1))
        bias = _rand((w,), dtype, device, gen)
        return LongTailCase(lambda x, wt, b: F.layer_norm(x, (w,), wt, b), (x, weight, bias),
                            (0, 1, 2))
    return build


def _conv_transpose(n, dtype, device, gen):
    b, c, h, w = _image(n // 2)
    weight = _rand((c, c, 2, 2), dtype, device, gen)
    return LongTailCase(lambda x, wt: F.conv_transpose2d(x, wt, stride=2),
                        (_rand((b, c, h, w), dtype, device, gen), weight), (0, 1))


def _conv_transpose1d(n, dtype, device, gen):
    b, c = 2, 8
    length = max(4, n // (b * c))
    weight = _rand((c, c, 3), dtype, device, gen)
    return LongTailCase(lambda x, wt: F.conv_transpose1d(x, wt, stride=1, padding=1),
                        (_rand((b, c, length), dtype, device, gen), weight), (0, 1))


def _pool(fn: Callable[..., Any]) -> Callable[..., LongTailCase]:
    def build(n, dtype, device, gen):
        return LongTailCase(fn, (_rand(_image(n), dtype, device, gen),), (0,))
    return build


def _cross_entropy(n, dtype, device, gen):
    r, w = _rows(n, 128)
    target = torch.randint(0, w, (r,), generator=gen).to(device)
    return LongTailCase(lambda x, t: F.cross_entropy(x, t, label_smoothing=0.1),
                        (_rand((r, w), dtype, device, gen), target), (0,))


def _one_hot(n, dtype, device, gen):
    r, w = _rows(n, 64)
    return LongTailCase(lambda t: F.one_hot(t, w), (torch.randint(0, w, (r,),
                                                                  generator=gen).to(device),))


def _cat(n, dtype, device, gen):
    r, w = _rows(n // 2)
    return LongTailCase(lambda a, b: torch.cat([a, b], dim=1),
                        (_rand((r, w), dtype, device, gen), _rand((r, w), dtype, device, gen)),
                        (0, 1))


def _repeat_interleave(n, dtype, device, gen):
    r, w = _rows(n // 2)
    return LongTailCase(lambda x: x.repeat_interleave(2, dim=0),
                        (_rand((r, w), dtype, device, gen),), (0,))


def _searchsorted(n, dtype, device, gen):
    r, w = _rows(n)
    edges = torch.linspace(-1, 1, 64).to(device=device, dtype=dtype)
    return LongTailCase(lambda e, x: torch.searchsorted(e, x),
                        (edges, _rand((r, w), dtype, device, gen)))


def _pixel_shuffle(n, dtype, device, gen):
    b, c, h, w = _image(n, channels=16)
    return LongTailCase(lambda x: F.pixel_shuffle(x, 2),
                        (_rand((b, c, h, w), dtype, device, gen),), (0,))


def _unfold(n, dtype, device, gen):
    b, c, h, w = _image(n // 9)
    return LongTailCase(lambda x: F.unfold(x, 3, padding=1),
                        (_rand((b, c, h, w), dtype, device, gen),), (0,))


def _int8_mm(n, dtype, device, gen):
    side = max(32, 8 * math.isqrt(max(n, 1024) // 64))
    a = torch.randint(-8, 9, (side, side), generator=gen, dtype=torch.int8).to(device)
    b = torch.randint(-8, 9, (side, side), generator=gen, dtype=torch.int8).to(device)
    return LongTailCase(lambda x, y: torch._int_mm(x, y), (a, b.t().contiguous().t()))


def _sdpa_masked(n, dtype, device, gen):
    b, h, s, d = 2, 4, 16, 16
    q, k, v = (_rand((b, h, s, d), dtype, device, gen) for _ in range(3))
    mask = torch.ones(s, s, dtype=torch.bool).tril().to(device)
    return LongTailCase(
        lambda q, k, v, m: F.scaled_dot_product_attention(q, k, v, attn_mask=m),
        (q, k, v, mask), (0, 1, 2))


LONG_TAIL: tuple[LongTailOp, ...] = (
    LongTailOp("index_select", "rows of a table in permuted order", _index_select),
    LongTailOp("gather", "gather along dim 1 (a permutation per row)", _gather),
    LongTailOp("scatter", "scatter to unique positions along dim 1", _scatter),
    LongTailOp("scatter_add", "scatter-add with repeated positions", _scatter_add, 1),
    LongTailOp("index_add", "index_add of rows", _index_add, 1),
    LongTailOp("index_put", "advanced-index assignment of rows", _index_put),
    LongTailOp("masked_fill", "masked_fill with a random mask",
               _masked(lambda x, m: x.masked_fill(m, 0.0))),
    LongTailOp("where", "element-wise select", _where, 1),
    LongTailOp("masked_select", "masked_select (data-dependent size)",
               _masked(torch.masked_select)),
    LongTailOp("nonzero", "indices of non-zero elements", _sparse(torch.nonzero)),
    LongTailOp("unique", "sorted unique values with counts",
               _sparse(lambda x: torch.unique(x, sorted=True, return_counts=True))),
    LongTailOp("sort", "sort each row (values and indices)", _two_d(lambda x: x.sort(dim=1))),
    LongTailOp("topk", "top 1/8 of each row", _two_d(lambda x: x.topk(x.shape[1] // 8, dim=1))),
    LongTailOp("cumsum", "cumulative sum along rows", _two_d(lambda x: x.cumsum(dim=1)), 1),
    LongTailOp("cumprod", "cumulative product along rows",
               _two_d(lambda x: x.cumprod(dim=1), low=0.9, high=1.1), 1),
    LongTailOp("embedding", "embedding lookup of every row", _embedding),
    LongTailOp("embedding_bag", "embedding_bag, mean over bags of 4", _embedding_bag, 1),
    LongTailOp("interpolate_nearest", "2x nearest upsampling", _interp("nearest")),
    LongTailOp("interpolate_bilinear", "2x bilinear upsampling",
               _interp("bilinear", align_corners=False), 7),
    LongTailOp("interpolate_bicubic", "2x bicubic upsampling",
               _interp("bicubic", align_corners=False), 31),
    LongTailOp("grid_sample", "bilinear grid_sample", _grid_sample, 11),
    LongTailOp("layer_norm", "layer norm over rows of 256", _norm("layer_norm"), 8),
    LongTailOp("rms_norm", "RMS norm over rows of 256", _norm("rms_norm"), 5),
    LongTailOp("group_norm", "group norm, 2 groups", _norm("group_norm"), 8),
    LongTailOp("batch_norm", "batch norm, training statistics", _norm("batch_norm"), 8),
    LongTailOp("instance_norm", "instance norm", _norm("instance_norm"), 8),
    LongTailOp("softmax", "softmax over rows", _two_d(lambda x: F.softmax(x, dim=-1)), 5),
    LongTailOp("log_softmax", "log_softmax over rows",
               _two_d(lambda x: F.log_softmax(x, dim=-1)), 5),
    LongTailOp("logsumexp", "logsumexp over rows", _two_d(lambda x: x.logsumexp(dim=-1)), 4),
    LongTailOp("gelu", "GELU (erf)", _two_d(F.gelu), 8),
    LongTailOp("gelu_tanh", "GELU (tanh approximation)",
               _two_d(lambda x: F.gelu(x, approximate="tanh")), 9),
    LongTailOp("silu", "SiLU", _two_d(F.silu), 4),
    LongTailOp("mish", "Mish", _two_d(F.mish), 6),
    LongTailOp("hardswish", "hard swish", _two_d(F.hardswish), 4),
    LongTailOp("leaky_relu", "leaky ReLU", _two_d(F.leaky_relu), 2),
    LongTailOp("softplus", "softplus", _two_d(F.softplus), 4),
    LongTailOp("erf", "erf", _two_d(torch.erf), 1),
    LongTailOp("exp", "exp", _two_d(torch.exp), 1),
    LongTailOp("log1p", "log1p", _two_d(torch.log1p, low=0.0, high=2.0), 1),
    LongTailOp("pow", "x ** 1.5", _two_d(lambda x: x.pow(1.5), low=0.1, high=2.0), 1),
    LongTailOp("clamp", "clamp to [-0.5, 0.5]", _two_d(lambda x: x.clamp(-0.5, 0.5)), 2),
    LongTailOp("conv_transpose2d", "transposed convolution, stride 2", _conv_transpose, 32),
    LongTailOp("conv_transpose1d", "1-D transposed convolution", _conv_transpose1d, 48),
    LongTailOp("avg_pool2d", "3x3 average pooling, stride 2",
               _pool(lambda x: F.avg_pool2d(x, 3, 2, 1)), 9),
    LongTailOp("max_pool2d", "3x3 max pooling, stride 2",
               _pool(lambda x: F.max_pool2d(x, 3, 2, 1)), 9),
    LongTailOp("adaptive_avg_pool2d", "adaptive average pooling to 7x7",
               _pool(lambda x: F.adaptive_avg_pool2d(x, 7)), 1),
    LongTailOp("adaptive_max_pool2d", "adaptive max pooling to 7x7",
               _pool(lambda x: F.adaptive_max_pool2d(x, 7)), 1),
    LongTailOp("cross_entropy", "cross entropy with label smoothing", _cross_entropy, 6),
    LongTailOp("one_hot", "one-hot encoding", _one_hot),
    LongTailOp("pad_reflect", "reflection padding of 2",
               _pool(lambda x: F.pad(x, (2, 2, 2, 2), mode="reflect"))),
    LongTailOp("roll", "roll along rows", _two_d(lambda x: x.roll(3, dims=1))),
    LongTailOp("flip", "flip rows", _two_d(lambda x: x.flip(1))),
    LongTailOp("triu", "upper triangle", _two_d(lambda x: x.triu())),
    LongTailOp("cat", "concatenate two tensors", _cat),
    LongTailOp("transpose_copy", "transpose made contiguous",
               _two_d(lambda x: x.t().contiguous())),
    LongTailOp("repeat_interleave", "repeat each row twice", _repeat_interleave),
    LongTailOp("searchsorted", "bucket into 64 sorted edges", _searchsorted, 6),
    LongTailOp("pixel_shuffle", "pixel shuffle by 2", _pixel_shuffle),
    LongTailOp("unfold", "im2col of 3x3 patches", _unfold),
    LongTailOp("vector_norm", "L2 norm of each row",
               _two_d(lambda x: torch.linalg.vector_norm(x, dim=1)), 2),
    LongTailOp("sdpa_bool_mask", "attention with a boolean mask", _sdpa_masked, timed=False),
    LongTailOp("int8_mm", "int8 x int8 -> int32 matrix product", _int8_mm, timed=False),
)
BY_NAME = {op.name: op for op in LONG_TAIL}


def case_bytes(case: LongTailCase, output: Any) -> int:
    """Compulsory traffic: every input and output tensor read or written once."""
    from bench.function.args import flat_tensors

    return sum(t.numel() * t.element_size() for t in (*flat_tensors(list(case.inputs)),
                                                      *flat_tensors(output)))


def nominal_flop(op: LongTailOp, case: LongTailCase, output: Any) -> float:
    """``flop_per_element`` x the larger of the biggest floating-point input and the
    floating-point output (see the module docstring)."""
    from bench.function.args import flat_tensors

    inputs = [t.numel() for t in flat_tensors(list(case.inputs)) if t.is_floating_point()]
    outputs = sum(t.numel() for t in flat_tensors(output) if t.is_floating_point())
    return op.flop_per_element * max(max(inputs, default=0), outputs)
