"""ResNet-34 image classification, 100 classes (docs/workloads.md: 21,335,972 parameters).

Synthetic mode (default): ImageNet-shaped tensors created on the device once, so the device is
measured and not the host's input pipeline. Loader mode: an ImageFolder data set (an ImageNet
subset) at ``data_path``, or host-side random images, through a DataLoader; images cross to
the device as uint8 and are normalised there.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from bench.data import DeviceBatches, data_mode, input_wait_metrics, synthetic_info
from bench.data.image_ops import normalize_on_device
from bench.data.imagefolder import ImageFolderDataset, SyntheticImages
from bench.documents import Info, Metrics, Params, RepeatResult
from bench.flops import WorkProbe
from bench.function.model import ModelProbe, batch_slice
from bench.models.resnet import resnet34
from bench.quantize import agreement_metrics
from bench.workload import Workload, count_parameters, register
from bench.workloads._common import (
    Trainer,
    data_root,
    loader_batches,
    synthetic_length,
)

PARAMETERS = 21_335_972


@register
class ResNetWorkload(Workload):
    name = "resnet"
    description = "ResNet-34 (torchvision definition), 100 classes, image classification"
    group = "cv"
    modes = ("train", "infer")
    item_unit = "images"
    input_attrs = ("images", "labels")
    int8_kind = "static"
    configs = {
        "small": {"batch_size": 2, "image_size": 64, "num_classes": 100, "lr": 0.01,
                  "data": "synthetic", "data_path": None, "num_workers": 1, "streams": 1},
        # 128 images of 224x224, the usual per-GPU batch of the reference ImageNet recipes:
        # ~14 GiB of saved activations in fp32 training (0.11 GiB per image, measured; see
        # docs/workloads.md), so it fits every 24-80 GB device.
        "full": {"batch_size": 128, "image_size": 224, "num_classes": 100, "lr": 0.1,
                 "data": "synthetic", "data_path": None, "num_workers": 8, "streams": 1},
    }

    def setup(self) -> None:
        self.check_precision()
        torch.manual_seed(self.ctx.seed)
        p = self.params
        device = self.ctx.device
        self.model = self.build_model(p).to(device)
        self.extra["parameters"] = count_parameters(self.model)
        self.batches: DeviceBatches | None = None
        shape = (p["batch_size"], 3, p["image_size"], p["image_size"])
        if data_mode(p, self.name) == "loader":
            item_shape = shape[1:]
            if p["data_path"]:
                root = data_root(self, "an ImageNet subset in ImageFolder layout")
                ds: Any = ImageFolderDataset(root, p["image_size"], self.ctx.mode == "train",
                                             p["num_classes"])
                self.batches = loader_batches(self, ds, source="imagefolder", path=str(root),
                                              details={"classes": len(ds.classes)})
            else:
                ds = SyntheticImages(synthetic_length(p["batch_size"]), item_shape,
                                     p["num_classes"], self.ctx.seed)
                self.batches = loader_batches(self, ds, source="synthetic (host DataLoader)")
        else:
            gen = torch.Generator(device="cpu").manual_seed(self.ctx.seed)
            self.images = torch.randn(shape, generator=gen).to(device)
            self.labels = torch.randint(0, p["num_classes"], (p["batch_size"],),
                                        generator=gen).to(device)
            self.extra["data"] = synthetic_info({"images": list(shape),
                                                 "labels": [p["batch_size"]]}).as_dict()
        if self.ctx.mode == "train":
            self.model.train()
            optimizer = torch.optim.SGD(self.model.parameters(), lr=p["lr"], momentum=0.9)
            self.trainer = Trainer(self, self.model, optimizer)
            self.loss_fn = nn.CrossEntropyLoss()
        else:
            self.model.eval()
            if self.precision_used == "int8":
                def batch(offset: int) -> tuple[torch.Tensor]:
                    g = torch.Generator(device="cpu").manual_seed(self.ctx.seed + offset)
                    return (torch.randn(shape, generator=g).to(device),)

                self.quantize_int8(batch(1), [batch(100 + i) for i in range(4)],
                                   [batch(200 + i) for i in range(4)], lambda out: [out])

    @staticmethod
    def build_model(params: Params) -> nn.Module:
        return resnet34(num_classes=params["num_classes"])

    @classmethod
    def work_probe(cls, mode: str, params: Params, precision: str,
                   info: Info) -> WorkProbe:
        model = cls.build_model(params).train(mode == "train")
        b, size = params["batch_size"], params["image_size"]
        images = torch.empty(b, 3, size, size)
        return WorkProbe(lambda: model(images), b, backward=mode == "train",
                         parameters=count_parameters(model))

    def _batch(self) -> tuple[torch.Tensor, torch.Tensor]:
        if self.batches is None:
            return self.images, self.labels
        images, labels = next(self.batches)
        return normalize_on_device(images), labels

    def step(self) -> int:
        images, labels = self._batch()
        if self.ctx.mode == "train":
            self.trainer.step(lambda: self.loss_fn(self.model(images), labels))
        else:
            with torch.inference_mode(), self.autocast():
                self.model(images)
        return self.params["batch_size"]

    def metrics(self, loop: RepeatResult) -> Metrics:
        return {**input_wait_metrics(self.batches, loop),
                **agreement_metrics(self.extra.get("int8"))}

    def function_probe(self) -> ModelProbe:
        images, labels = batch_slice(self._batch())
        train = self.ctx.mode == "train"
        return ModelProbe(
            self.model, {"images": images, "labels": labels},
            forward=None if train else lambda m, x: {"logits": m(x["images"])},
            decisions={"logits": -1},
            loss=(lambda m, x: self.loss_fn(m(x["images"]), x["labels"])) if train else None,
            autocast=self.autocast)

    def info(self) -> Info:
        return {**super().info(), "reference_parameters": PARAMETERS}
