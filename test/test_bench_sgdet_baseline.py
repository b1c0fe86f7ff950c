"""bench/sgdet_baseline.py: the SGDet frequency baseline on a model's own detections."""

from __future__ import annotations

import argparse
import importlib.util
from pathlib import Path

import numpy as np
import pytest

from tr2_core.frequency_baseline import FrequencyTable
from tr2_core.types import Predictions

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def bench():
    spec = importlib.util.spec_from_file_location(
        "sgdet_baseline", ROOT / "bench" / "sgdet_baseline.py"
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _preds() -> Predictions:
    """Two frames: frame 0 = person (box 0) + cup (box 1, label 11); frame 1 = a person
    box far from the GT person (box 2) + table (box 3, label 32)."""
    return Predictions(
        frame_keys=np.array(["v/1", "v/2"]),
        box_frame=np.array([0, 0, 1, 1]),
        boxes=np.array([[0, 0, 10, 10], [5, 5, 9, 9], [50, 50, 60, 60], [0, 0, 4, 4]], np.float32),
        box_labels=np.array([1, 11, 1, 32]),
        box_scores=np.array([0.9, 0.8, 0.7, 0.6], np.float32),
        pair_subject=np.array([0, 2]),
        pair_object=np.array([1, 3]),
        attention=np.zeros((2, 3), np.float32),
        spatial=np.zeros((2, 6), np.float32),
        contacting=np.zeros((2, 17), np.float32),
    )


def test_frequency_rows_follow_the_detected_object_label(bench):
    rows = np.arange(37, dtype=np.float64)[:, None]
    table = FrequencyTable(
        attention=np.repeat(rows, 3, 1), spatial=np.repeat(rows, 6, 1),
        contacting=np.repeat(rows, 17, 1), pairs=np.ones(37, np.int64),
    )  # fmt: skip
    out = bench.frequency_on_detections(_preds(), table)
    assert out.attention[:, 0].tolist() == [11.0, 32.0]
    assert out.spatial[:, 5].tolist() == [11.0, 32.0] and out.contacting.shape == (2, 17)
    assert np.array_equal(out.boxes, _preds().boxes)  # detections untouched
    assert np.array_equal(out.box_scores, _preds().box_scores)


def test_person_found_needs_iou_half_with_the_gt_person(bench):
    gt = argparse.Namespace(
        frame_keys=np.array(["v/1", "v/2"]),
        box_start=np.array([0, 1, 2]),
        boxes=np.array([[0, 0, 10, 12], [0, 0, 10, 10]], np.float32),
        box_labels=np.array([1, 1]),
    )
    assert bench.person_found(_preds(), gt) == pytest.approx(0.5)
