"""Precisions of the micro-benchmarks: dtypes, the TF32 switch, and honest support checks.

The micro-benchmarks run in the precision's dtype directly (no autocast), so the FLOP and byte
counts are exact. ``fp32`` means IEEE single precision with TF32 *off* (cuBLAS and cuDNN would
otherwise use TF32 for convolutions by default); ``tf32`` turns it on. ``int8`` GEMMs use
``torch._int_mm`` (int8 x int8 -> int32), where the build has it for the device.
"""

from __future__ import annotations

from typing import Any

import torch

from bench.documents import Info
from bench.errors import Unsupported

DTYPES: dict[str, torch.dtype] = {
    "fp32": torch.float32,
    "tf32": torch.float32,
    "fp16": torch.float16,
    "bf16": torch.bfloat16,
    "int8": torch.int8,
}


def elem_bytes(precision: str) -> int:
    return torch.empty((), dtype=DTYPES[precision]).element_size()


def set_tf32(backend: Any, enabled: bool) -> Info:
    """The backend's TF32 switch (see ``DeviceBackend.set_tf32``); returns the state."""
    return backend.set_tf32(enabled)


def int8_matmul_unsupported(device: torch.device) -> str | None:
    """Why ``torch._int_mm`` cannot run on ``device`` (None when it can)."""
    if not hasattr(torch, "_int_mm"):
        return f"torch {torch.__version__} has no torch._int_mm (int8 GEMM)"
    try:
        a = torch.ones(32, 32, dtype=torch.int8, device=device)
        out = torch._int_mm(a, a.t().contiguous().t())
        if int(out[0, 0]) != 32:
            return f"torch._int_mm on {device} returned a wrong result"
    except (RuntimeError, NotImplementedError) as exc:
        return f"torch._int_mm does not run on {device}: {str(exc).splitlines()[0]}"
    return None


def check_precision(backend: Any, precision: str) -> None:
    """Raise ``Unsupported`` (recorded as the entry's status) for a precision the device lacks."""
    if precision not in DTYPES:
        raise Unsupported(f"precision {precision!r} is not one of {', '.join(DTYPES)}")
    if precision == "int8":
        reason = int8_matmul_unsupported(backend.device(0))
        if reason:
            raise Unsupported(reason)
        return
    if not backend.supports_precision(precision):
        raise Unsupported(f"{backend.vendor} device does not support {precision}")
