"""The SGDet frequency baseline on a model's own detections (issue 10).

``bench/detector_check.py --sgdet-baseline`` defines the baseline: the detector's
boxes, labels, scores and pairs, each pair's predicates the training frequencies of its
detected object class. This script builds exactly that from the ``predictions.npz`` of
``tr2 test --task sgdet`` with ``object_classifier.sgdet_labels: detector`` (its boxes,
labels and scores are the detector's): the same detections the model was scored on,
without running the detector again. It also prints ``person_found``: the share of the
split's frames whose kept person box has IoU >= 0.5 with the GT person.

Usage (then score both files with ``tr2 eval --task sgdet``, the same protocol)::

    .venv/bin/python bench/sgdet_baseline.py --data AG_ROOT \
        --predictions RUN/test/predictions.npz --out freq_sgdet.npz
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
from pathlib import Path

import numpy as np
import torch
from torchvision.ops import box_iou

from tr2_core.baseline import FrequencyTable, fit_frequency
from tr2_core.data.action_genome import load_split
from tr2_core.evaluation.predictions import load_predictions, save_predictions
from tr2_core.types import Predictions
from tr2_core.vocab import PERSON


def frequency_on_detections(preds: Predictions, table: FrequencyTable) -> Predictions:
    """``preds`` with every pair's predicate scores replaced by the frequencies of its
    object's label (``table``: :func:`~tr2_core.baseline.fit_frequency`)."""
    classes = preds.box_labels[preds.pair_object]
    return dataclasses.replace(
        preds,
        attention=table.attention[classes].astype(np.float32),
        spatial=table.spatial[classes].astype(np.float32),
        contacting=table.contacting[classes].astype(np.float32),
    )


def person_found(preds: Predictions, gt, iou_threshold: float = 0.5) -> float:
    """Share of ``gt``'s frames (a split's ``gt``) where a ``person`` box of ``preds``
    has IoU >= ``iou_threshold`` with the GT person box."""
    row_of = {str(k): i for i, k in enumerate(preds.frame_keys)}
    found = 0
    for f, key in enumerate(gt.frame_keys):
        b0, b1 = int(gt.box_start[f]), int(gt.box_start[f + 1])
        people = gt.boxes[b0:b1][gt.box_labels[b0:b1] == PERSON].astype(np.float32)
        mine = (preds.box_frame == row_of[str(key)]) & (preds.box_labels == PERSON)
        if len(people) and mine.any():
            iou = box_iou(torch.from_numpy(people), torch.from_numpy(preds.boxes[mine]))
            found += bool((iou >= iou_threshold).any())
    return found / max(len(gt.frame_keys), 1)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--data", required=True, help="AG root the model was tested on")
    p.add_argument("--predictions", required=True, help="tr2 test --task sgdet output")
    p.add_argument("--split", default="test", choices=["train", "test"])
    p.add_argument("--out", required=True, help="write the baseline's predictions here")
    args = p.parse_args(argv)
    preds = load_predictions(args.predictions)
    table = fit_frequency(load_split(Path(args.data), "train", show_progress=False))
    save_predictions(args.out, frequency_on_detections(preds, table))
    gt = load_split(Path(args.data), args.split, show_progress=False).gt
    frames = len(gt.frame_keys)
    print(
        f"wrote {args.out}; person_found {person_found(preds, gt):.4f} over {frames} frames, "
        f"{len(preds.box_frame) / max(frames, 1):.2f} boxes per frame"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
