"""Carvana Image Masking 2017 (the U-Net data set): ``ROOT/train/<id>.jpg`` with
``ROOT/train_masks/<id>_mask.gif``.

Images are resized to the workload's (height, width) - the published U-Net trains Carvana at
scale 0.5, 959 x 640 from 1918 x 1280 - bicubic for images, nearest for masks, as
milesial/Pytorch-UNet does. A mask pixel is class 1 (car) when its value is non-zero, whether
the GIF is palette-indexed (0/1) or grey (0/255). Items are ``(uint8 CHW image, int64 HW
mask)``.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset

from bench.data.image_ops import IMAGE_EXTENSIONS, pil, to_uint8_chw
from bench.errors import UserError

MASK_SUFFIX = "_mask"


def pair_carvana(root: Path) -> list[tuple[Path, Path]]:
    """[(image, mask)] for every image in ``train/``; every image must have its mask."""
    images_dir, masks_dir = root / "train", root / "train_masks"
    for d in (images_dir, masks_dir):
        if not d.is_dir():
            raise UserError(f"Carvana data set {root} has no {d.name}/ directory.",
                            "Point data_path at the directory that holds train/ (images) and "
                            "train_masks/ (<id>_mask.gif), as unpacked from the Kaggle archive.")
    masks = {p.stem[: -len(MASK_SUFFIX)]: p for p in masks_dir.iterdir()
             if p.is_file() and p.stem.endswith(MASK_SUFFIX)}
    images = sorted(p for p in images_dir.iterdir()
                    if p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS)
    if not images:
        raise UserError(f"Carvana data set {images_dir} holds no images.",
                        "Unpack train.zip into it (files like 0cdf5b5d0ce1_01.jpg).")
    missing = [p.name for p in images if p.stem not in masks]
    if missing:
        raise UserError(
            f"Carvana data set {root}: {len(missing)} image(s) have no mask in train_masks/, "
            f"e.g. {missing[0]} (expected {Path(missing[0]).stem}{MASK_SUFFIX}.gif).",
            "Unpack train_masks.zip next to train/, or remove the unmatched images.")
    return [(p, masks[p.stem]) for p in images]


def mask_to_classes(mask: np.ndarray) -> np.ndarray:
    """Binary class map (int64 HxW): 1 where the mask is non-zero in any channel."""
    if mask.ndim == 3:
        mask = mask.any(axis=-1)
    return (mask > 0).astype(np.int64)


class CarvanaDataset(Dataset[tuple[torch.Tensor, torch.Tensor]]):
    def __init__(self, root: Path, height: int, width: int) -> None:
        self.root = root
        self.size = (width, height)  # PIL order
        self.pairs = pair_carvana(root)

    def __len__(self) -> int:
        return len(self.pairs)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        Image = pil()
        image_path, mask_path = self.pairs[index]
        with Image.open(image_path) as img:
            image = img.convert("RGB")
        with Image.open(mask_path) as m:
            mask = m.copy()
        if image.size != mask.size:
            raise UserError(f"Carvana image {image_path.name} is {image.size[0]}x"
                            f"{image.size[1]} but its mask is {mask.size[0]}x{mask.size[1]}.",
                            "Replace the mismatched pair with the original files.")
        image = image.resize(self.size, Image.BICUBIC)
        mask = mask.resize(self.size, Image.NEAREST)
        return to_uint8_chw(image), torch.from_numpy(mask_to_classes(np.asarray(mask)))


class SyntheticSegmentation(Dataset[tuple[torch.Tensor, torch.Tensor]]):
    """Host-side random uint8 images and binary masks (loader mode without a data set)."""

    def __init__(self, length: int, height: int, width: int, classes: int, seed: int) -> None:
        self.length = length
        self.height = height
        self.width = width
        self.classes = classes
        self.seed = seed

    def __len__(self) -> int:
        return self.length

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        gen = torch.Generator().manual_seed(self.seed * 1_000_003 + index)
        image = torch.randint(0, 256, (3, self.height, self.width), generator=gen,
                              dtype=torch.uint8)
        mask = torch.randint(0, self.classes, (self.height, self.width), generator=gen)
        return image, mask
