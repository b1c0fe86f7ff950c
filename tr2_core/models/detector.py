"""Entities: Faster R-CNN (torchvision building blocks, ResNet C4) and the box-level
operations of the pipeline (pooled RoI features, single best person, pairs,
SGDet training assignment). All box operations are vectorised over the clip.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import replace
from pathlib import Path

import torch
import torchvision
from torch import nn
from torchvision.models.detection import FasterRCNN
from torchvision.models.detection._utils import BoxCoder
from torchvision.models.detection.anchor_utils import AnchorGenerator
from torchvision.models.detection.faster_rcnn import FastRCNNPredictor
from torchvision.ops import MultiScaleRoIAlign, box_iou
from torchvision.ops.misc import FrozenBatchNorm2d

from tr2_core.errors import WeightsError
from tr2_core.models.config import DetectorConfig
from tr2_core.models.release_detector import (
    ReleaseFasterRCNN,
    build_release_detector,
    nms_legacy,
)
from tr2_core.torch_files import load_weights_file
from tr2_core.types import VideoFeatures
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
    body = nn.Sequential(
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


# --------------------------------------------------------------------------- box ops
def union_boxes(subject: torch.Tensor, obj: torch.Tensor) -> torch.Tensor:
    """Union of two box sets (P, 4) ``x1 y1 x2 y2`` -> (P, 4)."""
    lo = torch.minimum(subject[:, :2], obj[:, :2])
    hi = torch.maximum(subject[:, 2:], obj[:, 2:])
    return torch.cat([lo, hi], dim=1)


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


def make_pairs(
    entity_frame: torch.Tensor,
    entity_labels: torch.Tensor,
    entity_scores: torch.Tensor,
    num_frames: int,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Pairs of a clip: the best person of each frame x every other entity of the frame.

    Returns (pair_frame, pair_subject, pair_object), each (P,) int64, in entity row order
    (so sorted by frame when the entities are).
    """
    subject_of = best_person(entity_frame, entity_labels, entity_scores, num_frames)
    rows = torch.arange(entity_frame.shape[0], device=entity_frame.device)
    subj = subject_of[entity_frame]
    keep = (subj >= 0) & (subj != rows)
    return entity_frame[keep], subj[keep], rows[keep]


def other_pairs(
    entity_frame: torch.Tensor,
    entity_labels: torch.Tensor,
    entity_scores: torch.Tensor,
    num_frames: int,
) -> tuple[torch.Tensor, torch.Tensor]:
    """The entity pairs of each frame that :func:`make_pairs` leaves out: every
    unordered pair of two entities neither of which is the frame's subject.

    entity_frame (N,) int64 sorted -> (first, second), each (Q,) int64 entity rows,
    ``first < second``, sorted by frame. Together with the pairs they cover every
    unordered pair of a frame's entities once.
    """
    device = entity_frame.device
    rows = torch.arange(entity_frame.shape[0], device=device)
    counts = torch.bincount(entity_frame, minlength=num_frames)
    start = torch.cumsum(counts, 0) - counts
    later = (start + counts)[entity_frame] - rows - 1  # entities after each one in its frame
    first = torch.repeat_interleave(rows, later)
    group_start = torch.cumsum(later, 0) - later
    offset = torch.arange(first.shape[0], device=device) - torch.repeat_interleave(
        group_start, later
    )
    second = first + offset + 1
    subject_of = best_person(entity_frame, entity_labels, entity_scores, num_frames)
    subject = subject_of[entity_frame[first]]
    keep = (first != subject) & (second != subject)
    return first[keep], second[keep]


def pairs_around(
    features: VideoFeatures, person_of_frame: torch.Tensor, entity_labels: torch.Tensor
) -> VideoFeatures:
    """``features`` with its pairs re-formed around other subjects (the release's SGCls
    re-pairing): per frame the entity ``person_of_frame`` (T,) int64 (-1: none) x every
    other entity whose ``entity_labels`` (N,) is not person, in entity order. Each new
    pair's union feature is the one already extracted for the same two entities (union
    boxes do not depend on the order): from the pairs or the other pairs.

    Raises:
        ValueError: a new pair's two entities have no union feature (features extracted
            without ``with_other_pairs``).
    """
    frame = features.entity_frame
    num = frame.shape[0]
    rows = torch.arange(num, device=frame.device)
    subject = person_of_frame[frame] if num else rows
    keep = (subject >= 0) & (subject != rows) & (entity_labels != PERSON)
    new_subject, new_object = subject[keep], rows[keep]

    def unordered(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        return torch.minimum(a, b) * num + torch.maximum(a, b)

    known = [unordered(features.pair_subject, features.pair_object)]
    union = [features.union_features]
    if features.other_pair_subject is not None:
        known.append(unordered(features.other_pair_subject, features.other_pair_object))
        union.append(features.other_union_features.to(features.union_features))
    known_keys = torch.cat(known)
    order = torch.argsort(known_keys)
    wanted = unordered(new_subject, new_object)
    pos = torch.searchsorted(known_keys[order], wanted).clamp(max=max(known_keys.numel() - 1, 0))
    found = known_keys.numel() > 0 and bool((known_keys[order][pos] == wanted).all())
    if wanted.numel() and not found:
        raise ValueError(
            "SGCls re-pairing needs the union features of every entity pair of a frame: "
            "extract with with_other_pairs=True (object_classifier.sgcls_pairs=classifier)"
        )
    return replace(
        features,
        pair_frame=frame[keep],
        pair_subject=new_subject,
        pair_object=new_object,
        union_features=torch.cat(union)[order[pos]] if wanted.numel() else union[0][:0],
    )


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


def assign_detections(
    det_boxes: torch.Tensor,
    det_frame: torch.Tensor,
    gt_boxes: torch.Tensor,
    gt_frame: torch.Tensor,
    iou_threshold: float = 0.5,
) -> torch.Tensor:
    """Greedy one-to-one assignment of detections to GT boxes of the same frame at
    IoU > ``iou_threshold`` (highest IoU first; each detection and GT used once).

    Implemented as rounds of mutual-best matching over the whole clip, which yields
    the same matches as the sequential greedy pass (a mutually best pair is never taken
    by a higher-IoU pair) without a Python loop over boxes.

    Returns:
        (D,) int64 GT row per detection, -1 when unmatched.
    """
    num_det, num_gt = det_boxes.shape[0], gt_boxes.shape[0]
    assigned = torch.full((num_det,), -1, dtype=torch.long, device=det_boxes.device)
    if num_det == 0 or num_gt == 0:
        return assigned
    iou = box_iou(det_boxes.float(), gt_boxes.float())
    iou = torch.where(det_frame[:, None] == gt_frame[None, :], iou, torch.zeros_like(iou))
    iou = torch.where(iou > iou_threshold, iou, torch.full_like(iou, -1.0))
    det_rows = torch.arange(num_det, device=iou.device)
    while True:
        best_gt_val, best_gt = iou.max(dim=1)  # per detection
        best_det = iou.argmax(dim=0)  # per GT
        mutual = (best_gt_val > 0) & (best_det[best_gt] == det_rows)
        if not bool(mutual.any()):
            return assigned
        d = det_rows[mutual]
        g = best_gt[mutual]
        assigned[d] = g
        iou[d, :] = -1.0
        iou[:, g] = -1.0


# --------------------------------------------------------------------------- release SGDet
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
