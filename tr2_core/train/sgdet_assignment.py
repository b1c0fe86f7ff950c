"""SGDet training entities, as the authors train SGDet: the detector's detections
assigned to GT boxes (IoU > ``detector.assign_iou``, greedy, one-to-one) plus the GT
boxes it missed, every entity carrying its assigned label; the pairs are the GT
relations only. Training only: inference takes the detections as they are
(:meth:`~tr2_core.models.extractor.FeatureExtractor.extract`)."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torchvision.ops import box_iou

from tr2_core.models.extractor import FeatureExtractor, frames_on_device
from tr2_core.models.pair_features import stack_frames
from tr2_core.types import VideoFeatures


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


@torch.no_grad()
def extract_sgdet_training(
    extractor: FeatureExtractor,
    images: Sequence[torch.Tensor],
    gt_boxes: Sequence[torch.Tensor],
    gt_labels: Sequence[torch.Tensor],
    *,
    frame_keys: Sequence[str] | None = None,
) -> tuple[VideoFeatures, torch.Tensor]:
    """SGDet training features of one clip: detections assigned to GT boxes plus the GT
    boxes the detector missed (score 1, pooled features), so every GT relation can be
    trained.

    Every entity carries its *assigned* label (the GT label of its GT box; 0,
    background, for an unmatched detection), not the detector's: the relation model
    trains on these (class embeddings, sequence keys) and the object classifier learns
    them. The pairs are the GT relations only: per frame the entity assigned to the GT
    person x every entity assigned to a GT object (background detections stay entities,
    for the object classifier, but are in no pair).

    Args:
        images: T frames (3, H, W) uint8 or float in [0, 1].
        gt_boxes: per frame (g_t, 4) original pixels. gt_labels: per frame (g_t,) int64.
    Returns:
        (features, entity_gt): ``entity_gt`` (N,) int64 row into the concatenated
        ``gt_boxes`` (frame order), -1 for an unmatched detection (background target).
    """
    if len(gt_boxes) != len(images) or len(gt_labels) != len(images):
        raise ValueError("give gt_boxes and gt_labels as one tensor per image")
    device = extractor.device
    assign_iou = extractor.config.detector.assign_iou
    frames = frames_on_device(images, device)
    rows: list[tuple[torch.Tensor, ...]] = []
    gt_offset = 0
    for chunk in extractor.detect_chunks(frames):
        frame, box, lab, sc = chunk.detections
        # detections with their own features (release detector): only added GT boxes
        # are pooled; row order below follows `frame` / `box`
        feat = chunk.entity_features
        gboxes = [gt_boxes[i].to(device).float().reshape(-1, 4) for i in chunk.frames]
        glabels = [gt_labels[i].to(device).long().reshape(-1) for i in chunk.frames]
        gcounts = torch.tensor([b.shape[0] for b in gboxes], device=device)
        gframe = torch.repeat_interleave(torch.tensor(list(chunk.frames), device=device), gcounts)
        gbox = torch.cat(gboxes)
        glab = torch.cat(glabels)
        assigned = assign_detections(box, frame, gbox, gframe, assign_iou)
        missed = torch.ones(gbox.shape[0], dtype=torch.bool, device=device)
        missed[assigned[assigned >= 0]] = False
        grows = torch.arange(gbox.shape[0], device=device)
        if feat is not None:
            added = [gbox[missed & (gframe == i)] for i in chunk.frames]
            feat = torch.cat([feat, extractor.pool(chunk, added)])
        frame = torch.cat([frame, gframe[missed]])
        box = torch.cat([box, gbox[missed]])
        lab = torch.cat([lab, glab[missed]])
        sc = torch.cat([sc, torch.ones(int(missed.sum()), device=device)])
        assigned = torch.cat([assigned, grows[missed]])
        # the authors' training labels: the assigned GT label, 0 = background
        gt_label = glab[assigned.clamp(min=0)] if glab.numel() else lab
        lab = torch.where(assigned >= 0, gt_label, torch.zeros_like(lab))
        assigned = torch.where(assigned >= 0, assigned + gt_offset, assigned)
        gt_offset += gbox.shape[0]
        # keep entities sorted by frame (stable: detections before added GT boxes)
        order = torch.sort(frame, stable=True).indices
        frame, box, lab, sc, assigned = (t[order] for t in (frame, box, lab, sc, assigned))
        feat = feat[order] if feat is not None else extractor.pool_rows(chunk, frame, box)
        rows.append((frame, box, lab, sc, feat, assigned))
    frame, box, lab, sc, feat, entity_gt = (torch.cat(c) for c in zip(*rows, strict=True))
    features = extractor.finish(
        stack_frames(frames),
        frame_keys,
        frame,
        box,
        lab,
        sc,
        feat,
        torch.full_like(frame, -1),
        background_objects=False,
    )
    return features, entity_gt
