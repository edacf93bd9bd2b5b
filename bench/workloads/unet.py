"""U-Net segmentation of Carvana cars (milesial/Pytorch-UNet, 3 channels, 2 classes,
transposed-convolution upsampling: 31,037,698 parameters).

Training follows the reference ``train.py``: RMSprop (lr 1e-5, weight decay 1e-8, momentum
0.999), cross-entropy plus Dice loss, gradients clipped at norm 1, channels-last memory
format. Images are Carvana at the reference's scale 0.5 (959 x 640) in the full
configuration. Loader mode reads ``train/`` + ``train_masks/`` from ``data_path``.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from bench.data import DeviceBatches, data_mode, input_wait_metrics, synthetic_info
from bench.data.carvana import CarvanaDataset, SyntheticSegmentation
from bench.documents import Info, Metrics, Params, RepeatResult
from bench.flops import WorkProbe
from bench.function.model import ModelProbe, batch_slice
from bench.models.unet import UNet, dice_loss
from bench.workload import Workload, count_parameters, register
from bench.workloads._common import Trainer, data_root, loader_batches, synthetic_length

PARAMETERS = 31_037_698
CLASSES = 2


@register
class UNetWorkload(Workload):
    name = "unet"
    description = "U-Net (milesial/Pytorch-UNet), 3 channels, 2 classes, Carvana segmentation"
    group = "cv"
    modes = ("train", "infer")
    item_unit = "images"
    input_attrs = ("images", "masks")
    configs = {
        "small": {"batch_size": 1, "image_height": 64, "image_width": 96, "lr": 1e-5,
                  "data": "synthetic", "data_path": None, "num_workers": 1, "streams": 1},
        # Carvana at scale 0.5 (959 x 640). fp32 training saves 3.1 GiB of activations per
        # image (measured; docs/workloads.md), so 4 images need ~13 GiB with weights and
        # optimiser state: fits a 24 GB card with room for workspaces (6 would be too tight).
        "full": {"batch_size": 4, "image_height": 640, "image_width": 959, "lr": 1e-5,
                 "data": "synthetic", "data_path": None, "num_workers": 8, "streams": 1},
    }

    def setup(self) -> None:
        self.check_precision()
        torch.manual_seed(self.ctx.seed)
        p = self.params
        device = self.ctx.device
        h, w, b = p["image_height"], p["image_width"], p["batch_size"]
        self.model = self.build_model().to(device, memory_format=torch.channels_last)
        self.extra["parameters"] = count_parameters(self.model)
        self.batches: DeviceBatches | None = None
        if data_mode(p, self.name) == "loader":
            if p["data_path"]:
                root = data_root(self, "the Carvana data set (train/ and train_masks/)")
                self.batches = loader_batches(self, CarvanaDataset(root, h, w),
                                              source="carvana", path=str(root))
            else:
                ds = SyntheticSegmentation(synthetic_length(b), h, w, CLASSES, self.ctx.seed)
                self.batches = loader_batches(self, ds, source="synthetic (host DataLoader)")
        else:
            gen = torch.Generator(device="cpu").manual_seed(self.ctx.seed)
            self.images = torch.rand((b, 3, h, w), generator=gen).to(
                device, memory_format=torch.channels_last)
            self.masks = torch.randint(0, CLASSES, (b, h, w), generator=gen).to(device)
            self.extra["data"] = synthetic_info({"images": [b, 3, h, w],
                                                 "masks": [b, h, w]}).as_dict()
        if self.ctx.mode == "train":
            self.model.train()
            optimizer = torch.optim.RMSprop(self.model.parameters(), lr=p["lr"],
                                            weight_decay=1e-8, momentum=0.999)
            self.trainer = Trainer(self, self.model, optimizer, clip_grad_norm=1.0)
        else:
            self.model.eval()

    @staticmethod
    def build_model() -> UNet:
        return UNet(n_channels=3, n_classes=CLASSES, bilinear=False)

    @classmethod
    def work_probe(cls, mode: str, params: Params, precision: str,
                   info: Info) -> WorkProbe:
        model = cls.build_model().train(mode == "train")
        b = params["batch_size"]
        images = torch.empty(b, 3, params["image_height"], params["image_width"])
        return WorkProbe(lambda: model(images), b, backward=mode == "train",
                         parameters=count_parameters(model))

    def _batch(self) -> tuple[torch.Tensor, torch.Tensor]:
        if self.batches is None:
            return self.images, self.masks
        images, masks = next(self.batches)
        # The reference scales 8-bit images to [0, 1] without mean/std normalisation.
        images = images.float().div_(255.0).contiguous(memory_format=torch.channels_last)
        return images, masks

    def _loss(self, images: torch.Tensor, masks: torch.Tensor) -> torch.Tensor:
        logits = self.model(images)
        one_hot = F.one_hot(masks, CLASSES).permute(0, 3, 1, 2).float()
        return F.cross_entropy(logits, masks) + dice_loss(F.softmax(logits, dim=1).float(),
                                                          one_hot)

    def step(self) -> int:
        images, masks = self._batch()
        if self.ctx.mode == "train":
            self.trainer.step(lambda: self._loss(images, masks))
        else:
            with torch.inference_mode(), self.autocast():
                self.model(images).argmax(dim=1)
        return self.params["batch_size"]

    def metrics(self, loop: RepeatResult) -> Metrics:
        return input_wait_metrics(self.batches, loop)

    def function_probe(self) -> ModelProbe:
        images, masks = batch_slice(self._batch())
        if self.ctx.mode == "train":
            return ModelProbe(self.model, {"images": images, "masks": masks},
                              loss=lambda m, x: self._loss(x["images"], x["masks"]),
                              autocast=self.autocast)
        return ModelProbe(self.model, {"images": images},
                          forward=lambda m, x: {"logits": m(x["images"])},
                          decisions={"logits": 1}, autocast=self.autocast)

    def info(self) -> Info:
        return {**super().info(), "reference_parameters": PARAMETERS}
