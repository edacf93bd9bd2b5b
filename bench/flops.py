"""The work of one item: FLOPs (and, where a workload is memory-bound, bytes moved), counted
once per result at the workload's configured shape, and what a throughput makes of it.

Why: a throughput alone cannot be judged; a throughput times the FLOPs of one item is a
FLOP/s that the spec sheet's peak bounds. So every model workload records ``flop_per_item``
and, from the throughput of each repeat, the achieved ``flop_per_s`` and ``mfu_pct`` (model
FLOPs utilisation: achieved / the spec sheet's peak at the precision used). The report's
plausibility checks bound published and measured throughputs by the same figures.

How it is counted: ``torch.utils.flop_counter.FlopCounterMode`` over one batch of the
workload (forward for inference; forward and backward for training), run on PyTorch's
``meta`` device. Meta tensors carry shapes but no data, so the count costs no device memory
and no device time, is the same on every vendor (a fused vendor kernel such as cuDNN's LSTM
would hide its FLOPs from the counter on the device itself), and can be made for a published
table's row too (``invoke import``). Counted are the matrix products and convolutions (a
multiply-add is 2 FLOP, as in the spec sheets' peaks); element-wise work is not, so the count
is a lower bound of the arithmetic a device must do, which is what a physical bound needs.
Training counts the model's forward and backward; the optimizer step and the loss's own
arithmetic are not matrix work and are not counted.

A workload that knows its figure better (an LLM training step: 6N plus the attention term)
reports ``flop_per_item`` itself; the runner then uses that figure and counts nothing.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from bench.micro.peaks import DevicePeaks
from bench.results import Metric, metric, repeat_metric

FLOP_METRICS = ("flop_per_item", "flop_per_s", "mfu_pct")


@dataclass(frozen=True)
class WorkProbe:
    """One batch of a workload at its configured shape, built under ``torch.device("meta")``.

    ``run`` does the batch's forward and returns the output (inference) or the loss
    (training; its backward is counted too). ``repeated``: further stages, each counted once
    and multiplied by its count (a diffusion model's denoiser runs once per step).
    ``bytes_per_item``: the least memory traffic of one item where the workload is
    memory-bound (an LLM decode step reads every weight once for the whole batch), else None;
    ``weights_per_step``: the weights such a step reads (``bench.model_facts`` derives
    ``bytes_per_item`` at another batch or precision from it). ``parameters``: the model's
    parameter count (``bench/specs/model_facts.json`` records it per config).
    """

    run: Callable[[], Any]
    items: int
    backward: bool
    bytes_per_item: float | None = None
    what: str = ""  # what was counted, for the metric's note
    repeated: tuple[tuple[Callable[[], Any], int], ...] = ()
    parameters: int | None = None
    weights_per_step: int | None = None


@dataclass(frozen=True)
class WorkCount:
    """FLOPs (and bytes) of one item, or why there is no figure."""

    flop_per_item: float | None
    bytes_per_item: float | None = None
    reason: str | None = None
    method: str = ""
    parameters: int | None = None
    weights_per_step: int | None = None


def count_flops(fn: Callable[[], Any]) -> int:
    """FLOPs that ``fn`` dispatches (matrix products and convolutions, 2 per multiply-add)."""
    from torch.utils.flop_counter import FlopCounterMode

    counter = FlopCounterMode(display=False)
    with counter:
        fn()
    return int(counter.get_total_flops())


def _scalar(out: Any) -> Any:
    """A scalar to call backward on from a model output (tensor, tuple or dict of tensors)."""
    import torch

    if isinstance(out, torch.Tensor):
        return out.float().sum()
    if isinstance(out, dict):
        out = list(out.values())
    if hasattr(out, "to_tuple"):
        out = out.to_tuple()
    parts = [_scalar(o) for o in out if isinstance(o, torch.Tensor | tuple | list | dict)]
    return sum(parts[1:], parts[0])


def count_work(make_probe: Callable[[], WorkProbe | None]) -> WorkCount | None:
    """Count one item's FLOPs with the probe ``make_probe`` builds on the meta device.

    None when the workload has no probe; a count with a reason when counting failed (a model
    that cannot run on the meta device): a result never fails for want of a FLOP count.
    """
    import torch

    try:
        with torch.device("meta"):
            probe = make_probe()
            if probe is None:
                return None

            def batch() -> None:
                out = probe.run()
                if probe.backward:
                    _scalar(out).backward()

            total = count_flops(batch) + sum(count_flops(stage) * times
                                             for stage, times in probe.repeated)
    except Exception as exc:  # counting is a courtesy: never lose a measurement over it
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:300]
        return WorkCount(None, None, reason=f"FLOP counting failed on the meta device: "
                                            f"{type(exc).__name__}: {first}")
    if probe.items <= 0 or total <= 0:
        return WorkCount(None, probe.bytes_per_item,
                         reason="the FLOP counter saw no matrix products or convolutions",
                         parameters=probe.parameters, weights_per_step=probe.weights_per_step)
    what = probe.what or ("forward and backward of one batch at the configured shape"
                          if probe.backward else "forward of one batch at the configured shape")
    return WorkCount(total / probe.items, probe.bytes_per_item,
                     method=f"torch FlopCounterMode on the meta device: {what}, divided by "
                            f"its {probe.items} items",
                     parameters=probe.parameters, weights_per_step=probe.weights_per_step)


def mfu_pct(flop_per_s: float, peak_flop_per_s: float) -> float:
    """Model FLOPs utilisation: achieved FLOP/s as a percentage of the peak."""
    if peak_flop_per_s <= 0:
        raise ValueError("peak must be positive")
    return 100.0 * flop_per_s / peak_flop_per_s


def work_metrics(own: dict[str, Metric], count: WorkCount | None,
                 throughputs: Sequence[float], item_unit: str, peaks: DevicePeaks,
                 precision: str, devices: int = 1) -> dict[str, Metric]:
    """``flop_per_item``, ``flop_per_s``, ``mfu_pct`` (and ``bytes_per_item``) of a result.

    ``own``: the metrics the workload reported itself; its ``flop_per_item`` (and any
    ``flop_per_s`` / ``mfu_pct``) win over the count. ``throughputs``: items/s of each
    successful repeat. ``devices``: how many devices the throughput was measured on (the
    peak is per device). Empty when there is neither an own figure nor a count (a workload
    that is not a model: the micro-benchmarks report FLOP/s themselves).
    """
    out: dict[str, Metric] = {}
    unit = f"FLOP/{item_unit}"
    if isinstance((own.get("flop_per_item") or {}).get("value"), int | float):
        fpi = float(own["flop_per_item"]["value"])
    elif count is None:
        return {}
    elif count.flop_per_item is None:
        fpi = None
        out["flop_per_item"] = metric(None, unit, count.reason or "not counted")
    else:
        fpi = count.flop_per_item
        out["flop_per_item"] = metric(fpi, unit, method=count.method)
    if count is not None and count.bytes_per_item is not None and "bytes_per_item" not in own:
        out["bytes_per_item"] = metric(
            count.bytes_per_item, f"B/{item_unit}",
            method="least memory traffic: every weight read once per step for the batch")
    reason = out.get("flop_per_item", {}).get("reason", "no FLOPs per item")
    per_repeat = [fpi * t if fpi is not None and math.isfinite(t) else None for t in throughputs]
    if "flop_per_s" not in own:
        out["flop_per_s"] = repeat_metric(
            per_repeat, "FLOP/s", reason,
            definition="throughput_items_per_s x flop_per_item")
    if "mfu_pct" not in own:
        peak, why = peaks.peak_flops(precision)
        if peak is None:
            out["mfu_pct"] = metric(None, "%", why or f"no {precision} peak")
        else:
            total = peak * max(devices, 1)
            out["mfu_pct"] = repeat_metric(
                [None if v is None else mfu_pct(v, total) for v in per_repeat], "%", reason,
                definition=f"flop_per_s / ({precision} peak {total:.4g} FLOP/s of "
                           f"{peaks.spec_id})")
    return out
