"""The authors' Action Genome detector (``detector.architecture: release``).

TR²'s release runs STTran's Faster R-CNN, trained on Action Genome in the code base of
faster-rcnn.pytorch; its weights only mean what they meant inside that network. This
module is that network at inference, built from torchvision parts where they compute
the same thing, with the same attribute layout as torchvision's ``FasterRCNN``
(``transform``, ``backbone``, ``rpn``, ``roi_heads.box_roi_pool / box_head /
box_predictor``) so the feature extractor drives both alike. What differs from
:func:`~tr2_core.models.entities.build_detector`, each part below:

- input: RGB -> BGR in 0-255 minus the caffe pixel means (no std), shorter side to
  ``min_size`` with bilinear sampling at OpenCV's positions, no cap on the longer side
  unless ``max_size`` is set, no padding to a multiple of 32;
- body: caffe-style ResNet (a stage's stride on its first 1x1 convolution, max-pool
  without padding, rounding up);
- RPN: one 3x3 convolution of 512 channels, 2 x A score channels (A background logits,
  then A foreground logits, a softmax over each pair), the legacy anchor generator
  (16-px base anchor, rounded ratio widths, centre 7.5), box arithmetic with widths of
  x2 - x1 + 1 and no clamp on the size offsets, clipping to W - 1 / H - 1, NMS with
  +1 areas, the proposals zero-padded to ``rpn_post_nms_top_n``;
- box head: RoIAlign at 1/16 with an adaptive sampling grid (ratio 0) and aligned=False,
  layer4, then the spatial mean; class-specific box offsets scaled by (0.1, 0.1, 0.2, 0.2);
- detections (SGDet): per class a score above ``score_thresh``, NMS at ``nms_thresh``,
  only the best person; each keeps the pooled feature of the proposal it came from.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Sequence

import torch
import torch.nn.functional as F
import torchvision
from torch import nn
from torchvision.models.detection.image_list import ImageList
from torchvision.ops import nms, roi_align
from torchvision.ops.misc import FrozenBatchNorm2d

from tr2_core.models.model_config import LAYER4_CHANNELS, DetectorConfig
from tr2_core.vocab import PERSON

PIXEL_MEANS_BGR: tuple[float, float, float] = (102.9801, 115.9465, 122.7717)
"""The caffe ImageNet means the authors subtract (B, G, R order, 0-255)."""
FEATURE_STRIDE = 16
"""Input pixels per cell of the C4 feature map."""
BOX_DELTA_STDS: tuple[float, float, float, float] = (0.1, 0.1, 0.2, 0.2)
"""The box head's offsets are predicted divided by these (normalised targets)."""
RPN_CHANNELS = 512
BASE_ANCHOR_SIZE = 16


# --------------------------------------------------------------------------- box arithmetic
def legacy_anchors(
    scales: Sequence[float], ratios: Sequence[float], base_size: int = BASE_ANCHOR_SIZE
) -> torch.Tensor:
    """The legacy generator's cell anchors, (len(ratios) * len(scales), 4) float32,
    ratio-major: anchor ``r * len(scales) + s``.

    The base window is (0, 0, base_size - 1, base_size - 1) (centre 7.5 at 16 px); for
    each ratio h/w its width is ``round(sqrt(area / ratio))`` and height
    ``round(width * ratio)`` (round half to even), then both are multiplied by each scale;
    widths count pixels inclusively (x2 = x1 + w - 1).
    """
    dtype = torch.float64
    size = float(base_size)
    centre = (size - 1) / 2
    ratios_t = torch.tensor(list(ratios), dtype=dtype)
    widths = torch.round(torch.sqrt(size * size / ratios_t))
    heights = torch.round(widths * ratios_t)
    scales_t = torch.tensor(list(scales), dtype=dtype)
    ws = (widths[:, None] * scales_t[None, :]).reshape(-1)
    hs = (heights[:, None] * scales_t[None, :]).reshape(-1)
    anchors = torch.stack(
        [
            centre - 0.5 * (ws - 1),
            centre - 0.5 * (hs - 1),
            centre + 0.5 * (ws - 1),
            centre + 0.5 * (hs - 1),
        ],
        dim=1,
    )
    return anchors.float()


def decode_legacy(boxes: torch.Tensor, deltas: torch.Tensor) -> torch.Tensor:
    """Apply offsets (N, 4k) ``dx dy dw dh`` to reference boxes (N, 4) -> (N, 4k).

    Width = x2 - x1 + 1, centre = x1 + width / 2; the decoded box is centre -/+ half the
    new width (so x2 carries no -1), and ``dw`` / ``dh`` are not clamped."""
    widths = boxes[:, 2] - boxes[:, 0] + 1.0
    heights = boxes[:, 3] - boxes[:, 1] + 1.0
    ctr_x = boxes[:, 0] + 0.5 * widths
    ctr_y = boxes[:, 1] + 0.5 * heights
    dx, dy, dw, dh = deltas[:, 0::4], deltas[:, 1::4], deltas[:, 2::4], deltas[:, 3::4]
    pred_ctr_x = dx * widths[:, None] + ctr_x[:, None]
    pred_ctr_y = dy * heights[:, None] + ctr_y[:, None]
    pred_w = torch.exp(dw) * widths[:, None]
    pred_h = torch.exp(dh) * heights[:, None]
    out = torch.stack(
        [
            pred_ctr_x - 0.5 * pred_w,
            pred_ctr_y - 0.5 * pred_h,
            pred_ctr_x + 0.5 * pred_w,
            pred_ctr_y + 0.5 * pred_h,
        ],
        dim=2,
    )
    return out.reshape(deltas.shape)


def clip_legacy(boxes: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """Clip (N, 4k) boxes to x in [0, width - 1], y in [0, height - 1]."""
    out = boxes.clone()
    out[:, 0::2] = out[:, 0::2].clamp(0, width - 1)
    out[:, 1::2] = out[:, 1::2].clamp(0, height - 1)
    return out


def nms_legacy(boxes: torch.Tensor, scores: torch.Tensor, threshold: float) -> torch.Tensor:
    """NMS with +1 areas (a box covers x2 - x1 + 1 pixels): a box is dropped when its IoU
    with a better kept box is above ``threshold``. (N,) int64 kept rows, best first.

    torchvision's NMS on the boxes grown by one pixel to the right and bottom computes
    exactly the +1 areas and intersections."""
    grown = boxes.float() + boxes.new_tensor([0.0, 0.0, 1.0, 1.0])
    return nms(grown, scores.float(), threshold)


# --------------------------------------------------------------------------- input
class ScaledImageList(ImageList):
    """An :class:`ImageList` that also carries each image's resize factor, (T, 2) x and y
    (both the same: the authors scale both axes by one factor)."""

    def __init__(
        self, tensors: torch.Tensor, image_sizes: list[tuple[int, int]], scales: torch.Tensor
    ) -> None:
        super().__init__(tensors, image_sizes)
        self.scales = scales

    def to(self, device: torch.device) -> ScaledImageList:
        return ScaledImageList(self.tensors.to(device), self.image_sizes, self.scales.to(device))


def resize_like_opencv(image: torch.Tensor, scale: float) -> torch.Tensor:
    """(C, H, W) float -> (C, round(H * scale), round(W * scale)), bilinear, sampled where
    ``cv2.resize(fx=scale, fy=scale, interpolation=INTER_LINEAR)`` samples: output pixel
    x' reads source x = (x' + 0.5) / scale - 0.5 (clamped to the image), no antialiasing.

    aten's bilinear kernel given both the output size and the scale uses the scale for
    the positions (``F.interpolate(size=...)`` would use the ratio of the sizes)."""
    height, width = int(image.shape[-2]), int(image.shape[-1])
    out_size = [round(height * scale), round(width * scale)]
    return torch.ops.aten.upsample_bilinear2d(image[None], out_size, False, scale, scale)[0]


class CaffeTransform(nn.Module):
    """Images (3, H, W) RGB in [0, 1] -> the authors' network input.

    Each image becomes BGR in 0-255 minus :data:`PIXEL_MEANS_BGR`, resized by one factor
    ``min_size / min(H, W)`` (capped so the longer side stays within ``max_size`` when that
    is set) to ``round(H * s) x round(W * s)`` with bilinear sampling at OpenCV's
    ``INTER_LINEAR`` positions (source x = (x' + 0.5) / s - 0.5, no antialiasing).
    Images of different sizes are zero-padded bottom-right to the largest (the authors'
    blob); no padding to a multiple of 32.
    """

    def __init__(self, min_size: int, max_size: int | None) -> None:
        super().__init__()
        self.min_size = min_size
        self.max_size = max_size
        self.register_buffer(
            "pixel_means", torch.tensor(PIXEL_MEANS_BGR).reshape(3, 1, 1), persistent=False
        )

    def scale_for(self, height: int, width: int) -> float:
        scale = float(self.min_size) / float(min(height, width))
        if self.max_size is not None and round(scale * max(height, width)) > self.max_size:
            scale = float(self.max_size) / float(max(height, width))
        return scale

    def forward(self, images: Sequence[torch.Tensor], targets=None) -> tuple[ScaledImageList, None]:
        resized, sizes, scales = [], [], []
        for image in images:
            height, width = int(image.shape[-2]), int(image.shape[-1])
            scale = self.scale_for(height, width)
            bgr = image.float().flip(0) * 255.0 - self.pixel_means
            sampled = resize_like_opencv(bgr, scale)
            resized.append(sampled)
            sizes.append((int(sampled.shape[1]), int(sampled.shape[2])))
            scales.append([scale, scale])
        height = max(s[0] for s in sizes)
        width = max(s[1] for s in sizes)
        batch = resized[0].new_zeros(len(resized), 3, height, width)
        for i, image in enumerate(resized):
            batch[i, :, : image.shape[1], : image.shape[2]] = image
        scale_t = torch.tensor(scales, device=batch.device, dtype=torch.float32)
        return ScaledImageList(batch, sizes, scale_t), None


# --------------------------------------------------------------------------- body
def caffe_resnet(backbone: str) -> torchvision.models.ResNet:
    """torchvision's bottleneck ResNet rearranged as the caffe-converted one the authors
    train from: each stage's stride sits on its first 1x1 convolution (torchvision puts it
    on the 3x3) and the stem's max-pool has no padding and rounds its output size up.
    Frozen batch norms (eps 1e-5); random weights."""
    resnet = getattr(torchvision.models, backbone)(weights=None, norm_layer=FrozenBatchNorm2d)
    for layer in (resnet.layer2, resnet.layer3, resnet.layer4):
        first = layer[0]
        first.conv1.stride, first.conv2.stride = first.conv2.stride, (1, 1)
    resnet.maxpool = nn.MaxPool2d(kernel_size=3, stride=2, padding=0, ceil_mode=True)
    return resnet


class SpatialMean(nn.Module):
    """(n, C, h, w) -> (n, C): the mean over height then width."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.mean(3).mean(2)


# --------------------------------------------------------------------------- RPN
class ReleaseRPNHead(nn.Module):
    """3x3 conv (512) + ReLU, then 1x1 convs to 2A scores and 4A offsets.

    Score channel ``a`` is anchor a's background logit and ``A + a`` its foreground logit;
    offset channels ``4a .. 4a + 3`` are anchor a's ``dx dy dw dh``."""

    def __init__(self, in_channels: int, num_anchors: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(in_channels, RPN_CHANNELS, 3, padding=1)
        self.cls_logits = nn.Conv2d(RPN_CHANNELS, 2 * num_anchors, 1)
        self.bbox_pred = nn.Conv2d(RPN_CHANNELS, 4 * num_anchors, 1)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(B, C, h, w) -> foreground probabilities (B, A, h, w), offsets (B, 4A, h, w)."""
        hidden = F.relu(self.conv(x))
        logits = self.cls_logits(hidden)
        num_anchors = logits.shape[1] // 2
        pair = torch.stack([logits[:, :num_anchors], logits[:, num_anchors:]])
        foreground = torch.softmax(pair, dim=0)[1]
        return foreground, self.bbox_pred(hidden)


class ReleaseRPN(nn.Module):
    """Proposals as the authors' test-time proposal layer makes them (see module doc)."""

    def __init__(self, in_channels: int, cfg: DetectorConfig) -> None:
        super().__init__()
        scales = [size / BASE_ANCHOR_SIZE for size in cfg.anchor_sizes]
        anchors = legacy_anchors(scales, cfg.aspect_ratios)
        self.register_buffer("cell_anchors", anchors, persistent=False)
        self.head = ReleaseRPNHead(in_channels, anchors.shape[0])
        self.pre_nms_top_n = cfg.rpn_pre_nms_top_n
        self.post_nms_top_n = cfg.rpn_post_nms_top_n
        self.nms_thresh = cfg.rpn_nms_thresh

    def grid_anchors(self, height: int, width: int) -> torch.Tensor:
        """(height * width * A, 4) anchors, cell-major (row, column), then anchor."""
        device = self.cell_anchors.device
        shift_x = torch.arange(width, device=device, dtype=torch.float32) * FEATURE_STRIDE
        shift_y = torch.arange(height, device=device, dtype=torch.float32) * FEATURE_STRIDE
        sy, sx = torch.meshgrid(shift_y, shift_x, indexing="ij")
        shifts = torch.stack([sx, sy, sx, sy], dim=-1).reshape(-1, 1, 4)
        return (self.cell_anchors[None] + shifts).reshape(-1, 4)

    def forward(
        self, images: ImageList, features: dict[str, torch.Tensor], targets=None
    ) -> tuple[list[torch.Tensor], dict]:
        """Per image (rpn_post_nms_top_n, 4) proposals in input pixels, best first; rows
        after the last surviving proposal are zeros (the authors' fixed-size output, whose
        zero boxes go on through the box head)."""
        feature = features["0"]
        foreground, deltas = self.head(feature)
        batch, _, height, width = foreground.shape
        anchors = self.grid_anchors(height, width)
        scores = foreground.permute(0, 2, 3, 1).reshape(batch, -1)
        deltas = deltas.permute(0, 2, 3, 1).reshape(batch, -1, 4)
        proposals = []
        for i in range(batch):
            boxes = decode_legacy(anchors, deltas[i].float())
            boxes = clip_legacy(boxes, *images.image_sizes[i])
            order = torch.sort(scores[i], descending=True, stable=True).indices
            if self.pre_nms_top_n > 0:
                order = order[: self.pre_nms_top_n]
            boxes, kept_scores = boxes[order], scores[i][order]
            keep = nms_legacy(boxes, kept_scores, self.nms_thresh)
            if self.post_nms_top_n > 0:
                keep = keep[: self.post_nms_top_n]
            out = boxes.new_zeros(max(self.post_nms_top_n, keep.shape[0]), 4)
            out[: keep.shape[0]] = boxes[keep]
            proposals.append(out)
        return proposals, {}


# --------------------------------------------------------------------------- box head
class ReleaseRoIAlign(nn.Module):
    """RoIAlign on the single C4 map at 1/16, adaptive sampling grid, aligned=False."""

    def __init__(self, output_size: int, sampling_ratio: int) -> None:
        super().__init__()
        self.output_size = output_size
        self.sampling_ratio = sampling_ratio

    def forward(
        self,
        features: dict[str, torch.Tensor],
        boxes: list[torch.Tensor],
        image_sizes: list[tuple[int, int]] | None = None,
    ) -> torch.Tensor:
        """Per image (n_i, 4) boxes in input pixels -> (sum n_i, C, r, r)."""
        return roi_align(
            features["0"],
            [b.to(features["0"].dtype) for b in boxes],
            output_size=self.output_size,
            spatial_scale=1.0 / FEATURE_STRIDE,
            sampling_ratio=self.sampling_ratio,
            aligned=False,
        )


class ReleaseBoxPredictor(nn.Module):
    """Class scores (num_classes) and class-specific box offsets (4 x num_classes)."""

    def __init__(self, in_channels: int, num_classes: int) -> None:
        super().__init__()
        self.cls_score = nn.Linear(in_channels, num_classes)
        self.bbox_pred = nn.Linear(in_channels, 4 * num_classes)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.cls_score(x), self.bbox_pred(x)


class ReleaseRoIHeads(nn.Module):
    """Box head over the proposals and the authors' SGDet detection rule."""

    def __init__(self, layer4: nn.Module, cfg: DetectorConfig) -> None:
        super().__init__()
        self.box_roi_pool = ReleaseRoIAlign(cfg.roi_output_size, cfg.roi_sampling_ratio)
        self.box_head = nn.Sequential(OrderedDict(layer4=layer4, pool=SpatialMean()))
        self.box_predictor = ReleaseBoxPredictor(cfg.feature_dim, cfg.num_classes)
        self.score_thresh = cfg.score_thresh
        self.nms_thresh = cfg.nms_thresh
        self.detections_per_image = cfg.detections_per_image
        self.clip_first_only = cfg.detection_clip == "first_of_batch"
        self.register_buffer("delta_stds", torch.tensor(BOX_DELTA_STDS), persistent=False)

    def detect(
        self,
        proposals: torch.Tensor,
        features: torch.Tensor,
        image_size: tuple[int, int],
        scale: float | torch.Tensor = 1.0,
        clip: bool = True,
    ) -> dict[str, torch.Tensor]:
        """One image: proposals (R, 4) input pixels, their pooled features (R, D) ->
        detections, boxes in input pixels / ``scale`` (the image's own pixels).

        Per class j >= 1: the proposals whose probability of j is above ``score_thresh``,
        best first, boxed by their class-j offsets (clipped in input pixels unless
        ``clip`` is false, then divided by ``scale``), NMS at ``nms_thresh`` with +1 areas
        in the image's own pixels (the authors rescale before their NMS); of ``person``
        only the best survives; boxes clamped at 0. Rows ordered by class, then score.
        """
        logits, offsets = self.box_predictor(features)
        probs = torch.softmax(logits.float(), dim=1)
        num_classes = probs.shape[1]
        deltas = offsets.float() * self.delta_stds.repeat(num_classes)
        boxes = decode_legacy(proposals.float(), deltas)
        if clip:
            boxes = clip_legacy(boxes, *image_size)
        boxes = (boxes / scale).reshape(-1, num_classes, 4)
        rows, labels = [], []
        # one NMS per class as theirs: torchvision's batched NMS shifts each class's boxes
        # by an offset, which rounds their coordinates and can flip a decision
        for cls in range(1, num_classes):
            candidates = torch.nonzero(probs[:, cls] > self.score_thresh).reshape(-1)
            if candidates.numel() == 0:
                continue
            order = torch.sort(probs[candidates, cls], descending=True, stable=True).indices
            ranked = candidates[order]
            keep = nms_legacy(boxes[ranked, cls], probs[ranked, cls], self.nms_thresh)
            if cls == PERSON:
                keep = keep[:1]
            rows.append(ranked[keep])
            labels.append(torch.full_like(keep, cls))
        device = proposals.device
        if rows:
            row = torch.cat(rows)
            label = torch.cat(labels)
        else:
            row = torch.zeros(0, dtype=torch.long, device=device)
            label = torch.zeros(0, dtype=torch.long, device=device)
        score = probs[row, label]
        box = boxes[row, label].clamp(min=0)
        if self.detections_per_image is not None and row.shape[0] > self.detections_per_image:
            best = torch.sort(score, descending=True, stable=True).indices
            best = torch.sort(best[: self.detections_per_image]).values
            row, label, score, box = row[best], label[best], score[best], box[best]
        return {
            "boxes": box,
            "labels": label,
            "scores": score,
            "features": features[row],
            "proposal_index": row,
        }

    def forward(
        self,
        features: dict[str, torch.Tensor],
        proposals: list[torch.Tensor],
        image_sizes: list[tuple[int, int]],
        targets=None,
        scales: torch.Tensor | None = None,
    ) -> tuple[list[dict[str, torch.Tensor]], dict]:
        """Per image a dict: ``boxes`` (n, 4) in input pixels divided by the image's
        ``scales`` row (T, 2) (none given: input pixels), clipped to the image (with
        ``detection_clip: first_of_batch`` the first image's only), ``labels`` (n,) int64,
        ``scores`` (n,), ``features`` (n, D) the proposal's pooled feature,
        ``proposal_index`` (n,) its row in the image's proposals."""
        pooled = self.box_head(self.box_roi_pool(features, proposals, image_sizes))
        results, start = [], 0
        for i, (props, size) in enumerate(zip(proposals, image_sizes, strict=True)):
            stop = start + props.shape[0]
            scale = scales[i, 0] if scales is not None else 1.0
            clip = i == 0 or not self.clip_first_only
            results.append(self.detect(props, pooled[start:stop], size, scale, clip))
            start = stop
        return results, {}


def c4_body(resnet: torchvision.models.ResNet) -> nn.Sequential:
    """The C4 body of a ResNet (conv1 .. layer3, stride 16), parameter names as
    torchvision's ``FasterRCNN`` backbone has them; ``layer4`` is the box head."""
    return nn.Sequential(
        OrderedDict(
            conv1=resnet.conv1,
            bn1=resnet.bn1,
            relu=resnet.relu,
            maxpool=resnet.maxpool,
            layer1=resnet.layer1,
            layer2=resnet.layer2,
            layer3=resnet.layer3,
        )
    )


class ReleaseFasterRCNN(nn.Module):
    """The authors' detector at inference; torchvision's ``FasterRCNN`` layout.

    Parameters (state dict keys): ``backbone.*`` (conv1, bn1, layer1..3),
    ``rpn.head.{conv, cls_logits, bbox_pred}.*``, ``roi_heads.box_head.layer4.*``,
    ``roi_heads.box_predictor.{cls_score, bbox_pred}.*``.
    """

    def __init__(self, cfg: DetectorConfig) -> None:
        super().__init__()
        resnet = caffe_resnet(cfg.backbone)
        self.transform = CaffeTransform(cfg.min_size, cfg.max_size)
        self.backbone = c4_body(resnet)
        self.backbone.out_channels = LAYER4_CHANNELS[cfg.backbone] // 2
        self.rpn = ReleaseRPN(self.backbone.out_channels, cfg)
        self.roi_heads = ReleaseRoIHeads(resnet.layer4, cfg)

    def detect(
        self, images: ScaledImageList, features: dict[str, torch.Tensor]
    ) -> list[dict[str, torch.Tensor]]:
        """Proposals and detections of transformed images; per image the dict of
        :meth:`ReleaseRoIHeads.forward`, boxes in the image's own pixels."""
        proposals, _ = self.rpn(images, features)
        results, _ = self.roi_heads(features, proposals, images.image_sizes, scales=images.scales)
        return results

    @torch.no_grad()
    def forward(self, images: Sequence[torch.Tensor]) -> list[dict[str, torch.Tensor]]:
        """Images (3, H, W) RGB in [0, 1] -> per image the detections of
        :meth:`ReleaseRoIHeads.forward`, boxes in the image's own pixels."""
        images_t, _ = self.transform(images)
        return self.detect(images_t, {"0": self.backbone(images_t.tensors)})


def build_release_detector(cfg: DetectorConfig) -> ReleaseFasterRCNN:
    """The authors' detector for ``cfg`` (``architecture: release``): random weights,
    eval mode, no gradients."""
    model = ReleaseFasterRCNN(cfg)
    model.eval()
    for p in model.parameters():
        p.requires_grad_(False)
    return model
