"""COCO object detection data: a loader for the real format and COCO-like synthetic targets.

The real format is a COCO ``instances_*.json`` (images, annotations with pixel boxes
``[x, y, width, height]``, categories) beside a folder of images, as distributed:
``<root>/annotations/instances_val2017.json`` and ``<root>/val2017/*.jpg``. Images are
letterboxed to a square (aspect ratio kept, grey padding as in YOLO training) and boxes are
converted to the detector's target format: one row per object, class index (categories
renumbered 0..K-1 in id order), centre x, centre y, width, height normalised to the square.

Synthetic targets reproduce COCO train2017's statistics that matter for the detector's cost:
about 7.3 objects per image with a long tail (the padded target tensor and the assigner's work
grow with the largest count in a batch) and COCO's mix of small / medium / large objects.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset

from bench.errors import UserError

LETTERBOX_FILL = 114  # grey padding value used by YOLO training pipelines

# COCO train2017: 860,001 instances over 118,287 images.
COCO_MEAN_OBJECTS_PER_IMAGE = 7.3
# COCO's object-size mix (share of instances) and sqrt(area) bounds in pixels at ~640 px:
# small < 32^2, medium 32^2..96^2, large > 96^2 (the COCO evaluation's size classes).
COCO_SIZE_SHARES = (0.41, 0.34, 0.25)
COCO_SIZE_BOUNDS_PX = ((4.0, 32.0), (32.0, 96.0), (96.0, 640.0))
REFERENCE_SIZE_PX = 640
MAX_OBJECTS_PER_IMAGE = 100  # COCO's largest image has 93 instances


# -- synthetic targets --------------------------------------------------------------------

def synthetic_targets(batch_size: int, image_size: int, num_classes: int,
                      generator: torch.Generator,
                      mean_objects: float = COCO_MEAN_OBJECTS_PER_IMAGE) -> dict[str, torch.Tensor]:
    """Random ground truths for ``batch_size`` images with COCO-like statistics.

    Objects per image follow a geometric distribution on 1, 2, ... with the given mean (long
    tail, like COCO); each object's size class is drawn with COCO's shares, its sqrt(area)
    log-uniformly within the class (scaled from 640 px to ``image_size``), its aspect ratio
    log-normally, its centre uniformly with the box inside the image, its class uniformly.
    Returns the detector's flat target format (CPU tensors): ``batch_idx`` (N,), ``cls``
    (N, 1) and ``bboxes`` (N, 4) normalised centre x, centre y, width, height.
    """
    p = 1.0 / mean_objects
    u = torch.rand(batch_size, generator=generator).clamp(min=1e-12)
    counts = (torch.floor(torch.log(u) / math.log(1.0 - p)) + 1).clamp(1, MAX_OBJECTS_PER_IMAGE)
    counts = counts.long()
    n = int(counts.sum())
    batch_idx = torch.repeat_interleave(torch.arange(batch_size), counts).float()

    size_class = torch.multinomial(torch.tensor(COCO_SIZE_SHARES), n, replacement=True,
                                   generator=generator)
    bounds = torch.tensor(COCO_SIZE_BOUNDS_PX)[size_class]  # (N, 2)
    log_lo, log_hi = bounds.log().unbind(-1)
    side_px = torch.exp(log_lo + (log_hi - log_lo) * torch.rand(n, generator=generator))
    side_px = side_px * (image_size / REFERENCE_SIZE_PX)
    aspect = torch.exp(0.6 * torch.randn(n, generator=generator))  # width / height
    w = (side_px * aspect.sqrt()).clamp(1.0, image_size)
    h = (side_px / aspect.sqrt()).clamp(1.0, image_size)
    cx = w / 2 + (image_size - w) * torch.rand(n, generator=generator)
    cy = h / 2 + (image_size - h) * torch.rand(n, generator=generator)
    bboxes = torch.stack((cx, cy, w, h), 1) / image_size
    cls = torch.randint(0, num_classes, (n, 1), generator=generator).float()
    return {"batch_idx": batch_idx, "cls": cls, "bboxes": bboxes}


# -- letterbox and box conversion -----------------------------------------------------------

@dataclass(frozen=True)
class Letterbox:
    """How an image of ``width`` x ``height`` maps into a ``size`` x ``size`` square."""

    scale: float
    new_width: int
    new_height: int
    pad_left: int
    pad_top: int
    size: int


def letterbox_geometry(width: int, height: int, size: int) -> Letterbox:
    """Scale so the long side is ``size`` (up or down), centre, pad the rest."""
    scale = min(size / width, size / height)
    new_w = min(size, max(1, round(width * scale)))
    new_h = min(size, max(1, round(height * scale)))
    return Letterbox(scale, new_w, new_h, (size - new_w) // 2, (size - new_h) // 2, size)


def coco_boxes_to_targets(boxes_xywh_px: np.ndarray, geometry: Letterbox) -> np.ndarray:
    """COCO pixel boxes ``[x, y, width, height]`` to normalised centre-x, centre-y, w, h in
    the letterboxed square; boxes are clipped to the image and empty ones become zero-size
    (callers drop them with ``targets[:, 2:].min(1) > 0``)."""
    g = geometry
    boxes = np.asarray(boxes_xywh_px, dtype=np.float64).reshape(-1, 4)
    x1 = boxes[:, 0] * g.scale + g.pad_left
    y1 = boxes[:, 1] * g.scale + g.pad_top
    x2 = x1 + boxes[:, 2] * g.scale
    y2 = y1 + boxes[:, 3] * g.scale
    x1, x2 = (np.clip(v, g.pad_left, g.pad_left + g.new_width) for v in (x1, x2))
    y1, y2 = (np.clip(v, g.pad_top, g.pad_top + g.new_height) for v in (y1, y2))
    out = np.stack(((x1 + x2) / 2, (y1 + y2) / 2, x2 - x1, y2 - y1), 1) / g.size
    return out.astype(np.float32)


# -- the data set ---------------------------------------------------------------------------

@dataclass
class CocoImage:
    file: Path
    boxes_xywh_px: np.ndarray  # (n, 4)
    classes: np.ndarray  # (n,) contiguous class indices


def resolve_coco_paths(data_path: str | Path, mode: str) -> tuple[Path, Path]:
    """Find the annotation file and the image folder from a user-given path.

    ``data_path`` is a COCO root (``annotations/instances_<split>.json`` + ``<split>/``) or an
    instances JSON file. With several instances files in a root, training uses the ``train*``
    split and inference the ``val*`` split.
    """
    path = Path(data_path).expanduser()
    if not path.exists():
        raise UserError(f"COCO data path {path} does not exist.",
                        "Set data_path to a COCO root (annotations/instances_<split>.json and "
                        "<split>/ images) or to an instances JSON file.")
    if path.is_file():
        annotations = path
    else:
        found = sorted({*path.glob("annotations/instances_*.json"), *path.glob("instances_*.json")})
        if not found:
            raise UserError(f"No instances_*.json under {path} or {path / 'annotations'}.",
                            "Point data_path at a COCO root or directly at the annotation file.")
        prefix = "train" if mode == "train" else "val"
        preferred = [f for f in found if _split_name(f).startswith(prefix)]
        if len(found) == 1:
            annotations = found[0]
        elif len(preferred) == 1:
            annotations = preferred[0]
        else:
            raise UserError(
                f"Several COCO annotation files under {path}: "
                f"{', '.join(f.name for f in found)}.",
                "Set data_path to the one instances JSON file to use.")
    split = _split_name(annotations)
    root = annotations.parent.parent if annotations.parent.name == "annotations" \
        else annotations.parent
    candidates = [root / split, root / "images" / split, annotations.parent / split,
                  root / "images"]
    for images in candidates:
        if images.is_dir():
            return annotations, images
    raise UserError(f"No image folder for {annotations.name}: looked in "
                    f"{', '.join(str(c) for c in candidates)}.",
                    f"Put the images of split {split!r} in {root / split}.")


def _split_name(annotations: Path) -> str:
    stem = annotations.stem
    return stem[len("instances_"):] if stem.startswith("instances_") else stem


def read_coco_annotations(annotations: Path, images_dir: Path, num_classes: int
                          ) -> tuple[list[CocoImage], list[dict[str, Any]]]:
    """Parse an instances JSON: one entry per image (with its boxes), and the categories.

    Crowd regions (``iscrowd: 1``) and boxes without area are left out, as YOLO training
    does; images without objects stay (they train the background). Every problem is a
    ``UserError`` naming the file and the field.
    """
    try:
        doc = json.loads(annotations.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise UserError(f"COCO annotation file {annotations} cannot be read as JSON: {exc}.",
                        "Give a valid instances_*.json file.") from exc
    if not isinstance(doc, dict):
        raise UserError(f"COCO annotation file {annotations} is not a JSON object.",
                        "Give a COCO instances file (keys images, annotations, categories).")
    for key in ("images", "annotations"):
        if not isinstance(doc.get(key), list):
            raise UserError(f"COCO annotation file {annotations} has no list {key!r}.",
                            "Give a COCO instances file (keys images, annotations, "
                            "categories).")
    categories = doc.get("categories")
    try:
        if isinstance(categories, list) and categories:
            cat_ids = sorted(int(c["id"]) for c in categories)
        else:
            categories = []
            cat_ids = sorted({int(a["category_id"]) for a in doc["annotations"]})
        index = {cid: i for i, cid in enumerate(cat_ids)}
        if len(index) > num_classes:
            raise UserError(
                f"COCO annotation file {annotations} has {len(index)} categories but the "
                f"model has {num_classes} classes.",
                "Set the workload's num_classes to at least the category count.")
        per_image: dict[int, list[tuple[list[float], int]]] = {}
        for i, ann in enumerate(doc["annotations"]):
            where = f"annotations[{i}]"
            box = [float(v) for v in ann["bbox"]]
            if len(box) != 4:
                raise ValueError(f"{where}.bbox has {len(box)} values, not 4")
            if ann.get("iscrowd", 0) or box[2] <= 0 or box[3] <= 0:
                continue
            if int(ann["category_id"]) not in index:
                raise ValueError(f"{where}.category_id {ann['category_id']} is not a category")
            per_image.setdefault(int(ann["image_id"]), []).append(
                (box, index[int(ann["category_id"])]))
        images = []
        for img in doc["images"]:
            objects = per_image.get(int(img["id"]), [])
            boxes = np.array([b for b, _ in objects], dtype=np.float64).reshape(-1, 4)
            classes = np.array([c for _, c in objects], dtype=np.int64)
            images.append(CocoImage(images_dir / str(img["file_name"]), boxes, classes))
    except (KeyError, TypeError, ValueError) as exc:
        raise UserError(f"COCO annotation file {annotations} is malformed: {exc!s}.",
                        "Each image needs id and file_name; each annotation image_id, "
                        "category_id and bbox [x, y, width, height].") from exc
    if not images:
        raise UserError(f"COCO annotation file {annotations} lists no images.",
                        "Give an instances file with at least one image.")
    missing = [im.file for im in images if not im.file.is_file()]
    if missing:
        raise UserError(f"{len(missing)} of {len(images)} images listed in {annotations} are "
                        f"missing from {images_dir} (first: {missing[0].name}).",
                        "Put the split's images there or point data_path at the right root.")
    return images, categories


class CocoDetection(Dataset):
    """COCO detection images letterboxed to ``image_size``, with YOLO-format targets.

    An item is ``(image uint8 (3, S, S), targets float32 (n, 5))``, targets rows holding
    class, centre x, centre y, width, height (normalised). ``collate_detection`` batches them.
    """

    def __init__(self, data_path: str | Path, image_size: int, num_classes: int = 80,
                 mode: str = "train") -> None:
        self.annotations, self.images_dir = resolve_coco_paths(data_path, mode)
        self.images, self.categories = read_coco_annotations(self.annotations, self.images_dir,
                                                             num_classes)
        self.image_size = image_size

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor]:
        from PIL import Image, UnidentifiedImageError

        entry = self.images[i]
        try:
            with Image.open(entry.file) as im:
                rgb = im.convert("RGB")
        except (OSError, UnidentifiedImageError) as exc:
            raise UserError(f"Image {entry.file} cannot be read: {exc}.",
                            "Replace the file or remove it from the annotations.") from exc
        g = letterbox_geometry(rgb.width, rgb.height, self.image_size)
        canvas = Image.new("RGB", (g.size, g.size), (LETTERBOX_FILL,) * 3)
        canvas.paste(rgb.resize((g.new_width, g.new_height), Image.Resampling.BILINEAR),
                     (g.pad_left, g.pad_top))
        image = torch.from_numpy(np.asarray(canvas).copy()).permute(2, 0, 1).contiguous()
        boxes = coco_boxes_to_targets(entry.boxes_xywh_px, g)
        keep = boxes[:, 2:].min(1) > 0 if len(boxes) else np.zeros(0, dtype=bool)
        targets = np.concatenate((entry.classes[keep, None].astype(np.float32), boxes[keep]), 1)
        return image, torch.from_numpy(targets.reshape(-1, 5))


class SyntheticDetection(Dataset):
    """Random images and COCO-like targets made on the host, one per index (deterministic),
    so the loader mode measures a real input pipeline without a data set on disk."""

    def __init__(self, length: int, image_size: int, num_classes: int, seed: int) -> None:
        self.length = length
        self.image_size = image_size
        self.num_classes = num_classes
        self.seed = seed

    def __len__(self) -> int:
        return self.length

    def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor]:
        gen = torch.Generator().manual_seed(self.seed * 1_000_003 + i)
        s = self.image_size
        image = torch.randint(0, 256, (3, s, s), dtype=torch.uint8, generator=gen)
        t = synthetic_targets(1, s, self.num_classes, gen)
        return image, torch.cat((t["cls"], t["bboxes"]), 1)


def collate_detection(items: list[tuple[torch.Tensor, torch.Tensor]]
                      ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """Stack images; concatenate targets with each row's image index (the loss's format)."""
    images = torch.stack([im for im, _ in items])
    targets = [t for _, t in items]
    batch_idx = torch.cat([torch.full((len(t),), float(i)) for i, t in enumerate(targets)])
    rows = torch.cat(targets) if targets else torch.zeros(0, 5)
    return images, {"batch_idx": batch_idx, "cls": rows[:, :1], "bboxes": rows[:, 1:]}
