"""Paired bootstrap over test videos (tr2_core.evaluation.bootstrap)."""

from __future__ import annotations

import numpy as np
import pytest
from evaluation_fixtures import (
    CUP,
    CUP_BOX,
    PERSON_BOX,
    gt_frame,
    predictions,
    scores,
)

from tr2_core.evaluation.bootstrap import (
    bootstrap_difference,
    bootstrap_recall,
    seed_mean,
)
from tr2_core.evaluation.changes import CHANGED, relation_changes
from tr2_core.evaluation.recall import evaluate_detailed
from tr2_core.testing.eval_fixtures import (
    ground_truth_from_frames,
    random_predictions,
    random_split,
)


def _hand_made():
    """Two videos; With R@10 = mean(1/2, 1, 0) = 0.5 (a's f1 has no triplet).

    a f0: GT looking_at + holding; predicted looking_at, touching   -> 1/2
    a f1: GT looking_at; predicted looking_at                        -> 1
    b f0: GT holding; predicted touching                             -> 0
    b f1: the person alone (no triplet: does not count)
    """
    gt = ground_truth_from_frames([
        gt_frame("a.mp4/000001.png", [(CUP, CUP_BOX, ["looking_at", "holding"])]),
        gt_frame("a.mp4/000002.png", [(CUP, CUP_BOX, ["looking_at"])]),
        gt_frame("b.mp4/000001.png", [(CUP, CUP_BOX, ["holding"])]),
        gt_frame("b.mp4/000002.png", []),
    ])  # fmt: skip
    boxes = [(1, PERSON_BOX, 1.0), (CUP, CUP_BOX, 1.0)]
    right = scores({"looking_at": 0.9}, {"in_front_of": 0.9}, {"holding": 0.9})
    wrong_touch = scores({"looking_at": 0.9}, {"in_front_of": 0.9}, {"touching": 0.9})
    preds = predictions([
        {"key": "a.mp4/000001.png", "boxes": boxes, "pairs": [(0, 1, wrong_touch)]},
        {"key": "a.mp4/000002.png", "boxes": boxes, "pairs": [(0, 1, right)]},
        {"key": "b.mp4/000001.png", "boxes": boxes, "pairs": [(0, 1, wrong_touch)]},
        {"key": "b.mp4/000002.png", "boxes": boxes[:1], "pairs": []},
    ])  # fmt: skip
    return gt, evaluate_detailed(gt, preds, task="predcls", settings=["with"], ks=[10])


def test_point_estimate_is_the_evaluators_recall_by_hand() -> None:
    gt, result = _hand_made()
    recall = result.frame_recall("with")[:, 0]
    interval = bootstrap_recall(recall, gt.frame_video, resamples=200)
    assert result.metrics()["with"]["R@10"] == pytest.approx(0.5)
    assert interval.estimate == pytest.approx(0.5, abs=1e-12)
    assert interval.videos == 2
    # two videos (mean 3/4 over 2 frames, 0 over 1 frame): every resample is one of
    # (a, a) = 3/4, (a, b) = 1/2 or (b, b) = 0
    assert interval.low == pytest.approx(0.0) and interval.high == pytest.approx(0.75)


def test_point_estimates_equal_metrics_json_on_a_random_split() -> None:
    gt = random_split(num_videos=12, num_frames=60, seed=3)
    a = evaluate_detailed(gt, random_predictions(gt, seed=1), task="predcls")
    b = evaluate_detailed(gt, random_predictions(gt, seed=2), task="predcls")
    ma, mb = a.metrics(), b.metrics()
    changed = relation_changes(gt).triplet_state == CHANGED
    for setting in ("with", "no"):
        ra, rb = a.frame_recall(setting), b.frame_recall(setting)
        for col, k in enumerate(a.ks):
            key = f"R@{k}"
            one = bootstrap_recall(ra[:, col], gt.frame_video, resamples=50)
            assert one.estimate == pytest.approx(ma[setting][key], abs=1e-12)
            diff = bootstrap_difference(ra[:, col], rb[:, col], gt.frame_video, resamples=50)
            assert diff.estimate == pytest.approx(ma[setting][key] - mb[setting][key], abs=1e-12)
            assert diff.low <= diff.estimate <= diff.high
        # the "changed" time-variant group: recall over the changed triplets only
        sub = a.frame_recall(setting, triplets=changed)[:, 0]
        group = bootstrap_recall(sub, gt.frame_video, resamples=50)
        assert group.estimate == pytest.approx(
            ma["time_variant"]["changed"][setting]["R@10"], abs=1e-12
        )


def test_identical_models_differ_by_exactly_zero() -> None:
    gt = random_split(num_videos=10, num_frames=40, seed=0)
    result = evaluate_detailed(gt, random_predictions(gt), task="predcls", ks=[10])
    recall = result.frame_recall("with")[:, 0]
    two_seeds = np.stack([recall, recall])
    diff = bootstrap_difference(two_seeds, recall, gt.frame_video)
    assert (diff.estimate, diff.low, diff.high) == (0.0, 0.0, 0.0)


def _clustered(rng: np.random.Generator, videos: int) -> tuple[np.ndarray, np.ndarray]:
    """(F,) recall and (F,) video: 1-6 frames per video, all at the video's level
    u ~ U(0, 1) (frames of a video agree), so the true R@K is 0.5."""
    frames = rng.integers(1, 7, videos)
    level = rng.uniform(0, 1, videos)
    video = np.repeat(np.arange(videos), frames)
    return level[video], video


def test_interval_covers_the_truth_and_narrows_with_more_videos() -> None:
    rng = np.random.default_rng(0)
    covered = 0
    for i in range(100):
        recall, video = _clustered(rng, 60)
        interval = bootstrap_recall(recall, video, resamples=300, seed=i)
        covered += interval.low <= 0.5 <= interval.high
    assert covered >= 85  # nominal 95 %
    small = bootstrap_recall(*_clustered(rng, 25))
    large = bootstrap_recall(*_clustered(rng, 1000))
    assert large.low <= 0.5 <= large.high
    assert (large.high - large.low) < 0.4 * (small.high - small.low)


def test_frames_of_one_video_are_resampled_together() -> None:
    # Two videos of 10 frames each: all recall 1 in one, all 0 in the other.
    # By video, a quarter of the resamples draw the 0-video twice and a quarter the
    # 1-video twice: the 95 % interval is [0, 1]. Resampling the 20 frames would
    # give about [0.3, 0.7].
    recall = np.repeat([1.0, 0.0], 10)
    video = np.repeat([0, 1], 10)
    interval = bootstrap_recall(recall, video)
    assert interval.estimate == pytest.approx(0.5)
    assert (interval.low, interval.high) == (0.0, 1.0)
    # NaN frames (no GT triplet) neither count nor shift a video's weight
    with_empty = np.concatenate([recall, [np.nan] * 5])
    same = bootstrap_recall(with_empty, np.concatenate([video, [1] * 5]))
    assert (same.estimate, same.low, same.high) == (0.5, 0.0, 1.0)


def test_seeded_and_reproducible() -> None:
    recall, video = _clustered(np.random.default_rng(1), 40)
    first = bootstrap_recall(recall, video, seed=7)
    assert bootstrap_recall(recall, video, seed=7) == first
    assert bootstrap_recall(recall, video, seed=8) != first


def test_seeds_are_averaged_frame_by_frame_before_resampling() -> None:
    a = np.array([1.0, 0.0, np.nan, 0.5])
    b = np.array([0.0, 0.0, np.nan, 1.0])
    np.testing.assert_allclose(seed_mean(np.stack([a, b])), [0.5, 0.0, np.nan, 0.75])
    video = np.array([0, 0, 1, 1])
    both = bootstrap_recall(np.stack([a, b]), video)
    assert both.estimate == pytest.approx((0.5 + 0.0 + 0.75) / 3)


def test_bad_input_is_refused() -> None:
    video = np.array([0, 0, 1])
    with pytest.raises(ValueError, match="count different frames"):
        bootstrap_difference(np.array([1.0, np.nan, 0.0]), np.array([1.0, 1.0, 0.0]), video)
    with pytest.raises(ValueError, match="disagree"):
        seed_mean(np.array([[1.0, np.nan], [1.0, 0.0]]))
    with pytest.raises(ValueError, match="must all be"):
        bootstrap_recall(np.ones(2), video)
    with pytest.raises(ValueError, match="no frame counts"):
        bootstrap_recall(np.full(3, np.nan), video)
