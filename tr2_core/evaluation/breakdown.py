"""Breakdowns of the evaluation: per predicate family, time-variant relations,
and the TR² paper's Fig. 5 analysis (gain vs. proportion of videos sorted by
how often their relations change).

Definitions (object identity is the object *class* within a video, since
Action Genome has no track ids; the "pair" of a triplet is (person, object
class); frames are the evaluated GT frames, so the previous frame is the
previous *kept* frame of the same video):

* A GT triplet's **object class** is the class of its non-person box: the
  object box of attention / contacting triplets, the subject box of spatial
  triplets (which are stored reversed).
* The **relation set** of (frame, object class, family) is the set of
  predicates of that family over all GT triplets of the frame whose object has
  that class (several objects of one class are merged).
* A GT triplet of frame t is **changed** if the relation set of (t, its object
  class, its family) differs from that of (t - 1, same class, same family) --
  an object absent from t - 1 has an empty set there, so its relations count
  as changed; otherwise it is **unchanged**. Triplets of the first frame of a
  video have no previous frame and are in neither group (reported as
  ``first_frame_triplets``).
* A frame t (not a video's first) **has a relation change** if its set of
  (object class, predicate) tuples differs from that of t - 1 (relations that
  appear, vanish or move count). A video's **change degree** is the fraction
  of its frames after the first that have a relation change.

Recall of a group (a family, changed, unchanged) follows the main metric:
R@K is the mean over frames that hold at least one triplet of the group of
(matched triplets of the group / triplets of the group), ranks taken from the
full ranking of the frame; mR@K averages over the group's predicates.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from tr2_core.evaluation.metrics import PREDICATE_FAMILY, recall_tables, summarise_selected
from tr2_core.types import GroundTruth
from tr2_core.vocab import FAMILIES, NUM_OBJECT_CLASSES, SPATIAL

if TYPE_CHECKING:
    from tr2_core.evaluation.recall import EvaluationResult

__all__ = [
    "FIRST_FRAME",
    "UNCHANGED",
    "CHANGED",
    "RelationChanges",
    "triplet_object_class",
    "relation_changes",
    "breakdown_metrics",
    "family_breakdown",
    "time_variant_breakdown",
    "change_gain_curve",
]

UNCHANGED, CHANGED, FIRST_FRAME = 0, 1, 2
"""Values of :attr:`RelationChanges.triplet_state`."""

_FAMILY_BITS = np.array(
    [sum(1 << p for p in range(f.start, f.stop)) for f in FAMILIES], dtype=np.int64
)
_NC = NUM_OBJECT_CLASSES
_SPATIAL_INDEX = FAMILIES.index(SPATIAL)


def triplet_object_class(gt: GroundTruth) -> np.ndarray:
    """(T,) int64 class of each GT triplet's non-person box."""
    family = PREDICATE_FAMILY[gt.triplet_predicate]
    box = np.where(family == _SPATIAL_INDEX, gt.triplet_subject, gt.triplet_object)
    return np.asarray(gt.box_labels, dtype=np.int64)[box]


@dataclass(frozen=True)
class RelationChanges:
    """Where the ground-truth relations change (module docstring).

    Attributes:
        triplet_state: (T,) int8 :data:`UNCHANGED`, :data:`CHANGED` or
            :data:`FIRST_FRAME`.
        frame_first: (F,) bool, first frame of its video.
        frame_changed: (F,) bool, the frame has a relation change (False for
            first frames).
        video_change: (V,) float64 change degree of each video (0 for a video
            with a single frame).
    """

    triplet_state: np.ndarray
    frame_first: np.ndarray
    frame_changed: np.ndarray
    video_change: np.ndarray


def _lookup(sorted_keys: np.ndarray, values: np.ndarray, queries: np.ndarray) -> np.ndarray:
    """values[k] for each query equal to sorted_keys[k], else 0."""
    if sorted_keys.shape[0] == 0:
        return np.zeros(queries.shape[0], dtype=values.dtype)
    pos = np.minimum(np.searchsorted(sorted_keys, queries), sorted_keys.shape[0] - 1)
    return np.where(sorted_keys[pos] == queries, values[pos], 0)


def relation_changes(gt: GroundTruth) -> RelationChanges:
    """Compute the change flags of every GT triplet, frame and video (vectorised)."""
    num_frames = gt.num_frames
    frame_video = np.asarray(gt.frame_video, dtype=np.int64)
    video_start = np.asarray(gt.video_start, dtype=np.int64)
    frame_first = np.arange(num_frames) == video_start[frame_video]

    t_frame = np.asarray(gt.triplet_frame, dtype=np.int64)
    t_pred = np.asarray(gt.triplet_predicate, dtype=np.int64)
    key = t_frame * _NC + triplet_object_class(gt)
    bits = np.left_shift(np.int64(1), t_pred)
    order = np.argsort(key, kind="stable")
    sorted_key = key[order]
    new = np.r_[True, sorted_key[1:] != sorted_key[:-1]] if key.shape[0] else np.zeros(0, bool)
    starts = np.flatnonzero(new)
    unique_key = sorted_key[starts]
    if key.shape[0]:
        unique_mask = np.bitwise_or.reduceat(bits[order], starts)
    else:
        unique_mask = np.zeros(0, dtype=np.int64)
    entry = np.empty(key.shape[0], dtype=np.int64)
    entry[order] = np.cumsum(new) - 1

    # Relation set of the same class in the previous frame (0 = none; only
    # meaningful where the frame is not first, which is masked below).
    prev_mask = _lookup(unique_key, unique_mask, unique_key - _NC)
    own = unique_mask[entry]
    prev = prev_mask[entry]
    fam_bits = _FAMILY_BITS[PREDICATE_FAMILY[t_pred]]
    changed = (own & fam_bits) != (prev & fam_bits)
    state = np.where(changed, CHANGED, UNCHANGED).astype(np.int8)
    state[frame_first[t_frame]] = FIRST_FRAME

    frame_changed = np.zeros(num_frames, dtype=bool)
    unique_frame = unique_key // _NC
    frame_changed[unique_frame[unique_mask != prev_mask]] = True
    # A class present in frame t - 1 and absent from t changes t as well.
    next_mask = _lookup(unique_key, unique_mask, unique_key + _NC)
    gone = (next_mask == 0) & (unique_frame + 1 < num_frames)
    frame_changed[unique_frame[gone] + 1] = True
    frame_changed &= ~frame_first

    frames_per_video = np.diff(video_start)
    changed_per_video = np.bincount(
        frame_video, weights=frame_changed, minlength=gt.num_videos
    ).astype(np.float64)
    denom = np.maximum(frames_per_video - 1, 1)
    video_change = np.where(frames_per_video > 1, changed_per_video / denom, 0.0)
    return RelationChanges(
        triplet_state=state,
        frame_first=frame_first,
        frame_changed=frame_changed,
        video_change=video_change,
    )


def breakdown_metrics(result: EvaluationResult, changes: RelationChanges | None = None) -> dict:
    """Main metrics plus both breakdowns.

    Returns:
        ``{setting: {'R@K': .., 'mR@K': ..}, ..., 'families': ..., 'time_variant': ...}``
        (see :func:`family_breakdown` and :func:`time_variant_breakdown`).
    """
    gt = result.gt
    changes = changes if changes is not None else relation_changes(gt)
    family = PREDICATE_FAMILY[gt.triplet_predicate]
    state = changes.triplet_state.astype(np.int64)
    family_count = np.bincount(family, minlength=len(FAMILIES))
    state_count = np.bincount(state, minlength=3)
    names = ["all", *(fam.name for fam in FAMILIES), "unchanged", "changed"]
    summaries = {}
    for setting in result.settings:
        args = (result.ranks[setting], gt.triplet_frame, gt.triplet_predicate, gt.num_frames)
        by_family = recall_tables(*args, result.ks, family, len(FAMILIES))
        by_state = recall_tables(*args, result.ks, state, 3)
        picked = []
        for fam_hist, state_hist in (
            (by_family.frame_hist, by_state.frame_hist),
            (by_family.pred_hist, by_state.pred_hist),
        ):
            everything = fam_hist.sum(axis=1, keepdims=True)
            # state columns: UNCHANGED, CHANGED (FIRST_FRAME left out)
            states = state_hist[:, [UNCHANGED, CHANGED], :]
            picked.append(np.concatenate([everything, fam_hist, states], axis=1))
        summaries[setting] = summarise_selected(picked[0], picked[1], by_family, names)
    out: dict = {setting: summaries[setting]["all"] for setting in result.settings}

    families: dict = {}
    for f, fam in enumerate(FAMILIES):
        entry: dict = {"triplets": int(family_count[f])}
        for setting in result.settings:
            entry[setting] = summaries[setting][fam.name]
        families[fam.name] = entry
    out["families"] = families

    time_variant: dict = {}
    frames_with = np.zeros((3, gt.num_frames), dtype=bool)
    frames_with[state, gt.triplet_frame] = True
    for name, code in (("changed", CHANGED), ("unchanged", UNCHANGED)):
        entry = {"triplets": int(state_count[code]), "frames": int(frames_with[code].sum())}
        for setting in result.settings:
            entry[setting] = summaries[setting][name]
        time_variant[name] = entry
    time_variant["first_frame_triplets"] = int(state_count[FIRST_FRAME])
    time_variant["changed_frames"] = int(changes.frame_changed.sum())
    time_variant["frames_after_first"] = int((~changes.frame_first).sum())
    out["time_variant"] = time_variant
    return out


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
