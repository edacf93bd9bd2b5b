"""The sample library (LoadGen's QSL) of a classic inference workload, and the runner that
serves any set of its samples as one batch on one stream.

A workload builds one synthetic batch (the tensors its ``input_attrs`` name, batch first).
The library holds ``performance_sample_count`` distinct samples on the device: the rows of
that batch and of permuted copies of it (``bench.data.variants``: same shapes, value ranges
and token ids, other content). A query's samples are gathered into a batch of exactly that
many rows and the workload's own ``step`` runs on it, so the scenario measures the same model
call as the plain loop.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import torch

from bench.data.variants import make_variants


def rows(value: Any) -> int:
    if isinstance(value, torch.Tensor):
        return int(value.shape[0])
    if isinstance(value, dict):
        return min(rows(v) for v in value.values())
    raise TypeError(f"cannot take samples from a {type(value).__name__}")


def concat(values: list[Any]) -> Any:
    if isinstance(values[0], torch.Tensor):
        return torch.cat(values, dim=0)
    return {k: concat([v[k] for v in values]) for k in values[0]}


def take(value: Any, index: torch.Tensor) -> Any:
    """The rows ``index`` of a batch-first tensor or of every tensor of a dict."""
    if isinstance(value, torch.Tensor):
        return value.index_select(0, index.to(value.device))
    return {k: take(v, index) for k, v in value.items()}


def sample_library(batch: Any, count: int, seed: int) -> Any:
    """``count`` samples (rows): the batch's own, then those of its permuted copies."""
    per = rows(batch)
    copies = max(1, math.ceil(count / per))
    pool = concat(make_variants(batch, copies, seed))
    return take(pool, torch.arange(count))


class WorkloadRunner:
    """Serves samples of a library with one stream's copy of the workload."""

    def __init__(self, workload: Any, library: dict[str, Any], stream: Any,
                 stream_context: Callable[[Any], Any], synchronize: Callable[[], None]) -> None:
        self.workload = workload
        self.library = library
        self.stream = stream
        self.stream_context = stream_context
        self.synchronize = synchronize

    def run(self, indices: list[int], first_token: Callable[[], None] | None = None) -> int:
        index = torch.tensor(indices, dtype=torch.long)
        with self.stream_context(self.stream):
            for name, value in self.library.items():
                setattr(self.workload, name, take(value, index))
            self.workload.step()
        self.synchronize()
        return 1
