"""Image decoding and the standard ImageNet crops, without torchvision.

torchvision does not import beside every vendor's torch build, so the few transforms the
loaders need are written here with PIL: the training crop (RandomResizedCrop, scale 0.08-1,
aspect 3/4-4/3, plus a horizontal flip) and the evaluation crop (resize the short side to
size/0.875, centre crop). Images leave the loader as uint8 CHW tensors; the workload converts
and normalises on the device, so four times fewer bytes cross to the device.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import torch

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".ppm", ".bmp", ".pgm", ".tif", ".tiff", ".webp")
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def pil():
    try:
        from PIL import Image
    except ImportError as exc:  # pragma: no cover - pillow is a dependency
        from bench.errors import UserError

        raise UserError("The image loaders need Pillow, which is not installed.",
                        "Install it with `pip install pillow`.") from exc
    return Image


def load_rgb(path: Path):
    Image = pil()
    with Image.open(path) as img:
        return img.convert("RGB")


def to_uint8_chw(img) -> torch.Tensor:
    return torch.from_numpy(np.array(img, dtype=np.uint8, copy=True)).permute(2, 0, 1)


def random_resized_crop_box(width: int, height: int, rand: torch.Generator | None = None,
                            scale: tuple[float, float] = (0.08, 1.0),
                            ratio: tuple[float, float] = (3 / 4, 4 / 3)) -> tuple[int, ...]:
    """(left, top, right, bottom) of a RandomResizedCrop; the whole image after 10 misses."""
    area = width * height
    log_ratio = (math.log(ratio[0]), math.log(ratio[1]))
    for _ in range(10):
        u = torch.rand(3, generator=rand).tolist()
        target = area * (scale[0] + u[0] * (scale[1] - scale[0]))
        aspect = math.exp(log_ratio[0] + u[1] * (log_ratio[1] - log_ratio[0]))
        w = round(math.sqrt(target * aspect))
        h = round(math.sqrt(target / aspect))
        if 0 < w <= width and 0 < h <= height:
            left = int(u[2] * (width - w + 1))
            top = int(torch.randint(0, height - h + 1, (1,), generator=rand))
            return (left, top, left + w, top + h)
    return (0, 0, width, height)


def center_crop_box(width: int, height: int, size: int) -> tuple[int, int, int, int]:
    """(left, top, right, bottom) of a size x size centre crop (torchvision's rounding)."""
    left = round((width - size) / 2.0)
    top = round((height - size) / 2.0)
    return (left, top, left + size, top + size)


def resized_short_side(width: int, height: int, short: int) -> tuple[int, int]:
    """(width, height) with the shorter side scaled to ``short``, aspect kept."""
    if width <= height:
        return short, max(1, int(short * height / width))
    return max(1, int(short * width / height)), short


def train_crop(img, size: int, rand: torch.Generator | None = None):
    Image = pil()
    box = random_resized_crop_box(img.width, img.height, rand)
    out = img.resize((size, size), Image.BILINEAR, box=box)
    if float(torch.rand(1, generator=rand)) < 0.5:
        out = out.transpose(Image.FLIP_LEFT_RIGHT)
    return out


def eval_crop(img, size: int):
    Image = pil()
    w, h = resized_short_side(img.width, img.height, int(size / 0.875))
    img = img.resize((w, h), Image.BILINEAR)
    return img.crop(center_crop_box(w, h, size))


def normalize_on_device(images_uint8: torch.Tensor, dtype: torch.dtype = torch.float32,
                        mean: tuple[float, ...] = IMAGENET_MEAN,
                        std: tuple[float, ...] = IMAGENET_STD) -> torch.Tensor:
    """uint8 NCHW -> float, scaled to [0, 1] and normalised per channel."""
    x = images_uint8.to(dtype).div_(255.0)
    m = torch.tensor(mean, dtype=dtype, device=x.device).view(1, -1, 1, 1)
    s = torch.tensor(std, dtype=dtype, device=x.device).view(1, -1, 1, 1)
    return x.sub_(m).div_(s)
