"""bench/detector_check.py: one SGDet extraction pass, scored as detector metrics and
as the SGDet frequency baseline (bench/sgdet_baseline.py's scores)."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from tr2_core.data.action_genome import load_split
from tr2_core.data.synthetic import make_synthetic, temporal_config
from tr2_core.evaluation.recall import evaluate
from tr2_core.frequency_baseline import fit_frequency
from tr2_core.models.extractor import create_extractor
from tr2_core.models.model_config import resolve_config
from tr2_core.vocab import PERSON

ROOT = Path(__file__).resolve().parents[1]
CFG = temporal_config(videos=6, seed=5, min_frames=3, max_frames=4, width=160, height=90)


@pytest.fixture(scope="module")
def bench():
    spec = importlib.util.spec_from_file_location(
        "detector_check", ROOT / "bench" / "detector_check.py"
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def split(tmp_path_factory):
    root = tmp_path_factory.mktemp("synthetic")
    make_synthetic(root, CFG, progress=False, workers=1)
    return load_split(root, "test", show_progress=False)


class GroundTruthDetector:
    """An extractor whose "detections" are the GT boxes (its PredCls path): a perfect
    detector, so every metric must be exactly 1."""

    def __init__(self, extractor, split):
        self.extractor, self.split = extractor, split

    def extract(self, images, frame_keys):
        gt = self.split.gt
        rows = [int(np.flatnonzero(gt.frame_keys == k)[0]) for k in frame_keys]
        spans = [(int(gt.box_start[f]), int(gt.box_start[f + 1])) for f in rows]
        boxes = [torch.from_numpy(gt.boxes[a:b].astype(np.float32)) for a, b in spans]
        labels = [torch.from_numpy(gt.box_labels[a:b].astype(np.int64)) for a, b in spans]
        return self.extractor.extract(images, boxes, labels, frame_keys=frame_keys)


def test_a_perfect_detector_scores_one_and_the_baseline_matches_predcls(bench, split):
    torch.manual_seed(0)
    extractor = create_extractor(resolve_config("tr2-small"), random_init=True)
    detected = bench.detect_split(split, GroundTruthDetector(extractor, split))
    assert sum(len(rows) for rows, _ in detected) == len(split.gt.frame_keys)
    metrics = bench.detection_metrics(split, detected)
    assert metrics["frames"] == len(split.gt.frame_keys)
    for key in ("person_detected", "person_found", "object_recall", "object_recall_class"):
        assert metrics[key] == 1.0, key
    shapes = metrics["person_by_shape"]
    assert sum(cell["frames"] for cell in shapes.values()) == metrics["frames"]
    for name, cell in shapes.items():
        assert cell["found"] == cell["median_iou"] == 1.0, name
        assert cell["width_ratio"] == pytest.approx(1.0), name
        assert cell["height_ratio"] == pytest.approx(1.0), name

    from sgdet_baseline import frequency_on_detections

    table = fit_frequency(load_split(split.root, "train", show_progress=False))
    preds = frequency_on_detections(bench.detections_as_predictions(split, detected), table)
    sgdet = evaluate(split.gt, preds, task="sgdet", breakdowns=False)
    predcls = evaluate(split.gt, preds, task="predcls", breakdowns=False)
    # GT boxes as detections: SGDet's box matching changes nothing
    assert sgdet["with"]["R@20"] == predcls["with"]["R@20"] > 0


def test_a_random_detector_is_scored_below_one(bench, split):
    torch.manual_seed(0)
    extractor = create_extractor(resolve_config("tr2-small"), random_init=True)
    detected = bench.detect_split(split, extractor, videos=1)
    metrics = bench.detection_metrics(split, detected)
    assert metrics["frames"] == len(detected[0][0]) > 0
    assert metrics["person_found"] < 1.0 and metrics["object_recall_class"] < 1.0


class NarrowPersonDetector(GroundTruthDetector):
    """The GT boxes, the person's cut to 40 % of its width about its centre (IoU 0.4):
    the miss the synthetic world's detector makes when it leaves out a reaching arm."""

    def extract(self, images, frame_keys):
        gt = self.split.gt
        rows = [int(np.flatnonzero(gt.frame_keys == k)[0]) for k in frame_keys]
        spans = [(int(gt.box_start[f]), int(gt.box_start[f + 1])) for f in rows]
        boxes, labels = [], []
        for a, b in spans:
            frame_boxes = torch.from_numpy(gt.boxes[a:b].astype(np.float32))
            frame_labels = torch.from_numpy(gt.box_labels[a:b].astype(np.int64))
            person = frame_labels == PERSON
            centre = (frame_boxes[person, 0] + frame_boxes[person, 2]) / 2
            half = 0.2 * (frame_boxes[person, 2] - frame_boxes[person, 0])
            frame_boxes[person, 0], frame_boxes[person, 2] = centre - half, centre + half
            boxes.append(frame_boxes)
            labels.append(frame_labels)
        return self.extractor.extract(images, boxes, labels, frame_keys=frame_keys)


def test_the_shape_breakdown_names_the_side_of_the_box_that_misses(bench, split):
    torch.manual_seed(0)
    extractor = create_extractor(resolve_config("tr2-small"), random_init=True)
    detected = bench.detect_split(split, NarrowPersonDetector(extractor, split))
    metrics = bench.detection_metrics(split, detected)
    assert metrics["person_found"] == 0.0 and metrics["object_recall_class"] == 1.0
    for name, cell in metrics["person_by_shape"].items():
        assert cell["found"] == 0.0, name
        assert cell["median_iou"] == pytest.approx(0.4, abs=1e-3)
        assert cell["width_ratio"] == pytest.approx(0.4, abs=1e-3)
        assert cell["height_ratio"] == pytest.approx(1.0)


def test_the_misses_are_the_frames_below_the_threshold_and_are_drawn(bench, split, tmp_path):
    torch.manual_seed(0)
    extractor = create_extractor(resolve_config("tr2-small"), random_init=True)
    perfect = bench.detect_split(split, GroundTruthDetector(extractor, split))
    assert bench.person_misses(split, perfect) == []
    narrow = bench.detect_split(split, NarrowPersonDetector(extractor, split))
    misses = bench.person_misses(split, narrow)
    with_person = int((split.gt.box_labels == PERSON).sum())
    assert len(misses) == with_person > 0  # one person per frame, every one cut to IoU 0.4
    key, gt_box, kept = misses[0]
    assert key == str(split.gt.frame_keys[0])
    assert kept[2] - kept[0] == pytest.approx(0.4 * (gt_box[2] - gt_box[0]), abs=1e-3)
    picture = bench.draw_person_misses(split, misses, tmp_path / "misses.png", count=4)
    with Image.open(picture) as im:
        assert im.width > im.height > 100  # four crops side by side


def test_the_gpu_budget_script_runs_end_to_end_on_the_cpu(tmp_path):
    """bench/detector_budget_gpu.sh --cpu-smoke: the demo's make-synthetic flags, a 2-step
    256-px fit and the check, one JSON line per budget (what a device run prints)."""
    import json
    import os
    import subprocess

    env = {**os.environ, "OUT": str(tmp_path), "PYTHON": sys.executable}
    out = subprocess.run(
        ["bash", str(ROOT / "bench" / "detector_budget_gpu.sh"), "--cpu-smoke"],
        env=env, check=True, capture_output=True, text=True, timeout=300,
    ).stdout  # fmt: skip
    report = json.loads(out.strip().splitlines()[-1])
    assert report["steps"] == 2 and report["frames"] > 0
    assert report["overrides"] == ["detector.min_size=256", "detector.max_size=456"]
    assert set(report["person_by_shape"]) <= {"thin", "reaching", "sitting", "lying"}
    saved = tmp_path / "detector_budget" / "steps_2.json"
    assert json.loads(saved.read_text()) == report
