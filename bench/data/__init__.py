"""Input data for the workloads: the two data modes and the real data sets' loaders.

Every workload takes the same two parameters:

- ``data``: ``synthetic`` (default) builds random tensors with the real data set's shapes
  directly on the device once, so a step measures the device and nothing else (the published
  evaluation's 4 % ResNet utilisation on an A100 is what a host-bound harness looks like).
  ``loader`` feeds every step from a real ``torch.utils.data.DataLoader`` (worker processes,
  collation, pinned host memory, host-to-device copy), so the input pipeline is measured too.
- ``data_path``: a local copy of the real data set. Giving one implies ``loader``; without
  one, ``loader`` mode uses a host-side synthetic data set of the same shapes (the pipeline
  without file decoding).

One module per on-disk format: ``imagefolder`` (ImageNet subset), ``carvana`` (U-Net),
``squad`` (SQuAD v2.0 / CMRC2018, with ``tokenizer``), ``poems`` (Poem-Tang). Nothing is ever
downloaded. What was used is recorded in the result (``workload.info.data``).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch.utils.data import DataLoader, Dataset

from bench.documents import Info, Metrics, Params, RepeatResult
from bench.errors import UserError

DATA_MODES = ("synthetic", "loader")

Batch = Any  # a tensor, or a tuple / dict of tensors, as the dataset's collation makes it


def data_mode(params: Params, workload: str) -> str:
    """The effective data mode: ``loader`` whenever a ``data_path`` is given."""
    mode = params.get("data", "synthetic")
    if mode not in DATA_MODES:
        raise UserError(f"Workload {workload!r}: parameter data={mode!r} is not one of "
                        f"{', '.join(DATA_MODES)}.",
                        "Set `data: synthetic` (device only) or `data: loader` (input pipeline "
                        "too) in the suite's params.")
    return "loader" if params.get("data_path") else mode


def existing_path(path: str | Path, workload: str, what: str) -> Path:
    """``data_path`` as a Path that exists, or a ``UserError`` that says what was expected."""
    p = Path(path).expanduser()
    if not p.exists():
        raise UserError(f"Workload {workload!r}: data_path {str(p)!r} does not exist.",
                        f"Point data_path at a local copy of {what}; nothing is downloaded.")
    return p


def make_loader(dataset: Dataset[Any], batch_size: int, *, shuffle: bool, num_workers: int,
                seed: int, pin_memory: bool, workload: str,
                collate_fn: Callable[[list[Any]], Batch] | None = None) -> DataLoader[Any]:
    """A DataLoader that yields only full batches (every step has ``batch_size`` items)."""
    size = len(dataset)  # type: ignore[arg-type]
    if size < batch_size:
        raise UserError(f"Workload {workload!r}: the data set has {size} sample(s), fewer than "
                        f"batch_size={batch_size}.",
                        "Use a larger data set or a smaller batch_size.")
    return DataLoader(dataset, batch_size=batch_size, shuffle=shuffle, num_workers=num_workers,
                      pin_memory=pin_memory, drop_last=True, collate_fn=collate_fn,
                      persistent_workers=num_workers > 0,
                      generator=torch.Generator().manual_seed(seed))


def to_device(batch: Batch, device: torch.device) -> Batch:
    if isinstance(batch, torch.Tensor):
        return batch.to(device, non_blocking=True)
    if isinstance(batch, dict):
        return {k: to_device(v, device) for k, v in batch.items()}
    if isinstance(batch, list | tuple):
        return type(batch)(to_device(v, device) for v in batch)
    return batch


class DeviceBatches:
    """Endless batches on the device from a DataLoader, epoch after epoch.

    ``wait_s`` keeps, per batch, the host time spent waiting for the loader and starting the
    copy: the input pipeline's share of a step.
    """

    def __init__(self, loader: DataLoader[Any], device: torch.device) -> None:
        self.loader = loader
        self.device = device
        self.epochs = 0
        self.wait_s: list[float] = []
        self._it: Iterator[Any] = iter(loader)

    def __iter__(self) -> DeviceBatches:
        return self

    def __next__(self) -> Batch:
        t0 = time.perf_counter()
        try:
            batch = next(self._it)
        except StopIteration:
            self.epochs += 1
            self._it = iter(self.loader)
            batch = next(self._it)
        out = to_device(batch, self.device)
        self.wait_s.append(time.perf_counter() - t0)
        return out


@dataclass
class DataInfo:
    """What fed the workload, for ``workload.info.data`` in the result."""

    mode: str  # synthetic | loader
    source: str  # e.g. "synthetic (on device)", "imagefolder", "synthetic (host DataLoader)"
    path: str | None = None
    samples: int | None = None
    num_workers: int | None = None
    details: Info | None = None

    def as_dict(self) -> Info:
        out = {"mode": self.mode, "source": self.source, "path": self.path,
               "samples": self.samples, "num_workers": self.num_workers}
        if self.details:
            out.update(self.details)
        return out


def synthetic_info(shapes: dict[str, list[int]]) -> DataInfo:
    return DataInfo(mode="synthetic", source="synthetic (on device)",
                    details={"shapes": shapes,
                             "note": "random tensors created on the device once; no input "
                                     "pipeline in the timed window"})


def input_wait_metrics(batches: DeviceBatches | None,
                       loop: RepeatResult) -> Metrics:
    """Share of the timed window spent waiting for input (loader mode only)."""
    if batches is None or not loop.get("iterations"):
        return {}
    timed = batches.wait_s[-loop["iterations"]:]
    duration = loop["window"]["duration_s"]
    return {
        "input_wait_s_mean": {"value": sum(timed) / len(timed), "unit": "s"},
        "input_wait_pct": {"value": input_wait_pct(timed, duration), "unit": "%"},
    }


def input_wait_pct(waits_s: list[float], window_s: float) -> float:
    """Percentage of the window spent waiting for batches (0 for an empty window)."""
    return 100.0 * sum(waits_s) / window_s if window_s > 0 else 0.0
