"""ResNet-34 image classification, 100 classes (SPEC section 4: 21,335,972 parameters).

Inputs are synthetic tensors created on the device with ImageNet's shape, so the device is
measured and not the host's input pipeline.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from bench.models.resnet import resnet34
from bench.workloads import register
from bench.workloads.base import Workload, count_parameters

PARAMETERS = 21_335_972


@register
class ResNetWorkload(Workload):
    name = "resnet"
    description = "ResNet-34 (torchvision definition), 100 classes, image classification"
    group = "cv"
    modes = ("train", "infer")
    item_unit = "images"
    configs = {
        "small": {"batch_size": 2, "image_size": 64, "num_classes": 100, "lr": 0.01},
        "full": {"batch_size": 128, "image_size": 224, "num_classes": 100, "lr": 0.1},
    }

    def setup(self) -> None:
        self.check_precision()
        torch.manual_seed(self.ctx.seed)
        p = self.params
        device = self.ctx.device
        self.model = resnet34(num_classes=p["num_classes"]).to(device)
        self.extra["parameters"] = count_parameters(self.model)
        gen = torch.Generator(device="cpu").manual_seed(self.ctx.seed)
        shape = (p["batch_size"], 3, p["image_size"], p["image_size"])
        self.images = torch.randn(shape, generator=gen).to(device)
        self.labels = torch.randint(0, p["num_classes"], (p["batch_size"],), generator=gen).to(
            device)
        if self.ctx.mode == "train":
            self.model.train()
            self.optimizer = torch.optim.SGD(self.model.parameters(), lr=p["lr"], momentum=0.9)
            self.loss_fn = nn.CrossEntropyLoss()
            self.scaler = torch.amp.GradScaler(
                self.ctx.backend.device_type, enabled=self.precision_used == "fp16")
        else:
            self.model.eval()

    def step(self) -> int:
        if self.ctx.mode == "train":
            self.optimizer.zero_grad(set_to_none=True)
            with self.autocast():
                loss = self.loss_fn(self.model(self.images), self.labels)
            self.scaler.scale(loss).backward()
            self.scaler.step(self.optimizer)
            self.scaler.update()
            self.record("loss", loss.detach().float().item())
        else:
            with torch.inference_mode(), self.autocast():
                self.model(self.images)
        return self.params["batch_size"]

    def info(self) -> dict[str, Any]:
        return {**super().info(), "reference_parameters": PARAMETERS}
