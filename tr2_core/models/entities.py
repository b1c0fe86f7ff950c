"""Entities: the detector that finds them and the per-frame rules over its detections.

The detector is torchvision's Faster R-CNN with a ResNet C4 body, or the authors'
network (:mod:`tr2_core.models.release_detector`); both are built, loaded and sped up
here. Over a clip's detections: the single best person of a frame, and the release's
SGDet relabelling. All box operations are vectorised over the clip.
"""

from __future__ import annotations

from collections import OrderedDict
from pathlib import Path
from typing import Any

import torch
import torchvision
from torch import nn
from torchvision.models.detection import FasterRCNN
from torchvision.models.detection._utils import BoxCoder
from torchvision.models.detection.anchor_utils import AnchorGenerator
from torchvision.models.detection.faster_rcnn import FastRCNNPredictor
from torchvision.ops import MultiScaleRoIAlign
from torchvision.ops.misc import FrozenBatchNorm2d

from tr2_core.errors import WeightsError
from tr2_core.models.model_config import DetectorConfig
from tr2_core.models.release_detector import (
    ReleaseFasterRCNN,
    build_release_detector,
    c4_body,
    nms_legacy,
)
from tr2_core.torch_files import load_weights_file
from tr2_core.vocab import PERSON

LAYER3_CHANNELS: dict[str, int] = {
    "resnet18": 256,
    "resnet34": 256,
    "resnet50": 1024,
    "resnet101": 1024,
}


class Float32BoxCoder(BoxCoder):
    """torchvision's box coder with decoding always in float32.

    torchvision casts the reference boxes to the regression output's dtype, so under
    bf16 autocast anchors/proposals near 1000 px are rounded to 4 px steps before the
    offsets are applied. Here both are float32 and autocast is off while decoding.
    """

    @classmethod
    def like(cls, coder: BoxCoder) -> Float32BoxCoder:
        return cls(coder.weights, coder.bbox_xform_clip)

    def decode_single(self, rel_codes: torch.Tensor, boxes: torch.Tensor) -> torch.Tensor:
        """rel_codes (N, 4k) any float dtype, boxes (N, 4) -> (N, 4k) float32 boxes."""
        with torch.autocast(device_type=rel_codes.device.type, enabled=False):
            return super().decode_single(rel_codes.float(), boxes.float())


def build_detector(cfg: DetectorConfig) -> FasterRCNN | ReleaseFasterRCNN:
    """Faster R-CNN with a ResNet C4 body (conv1..layer3, stride 16) and
    layer4 + global average pool as the box head (``cfg.feature_dim``-d RoI features),
    RoIAlign ``roi_output_size`` x ``roi_output_size``; randomly initialised, eval mode;
    anchors and proposals decoded in float32 even under autocast.

    ``cfg.architecture == "release"``: the authors' network instead
    (:func:`~tr2_core.models.release_detector.build_release_detector`)."""
    if cfg.architecture == "release":
        return build_release_detector(cfg)
    resnet = getattr(torchvision.models, cfg.backbone)(weights=None, norm_layer=FrozenBatchNorm2d)
    body = c4_body(resnet)
    body.out_channels = LAYER3_CHANNELS[cfg.backbone]
    box_head = nn.Sequential(
        OrderedDict(layer4=resnet.layer4, pool=nn.AdaptiveAvgPool2d(1), flatten=nn.Flatten())
    )
    anchors = AnchorGenerator((tuple(cfg.anchor_sizes),), (tuple(cfg.aspect_ratios),))
    roi_pool = MultiScaleRoIAlign(["0"], cfg.roi_output_size, cfg.roi_sampling_ratio)
    model = FasterRCNN(
        body,
        num_classes=None,
        min_size=cfg.min_size,
        max_size=cfg.max_size,
        rpn_anchor_generator=anchors,
        rpn_pre_nms_top_n_test=cfg.rpn_pre_nms_top_n,
        rpn_post_nms_top_n_test=cfg.rpn_post_nms_top_n,
        rpn_nms_thresh=cfg.rpn_nms_thresh,
        box_roi_pool=roi_pool,
        box_head=box_head,
        box_predictor=FastRCNNPredictor(cfg.feature_dim, cfg.num_classes),
        box_score_thresh=cfg.score_thresh,
        box_nms_thresh=cfg.nms_thresh,
        box_detections_per_img=cfg.detections_per_image,
    )
    # box arithmetic stays in float32 under autocast (see Float32BoxCoder)
    model.rpn.box_coder = Float32BoxCoder.like(model.rpn.box_coder)
    model.roi_heads.box_coder = Float32BoxCoder.like(model.roi_heads.box_coder)
    model.eval()
    for p in model.parameters():
        p.requires_grad_(False)
    return model


def read_state_dict(path: str | Path, what: str) -> dict[str, torch.Tensor]:
    """``torch.load(path, weights_only=True)``; unwraps ``{"state_dict": ...}`` /
    ``{"model": ...}``; raises :class:`WeightsError` naming ``what`` and the file."""
    data = load_weights_file(path, f"{what} weights")
    for key in ("state_dict", "model"):
        if isinstance(data, dict) and isinstance(data.get(key), dict):
            data = data[key]
    if not isinstance(data, dict) or not all(isinstance(v, torch.Tensor) for v in data.values()):
        raise WeightsError(f"{what} weights {path}: expected a state dict of tensors")
    return data


def load_strict(module: nn.Module, state: dict[str, torch.Tensor], what: str, source: str) -> None:
    """Strict ``load_state_dict`` that reports missing / unexpected keys and shape
    mismatches as a :class:`WeightsError`."""
    own = module.state_dict()
    missing = sorted(set(own) - set(state))
    unexpected = sorted(set(state) - set(own))
    shapes = [
        f"{k}: file {tuple(state[k].shape)} vs model {tuple(own[k].shape)}"
        for k in own
        if k in state and tuple(state[k].shape) != tuple(own[k].shape)
    ]
    if missing or unexpected or shapes:
        parts = []
        if missing:
            parts.append(f"{len(missing)} missing key(s) e.g. {missing[:3]}")
        if unexpected:
            parts.append(f"{len(unexpected)} unexpected key(s) e.g. {unexpected[:3]}")
        if shapes:
            parts.append(f"{len(shapes)} shape mismatch(es) e.g. {shapes[:3]}")
        raise WeightsError(
            f"{what} weights {source} do not match the configured architecture: " + "; ".join(parts)
        )
    module.load_state_dict(state, strict=True)


AUTHORS_DETECTOR_PREFIXES = ("RCNN_base.", "RCNN_top.", "RCNN_rpn.")
"""Key prefixes of the authors' faster-rcnn.pytorch files (``faster_rcnn_ag.pth``)."""


def load_detector_weights(detector: FasterRCNN | ReleaseFasterRCNN, path: str | Path) -> None:
    """Load the detector's own ``state_dict()`` file strictly (torchvision layout, or the
    release architecture's converted one)."""
    state = read_state_dict(path, "detector")
    if any(key.startswith(AUTHORS_DETECTOR_PREFIXES) for key in state):
        raise WeightsError(
            f"detector weights {path}: the authors' faster-rcnn.pytorch layout (RCNN_base.*); "
            "convert it first (tr2_core.release.detector.read_release_detector, "
            "`tr2 import-release --detector`) and use detector.architecture=release"
        )
    load_strict(detector, state, "detector", str(path))


# --------------------------------------------------------------------------- fast path
def _conv_bn_pairs(module: nn.Module) -> list[tuple[nn.Module, str, str]]:
    """(parent, conv name, batch-norm name) of every ``Conv2d`` directly followed by a
    batch norm of its output in torchvision's ResNet: a block's ``convK`` / ``bnK``,
    ``downsample`` ``0`` / ``1``, and the stem's ``conv1`` / ``bn1``."""
    norms = (FrozenBatchNorm2d, nn.BatchNorm2d)
    pairs = []
    for parent in module.modules():
        children = dict(parent.named_children())
        for name, child in children.items():
            if not isinstance(child, norms):
                continue
            conv = "0" if name == "1" else name.replace("bn", "conv", 1)
            if name.startswith("bn") or (name == "1" and isinstance(parent, nn.Sequential)):
                if isinstance(children.get(conv), nn.Conv2d):
                    pairs.append((parent, conv, name))
    return pairs


@torch.no_grad()
def fold_frozen_batchnorm(module: nn.Module) -> int:
    """Fold every frozen batch norm that directly follows a convolution into that
    convolution's weight and bias (in place; the norm becomes ``nn.Identity``).

    ``bn(conv(x)) = conv'(x)`` with ``W' = W * s``, ``b' = (b - mean) * s + beta`` and
    ``s = gamma / sqrt(var + eps)``: the same function, one kernel and one pass over the
    activations fewer per norm (the ResNet-101 detector has 104). Only frozen norms
    (:class:`FrozenBatchNorm2d`, or ``BatchNorm2d`` in eval mode) are folded; outputs
    equal the unfolded module to float rounding (tested: 1e-5 relative). Idempotent.
    The state dict changes (no ``bn*`` keys): fold after loading weights.

    Returns:
        the number of norms folded.
    """
    folded = 0
    for parent, conv_name, bn_name in _conv_bn_pairs(module):
        conv, bn = getattr(parent, conv_name), getattr(parent, bn_name)
        if isinstance(bn, nn.BatchNorm2d) and bn.training:
            continue  # a norm still learning its statistics is not a constant
        eps = bn.eps
        scale = bn.weight * torch.rsqrt(bn.running_var + eps)
        bias = conv.bias if conv.bias is not None else torch.zeros_like(bn.running_mean)
        conv.weight.copy_(conv.weight * scale.reshape(-1, 1, 1, 1))
        new_bias = (bias - bn.running_mean) * scale + bn.bias
        conv.bias = nn.Parameter(new_bias, requires_grad=False)
        setattr(parent, bn_name, nn.Identity())
        folded += 1
    return folded


# --------------------------------------------------------------------------- per-frame rules
def group_argmax(
    values: torch.Tensor,
    groups: torch.Tensor,
    num_groups: int,
    eligible: torch.Tensor | None = None,
) -> torch.Tensor:
    """(num_groups,) int64 row of the largest ``values`` (N,) among the ``eligible`` (N,)
    bool rows of each group (``groups`` (N,) int64 in 0..num_groups-1); ties: the first
    row; -1 for groups without an eligible row."""
    device = groups.device
    rows = torch.arange(groups.shape[0], device=device)
    if eligible is None:
        eligible = torch.ones_like(groups, dtype=torch.bool)
    score = torch.where(eligible, values.float(), torch.full_like(values.float(), -torch.inf))
    best = torch.full((num_groups,), -torch.inf, device=device)
    best = best.scatter_reduce(0, groups, score, reduce="amax", include_self=True)
    winner = eligible & (score == best[groups])
    big = torch.iinfo(torch.long).max
    cand = torch.where(winner, rows, torch.full_like(rows, big))
    first = torch.full((num_groups,), big, dtype=torch.long, device=device)
    first = first.scatter_reduce(0, groups, cand, reduce="amin", include_self=True)
    return torch.where(first == big, torch.full_like(first, -1), first)


def best_person(
    entity_frame: torch.Tensor,
    entity_labels: torch.Tensor,
    entity_scores: torch.Tensor,
    num_frames: int,
) -> torch.Tensor:
    """(T,) int64 row of the highest-scoring ``person`` entity of each frame (ties: the
    first row), -1 for frames without a person."""
    return group_argmax(entity_scores, entity_frame, num_frames, entity_labels == PERSON)


def keep_single_person(
    entity_frame: torch.Tensor,
    entity_labels: torch.Tensor,
    entity_scores: torch.Tensor,
    num_frames: int,
) -> torch.Tensor:
    """(N,) bool: drop every ``person`` detection but the best one of its frame."""
    best = best_person(entity_frame, entity_labels, entity_scores, num_frames)
    rows = torch.arange(entity_frame.shape[0], device=entity_frame.device)
    return (entity_labels != PERSON) | (best[entity_frame] == rows)


RELEASE_CLEANED_CLASSES: tuple[int, ...] = (5, 8, 17)
"""book, chair, food: the classes whose boxes the release duplicates under their next
best class before its second NMS (``clean_class`` of its object classifier)."""

RELEASE_RELABEL_NMS: float = 0.6
"""IoU of the release's per-class NMS over the relabelled boxes."""


def release_sgdet_entities(
    entity_frame: torch.Tensor,
    entity_boxes: torch.Tensor,
    entity_features: torch.Tensor,
    distribution: torch.Tensor,
    num_frames: int,
) -> tuple[torch.Tensor, ...]:
    """The authors' SGDet post-processing of detections (their object classifier at SGDet
    inference, which relabels the boxes without its own network).

    1. Labels from the detector's class distribution over the 36 objects (background
       dropped, renormalised): the argmax.
    2. For book, chair and food in turn, every box labelled so is duplicated, the copy with
       that class's probability zeroed and labelled by its remaining argmax (copies go
       after the frame's other boxes).
    3. Per frame and per argmax class (ascending), best first, NMS at 0.6 with +1 areas.
    4. The person of each frame is the box with the highest person probability (score:
       that probability); every other box takes its best class among 2..36 and that
       probability as score.

    Args:
        entity_frame: (N,) int64, sorted. entity_boxes: (N, 4) frame pixels.
        entity_features: (N, D). distribution: (N, 36), column j = class j + 1.
    Returns:
        (frame, boxes, labels, scores, features, distribution) of the kept boxes, frame by
        frame in the authors' order: class ascending, then probability descending.
    """
    frame, boxes, feats, dist = entity_frame, entity_boxes, entity_features, distribution
    labels = dist.argmax(dim=1) + 1
    for cls in RELEASE_CLEANED_CLASSES:
        copy = labels == cls
        copy_dist = dist[copy].clone()
        copy_dist[:, cls - 1] = 0.0
        frame = torch.cat([frame, frame[copy]])
        boxes = torch.cat([boxes, boxes[copy]])
        feats = torch.cat([feats, feats[copy]])
        dist = torch.cat([dist, copy_dist])
        labels = torch.cat([labels, copy_dist.argmax(dim=1) + 1])
        # stable by frame: each frame's copies follow its earlier boxes, as theirs
        order = torch.sort(frame, stable=True).indices
        frame, boxes, feats, dist, labels = (t[order] for t in (frame, boxes, feats, dist, labels))
    kept: list[torch.Tensor] = []
    groups = torch.stack([frame, labels], dim=1).unique(dim=0)  # (frame, class) ascending
    for f, cls in groups.tolist():
        rows = torch.nonzero((frame == f) & (labels == cls)).reshape(-1)
        score = dist[rows, cls - 1]
        ranked = rows[torch.sort(score, descending=True, stable=True).indices]
        kept.append(ranked[nms_legacy(boxes[ranked], dist[ranked, cls - 1], RELEASE_RELABEL_NMS)])
    keep = torch.cat(kept) if kept else torch.zeros(0, dtype=torch.long, device=frame.device)
    frame, boxes, feats, dist = frame[keep], boxes[keep], feats[keep], dist[keep]
    scores, best = dist[:, PERSON:].max(dim=1)  # classes 2..36
    labels = best + PERSON + 1
    person = group_argmax(dist[:, 0], frame, num_frames)
    person = person[person >= 0]
    labels[person] = PERSON
    scores[person] = dist[person, 0]
    return frame, boxes, labels, scores, feats, dist


# --------------------------------------------------------------------------- detections
def detect(
    detector: FasterRCNN | ReleaseFasterRCNN,
    batch: Any,
    feature_maps: dict[str, torch.Tensor],
    scales: torch.Tensor,
) -> tuple[list[torch.Tensor], list[torch.Tensor], list[torch.Tensor], list[torch.Tensor] | None]:
    """Proposals and detections of a transformed batch (both detectors have torchvision's
    layout: ``transform``, ``backbone``, ``rpn``, ``roi_heads``; only their detection
    rules differ, and only here).

    Args:
        batch: the detector's ``ImageList`` of t frames. feature_maps: ``{"0": C4 map}``.
        scales: (t, 2) x / y resize factor of each frame.
    Returns:
        per frame: boxes (n, 4) in the frame's own pixels, labels (n,) int64, scores (n,);
        and per frame the detections' features (n, feature_dim): the release detector's
        proposal features (as the authors' SGDet takes them), or None for torchvision's
        (pooled at the final boxes by the caller).
    """
    if isinstance(detector, ReleaseFasterRCNN):  # boxes come back in the frames' pixels
        results = detector.detect(batch, feature_maps)
        features = [r["features"] for r in results]
        return (
            [r["boxes"] for r in results],
            [r["labels"] for r in results],
            [r["scores"] for r in results],
            features,
        )
    proposals, _ = detector.rpn(batch, feature_maps)
    results, _ = detector.roi_heads(feature_maps, proposals, batch.image_sizes)
    boxes = [r["boxes"] / scales[i].repeat(2) for i, r in enumerate(results)]
    return boxes, [r["labels"] for r in results], [r["scores"] for r in results], None
