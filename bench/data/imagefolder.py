"""ImageFolder data sets (an ImageNet subset): ``ROOT/<class>/<image>``.

Classes are the sorted sub-directory names (torchvision's convention, so the label of a class
is the same as in a torchvision-trained checkpoint). Training applies the random-resized crop
and flip, inference the centre crop; both yield ``(uint8 CHW image, int64 label)``.
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch.utils.data import Dataset

from bench.data.image_ops import IMAGE_EXTENSIONS, eval_crop, load_rgb, to_uint8_chw, train_crop
from bench.errors import UserError


def scan_image_folder(root: Path) -> tuple[list[str], list[tuple[Path, int]]]:
    """(class names, [(image path, class index)]) in a stable order."""
    classes = sorted(p.name for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    if not classes:
        raise UserError(f"ImageFolder data set {root} has no class sub-directories.",
                        "Lay it out as ROOT/<class>/<image>.jpg (e.g. an ImageNet subset's "
                        "train/ directory) and point data_path at ROOT.")
    samples = [(path, index) for index, name in enumerate(classes)
               for path in sorted((root / name).rglob("*"))
               if path.is_file() and path.suffix.lower() in IMAGE_EXTENSIONS]
    if not samples:
        raise UserError(f"ImageFolder data set {root} has classes but no images "
                        f"({', '.join(IMAGE_EXTENSIONS)}).",
                        "Check that data_path points at the directory holding the class "
                        "folders.")
    return classes, samples


class ImageFolderDataset(Dataset[tuple[torch.Tensor, int]]):
    def __init__(self, root: Path, image_size: int, train: bool, num_classes: int) -> None:
        self.root = root
        self.image_size = image_size
        self.train = train
        self.classes, self.samples = scan_image_folder(root)
        if len(self.classes) > num_classes:
            raise UserError(
                f"ImageFolder data set {root} has {len(self.classes)} classes, more than the "
                f"model's num_classes={num_classes}.",
                "Use a subset with at most that many classes (the published evaluation uses "
                "100 ImageNet classes).")

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        path, label = self.samples[index]
        img = load_rgb(path)
        img = train_crop(img, self.image_size) if self.train else eval_crop(img, self.image_size)
        return to_uint8_chw(img), label


class SyntheticImages(Dataset[tuple[torch.Tensor, int]]):
    """Host-side random uint8 images and labels (loader mode without a data set).

    Each item is derived from its index, so every epoch and every run sees the same data.
    """

    def __init__(self, length: int, shape: tuple[int, ...], num_classes: int,
                 seed: int) -> None:
        self.length = length
        self.shape = shape
        self.num_classes = num_classes
        self.seed = seed

    def __len__(self) -> int:
        return self.length

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        gen = torch.Generator().manual_seed(self.seed * 1_000_003 + index)
        image = torch.randint(0, 256, self.shape, generator=gen, dtype=torch.uint8)
        label = int(torch.randint(0, self.num_classes, (1,), generator=gen))
        return image, label
