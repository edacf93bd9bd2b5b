"""YOLOv10-N object detection, 80 classes (docs/workloads.md: 2,775,520 parameters).

Training is real: forward through both heads, YOLOv10's dual-assignment loss (task-aligned
assignment, CIoU box loss, DFL, classification BCE, for the one-to-many and one-to-one heads),
backward, gradient clipping and an SGD step, on COCO-like synthetic ground truths by default.
Inference is the deployed YOLOv10 path: a batched forward in eval mode through the one-to-one
head, box decoding and the NMS-free top-k selection (``max_det`` detections per image), all on
the device; the latency per batch includes that post-processing.

``data: synthetic`` (default) keeps a fixed batch of images and targets on the device, so the
device is measured and not the host. ``data: loader`` runs a real ``DataLoader`` each step
(host-made random images, or the COCO loader when ``data_path`` is given), measuring the
input pipeline end to end.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import torch
from torch import nn

from bench.data.coco import (
    CocoDetection,
    SyntheticDetection,
    collate_detection,
    synthetic_targets,
)
from bench.documents import Info, Params
from bench.errors import UserError
from bench.flops import WorkProbe
from bench.function.model import CHECK_BATCH, ModelProbe
from bench.models.yolov10 import YOLOv10, yolov10n
from bench.models.yolov10_loss import V10DetectLoss
from bench.workload import Workload, count_parameters, register

PARAMETERS = 2_775_520
MAX_STRIDE = 32  # the P5 level: input sides must be multiples of it
GRAD_CLIP_NORM = 10.0  # as the reference trainer
SGD_MOMENTUM = 0.937  # ultralytics/cfg/default.yaml
WEIGHT_DECAY = 5e-4
SYNTHETIC_LOADER_BATCHES = 8  # an epoch of the host-side synthetic data set, in batches


def optimizer_groups(model: nn.Module, weight_decay: float) -> list[dict[str, Any]]:
    """Parameter groups as the reference trainer builds them: weight decay on conv/linear
    weights only, none on normalisation weights and biases; frozen parameters left out."""
    decay, no_decay = [], []
    for module in model.modules():
        for name, p in module.named_parameters(recurse=False):
            if not p.requires_grad:
                continue
            is_norm = isinstance(module, nn.modules.batchnorm._BatchNorm)
            (no_decay if name == "bias" or is_norm else decay).append(p)
    return [{"params": decay, "weight_decay": weight_decay},
            {"params": no_decay, "weight_decay": 0.0}]


@register
class YOLOv10nWorkload(Workload):
    name = "yolov10n"
    description = ("YOLOv10-N (THU-MIG/yolov10, scale n), 80 classes, object detection; "
                   "training with the dual-assignment loss, NMS-free inference")
    group = "cv"
    modes = ("train", "infer")
    item_unit = "images"
    # Images only: permuting the targets would move objects between images, and the loss's
    # padded per-image target count (so its cost) with them. Training changes the weights
    # every step anyway; inference reads the images alone.
    input_attrs = ("images",)
    # full: the reference trains at 640 px with batch 256 over 8 GPUs, i.e. 32 per device;
    # fp32 training needs ~0.34 GB per image (measured), so 32 fits a 24 GB device and 64
    # would not. Inference keeps ~20 MB per image: 128 fills a large device's compute.
    configs = {
        "small": {"train_batch_size": 2, "infer_batch_size": 2, "image_size": 160,
                  "num_classes": 80, "lr": 0.01, "max_det": 300, "data": "synthetic",
                  "data_path": None, "num_workers": 0, "streams": 1},
        "full": {"train_batch_size": 32, "infer_batch_size": 128, "image_size": 640,
                 "num_classes": 80, "lr": 0.01, "max_det": 300, "data": "synthetic",
                 "data_path": None, "num_workers": 8, "streams": 1},
    }

    def setup(self) -> None:
        self.check_precision()
        self._check_params()
        torch.manual_seed(self.ctx.seed)
        p = self.params
        device = self.ctx.device
        self.batch_size = p["train_batch_size"] if self.ctx.mode == "train" \
            else p["infer_batch_size"]
        self.model: YOLOv10 = yolov10n(num_classes=p["num_classes"]).to(device)
        self.model.head.max_det = p["max_det"]
        self.extra["parameters"] = count_parameters(self.model)
        self.extra["batch_size"] = self.batch_size
        self.extra["inference_output"] = (
            "one-to-one head, decoded boxes and NMS-free top-k (max_det per image) on the device")

        if p["data_path"] is not None or p["data"] == "loader":
            self._setup_loader()
        else:
            gen = torch.Generator(device="cpu").manual_seed(self.ctx.seed)
            size = p["image_size"]
            self.images = torch.rand((self.batch_size, 3, size, size), generator=gen).to(device)
            targets = synthetic_targets(self.batch_size, size, p["num_classes"], gen)
            self.targets = {k: v.to(device) for k, v in targets.items()}
            self._batches = None
            counts = torch.bincount(targets["batch_idx"].long(), minlength=self.batch_size)
            self.extra["data_source"] = "synthetic on device (fixed batch)"
            self.extra["objects_per_image_mean"] = float(counts.float().mean())
            self.extra["objects_per_image_max"] = int(counts.max())

        if self.ctx.mode == "train":
            self.model.train()
            self.loss_fn = V10DetectLoss(self.model)
            self.optimizer = torch.optim.SGD(optimizer_groups(self.model, WEIGHT_DECAY),
                                             lr=p["lr"], momentum=SGD_MOMENTUM, nesterov=True)
            self.scaler = torch.amp.GradScaler(
                self.ctx.backend.device_type, enabled=self.precision_used == "fp16")
        else:
            self.model.eval()

    @classmethod
    def work_probe(cls, mode: str, params: Params, precision: str,
                   info: Info) -> WorkProbe:
        with torch.device("cpu"):  # its construction runs a forward to find the strides
            model = yolov10n(num_classes=params["num_classes"])
        model = model.to("meta").train(mode == "train")
        b = params["train_batch_size"] if mode == "train" else params["infer_batch_size"]
        size = params["image_size"]
        images = torch.empty(b, 3, size, size)
        return WorkProbe(lambda: model(images), b, backward=mode == "train",
                         what="forward and backward of the network (the dual-assignment "
                              "loss is not counted)" if mode == "train" else "",
                         parameters=count_parameters(model))

    def _check_params(self) -> None:
        p = self.params
        if p["data"] not in ("synthetic", "loader"):
            raise UserError(f"yolov10n parameter data={p['data']!r} is not known.",
                            "Use data: synthetic or data: loader.")
        size = p["image_size"]
        if not isinstance(size, int) or size < MAX_STRIDE or size % MAX_STRIDE:
            raise UserError(f"yolov10n parameter image_size={size!r} is not a multiple of "
                            f"{MAX_STRIDE}.", "Use e.g. 160 (small) or 640 (full).")
        for key in ("train_batch_size", "infer_batch_size", "max_det"):
            if not isinstance(p[key], int) or p[key] < 1:
                raise UserError(f"yolov10n parameter {key}={p[key]!r} must be a positive "
                                "integer.", f"Set {key} to e.g. 2.")

    def _setup_loader(self) -> None:
        p = self.params
        if p["data_path"] is not None:
            dataset: torch.utils.data.Dataset = CocoDetection(
                p["data_path"], p["image_size"], p["num_classes"], self.ctx.mode)
            self.extra["data_source"] = (f"COCO loader: {dataset.annotations} "
                                         f"({len(dataset)} images)")
        else:
            dataset = SyntheticDetection(self.batch_size * SYNTHETIC_LOADER_BATCHES,
                                         p["image_size"], p["num_classes"], self.ctx.seed)
            self.extra["data_source"] = "DataLoader over host-made synthetic images"
        workers = p["num_workers"]
        self.loader = torch.utils.data.DataLoader(
            dataset, batch_size=self.batch_size, shuffle=self.ctx.mode == "train",
            num_workers=workers, collate_fn=collate_detection, drop_last=False,
            pin_memory=self.ctx.backend.device_type != "cpu", persistent_workers=workers > 0,
            generator=torch.Generator().manual_seed(self.ctx.seed))
        self._batches = self._cycle()

    def _cycle(self) -> Iterator[tuple[torch.Tensor, dict[str, torch.Tensor]]]:
        while True:
            yield from self.loader

    def _next_batch(self) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        if self._batches is None:
            return self.images, self.targets
        images, targets = next(self._batches)
        device = self.ctx.device
        images = images.to(device, non_blocking=True).float().div_(255)
        return images, {k: v.to(device, non_blocking=True) for k, v in targets.items()}

    def step(self) -> int:
        images, targets = self._next_batch()
        if self.ctx.mode == "train":
            self.optimizer.zero_grad(set_to_none=True)
            with self.autocast():
                loss, items = self.loss_fn(self.model(images), targets)
            self.scaler.scale(loss).backward()
            self.scaler.unscale_(self.optimizer)
            nn.utils.clip_grad_norm_(self.model.parameters(), GRAD_CLIP_NORM)
            self.scaler.step(self.optimizer)
            self.scaler.update()
            self.record("loss", float(items.sum()))
        else:
            with torch.inference_mode(), self.autocast():
                self.detections = self.model(images)
        return int(images.shape[0])

    def function_probe(self) -> ModelProbe:
        images, targets = self._next_batch()
        keep = targets["batch_idx"] < CHECK_BATCH
        targets = {k: v[keep] for k, v in targets.items()}
        images = images[:CHECK_BATCH]
        if self.ctx.mode == "train":
            return ModelProbe(self.model, {"images": images, **targets},
                              loss=lambda m, x: self.loss_fn(m(x["images"]), x)[0],
                              autocast=self.autocast)
        return ModelProbe(self.model, {"images": images}, forward=head_outputs,
                          decisions={"class_scores": -1}, autocast=self.autocast,
                          notes=["compared at the one-to-one head's decoded output (boxes "
                                 "and class scores of every anchor), before the top-k"])

    def info(self) -> Info:
        return {**super().info(), "reference_parameters": PARAMETERS}


def head_outputs(model: Any, inputs: dict[str, Any]) -> dict[str, torch.Tensor]:
    """The inference head's output per anchor: xyxy boxes (pixels) and class probabilities."""
    head = model.head
    feats = model.features(inputs["images"])
    preds = head.decode(head._heads(feats, head.one2one_cv2, head.one2one_cv3))
    return {"boxes": preds[..., :4], "class_scores": preds[..., 4:]}
