"""The COCO detection loader on the committed fixture (tests/fixtures/coco) and the
COCO-like synthetic targets."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
import torch

from bench.data.coco import (
    LETTERBOX_FILL,
    CocoDetection,
    SyntheticDetection,
    coco_boxes_to_targets,
    collate_detection,
    letterbox_geometry,
    resolve_coco_paths,
    synthetic_targets,
)
from bench.errors import UserError


@pytest.fixture
def coco(fixtures):
    return fixtures / "coco"


def test_letterbox_geometry_hand_worked():
    wide = letterbox_geometry(64, 48, 160)  # scale 2.5 -> 160 x 120, 20 px above and below
    assert (wide.scale, wide.new_width, wide.new_height, wide.pad_left, wide.pad_top) == (
        2.5, 160, 120, 0, 20)
    tall = letterbox_geometry(40, 80, 160)  # scale 2 -> 80 x 160, 40 px left and right
    assert (tall.new_width, tall.new_height, tall.pad_left, tall.pad_top) == (80, 160, 40, 0)
    down = letterbox_geometry(1280, 640, 640)
    assert (down.scale, down.new_height, down.pad_top) == (0.5, 320, 160)


def test_coco_boxes_to_normalised_centre_boxes():
    g = letterbox_geometry(64, 48, 160)
    # [8, 4, 16, 16] -> x 20..60, y 10+20..50+20 in the 160 square
    out = coco_boxes_to_targets(np.array([[8, 4, 16, 16]]), g)
    assert out.tolist() == [pytest.approx([40 / 160, 50 / 160, 40 / 160, 40 / 160])]
    # a box running off the image is clipped to the image (not to the padding)
    out = coco_boxes_to_targets(np.array([[60, 40, 10, 10]]), g)
    assert out.tolist() == [pytest.approx([155 / 160, 130 / 160, 10 / 160, 20 / 160])]


def test_loader_reads_fixture_images_and_targets(coco):
    ds = CocoDetection(coco, image_size=160, num_classes=80, mode="train")
    assert len(ds) == 3
    assert ds.annotations.name == "instances_tiny.json" and ds.images_dir.name == "tiny"

    image, targets = ds[0]
    assert image.dtype == torch.uint8 and image.shape == (3, 160, 160)
    # categories 1, 3, 18, 90 -> 0..3; the crowd region and the zero-area box are skipped
    assert targets[:, 0].tolist() == [2, 0]
    assert targets[0, 1:].tolist() == pytest.approx([0.25, 0.3125, 0.25, 0.25])
    assert targets[1, 1:].tolist() == pytest.approx([125 / 160, 105 / 160, 50 / 160,
                                                     50 / 160])
    # the box centres land on the drawn rectangles; the padding is YOLO grey
    assert image[:, 50, 40].tolist() == [255, 0, 0]
    assert image[:, 105, 125].tolist() == [0, 0, 255]
    assert torch.all(image[:, :20, :] == LETTERBOX_FILL)
    assert torch.all(image[:, 140:, :] == LETTERBOX_FILL)

    image, targets = ds[1]  # a portrait JPEG: padding left and right
    assert targets.tolist() == [[3, pytest.approx(0.5), pytest.approx(0.625),
                                 pytest.approx(0.25), pytest.approx(0.5)]]
    green = image[:, 100, 80].tolist()
    assert green[1] > 240 and green[0] < 15 and green[2] < 15  # JPEG: nearly exact
    assert torch.all(image[:, :, :40] == LETTERBOX_FILL)

    image, targets = ds[2]  # no objects: kept as a background image
    assert targets.shape == (0, 5)


def test_collate_builds_the_loss_target_format(coco):
    ds = CocoDetection(coco, image_size=96)
    images, batch = collate_detection([ds[0], ds[2], ds[1]])
    assert images.shape == (3, 3, 96, 96)
    assert batch["batch_idx"].tolist() == [0, 0, 2]
    assert batch["cls"].view(-1).tolist() == [2, 0, 3]
    assert batch["bboxes"].shape == (3, 4)


def test_dataloader_with_workers_iterates(coco):
    loader = torch.utils.data.DataLoader(CocoDetection(coco, 64), batch_size=2,
                                         collate_fn=collate_detection, num_workers=1)
    sizes = [images.shape[0] for images, _ in loader]
    assert sizes == [2, 1]


def test_paths_from_root_or_json_file(coco):
    root = resolve_coco_paths(coco, "train")
    direct = resolve_coco_paths(coco / "annotations" / "instances_tiny.json", "infer")
    assert root == direct == (coco / "annotations" / "instances_tiny.json", coco / "tiny")


def test_several_splits_pick_train_or_val_by_mode(coco, tmp_path):
    (tmp_path / "annotations").mkdir()
    for split in ("train2017", "val2017"):
        shutil.copy(coco / "annotations" / "instances_tiny.json",
                    tmp_path / "annotations" / f"instances_{split}.json")
        shutil.copytree(coco / "tiny", tmp_path / split)
    assert resolve_coco_paths(tmp_path, "train")[1].name == "train2017"
    assert resolve_coco_paths(tmp_path, "infer")[1].name == "val2017"
    (tmp_path / "annotations" / "instances_val_extra.json").write_text("{}")
    with pytest.raises(UserError, match="Several COCO annotation files"):
        resolve_coco_paths(tmp_path, "infer")


def _copy_fixture(coco, tmp_path):
    shutil.copytree(coco, tmp_path / "coco")
    return tmp_path / "coco", tmp_path / "coco" / "annotations" / "instances_tiny.json"


def test_bad_inputs_are_user_errors_naming_the_file(coco, tmp_path):
    with pytest.raises(UserError, match="does not exist"):
        CocoDetection(tmp_path / "nowhere", 64)
    with pytest.raises(UserError, match="No instances_"):
        CocoDetection(tmp_path, 64)

    root, ann = _copy_fixture(coco, tmp_path)
    doc = json.loads(ann.read_text())

    ann.write_text("{not json")
    with pytest.raises(UserError, match=r"instances_tiny\.json cannot be read as JSON"):
        CocoDetection(root, 64)

    broken = {**doc, "annotations": [{"image_id": 1, "category_id": 1}]}
    ann.write_text(json.dumps(broken))
    with pytest.raises(UserError, match="malformed: 'bbox'"):
        CocoDetection(root, 64)

    ann.write_text(json.dumps(doc))
    with pytest.raises(UserError, match="4 categories but the model has 3 classes"):
        CocoDetection(root, 64, num_classes=3)

    (root / "tiny" / "000000000002.jpg").unlink()
    with pytest.raises(UserError, match=r"1 of 3 images .* missing .*000000000002\.jpg"):
        CocoDetection(root, 64)


def test_unreadable_image_is_a_user_error(coco, tmp_path):
    root, _ = _copy_fixture(coco, tmp_path)
    (root / "tiny" / "000000000003.png").write_bytes(b"not an image")
    ds = CocoDetection(root, 64)
    with pytest.raises(UserError, match=r"000000000003\.png cannot be read"):
        ds[2]


def test_synthetic_targets_have_coco_statistics():
    gen = torch.Generator().manual_seed(0)
    t = synthetic_targets(4000, 640, 80, gen)
    counts = torch.bincount(t["batch_idx"].long(), minlength=4000)
    assert counts.min() >= 1
    assert counts.float().mean().item() == pytest.approx(7.3, abs=0.3)
    assert counts.max() > 30  # long tail, as COCO
    box = t["bboxes"]
    assert torch.all(box[:, :2] - box[:, 2:] / 2 >= -1e-6)
    assert torch.all(box[:, :2] + box[:, 2:] / 2 <= 1 + 1e-6)
    side_px = (box[:, 2] * box[:, 3]).sqrt() * 640
    small = (side_px < 32).float().mean().item()
    large = (side_px > 96).float().mean().item()
    assert small == pytest.approx(0.41, abs=0.03) and large == pytest.approx(0.25, abs=0.03)
    assert t["cls"].min() >= 0 and t["cls"].max() <= 79 and t["cls"].shape == (len(box), 1)


def test_synthetic_targets_follow_the_seed():
    a = synthetic_targets(8, 160, 80, torch.Generator().manual_seed(3))
    b = synthetic_targets(8, 160, 80, torch.Generator().manual_seed(3))
    c = synthetic_targets(8, 160, 80, torch.Generator().manual_seed(4))
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert not torch.equal(a["batch_idx"], c["batch_idx"]) or not torch.equal(a["bboxes"],
                                                                              c["bboxes"])


def test_synthetic_dataset_items_are_deterministic_uint8_images():
    ds = SyntheticDetection(length=4, image_size=64, num_classes=80, seed=1)
    image, targets = ds[3]
    assert image.dtype == torch.uint8 and image.shape == (3, 64, 64)
    assert targets.shape[1] == 5 and len(targets) >= 1
    assert torch.equal(ds[3][0], image) and not torch.equal(ds[2][0], image)
