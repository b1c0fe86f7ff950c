"""Breakdowns of the evaluation: per predicate family, per predicate,
time-variant relations, named frame groups (the synthetic world's temporal
effects), and the TR² paper's Fig. 5 analysis (gain vs. proportion of videos
sorted by how often their relations change).

The definitions of "changed", "unchanged" and a video's change degree are in
:mod:`tr2_core.evaluation.changes`.

Recall of a group (a family, changed, unchanged) follows the main metric:
R@K is the mean over frames that hold at least one triplet of the group of
(matched triplets of the group / triplets of the group), ranks taken from the
full ranking of the frame; mR@K averages over the group's predicates.

Temporal effects (:func:`temporal_effects_breakdown`): the synthetic world
records which frames it drew occluded, motion-blurred or in a halfway pose
(``tr2_core.data.synthetic.temporal_effect_frames`` reads them; this module
takes them as plain frame keys). A group holds the GT triplets of its frames;
the groups may overlap (a blurred frame inside an occlusion episode counts in
both). ``clean`` is every frame in none of them, first frames of videos
included: unlike "changed", an effect needs no previous frame to be defined
(the generator may draw one on a first frame too), so a first frame without
one is an ordinary clean frame. Occlusion, blur and halfway poses are drawn
in the frames only; the GT relations of those frames stay those in force (or,
for a "heading" halfway pose, those the motion leads to).
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from typing import Any

import numpy as np

from tr2_core.evaluation.changes import RelationChanges
from tr2_core.evaluation.metrics import recall_tables, summarise
from tr2_core.evaluation.result import EvaluationResult
from tr2_core.vocab import PREDICATES

__all__ = [
    "breakdown_metrics",
    "family_breakdown",
    "time_variant_breakdown",
    "frame_group_breakdown",
    "temporal_effects_breakdown",
    "CLEAN",
    "predicate_breakdown",
    "change_gain_curve",
]


def breakdown_metrics(result: EvaluationResult, changes: RelationChanges | None = None) -> dict:
    """Main metrics plus both breakdowns.

    Returns:
        ``{setting: {'R@K': .., 'mR@K': ..}, ..., 'families': ..., 'time_variant': ...}``
        (see :func:`family_breakdown` and :func:`time_variant_breakdown`).
    """
    metrics = result.metrics(changes=changes)
    return {key: metrics[key] for key in (*result.settings, "families", "time_variant")}


def family_breakdown(result: EvaluationResult) -> dict:
    """``{family: {'triplets': n, setting: {'R@K': .., 'mR@K': ..}}}`` for
    attention, spatial and contacting (R@K over frames holding a triplet of
    the family; mR@K over the family's predicates)."""
    return breakdown_metrics(result)["families"]


def time_variant_breakdown(
    result: EvaluationResult, changes: RelationChanges | None = None
) -> dict:
    """Recall on GT triplets whose relation set changed since the previous frame
    vs. those whose set did not (module docstring).

    Returns:
        ``{'changed': {'triplets': n, 'frames': n, setting: {'R@K': .., ...}},
        'unchanged': {...}, 'first_frame_triplets': n, 'changed_frames': n,
        'frames_after_first': n}``; ``frames`` counts the frames holding a
        triplet of the group.
    """
    return breakdown_metrics(result, changes)["time_variant"]


CLEAN = "clean"
"""Name of the frames in no temporal-effect group."""


def frame_group_breakdown(result: EvaluationResult, frame_groups: Mapping[str, np.ndarray]) -> dict:
    """Recall on the GT triplets of named frame selections (they may overlap).

    Args:
        result: the evaluation.
        frame_groups: name -> (F,) bool mask over the frames of ``result.gt``.

    Returns:
        ``{name: {'triplets': n, 'frames': n, setting: {'R@K': .., 'mR@K': ..}}}``
        (the structure of a :func:`time_variant_breakdown` group); ``frames``
        counts the group's frames holding a GT triplet; values ``None`` for a
        group without triplets.

    Raises:
        ValueError: a mask is not (F,).
    """
    gt = result.gt
    out: dict = {}
    for name, mask in frame_groups.items():
        mask = np.asarray(mask, dtype=bool)
        if mask.shape != (gt.num_frames,):
            raise ValueError(
                f"frame group {name!r}: mask {mask.shape}, expected ({gt.num_frames},)"
            )
        in_group = mask[gt.triplet_frame].astype(np.int64)  # (T,) 1: the triplet's frame is in it
        entry: dict = {
            "triplets": int(in_group.sum()),
            "frames": int((mask & result.frame_has_triplets).sum()),
        }
        for setting in result.settings:
            tables = recall_tables(
                result.ranks[setting], gt.triplet_frame, gt.triplet_predicate, gt.num_frames,
                result.ks, group=in_group, num_groups=2,
            )  # fmt: skip
            entry[setting] = summarise(tables, {name: [1]})[name]
        out[name] = entry
    return out


def temporal_effects_breakdown(
    result: EvaluationResult, effect_frames: Mapping[str, Collection[str]]
) -> dict:
    """Recall on the frames of each temporal effect and on the clean frames
    (module docstring).

    Args:
        result: the evaluation.
        effect_frames: effect name (e.g. ``'occluded'``, ``'blurred'``,
            ``'halfway'``) -> frame keys as in ``result.gt.frame_keys``; keys of
            frames outside the evaluated ground truth (other split, dropped
            videos) are ignored.

    Returns:
        :func:`frame_group_breakdown` of the effects, in the given order, then
        :data:`CLEAN` (frames in none of them).

    Raises:
        ValueError: an effect is named :data:`CLEAN`.
    """
    if CLEAN in effect_frames:
        raise ValueError(f"{CLEAN!r} is the name of the frames without an effect")
    gt = result.gt
    row_of = {str(key): row for row, key in enumerate(gt.frame_keys)}
    masks: dict[str, np.ndarray] = {}
    for name, keys in effect_frames.items():
        mask = np.zeros(gt.num_frames, dtype=bool)
        mask[[row_of[k] for k in keys if k in row_of]] = True
        masks[name] = mask
    touched = np.logical_or.reduce(list(masks.values())) if masks else np.zeros(gt.num_frames, bool)
    masks[CLEAN] = ~touched
    return frame_group_breakdown(result, masks)


def predicate_breakdown(result: EvaluationResult) -> dict[str, Any]:
    """Recall of each predicate: the terms whose mean over the predicates present
    in the ground truth is mR@K.

    Uses the evaluator's per-triplet ranks and
    :func:`~tr2_core.evaluation.metrics.recall_tables`; no matching is redone.

    Returns:
        ``{predicate: {'triplets': n, setting: {'R@K': matched / n or None}}}``
        for the 26 predicates in AG order (``None`` where ``n == 0``).
    """
    gt = result.gt
    out: dict[str, Any] = {name: {"triplets": 0} for name in PREDICATES}
    for setting in result.settings:
        tables = recall_tables(
            result.ranks[setting], gt.triplet_frame, gt.triplet_predicate, gt.num_frames,
            result.ks,
        )  # fmt: skip
        counts = tables.pred_hist.sum(axis=1)  # (26, L)
        total = counts.sum(axis=1)
        cols = [tables.ks_sorted.index(k) for k in tables.ks]
        hits = np.cumsum(counts, axis=1)[:, cols]  # (26, K)
        for p, name in enumerate(PREDICATES):
            n = int(total[p])
            out[name]["triplets"] = n
            out[name][setting] = {
                f"R@{k}": (float(hits[p, c] / n) if n else None) for c, k in enumerate(result.ks)
            }
    return out


def change_gain_curve(
    recall_base: np.ndarray,
    recall_model: np.ndarray,
    frame_video: np.ndarray,
    video_change: np.ndarray,
    *,
    bins: int = 10,
    merge_zero_change: bool = True,
) -> dict[str, np.ndarray]:
    """Data of the paper's Fig. 5: R@K gain of a model over a baseline as a
    function of the proportion of videos sorted by change degree.

    Videos are sorted by change degree (ascending, ties by video order) and cut
    into ``bins`` groups of equal video count; a group's gain is the mean over
    its evaluated frames of ``recall_model - recall_base`` (frame-weighted, as
    R@K). With ``merge_zero_change`` the leading groups whose videos all have
    change degree 0 are merged into one point (the paper merges its first 30 %
    for that reason).

    Args:
        recall_base, recall_model: (F,) per-frame R@K of the two runs on the
            same GT (NaN where a frame has no GT triplet); e.g. a column of
            :meth:`EvaluationResult.frame_recall`.
        frame_video: (F,) video row of each frame.
        video_change: (V,) change degree of each video
            (:attr:`RelationChanges.video_change`).
        bins: number of equal-count groups before merging.
        merge_zero_change: merge the leading all-zero-change groups.

    Returns:
        Arrays over the points, in order: ``proportion`` (upper edge, fraction
        of videos up to this point), ``gain`` (group gain), ``gain_cumulative``
        (gain over all videos up to the point), ``change_degree`` (mean change
        degree of the group's videos), ``videos`` and ``frames`` (counts).
    """
    recall_base = np.asarray(recall_base, dtype=np.float64)
    recall_model = np.asarray(recall_model, dtype=np.float64)
    frame_video = np.asarray(frame_video, dtype=np.int64)
    video_change = np.asarray(video_change, dtype=np.float64)
    if recall_base.shape != recall_model.shape or recall_base.shape != frame_video.shape:
        raise ValueError("recall_base, recall_model and frame_video must all have shape (F,)")
    num_videos = video_change.shape[0]
    if bins < 1 or num_videos == 0:
        raise ValueError("need bins >= 1 and at least one video")
    bins = min(bins, num_videos)  # every group non-empty
    order = np.argsort(video_change, kind="stable")
    video_rank = np.empty(num_videos, dtype=np.int64)
    video_rank[order] = np.arange(num_videos)
    group = video_rank * bins // num_videos  # 0..bins-1
    group_max = np.full(bins, -np.inf)
    np.maximum.at(group_max, group, video_change)
    if merge_zero_change:
        zero_groups = int(np.sum(np.cumprod(group_max <= 0)))  # leading all-zero groups
        if zero_groups > 1:
            group = np.maximum(group - (zero_groups - 1), 0)
    num_points = int(group.max()) + 1
    valid = np.isfinite(recall_base) & np.isfinite(recall_model)
    frame_group = group[frame_video][valid]
    gain = (recall_model - recall_base)[valid]
    frames = np.bincount(frame_group, minlength=num_points)
    gain_sum = np.bincount(frame_group, weights=gain, minlength=num_points)
    videos = np.bincount(group, minlength=num_points)
    change_sum = np.bincount(group, weights=video_change, minlength=num_points)
    with np.errstate(invalid="ignore", divide="ignore"):
        return {
            "proportion": np.cumsum(videos) / num_videos,
            "gain": gain_sum / frames,
            "gain_cumulative": np.cumsum(gain_sum) / np.cumsum(frames),
            "change_degree": change_sum / np.maximum(videos, 1),
            "videos": videos,
            "frames": frames,
        }
