"""A small IoU + class tracker that gives entities stable ids across frames.

The temporal decoder groups relations by entity pair over time; with a
tracker the key is the pair of track ids instead of the authors' class-label
key, so two cups in one frame no longer share a sequence.
"""

from __future__ import annotations

import numpy as np


def box_iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """IoU matrix of boxes ``a`` (N, 4) and ``b`` (M, 4), ``x1 y1 x2 y2`` -> (N, M)."""
    a = np.asarray(a, dtype=np.float64).reshape(-1, 4)
    b = np.asarray(b, dtype=np.float64).reshape(-1, 4)
    lt = np.maximum(a[:, None, :2], b[None, :, :2])
    rb = np.minimum(a[:, None, 2:], b[None, :, 2:])
    inter = np.clip(rb - lt, 0, None).prod(-1)
    area_a = np.clip(a[:, 2:] - a[:, :2], 0, None).prod(-1)
    area_b = np.clip(b[:, 2:] - b[:, :2], 0, None).prod(-1)
    union = area_a[:, None] + area_b[None, :] - inter
    return np.where(union > 0, inter / np.where(union > 0, union, 1), 0.0)


class IoUTracker:
    """Associates each frame's entities with live tracks of the same class.

    Matching is mutual-best (a detection and a track that are each other's
    highest IoU above ``iou_threshold``), repeated on the leftovers, which is
    vectorised and for the handful of entities in a frame equals greedy
    matching by IoU. Unmatched detections start new tracks; a track unseen for
    more than ``max_age`` frames is forgotten.

    Args:
        iou_threshold: minimum IoU to continue a track.
        max_age: frames a track survives without a match.
    """

    def __init__(self, iou_threshold: float = 0.3, max_age: int = 5) -> None:
        self.iou_threshold = iou_threshold
        self.max_age = max_age
        self.reset()

    def reset(self) -> None:
        """Forget all tracks (ids keep increasing so they are never reused)."""
        self._boxes = np.zeros((0, 4), np.float64)
        self._labels = np.zeros((0,), np.int64)
        self._ids = np.zeros((0,), np.int64)
        self._age = np.zeros((0,), np.int64)
        if not hasattr(self, "_next_id"):
            self._next_id = 0

    def update(self, boxes: np.ndarray, labels: np.ndarray) -> np.ndarray:
        """Track one frame.

        Args:
            boxes: (N, 4) ``x1 y1 x2 y2``.
            labels: (N,) class indices.

        Returns:
            (N,) int64 track ids.
        """
        boxes = np.asarray(boxes, np.float64).reshape(-1, 4)
        labels = np.asarray(labels, np.int64).reshape(-1)
        n = len(boxes)
        ids = np.full(n, -1, np.int64)
        iou = box_iou(boxes, self._boxes)
        iou[labels[:, None] != self._labels[None, :]] = 0.0
        iou[iou < self.iou_threshold] = 0.0
        # Mutual-best rounds: each round removes the matched rows and columns.
        while iou.size and iou.max() > 0:
            best_track = iou.argmax(1)
            best_det = iou.argmax(0)
            dets = np.flatnonzero((best_det[best_track] == np.arange(n)) & (iou.max(1) > 0))
            tracks = best_track[dets]
            ids[dets] = self._ids[tracks]
            self._boxes[tracks] = boxes[dets]
            self._age[tracks] = -1  # incremented to 0 below
            iou[dets, :] = 0.0
            iou[:, tracks] = 0.0
        new = ids < 0
        ids[new] = self._next_id + np.arange(int(new.sum()))
        self._next_id += int(new.sum())
        self._age += 1
        keep = self._age <= self.max_age
        self._boxes = np.concatenate([self._boxes[keep], boxes[new]])
        self._labels = np.concatenate([self._labels[keep], labels[new]])
        self._ids = np.concatenate([self._ids[keep], ids[new]])
        self._age = np.concatenate([self._age[keep], np.zeros(int(new.sum()), np.int64)])
        return ids


def track_frames(
    tracker: IoUTracker,
    boxes: np.ndarray,
    labels: np.ndarray,
    entity_frame: np.ndarray,
    num_frames: int,
) -> np.ndarray:
    """Track a clip's entities frame by frame, as the streaming engine does one frame at
    a time (empty frames age the tracks too).

    Args:
        tracker: the tracker to update (start from a fresh or reset one).
        boxes: (N, 4) ``x1 y1 x2 y2``, entities sorted by frame.
        labels: (N,) the class indices the relation model uses.
        entity_frame: (N,) int64 frame index 0..num_frames-1, non-decreasing.
        num_frames: frames in the clip.

    Returns:
        (N,) int64 track ids.
    """
    boxes = np.asarray(boxes, np.float64).reshape(-1, 4)
    labels = np.asarray(labels, np.int64).reshape(-1)
    bounds = np.searchsorted(np.asarray(entity_frame, np.int64), np.arange(num_frames + 1))
    ids = np.full(len(labels), -1, np.int64)
    for t in range(num_frames):
        a, b = bounds[t], bounds[t + 1]
        ids[a:b] = tracker.update(boxes[a:b], labels[a:b])
    return ids
