"""The SGDet frequency baseline on a model's own detections.

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
import sys
from pathlib import Path

from _common import frequency_on_detections, person_found

from tr2_core.data.action_genome import load_split
from tr2_core.evaluation.predictions import load_predictions, save_predictions
from tr2_core.frequency_baseline import fit_frequency


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
