"""YOLOv10 object detector, as defined by THU-MIG/yolov10 (scale n: 2,775,520 parameters).

Our own definition, written from the architecture description (the reference's
``yolov10n.yaml`` layer table, reproduced below as data) so that nothing imports ultralytics
(AGPL, and it pulls torchvision). Module and attribute names follow the reference exactly
(``model.<i>.cv1.conv.weight``, ``model.23.one2one_cv3.2.2.weight``, ...), so a state dict
saved by either implementation loads into the other.

Training mode returns the raw head outputs of both heads, ``{"one2many": [...], "one2one":
[...]}``, for the loss (``bench.models.yolov10_loss``). Evaluation mode runs the deployed
YOLOv10 path: only the one-to-one head, box decoding and the NMS-free top-k selection, giving
``(batch, max_det, 6)`` detections ``x1, y1, x2, y2, score, class`` in input pixels.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import torch
from torch import nn

# (depth multiple, width multiple, max channels) per scale; yolov10n.yaml defines scale n.
SCALES: dict[str, tuple[float, float, int]] = {"n": (0.33, 0.25, 1024)}

# yolov10n.yaml: (from, repeats, module, args) for layers 0..23. "nc" is the class count.
YOLOV10N_LAYERS: tuple[tuple[Any, int, str, tuple[Any, ...]], ...] = (
    # backbone
    (-1, 1, "Conv", (64, 3, 2)),  # 0 P1/2
    (-1, 1, "Conv", (128, 3, 2)),  # 1 P2/4
    (-1, 3, "C2f", (128, True)),  # 2
    (-1, 1, "Conv", (256, 3, 2)),  # 3 P3/8
    (-1, 6, "C2f", (256, True)),  # 4
    (-1, 1, "SCDown", (512, 3, 2)),  # 5 P4/16
    (-1, 6, "C2f", (512, True)),  # 6
    (-1, 1, "SCDown", (1024, 3, 2)),  # 7 P5/32
    (-1, 3, "C2f", (1024, True)),  # 8
    (-1, 1, "SPPF", (1024, 5)),  # 9
    (-1, 1, "PSA", (1024,)),  # 10
    # head
    (-1, 1, "Upsample", (None, 2, "nearest")),  # 11
    ((-1, 6), 1, "Concat", (1,)),  # 12 cat backbone P4
    (-1, 3, "C2f", (512,)),  # 13
    (-1, 1, "Upsample", (None, 2, "nearest")),  # 14
    ((-1, 4), 1, "Concat", (1,)),  # 15 cat backbone P3
    (-1, 3, "C2f", (256,)),  # 16 (P3/8-small)
    (-1, 1, "Conv", (256, 3, 2)),  # 17
    ((-1, 13), 1, "Concat", (1,)),  # 18 cat head P4
    (-1, 3, "C2f", (512,)),  # 19 (P4/16-medium)
    (-1, 1, "SCDown", (512, 3, 2)),  # 20
    ((-1, 10), 1, "Concat", (1,)),  # 21 cat head P5
    (-1, 3, "C2fCIB", (1024, True, True)),  # 22 (P5/32-large)
    ((16, 19, 22), 1, "v10Detect", ("nc",)),  # 23 Detect(P3, P4, P5)
)

REG_MAX = 16  # DFL bins per box side
BN_EPS = 1e-3  # the reference's initialize_weights() settings
BN_MOMENTUM = 0.03


def make_divisible(x: float, divisor: int = 8) -> int:
    """Round a scaled channel count up to a multiple of ``divisor`` (the reference's rule)."""
    return int(math.ceil(x / divisor) * divisor)


def scaled_repeats(n: int, depth: float) -> int:
    """Depth scaling of a layer's repeat count: ``max(round(n * depth), 1)`` when n > 1."""
    return max(round(n * depth), 1) if n > 1 else n


def scaled_channels(c: int, width: float, max_channels: int) -> int:
    return make_divisible(min(c, max_channels) * width, 8)


# -- building blocks ------------------------------------------------------------------------

class Conv(nn.Module):
    """Conv2d (no bias, 'same' padding) + BatchNorm2d + SiLU (or no activation)."""

    def __init__(self, c1: int, c2: int, k: int = 1, s: int = 1, p: int | None = None,
                 g: int = 1, act: bool = True) -> None:
        super().__init__()
        self.conv = nn.Conv2d(c1, c2, k, s, k // 2 if p is None else p, groups=g, bias=False)
        self.bn = nn.BatchNorm2d(c2, eps=BN_EPS, momentum=BN_MOMENTUM)
        self.act: nn.Module = nn.SiLU(inplace=True) if act else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(self.bn(self.conv(x)))


class Bottleneck(nn.Module):
    """Two 3x3 Convs with an optional residual connection."""

    def __init__(self, c1: int, c2: int, shortcut: bool = True, e: float = 0.5) -> None:
        super().__init__()
        c_ = int(c2 * e)
        self.cv1 = Conv(c1, c_, 3)
        self.cv2 = Conv(c_, c2, 3)
        self.add = shortcut and c1 == c2

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.cv2(self.cv1(x))
        return x + y if self.add else y


class C2f(nn.Module):
    """CSP block: split, a chain of ``n`` bottlenecks fed by the last chunk, concat all."""

    def __init__(self, c1: int, c2: int, n: int = 1, shortcut: bool = False,
                 e: float = 0.5) -> None:
        super().__init__()
        self.c = int(c2 * e)
        self.cv1 = Conv(c1, 2 * self.c, 1)
        self.cv2 = Conv((2 + n) * self.c, c2, 1)
        self.m = nn.ModuleList(self._block(shortcut) for _ in range(n))

    def _block(self, shortcut: bool) -> nn.Module:
        return Bottleneck(self.c, self.c, shortcut, e=1.0)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        ys = list(self.cv1(x).chunk(2, 1))
        for m in self.m:
            ys.append(m(ys[-1]))
        return self.cv2(torch.cat(ys, 1))


class RepVGGDW(nn.Module):
    """Depthwise 7x7 and 3x3 branches summed (re-parameterisable into one 7x7 at deploy)."""

    def __init__(self, c: int) -> None:
        super().__init__()
        self.conv = Conv(c, c, 7, 1, 3, g=c, act=False)
        self.conv1 = Conv(c, c, 3, 1, 1, g=c, act=False)
        self.act = nn.SiLU(inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(self.conv(x) + self.conv1(x))


class CIB(nn.Module):
    """Compact inverted block: depthwise/pointwise convs, large-kernel variant when ``lk``."""

    def __init__(self, c1: int, c2: int, shortcut: bool = True, e: float = 0.5,
                 lk: bool = False) -> None:
        super().__init__()
        c_ = int(c2 * e)
        self.cv1 = nn.Sequential(
            Conv(c1, c1, 3, g=c1),
            Conv(c1, 2 * c_, 1),
            RepVGGDW(2 * c_) if lk else Conv(2 * c_, 2 * c_, 3, g=2 * c_),
            Conv(2 * c_, c2, 1),
            Conv(c2, c2, 3, g=c2),
        )
        self.add = shortcut and c1 == c2

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.cv1(x)
        return x + y if self.add else y


class C2fCIB(C2f):
    """C2f whose inner blocks are CIBs (YOLOv10's rank-guided block for deep stages)."""

    def __init__(self, c1: int, c2: int, n: int = 1, shortcut: bool = False,
                 lk: bool = False, e: float = 0.5) -> None:
        self.lk = lk
        super().__init__(c1, c2, n, shortcut, e)

    def _block(self, shortcut: bool) -> nn.Module:
        return CIB(self.c, self.c, shortcut, e=1.0, lk=self.lk)


class SCDown(nn.Module):
    """Spatial-channel decoupled downsampling: pointwise conv, then strided depthwise conv."""

    def __init__(self, c1: int, c2: int, k: int, s: int) -> None:
        super().__init__()
        self.cv1 = Conv(c1, c2, 1)
        self.cv2 = Conv(c2, c2, k, s, g=c2, act=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.cv2(self.cv1(x))


class SPPF(nn.Module):
    """Spatial pyramid pooling (fast): three chained max-pools, concatenated."""

    def __init__(self, c1: int, c2: int, k: int = 5) -> None:
        super().__init__()
        c_ = c1 // 2
        self.cv1 = Conv(c1, c_, 1)
        self.cv2 = Conv(c_ * 4, c2, 1)
        self.m = nn.MaxPool2d(kernel_size=k, stride=1, padding=k // 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.cv1(x)
        y1 = self.m(x)
        y2 = self.m(y1)
        return self.cv2(torch.cat((x, y1, y2, self.m(y2)), 1))


class Attention(nn.Module):
    """Multi-head self-attention over the feature map, with a depthwise positional conv."""

    def __init__(self, dim: int, num_heads: int = 8, attn_ratio: float = 0.5) -> None:
        super().__init__()
        self.num_heads = num_heads
        self.head_dim = dim // num_heads
        self.key_dim = int(self.head_dim * attn_ratio)
        self.scale = self.key_dim ** -0.5
        self.qkv = Conv(dim, dim + 2 * self.key_dim * num_heads, 1, act=False)
        self.proj = Conv(dim, dim, 1, act=False)
        self.pe = Conv(dim, dim, 3, 1, g=dim, act=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, c, h, w = x.shape
        n = h * w
        q, k, v = self.qkv(x).view(b, self.num_heads, 2 * self.key_dim + self.head_dim, n).split(
            [self.key_dim, self.key_dim, self.head_dim], dim=2)
        attn = ((q.transpose(-2, -1) @ k) * self.scale).softmax(dim=-1)
        y = (v @ attn.transpose(-2, -1)).view(b, c, h, w) + self.pe(v.reshape(b, c, h, w))
        return self.proj(y)


class PSA(nn.Module):
    """Partial self-attention: attention and a feed-forward on half of the channels."""

    def __init__(self, c1: int, c2: int, e: float = 0.5) -> None:
        super().__init__()
        if c1 != c2:
            raise ValueError(f"PSA keeps the channel count (c1={c1}, c2={c2})")
        self.c = int(c1 * e)
        self.cv1 = Conv(c1, 2 * self.c, 1)
        self.cv2 = Conv(2 * self.c, c1, 1)
        self.attn = Attention(self.c, num_heads=self.c // 64, attn_ratio=0.5)
        self.ffn = nn.Sequential(Conv(self.c, self.c * 2, 1), Conv(self.c * 2, self.c, 1,
                                                                   act=False))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        a, b = self.cv1(x).split((self.c, self.c), dim=1)
        b = b + self.attn(b)
        b = b + self.ffn(b)
        return self.cv2(torch.cat((a, b), 1))


class Concat(nn.Module):
    def __init__(self, dim: int = 1) -> None:
        super().__init__()
        self.d = dim

    def forward(self, xs: list[torch.Tensor]) -> torch.Tensor:
        return torch.cat(xs, self.d)


class DFL(nn.Module):
    """Distribution focal loss integral: expected value of a softmax over ``c1`` bins.

    The bin values live in a frozen 1x1 conv weight (``arange(c1)``) as in the reference, so
    the parameter (16 values, counted in the published total) and its state-dict key exist.
    """

    def __init__(self, c1: int = REG_MAX) -> None:
        super().__init__()
        self.conv = nn.Conv2d(c1, 1, 1, bias=False).requires_grad_(False)
        with torch.no_grad():
            self.conv.weight.copy_(torch.arange(c1, dtype=torch.float).view(1, c1, 1, 1))
        self.c1 = c1

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, _, a = x.shape  # (batch, 4 * c1, anchors) -> (batch, 4, anchors)
        prob = x.view(b, 4, self.c1, a).softmax(2)
        return torch.einsum("bsca,c->bsa", prob, self.conv.weight.view(-1).to(prob.dtype))


def make_anchors(feats: Sequence[torch.Tensor], strides: Sequence[float],
                 offset: float = 0.5) -> tuple[torch.Tensor, torch.Tensor]:
    """Anchor points (cell centres, in grid units of each level) and each anchor's stride.

    Returns ``(anchors (A, 2) as x, y; strides (A, 1))`` with levels concatenated in order.
    """
    points, stride_list = [], []
    dtype, device = feats[0].dtype, feats[0].device
    for feat, stride in zip(feats, strides, strict=True):
        h, w = feat.shape[-2:]
        sx = torch.arange(w, device=device, dtype=dtype) + offset
        sy = torch.arange(h, device=device, dtype=dtype) + offset
        yy, xx = torch.meshgrid(sy, sx, indexing="ij")
        points.append(torch.stack((xx, yy), -1).view(-1, 2))
        stride_list.append(torch.full((h * w, 1), float(stride), dtype=dtype, device=device))
    return torch.cat(points), torch.cat(stride_list)


def dist2bbox(distance: torch.Tensor, anchors: torch.Tensor, dim: int = -1) -> torch.Tensor:
    """(left, top, right, bottom) distances from anchor points to x1, y1, x2, y2 boxes."""
    lt, rb = distance.split([2, 2], dim)
    return torch.cat((anchors - lt, anchors + rb), dim)


def topk_detections(preds: torch.Tensor, max_det: int, nc: int) -> torch.Tensor:
    """YOLOv10's NMS-free selection: the ``max_det`` best (anchor, class) pairs per image.

    ``preds`` is (batch, anchors, 4 + nc) with xyxy boxes and class probabilities; the result
    is (batch, max_det, 6): x1, y1, x2, y2, score, class. First the ``max_det`` anchors with
    the highest class score, then the best ``max_det`` (anchor, class) pairs among them.
    """
    k = min(max_det, preds.shape[1])
    boxes, scores = preds.split([4, nc], dim=-1)
    _, idx = scores.amax(dim=-1).topk(k, dim=-1)
    boxes = boxes.gather(1, idx.unsqueeze(-1).expand(-1, -1, 4))
    scores = scores.gather(1, idx.unsqueeze(-1).expand(-1, -1, nc))
    top_scores, flat = scores.flatten(1).topk(k, dim=-1)
    labels = flat % nc
    boxes = boxes.gather(1, (flat // nc).unsqueeze(-1).expand(-1, -1, 4))
    return torch.cat([boxes, top_scores.unsqueeze(-1), labels.unsqueeze(-1).to(boxes.dtype)],
                     dim=-1)


class V10Detect(nn.Module):
    """YOLOv10 head: one-to-many branch (``cv2``/``cv3``, training only) and a one-to-one
    branch (``one2one_cv2``/``one2one_cv3``) used at inference, so no NMS is needed.

    The one-to-one branch sees detached features: its gradient does not reach the backbone
    (the reference's consistent dual assignment).
    """

    def __init__(self, nc: int = 80, ch: Sequence[int] = ()) -> None:
        super().__init__()
        self.nc = nc
        self.nl = len(ch)
        self.reg_max = REG_MAX
        self.no = nc + 4 * REG_MAX
        self.max_det = 300
        self.stride = torch.zeros(self.nl)  # set by the model from a dry forward pass
        c2 = max(16, ch[0] // 4, 4 * REG_MAX)
        c3 = max(ch[0], min(nc, 100))
        self.cv2 = self._box_branch(ch, c2)
        self.cv3 = self._cls_branch(ch, c3)
        self.dfl = DFL(REG_MAX)
        self.one2one_cv2 = self._box_branch(ch, c2)
        self.one2one_cv3 = self._cls_branch(ch, c3)
        self._anchor_cache: tuple[Any, torch.Tensor, torch.Tensor] | None = None

    @staticmethod
    def _box_branch(ch: Sequence[int], c2: int) -> nn.ModuleList:
        return nn.ModuleList(nn.Sequential(Conv(x, c2, 3), Conv(c2, c2, 3),
                                           nn.Conv2d(c2, 4 * REG_MAX, 1)) for x in ch)

    def _cls_branch(self, ch: Sequence[int], c3: int) -> nn.ModuleList:
        return nn.ModuleList(
            nn.Sequential(nn.Sequential(Conv(x, x, 3, g=x), Conv(x, c3, 1)),
                          nn.Sequential(Conv(c3, c3, 3, g=c3), Conv(c3, c3, 1)),
                          nn.Conv2d(c3, self.nc, 1)) for x in ch)

    @staticmethod
    def _heads(xs: list[torch.Tensor], box: nn.ModuleList, cls: nn.ModuleList
               ) -> list[torch.Tensor]:
        return [torch.cat((b(x), c(x)), 1) for x, b, c in zip(xs, box, cls, strict=True)]

    def bias_init(self) -> None:
        """Prior biases: box logits 1.0, class logits for ~5 objects per 640x640 image."""
        for box, cls in ((self.cv2, self.cv3), (self.one2one_cv2, self.one2one_cv3)):
            for a, b, s in zip(box, cls, self.stride.tolist(), strict=True):
                a[-1].bias.data.fill_(1.0)
                b[-1].bias.data[: self.nc] = math.log(5 / self.nc / (640 / s) ** 2)

    def _anchors(self, feats: list[torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        key = (tuple(f.shape[-2:] for f in feats), feats[0].device, feats[0].dtype)
        if self._anchor_cache is None or self._anchor_cache[0] != key:
            anchors, strides = make_anchors(feats, self.stride.tolist())
            self._anchor_cache = (key, anchors.t(), strides.t())
        return self._anchor_cache[1], self._anchor_cache[2]

    def decode(self, feats: list[torch.Tensor]) -> torch.Tensor:
        """Raw head outputs to (batch, anchors, 4 + nc): xyxy pixels and class probabilities."""
        b = feats[0].shape[0]
        x = torch.cat([f.view(b, self.no, -1) for f in feats], 2)
        box, cls = x.split((4 * self.reg_max, self.nc), 1)
        anchors, strides = self._anchors(feats)
        boxes = dist2bbox(self.dfl(box), anchors.unsqueeze(0), dim=1) * strides
        return torch.cat((boxes, cls.sigmoid()), 1).permute(0, 2, 1)

    def forward(self, xs: list[torch.Tensor]) -> dict[str, list[torch.Tensor]] | torch.Tensor:
        one2one = self._heads([x.detach() for x in xs], self.one2one_cv2, self.one2one_cv3)
        if self.training:
            return {"one2many": self._heads(xs, self.cv2, self.cv3), "one2one": one2one}
        return topk_detections(self.decode(one2one), self.max_det, self.nc)


class Upsample(nn.Upsample):
    """``nn.Upsample`` (no parameters); a subclass only so the layer table can name it."""


_MODULES: dict[str, type[nn.Module]] = {
    "Conv": Conv, "C2f": C2f, "SCDown": SCDown, "SPPF": SPPF, "PSA": PSA, "C2fCIB": C2fCIB,
    "Upsample": Upsample, "Concat": Concat, "v10Detect": V10Detect,
}
_REPEATED = {"C2f", "C2fCIB"}  # repeats become the block's inner depth n


def build_layers(table: Sequence[tuple[Any, int, str, tuple[Any, ...]]], depth: float,
                 width: float, max_channels: int, nc: int, in_channels: int = 3
                 ) -> tuple[nn.Sequential, list[int]]:
    """Turn a YOLO layer table into modules with the reference's channel and depth scaling.

    Returns the layers (each tagged with ``i``, its index, and ``f``, where its input comes
    from) and the sorted indices whose outputs later layers read.
    """
    layers: list[nn.Module] = []
    save: set[int] = set()
    channels: list[int] = []
    for i, (f, n, name, args) in enumerate(table):
        cls = _MODULES[name]
        c_in = in_channels if i == 0 else channels[f] if isinstance(f, int) else None
        n = scaled_repeats(n, depth)
        if name in ("Upsample",):
            module: nn.Module = cls(*args)
            c_out = c_in
        elif name == "Concat":
            module = cls(*args)
            c_out = sum(channels[j] for j in f)
        elif name == "v10Detect":
            module = cls(nc, [channels[j] for j in f])
            c_out = 0
        else:
            c_out = scaled_channels(args[0], width, max_channels)
            extra = (n, *args[1:]) if name in _REPEATED else args[1:]
            module = cls(c_in, c_out, *extra)
            if name not in _REPEATED and n > 1:
                module = nn.Sequential(*(cls(c_in, c_out, *extra) for _ in range(n)))
        module.i, module.f = i, f
        save.update(j % i for j in ([f] if isinstance(f, int) else f) if j != -1)
        layers.append(module)
        channels.append(c_out)
    return nn.Sequential(*layers), sorted(save)


class YOLOv10(nn.Module):
    """A YOLOv10 detection model; ``self.model`` holds the layers as in the reference."""

    def __init__(self, scale: str = "n", nc: int = 80, in_channels: int = 3) -> None:
        super().__init__()
        if scale not in SCALES:
            raise ValueError(f"YOLOv10 scale {scale!r} is not defined here (have {list(SCALES)})")
        depth, width, max_channels = SCALES[scale]
        self.nc = nc
        self.model, self.save = build_layers(YOLOV10N_LAYERS, depth, width, max_channels, nc,
                                             in_channels)
        head = self.head
        self.stride = self._measure_strides(in_channels)
        head.stride = self.stride
        head.bias_init()

    @property
    def head(self) -> V10Detect:
        head = self.model[-1]
        assert isinstance(head, V10Detect)
        return head

    @torch.no_grad()
    def _measure_strides(self, in_channels: int, size: int = 256) -> torch.Tensor:
        """Each level's stride from a dry pass in eval mode (no running-statistics update)."""
        was_training = self.training
        self.eval()
        feats = self.features(torch.zeros(1, in_channels, size, size))
        self.train(was_training)
        return torch.tensor([size / f.shape[-2] for f in feats])

    def features(self, x: torch.Tensor) -> list[torch.Tensor]:
        """The inputs of the detection head (P3, P4, P5 feature maps)."""
        outputs: list[torch.Tensor | None] = []
        head = self.head
        for m in self.model[:-1]:
            if m.f != -1:
                x = outputs[m.f] if isinstance(m.f, int) else [
                    x if j == -1 else outputs[j] for j in m.f]
            x = m(x)
            outputs.append(x if m.i in self.save else None)
        return [outputs[j] for j in head.f]

    def forward(self, x: torch.Tensor) -> dict[str, list[torch.Tensor]] | torch.Tensor:
        return self.head(self.features(x))


def yolov10n(num_classes: int = 80) -> YOLOv10:
    """YOLOv10-N: depth 0.33, width 0.25, max channels 1024; 2,775,520 parameters at 80
    classes."""
    return YOLOv10("n", nc=num_classes)
