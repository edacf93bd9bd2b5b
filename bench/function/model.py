"""Model function: a model workload's outputs (and one training step's gradients) on the device
against the CPU reference with the same weights and the same inputs (docs/function.md).

The reference is the workload's own model object run on the CPU in float64 through
``torch.func.functional_call`` with a float64 copy of its parameters and buffers: the same
code and weights, nothing rebuilt, and the device model is left untouched (its gradients are
taken with ``torch.autograd.grad``, not accumulated). Each model workload says what to compare
through ``Workload.function_probe`` (``ModelProbe``): a slice of its synthetic batch, its
outputs by name (logits, a detector's head outputs, a U-Net's masks, a diffusion model's noise
prediction), which outputs carry a decision (top-1 over a dimension), a greedy decoding for
generative models and the training loss.

Verdict (``pass``/``fail``): every output within the norm-wise tolerance of the precision
(``NORM_TOLERANCE``: ||device - reference|| / ||reference||), every *decisive* top-1 decision
the same (decisive: the reference's top-1 leads the runner-up by more than the tolerance
allows an element to move, ``tolerance x RMS`` of the output; closer calls are near ties and
counted apart), greedy tokens equal up to the requested number or until a near tie, and the
gradients of all parameters together within the tolerance. ``not_checked`` says why a check
could not run here (e.g. a float64 copy of the model does not fit in host memory; then float32
is tried first), ``error`` that the device failed while checking.
"""

from __future__ import annotations

import contextlib
import math
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from bench.documents import ModelCheck, OutputAgreement, TokenAgreement

# ||device - reference|| / ||reference|| allowed per precision the workload ran in.
NORM_TOLERANCE: dict[str, float] = {"fp32": 1e-3, "tf32": 1e-2, "fp16": 3e-2, "bf16": 1e-1,
                                    "int8": 1e-1}
CHECK_BATCH = 2
GREEDY_TOKENS = 8
HOST_MEMORY_SHARE = 0.5  # a reference copy may use at most this share of available memory
# Gradients beyond the tolerance still pass within this multiple of the error the CPU's own
# float32 computation makes against the float64 reference (the problem's conditioning).
CONDITIONING_FACTOR = 4.0


@dataclass
class ModelProbe:
    """What a workload offers the model-function check (see the module docstring).

    ``forward(module, inputs)`` returns named output tensors; ``decisions`` maps an output
    name to the dimension its top-1 is taken over; ``generate(module, inputs, n)`` returns n
    greedily decoded tokens per row and their margins (``greedy_decode``);
    ``loss(module, inputs)`` is the training objective. ``module`` holds every parameter the
    outputs depend on."""

    module: nn.Module
    inputs: dict[str, Any]
    forward: Callable[[nn.Module, dict[str, Any]], dict[str, torch.Tensor]] | None = None
    decisions: dict[str, int] = field(default_factory=dict)
    generate: Callable[[nn.Module, dict[str, Any], int],
                       tuple[torch.Tensor, torch.Tensor]] | None = None
    loss: Callable[[nn.Module, dict[str, Any]], torch.Tensor] | None = None
    autocast: Callable[[], Any] = contextlib.nullcontext
    notes: list[str] = field(default_factory=list)


def batch_slice(value: Any, n: int = CHECK_BATCH) -> Any:
    """The first ``n`` rows of every tensor (dicts and lists walked)."""
    if isinstance(value, torch.Tensor):
        return value[:n] if value.dim() else value
    if isinstance(value, dict):
        return {k: batch_slice(v, n) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return type(value)(batch_slice(v, n) for v in value)
    return value


def to_reference(value: Any, dtype: torch.dtype) -> Any:
    """Tensors to the CPU; floating-point ones to the reference dtype."""
    if isinstance(value, torch.Tensor):
        t = value.detach().to("cpu")
        return t.to(dtype) if t.is_floating_point() else t
    if isinstance(value, dict):
        return {k: to_reference(v, dtype) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return type(value)(to_reference(v, dtype) for v in value)
    return value


# -- pure arithmetic (tested against hand-worked numbers) ------------------------------------
def norm_rel_err(dev: torch.Tensor, ref: torch.Tensor) -> float:
    """||dev - ref|| / ||ref|| (the absolute norm when the reference is all zero)."""
    d, r = dev.double().reshape(-1), ref.double().reshape(-1)
    denom = float(r.norm())
    diff = float((d - r).norm())
    return diff / denom if denom > 0 else diff


def decisions(dev: torch.Tensor, ref: torch.Tensor, dim: int, threshold: float
              ) -> dict[str, float]:
    """Top-1 agreement over ``dim``: all positions, decisive ones (reference margin above
    ``threshold``) and the decisive ones that disagree."""
    d, r = dev.double(), ref.double()
    top2 = r.topk(2, dim=dim).values if r.shape[dim] > 1 else None
    agree = d.argmax(dim) == r.argmax(dim)
    if top2 is None:
        decisive = torch.ones_like(agree)
    else:
        margin = top2.select(dim, 0) - top2.select(dim, 1)
        decisive = margin > threshold
    total = agree.numel()
    return {"positions": total, "agreement_pct": 100.0 * float(agree.float().mean()),
            "decisive": int(decisive.sum()),
            "decisive_disagreements": int((decisive & ~agree).sum())}


def greedy_agreement(dev_tokens: torch.Tensor, ref_tokens: torch.Tensor,
                     ref_margins: torch.Tensor, threshold: float) -> TokenAgreement:
    """Tokens equal in every row before the first divergence; a divergence at a step where
    the reference's top-1 margin (relative to the logits' RMS, ``greedy_decode``) is at most
    ``threshold`` is a near tie (excused)."""
    steps = ref_tokens.shape[1]
    same = (dev_tokens == ref_tokens).all(dim=0)
    diverged = next((i for i in range(steps) if not bool(same[i])), None)
    near_tie = diverged is not None and float(ref_margins[:, diverged].min()) <= threshold
    return {"requested": steps, "agreeing": steps if diverged is None else diverged,
            "diverged_at": diverged, "near_tie": near_tie}


def allowed_error(tol: float, cpu_float32_err: float | None) -> float:
    """The gradient error a device may make: the precision's tolerance, or
    ``CONDITIONING_FACTOR`` x the CPU's own float32 error where the problem is so
    ill-conditioned that the CPU's float32 arithmetic misses the tolerance (a BatchNorm after a
    convolution cancels sums in its backward pass: U-Net's fp32 gradients are 5e-3 off)."""
    if cpu_float32_err is None:
        return tol
    return max(tol, CONDITIONING_FACTOR * cpu_float32_err)


def gradient_errors(per_param: list[tuple[str, float, float]]) -> tuple[float, tuple[float, str]]:
    """From (name, ||g_dev - g_ref||^2, ||g_ref||^2) per parameter: the norm-wise error of all
    gradients together, and the worst parameter's own (among parameters whose reference
    gradient is not negligible: at least 1e-6 of the total norm)."""
    diffs = sum(d for _n, d, _r in per_param)
    refs = sum(r for _n, _d, r in per_param)
    total = math.sqrt(diffs / refs) if refs > 0 else math.sqrt(diffs)
    worst = (0.0, "")
    for name, d, r in per_param:
        if r > 0 and r >= 1e-12 * refs and math.sqrt(d / r) > worst[0]:
            worst = (math.sqrt(d / r), name)
    return total, worst


# -- the check ---------------------------------------------------------------------------------
@contextlib.contextmanager
def deterministic(module: nn.Module) -> Iterator[None]:
    """Dropout off for the check (the device's and the CPU's random masks differ); every
    other training behaviour (batch statistics) stays. Restored afterwards."""
    saved: list[tuple[Any, str, Any]] = []
    for m in module.modules():
        if isinstance(m, nn.modules.dropout._DropoutNd):
            saved.append((m, "p", m.p))
            m.p = 0.0
        for attr in ("dropout", "attention_dropout", "dropout_prob", "hidden_dropout"):
            value = getattr(m, attr, None)
            if isinstance(value, float) and value > 0:
                saved.append((m, attr, value))
                setattr(m, attr, 0.0)
    try:
        yield
    finally:
        for m, attr, value in saved:
            setattr(m, attr, value)


def reference_dtype(module: nn.Module, available_bytes: int | None, train: bool = False
                    ) -> tuple[torch.dtype | None, str | None]:
    """float64 if a copy fits in the host memory share, else float32, else None (why).

    A copy counts its weights once more for inference (activations), three times for
    training (gradients and activations)."""
    numel = sum(t.numel() for t in (*module.parameters(), *module.buffers()))
    if available_bytes is None:
        return torch.float64, None
    budget = available_bytes * HOST_MEMORY_SHARE
    factor = 3 if train else 2
    for dtype, size in ((torch.float64, 8), (torch.float32, 4)):
        if numel * size * factor <= budget:
            note = None if dtype == torch.float64 else (
                "reference in float32: a float64 copy does not fit in host memory")
            return dtype, note
    return None, (f"a float32 copy of {numel:,} parameters does not fit in "
                  f"{HOST_MEMORY_SHARE:.0%} of the host's available memory")


def _host_available() -> int | None:
    try:
        import psutil

        return int(psutil.virtual_memory().available)
    except Exception:
        return None


def _state(module: nn.Module, dtype: torch.dtype, grad: bool) -> dict[str, torch.Tensor]:
    """A CPU copy of the parameters and buffers, floating ones in ``dtype`` (parameters that
    require grad requiring it too when ``grad``)."""
    state = {}
    params = {name for name, p in module.named_parameters() if p.requires_grad}
    for name, t in (*module.named_parameters(), *module.named_buffers()):
        copy = t.detach().to("cpu")
        if copy.is_floating_point():
            copy = copy.to(dtype)
            if grad and name in params:
                copy.requires_grad_(True)
        state[name] = copy
    return state


def _stateless(module: nn.Module, state: dict[str, torch.Tensor]) -> Any:
    """A context in which ``module`` computes with ``state`` instead of its own tensors."""
    from torch.nn.utils.stateless import _reparametrize_module

    return _reparametrize_module(module, state, tie_weights=True, strict=False)


def check_model(probe: ModelProbe, workload: str, mode: str, precision: str,
                synchronize: Callable[[], None] = lambda: None,
                is_oom: Callable[[BaseException], bool] = lambda e: False) -> ModelCheck:
    """The model-function record (``function`` of a result): verdict, numbers, reference."""
    started = time.monotonic()
    tol = NORM_TOLERANCE.get(precision, NORM_TOLERANCE["fp32"])
    record: ModelCheck = {"kind": "model", "workload": workload, "mode": mode,
                              "precision": precision, "tolerance": {"norm_rel": tol},
                              "inputs": {k: list(v.shape) for k, v in probe.inputs.items()
                                         if isinstance(v, torch.Tensor)}}
    if probe.notes:
        record["notes"] = list(probe.notes)
    dtype, why = reference_dtype(probe.module, _host_available(), train=mode == "train")
    if dtype is None:
        return {**record, "status": "not_checked", "reason": why}
    record["reference"] = {"device": "cpu", "dtype": str(dtype).removeprefix("torch.")}
    if why:
        record["reference"]["note"] = why
    problems: list[str] = []
    try:
        with deterministic(probe.module):
            if mode == "train":
                _check_train(probe, dtype, tol, record, problems, synchronize)
            else:
                _check_infer(probe, dtype, tol, record, problems, synchronize)
    except Exception as exc:
        if is_oom(exc):
            return {**record, "status": "not_checked",
                    "reason": f"out of memory while checking: {str(exc).splitlines()[0]}"}
        return {**record, "status": "error",
                "reason": f"{type(exc).__name__}: {(str(exc).strip().splitlines() or [''])[0]}"}
    record["status"] = "fail" if problems else "pass"
    if problems:
        record["reason"] = "; ".join(problems)
    record["seconds"] = time.monotonic() - started
    return record


def workload_check(workload: Any) -> ModelCheck | None:
    """The check of a built (and measured) workload, or None if it has no model."""
    backend = workload.ctx.backend
    try:
        probe = workload.function_probe()
    except Exception as exc:
        return {"kind": "model", "workload": workload.name, "mode": workload.ctx.mode,
                "precision": workload.precision_used, "status": "error",
                "tolerance": {"norm_rel": NORM_TOLERANCE.get(workload.precision_used, 1e-3)},
                "reason": f"the inputs for the check could not be made: "
                          f"{type(exc).__name__}: {exc}"[:500]}
    if probe is None:
        return None
    return check_model(probe, workload.name, workload.ctx.mode, workload.precision_used,
                       backend.synchronize, backend.is_oom)


def _outputs_record(dev: dict[str, torch.Tensor], ref: dict[str, torch.Tensor],
                    probe: ModelProbe, tol: float, problems: list[str]
                    ) -> dict[str, OutputAgreement]:
    out = {}
    for name, r in ref.items():
        d = dev[name].detach().to("cpu").double()
        r = r.detach().double()
        if tuple(d.shape) != tuple(r.shape):
            problems.append(f"{name}: shape {list(d.shape)}, reference {list(r.shape)}")
            continue
        finite = torch.isfinite(d) & torch.isfinite(r)
        err = (d - r).abs()
        entry: OutputAgreement = {
            "norm_rel_err": norm_rel_err(torch.where(finite, d, 0.0), torch.where(finite, r, 0.0)),
            "max_abs_err": float(err[finite].max()) if finite.any() else None,
            "nonfinite_mismatch": int((torch.isfinite(d) != torch.isfinite(r)).sum()),
        }
        if entry["norm_rel_err"] > tol:
            problems.append(f"{name}: norm-wise error {entry['norm_rel_err']:.3g} > {tol:g}")
        if entry["nonfinite_mismatch"]:
            problems.append(f"{name}: {entry['nonfinite_mismatch']} element(s) NaN or infinite "
                            "on one side only")
        if name in probe.decisions:
            rms = float(r.pow(2).mean().sqrt())
            dec = decisions(d, r, probe.decisions[name], tol * rms)
            entry.update(dec)
            if dec["decisive_disagreements"]:
                problems.append(f"{name}: {dec['decisive_disagreements']} of "
                                f"{dec['decisive']} decisive top-1 decisions differ")
        out[name] = entry
    return out


def _check_infer(probe: ModelProbe, dtype: torch.dtype, tol: float, record: ModelCheck,
                 problems: list[str], synchronize: Callable[[], None]) -> None:
    module = probe.module
    state = _state(module, dtype, grad=False)
    ref_inputs = to_reference(probe.inputs, dtype)
    if probe.forward is not None:
        with torch.no_grad(), probe.autocast():
            dev = {k: v.float() for k, v in probe.forward(module, probe.inputs).items()}
        synchronize()
        with torch.no_grad(), _stateless(module, state):
            ref = probe.forward(module, ref_inputs)
        record["outputs"] = _outputs_record(dev, ref, probe, tol, problems)
    if probe.generate is not None:
        n = GREEDY_TOKENS
        with torch.no_grad(), probe.autocast():
            dev_tokens, _ = probe.generate(module, probe.inputs, n)
        synchronize()
        with torch.no_grad(), _stateless(module, state):
            ref_tokens, ref_margins = probe.generate(module, ref_inputs, n)
        tokens = greedy_agreement(dev_tokens.cpu(), ref_tokens.cpu(), ref_margins.cpu(), tol)
        record["tokens"] = tokens
        if tokens["diverged_at"] is not None and not tokens["near_tie"]:
            problems.append(f"greedy tokens diverge at step {tokens['diverged_at']} of {n}, "
                            "where the reference's choice was decisive")


def greedy_decode(logits_of: Callable[[torch.Tensor], torch.Tensor], ids: torch.Tensor,
                  n: int) -> tuple[torch.Tensor, torch.Tensor]:
    """``n`` greedy tokens per row, each step a full forward pass of the sequence so far;
    with each step's top-1 margin over the RMS of that step's logits (the near-tie measure)."""
    tokens, margins = [], []
    for _ in range(n):
        logits = logits_of(ids)[:, -1].double()
        top2 = logits.topk(2, dim=-1).values
        rms = logits.pow(2).mean(-1).sqrt().clamp_min(1e-30)
        margins.append((top2[:, 0] - top2[:, 1]) / rms)
        nxt = logits.argmax(-1)
        tokens.append(nxt)
        ids = torch.cat([ids, nxt.to(ids.device, ids.dtype).unsqueeze(1)], 1)
    return torch.stack(tokens, 1), torch.stack(margins, 1)


def _check_train(probe: ModelProbe, dtype: torch.dtype, tol: float, record: ModelCheck,
                 problems: list[str], synchronize: Callable[[], None]) -> None:
    assert probe.loss is not None
    module = probe.module
    names = [n for n, p in module.named_parameters() if p.requires_grad]
    params = [p for _n, p in module.named_parameters() if p.requires_grad]
    with probe.autocast():
        loss = probe.loss(module, probe.inputs)
    dev_grads = torch.autograd.grad(loss, params, allow_unused=True)
    synchronize()
    state = _state(module, dtype, grad=True)
    ref_inputs = to_reference(probe.inputs, dtype)
    with _stateless(module, state):
        ref_loss = probe.loss(module, ref_inputs)
        ref_params = [state[n] for n in names]
        ref_grads = torch.autograd.grad(ref_loss, ref_params, allow_unused=True)
    d_loss, r_loss = float(loss.detach().double()), float(ref_loss.detach().double())
    loss_err = abs(d_loss - r_loss) / max(abs(r_loss), 1e-12)
    record["loss"] = {"device": d_loss, "reference": r_loss, "rel_err": loss_err}
    if not math.isfinite(d_loss) or loss_err > tol:
        problems.append(f"loss {d_loss:.6g}, reference {r_loss:.6g} (relative error "
                        f"{loss_err:.3g} > {tol:g})")
    per_param = _grad_diffs(names, dev_grads, ref_grads, params, problems)
    total, worst = gradient_errors(per_param)
    record["gradients"] = {"parameters": len(names), "norm_rel_err": total,
                           "worst_parameter": worst[1], "worst_norm_rel_err": worst[0]}
    allowed = tol
    if total > tol and dtype == torch.float64:
        # How far float32 arithmetic on the CPU lands: the problem's conditioning.
        state32 = _state(module, torch.float32, grad=True)
        with _stateless(module, state32):
            loss32 = probe.loss(module, to_reference(probe.inputs, torch.float32))
            grads32 = torch.autograd.grad(loss32, [state32[n] for n in names],
                                          allow_unused=True)
        cpu_err, _ = gradient_errors(_grad_diffs(names, grads32, ref_grads, params, []))
        allowed = allowed_error(tol, cpu_err)
        record["gradients"].update(cpu_float32_norm_rel_err=cpu_err, allowed=allowed)
    if total > allowed:
        why = f"{tol:g}" if allowed == tol else \
            f"{allowed:.3g} ({CONDITIONING_FACTOR:g}x the CPU's own float32 error)"
        problems.append(f"gradients: norm-wise error {total:.3g} > {why} (worst "
                        f"{worst[1]}: {worst[0]:.3g})")


def _grad_diffs(names: list[str], grads: Any, ref_grads: Any, params: list[torch.Tensor],
                problems: list[str]) -> list[tuple[str, float, float]]:
    """(name, ||g - g_ref||^2, ||g_ref||^2) per parameter (a missing gradient is zero); a
    gradient that is not finite is a problem and left out."""
    per_param = []
    for name, g, r, p in zip(names, grads, ref_grads, params, strict=True):
        gd = torch.zeros(p.shape, dtype=torch.float64) if g is None else \
            g.detach().to("cpu").double()
        gr = torch.zeros(p.shape, dtype=torch.float64) if r is None else r.detach().double()
        if not bool(torch.isfinite(gd).all()):
            problems.append(f"gradient of {name}: not finite on the device")
            continue
        per_param.append((name, float((gd - gr).norm()) ** 2, float(gr.norm()) ** 2))
    return per_param
