"""Detector check: does the synthetic-world detector find the person?

Trains the small detector the way ``tr2 pretrain-synthetic`` does
(:func:`tr2_core.pretrain.detector_fit.train_detector` on the training videos minus the
validation videos) or loads a saved ``FasterRCNN.state_dict()`` (``--weights``), then
runs the SGDet path the engine and ``tr2 test`` use -- ``FeatureExtractor.extract``
without boxes: per-class score threshold, NMS, a single best person per frame -- on
every frame of a split and prints:

* ``person_detected``: share of frames with a kept person detection (any box);
* ``person_found``: share of frames whose kept person box has IoU >= 0.5 with the GT
  person -- what "the detector finds the person" means for SGDet (a pair's subject
  must match the GT person at IoU >= 0.5 for its triplets to count);
* ``object_recall`` / ``object_recall_class``: share of GT object boxes (person
  excluded) with a kept detection at IoU >= 0.5, any label / the GT label;
* ``person_by_shape``: person found per shape of the GT person box (width / height:
  ``thin`` < 0.2, a standing figure; ``reaching`` 0.2-0.7, an arm out or a step;
  ``sitting`` 0.7-1.5; ``lying`` >= 1.5), each with its frame count, median IoU of the
  kept person box and median width and height of that box over the GT's: where the
  misses are and which side of the box causes them;
* ``detections_per_frame`` and the seconds spent training and checking;
* with ``--misses PNG``, a picture of frames where the person is missed.

Usage::

    .venv/bin/python bench/detector_check.py --data /tmp/sg/data --steps 60
    .venv/bin/python bench/detector_check.py --data DATA --world-videos 1000 --steps 100
    .venv/bin/python bench/detector_check.py --data /tmp/sg/data --weights detector.pt
    .venv/bin/python bench/detector_check.py --data DATA --weights detector.pt \
        --override detector.score_thresh=0.02 --sgdet-baseline freq_sgdet.npz

``--world-videos N`` fits on N videos of the dataset's pretraining world rendered in
memory, as ``tr2 demo`` / ``tr2 pretrain-synthetic`` do (``--max-frames`` then defaults
to :class:`~tr2_core.pretrain.PretrainBudget`'s); without it, on the dataset's training
videos.

Measurements made with it, and the commands: docs/experiments/detector.md.

``--set KEY=VALUE`` passes extra keyword arguments to ``train_detector`` (ints,
floats or names), e.g. ``--set lr=3e-3 --set boxes_per_frame=32``.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch


def detect_split(split, extractor, videos: int = 0) -> list[tuple[range, Any]]:
    """``extractor``'s SGDet path over every video of ``split`` (an
    :class:`~tr2_core.data.action_genome.ActionGenomeSplit`; ``videos``: only the first
    that many, 0: all): per video its GT frame rows and its
    :class:`~tr2_core.types.VideoFeatures` (on the CPU). Run once, scored twice (the
    detector's metrics and the SGDet frequency baseline)."""
    from tr2_core.data.images import load_image
    from tr2_core.train.source import move_features

    gt = split.gt
    count = min(videos, len(gt.videos)) if videos > 0 else len(gt.videos)
    out = []
    for v in range(count):
        rows = range(int(gt.video_start[v]), int(gt.video_start[v + 1]))
        keys = [str(gt.frame_keys[f]) for f in rows]
        images = [load_image(split.frame_image_path(k)) for k in keys]
        out.append((rows, move_features(extractor.extract(images, frame_keys=keys), "cpu")))
    return out


def detection_metrics(split, detected, iou_threshold: float = 0.5) -> dict[str, float]:
    """Score ``detected`` (:func:`detect_split`'s output on ``split``) against the GT
    boxes (see the module docstring for the metrics)."""
    from torchvision.ops import box_iou

    from tr2_core.vocab import PERSON

    gt = split.gt
    frames = found = objects = hit_any = hit_class = entities = 0
    detected_person = 0
    person_rows = []  # per frame with a GT person: (aspect, IoU, width ratio, height ratio)
    for rows, feats in detected:
        for t, f in enumerate(rows):
            b0, b1 = int(gt.box_start[f]), int(gt.box_start[f + 1])
            gt_boxes = torch.from_numpy(gt.boxes[b0:b1].astype(np.float32))
            gt_labels = torch.from_numpy(gt.box_labels[b0:b1].astype(np.int64))
            mine = feats.entity_frame == t
            boxes, labels = feats.entity_boxes[mine], feats.entity_labels[mine]
            frames += 1
            entities += int(mine.sum())
            iou = box_iou(gt_boxes, boxes) if boxes.shape[0] else torch.zeros(len(gt_boxes), 0)
            is_person = gt_labels == PERSON
            person_det = labels == PERSON
            detected_person += bool(person_det.any())
            if is_person.any() and person_det.any():
                found += bool((iou[is_person][:, person_det] >= iou_threshold).any())
            if is_person.any():
                person_rows.append(_person_row(gt_boxes[is_person][0], boxes[person_det]))
            over = iou[~is_person] >= iou_threshold
            same = gt_labels[~is_person, None] == labels[None, :]
            objects += int((~is_person).sum())
            hit_any += int(over.any(1).sum())
            hit_class += int((over & same).any(1).sum())
    return {
        "frames": frames,
        "person_detected": detected_person / max(frames, 1),
        "person_found": found / max(frames, 1),
        "object_recall": hit_any / max(objects, 1),
        "object_recall_class": hit_class / max(objects, 1),
        "detections_per_frame": entities / max(frames, 1),
        "person_by_shape": _person_by_shape(np.array(person_rows).reshape(-1, 4), iou_threshold),
    }


PERSON_SHAPES = {"thin": (0.0, 0.2), "reaching": (0.2, 0.7), "sitting": (0.7, 1.5),
                 "lying": (1.5, np.inf)}  # fmt: skip
"""GT person box width / height ranges of :func:`detection_metrics`' breakdown."""


def _person_row(gt_box: torch.Tensor, kept: torch.Tensor) -> tuple[float, float, float, float]:
    """(GT aspect, IoU, width ratio, height ratio) of the kept person box (``kept``
    (k, 4), k <= 1: the SGDet path keeps one best person per frame) against the GT
    person box (4,); IoU 0 and NaN ratios when none was kept."""
    from torchvision.ops import box_iou

    gw, gh = float(gt_box[2] - gt_box[0]), float(gt_box[3] - gt_box[1])
    if kept.shape[0] == 0:
        return gw / gh, 0.0, float("nan"), float("nan")
    best = kept[0]
    iou = float(box_iou(gt_box[None], best[None])[0, 0])
    return gw / gh, iou, float(best[2] - best[0]) / gw, float(best[3] - best[1]) / gh


def _person_by_shape(rows: np.ndarray, iou_threshold: float) -> dict[str, dict[str, float]]:
    """:func:`detection_metrics`' ``person_by_shape`` from (n, 4) :func:`_person_row`s."""
    out = {}
    for name, (low, high) in PERSON_SHAPES.items():
        part = rows[(rows[:, 0] >= low) & (rows[:, 0] < high)]
        if not len(part):
            continue
        ratios = part[~np.isnan(part[:, 2])]
        out[name] = {
            "frames": len(part),
            "found": float((part[:, 1] >= iou_threshold).mean()),
            "median_iou": float(np.median(part[:, 1])),
            "width_ratio": float(np.median(ratios[:, 2])) if len(ratios) else float("nan"),
            "height_ratio": float(np.median(ratios[:, 3])) if len(ratios) else float("nan"),
        }
    return out


def person_misses(split, detected, iou_threshold: float = 0.5) -> list[tuple[str, Any, Any]]:
    """Frames of ``detected`` (:func:`detect_split`'s output) whose kept person box misses
    the GT person (IoU below ``iou_threshold``, or none kept): (frame key, GT box (4,),
    kept box (4,) or None), in split order."""
    from tr2_core.vocab import PERSON

    gt = split.gt
    misses = []
    for rows, feats in detected:
        for t, f in enumerate(rows):
            b0, b1 = int(gt.box_start[f]), int(gt.box_start[f + 1])
            people = np.flatnonzero(gt.box_labels[b0:b1] == PERSON)
            if not len(people):
                continue
            gt_box = torch.from_numpy(gt.boxes[b0 + people[0]].astype(np.float32))
            kept = feats.entity_boxes[(feats.entity_frame == t) & (feats.entity_labels == PERSON)]
            _, iou, _, _ = _person_row(gt_box, kept)
            if iou < iou_threshold:
                best = kept[0].numpy() if kept.shape[0] else None
                misses.append((str(gt.frame_keys[f]), gt_box.numpy(), best))
    return misses


def draw_person_misses(split, misses, path: str | Path, count: int = 12, margin: int = 40) -> Path:
    """A picture of ``count`` of ``misses`` (:func:`person_misses`), evenly spread: each
    frame cropped around the GT person (``margin`` pixels either side), the GT box green,
    the kept person box red and dashed, IoU and shape in the title."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.patches import Rectangle

    from tr2_core.data.images import load_image

    chosen = misses[:: max(1, len(misses) // count)][:count]
    cols = min(6, max(1, len(chosen)))
    rows = max(1, -(-len(chosen) // cols))
    fig, axes = plt.subplots(rows, cols, figsize=(2.2 * cols, 3.2 * rows), squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    for ax, (key, gt_box, kept) in zip(axes.flat, chosen, strict=False):
        image = load_image(split.frame_image_path(key)).permute(1, 2, 0).numpy()
        x0 = max(0, int(gt_box[0]) - margin)
        x1 = min(image.shape[1], int(gt_box[2]) + margin)
        ax.imshow(image[:, x0:x1])
        for box, colour, style in ((gt_box, "lime", "-"), (kept, "red", "--")):
            if box is None:
                continue
            corner, width, height = (box[0] - x0, box[1]), box[2] - box[0], box[3] - box[1]
            ax.add_patch(Rectangle(corner, width, height, fill=False, edgecolor=colour,
                                   linestyle=style, linewidth=1.5))  # fmt: skip
        aspect = float((gt_box[2] - gt_box[0]) / (gt_box[3] - gt_box[1]))
        shape = next(n for n, (lo, hi) in PERSON_SHAPES.items() if lo <= aspect < hi)
        kept_boxes = torch.zeros(0, 4) if kept is None else torch.from_numpy(kept)[None]
        iou = _person_row(torch.from_numpy(gt_box), kept_boxes)[1]
        ax.set_title(f"{shape}, IoU {iou:.2f}", fontsize=9)
    fig.suptitle(f"person missed in {len(misses)} frames: GT box green, kept box red", fontsize=10)
    fig.tight_layout()
    path = Path(path)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def detections_as_predictions(split, detected) -> Any:
    """``detected`` (:func:`detect_split`'s output on the whole ``split``) as
    :class:`~tr2_core.types.Predictions`: the detections and pairs (best person x every
    other kept detection of the frame, what the model sees), predicate scores zero (the
    SGDet frequency baseline fills them: ``bench/sgdet_baseline.py``)."""
    from tr2_core.train.predict import concat_predictions
    from tr2_core.types import Predictions

    gt = split.gt
    parts = []
    for rows, feats in detected:
        pairs = feats.pair_subject.shape[0]
        parts.append(
            Predictions(
                frame_keys=np.asarray(gt.frame_keys[rows.start : rows.stop], dtype=str),
                box_frame=feats.entity_frame.numpy().astype(np.int64),
                boxes=feats.entity_boxes.numpy().astype(np.float32),
                box_labels=feats.entity_labels.numpy().astype(np.int64),
                box_scores=feats.entity_scores.numpy().astype(np.float32),
                pair_subject=feats.pair_subject.numpy().astype(np.int64),
                pair_object=feats.pair_object.numpy().astype(np.int64),
                attention=np.zeros((pairs, 3), np.float32),
                spatial=np.zeros((pairs, 6), np.float32),
                contacting=np.zeros((pairs, 17), np.float32),
            )
        )
    return concat_predictions(parts)


def _rounded(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _rounded(v) for k, v in value.items()}
    return round(value, 4) if isinstance(value, float) else value


def _parse_value(text: str) -> Any:
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            pass
    return text


def main(argv: list[str] | None = None) -> int:
    from tr2_core.data.action_genome import load_split
    from tr2_core.models.entities import build_detector, load_detector_weights
    from tr2_core.models.extractor import create_extractor
    from tr2_core.models.model_config import resolve_config

    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--data", required=True, help="synthetic AG root (tr2 make-synthetic)")
    p.add_argument("--model", default="tr2-small")
    p.add_argument("--weights", help="a saved detector state dict (skips training)")
    p.add_argument("--steps", type=int, default=60, help="detector training steps")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument(
        "--world-videos",
        type=int,
        default=0,
        help="fit on N videos of the dataset's pretraining world rendered in memory, as "
        "`tr2 demo` / `tr2 pretrain-synthetic` do (0: the dataset's training videos)",
    )
    p.add_argument("--max-frames", type=int, default=-1,
                   help="train_detector's max_frames (default: PretrainBudget's with "
                        "--world-videos, else 0 = all)")  # fmt: skip
    p.add_argument("--split", default="test", choices=["train", "test"])
    p.add_argument("--videos", type=int, default=0, help="check only the first N videos")
    p.add_argument("--threads", type=int, default=1, help="torch threads")
    p.add_argument("--device", default="cpu", help="where to fit and check: cpu or cuda")
    p.add_argument("--save", help="write the trained state dict here")
    p.add_argument("--misses", metavar="PNG", help="draw frames where the person is missed")
    p.add_argument(
        "--sgdet-baseline",
        metavar="PRED.npz",
        help="also score the frequency baseline on these detections (SGDet)",
    )
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="extra train_detector keyword argument")  # fmt: skip
    p.add_argument("--override", action="append", default=[], metavar="KEY=VALUE",
                   help="model config override for the check, e.g. "
                        "detector.score_thresh=0.01 (as `tr2 test --override`)")  # fmt: skip
    args = p.parse_args(argv)
    if args.sgdet_baseline and args.videos:
        p.error("--sgdet-baseline scores the whole split: drop --videos")
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    torch.set_num_threads(args.threads)
    cfg = resolve_config(args.model, args.override)
    report: dict[str, Any] = {"model": cfg.name, "overrides": args.override}
    extractor = create_extractor(cfg, random_init=True).to(args.device)
    if args.weights:
        load_detector_weights(extractor.detector, args.weights)
    else:
        from tr2_core.pretrain import PretrainBudget
        from tr2_core.pretrain.detector_fit import train_detector
        from tr2_core.pretrain.training_frames import load_pretrain_frames
        from tr2_core.pretrain.world import render_world, world_config

        extra = dict(item.split("=", 1) for item in args.set)
        extra = {k: _parse_value(v) for k, v in extra.items()}
        torch.manual_seed(args.seed)
        if args.world_videos > 0:
            frames = render_world(world_config(args.data, args.world_videos, args.seed))
        else:
            frames = load_pretrain_frames(args.data)
        max_frames = args.max_frames
        if max_frames < 0:
            max_frames = PretrainBudget.max_frames if args.world_videos > 0 else 0
        detector = build_detector(cfg.detector).to(args.device)
        t0 = time.perf_counter()
        losses = train_detector(detector, frames, steps=args.steps, seed=args.seed,
                                max_frames=max_frames, **extra)  # fmt: skip
        report.update(
            train_seconds=round(time.perf_counter() - t0, 1),
            steps=args.steps,
            train_frames=len(frames.images),
            world_videos=args.world_videos,
            max_frames=max_frames,
            options=extra,
            loss=[round(losses[0], 4), round(losses[-1], 4)] if losses else [],
        )
        state = {k: v.cpu() for k, v in detector.state_dict().items()}
        if args.save:
            torch.save(state, args.save)
        extractor.detector.load_state_dict(state)
    split = load_split(Path(args.data), args.split, show_progress=False)
    t0 = time.perf_counter()
    detected = detect_split(split, extractor, videos=args.videos)
    metrics = detection_metrics(split, detected)
    report.update({k: _rounded(v) for k, v in metrics.items()})
    report["check_seconds"] = round(time.perf_counter() - t0, 1)
    if args.misses:
        misses = person_misses(split, detected)
        if misses:
            report["misses_picture"] = str(draw_person_misses(split, misses, args.misses))
    if args.sgdet_baseline:
        from _common import frequency_on_detections

        from tr2_core.evaluation.predictions import save_predictions
        from tr2_core.evaluation.recall import evaluate
        from tr2_core.frequency_baseline import fit_frequency

        table = fit_frequency(load_split(Path(args.data), "train", show_progress=False))
        preds = frequency_on_detections(detections_as_predictions(split, detected), table)
        save_predictions(args.sgdet_baseline, preds)
        result = evaluate(split.gt, preds, task="sgdet", breakdowns=False)
        report["sgdet_baseline"] = result
    print(json.dumps(report))
    return 0


if __name__ == "__main__":
    sys.exit(main())
