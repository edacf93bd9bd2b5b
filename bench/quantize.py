"""Post-training INT8 with PyTorch's own quantization, and what it costs in agreement with fp32.

Two flows, the ones PyTorch documents for these model families on the CPU:

- ``static`` (convolution networks, ResNet): FX graph mode, the backend's default qconfig
  (x86: per-channel int8 weights, uint8 activations with observers), calibrated on synthetic
  batches drawn with their own seed, then converted;
- ``dynamic`` (linear and LSTM layers, BERT and the character LSTM): int8 weights, activations
  quantised per call from their observed range, no calibration.

The accuracy cost is stated, never hidden: on the same inputs, the fraction of positions
where the int8 model's top-1 class equals the fp32 model's, and the largest absolute
difference of a logit (beside the largest fp32 logit for scale). Random weights and synthetic
inputs measure agreement with fp32, not task accuracy.
"""

from __future__ import annotations

import copy
import warnings
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass
from typing import Any

import torch
from torch import nn

from bench.documents import Info, Metrics

KINDS = ("static", "dynamic")
CALIBRATION_BATCHES = 4


@dataclass(frozen=True)
class Agreement:
    positions: int
    top1_agreement: float
    max_abs_logit_error: float
    max_abs_fp32_logit: float

    def as_dict(self) -> Info:
        return asdict(self)


def agreement(fp32: Iterable[torch.Tensor], int8: Iterable[torch.Tensor]) -> Agreement:
    """Top-1 agreement over every position (the class dimension last) and the largest
    absolute logit difference, over pairs of logit tensors of the same inputs."""
    same = total = 0
    err = scale = 0.0
    for a, b in zip(fp32, int8, strict=True):
        a, b = a.float().reshape(-1, a.shape[-1]), b.float().reshape(-1, b.shape[-1])
        same += int((a.argmax(-1) == b.argmax(-1)).sum())
        total += a.shape[0]
        err = max(err, float((a - b).abs().max()))
        scale = max(scale, float(a.abs().max()))
    if total == 0:
        raise ValueError("no logits to compare")
    return Agreement(total, same / total, err, scale)


def engine() -> str:
    engines = torch.backends.quantized.supported_engines
    return "x86" if "x86" in engines else "fbgemm"


def quantize(model: nn.Module, kind: str, example: tuple[Any, ...],
             calibration: Iterable[tuple[Any, ...]] = (),
             dynamic_types: tuple[type[nn.Module], ...] = (nn.Linear,)
             ) -> tuple[nn.Module, Info]:
    """An int8 copy of ``model`` (the fp32 model is left as it is) and how it was made."""
    if kind not in KINDS:
        raise ValueError(f"int8 kind {kind!r} is not one of {KINDS}")
    torch.backends.quantized.engine = engine()
    fp32 = copy.deepcopy(model).eval()
    with warnings.catch_warnings():
        # torch.ao.quantization announces its move to torchao; the flow is still PyTorch's.
        warnings.simplefilter("ignore", DeprecationWarning)
        warnings.filterwarnings("ignore", message=".*torch.ao.quantization is deprecated.*")
        warnings.filterwarnings("ignore", message=".*reduce_range will be deprecated.*")
        if kind == "dynamic":
            q = torch.ao.quantization.quantize_dynamic(fp32, set(dynamic_types),
                                                       dtype=torch.qint8)
            how = {"flow": "torch.ao.quantization.quantize_dynamic",
                   "layers": sorted(t.__name__ for t in dynamic_types),
                   "weights": "int8 (qint8), per tensor",
                   "activations": "quantised per call from their range"}
        else:
            from torch.ao.quantization import get_default_qconfig_mapping
            from torch.ao.quantization.quantize_fx import convert_fx, prepare_fx

            prepared = prepare_fx(fp32, get_default_qconfig_mapping(engine()), example)
            batches = 0
            with torch.inference_mode():
                for args in calibration:
                    prepared(*args)
                    batches += 1
            q = convert_fx(prepared)
            how = {"flow": "FX graph mode: prepare_fx, calibrate, convert_fx",
                   "qconfig": f"default qconfig mapping of the {engine()} backend",
                   "weights": "int8, per channel", "activations": "uint8, calibrated",
                   "calibration_batches": batches,
                   "calibration_data": "synthetic batches drawn with their own seed"}
    return q.eval(), {"engine": engine(), "torch": torch.__version__, "kind": kind, **how}


def compare(fp32_model: Callable[..., Any], int8_model: Callable[..., Any],
            inputs: Iterable[tuple[Any, ...]],
            logits: Callable[[Any], list[torch.Tensor]]) -> Agreement:
    """Run both models on the same inputs and compare their logits."""
    a, b = [], []
    with torch.inference_mode():
        for args in inputs:
            a += logits(fp32_model(*args))
            b += logits(int8_model(*args))
    return agreement(a, b)


def agreement_metrics(info: Info | None) -> Metrics:
    """The agreement as metrics of the result (so reports and audits show it)."""
    if not info or "agreement" not in info:
        return {}
    ag = info["agreement"]
    return {
        "int8_top1_agreement": {"value": ag["top1_agreement"], "unit": "fraction",
                                "positions": ag["positions"],
                                "definition": "share of positions whose int8 top-1 class is "
                                              "the fp32 model's, same inputs"},
        "int8_max_logit_error": {"value": ag["max_abs_logit_error"], "unit": "logit",
                                 "max_abs_fp32_logit": ag["max_abs_fp32_logit"],
                                 "definition": "largest |int8 logit - fp32 logit|"},
    }
