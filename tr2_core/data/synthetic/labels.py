"""Relation labels derived from the drawn geometry, and change measures.

:func:`spatial_relations` and :func:`attention_relations` are the rules;
:func:`frame_labels` applies them (and the contact state) to one frame;
:func:`relation_changes` / :func:`change_degree` measure change on the
written records.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from tr2_core.data.synthetic.geometry import FrameGeometry
from tr2_core.data.synthetic.state import (
    CONTACT_LABELS,
    FACING_BACK,
    FACING_FRONT,
    SceneState,
)
from tr2_core.vocab import ATTENTION, SPATIAL

# Spatial rule thresholds (fractions of the person box height / overlap).
VERT_FRAC = 0.1
_DEPTH_MIN_OVERLAP = 0.3
_SIDE_MAX_OVERLAP = 0.7

_SPATIAL_COL = {name: i for i, name in enumerate(SPATIAL.predicates)}
_ATT_LOOKING = ATTENTION.predicates.index("looking_at")
_ATT_NOT = ATTENTION.predicates.index("not_looking_at")
_ATT_UNSURE = ATTENTION.predicates.index("unsure")

FrameLabels = tuple[tuple[int, tuple[int, ...], tuple[str, ...]], ...]
"""Per object: (attention index, spatial indices, contacting predicates)."""


def spatial_relations(
    object_boxes: np.ndarray, person_box: np.ndarray, object_in_front: np.ndarray
) -> np.ndarray:
    """Spatial labels of objects relative to the person, from the geometry.

    Rules (``hp`` = person box height, ``hov`` = horizontal overlap divided
    by the narrower of the two widths):

    * ``above``: object centre higher than ``y1 + 0.1 hp``; ``beneath``:
      lower than ``y2 - 0.1 hp``;
    * ``in_front_of`` / ``behind``: neither above nor beneath, the boxes
      intersect and ``hov >= 0.3``; the drawing order decides which (objects
      drawn over the person are in front);
    * ``on_the_side_of``: ``hov < 0.7``;
    * ``in``: behind and the object box contains the person box.

    At least one label is always set.

    Args:
        object_boxes: (K, 4) ``x1 y1 x2 y2`` pixels.
        person_box: (4,) ``x1 y1 x2 y2``.
        object_in_front: (K,) bool, object drawn over the person.

    Returns:
        (K, 6) bool in :data:`tr2_core.vocab.SPATIAL` order.
    """
    ob = np.asarray(object_boxes, dtype=np.float64).reshape(-1, 4)
    px1, py1, px2, py2 = (float(v) for v in np.asarray(person_box, dtype=np.float64))
    hp = max(py2 - py1, 1e-6)
    pw = max(px2 - px1, 1e-6)
    cy = 0.5 * (ob[:, 1] + ob[:, 3])
    above = cy < py1 + VERT_FRAC * hp
    beneath = cy > py2 - VERT_FRAC * hp
    ovx = np.clip(np.minimum(ob[:, 2], px2) - np.maximum(ob[:, 0], px1), 0.0, None)
    ovy = np.clip(np.minimum(ob[:, 3], py2) - np.maximum(ob[:, 1], py1), 0.0, None)
    hov = ovx / np.minimum(np.maximum(ob[:, 2] - ob[:, 0], 1e-6), pw)
    depth = ~(above | beneath) & (ovx > 0) & (ovy > 0) & (hov >= _DEPTH_MIN_OVERLAP)
    front = np.asarray(object_in_front, dtype=bool).reshape(-1)
    behind = depth & ~front
    contains = (ob[:, 0] <= px1) & (ob[:, 1] <= py1) & (ob[:, 2] >= px2) & (ob[:, 3] >= py2)
    out = np.zeros((ob.shape[0], SPATIAL.size), dtype=bool)
    out[:, _SPATIAL_COL["above"]] = above
    out[:, _SPATIAL_COL["beneath"]] = beneath
    out[:, _SPATIAL_COL["in_front_of"]] = depth & front
    out[:, _SPATIAL_COL["behind"]] = behind
    out[:, _SPATIAL_COL["on_the_side_of"]] = hov < _SIDE_MAX_OVERLAP
    out[:, _SPATIAL_COL["in"]] = behind & contains
    return out


def attention_relations(
    object_boxes: np.ndarray, head_x: float, head_radius: float, facing: int
) -> np.ndarray:
    """Attention label of each object from the face direction.

    A profile face (``facing`` -1 = image left, +1 = image right) looks at an
    object whose centre lies on its side by more than the head radius; a
    frontal face (0) looks at nothing; a head seen from behind (2) is unsure.

    Args:
        object_boxes: (K, 4) ``x1 y1 x2 y2``.
        head_x, head_radius: head centre x and radius in pixels.
        facing: one of ``FACING_LEFT, FACING_RIGHT, FACING_FRONT, FACING_BACK``.

    Returns:
        (K,) int64 index into :data:`tr2_core.vocab.ATTENTION` predicates.
    """
    ob = np.asarray(object_boxes, dtype=np.float64).reshape(-1, 4)
    k = ob.shape[0]
    if facing == FACING_BACK:
        return np.full(k, _ATT_UNSURE, dtype=np.int64)
    if facing == FACING_FRONT:
        return np.full(k, _ATT_NOT, dtype=np.int64)
    dx = 0.5 * (ob[:, 0] + ob[:, 2]) - head_x
    return np.where(dx * facing > head_radius, _ATT_LOOKING, _ATT_NOT).astype(np.int64)


def relation_changes(object_records: Sequence[Sequence[Mapping[str, Any]]]) -> np.ndarray:
    """Which frames of a video changed a relation w.r.t. the previous frame.

    Objects are matched by class; an object counts only where it is visible
    in both frames. Labels are compared as sets per family.

    Args:
        object_records: per frame (in time order), the frame's object records
            as in ``object_bbox_and_relationship.pkl``.

    Returns:
        (F - 1,) bool; entry ``t`` is frame ``t + 1`` vs frame ``t``.
    """

    def labels(records: Sequence[Mapping[str, Any]]) -> dict[str, tuple[frozenset, ...]]:
        return {
            r["class"]: tuple(
                frozenset(r[f] or ())
                for f in (
                    "attention_relationship",
                    "spatial_relationship",
                    "contacting_relationship",
                )
            )
            for r in records
            if r.get("visible")
        }

    per_frame = [labels(r) for r in object_records]
    out = np.zeros(max(len(per_frame) - 1, 0), dtype=bool)
    for t in range(1, len(per_frame)):
        prev, cur = per_frame[t - 1], per_frame[t]
        out[t - 1] = any(cur[c] != prev[c] for c in cur.keys() & prev.keys())
    return out


def change_degree(object_records: Sequence[Sequence[Mapping[str, Any]]]) -> float:
    """Proportion of frame transitions of a video whose relations changed
    (0.0 for a video of one frame); the TR² paper's "degree of change"."""
    changes = relation_changes(object_records)
    return float(changes.mean()) if changes.size else 0.0


def frame_labels(st: SceneState, g: FrameGeometry) -> FrameLabels:
    """Per object of ``st`` drawn as ``g``: (attention index, spatial
    indices, contacting predicates of its contact state)."""
    spat = spatial_relations(g.obj_boxes, g.person_box, g.obj_front)
    # The floor spans the frame: never looked at (judged at the head itself).
    band = np.array([kind == "band" for kind, _ in g.obj_kind], dtype=bool)
    head = np.array([g.head[0], g.head[1], g.head[0], g.head[1]])
    att_boxes = np.where(band[:, None], head[None, :], g.obj_boxes)
    att = attention_relations(att_boxes, float(g.head[0]), g.head_r, g.facing)
    return tuple(
        (int(att[i]), tuple(np.flatnonzero(spat[i]).tolist()), CONTACT_LABELS[o.contact])
        for i, o in enumerate(st.objs)
    )
