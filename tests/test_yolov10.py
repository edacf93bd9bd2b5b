"""YOLOv10-N: the published parameter count (docs/workloads.md), the reference's state-dict
names, and the loss
(hand-worked numbers for its pieces; training on a fixed batch lowers it)."""

from __future__ import annotations

import math

import pytest
import torch

from bench.data.coco import synthetic_targets
from bench.models.yolov10 import (
    dist2bbox,
    make_anchors,
    make_divisible,
    scaled_repeats,
    topk_detections,
    yolov10n,
)
from bench.models.yolov10_loss import (
    TaskAlignedAssigner,
    V10DetectLoss,
    bbox2dist,
    bbox_ciou,
    dfl_loss,
    pad_targets,
)
from bench.workloads import count_parameters

# Looked up in THU-MIG/yolov10 (a model built from ultralytics/cfg/models/v10/yolov10n.yaml).
REFERENCE_KEYS = {
    "model.0.conv.weight": (16, 3, 3, 3),
    "model.2.m.0.cv1.conv.weight": (16, 16, 3, 3),
    "model.5.cv2.conv.weight": (128, 1, 3, 3),
    "model.9.cv2.bn.running_var": (256,),
    "model.10.attn.qkv.conv.weight": (256, 128, 1, 1),
    "model.10.ffn.1.conv.weight": (128, 256, 1, 1),
    "model.19.cv2.conv.weight": (128, 192, 1, 1),
    "model.22.m.0.cv1.2.conv.conv.weight": (256, 1, 7, 7),
    "model.22.m.0.cv1.2.conv1.conv.weight": (256, 1, 3, 3),
    "model.23.cv2.0.2.weight": (64, 64, 1, 1),
    "model.23.cv3.2.0.0.conv.weight": (256, 1, 3, 3),
    "model.23.one2one_cv2.1.0.conv.weight": (64, 128, 3, 3),
    "model.23.one2one_cv3.2.2.weight": (80, 80, 1, 1),
    "model.23.dfl.conv.weight": (1, 16, 1, 1),
}
# The reference's per-layer parameter counts (its model summary), layers 0..23.
REFERENCE_LAYER_PARAMETERS = [464, 4672, 7360, 18560, 49664, 9856, 197632, 36096, 460288,
                              164608, 249728, 0, 0, 148224, 0, 0, 37248, 36992, 0, 123648,
                              18048, 0, 282624, 929808]


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    return yolov10n()


def test_yolov10n_parameter_count(model):
    assert count_parameters(model) == 2_775_520
    # all but the DFL's 16 fixed bin values are trained
    assert sum(p.numel() for p in model.parameters() if p.requires_grad) == 2_775_504


def test_yolov10n_layers_match_the_reference_summary(model):
    assert [count_parameters(layer) for layer in model.model] == REFERENCE_LAYER_PARAMETERS


def test_yolov10n_state_dict_uses_reference_names(model):
    sd = model.state_dict()
    assert len(sd) == 595  # as the reference's DetectionModel state dict
    for key, shape in REFERENCE_KEYS.items():
        assert tuple(sd[key].shape) == shape, key
    assert list(sd)[-1] == "model.23.one2one_cv3.2.2.bias"
    assert "model.24.conv.weight" not in sd and "model.22.m.1.cv1.0.conv.weight" not in sd


def test_state_dict_round_trip_reproduces_outputs(model):
    other = yolov10n()
    other.load_state_dict(model.state_dict(), strict=True)
    x = torch.rand(1, 3, 64, 64)
    model.eval()
    other.eval()
    with torch.inference_mode():
        assert torch.equal(model(x), other(x))


def test_scaling_rules():
    assert make_divisible(1024 * 0.25) == 256
    assert make_divisible(100 * 0.25) == 32  # rounds up
    assert scaled_repeats(3, 0.33) == 1 and scaled_repeats(6, 0.33) == 2
    assert scaled_repeats(1, 0.33) == 1


def test_train_forward_gives_both_heads_at_three_strides(model):
    model.train()
    out = model(torch.rand(2, 3, 128, 96))
    assert model.stride.tolist() == [8.0, 16.0, 32.0]
    for head in ("one2many", "one2one"):
        assert [tuple(t.shape) for t in out[head]] == [(2, 144, 16, 12), (2, 144, 8, 6),
                                                       (2, 144, 4, 3)]


def test_eval_forward_is_nms_free_top_k(model):
    model.eval()
    with torch.inference_mode():
        dets = model(torch.rand(3, 3, 160, 160))
        few = model(torch.rand(1, 3, 64, 64))  # 84 anchors < max_det
    assert dets.shape == (3, 300, 6)
    scores = dets[..., 4]
    assert torch.all(scores[:, :-1] >= scores[:, 1:])  # sorted by score
    assert torch.all((dets[..., 5] >= 0) & (dets[..., 5] < 80))
    assert few.shape == (1, 84, 6)


def test_batchnorm_settings_of_the_reference(model):
    bn = model.model[0].bn
    assert (bn.eps, bn.momentum) == (1e-3, 0.03)
    # prior class bias: ~5 objects per 640x640 image over 80 classes at stride 8
    bias = model.model[23].one2one_cv3[0][2].bias
    assert bias[0].item() == pytest.approx(math.log(5 / 80 / 80 ** 2))


def test_one_to_one_head_does_not_train_the_backbone():
    model = yolov10n().train()
    x = torch.rand(1, 3, 64, 64)
    batch = {"batch_idx": torch.zeros(1), "cls": torch.tensor([[3.0]]),
             "bboxes": torch.tensor([[0.5, 0.5, 0.5, 0.5]])}
    preds = model(x)
    loss_fn = V10DetectLoss(model)
    one2one = loss_fn.one2one(preds["one2one"], *pad_targets(
        batch["batch_idx"], batch["cls"], batch["bboxes"], 1, (64, 64)))[0]
    one2one.backward()
    assert model.model[0].conv.weight.grad is None
    assert model.model[23].one2one_cv2[0][0].conv.weight.grad.abs().sum() > 0
    assert model.model[23].cv2[0][0].conv.weight.grad is None


# -- loss pieces, hand-worked --------------------------------------------------------------

def test_ciou_hand_worked():
    t = torch.tensor
    assert bbox_ciou(t([0.0, 0, 4, 4]), t([0.0, 0, 4, 4])).item() == pytest.approx(1.0)
    # nested, same centre and aspect: IoU 4/16
    assert bbox_ciou(t([0.0, 0, 4, 4]), t([1.0, 1, 3, 3])).item() == pytest.approx(0.25)
    # disjoint, same shape: 0 - centre distance^2 16 / enclosing diagonal^2 (6^2 + 2^2)
    assert bbox_ciou(t([0.0, 0, 2, 2]), t([4.0, 0, 6, 2])).item() == pytest.approx(-0.4)
    # IoU 0.5, rho^2 0.25 / c^2 8, aspect term v = 4/pi^2 (atan 2 - atan 1)^2, a = v/(v+0.5)
    v = 4 / math.pi ** 2 * (math.atan(2) - math.atan(1)) ** 2
    expected = 0.5 - 0.25 / 8 - v * v / (v + 0.5)
    assert bbox_ciou(t([0.0, 0, 2, 2]), t([0.0, 0, 2, 1])).item() == pytest.approx(expected,
                                                                                  rel=1e-5)


def test_box_distance_conversions():
    anchor = torch.tensor([[5.0, 5.0]])
    assert bbox2dist(anchor, torch.tensor([[2.0, 3, 9, 6]]), 15).tolist() == [[3, 2, 4, 1]]
    far = bbox2dist(anchor, torch.tensor([[0.0, 0, 30, 30]]), 15)
    assert far.tolist() == [[5, 5, pytest.approx(14.99), pytest.approx(14.99)]]
    assert dist2bbox(torch.tensor([[1.0, 2, 3, 4]]), anchor).tolist() == [[4, 3, 8, 9]]


def test_dfl_loss_hand_worked():
    target = torch.full((1, 4), 2.3)
    uniform = torch.zeros(1, 4, 16)  # cross-entropy log 16 for either bin
    assert dfl_loss(uniform, target).item() == pytest.approx(math.log(16))
    halves = torch.full((1, 4, 16), -1e4)
    halves[..., 2:4] = 0.0  # p(2) = p(3) = 1/2
    assert dfl_loss(halves, target).item() == pytest.approx(math.log(2))


def test_make_anchors_cell_centres_and_strides():
    feats = [torch.zeros(1, 1, 2, 3), torch.zeros(1, 1, 1, 1)]
    points, strides = make_anchors(feats, [8, 16])
    assert points.tolist() == [[0.5, 0.5], [1.5, 0.5], [2.5, 0.5], [0.5, 1.5], [1.5, 1.5],
                               [2.5, 1.5], [0.5, 0.5]]
    assert strides.view(-1).tolist() == [8] * 6 + [16]


def test_pad_targets_groups_objects_per_image_in_pixels():
    labels, boxes, mask = pad_targets(
        torch.tensor([2.0, 0.0, 2.0]), torch.tensor([[7.0], [1.0], [9.0]]),
        torch.tensor([[0.5, 0.5, 0.2, 0.4], [0.1, 0.1, 0.2, 0.2], [0.25, 0.5, 0.5, 1.0]]),
        batch_size=3, image_hw=(100, 200))
    assert labels.shape == (3, 2, 1)
    assert labels[..., 0].tolist() == [[1, 0], [0, 0], [7, 9]]
    assert mask[..., 0].tolist() == [[1, 0], [0, 0], [1, 1]]
    assert boxes[2, 0].tolist() == pytest.approx([80, 30, 120, 70])
    assert boxes[2, 1].tolist() == pytest.approx([0, 0, 100, 100])
    assert boxes[0, 0].tolist() == pytest.approx([0, 0, 40, 20])


def test_pad_targets_without_objects_keeps_one_empty_slot():
    labels, boxes, mask = pad_targets(torch.zeros(0), torch.zeros(0, 1), torch.zeros(0, 4),
                                      batch_size=2, image_hw=(64, 64))
    assert labels.shape == (2, 1, 1) and boxes.shape == (2, 1, 4) and mask.sum() == 0


def test_assigner_picks_best_aligned_anchor_inside_the_box():
    # four anchors on a row; the ground truth covers the first three
    anchors = torch.tensor([[4.0, 4.0], [12.0, 4.0], [20.0, 4.0], [28.0, 4.0]])
    gt = torch.tensor([[[0.0, 0.0, 24.0, 8.0]]])
    pd_boxes = torch.tensor([[[0.0, 0, 8, 8], [0.0, 0, 24, 8], [16.0, 0, 24, 8],
                              [0.0, 0, 24, 8]]])
    scores = torch.full((1, 4, 3), 0.5)
    assigner = TaskAlignedAssigner(topk=1, num_classes=3)
    out = assigner(scores, pd_boxes, anchors, torch.tensor([[[2.0]]]), gt,
                   torch.ones(1, 1, 1))
    # anchor 1 predicts the box exactly (CIoU 1); anchor 3 too, but lies outside the box
    assert out.fg_mask.tolist() == [[False, True, False, False]]
    assert out.target_scores[0, 1].tolist() == pytest.approx([0, 0, 1.0])
    assert out.target_scores[0, [0, 2, 3]].sum() == 0
    assert out.target_bboxes[0, 1].tolist() == [0, 0, 24, 8]

    many = TaskAlignedAssigner(topk=3, num_classes=3)(scores, pd_boxes, anchors,
                                                      torch.tensor([[[2.0]]]), gt,
                                                      torch.ones(1, 1, 1))
    assert many.fg_mask.tolist() == [[True, True, True, False]]
    # soft targets: alignment rescaled so the best anchor gets its IoU (1), others less
    soft = many.target_scores[0, :3, 2]
    assert soft[1].item() == pytest.approx(1.0) and 0 < soft[0].item() < 1


def test_assigner_gives_a_shared_anchor_to_the_box_it_overlaps_most():
    anchors = torch.tensor([[4.0, 4.0]])
    gts = torch.tensor([[[0.0, 0, 8, 8], [0.0, 0, 16, 16]]])
    pd_boxes = torch.tensor([[[0.0, 0, 9, 9]]])
    out = TaskAlignedAssigner(topk=1, num_classes=2)(
        torch.full((1, 1, 2), 0.5), pd_boxes, anchors, torch.tensor([[[0.0], [1.0]]]), gts,
        torch.ones(1, 2, 1))
    assert out.target_labels.tolist() == [[0]]  # IoU 64/81 beats 81/256
    assert out.target_bboxes[0, 0].tolist() == [0, 0, 8, 8]


def test_topk_detections_hand_worked():
    boxes = torch.arange(16.0).view(1, 4, 4)
    scores = torch.tensor([[[0.1, 0.2], [0.9, 0.3], [0.05, 0.8], [0.4, 0.7]]])
    dets = topk_detections(torch.cat((boxes, scores), -1), max_det=2, nc=2)
    assert dets[0, :, 4].tolist() == pytest.approx([0.9, 0.8])
    assert dets[0, :, 5].tolist() == [0, 1]
    assert dets[0, 0, :4].tolist() == [4, 5, 6, 7] and dets[0, 1, :4].tolist() == [8, 9, 10, 11]


@pytest.mark.slow
def test_loss_has_both_heads_and_training_lowers_it():
    torch.manual_seed(0)
    model = yolov10n().train()
    loss_fn = V10DetectLoss(model)
    gen = torch.Generator().manual_seed(0)
    images = torch.rand(2, 3, 128, 128, generator=gen)
    batch = synthetic_targets(2, 128, 80, gen)
    opt = torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=0.01,
                          momentum=0.937, nesterov=True)
    losses = []
    for _ in range(15):
        opt.zero_grad()
        loss, items = loss_fn(model(images), batch)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 10.0)
        opt.step()
        losses.append(items.sum().item())
        assert items.shape == (6,) and torch.all(items > 0)
        assert loss.item() == pytest.approx(items.sum().item() * 2, rel=1e-5)  # x batch size
    # memorising one fixed batch: the loss must fall well below where it started
    assert sum(losses[-3:]) / 3 < 0.8 * sum(losses[:3]) / 3, losses
