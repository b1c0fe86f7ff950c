"""Family and time-variant breakdowns, the Fig. 5 gain curve, reports and files."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from evaluation_fixtures import (
    BOOK,
    BOOK_BOX,
    CUP,
    CUP_BOX,
    PERSON_BOX,
    gt_frame,
    predictions,
    scores,
)

from tr2_core.evaluation.breakdown import change_gain_curve
from tr2_core.evaluation.changes import CHANGED, FIRST_FRAME, UNCHANGED, relation_changes
from tr2_core.evaluation.recall import evaluate_detailed
from tr2_core.evaluation.report import (
    compare_per_frame,
    format_report,
    load_per_frame,
    save_per_frame,
    write_metrics_json,
)
from tr2_core.testing.eval_fixtures import random_predictions, random_split


def cup_video() -> list[dict]:
    """One video of four frames (the person and a cup, later a book).

    f0: cup looking_at, in_front_of, holding            (first frame)
    f1: cup looking_at, in_front_of, not_contacting     (contacting changed)
    f2: same as f1                                      (nothing changed)
    f3: cup gone; book looking_at                       (book appears, cup vanishes)
    """
    return [
        gt_frame("a.mp4/000001.png", [(CUP, CUP_BOX, ["looking_at", "in_front_of", "holding"])]),
        gt_frame(
            "a.mp4/000002.png", [(CUP, CUP_BOX, ["looking_at", "in_front_of", "not_contacting"])]
        ),
        gt_frame(
            "a.mp4/000003.png", [(CUP, CUP_BOX, ["looking_at", "in_front_of", "not_contacting"])]
        ),
        gt_frame("a.mp4/000004.png", [(BOOK, BOOK_BOX, ["looking_at"])]),
    ]


def test_relation_changes_by_hand() -> None:
    from tr2_core.testing.eval_fixtures import ground_truth_from_frames

    frames = cup_video() + [
        gt_frame("b.mp4/000001.png", [(CUP, CUP_BOX, ["looking_at"])]),
        gt_frame("b.mp4/000002.png", [(CUP, CUP_BOX, ["looking_at"])]),
    ]
    gt = ground_truth_from_frames(frames)
    ch = relation_changes(gt)
    # Triplet order: per frame, as listed.
    assert ch.triplet_state.tolist() == [
        FIRST_FRAME, FIRST_FRAME, FIRST_FRAME,
        UNCHANGED, UNCHANGED, CHANGED,
        UNCHANGED, UNCHANGED, UNCHANGED,
        CHANGED,
        FIRST_FRAME,
        UNCHANGED,
    ]  # fmt: skip
    assert ch.frame_first.tolist() == [True, False, False, False, True, False]
    assert ch.frame_changed.tolist() == [False, True, False, True, False, False]
    assert ch.video_change.tolist() == pytest.approx([2 / 3, 0.0])


def test_breakdowns_split_recall_by_family_and_change() -> None:
    from tr2_core.testing.eval_fixtures import ground_truth_from_frames

    gt = ground_truth_from_frames(cup_video())
    boxes = [(1, PERSON_BOX, 1.0), (CUP, CUP_BOX, 1.0)]
    # A model that repeats f0's relations: right on unchanged ones, wrong on changes.
    static = scores({"looking_at": 0.9}, {"in_front_of": 0.9}, {"holding": 0.9})
    preds = predictions(
        [
            {"key": f"a.mp4/00000{i}.png", "boxes": boxes, "pairs": [(0, 1, static)]}
            for i in (1, 2, 3)
        ]
        + [
            {
                "key": "a.mp4/000004.png",
                "boxes": [(1, PERSON_BOX, 1.0), (BOOK, BOOK_BOX, 1.0)],
                # (all-zero spatial / contacting rows would yield predicate 0 =
                # looking_at with score 0 in "with", which would match)
                "pairs": [
                    (0, 1, scores({"not_looking_at": 0.9}, {"above": 0.5}, {"touching": 0.5}))
                ],
            }
        ]
    )
    m = evaluate_detailed(gt, preds, task="predcls").metrics()
    tv = m["time_variant"]
    assert tv["changed"]["triplets"] == 2 and tv["unchanged"]["triplets"] == 5
    assert tv["first_frame_triplets"] == 3
    assert tv["changed_frames"] == 2 and tv["frames_after_first"] == 3
    # changed: f1 not_contacting (missed), f3 book looking_at (missed)
    assert tv["changed"]["with"]["R@20"] == 0.0
    # unchanged: f1 2 of 2, f2 2 of 3 (not_contacting missed)
    assert tv["unchanged"]["with"]["R@20"] == pytest.approx((1.0 + 2 / 3) / 2)
    fam = m["families"]
    assert [fam[f]["triplets"] for f in ("attention", "spatial", "contacting")] == [4, 3, 3]
    assert fam["spatial"]["with"]["R@20"] == 1.0
    assert fam["attention"]["with"]["R@20"] == pytest.approx(3 / 4)
    assert fam["contacting"]["with"]["R@20"] == pytest.approx(1 / 3)
    assert fam["contacting"]["with"]["mR@20"] == pytest.approx(0.5)  # holding 1/1, not_c. 0/2


def test_change_gain_curve() -> None:
    # 4 videos, 2 frames each; change degrees 0, 0.5, 0, 1.
    frame_video = np.repeat(np.arange(4), 2)
    video_change = np.array([0.0, 0.5, 0.0, 1.0])
    base = np.full(8, 0.5)
    model = np.array([0.5, 0.5, 0.7, 0.9, 0.5, np.nan, 1.0, 1.0])
    curve = change_gain_curve(base, model, frame_video, video_change, bins=4)
    # Sorted videos: 0, 2 (zero change, merged), 1, 3.
    assert curve["proportion"].tolist() == [0.5, 0.75, 1.0]
    assert curve["videos"].tolist() == [2, 1, 1]
    assert curve["frames"].tolist() == [3, 2, 2]  # the NaN frame does not count
    np.testing.assert_allclose(curve["gain"], [0.0, 0.3, 0.5])
    np.testing.assert_allclose(curve["gain_cumulative"], [0.0, 0.6 / 5, 1.6 / 7])
    np.testing.assert_allclose(curve["change_degree"], [0.0, 0.5, 1.0])
    unmerged = change_gain_curve(base, model, frame_video, video_change, bins=4,
                                 merge_zero_change=False)  # fmt: skip
    assert unmerged["videos"].tolist() == [1, 1, 1, 1]


def test_report_json_and_per_frame_files(tmp_path: Path) -> None:
    gt = random_split(num_videos=6, num_frames=40, seed=5)
    weak = evaluate_detailed(gt, random_predictions(gt, seed=1), task="predcls")
    metrics = weak.metrics()
    text = format_report(metrics)
    assert "With" in text and "Top-6" in text and "contacting / No" in text
    assert "changed / With" in text
    path = write_metrics_json(tmp_path / "m.json", metrics)
    loaded = json.loads(path.read_text())
    assert loaded["with"]["R@20"] == metrics["with"]["R@20"]
    assert 0.0 < loaded["with"]["R@20"] < 1.0

    a = save_per_frame(tmp_path / "a.npz", weak)
    perfect_preds = random_predictions(gt, seed=2)
    strong = evaluate_detailed(gt, perfect_preds, task="predcls")
    b = save_per_frame(tmp_path / "b.npz", strong)
    data = load_per_frame(a)
    assert data["recall"].shape == (4, gt.num_frames, 4)
    np.testing.assert_allclose(
        np.nanmean(data["recall"][0, :, 1]), metrics["with"]["R@20"], rtol=1e-12
    )
    curve = compare_per_frame(a, b, setting="with", k=20, bins=3)
    frames_total = int(np.isfinite(data["recall"][0, :, 1]).sum())
    assert curve["frames"].sum() == frames_total
    expected = np.nanmean(strong.frame_recall("with")[:, 1] - weak.frame_recall("with")[:, 1])
    assert curve["gain_cumulative"][-1] == pytest.approx(expected)
    with pytest.raises(ValueError, match="settings"):
        compare_per_frame(a, b, setting="semi", k=7)
