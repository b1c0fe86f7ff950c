"""Action Genome split -> per-video clips (GT entities, pairs, labels, image paths).

A split's columnar ground truth (frames grouped by video, boxes by frame, pairs by
frame) is cut into videos by CSR offsets: no per-frame Python objects. One clip is one
video (or a window of consecutive frames of it): the unit of one training step, as in
the baselines.

Entities of a clip are the GT boxes of its frames (person first in every frame), pairs
are (person, object) within a frame. In PredCls / SGCls the extractor consumes exactly
these entities and pairs, so its :class:`VideoFeatures` rows line up with the
:class:`VideoTargets` rows built here.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, fields, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch

from tr2_core.types import GroundTruth, VideoFeatures, VideoTargets
from tr2_core.vocab import CONTACTING, SPATIAL


@dataclass
class VideoClip:
    """One video's (or window's) annotated frames, ready for the extractor.

    ``T`` frames, ``N`` GT entities (sorted by frame, person first per frame), ``P``
    (person, object) pairs sorted by frame.

    Attributes:
        video: video id, e.g. ``'001YG.mp4'``.
        frame_keys: T frame keys.
        image_paths: T paths of the frame PNGs.
        frame_size: (T, 2) int64 image ``(width, height)``.
        entity_frame: (N,) int64 frame index 0..T-1.
        entity_boxes: (N, 4) float32 ``x1 y1 x2 y2``.
        entity_labels: (N,) int64 AG object index.
        pair_frame: (P,) int64 frame index.
        pair_subject: (P,) int64 row into the entities (the person).
        pair_object: (P,) int64 row into the entities.
        targets: the labels, rows aligned with the entities and pairs above.
    """

    video: str
    frame_keys: list[str]
    image_paths: list[Path]
    frame_size: torch.Tensor
    entity_frame: torch.Tensor
    entity_boxes: torch.Tensor
    entity_labels: torch.Tensor
    pair_frame: torch.Tensor
    pair_subject: torch.Tensor
    pair_object: torch.Tensor
    targets: VideoTargets

    @property
    def num_frames(self) -> int:
        return len(self.frame_keys)


def _multi_hot(labels: np.ndarray, size: int) -> np.ndarray:
    """(P, size) float32 from a multi-hot array (bool/int/float) of that width."""
    labels = np.asarray(labels)
    if labels.ndim != 2 or labels.shape[1] != size:
        raise ValueError(f"expected a (P, {size}) multi-hot array, got shape {labels.shape}")
    return labels.astype(np.float32)


class ActionGenomeVideos:
    """Index of the videos of one loaded split, for :class:`VideoClip` access.

    Args:
        split: an ``ActionGenomeSplit`` (``tr2_core.data.action_genome.load_split``): its
            ``gt`` and the per-pair arrays ``pair_frame`` (rows into ``gt.frame_keys``),
            ``pair_subject`` / ``pair_object`` (rows into ``gt.boxes``),
            ``pair_attention`` (P,) (-1 where unlabelled), ``pair_spatial`` (P, 6) and
            ``pair_contacting`` (P, 17) multi-hot, and ``frame_image_path(key)``.
        max_videos: keep only the first N videos (0: all) of the selection.
        rows: the split's video rows to index, in this order (None: all); a held-out
            validation subset or the training videos without it.
    """

    def __init__(self, split: Any, max_videos: int = 0, rows: Sequence[int] | None = None) -> None:
        gt: GroundTruth = split.gt
        self.split = split
        self.gt = gt
        rows = list(range(gt.num_videos)) if rows is None else [int(r) for r in rows]
        if max_videos > 0:
            rows = rows[:max_videos]
        self.rows: list[int] = rows
        """Index ``i`` of this object is video row ``rows[i]`` of the split."""
        self.num_videos = len(rows)
        self.videos: list[str] = [str(gt.videos[r]) for r in rows]
        pair_frame = np.asarray(split.pair_frame, dtype=np.int64)
        if pair_frame.size and np.any(np.diff(pair_frame) < 0):
            raise ValueError("split pairs must be sorted by frame")
        # CSR offsets of the pairs per frame
        self.pair_start = np.searchsorted(pair_frame, np.arange(gt.num_frames + 1), side="left")
        self.pair_subject = np.asarray(split.pair_subject, dtype=np.int64)
        self.pair_object = np.asarray(split.pair_object, dtype=np.int64)
        self.pair_frame = pair_frame
        self.pair_attention = np.asarray(split.pair_attention, dtype=np.int64)
        self.pair_spatial = _multi_hot(split.pair_spatial, SPATIAL.size)
        self.pair_contacting = _multi_hot(split.pair_contacting, CONTACTING.size)

    def __len__(self) -> int:
        return self.num_videos

    def frame_range(self, index: int) -> tuple[int, int]:
        """Rows ``[f0, f1)`` of video ``index`` in ``gt.frame_keys``."""
        row = self.rows[index]
        return int(self.gt.video_start[row]), int(self.gt.video_start[row + 1])

    def pair_rows(self) -> np.ndarray:
        """(P_sel,) int64 rows into the split's pair arrays of the indexed videos' pairs."""
        spans = [self.frame_range(i) for i in range(self.num_videos)]
        parts = [np.arange(self.pair_start[f0], self.pair_start[f1]) for f0, f1 in spans]
        return np.concatenate(parts).astype(np.int64) if parts else np.zeros(0, np.int64)

    def selected_gt(self) -> GroundTruth:
        """The evaluator's ground truth of exactly the indexed videos, in index order."""
        return gt_videos(self.gt, self.rows)

    def clip(self, index: int, start: int = 0, stop: int | None = None) -> VideoClip:
        """Frames ``[start, stop)`` (video-relative) of video ``index`` as a clip."""
        gt = self.gt
        v0, v1 = self.frame_range(index)
        f0 = v0 + start
        f1 = v1 if stop is None else min(v1, v0 + stop)
        b0, b1 = int(gt.box_start[f0]), int(gt.box_start[f1])
        p0, p1 = int(self.pair_start[f0]), int(self.pair_start[f1])
        keys = [str(k) for k in gt.frame_keys[f0:f1]]
        t = torch.from_numpy
        return VideoClip(
            video=self.videos[index],
            frame_keys=keys,
            image_paths=[Path(self.split.frame_image_path(k)) for k in keys],
            frame_size=t(gt.frame_size[f0:f1].astype(np.int64)),
            entity_frame=t(gt.box_frame[b0:b1] - f0),
            entity_boxes=t(gt.boxes[b0:b1].astype(np.float32)),
            entity_labels=t(gt.box_labels[b0:b1].astype(np.int64)),
            pair_frame=t(self.pair_frame[p0:p1] - f0),
            pair_subject=t(self.pair_subject[p0:p1] - b0),
            pair_object=t(self.pair_object[p0:p1] - b0),
            targets=VideoTargets(
                entity_labels=t(gt.box_labels[b0:b1].astype(np.int64)),
                pair_attention=t(self.pair_attention[p0:p1].copy()),
                pair_spatial=t(self.pair_spatial[p0:p1].copy()),
                pair_contacting=t(self.pair_contacting[p0:p1].copy()),
            ),
        )

    def num_frames(self, index: int) -> int:
        f0, f1 = self.frame_range(index)
        return f1 - f0


def shard_indices(
    n: int, rank: int, world_size: int, *, shuffle: bool, seed: int, pad: bool = True
) -> list[int]:
    """This rank's share of ``range(n)`` for one epoch (DDP sharding by video).

    The order is a permutation seeded by ``seed`` (same on every rank); rank ``r`` takes
    every ``world_size``-th item from ``r``. With ``pad`` the list is padded by wrapping
    around so every rank gets the same number of steps (needed by DDP: a rank with fewer
    steps would wait forever in the gradient all-reduce).
    """
    order = np.random.default_rng(seed).permutation(n) if shuffle else np.arange(n)
    if pad and world_size > 1 and n % world_size:
        order = np.concatenate([order, order[: world_size - n % world_size]])
    return [int(i) for i in order[rank::world_size]]


def frame_window(num_frames: int, max_frames: int, rng: np.random.Generator) -> tuple[int, int]:
    """A random window ``[start, stop)`` of at most ``max_frames`` consecutive frames
    (the whole video when ``max_frames`` is 0 or the video is short enough)."""
    if max_frames <= 0 or num_frames <= max_frames:
        return 0, num_frames
    start = int(rng.integers(0, num_frames - max_frames + 1))
    return start, start + max_frames


def frame_chunks(num_frames: int, max_frames: int) -> list[tuple[int, int]]:
    """Consecutive windows covering all frames (evaluation with a length cap)."""
    if max_frames <= 0 or num_frames <= max_frames:
        return [(0, num_frames)]
    return [(s, min(s + max_frames, num_frames)) for s in range(0, num_frames, max_frames)]


def slice_features(features: VideoFeatures, start: int, stop: int) -> VideoFeatures:
    """Frames ``[start, stop)`` of ``features``: entities and pairs of those frames,
    with frame and entity indices renumbered. Entities and pairs are sorted by frame,
    so both selections are contiguous row ranges."""
    if start == 0 and stop >= len(features.frame_keys):
        return features
    e0, e1 = _row_range(features.entity_frame, start, stop)
    p0, p1 = _row_range(features.pair_frame, start, stop)
    out: dict[str, Any] = {"frame_keys": list(features.frame_keys[start:stop])}
    for f in fields(VideoFeatures):
        value = getattr(features, f.name)
        if f.name.startswith("entity_"):
            out[f.name] = value[e0:e1]
        elif f.name.startswith("pair_") or f.name == "union_features":
            out[f.name] = value[p0:p1]
    out["entity_frame"] = out["entity_frame"] - start
    out["pair_frame"] = out["pair_frame"] - start
    out["pair_subject"] = out["pair_subject"] - e0
    out["pair_object"] = out["pair_object"] - e0
    if features.other_pair_subject is not None:
        other_frame = features.entity_frame[features.other_pair_subject]
        q0, q1 = _row_range(other_frame, start, stop)
        out["other_pair_subject"] = features.other_pair_subject[q0:q1] - e0
        out["other_pair_object"] = features.other_pair_object[q0:q1] - e0
        out["other_union_features"] = features.other_union_features[q0:q1]
    return replace(features, **out)


def slice_targets(
    targets: VideoTargets, features: VideoFeatures, start: int, stop: int
) -> VideoTargets:
    """The rows of ``targets`` that :func:`slice_features` keeps (same ranges)."""
    if start == 0 and stop >= len(features.frame_keys):
        return targets
    e0, e1 = _row_range(features.entity_frame, start, stop)
    p0, p1 = _row_range(features.pair_frame, start, stop)
    return VideoTargets(
        entity_labels=targets.entity_labels[e0:e1],
        pair_attention=targets.pair_attention[p0:p1],
        pair_spatial=targets.pair_spatial[p0:p1],
        pair_contacting=targets.pair_contacting[p0:p1],
    )


def _row_range(frame: torch.Tensor, start: int, stop: int) -> tuple[int, int]:
    bounds = torch.searchsorted(frame.contiguous(), torch.tensor([start, stop], dtype=frame.dtype))
    return int(bounds[0]), int(bounds[1])


def gt_videos(gt: GroundTruth, rows: Sequence[int]) -> GroundTruth:
    """The ground truth of the videos at ``rows`` (in that order), CSR offsets and
    frame / box rows renumbered; ``gt`` itself when ``rows`` is all videos in order."""
    rows = [int(r) for r in rows]
    if rows == list(range(gt.num_videos)):
        return gt
    frames = np.concatenate(
        [np.arange(gt.video_start[r], gt.video_start[r + 1]) for r in rows]
        or [np.zeros(0, np.int64)]
    ).astype(np.int64)
    counts = np.diff(gt.box_start)[frames]
    boxes = np.concatenate(
        [np.arange(gt.box_start[f], gt.box_start[f + 1]) for f in frames] or [np.zeros(0, np.int64)]
    ).astype(np.int64)
    new_frame = np.full(gt.num_frames, -1, dtype=np.int64)
    new_frame[frames] = np.arange(frames.size)
    new_box = np.full(gt.boxes.shape[0], -1, dtype=np.int64)
    new_box[boxes] = np.arange(boxes.size)
    keep = new_frame[gt.triplet_frame] >= 0
    # triplets in the new frame order (the evaluator reads them per frame)
    order = np.argsort(new_frame[gt.triplet_frame[keep]], kind="stable")
    pick = np.flatnonzero(keep)[order]
    video_frames = [int(gt.video_start[r + 1] - gt.video_start[r]) for r in rows]
    return GroundTruth(
        videos=gt.videos[rows],
        video_start=np.concatenate([[0], np.cumsum(video_frames)]).astype(np.int64),
        frame_keys=gt.frame_keys[frames],
        frame_video=np.repeat(np.arange(len(rows), dtype=np.int64), video_frames),
        frame_size=gt.frame_size[frames],
        box_start=np.concatenate([[0], np.cumsum(counts)]).astype(np.int64),
        box_frame=new_frame[gt.box_frame[boxes]],
        boxes=gt.boxes[boxes],
        box_labels=gt.box_labels[boxes],
        triplet_frame=new_frame[gt.triplet_frame[pick]],
        triplet_subject=new_box[gt.triplet_subject[pick]],
        triplet_object=new_box[gt.triplet_object[pick]],
        triplet_predicate=gt.triplet_predicate[pick],
    )
