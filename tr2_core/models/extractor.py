"""The frozen feature extractor: detector (entities + pooled RoI features) and the
CLIP image tower (union-box features). Its output, :class:`VideoFeatures`, never
changes during training and is what the feature cache stores.
"""

from __future__ import annotations

import logging
from collections import OrderedDict
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torchvision.models.detection import FasterRCNN

from tr2_core.errors import WeightsError
from tr2_core.models.entities import (
    build_detector,
    detect,
    fold_frozen_batchnorm,
    keep_single_person,
    load_detector_weights,
    release_sgdet_entities,
)
from tr2_core.models.model_config import ModelConfig, resolve_config
from tr2_core.models.pair_features import UnionFeatureEncoder, create_clip, stack_frames
from tr2_core.models.pairs import make_pairs, other_pairs, union_boxes
from tr2_core.types import VideoFeatures

log = logging.getLogger(__name__)


def frames_on_device(images: Sequence[torch.Tensor], device: torch.device) -> list[torch.Tensor]:
    """Frames (3, H, W) uint8, or float in [0, 1] -> float in [0, 1] on ``device``."""
    return [
        (im.float() / 255.0 if im.dtype == torch.uint8 else im.float()).to(device) for im in images
    ]


@dataclass
class DetectedChunk:
    """A chunk of frames through the detector (:meth:`FeatureExtractor.detect_chunks`).

    Attributes:
        frames: the chunk's frame indices in the clip.
        batch, feature_maps, scales: the detector's input batch, its C4 feature maps and
            the (t, 2) x / y resize factor of each frame: what pooling more boxes needs.
        entity_frame: (n,) int64 clip frame index, sorted. entity_boxes: (n, 4) original
            pixels. entity_labels: (n,) int64. entity_scores: (n,) float.
        entity_features: (n, feature_dim) the release detector's proposal features, or
            None (torchvision's: pooled at the final boxes, :meth:`FeatureExtractor.pool_rows`).
    """

    frames: range
    batch: Any
    feature_maps: dict[str, torch.Tensor]
    scales: torch.Tensor
    entity_frame: torch.Tensor
    entity_boxes: torch.Tensor
    entity_labels: torch.Tensor
    entity_scores: torch.Tensor
    entity_features: torch.Tensor | None

    @property
    def detections(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """(entity_frame, entity_boxes, entity_labels, entity_scores)."""
        return self.entity_frame, self.entity_boxes, self.entity_labels, self.entity_scores


class FeatureExtractor(nn.Module):
    """Detector + CLIP image tower, frozen (eval mode, no gradients).

    Attributes:
        detector: torchvision ``FasterRCNN`` (ResNet C4 body, layer4 box head).
        union: :class:`UnionFeatureEncoder` over the open_clip model.
        random_init: True when built with ``random_init=True`` (record it in metrics).
    """

    def __init__(
        self,
        detector: FasterRCNN,
        union: UnionFeatureEncoder,
        config: ModelConfig,
        *,
        random_init: bool = False,
    ) -> None:
        super().__init__()
        self.detector = detector
        self.union = union
        self.config = config
        self.random_init = random_init
        self.roi_bucket = 0  # see use_fixed_shapes
        # compiled callables, kept in a plain dict so they are not registered twice as
        # submodules (the state dict keeps the detector's own keys)
        self._compiled: dict[str, Any] = {}
        self.eval()
        for p in self.parameters():
            p.requires_grad_(False)

    def train(self, mode: bool = True) -> FeatureExtractor:
        """Always stays in eval mode (frozen batch statistics, no dropout)."""
        return super().train(False)

    @property
    def device(self) -> torch.device:
        return next(self.detector.parameters()).device

    # ------------------------------------------------------------------ fast paths
    def fold_batchnorm(self) -> int:
        """Fold the frozen detector's batch norms into its convolutions, in place
        (:func:`~tr2_core.models.entities.fold_frozen_batchnorm`; the CLIP tower has
        none). Same features to float rounding. Returns the number folded."""
        return fold_frozen_batchnorm(self.detector)

    def use_fixed_shapes(self, roi_bucket: int, compile_mode: str | None = None) -> None:
        """Run the box head on RoI counts padded up to a multiple of ``roi_bucket``
        (0: off), so that its input has one of a few fixed shapes; with
        ``compile_mode`` (``torch.compile`` mode, e.g. ``"reduce-overhead"`` for CUDA
        graphs) the C4 body and the box head are compiled for those shapes. Padding
        rows are zeros, dropped after the head, which treats rows independently: the
        features are unchanged (tested without compile)."""
        self.roi_bucket = roi_bucket
        self._compiled = {}
        if compile_mode:
            parts = {"body": self.detector.backbone, "box_head": self.detector.roi_heads.box_head}
            for name, part in parts.items():
                self._compiled[name] = torch.compile(part, mode=compile_mode, dynamic=False)

    def _run_box_head(self, pooled: torch.Tensor) -> torch.Tensor:
        """Box head over pooled RoIs (n, C, r, r) -> (n, feature_dim), padded to the
        RoI bucket when :meth:`use_fixed_shapes` set one."""
        bucket = self.roi_bucket
        head = self._compiled.get("box_head", self.detector.roi_heads.box_head)
        if not bucket:
            return head(pooled)
        count = pooled.shape[0]
        padded_count = -(-count // bucket) * bucket
        padding = pooled.new_zeros(padded_count - count, *pooled.shape[1:])
        return head(torch.cat([pooled, padding]))[:count]

    # ------------------------------------------------------------------ detector parts
    def _backbone(self, images: list[torch.Tensor]):
        """Transform + C4 body for a chunk of frames -> (ImageList, features dict, scales)."""
        det = self.detector
        images_t, _ = det.transform(images)
        body = self._compiled.get("body", det.backbone)
        feats = OrderedDict([("0", body(images_t.tensors))])
        scales = getattr(images_t, "scales", None)  # the release transform's own factors
        if scales is None:
            scales = torch.tensor(
                [
                    [new[1] / im.shape[-1], new[0] / im.shape[-2]]
                    for new, im in zip(images_t.image_sizes, images, strict=True)
                ],
                device=images_t.tensors.device,
            )  # (T, 2) x and y scale per frame
        return images_t, feats, scales

    def _pool(
        self, images_t, feats, scales: torch.Tensor, boxes: list[torch.Tensor]
    ) -> torch.Tensor:
        """RoIAlign + box head for per-frame boxes in original pixels -> (n, feature_dim)."""
        det = self.detector
        scaled = [b.float() * scales[i].repeat(2) for i, b in enumerate(boxes)]
        if sum(int(b.shape[0]) for b in scaled) == 0:
            return feats["0"].new_zeros(0, self.config.detector.feature_dim)
        pooled = det.roi_heads.box_roi_pool(feats, scaled, images_t.image_sizes)
        return self._run_box_head(pooled)

    def class_distribution(self, entity_features: torch.Tensor) -> torch.Tensor:
        """(N, D) entity features -> (N, 36): the detector's classification layer's
        softmax over the 36 objects, background dropped first (as the release)."""
        logits = self.detector.roi_heads.box_predictor.cls_score(entity_features)
        return logits.float()[:, 1:].softmax(dim=1)

    def _chunks(self, num_frames: int) -> list[range]:
        step = max(1, self.config.detector.frames_per_batch)
        return [range(s, min(s + step, num_frames)) for s in range(0, num_frames, step)]

    # ------------------------------------------------------------------ public API
    @torch.no_grad()
    def extract(
        self,
        images: Sequence[torch.Tensor],
        boxes: Sequence[torch.Tensor] | None = None,
        labels: Sequence[torch.Tensor] | None = None,
        *,
        scores: Sequence[torch.Tensor] | None = None,
        tracks: Sequence[torch.Tensor] | None = None,
        frame_keys: Sequence[str] | None = None,
        with_other_pairs: bool = False,
    ) -> VideoFeatures:
        """Features of one clip.

        Args:
            images: T frames, each (3, H, W) uint8 or float in [0, 1], original resolution.
            boxes: per frame (n_t, 4) ``x1 y1 x2 y2`` original pixels (PredCls / SGCls), or
                None to detect (SGDet: per-class score > threshold, NMS, single best person).
            labels: per frame (n_t,) int64 AG object indices; required with ``boxes``
                (the person is the subject of the pairs).
            scores: per frame (n_t,) confidences for given boxes (default 1).
            tracks: per frame (n_t,) int64 track ids for given boxes (default -1).
            frame_keys: T keys (default ``"0"``, ``"1"``, ...).
            with_other_pairs: given boxes only: also the union features of the entity
                pairs that are not pairs (SGCls re-pairing, ``sgcls_pairs: classifier``).
        Returns:
            :class:`VideoFeatures` on the extractor's device.
        """
        if boxes is None:
            if labels is not None or scores is not None or tracks is not None:
                raise ValueError("labels/scores/tracks need boxes (SGDet detects its own)")
            return self._extract_detected(images, frame_keys=frame_keys)
        if labels is None or len(labels) != len(boxes) or len(boxes) != len(images):
            raise ValueError("give boxes and labels as one tensor per image")
        return self._extract_given(
            images, boxes, labels, scores, tracks, frame_keys, with_other_pairs
        )

    # ------------------------------------------------------------------ implementation
    def finish(
        self,
        frames: torch.Tensor,
        frame_keys: Sequence[str] | None,
        entity_frame: torch.Tensor,
        entity_boxes: torch.Tensor,
        entity_labels: torch.Tensor,
        entity_scores: torch.Tensor,
        entity_features: torch.Tensor,
        entity_track: torch.Tensor,
        *,
        background_objects: bool = True,
        with_other_pairs: bool = False,
    ) -> VideoFeatures:
        """Pairs, union features and the :class:`VideoFeatures` of a clip's entities;
        ``background_objects`` false: no pair has a background (label 0) object;
        ``with_other_pairs``: also the union features of the entity pairs that are not
        pairs (:func:`other_pairs`)."""
        num_frames = frames.shape[0]
        pair_frame, pair_subject, pair_object = make_pairs(
            entity_frame, entity_labels, entity_scores, num_frames
        )
        if not background_objects:
            real = entity_labels[pair_object] != 0
            pair_frame, pair_subject, pair_object = (
                pair_frame[real],
                pair_subject[real],
                pair_object[real],
            )
        union = union_boxes(entity_boxes[pair_subject], entity_boxes[pair_object])
        union_features = self.union(frames, pair_frame, union)
        others: dict[str, torch.Tensor] = {}
        if with_other_pairs:
            first, second = other_pairs(entity_frame, entity_labels, entity_scores, num_frames)
            crops = union_boxes(entity_boxes[first], entity_boxes[second])
            others = {
                "other_pair_subject": first,
                "other_pair_object": second,
                "other_union_features": self.union(frames, entity_frame[first], crops).float(),
            }
        keys = list(frame_keys) if frame_keys is not None else [str(i) for i in range(num_frames)]
        if len(keys) != num_frames:
            raise ValueError(f"{len(keys)} frame keys for {num_frames} images")
        return VideoFeatures(
            frame_keys=keys,
            entity_frame=entity_frame,
            entity_boxes=entity_boxes.float(),
            entity_labels=entity_labels.long(),
            entity_scores=entity_scores.float(),
            entity_features=entity_features.float(),
            entity_track=entity_track.long(),
            pair_frame=pair_frame,
            pair_subject=pair_subject,
            pair_object=pair_object,
            union_features=union_features.float(),
            **others,
        )

    def _extract_given(
        self, images, boxes, labels, scores, tracks, frame_keys, with_other_pairs=False
    ) -> VideoFeatures:
        device = self.device
        imgs = frames_on_device(images, device)
        boxes = [b.to(device).float().reshape(-1, 4) for b in boxes]
        features = []
        for chunk in self._chunks(len(imgs)):
            images_t, feats, scales = self._backbone([imgs[i] for i in chunk])
            features.append(self._pool(images_t, feats, scales, [boxes[i] for i in chunk]))
        counts = torch.tensor([b.shape[0] for b in boxes], device=device)
        entity_frame = torch.repeat_interleave(torch.arange(len(imgs), device=device), counts)
        n = int(counts.sum())
        cat = torch.cat
        return self.finish(
            stack_frames(imgs),
            frame_keys,
            entity_frame,
            cat(boxes) if n else torch.zeros(0, 4, device=device),
            cat([lab.to(device).long().reshape(-1) for lab in labels]),
            cat([s.to(device).float().reshape(-1) for s in scores])
            if scores is not None
            else torch.ones(n, device=device),
            cat(features),
            cat([t.to(device).long().reshape(-1) for t in tracks])
            if tracks is not None
            else torch.full((n,), -1, dtype=torch.long, device=device),
            with_other_pairs=with_other_pairs,
        )

    def detect_chunks(self, frames: list[torch.Tensor]) -> Iterator[DetectedChunk]:
        """The detector over ``frames`` (float, on the extractor's device), a chunk of
        ``detector.frames_per_batch`` frames at a time: each chunk's detections, with one
        best person per frame, and what pooling more boxes on those frames needs."""
        num_frames = len(frames)
        for chunk in self._chunks(num_frames):
            batch, feature_maps, scales = self._backbone([frames[i] for i in chunk])
            boxes, labels, scores, features = detect(self.detector, batch, feature_maps, scales)
            counts = torch.tensor([b.shape[0] for b in boxes], device=scales.device)
            frame = torch.repeat_interleave(torch.tensor(list(chunk), device=scales.device), counts)
            box, lab, sc = torch.cat(boxes), torch.cat(labels), torch.cat(scores)
            keep = keep_single_person(frame, lab, sc, num_frames)
            yield DetectedChunk(
                frames=chunk,
                batch=batch,
                feature_maps=feature_maps,
                scales=scales,
                entity_frame=frame[keep],
                entity_boxes=box[keep],
                entity_labels=lab[keep],
                entity_scores=sc[keep],
                entity_features=torch.cat(features)[keep] if features is not None else None,
            )

    def pool(self, chunk: DetectedChunk, boxes: list[torch.Tensor]) -> torch.Tensor:
        """Entity features of boxes on a chunk's frames: ``boxes`` one (n_t, 4) tensor per
        frame of the chunk, original pixels -> (sum n_t, feature_dim), frame by frame."""
        return self._pool(chunk.batch, chunk.feature_maps, chunk.scales, boxes)

    def pool_rows(
        self, chunk: DetectedChunk, entity_frame: torch.Tensor, entity_boxes: torch.Tensor
    ) -> torch.Tensor:
        """Entity features of rows sorted by frame: entity_frame (n,) clip frame index,
        entity_boxes (n, 4) original pixels -> (n, feature_dim)."""
        local = entity_frame - chunk.frames.start
        return self.pool(chunk, [entity_boxes[local == i] for i in range(len(chunk.frames))])

    def _extract_detected(self, images, *, frame_keys) -> VideoFeatures:
        frames = frames_on_device(images, self.device)
        relabel = self.config.object_classifier.sgdet_labels == "release"
        rows: list[tuple[torch.Tensor, ...]] = []
        for chunk in self.detect_chunks(frames):
            frame, box, lab, sc = chunk.detections
            feat = chunk.entity_features
            if feat is None:
                feat = self.pool_rows(chunk, frame, box)
            if relabel:
                frame, box, lab, sc, feat, _ = release_sgdet_entities(
                    frame, box, feat, self.class_distribution(feat), len(frames)
                )
            rows.append((frame, box, lab, sc, feat))
        frame, box, lab, sc, feat = (torch.cat(column) for column in zip(*rows, strict=True))
        return self.finish(
            stack_frames(frames), frame_keys, frame, box, lab, sc, feat, torch.full_like(frame, -1)
        )


def create_extractor(
    config: ModelConfig | str | Path,
    *,
    random_init: bool = False,
    detector_weights: str | Path | None = None,
    clip_weights: str | None = None,
    device: str | torch.device = "cpu",
) -> FeatureExtractor:
    """The frozen :class:`FeatureExtractor` of ``config``.

    Says nothing about a random init: the run builder (:mod:`tr2_core.run`) announces it.

    Args:
        random_init: same architecture with random weights; sets
            ``extractor.random_init = True``.
        detector_weights: torchvision-format ``FasterRCNN`` state dict file (overrides
            ``detector.weights``).
        clip_weights: open_clip checkpoint file or tag (overrides ``clip.pretrained``).
    Raises:
        WeightsError: weights missing / unreadable / not matching (never a silent random init).
    """
    cfg = resolve_config(config)
    detector = build_detector(cfg.detector)
    if not random_init:
        path = detector_weights if detector_weights is not None else cfg.detector.weights
        if not path:
            raise WeightsError(
                f"model {cfg.name!r}: no detector weights; set detector.weights or pass "
                "--detector-weights PATH (a torchvision FasterRCNN state dict); use "
                "--random-init only for tests and the synthetic demo"
            )
        load_detector_weights(detector, path)
    clip_model = create_clip(cfg.clip, random_init=random_init, pretrained=clip_weights)
    union = UnionFeatureEncoder(clip_model, cfg.clip)
    if union.out_dim != cfg.representation.union_dim:
        raise WeightsError(
            f"CLIP {cfg.clip.model_name} gives {union.out_dim}-d image features but "
            f"representation.union_dim is {cfg.representation.union_dim}"
        )
    extractor = FeatureExtractor(detector, union, cfg, random_init=random_init)
    return extractor.to(device)
