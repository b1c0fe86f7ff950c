"""Paired bootstrap over test videos: 95 % intervals for R@K and for the
difference of two models' R@K on the same frames.

R@K is the mean over the frames that count (those with at least one GT
triplet) of the frame's recall (:meth:`EvaluationResult.frame_recall`, NaN for
frames that do not count). Frames of one video are not independent (the same
scene, the same relations a frame later), so the unit resampled is the VIDEO:
a resample draws videos with replacement and takes all their frames together.
With per-video sums ``S_v`` (recall summed over the video's counted frames)
and counts ``N_v``, a resample with video multiplicities ``c_v`` has

    R@K* = sum_v c_v S_v / sum_v c_v N_v,

which for ``c_v = 1`` is exactly the evaluator's R@K. All resamples are one
(B, V) multinomial count matrix times the per-video sums: no Python loop.

A model may be several training seeds: their per-frame recalls are averaged
first (the seeds saw the same frames), then videos are resampled, so the
interval is over test videos for the seed-averaged model.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["Interval", "bootstrap_difference", "bootstrap_recall", "seed_mean"]


@dataclass(frozen=True)
class Interval:
    """A point estimate and its bootstrap percentile interval.

    Attributes:
        estimate: the statistic on the test set as it is (fraction, not %).
        low, high: the ``(1 - level) / 2`` and ``(1 + level) / 2`` percentiles
            of the statistic over the resamples.
        level: the interval's coverage, e.g. 0.95.
        resamples: B, the number of video resamples.
        videos: the number of videos resampled (those with a counted frame).
    """

    estimate: float
    low: float
    high: float
    level: float
    resamples: int
    videos: int

    def as_dict(self, scale: float = 1.0) -> dict[str, float | int]:
        """JSON-ready ``{'estimate', 'low', 'high', 'level', 'resamples', 'videos'}``;
        ``scale`` multiplies the three values (100: percent)."""
        return {
            "estimate": self.estimate * scale,
            "low": self.low * scale,
            "high": self.high * scale,
            "level": self.level,
            "resamples": self.resamples,
            "videos": self.videos,
        }


def seed_mean(frame_recall: np.ndarray) -> np.ndarray:
    """(F,) per-frame recall of a model given as (F,) or as (S, F), S seeds.

    The seeds' recalls are averaged frame by frame. NaN marks a frame that does
    not count; every seed must agree on which frames those are (same GT).

    Raises:
        ValueError: not 1- or 2-dimensional, or seeds disagreeing on NaN frames.
    """
    recall = np.asarray(frame_recall, dtype=np.float64)
    if recall.ndim == 1:
        return recall
    if recall.ndim != 2 or recall.shape[0] == 0:
        raise ValueError(f"per-frame recall must be (F,) or (S, F), got shape {recall.shape}")
    missing = np.isnan(recall)
    if not (missing == missing[0]).all():
        raise ValueError("the seeds' per-frame recalls disagree on which frames count")
    return recall.mean(axis=0)


def bootstrap_recall(
    frame_recall: np.ndarray,
    frame_video: np.ndarray,
    *,
    resamples: int = 1000,
    level: float = 0.95,
    seed: int = 0,
) -> Interval:
    """R@K of one model with its bootstrap interval over videos.

    Args:
        frame_recall: (F,) or (S, F) float per-frame recall at one K (S seeds,
            averaged by :func:`seed_mean`); NaN for frames that do not count.
        frame_video: (F,) int video row of each frame (``GroundTruth.frame_video``).
        resamples: B, the number of video resamples.
        level: the interval's coverage.
        seed: seed of the resampling (same seed, same interval).

    Raises:
        ValueError: mismatched shapes, no counted frame, or a bad B / level.
    """
    recall = seed_mean(frame_recall)
    # The difference with a model of recall 0 on the same frames is the recall itself.
    zero = np.where(np.isnan(recall), np.nan, 0.0)
    return bootstrap_difference(
        recall, zero, frame_video, resamples=resamples, level=level, seed=seed
    )


def bootstrap_difference(
    frame_recall_a: np.ndarray,
    frame_recall_b: np.ndarray,
    frame_video: np.ndarray,
    *,
    resamples: int = 1000,
    level: float = 0.95,
    seed: int = 0,
) -> Interval:
    """R@K of model A minus R@K of model B on the same frames, with a paired
    bootstrap interval over videos (both models see the same resampled videos).

    Args:
        frame_recall_a, frame_recall_b: (F,) or (S_a, F) / (S_b, F) float
            per-frame recall at one K (seeds averaged by :func:`seed_mean`); NaN
            for frames that do not count, on the same frames in both.
        frame_video: (F,) int video row of each frame.
        resamples, level, seed: as in :func:`bootstrap_recall`.

    Raises:
        ValueError: mismatched shapes, models counting different frames, no
            counted frame, or a bad B / level.
    """
    a, b = seed_mean(frame_recall_a), seed_mean(frame_recall_b)
    video = np.asarray(frame_video, dtype=np.int64)
    if not a.shape == b.shape == video.shape:
        raise ValueError(
            f"per-frame recalls {a.shape} / {b.shape} and frame_video {video.shape} "
            "must all be (F,)"
        )
    if not np.array_equal(np.isnan(a), np.isnan(b)):
        raise ValueError("the two models count different frames (not the same ground truth)")
    if resamples < 1 or not 0 < level < 1:
        raise ValueError(f"need resamples >= 1 and 0 < level < 1, got {resamples}, {level}")
    sums, counts = _video_sums(a - b, video)
    if counts.size == 0:
        raise ValueError("no frame counts (no frame has a GT triplet)")
    estimate = float(sums.sum() / counts.sum())
    rng = np.random.default_rng(seed)
    n = counts.size
    draws = rng.multinomial(n, np.full(n, 1.0 / n), size=resamples)  # (B, V) multiplicities
    stats = (draws @ sums) / (draws @ counts)  # every draw holds >= 1 video with N_v >= 1
    tail = 100 * (1 - level) / 2
    low, high = np.percentile(stats, [tail, 100 - tail])
    return Interval(estimate, float(low), float(high), level, resamples, n)


def _video_sums(frame_value: np.ndarray, frame_video: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(V',) sums of ``frame_value`` over each video's counted (non-NaN) frames and
    (V',) their counts, for the V' videos with at least one counted frame."""
    counted = ~np.isnan(frame_value)
    video = frame_video[counted]
    size = int(frame_video.max()) + 1 if frame_video.size else 0
    sums = np.bincount(video, weights=frame_value[counted], minlength=size)
    counts = np.bincount(video, minlength=size).astype(np.float64)
    keep = counts > 0
    return sums[keep], counts[keep]
