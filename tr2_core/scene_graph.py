"""The scene-graph stage: model scores (:class:`~tr2_core.types.SceneGraphResult`)
in, the decoded :class:`~tr2_core.types.SceneGraph` out.

This is the one place that decides

* which rows are valid (:func:`keep_valid`: finite boxes, scores and predicate
  scores, entity score at least the score threshold; pairs whose two entities
  are kept), used by the streaming engine;
* whether a result is well-formed (:func:`check_result`: shapes, integer ids,
  labels, pair rows, window order), and
* which predicates hold (:func:`decode_scene_graph`): per pair and family, the
  top predicate, and the predicates that hold, best first: the top one for the
  single-label attention family, every one scoring at least the relation
  threshold for spatial and contacting.

The ROS message (``tr2_ros/conversions.py``), the JSONL line
(:mod:`tr2_core.runners.records`) and the overlay (:mod:`tr2_core.viz.overlay`)
serialise the decoded graph.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from tr2_core.errors import Tr2Error
from tr2_core.types import (
    PredicateScores,
    SceneGraph,
    SceneGraphEdge,
    SceneGraphNode,
    SceneGraphResult,
)
from tr2_core.vocab import FAMILIES, NUM_OBJECT_CLASSES, Family

_ENTITY_VALUES = ("entity_scores", "entity_boxes")
_PAIR_VALUES = tuple(family.name for family in FAMILIES)
_ENTITY_ROWS = ("entity_track", "entity_labels", "entity_scores", "entity_boxes")
_PAIR_ROWS = ("pair_subject", "pair_object", *_PAIR_VALUES)


class InvalidSceneGraph(Tr2Error):
    """A result that cannot become a scene graph (reason names the field)."""


def _bad_rows(mask: np.ndarray, limit: int = 5) -> str:
    rows = np.flatnonzero(mask)
    shown = ", ".join(str(r) for r in rows[:limit].tolist())
    return f"rows [{shown}{', ...' if rows.size > limit else ''}]"


def _check_layout(r: SceneGraphResult) -> None:
    """Shapes, integer dtypes and the window (raises :class:`InvalidSceneGraph`)."""
    n = int(np.shape(r.entity_track)[0]) if np.ndim(r.entity_track) == 1 else -1
    p = int(np.shape(r.pair_subject)[0]) if np.ndim(r.pair_subject) == 1 else -1
    shapes = {
        "entity_track": (n,),
        "entity_labels": (n,),
        "entity_scores": (n,),
        "entity_boxes": (n, 4),
        "pair_subject": (p,),
        "pair_object": (p,),
        **{family.name: (p, family.size) for family in FAMILIES},
    }
    for name, shape in shapes.items():
        got = np.shape(getattr(r, name))
        if n < 0 or p < 0 or got != shape:
            raise InvalidSceneGraph(
                f"result.{name} has shape {got}, expected {shape} "
                f"({max(n, 0)} entities, {max(p, 0)} pairs)"
            )
    window = np.asarray(r.window_stamps_ns)
    if window.ndim != 1 or window.size == 0:
        raise InvalidSceneGraph(
            f"result.window_stamps_ns has shape {window.shape}, expected (W,) with W >= 1"
        )
    for name in ("entity_track", "entity_labels", "pair_subject", "pair_object"):
        kind = np.asarray(getattr(r, name)).dtype.kind
        if kind not in "iu":
            raise InvalidSceneGraph(f"result.{name} has dtype kind '{kind}', expected integers")
    if window.dtype.kind not in "iu":
        raise InvalidSceneGraph(
            f"result.window_stamps_ns has dtype kind '{window.dtype.kind}', expected integers"
        )
    if int(window[-1]) != int(r.stamp_ns) or (np.diff(window) < 0).any():
        raise InvalidSceneGraph(
            f"result.window_stamps_ns must be oldest first and end with the frame's stamp"
            f" {int(r.stamp_ns)}, got {window.tolist()}"
        )


def _check_indices(r: SceneGraphResult) -> None:
    """Labels in 1..36 and pair rows inside the entities."""
    labels = np.asarray(r.entity_labels)
    bad = (labels < 1) | (labels >= NUM_OBJECT_CLASSES)
    if bad.any():
        raise InvalidSceneGraph(
            f"result.entity_labels outside 1..{NUM_OBJECT_CLASSES - 1} in {_bad_rows(bad)}"
        )
    n = labels.shape[0]
    for name in ("pair_subject", "pair_object"):
        rows = np.asarray(getattr(r, name))
        bad = (rows < 0) | (rows >= n)
        if bad.any():
            raise InvalidSceneGraph(
                f"result.{name} points outside the {n} entities in {_bad_rows(bad)}"
            )


def _non_finite(r: SceneGraphResult, name: str) -> np.ndarray:
    """(rows,) bool: rows of field ``name`` holding a NaN or inf."""
    bad = ~np.isfinite(np.asarray(getattr(r, name), dtype=np.float64))
    return bad if bad.ndim == 1 else bad.any(axis=1)


def check_result(result: SceneGraphResult) -> None:
    """Check that ``result`` can become a scene graph as it is.

    Raises:
        InvalidSceneGraph: naming the field that is wrong: inconsistent shapes,
            non-integer ids, NaN/inf boxes or scores, labels outside 1..36,
            pair rows outside the entities, a window that is not oldest-first
            ending with ``stamp_ns``.
    """
    _check_layout(result)
    for name in (*_ENTITY_VALUES, *_PAIR_VALUES):
        values = np.asarray(getattr(result, name), dtype=np.float64)
        bad = ~np.isfinite(values)
        if bad.any():
            raise InvalidSceneGraph(
                f"result.{name} has {int(bad.sum())} NaN/inf values in "
                f"{_bad_rows(_non_finite(result, name))} (broken checkpoint?)"
            )
    _check_indices(result)


def keep_valid(
    result: SceneGraphResult, score_threshold: float = 0.0
) -> tuple[SceneGraphResult, int]:
    """Leave out entities with a non-finite box or score or a score below
    ``score_threshold``, and pairs with non-finite scores or a left-out entity.

    Args:
        result: a result with consistent shapes and pair rows inside the entities.

    Returns:
        (the kept rows, pair rows renumbered; how many entities and pairs were
        left out).
    """
    scores = np.asarray(result.entity_scores)
    entity_ok = ~_non_finite(result, "entity_boxes") & ~_non_finite(result, "entity_scores")
    entity_ok &= np.nan_to_num(scores, nan=-np.inf) >= score_threshold
    subj, obj = np.asarray(result.pair_subject), np.asarray(result.pair_object)
    pair_ok = entity_ok[subj] & entity_ok[obj]
    for name in _PAIR_VALUES:
        pair_ok &= ~_non_finite(result, name)
    rejected = int((~entity_ok).sum() + (~pair_ok).sum())
    if rejected == 0:
        return result, 0
    new_row = np.cumsum(entity_ok) - 1  # entity row -> row among the kept entities
    changes = {name: np.asarray(getattr(result, name))[entity_ok] for name in _ENTITY_ROWS}
    changes |= {name: np.asarray(getattr(result, name))[pair_ok] for name in _PAIR_VALUES}
    changes["pair_subject"] = new_row[subj[pair_ok]].astype(np.int64)
    changes["pair_object"] = new_row[obj[pair_ok]].astype(np.int64)
    return dataclasses.replace(result, **changes), rejected


def _family_scores(scores: np.ndarray, family: Family, threshold: float) -> list[PredicateScores]:
    """One :class:`PredicateScores` per pair of ``family``.

    Args:
        scores: (P, family.size) probabilities (attention) / sigmoid scores.
    """
    scores = np.ascontiguousarray(scores, dtype=np.float32)
    order = np.argsort(-scores, axis=1, kind="stable")  # (P, S) best first, ties by index
    ranked = np.take_along_axis(scores, order, axis=1)
    if family.multi_label:
        holds = ranked >= threshold
    else:  # single-label: the top predicate is the answer
        holds = np.zeros_like(ranked, dtype=bool)
        holds[:, 0] = True
    ranked_ids = (order + family.start).tolist()
    return [
        PredicateScores(
            family=family.name,
            first_predicate_id=family.start,
            scores=row,
            top=ids[0],
            top_score=float(best[0]),
            holding=tuple(i for i, h in zip(ids, hold, strict=True) if h),
        )
        for row, ids, best, hold in zip(scores, ranked_ids, ranked, holds.tolist(), strict=True)
    ]


def decode_scene_graph(
    result: SceneGraphResult, *, relation_threshold: float = 0.5, drop_invalid: bool = False
) -> SceneGraph:
    """Decode one frame's scores into its scene graph.

    Args:
        result: the streaming engine's result for the frame.
        relation_threshold: spatial/contacting predicates scoring at least this hold.
        drop_invalid: leave out rows with non-finite values (counted in
            ``SceneGraph.rejected``) instead of raising; for drawing.

    Raises:
        InvalidSceneGraph: the result is malformed (see :func:`check_result`);
            with ``drop_invalid``, non-finite values are not an error.
    """
    rejected = 0
    if drop_invalid:
        _check_layout(result)
        _check_indices(result)
        result, rejected = keep_valid(result)
    else:
        check_result(result)
    r = result
    boxes = np.asarray(r.entity_boxes, dtype=np.float32)
    nodes = tuple(
        SceneGraphNode(track_id=track, label=label, score=score, box=box)
        for track, label, score, box in zip(
            np.asarray(r.entity_track).tolist(),
            np.asarray(r.entity_labels).tolist(),
            np.asarray(r.entity_scores, dtype=np.float32).tolist(),
            boxes,
            strict=True,
        )
    )
    per_family = [_family_scores(getattr(r, f.name), f, relation_threshold) for f in FAMILIES]
    edges = tuple(
        SceneGraphEdge(subject, obj, **dict(zip(_PAIR_VALUES, answers, strict=True)))
        for subject, obj, *answers in zip(
            np.asarray(r.pair_subject).tolist(),
            np.asarray(r.pair_object).tolist(),
            *per_family,
            strict=True,
        )
    )
    window = np.asarray(r.window_stamps_ns, dtype=np.int64)
    return SceneGraph(int(r.stamp_ns), nodes, edges, window, rejected)
