"""Where the ground-truth relations change: the flags behind the time-variant
breakdown and the TR² paper's Fig. 5 (:mod:`tr2_core.evaluation.breakdown`).

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
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from tr2_core.evaluation.metrics import PREDICATE_FAMILY
from tr2_core.types import GroundTruth
from tr2_core.vocab import FAMILIES, NUM_OBJECT_CLASSES, SPATIAL

__all__ = [
    "FIRST_FRAME",
    "UNCHANGED",
    "CHANGED",
    "RelationChanges",
    "triplet_object_class",
    "relation_changes",
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
