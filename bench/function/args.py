"""ATen call arguments as data: recorded from a traced call, rebuilt later with seeded values.

A catalogue entry (``bench.function.catalogue``) keeps a few of the argument lists its operator
was called with, in a YAML-friendly form: a tensor becomes its shape, dtype and layout (strides,
storage offset and size where it is not plainly contiguous) and a summary of its values;
every other argument is kept as it was (numbers, lists, strings), with dtypes, devices, layouts
and memory formats as small tagged mappings.

Values. Integer and boolean tensors are structure (indices, targets, masks): up to
``EXACT_VALUES_MAX`` elements of their storage are kept exactly, so a replay indexes the same
rows, scatters to the same (unique) places and ignores the same targets. Floating-point
tensors are data: their range, mean and spread are kept (or their one or two distinct values,
e.g. an attention mask of 0 and -inf), and a replay draws new values from a seeded generator
within that range, so domain-sensitive operators (sqrt, log, reciprocal, probabilities) stay
in their domain.

Rebuilding (``Rebuild``) makes every tensor twice from the same values: once for the device,
in the variant's dtype, and once for the CPU reference (float64 where the variant is
floating point), so both sides compute on identical inputs.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch

EXACT_VALUES_MAX = 4096
SAMPLE_MAX = 1 << 16  # float statistics are taken from at most this many evenly spaced elements
# Storage kept whole up to this many elements (a view's offsets then stay valid); beyond it
# only the extent the view reaches.
STORAGE_MAX = 1 << 24
FLOAT_DTYPES = (torch.float16, torch.bfloat16, torch.float32, torch.float64)
VARIANT_DTYPES: dict[str, torch.dtype] = {
    "fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16, "int8": torch.int8,
}
TAGS = ("T", "dtype", "device", "layout", "memory_format", "generator")
# Floating-point data drawn for the int8 variant: integers in [-8, 8] ([0, 8] for data that
# was never negative), so products and sums of a few terms stay well inside int8.
INT8_SPAN = 8


class Unrecordable(Exception):
    """An argument of a type the catalogue cannot keep (the call is then not replayable)."""


def dtype_name(dtype: torch.dtype) -> str:
    return str(dtype).removeprefix("torch.")


def dtype_of(name: str) -> torch.dtype:
    value = getattr(torch, name, None)
    if not isinstance(value, torch.dtype):
        raise ValueError(f"unknown dtype {name!r}")
    return value


_MEMORY_FORMATS = {str(f).removeprefix("torch."): f for f in (
    torch.contiguous_format, torch.channels_last, torch.channels_last_3d,
    torch.preserve_format)}
_LAYOUTS = {str(f).removeprefix("torch."): f for f in (torch.strided, torch.sparse_coo)}


# -- recording ----------------------------------------------------------------------------
def _storage_numel(t: torch.Tensor) -> int:
    return t.untyped_storage().nbytes() // max(t.element_size(), 1)


def _extent(t: torch.Tensor) -> int:
    """Elements of storage the view reaches, from its offset."""
    if t.numel() == 0:
        return 0
    return 1 + sum((s - 1) * abs(st) for s, st in zip(t.shape, t.stride(), strict=True))


def tensor_layout(t: torch.Tensor) -> dict[str, Any]:
    """Shape and dtype; strides, offset and storage size where the tensor is not a plain
    contiguous tensor of its own storage (permuted, expanded, channels-last, a view)."""
    out: dict[str, Any] = {"shape": list(t.shape), "dtype": dtype_name(t.dtype)}
    storage = _storage_numel(t)
    plain = t.is_contiguous() and t.storage_offset() == 0 and storage == t.numel()
    if not plain:
        offset = t.storage_offset()
        needed = offset + _extent(t)
        out["stride"] = list(t.stride())
        out["offset"] = offset
        out["storage"] = storage if storage <= STORAGE_MAX else needed
    return out


def _storage_view(t: torch.Tensor, size: int) -> torch.Tensor:
    """The first ``size`` elements of ``t``'s storage as a 1-D tensor."""
    return torch.empty(0, dtype=t.dtype, device=t.device).set_(
        t.untyped_storage(), 0, (size,), (1,))


def value_summary(t: torch.Tensor, layout: dict[str, Any]) -> dict[str, Any]:
    """What a replay needs to draw values like ``t``'s (see the module docstring)."""
    t = t.detach()
    storage = layout.get("storage", t.numel())
    if t.dtype in FLOAT_DTYPES or t.is_floating_point():
        if t.numel() == 0:
            return {}
        flat = t.reshape(-1)
        if flat.numel() > SAMPLE_MAX:
            flat = flat[::flat.numel() // SAMPLE_MAX]
        flat = flat.to(torch.float64)
        distinct = torch.unique(flat)
        if distinct is not None and distinct.numel() <= 2 and not torch.isnan(distinct).any():
            return {"choices": [float(v) for v in distinct]}
        finite = flat[torch.isfinite(flat)]
        if finite.numel() == 0:
            return {"choices": [float(flat[0])]}
        lo, hi = float(finite.min()), float(finite.max())
        std = float(finite.std()) if finite.numel() > 1 else 0.0
        return {"range": [lo, hi], "mean": float(finite.mean()), "std": std}
    if t.dtype.is_complex:
        raise Unrecordable("complex tensors are not kept in the catalogue")
    if storage <= EXACT_VALUES_MAX:
        values = _storage_view(t, storage) if "stride" in layout else t.reshape(-1)
        if t.dtype == torch.bool:
            return {"values": [int(v) for v in values.tolist()]}
        return {"values": [int(v) for v in values.tolist()]}
    flat = t.reshape(-1)
    if t.dtype == torch.bool:
        return {"true_fraction": float(flat.float().mean()) if flat.numel() else 0.0}
    return {"range": [int(flat.min()), int(flat.max())]} if flat.numel() else {}


def describe(value: Any) -> Any:
    """The argument's form without tensor values (the key that tells two calls apart)."""
    if isinstance(value, torch.Tensor):
        if value.layout != torch.strided:
            raise Unrecordable(f"{value.layout} tensors are not kept in the catalogue")
        return {"T": tensor_layout(value)}
    if isinstance(value, list | tuple):
        return [describe(v) for v in value]
    if value is None or isinstance(value, bool | int | str):
        return value
    if isinstance(value, float):
        return value
    if isinstance(value, torch.dtype):
        return {"dtype": dtype_name(value)}
    if isinstance(value, torch.device):
        return {"device": None}
    if isinstance(value, torch.layout):
        return {"layout": str(value).removeprefix("torch.")}
    if isinstance(value, torch.memory_format):
        return {"memory_format": str(value).removeprefix("torch.")}
    if isinstance(value, torch.Generator):
        return {"generator": None}
    raise Unrecordable(f"argument of type {type(value).__name__} is not kept in the catalogue")


def encode(value: Any) -> Any:
    """``describe`` plus each tensor's value summary: a replayable argument."""
    if isinstance(value, torch.Tensor):
        layout = tensor_layout(value)
        return {"T": {**layout, **value_summary(value, layout)}}
    if isinstance(value, list | tuple):
        return [encode(v) for v in value]
    return describe(value)


def tensors_in(encoded: Any) -> list[dict[str, Any]]:
    """Every tensor spec in an encoded argument tree, in order."""
    if isinstance(encoded, dict) and "T" in encoded:
        return [encoded["T"]]
    if isinstance(encoded, dict):
        return [t for v in encoded.values() for t in tensors_in(v)]
    if isinstance(encoded, list):
        return [t for v in encoded for t in tensors_in(v)]
    return []


def storage_elements(spec: dict[str, Any]) -> int:
    return int(spec.get("storage", math.prod(spec["shape"])))


# -- rebuilding ---------------------------------------------------------------------------
@dataclass
class Rebuild:
    """Builds the device and the reference copy of every argument of one call.

    ``variant``: ``fp32``/``fp16``/``bf16`` put the recorded float32 tensors in that dtype on
    the device and in ``reference_dtype`` (float64) on the CPU; ``int8`` puts them in int8 on
    both sides (integer results compare exactly); ``native`` keeps every dtype as recorded.
    Creation operators (no tensor input) take the variant through their float32 ``dtype``
    argument instead (``vary_dtype_args``).
    """

    variant: str
    device: torch.device
    seed: int
    reference_dtype: torch.dtype = torch.float64
    vary_dtype_args: bool = False

    def __post_init__(self) -> None:
        self.generator = torch.Generator().manual_seed(self.seed)

    def _sides(self, recorded: torch.dtype) -> tuple[torch.dtype, torch.dtype]:
        """(device dtype, reference dtype) of a recorded tensor."""
        if self.variant == "native" or recorded != torch.float32:
            floating = recorded in FLOAT_DTYPES
            return recorded, self.reference_dtype if floating and self.variant != "int8" \
                else recorded
        dev = VARIANT_DTYPES[self.variant]
        return dev, (dev if self.variant == "int8" else self.reference_dtype)

    def _values(self, spec: dict[str, Any], dtype: torch.dtype, n: int) -> torch.Tensor:
        g = self.generator
        if "values" in spec:
            values = torch.tensor(spec["values"], dtype=torch.int64)
            return values.to(dtype) if dtype != torch.bool else values.bool()
        if "choices" in spec:
            choices = torch.tensor(spec["choices"], dtype=torch.float64)
            picked = choices[torch.randint(len(choices), (n,), generator=g)]
            return _cast(picked, dtype)
        if "true_fraction" in spec:
            return torch.rand(n, generator=g) < spec["true_fraction"]
        lo, hi = spec.get("range", [-1.0, 1.0])
        if dtype.is_floating_point:
            std = spec.get("std", 1.0) or 0.0
            drawn = torch.randn(n, generator=g, dtype=torch.float64) * std + spec.get("mean", 0.0)
            return _cast(drawn.clamp(lo, hi), dtype)
        if "mean" in spec:  # floating-point data in an integer variant (int8): small integers
            lo_i, hi_i = (0 if lo >= 0 else -INT8_SPAN), INT8_SPAN
        else:
            lo_i, hi_i = int(lo), int(hi)
        if dtype == torch.bool:
            return torch.randint(0, 2, (n,), generator=g).bool()
        info = torch.iinfo(dtype)
        lo_i, hi_i = max(lo_i, info.min), min(hi_i, info.max)
        return torch.randint(lo_i, hi_i + 1, (n,), generator=g, dtype=torch.int64).to(dtype)

    def tensor(self, spec: dict[str, Any]) -> tuple[torch.Tensor, torch.Tensor]:
        recorded = dtype_of(spec["dtype"])
        dev_dtype, ref_dtype = self._sides(recorded)
        n = storage_elements(spec)
        values = self._values(spec, dev_dtype, n)
        if values.numel() != n:  # exact values of a different storage size: tile them
            values = values.repeat(math.ceil(n / max(values.numel(), 1)))[:n] if n else \
                values[:0]
        dev = values.to(self.device)
        ref = values.to(ref_dtype)
        stride = spec.get("stride") or contiguous_strides(spec["shape"])
        layout = (spec.get("offset", 0), spec["shape"], stride)
        return _on_storage(dev, *layout), _on_storage(ref, *layout)

    def build(self, encoded: Any) -> tuple[Any, Any]:
        """(device argument, reference argument) from an encoded argument."""
        if isinstance(encoded, list):
            pairs = [self.build(v) for v in encoded]
            return [p[0] for p in pairs], [p[1] for p in pairs]
        if isinstance(encoded, dict):
            tag = next(iter(encoded))
            if tag == "T":
                return self.tensor(encoded["T"])
            if tag == "dtype":
                dtype = dtype_of(encoded["dtype"])
                if self.vary_dtype_args and dtype == torch.float32 and \
                        self.variant in ("fp32", "fp16", "bf16"):
                    return VARIANT_DTYPES[self.variant], self.reference_dtype
                return dtype, dtype
            if tag == "device":
                return self.device, torch.device("cpu")
            if tag == "layout":
                layout = _LAYOUTS[encoded["layout"]]
                return layout, layout
            if tag == "memory_format":
                fmt = _MEMORY_FORMATS[encoded["memory_format"]]
                return fmt, fmt
            if tag == "generator":
                return None, None
            raise ValueError(f"unknown argument tag {tag!r}")
        return encoded, encoded


def contiguous_strides(shape: list[int]) -> list[int]:
    strides, step = [], 1
    for size in reversed(shape):
        strides.append(step)
        step *= max(size, 1)
    return strides[::-1]


def _on_storage(storage: torch.Tensor, offset: int, shape: list[int], stride: list[int]
                ) -> torch.Tensor:
    """A tensor with the recorded layout on ``storage``'s memory: not a view (in-place
    operators such as ``detach_`` refuse views), unless the device cannot ``set_``."""
    try:
        return torch.empty(0, dtype=storage.dtype, device=storage.device).set_(
            storage.untyped_storage(), offset, shape, stride)
    except (RuntimeError, NotImplementedError):
        return storage.as_strided(shape, stride, offset)


def _cast(values: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """float64 values into ``dtype``, clamped to its finite range (infinities kept)."""
    if dtype.is_floating_point:
        big = torch.finfo(dtype).max
        finite = torch.isfinite(values)
        values = torch.where(finite, values.clamp(-big, big), values)
        return values.to(dtype)
    if dtype == torch.bool:
        return values != 0
    info = torch.iinfo(dtype)
    return values.nan_to_num(0.0, info.max, info.min).clamp(info.min, info.max).to(dtype)


def map_tensors(value: Any, fn: Callable[[torch.Tensor], Any]) -> Any:
    """``value`` with ``fn`` applied to every tensor inside lists and tuples."""
    if isinstance(value, torch.Tensor):
        return fn(value)
    if isinstance(value, list | tuple):
        return type(value)(map_tensors(v, fn) for v in value)
    return value


def flat_tensors(value: Any) -> list[torch.Tensor]:
    if isinstance(value, torch.Tensor):
        return [value]
    if isinstance(value, list | tuple):
        return [t for v in value for t in flat_tensors(v)]
    if isinstance(value, dict):
        return [t for v in value.values() for t in flat_tensors(v)]
    return []
