"""Is the device's result right? Tolerances per dtype, comparison of outputs, result classes.

Reference: the same call on the CPU in float64, rounded to the device output's dtype (the
correctly rounded answer; an fp16 overflow to inf is then the right answer too). Element ``i``
passes when

    |device_i - reference_i| <= rtol * |reference_i| + atol * S

with ``S`` the output's scale: the 99th percentile of |reference| (at least ``SCALE_FLOOR``),
so an error is judged against the magnitudes the output holds (a sum that cancels to ~0 is
judged against its terms' size, and a few huge masked values do not set the scale).
``rtol`` and ``atol`` are multiples of the dtype's machine epsilon (``TOLERANCES``): a
correctly rounded element-wise result is within 1 eps; reductions (matrix products,
convolutions, norms, softmax) accumulate rounding errors that grow with their length, which
the multiple covers. NaN and infinity must be where the reference has them. Integer and
boolean results must be equal.

Classes of a case (one operator, one dtype, one pass): ``pass``; ``wrong`` (ran, numbers off:
the largest absolute and relative errors and the error over the tolerance are kept);
``unsupported`` (raised); ``cpu_fallback`` (right, but the vendor's build ran it on the host:
its warning was caught); ``crash`` (the process died or hung: isolated, the other cases
still run). ``skipped``: the case cannot be judged here (the reference itself failed).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import torch

CLASSES = ("pass", "wrong", "unsupported", "cpu_fallback", "crash", "skipped")
SCALE_FLOOR = 1e-3
# (rtol, atol) in units of each dtype's machine epsilon.
EPS_MULTIPLES: dict[str, tuple[float, float]] = {
    "fp32": (256.0, 256.0),
    "fp16": (8.0, 8.0),
    "bf16": (4.0, 4.0),
}
# Operators whose result jumps where an input crosses a cell boundary, with the factor their
# tolerance is widened by and why. The sample position of grid_sample is computed in the
# input's dtype, so in fp16 a position next to a boundary may land in the neighbouring cell,
# and the gradient with respect to the grid (constant within a cell) jumps with it.
DISCONTINUOUS: dict[str, tuple[float, str]] = {
    "grid_sampler_2d": (64.0, "gradient of the grid is piecewise constant in the position"),
    "grid_sampler_2d_backward": (64.0, "gradient of the grid is piecewise constant in the "
                                       "position"),
}
EPS = {"fp32": torch.finfo(torch.float32).eps, "fp16": torch.finfo(torch.float16).eps,
       "bf16": torch.finfo(torch.bfloat16).eps, "fp64": torch.finfo(torch.float64).eps}


def tolerance(key: str, factor: float = 1.0) -> tuple[float, float]:
    """(rtol, atol) of a dtype key (fp32, fp16, bf16); float64 results use fp32's."""
    k = key if key in EPS_MULTIPLES else "fp32"
    r, a = EPS_MULTIPLES[k]
    return r * EPS[k] * factor, a * EPS[k] * factor


def tolerances_info() -> dict[str, dict[str, float]]:
    """The tolerances as recorded in a result (so a verdict can be re-derived)."""
    out = {}
    for key in EPS_MULTIPLES:
        rtol, atol = tolerance(key)
        out[key] = {"rtol": rtol, "atol": atol, "eps": EPS[key],
                    "rtol_eps": EPS_MULTIPLES[key][0], "atol_eps": EPS_MULTIPLES[key][1]}
    out["scale"] = {"quantile": 0.99, "floor": SCALE_FLOOR}
    out["widened"] = {op: {"factor": f, "why": why} for op, (f, why) in DISCONTINUOUS.items()}
    return out


def dtype_key(dtype: torch.dtype) -> str:
    return {torch.float16: "fp16", torch.bfloat16: "bf16", torch.float32: "fp32",
            torch.float64: "fp64"}.get(dtype, "fp32")


@dataclass
class Comparison:
    """The outcome of comparing one pass's outputs."""

    ok: bool
    max_abs_err: float | None = None
    max_rel_err: float | None = None
    err_over_tol: float | None = None  # worst element's error / its allowed error
    problems: list[str] = field(default_factory=list)

    def merge(self, other: Comparison) -> None:
        self.ok = self.ok and other.ok
        self.max_abs_err = _max(self.max_abs_err, other.max_abs_err)
        self.max_rel_err = _max(self.max_rel_err, other.max_rel_err)
        self.err_over_tol = _max(self.err_over_tol, other.err_over_tol)
        self.problems += other.problems


def _max(a: float | None, b: float | None) -> float | None:
    if a is None:
        return b
    return a if b is None else max(a, b)


def output_scale(ref: torch.Tensor) -> float:
    """The 99th percentile of |ref| over finite elements, at least ``SCALE_FLOOR``."""
    values = ref.abs()[torch.isfinite(ref)].reshape(-1)
    if values.numel() == 0:
        return SCALE_FLOOR
    k = max(1, math.ceil(0.99 * values.numel()))
    return max(float(values.kthvalue(k).values), SCALE_FLOOR)


def compare_tensor(dev: torch.Tensor, ref: torch.Tensor, key: str, where: str = "output",
                   factor: float = 1.0) -> Comparison:
    """Compare one device tensor (on the CPU already) with its reference."""
    if tuple(dev.shape) != tuple(ref.shape):
        return Comparison(False, problems=[f"{where}: shape {list(dev.shape)}, reference "
                                           f"{list(ref.shape)}"])
    if not (dev.is_floating_point() or dev.is_complex()):
        if ref.is_floating_point():
            ref = ref.to(dev.dtype)
        diff = (dev != ref.to(dev.dtype))
        bad = int(diff.sum())
        if bad:
            return Comparison(False, 0.0, None, None, [f"{where}: {bad} of {dev.numel()} "
                                                       "integer elements differ"])
        return Comparison(True, 0.0, 0.0, 0.0)
    if dev.numel() == 0:
        return Comparison(True, 0.0, 0.0, 0.0)
    rounded = ref.to(dev.dtype).to(torch.float64)
    d = dev.to(torch.float64)
    problems = []
    nan_d, nan_r = torch.isnan(d), torch.isnan(rounded)
    inf_d, inf_r = torch.isinf(d), torch.isinf(rounded)
    mismatch = int((nan_d != nan_r).sum()) + int((inf_d != inf_r).sum()) + int(
        ((inf_d & inf_r) & (d.sign() != rounded.sign())).sum())
    if mismatch:
        problems.append(f"{where}: {mismatch} element(s) NaN or infinite on one side only")
    finite = torch.isfinite(d) & torch.isfinite(rounded)
    rtol, atol = tolerance(key, factor)
    scale = output_scale(rounded)
    err = (d - rounded).abs()[finite]
    mag = rounded.abs()[finite]
    if err.numel() == 0:
        return Comparison(not problems, 0.0, 0.0, 0.0, problems)
    allowed = rtol * mag + atol * scale
    ratio = float((err / allowed).max())
    max_abs = float(err.max())
    nonzero = mag > 0
    max_rel = float((err[nonzero] / mag[nonzero]).max()) if nonzero.any() else None
    if ratio > 1.0:
        problems.append(f"{where}: error {max_abs:.3g} (relative {max_rel or 0:.3g}) is "
                        f"{ratio:.3g}x the {key} tolerance")
    return Comparison(not problems, max_abs, max_rel, ratio, problems)


def leaves(value: Any) -> list[Any]:
    if isinstance(value, list | tuple):
        return [x for v in value for x in leaves(v)]
    return [value]


def compare_outputs(dev: Any, ref: Any, key: str, where: str = "output",
                    factor: float = 1.0) -> Comparison:
    """Compare every leaf (tensor, number, bool, None) of two output trees."""
    dl, rl = leaves(dev), leaves(ref)
    if len(dl) != len(rl):
        return Comparison(False, problems=[f"{where}: {len(dl)} outputs, reference {len(rl)}"])
    result = Comparison(True)
    for i, (d, r) in enumerate(zip(dl, rl, strict=True)):
        name = where if len(dl) == 1 else f"{where} {i}"
        if isinstance(d, torch.Tensor) and isinstance(r, torch.Tensor):
            result.merge(compare_tensor(d, r, key, name, factor))
        elif isinstance(d, torch.Tensor) or isinstance(r, torch.Tensor):
            result.merge(Comparison(False, problems=[f"{name}: a tensor on one side only"]))
        elif isinstance(d, float) or isinstance(r, float):
            result.merge(compare_tensor(torch.tensor([float(d)], dtype=torch.float64),
                                        torch.tensor([float(r)], dtype=torch.float64), "fp32",
                                        name))
        elif d != r:
            result.merge(Comparison(False, problems=[f"{name}: {d!r}, reference {r!r}"]))
    return result


# -- operators whose results legitimately differ between correct devices ---------------------
# Random operators (and uninitialised memory): shape and dtype only.
RANDOM_PACKETS = frozenset({
    "empty", "empty_like", "empty_strided", "new_empty", "new_empty_strided", "normal",
    "normal_", "uniform_", "bernoulli", "bernoulli_", "rand", "rand_like", "randn",
    "randn_like", "randint", "randint_like", "randperm", "multinomial", "dropout",
    "native_dropout", "feature_dropout", "alpha_dropout", "_fused_dropout", "exponential_",
    "geometric_", "cauchy_", "log_normal_", "random_", "rrelu_with_noise", "set_",
    "resize_", "resize_as_"})


@dataclass(frozen=True)
class IndexRule:
    """An operator returning the positions of selected values, where equal values (ties)
    may be picked in any order: (input position, dim argument position and default, the
    output holding values (None: indices only) and the one holding indices)."""

    dim_pos: int | None
    dim_default: int | None
    values_out: int | None
    indices_out: int
    spatial: bool = False  # pooling: indices into the flattened spatial dimensions


INDEX_RULES: dict[str, IndexRule] = {
    "sort": IndexRule(1, -1, 0, 1),
    "topk": IndexRule(2, -1, 0, 1),
    "kthvalue": IndexRule(2, -1, 0, 1),
    "max": IndexRule(1, None, 0, 1),
    "min": IndexRule(1, None, 0, 1),
    "median": IndexRule(1, None, 0, 1),
    "mode": IndexRule(1, -1, 0, 1),
    "cummax": IndexRule(1, None, 0, 1),
    "cummin": IndexRule(1, None, 0, 1),
    "argmax": IndexRule(1, None, None, 0),
    "argmin": IndexRule(1, None, None, 0),
    "argsort": IndexRule(1, -1, None, 0),
    "max_pool2d_with_indices": IndexRule(None, None, 0, 1, spatial=True),
    "max_pool3d_with_indices": IndexRule(None, None, 0, 1, spatial=True),
    "adaptive_max_pool2d": IndexRule(None, None, 0, 1, spatial=True),
    "adaptive_max_pool3d": IndexRule(None, None, 0, 1, spatial=True),
}


def packet(op: str) -> str:
    return op.split(".")[1]


def widening(op: str) -> float:
    """The tolerance factor of ``op`` (1 unless it is ``DISCONTINUOUS``)."""
    return DISCONTINUOUS.get(packet(op), (1.0, ""))[0]


def compare_random(dev: Any, ref: Any) -> Comparison:
    """Random results: the same structure, shapes and dtype kinds; no values."""
    dl, rl = leaves(dev), leaves(ref)
    if len(dl) != len(rl):
        return Comparison(False, problems=[f"{len(dl)} outputs, reference {len(rl)}"])
    for d, r in zip(dl, rl, strict=True):
        if isinstance(d, torch.Tensor) and isinstance(r, torch.Tensor) and \
                tuple(d.shape) != tuple(r.shape):
            return Comparison(False, problems=[f"shape {list(d.shape)}, reference "
                                               f"{list(r.shape)}"])
    return Comparison(True, problems=[])


def _dim(rule: IndexRule, args: list[Any], kwargs: dict[str, Any]) -> int | None:
    if rule.dim_pos is not None and len(args) > rule.dim_pos and \
            isinstance(args[rule.dim_pos], int) and not isinstance(args[rule.dim_pos], bool):
        return args[rule.dim_pos]
    value = kwargs.get("dim", rule.dim_default)
    return value if isinstance(value, int) and not isinstance(value, bool) else rule.dim_default


def compare_indexed(op: str, dev: Any, ref: Any, dev_input: torch.Tensor,
                    args: list[Any], kwargs: dict[str, Any], key: str) -> Comparison | None:
    """Tie-tolerant comparison for ``INDEX_RULES`` operators (None: not such an operator).

    Values are compared as usual; the device's indices must point at the device's values in
    its own input (or, for argmax-like operators, at values equal to those the reference's
    indices point at)."""
    rule = INDEX_RULES.get(packet(op))
    outs_d, outs_r = leaves(dev), leaves(ref)
    if rule is None or len(outs_d) <= rule.indices_out or len(outs_d) != len(outs_r):
        return None
    idx_d, idx_r = outs_d[rule.indices_out], outs_r[rule.indices_out]
    if not (isinstance(idx_d, torch.Tensor) and isinstance(idx_r, torch.Tensor)) or \
            idx_d.is_floating_point() or tuple(idx_d.shape) != tuple(idx_r.shape):
        return None
    x = dev_input.to(torch.float64)
    result = Comparison(True)
    if rule.values_out is not None:
        result.merge(compare_tensor(outs_d[rule.values_out], outs_r[rule.values_out], key,
                                    "values"))
        values = outs_d[rule.values_out].to(torch.float64)
        if rule.spatial:
            picked = x.flatten(-2).gather(-1, idx_d.flatten(-2).long()).view_as(values) \
                if x.dim() == idx_d.dim() else None
        else:
            dim = _dim(rule, args, kwargs)
            picked = _gather(x, dim, idx_d.long(), values.dim())
        if picked is None:
            return None
        same = (picked == values) | (torch.isnan(picked) & torch.isnan(values))
        if not bool(same.all()):
            result.merge(Comparison(False, problems=[
                f"indices: {int((~same).sum())} index(es) do not point at the returned "
                "values"]))
        return result
    dim = _dim(rule, args, kwargs)
    picked_d = _gather(x, dim, idx_d.long(), idx_d.dim())
    picked_r = _gather(x, dim, idx_r.long(), idx_r.dim())
    if picked_d is None or picked_r is None:
        return None
    same = (picked_d == picked_r) | (torch.isnan(picked_d) & torch.isnan(picked_r))
    if not bool(same.all()):
        result.merge(Comparison(False, problems=[
            f"indices: {int((~same).sum())} index(es) select other values than the "
            "reference's"]))
    return result


def _gather(x: torch.Tensor, dim: int | None, idx: torch.Tensor, out_dim: int
            ) -> torch.Tensor | None:
    """x's values at ``idx`` along ``dim`` (flattened when dim is None)."""
    try:
        if dim is None:
            return x.reshape(-1)[idx.reshape(-1)].view(idx.shape)
        if idx.dim() == x.dim():
            return x.gather(dim, idx)
        if idx.dim() == x.dim() - 1:  # keepdim=False reductions
            return x.gather(dim, idx.unsqueeze(dim)).squeeze(dim)
    except (RuntimeError, IndexError):
        return None
    return None
