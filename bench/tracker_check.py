"""Tracker check: how often does the engine's IoU tracker lose an entity between key frames?

An online model keys its pair sequences by track ids at test time and in the streaming
engine (docs/protocols.md), so a lost track starts that pair's history afresh. Action
Genome's key frames are about a second apart and people and objects move in between. This
script runs :class:`~tr2_core.stream.tracker.IoUTracker` over the GT boxes and labels of
every video of a split, exactly as ``tr2 test`` runs it for an online PredCls model, and
counts the **breaks**: an entity whose class appears exactly once in two consecutive key
frames (so the continuation is unambiguous) but gets a new track id in the second. It
prints the break rate overall and for the person alone, as JSON.

``--tracker norfair`` runs norfair's tracker (a maintained multi-object tracker with a
Kalman motion model and per-class matching) over the same boxes instead, for
comparison; it needs ``pip install norfair``, which tr2 does not depend on.

Usage::

    .venv/bin/python bench/tracker_check.py --data AG_ROOT [--split test] [--iou 0.3]
        [--tracker iou|norfair]

Measured on ``tr2 demo``'s dataset and what closing the gap did to the online model:
docs/experiments/online-vs-offline.md.
"""

from __future__ import annotations

import argparse
import json
import sys

import numpy as np

from tr2_core.data.action_genome import load_split
from tr2_core.stream.tracker import IoUTracker, track_frames
from tr2_core.types import GroundTruth
from tr2_core.vocab import PERSON


class NorfairTracker:
    """norfair's ``Tracker`` (Kalman-filtered, per-class matching on box IoU) behind
    :class:`IoUTracker`'s ``update(boxes, labels) -> ids``. A box norfair does not report
    (or reports while still initialising) gets a fresh id, so it counts as a break."""

    def __init__(self, iou_threshold: float = 0.3, max_age: int = 5) -> None:
        import norfair  # optional: only this comparison needs it

        self._norfair = norfair
        self._tracker = norfair.Tracker(
            distance_function="iou", distance_threshold=1.0 - iou_threshold,
            hit_counter_max=max_age, initialization_delay=0,
        )  # fmt: skip
        self._fresh = 1 << 40

    def update(self, boxes: np.ndarray, labels: np.ndarray) -> np.ndarray:
        boxes = np.asarray(boxes, np.float64).reshape(-1, 4)
        detections = [
            self._norfair.Detection(points=box.reshape(2, 2), label=int(label))
            for box, label in zip(boxes, np.asarray(labels).reshape(-1), strict=True)
        ]
        tracked = self._tracker.update(detections)
        index = {id(d): i for i, d in enumerate(detections)}
        ids = np.full(len(boxes), -1, np.int64)
        for obj in tracked:
            i = index.get(id(obj.last_detection))
            if i is not None and obj.id is not None:
                ids[i] = int(obj.id)
        for i in np.flatnonzero(ids < 0):
            ids[i], self._fresh = self._fresh, self._fresh + 1
        return ids


def track_breaks(
    gt: GroundTruth, iou_threshold: float = 0.3, tracker: str = "iou"
) -> dict[str, float | int]:
    """Unambiguous continuations (a class seen exactly once in key frames t-1 and t of a
    video) and how many of them the tracker gave a new id, overall and for the person.

    Returns:
        ``continuations``, ``breaks``, ``break_rate``, ``person_continuations``,
        ``person_breaks``, ``person_break_rate`` (rates 0 when there is nothing to count).
    """
    counts = np.zeros((2, 2), np.int64)  # [all, person] x [continuations, breaks]
    for v in range(len(gt.videos)):
        f0, f1 = int(gt.video_start[v]), int(gt.video_start[v + 1])
        rows = slice(int(gt.box_start[f0]), int(gt.box_start[f1]))
        labels, frame = gt.box_labels[rows], gt.box_frame[rows] - f0
        fresh = IoUTracker(iou_threshold) if tracker == "iou" else NorfairTracker(iou_threshold)
        ids = track_frames(fresh, gt.boxes[rows], labels, frame, f1 - f0)
        classes = int(labels.max()) + 1 if labels.size else 1
        # per frame: how many boxes of each class, and the track id of a class's box
        seen = np.zeros((f1 - f0, classes), np.int64)
        np.add.at(seen, (frame, labels), 1)
        track = np.full((f1 - f0, classes), -1, np.int64)
        track[frame, labels] = ids
        unique = (seen[1:] == 1) & (seen[:-1] == 1)
        broken = unique & (track[1:] != track[:-1])
        counts[0] += unique.sum(), broken.sum()
        if PERSON < classes:
            counts[1] += unique[:, PERSON].sum(), broken[:, PERSON].sum()

    def rate(row: np.ndarray) -> float:
        return round(float(row[1] / row[0]), 4) if row[0] else 0.0

    return {
        "continuations": int(counts[0, 0]),
        "breaks": int(counts[0, 1]),
        "break_rate": rate(counts[0]),
        "person_continuations": int(counts[1, 0]),
        "person_breaks": int(counts[1, 1]),
        "person_break_rate": rate(counts[1]),
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--data", required=True, help="Action Genome root (real or synthetic)")
    p.add_argument("--split", default="test", choices=["train", "test"])
    p.add_argument("--iou", type=float, default=0.3, help="the tracker's IoU threshold")
    p.add_argument("--tracker", default="iou", choices=["iou", "norfair"],
                   help="the engine's IoU tracker, or norfair's to compare")  # fmt: skip
    args = p.parse_args(argv)
    gt = load_split(args.data, args.split, show_progress=False).gt
    result = {"data": args.data, "split": args.split, "videos": len(gt.videos),
              "tracker": args.tracker, "iou_threshold": args.iou,
              **track_breaks(gt, args.iou, args.tracker)}  # fmt: skip
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
