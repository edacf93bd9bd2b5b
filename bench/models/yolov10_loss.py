"""YOLOv10 training loss: consistent dual assignment (one-to-many + one-to-one).

Each head is scored with the YOLOv8 detection loss: a task-aligned assigner picks, per ground
truth, the ``topk`` anchors whose centre lies inside the box and whose alignment
``score**alpha * CIoU**beta`` is highest (top 10 for the one-to-many head, top 1 for the
one-to-one head); then classification BCE against IoU-scaled soft targets, a CIoU box loss and
the distribution focal loss (DFL) on the box-side distributions, weighted 7.5 / 0.5 / 1.5 and
multiplied by the batch size. The total is the sum of both heads' losses. Written from the
method's description (THU-MIG/yolov10 ``v10DetectLoss``, ``v8DetectionLoss``, ``BboxLoss``,
``TaskAlignedAssigner``), numerically equal to it; targets follow the reference's batch format.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from bench.models.yolov10 import REG_MAX, YOLOv10, dist2bbox, make_anchors


@dataclass(frozen=True)
class LossGains:
    """The reference's default hyper-parameters (ultralytics/cfg/default.yaml)."""

    box: float = 7.5
    cls: float = 0.5
    dfl: float = 1.5


def bbox_ciou(box1: torch.Tensor, box2: torch.Tensor, eps: float = 1e-7) -> torch.Tensor:
    """Complete IoU of x1, y1, x2, y2 boxes (broadcast over leading dims; last dim 4).

    CIoU = IoU - centre distance^2 / enclosing diagonal^2 - alpha * v, where v measures the
    aspect-ratio mismatch and alpha = v / (1 - IoU + v) is treated as a constant (no gradient).
    """
    b1x1, b1y1, b1x2, b1y2 = box1.unbind(-1)
    b2x1, b2y1, b2x2, b2y2 = box2.unbind(-1)
    w1, h1 = b1x2 - b1x1, b1y2 - b1y1 + eps
    w2, h2 = b2x2 - b2x1, b2y2 - b2y1 + eps
    inter = ((b1x2.minimum(b2x2) - b1x1.maximum(b2x1)).clamp(0)
             * (b1y2.minimum(b2y2) - b1y1.maximum(b2y1)).clamp(0))
    union = w1 * h1 + w2 * h2 - inter + eps
    iou = inter / union
    cw = b1x2.maximum(b2x2) - b1x1.minimum(b2x1)
    ch = b1y2.maximum(b2y2) - b1y1.minimum(b2y1)
    diag2 = cw.pow(2) + ch.pow(2) + eps
    rho2 = ((b2x1 + b2x2 - b1x1 - b1x2).pow(2) + (b2y1 + b2y2 - b1y1 - b1y2).pow(2)) / 4
    v = (4 / math.pi ** 2) * ((w2 / h2).atan() - (w1 / h1).atan()).pow(2)
    with torch.no_grad():
        alpha = v / (v - iou + (1 + eps))
    return iou - (rho2 / diag2 + v * alpha)


def bbox2dist(anchors: torch.Tensor, boxes: torch.Tensor, max_dist: float) -> torch.Tensor:
    """x1, y1, x2, y2 boxes to (left, top, right, bottom) distances, clamped to the DFL range
    ``[0, max_dist - 0.01]`` so the right-hand bin always exists."""
    x1y1, x2y2 = boxes.chunk(2, -1)
    return torch.cat((anchors - x1y1, x2y2 - anchors), -1).clamp(0, max_dist - 0.01)


def dfl_loss(pred_dist: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Distribution focal loss: cross-entropy towards the two bins around each real-valued
    target, weighted by proximity; mean over the 4 sides.

    ``pred_dist`` is (n, 4, bins) logits, ``target`` (n, 4) in bin units; returns (n,).
    """
    left = target.long()
    right = left + 1
    w_left = right - target
    w_right = 1 - w_left
    logp = pred_dist.float().log_softmax(-1)
    ce_left = -logp.gather(-1, left.unsqueeze(-1)).squeeze(-1)
    ce_right = -logp.gather(-1, right.unsqueeze(-1)).squeeze(-1)
    return (ce_left * w_left + ce_right * w_right).mean(-1)


def pad_targets(batch_idx: torch.Tensor, cls: torch.Tensor, bboxes: torch.Tensor,
                batch_size: int, image_hw: tuple[int, int]
                ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Flat targets (one row per object) to per-image padded tensors.

    ``bboxes`` are centre x, centre y, width, height normalised to the image (the YOLO label
    format). Returns labels (B, M, 1), x1 y1 x2 y2 boxes in pixels (B, M, 4) and a validity
    mask (B, M, 1), with M the largest object count in the batch (at least 1).
    """
    device = bboxes.device
    n = batch_idx.shape[0]
    image = batch_idx.long().view(-1)
    counts = torch.bincount(image, minlength=batch_size)
    m = max(int(counts.max()) if n else 0, 1)
    order = torch.argsort(image, stable=True)
    image = image[order]
    first = torch.cumsum(counts, 0) - counts
    slot = torch.arange(n, device=device) - first[image]
    h, w = image_hw
    xywh = bboxes[order].float() * torch.tensor([w, h, w, h], device=device, dtype=torch.float)
    xyxy = torch.cat((xywh[:, :2] - xywh[:, 2:] / 2, xywh[:, :2] + xywh[:, 2:] / 2), 1)
    labels = torch.zeros(batch_size, m, 1, device=device)
    boxes = torch.zeros(batch_size, m, 4, device=device)
    mask = torch.zeros(batch_size, m, 1, device=device)
    labels[image, slot] = cls.view(-1, 1)[order].float()
    boxes[image, slot] = xyxy
    mask[image, slot] = 1.0
    return labels, boxes, mask


@dataclass
class Assignment:
    target_labels: torch.Tensor  # (B, A)
    target_bboxes: torch.Tensor  # (B, A, 4)
    target_scores: torch.Tensor  # (B, A, C) IoU-scaled soft one-hot
    fg_mask: torch.Tensor  # (B, A) bool


class TaskAlignedAssigner:
    """Task-aligned one-to-``topk`` assignment of ground truths to anchors (TOOD)."""

    def __init__(self, topk: int, num_classes: int, alpha: float = 0.5, beta: float = 6.0,
                 eps: float = 1e-9) -> None:
        self.topk = topk
        self.num_classes = num_classes
        self.alpha = alpha
        self.beta = beta
        self.eps = eps

    @staticmethod
    def anchors_in_boxes(anchors: torch.Tensor, boxes: torch.Tensor,
                         eps: float = 1e-9) -> torch.Tensor:
        """(B, M, A) bool: anchor point strictly inside each box."""
        lt, rb = boxes.unsqueeze(2).chunk(2, -1)  # (B, M, 1, 2)
        deltas = torch.cat((anchors - lt, rb - anchors), -1)  # (B, M, A, 4)
        return deltas.amin(-1) > eps

    @torch.no_grad()
    def __call__(self, pd_scores: torch.Tensor, pd_bboxes: torch.Tensor, anchors: torch.Tensor,
                 gt_labels: torch.Tensor, gt_bboxes: torch.Tensor, mask_gt: torch.Tensor
                 ) -> Assignment:
        """``pd_scores`` (B, A, C) probabilities, ``pd_bboxes`` (B, A, 4) and ``anchors``
        (A, 2) in pixels, ground truths padded as by ``pad_targets``."""
        b, a, c = pd_scores.shape
        m = gt_bboxes.shape[1]
        labels = gt_labels.long().squeeze(-1)  # (B, M)
        valid = mask_gt.squeeze(-1) > 0  # (B, M)
        in_gts = self.anchors_in_boxes(anchors, gt_bboxes)
        candidates = in_gts & valid.unsqueeze(-1)  # (B, M, A)

        overlaps = torch.zeros(b, m, a, dtype=pd_bboxes.dtype, device=pd_bboxes.device)
        pair_gt = gt_bboxes.unsqueeze(2).expand(-1, -1, a, -1)[candidates]
        pair_pd = pd_bboxes.unsqueeze(1).expand(-1, m, -1, -1)[candidates]
        overlaps[candidates] = bbox_ciou(pair_gt, pair_pd).clamp(0).to(overlaps.dtype)
        cls_scores = pd_scores.gather(2, labels.unsqueeze(1).expand(-1, a, -1)).transpose(1, 2)
        cls_scores = torch.where(candidates, cls_scores, torch.zeros_like(cls_scores))
        align = cls_scores.pow(self.alpha) * overlaps.pow(self.beta)  # (B, M, A)

        top = align.topk(self.topk, dim=-1).indices  # (B, M, topk)
        in_topk = torch.zeros_like(align).scatter_(-1, top, 1.0)
        mask_pos = in_topk * in_gts * valid.unsqueeze(-1)  # (B, M, A)

        # an anchor claimed by several ground truths goes to the one it overlaps most
        claimed = mask_pos.sum(1, keepdim=True) > 1  # (B, 1, A)
        best = F.one_hot(overlaps.argmax(1), m).transpose(1, 2).to(mask_pos.dtype)
        mask_pos = torch.where(claimed, best, mask_pos)
        fg_mask = mask_pos.sum(1) > 0  # (B, A)
        gt_idx = mask_pos.argmax(1)  # (B, A)

        target_labels = labels.gather(1, gt_idx).clamp(0)
        target_bboxes = gt_bboxes.gather(1, gt_idx.unsqueeze(-1).expand(-1, -1, 4))
        target_scores = F.one_hot(target_labels, c) * fg_mask.unsqueeze(-1)

        # soft targets: each positive's alignment, rescaled so a box's best anchor gets its IoU
        align = align * mask_pos
        best_align = align.amax(-1, keepdim=True)
        best_overlap = (overlaps * mask_pos).amax(-1, keepdim=True)
        norm = (align * best_overlap / (best_align + self.eps)).amax(1).unsqueeze(-1)
        return Assignment(target_labels, target_bboxes, target_scores * norm, fg_mask)


class DetectionLoss:
    """The YOLOv8 detection loss of one head (box CIoU, classification BCE, DFL)."""

    def __init__(self, nc: int, strides: list[float], topk: int,
                 gains: LossGains = LossGains(), reg_max: int = REG_MAX) -> None:
        self.nc = nc
        self.strides = strides
        self.reg_max = reg_max
        self.gains = gains
        self.assigner = TaskAlignedAssigner(topk=topk, num_classes=nc, alpha=0.5, beta=6.0)

    def __call__(self, feats: list[torch.Tensor], gt_labels: torch.Tensor,
                 gt_bboxes: torch.Tensor, mask_gt: torch.Tensor
                 ) -> tuple[torch.Tensor, torch.Tensor]:
        """Returns (loss x batch size, detached [box, cls, dfl])."""
        b = feats[0].shape[0]
        no = self.nc + 4 * self.reg_max
        x = torch.cat([f.view(b, no, -1) for f in feats], 2)
        pred_dist, pred_scores = x.split((4 * self.reg_max, self.nc), 1)
        pred_dist = pred_dist.permute(0, 2, 1).contiguous()  # (B, A, 64)
        pred_scores = pred_scores.permute(0, 2, 1).contiguous()  # (B, A, C)
        anchors, stride = make_anchors(feats, self.strides)  # grid units, (A, 1)
        bins = torch.arange(self.reg_max, device=x.device, dtype=torch.float)
        dist = pred_dist.view(b, -1, 4, self.reg_max).float().softmax(-1) @ bins
        pred_bboxes = dist2bbox(dist, anchors.float())  # (B, A, 4) grid units

        assigned = self.assigner(pred_scores.detach().sigmoid(),
                                 (pred_bboxes.detach() * stride).to(gt_bboxes.dtype),
                                 anchors * stride, gt_labels, gt_bboxes, mask_gt)
        target_scores = assigned.target_scores
        score_sum = target_scores.sum().clamp(min=1)

        loss_cls = F.binary_cross_entropy_with_logits(
            pred_scores.float(), target_scores.float(), reduction="none").sum() / score_sum

        fg = assigned.fg_mask
        weight = target_scores.sum(-1)[fg]
        target_bboxes = assigned.target_bboxes / stride
        iou = bbox_ciou(pred_bboxes[fg], target_bboxes[fg])
        loss_box = ((1.0 - iou) * weight).sum() / score_sum
        target_ltrb = bbox2dist(anchors.float(), target_bboxes, self.reg_max - 1)
        loss_dfl = (dfl_loss(pred_dist[fg].view(-1, 4, self.reg_max), target_ltrb[fg])
                    * weight).sum() / score_sum

        items = torch.stack((loss_box * self.gains.box, loss_cls * self.gains.cls,
                             loss_dfl * self.gains.dfl))
        return items.sum() * b, items.detach()


class V10DetectLoss:
    """YOLOv10's loss: one-to-many head (top-10 assignment) + one-to-one head (top-1)."""

    def __init__(self, model: YOLOv10, gains: LossGains = LossGains()) -> None:
        head = model.head
        strides = head.stride.tolist()
        self.one2many = DetectionLoss(head.nc, strides, topk=10, gains=gains)
        self.one2one = DetectionLoss(head.nc, strides, topk=1, gains=gains)

    def __call__(self, preds: dict[str, list[torch.Tensor]], batch: dict[str, torch.Tensor]
                 ) -> tuple[torch.Tensor, torch.Tensor]:
        """``batch`` holds flat targets: ``batch_idx`` (N,), ``cls`` (N,) or (N, 1) and
        ``bboxes`` (N, 4) normalised centre-x, centre-y, width, height.

        Returns the scalar loss to back-propagate and the six detached components
        (one-to-many box, cls, dfl, then one-to-one box, cls, dfl).
        """
        feats = preds["one2many"]
        image_hw = (int(feats[0].shape[2] * self.one2many.strides[0]),
                    int(feats[0].shape[3] * self.one2many.strides[0]))
        padded = pad_targets(batch["batch_idx"], batch["cls"], batch["bboxes"],
                             feats[0].shape[0], image_hw)
        loss_many, items_many = self.one2many(feats, *padded)
        loss_one, items_one = self.one2one(preds["one2one"], *padded)
        return loss_many + loss_one, torch.cat((items_many, items_one))
