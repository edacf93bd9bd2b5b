"""Pieces the classic workloads share: the AMP training step and the input pipeline.

A private module (leading underscore): workload discovery skips it.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import nn
from torch.utils.data import Dataset

from bench.data import DataInfo, DeviceBatches, existing_path, make_loader
from bench.devices.base import grad_scaler
from bench.workload import Workload

# Host-side synthetic data sets (loader mode without data_path) hold this many batches, so
# an epoch boundary (and its shuffle) falls inside longer runs as with real data.
SYNTHETIC_LOADER_BATCHES = 16


class Trainer:
    """One optimiser step: forward under autocast, scaled backward, optional clipping.

    The loss of every step (warm-up included) goes to the ``loss`` series of the result.
    """

    def __init__(self, workload: Workload, model: nn.Module, optimizer: torch.optim.Optimizer,
                 clip_grad_norm: float | None = None) -> None:
        self.workload = workload
        self.model = model
        self.optimizer = optimizer
        self.clip_grad_norm = clip_grad_norm
        self.scaler = grad_scaler(workload.ctx.backend.device_type,
                                  workload.precision_used == "fp16")

    def step(self, compute_loss: Callable[[], torch.Tensor]) -> float:
        self.optimizer.zero_grad(set_to_none=True)
        with self.workload.autocast():
            loss = compute_loss()
        self.scaler.scale(loss).backward()
        if self.clip_grad_norm is not None:
            self.scaler.unscale_(self.optimizer)
            nn.utils.clip_grad_norm_(self.model.parameters(), self.clip_grad_norm)
        self.scaler.step(self.optimizer)
        self.scaler.update()
        value = float(loss.detach().float().item())
        self.workload.record("loss", value)
        return value


def loader_batches(workload: Workload, dataset: Dataset[Any], *, source: str,
                   path: str | None = None,
                   details: dict[str, Any] | None = None) -> DeviceBatches:
    """Wrap ``dataset`` in the workload's DataLoader and record what feeds it."""
    p = workload.params
    device = workload.ctx.device
    loader = make_loader(dataset, p["batch_size"], shuffle=workload.ctx.mode == "train",
                         num_workers=p["num_workers"], seed=workload.ctx.seed,
                         pin_memory=device.type != "cpu", workload=workload.name)
    workload.extra["data"] = DataInfo(
        mode="loader", source=source, path=path, samples=len(dataset),  # type: ignore[arg-type]
        num_workers=p["num_workers"], details=details).as_dict()
    return DeviceBatches(loader, device)


def data_root(workload: Workload, what: str) -> Any:
    return existing_path(workload.params["data_path"], workload.name, what)


def synthetic_length(batch_size: int) -> int:
    return batch_size * SYNTHETIC_LOADER_BATCHES
