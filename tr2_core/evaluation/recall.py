"""Fast, vectorised Recall@K / mR@K on Action Genome (``docs/evaluation.md``).

Semantics (the evaluator lineage's, with one deterministic tie rule)
-------------------------------------------------------------------------
Per predicted frame the evaluator builds three rows per (subject, object)
pair, each a 26-wide predicate vector with the other families zero-filled:
the attention row of ``(s, o)``, the spatial row of the reversed pair
``(o, s)`` and the contacting row of ``(s, o)``; all attention rows come first,
then all spatial rows, then all contacting rows, pairs in file order within a
block. A setting turns rows into candidate triplets:

* ``with``: one candidate per row, the row's argmax (first maximum of the
  zero-filled 26-vector, so an all-zero spatial / contacting row yields
  predicate 0 with score 0);
* ``semi``: attention rows yield their argmax, spatial / contacting rows every
  predicate scoring ``> 0.9``;
* ``no``: every (row, predicate) cell, zero-filled cells included; only the
  first 100 in ranking order are kept;
* ``top<k>`` (``top6`` by default): per pair the k highest of its 26
  concatenated scores (ties: lower predicate index first); a kept spatial
  predicate is a triplet of the reversed pair.

The *generation order* of candidates is row order, then increasing predicate
index inside a row. For ``top<k>`` the row of a pair is its concatenated
26-vector, so candidates are generated pair by pair (as TR²'s evaluator does),
in increasing predicate index inside a pair. A candidate's ranking score is
``float64(score(subject box)) * float64(score(object box)) * predicate score``
(in that order). Candidates are ranked by a stable descending sort of that
score, so ties keep generation order. In ``task='predcls'`` object scores are
taken as 1 whatever the file holds (the task's definition); otherwise the
file's ``box_scores`` are used. The task changes nothing else: which frames and
boxes are ground truth is decided by the caller, who passes the matching
:class:`~tr2_core.types.GroundTruth` (e.g. loaded with the small-box filter
for SGCls / SGDet).

A candidate matches a ground-truth triplet when the subject labels, object
labels and predicates are equal and both boxes have legacy IoU >= 0.5
(``w = x2 - x1 + 1``, ``h = y2 - y1 + 1``, intersection likewise). R@K of a
frame is the number of distinct GT triplets matched by one of the first K
candidates over the number of GT triplets; R@K is the mean over frames with at
least one GT triplet (a GT frame without predictions scores 0); mR@K pools
matches per predicate over all frames and averages over predicates present in
the GT.

Where the lineage's code is not deterministic or not literal
------------------------------------------------------------
* Ties: the lineage ranks with ``argsort()[::-1]`` (tie order left to the
  sort algorithm) and TR²'s top-k with ``np.argsort(-scores)[:, :6]``; here
  ties follow the stable rule above (docs/evaluation.md). Without exact ties both give the
  same numbers.
* ``semi``: the lineage recognises a row's family by testing two of its
  scores (``s[0] + s[1] > 0`` attention, ``s[3] + s[4] > 0`` spatial,
  ``s[9] + s[10] > 0`` contacting), so a row whose two tested scores are both
  exactly 0 yields nothing; here a row's family is known by construction, as
  docs/evaluation.md states. Softmax / sigmoid outputs are never exactly 0, so real
  model outputs score the same; hand-made scores (e.g. frequencies of 0) may not.

How it is computed fast
-----------------------
Everything follows from one number per GT triplet and setting: the rank
(0-based, within its frame) of the first candidate that matches it
(:data:`UNMATCHED` if none). Ranks are found without ranking every candidate:

1. GT triplets are joined with the predicted (oriented) pairs of their frame on
   (frame, subject label, object label) by a sort + ``searchsorted`` and kept
   where both IoUs reach 0.5; each surviving (triplet, pair) gives the triplet's
   cell in the attention and contacting rows (forward pair) or the spatial row
   (reversed pair). This join is shared by all settings.
2. Per setting, the matching cells that are candidates are kept, and per
   triplet only the best one (highest score, then earliest in generation
   order), since ranks are monotone in that order.
3. Its rank is ``#(candidates of the frame scoring higher) + #(equal score,
   generated earlier)``. Frames are grouped by their candidate count ``c``;
   small ``c`` is counted by broadcasting, large ``c`` (e.g. the 78 cells per
   pair of ``no``) by sorting each frame's scores (``np.sort`` along rows) and a
   vectorised binary search, with the exact tie count only for the few
   queries that have ties.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from tr2_core.errors import ConfigError, PredictionsError
from tr2_core.evaluation.metrics import PREDICATE_FAMILY
from tr2_core.evaluation.predictions import validate_predictions
from tr2_core.evaluation.result import UNMATCHED, EvaluationResult
from tr2_core.types import GroundTruth, Predictions
from tr2_core.vocab import FAMILIES, NUM_OBJECT_CLASSES, NUM_PREDICATES

__all__ = [
    "TASKS",
    "DEFAULT_SETTINGS",
    "DEFAULT_KS",
    "DEFAULT_TOPK",
    "SEMI_THRESHOLD",
    "NO_CONSTRAINT_LIMIT",
    "IOU_THRESHOLD",
    "UNMATCHED",
    "EvaluationResult",
    "evaluate",
    "evaluate_detailed",
    "legacy_iou",
    "parse_settings",
]

TASKS: tuple[str, ...] = ("predcls", "sgcls", "sgdet")
DEFAULT_SETTINGS: tuple[str, ...] = ("with", "semi", "no", "top6")
DEFAULT_KS: tuple[int, ...] = (10, 20, 50, 100)
DEFAULT_TOPK: int = 6
SEMI_THRESHOLD: float = 0.9
"""``semi``: spatial / contacting predicates scoring strictly above this are kept."""
NO_CONSTRAINT_LIMIT: int = 100
"""``no``: only the first 100 ranked cells of a frame are predictions."""
IOU_THRESHOLD: float = 0.5

_NC = NUM_OBJECT_CLASSES
_ROWS_PER_PAIR = len(FAMILIES)  # attention, spatial, contacting rows
_SPATIAL_BLOCK = 1  # the block whose rows hold the reversed pair
_BROADCAST_MAX = 32  # candidate counts up to this are ranked by broadcasting
_CHUNK = 1 << 20  # elements per temporary (G, c) block


def parse_settings(settings: Sequence[str], topk: int = DEFAULT_TOPK) -> tuple[str, ...]:
    """Canonical setting names: ``'with'``, ``'semi'``, ``'no'``, ``'top<k>'``.

    ``'topk'`` means ``f'top{topk}'``.

    Raises:
        ConfigError: unknown name or k < 1.
    """
    out: list[str] = []
    for name in settings:
        if name == "topk":
            name = f"top{topk}"
        if name not in ("with", "semi", "no") and not (
            name.startswith("top") and name[3:].isdigit() and int(name[3:]) >= 1
        ):
            raise ConfigError(
                f"unknown constraint setting {name!r}; expected 'with', 'semi', 'no' or "
                "'top<k>' (e.g. 'top6')"
            )
        if name not in out:
            out.append(name)
    return tuple(out)


def legacy_iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Element-wise IoU of ``x1 y1 x2 y2`` boxes, legacy pixel convention.

    Args:
        a, b: (N, 4) boxes (any float dtype; computed in float64).

    Returns:
        (N,) float64; widths and heights are ``x2 - x1 + 1`` / ``y2 - y1 + 1``,
        the intersection counts only where both its sides are positive, and a
        non-positive union gives 0.
    """
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    iw = np.minimum(a[:, 2], b[:, 2]) - np.maximum(a[:, 0], b[:, 0]) + 1.0
    ih = np.minimum(a[:, 3], b[:, 3]) - np.maximum(a[:, 1], b[:, 1]) + 1.0
    inter = np.where((iw > 0) & (ih > 0), iw * ih, 0.0)
    area_a = (a[:, 2] - a[:, 0] + 1.0) * (a[:, 3] - a[:, 1] + 1.0)
    area_b = (b[:, 2] - b[:, 0] + 1.0) * (b[:, 3] - b[:, 1] + 1.0)
    union = area_a + area_b - inter
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(union > 0, inter / union, 0.0)


# --------------------------------------------------------------------------
# Preparation shared by all settings


@dataclass(frozen=True)
class _Prepared:
    """Predicted pairs sorted by GT frame, and the GT-triplet / row join.

    ``P`` pairs, ``E`` join entries. Blocks: 0 attention rows, 1 spatial rows
    (reversed pair), 2 contacting rows.
    """

    num_frames: int
    pair_frame: np.ndarray  # (P,) GT frame row, ascending
    pair_rank: np.ndarray  # (P,) index of the pair inside its frame
    frame_pairs: np.ndarray  # (F,) pairs per GT frame
    frame_pair_start: np.ndarray  # (F + 1,) CSR offsets
    values: np.ndarray  # (P, 26) float64 [attention | spatial | contacting]
    row_argmax: np.ndarray  # (3, P) argmax predicate of each row's zero-filled 26-vector
    row_max: np.ndarray  # (3, P) float64 its value
    pair_score: np.ndarray  # (P,) float64 score(subject) * score(object)
    entry_triplet: np.ndarray  # (E,) GT triplet row
    entry_pair: np.ndarray  # (E,) pair row (sorted order)
    entry_block: np.ndarray  # (E,) 0, 1 or 2
    entry_predicate: np.ndarray  # (E,) the GT triplet's predicate
    entry_own: np.ndarray  # (E,) bool: the predicate belongs to the row's family
    triplet_frame: np.ndarray  # (T,)
    triplet_predicate: np.ndarray  # (T,)


def _ground_truth_frame_rows(gt: GroundTruth, preds: Predictions, source: str) -> np.ndarray:
    """(F_pred,) GT frame row of every predicted frame; error for unknown keys."""
    keys = preds.frame_keys
    if keys.shape[0] == 0:
        return np.zeros(0, dtype=np.int64)
    gt_keys = np.asarray(gt.frame_keys)
    if gt_keys.shape[0] == 0:
        bad = np.ones(keys.shape[0], dtype=bool)
        rows = np.zeros(keys.shape[0], dtype=np.int64)
    else:
        sorter = np.argsort(gt_keys, kind="stable")
        pos = np.searchsorted(gt_keys, keys, sorter=sorter)
        rows = sorter[np.minimum(pos, gt_keys.shape[0] - 1)].astype(np.int64)
        bad = gt_keys[rows] != keys
    if bad.any():
        example = keys[np.flatnonzero(bad)[0]]
        raise PredictionsError(
            f"{source}: {int(bad.sum())} predicted frame(s) are not frames of the "
            f"ground-truth split, e.g. '{example}' (predictions made for another split, "
            "or with a different small-box filter?)"
        )
    return rows


def _expand(count: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """For segments of ``count[i]`` items: (segment of each item, index inside it)."""
    seg = np.repeat(np.arange(count.shape[0], dtype=np.int64), count)
    within = np.arange(seg.shape[0], dtype=np.int64) - np.repeat(np.cumsum(count) - count, count)
    return seg, within


def _match_triplets(
    gt: GroundTruth,
    preds: Predictions,
    pair_frame: np.ndarray,
    sub: np.ndarray,
    obj: np.ndarray,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Every (GT triplet, predicted pair) whose boxes match: same frame, same
    labels, both boxes at legacy IoU >= 0.5, in either orientation of the pair.

    Args:
        pair_frame, sub, obj: (P,) GT frame row, subject box and object box of
            each predicted pair (pairs sorted by frame).

    Returns:
        (M,) triplet index, (M,) pair index, (M,) bool the pair matched reversed
        (its object box is the triplet's subject).
    """
    # Join GT triplets with oriented pairs on (frame, subject label, object label).
    labels = preds.box_labels
    num_pairs = int(pair_frame.shape[0])
    pair_ids = np.arange(num_pairs, dtype=np.int64)
    o_pair = np.concatenate([pair_ids, pair_ids])
    o_reversed = np.repeat(np.array([False, True]), num_pairs)
    o_sub = np.concatenate([sub, obj])
    o_obj = np.concatenate([obj, sub])
    o_key = (np.concatenate([pair_frame, pair_frame]) * _NC + labels[o_sub]) * _NC + labels[o_obj]
    key_order = np.argsort(o_key, kind="stable")
    sorted_keys = o_key[key_order]

    t_sub = np.asarray(gt.triplet_subject, dtype=np.int64)
    t_obj = np.asarray(gt.triplet_object, dtype=np.int64)
    # GT triplets share (subject box, object box) pairs: match those once.
    num_gt_boxes = int(np.asarray(gt.boxes).shape[0])
    g_key, g_of_triplet = np.unique(t_sub * num_gt_boxes + t_obj, return_inverse=True)
    g_sub, g_obj = g_key // num_gt_boxes, g_key % num_gt_boxes
    gt_labels = np.asarray(gt.box_labels, dtype=np.int64)
    g_join = (np.asarray(gt.box_frame)[g_sub] * _NC + gt_labels[g_sub]) * _NC + gt_labels[g_obj]
    lo = np.searchsorted(sorted_keys, g_join, side="left")
    count = np.searchsorted(sorted_keys, g_join, side="right") - lo
    j_gt, within = _expand(count)
    j_oriented = key_order[lo[j_gt] + within]
    gt_boxes = np.asarray(gt.boxes, dtype=np.float64)
    pred_boxes = np.asarray(preds.boxes, dtype=np.float64)
    ok = legacy_iou(gt_boxes[g_sub[j_gt]], pred_boxes[o_sub[j_oriented]]) >= IOU_THRESHOLD
    j_gt, j_oriented = j_gt[ok], j_oriented[ok]
    ok = legacy_iou(gt_boxes[g_obj[j_gt]], pred_boxes[o_obj[j_oriented]]) >= IOU_THRESHOLD
    j_gt, j_oriented = j_gt[ok], j_oriented[ok]
    # Back to triplets: every triplet of a matched GT box pair.
    triplets_by_pair = np.argsort(g_of_triplet, kind="stable")
    pair_count = np.bincount(g_of_triplet, minlength=g_key.shape[0])
    pair_start = np.cumsum(pair_count) - pair_count
    j_match, within = _expand(pair_count[j_gt])
    j_triplet = triplets_by_pair[pair_start[j_gt][j_match] + within]
    j_oriented = j_oriented[j_match]
    return j_triplet, o_pair[j_oriented], o_reversed[j_oriented]


def _prepare(gt: GroundTruth, preds: Predictions, task: str, source: str) -> _Prepared:
    num_frames = gt.num_frames
    frame_rows = _ground_truth_frame_rows(gt, preds, source)

    pair_frame = frame_rows[preds.box_frame[preds.pair_subject]]
    order = np.argsort(pair_frame, kind="stable")
    pair_frame = pair_frame[order]
    sub = preds.pair_subject[order]
    obj = preds.pair_object[order]
    num_pairs = int(order.shape[0])
    frame_pairs = np.bincount(pair_frame, minlength=num_frames).astype(np.int64)
    frame_pair_start = np.zeros(num_frames + 1, dtype=np.int64)
    np.cumsum(frame_pairs, out=frame_pair_start[1:])
    pair_rank = np.arange(num_pairs, dtype=np.int64) - frame_pair_start[pair_frame]

    blocks = [
        np.asarray(a, dtype=np.float64)[order]
        for a in (preds.attention, preds.spatial, preds.contacting)
    ]
    values = np.concatenate(blocks, axis=1)
    row_argmax = np.zeros((len(FAMILIES), num_pairs), dtype=np.int64)
    row_max = np.zeros((len(FAMILIES), num_pairs), dtype=np.float64)
    if num_pairs:
        for b, (fam, block) in enumerate(zip(FAMILIES, blocks, strict=True)):
            # First maximum of the zero-filled row: predicate 0 if the family is all 0.
            m = block.max(axis=1)
            row_argmax[b] = np.where(m > 0, fam.start + block.argmax(axis=1), 0)
            row_max[b] = m
    if task == "predcls":
        box_score = np.ones(preds.box_scores.shape[0], dtype=np.float64)
    else:
        box_score = preds.box_scores.astype(np.float64)
    pair_score = box_score[sub] * box_score[obj]

    j_triplet, j_pair, rev = _match_triplets(gt, preds, pair_frame, sub, obj)
    fwd = ~rev
    # A forward pair owns an attention row and a contacting row, a reversed one a spatial row.
    entry_triplet = np.concatenate([j_triplet[fwd], j_triplet[fwd], j_triplet[rev]])
    entry_pair = np.concatenate([j_pair[fwd], j_pair[fwd], j_pair[rev]])
    entry_block = np.concatenate(
        [
            np.zeros(int(fwd.sum()), np.int64),
            np.full(int(fwd.sum()), 2, np.int64),
            np.full(int(rev.sum()), _SPATIAL_BLOCK, np.int64),
        ]
    )
    entry_predicate = np.asarray(gt.triplet_predicate, dtype=np.int64)[entry_triplet]
    return _Prepared(
        num_frames=num_frames,
        pair_frame=pair_frame,
        pair_rank=pair_rank,
        frame_pairs=frame_pairs,
        frame_pair_start=frame_pair_start,
        values=values,
        row_argmax=row_argmax,
        row_max=row_max,
        pair_score=pair_score,
        entry_triplet=entry_triplet,
        entry_pair=entry_pair,
        entry_block=entry_block,
        entry_predicate=entry_predicate,
        entry_own=PREDICATE_FAMILY[entry_predicate] == entry_block,
        triplet_frame=np.asarray(gt.triplet_frame, dtype=np.int64),
        triplet_predicate=np.asarray(gt.triplet_predicate, dtype=np.int64),
    )


# --------------------------------------------------------------------------
# Ranking


def _bound(
    sorted_rows: np.ndarray, rows: np.ndarray, values: np.ndarray, right: bool
) -> np.ndarray:
    """Vectorised binary search: ``#(sorted_rows[rows[q]] < values[q])`` (``<=`` if right)."""
    c = sorted_rows.shape[1]
    flat = sorted_rows.ravel()
    base = rows * c
    lo = np.zeros(rows.shape[0], dtype=np.int64)
    hi = np.full(rows.shape[0], c, dtype=np.int64)
    for _ in range(int(c).bit_length()):
        mid = (lo + hi) >> 1
        v = flat[base + np.minimum(mid, c - 1)]
        go = (v <= values) if right else (v < values)
        active = lo < hi
        lo = np.where(active & go, mid + 1, lo)
        hi = np.where(active & ~go, mid, hi)
    return lo


def _count_before(block: np.ndarray, score: np.ndarray, pos: np.ndarray) -> np.ndarray:
    """Per row q of ``block`` (Q, c): #(> score[q]) + #(== score[q] at column < pos[q])."""
    s = score[:, None]
    earlier = np.arange(block.shape[1])[None, :] < pos[:, None]
    return (block > s).sum(axis=1) + ((block == s) & earlier).sum(axis=1)


def _rank_queries(
    q_frame: np.ndarray,
    q_pos: np.ndarray,
    q_score: np.ndarray,
    frame_count: np.ndarray,
    gather: Callable[[np.ndarray, int], np.ndarray],
) -> np.ndarray:
    """Rank of candidate ``q_pos`` (generation position) with score ``q_score``
    among the ``frame_count[q_frame]`` candidates of its frame.

    ``gather(frames, c)`` returns the (len(frames), c) float64 candidate scores
    of frames that all have ``c`` candidates, in generation order.
    """
    out = np.empty(q_frame.shape[0], dtype=np.int64)
    if q_frame.shape[0] == 0:
        return out
    q_count = frame_count[q_frame]
    # Group by count, frames ascending inside a group (the sort path needs it).
    if q_frame.shape[0] > 1 and bool((q_frame[1:] < q_frame[:-1]).any()):
        by_frame = np.argsort(q_frame, kind="stable")
    else:
        by_frame = np.arange(q_frame.shape[0])
    counts = q_count[by_frame]
    if int(counts.max()) < np.iinfo(np.int16).max:
        counts = counts.astype(np.int16)  # stable sort of int16 is a radix sort
    order = by_frame[np.argsort(counts, kind="stable")]
    sorted_count = q_count[order]
    starts = np.flatnonzero(np.r_[True, sorted_count[1:] != sorted_count[:-1]])
    ends = np.r_[starts[1:], order.shape[0]]
    for a, b in zip(starts.tolist(), ends.tolist(), strict=True):
        c = int(sorted_count[a])
        idx = order[a:b]
        frames = q_frame[idx]
        if c <= _BROADCAST_MAX:
            step = max(1, _CHUNK // c)
            for s in range(0, idx.shape[0], step):
                part = idx[s : s + step]
                block = gather(frames[s : s + step], c)
                out[part] = _count_before(block, q_score[part], q_pos[part])
            continue
        new_frame = np.r_[True, frames[1:] != frames[:-1]]
        unique_frames = frames[new_frame]
        row = np.cumsum(new_frame) - 1
        step = max(1, _CHUNK // c)
        for fs in range(0, unique_frames.shape[0], step):
            fe = min(fs + step, unique_frames.shape[0])
            ql, qh = np.searchsorted(row, [fs, fe], side="left")
            part = idx[ql:qh]
            rows = row[ql:qh] - fs
            block = gather(unique_frames[fs:fe], c)
            sorted_block = np.sort(block, axis=1)
            score = q_score[part]
            le = _bound(sorted_block, rows, score, right=True)  # >= 1: the query itself
            rank = c - le
            # Another candidate has the same score iff the sorted value before it does.
            tied = sorted_block[rows, np.maximum(le - 2, 0)] == score
            tied &= le >= 2
            if tied.any():
                rank[tied] = _count_before(block[rows[tied]], score[tied], q_pos[part][tied])
            out[part] = rank
    return out


def _best_rank(
    prep: _Prepared,
    triplet: np.ndarray,
    score: np.ndarray,
    pos: np.ndarray,
    frame_count: np.ndarray,
    gather: Callable[[np.ndarray, int], np.ndarray],
    limit: int | None = None,
) -> np.ndarray:
    """(T,) rank of each GT triplet's best matching candidate (UNMATCHED if none).

    ``triplet``, ``score``, ``pos``: per matching candidate, its GT triplet,
    its ranking score and its generation position inside the frame.
    """
    num_triplets = prep.triplet_frame.shape[0]
    best = np.full(num_triplets, -np.inf)
    np.maximum.at(best, triplet, score)
    keep = score == best[triplet]
    best_pos = np.full(num_triplets, UNMATCHED, dtype=np.int64)
    np.minimum.at(best_pos, triplet[keep], pos[keep])
    hit = np.flatnonzero(best_pos != UNMATCHED)
    ranks = np.full(num_triplets, UNMATCHED, dtype=np.int64)
    r = _rank_queries(prep.triplet_frame[hit], best_pos[hit], best[hit], frame_count, gather)
    if limit is not None:
        r[r >= limit] = UNMATCHED
    ranks[hit] = r
    return ranks


def _entries(prep: _Prepared, mask: np.ndarray | None = None) -> tuple[np.ndarray, ...]:
    """(triplet, block, pair, predicate) of the join entries selected by ``mask``."""
    if mask is None:
        return prep.entry_triplet, prep.entry_block, prep.entry_pair, prep.entry_predicate
    sel = np.flatnonzero(mask)
    return (
        prep.entry_triplet[sel],
        prep.entry_block[sel],
        prep.entry_pair[sel],
        prep.entry_predicate[sel],
    )


def _pair_index(prep: _Prepared, frames: np.ndarray, n: int) -> np.ndarray:
    """(G, n) pair rows of frames that all have n pairs."""
    return prep.frame_pair_start[frames][:, None] + np.arange(n)[None, :]


def _rank_with(prep: _Prepared) -> np.ndarray:
    row_score = prep.pair_score[None, :] * prep.row_max  # (3, P)
    # A row's argmax is a predicate of its family, or 0 for an all-zero row.
    t, b, i, p = _entries(prep, prep.entry_own | (prep.entry_predicate == 0))
    keep = np.flatnonzero(prep.row_argmax[b, i] == p)
    t, b, i = t[keep], b[keep], i[keep]
    pos = b * prep.frame_pairs[prep.pair_frame[i]] + prep.pair_rank[i]

    def gather(frames: np.ndarray, c: int) -> np.ndarray:
        pairs = _pair_index(prep, frames, c // _ROWS_PER_PAIR)
        return row_score[:, pairs].transpose(1, 0, 2).reshape(frames.shape[0], c)

    frame_count = _ROWS_PER_PAIR * prep.frame_pairs
    return _best_rank(prep, t, row_score[b, i], pos, frame_count, gather)


def _rank_cells(prep: _Prepared, cells: np.ndarray) -> np.ndarray:
    """Ranks for a setting whose candidates are cells of a (P, 26) mask, each
    living in the row of its predicate's family (``semi``), generated in row
    order."""
    num_pairs = prep.values.shape[0]
    nf = prep.num_frames
    rows_per_pair = len(FAMILIES)
    # Candidates in (pair, predicate) order; a row is (pair, family).
    ci, cp = np.nonzero(cells)
    row_id = ci * rows_per_pair + PREDICATE_FAMILY[cp]  # ascending
    n = row_id.shape[0]
    run_start = np.r_[True, row_id[1:] != row_id[:-1]] if n else np.zeros(0, dtype=bool)
    first = np.maximum.accumulate(np.where(run_start, np.arange(n), 0)) if n else run_start
    within_row = np.arange(n) - first  # candidates before it in its row
    row_count = np.bincount(row_id, minlength=num_pairs * rows_per_pair)
    row_count = row_count.reshape(num_pairs, rows_per_pair).T  # (3, P)

    # Offset of each row inside its frame's list: earlier blocks, then earlier pairs.
    block_total = np.stack(
        [np.bincount(prep.pair_frame, weights=row_count[b], minlength=nf) for b in range(3)]
    ).astype(np.int64)  # (3, F)
    block_offset = np.cumsum(block_total, axis=0) - block_total
    first_pair = prep.frame_pair_start[prep.pair_frame]
    row_offset = np.zeros((rows_per_pair, num_pairs), dtype=np.int64)
    for b in range(rows_per_pair):
        excl = np.cumsum(row_count[b]) - row_count[b]
        row_offset[b] = block_offset[b][prep.pair_frame] + excl - excl[first_pair]
    frame_count = block_total.sum(axis=0)
    frame_start = np.zeros(nf + 1, dtype=np.int64)
    np.cumsum(frame_count, out=frame_start[1:])

    flat = np.empty(int(frame_start[-1]), dtype=np.float64)
    cb = PREDICATE_FAMILY[cp]
    flat[frame_start[prep.pair_frame[ci]] + row_offset[cb, ci] + within_row] = (
        prep.pair_score[ci] * prep.values[ci, cp]
    )

    within_cell = np.zeros(cells.shape, dtype=np.int32)
    within_cell[ci, cp] = within_row
    t, b, i, p = _entries(prep, prep.entry_own)
    keep = np.flatnonzero(cells[i, p])
    t, b, i, p = t[keep], b[keep], i[keep], p[keep]
    score = prep.pair_score[i] * prep.values[i, p]
    pos = row_offset[b, i] + within_cell[i, p]

    def gather(frames: np.ndarray, c: int) -> np.ndarray:
        return flat[frame_start[frames][:, None] + np.arange(c)[None, :]]

    return _best_rank(prep, t, score, pos, frame_count, gather)


def _rank_semi(prep: _Prepared) -> np.ndarray:
    cells = np.zeros(prep.values.shape, dtype=bool)
    cells[np.arange(cells.shape[0]), prep.row_argmax[0]] = True  # attention argmax
    for fam in FAMILIES:
        if fam.multi_label:
            cells[:, fam.slice] = prep.values[:, fam.slice] > SEMI_THRESHOLD
    return _rank_cells(prep, cells)


def _rank_topk(prep: _Prepared, k: int) -> np.ndarray:
    """Top-k: per pair the k highest of its 26 scores (ties: lower index first).

    Generation order is pair by pair (the pair's concatenated 26-vector is its
    row), increasing predicate index inside a pair, as TR²'s own evaluator
    builds them pair by pair.
    """
    values = prep.values
    k = min(k, NUM_PREDICATES)
    num_pairs = values.shape[0]
    if num_pairs:
        kth = np.sort(values, axis=1)[:, NUM_PREDICATES - k : NUM_PREDICATES - k + 1]  # (P, 1)
        above = values > kth
        equal = values == kth
        room = k - above.sum(axis=1, keepdims=True)
        kept = above | (equal & (np.cumsum(equal, axis=1, dtype=np.int8) <= room))
    else:
        kept = np.zeros(values.shape, dtype=bool)
    within = np.cumsum(kept, axis=1, dtype=np.int8) - 1  # index among the pair's kept ones
    kept_scores = prep.pair_score[:, None] * values[kept].reshape(num_pairs, k)  # (P, k)

    t, b, i, p = _entries(prep, prep.entry_own)  # a kept predicate lives in its family's row
    sel = np.flatnonzero(kept[i, p])
    t, i, p = t[sel], i[sel], p[sel]
    score = prep.pair_score[i] * values[i, p]
    pos = prep.pair_rank[i] * k + within[i, p]

    def gather(frames: np.ndarray, c: int) -> np.ndarray:
        pairs = _pair_index(prep, frames, c // k)
        return kept_scores[pairs].reshape(frames.shape[0], c)

    return _best_rank(prep, t, score, pos, k * prep.frame_pairs, gather)


def _rank_no(prep: _Prepared) -> np.ndarray:
    t, b, i, p = _entries(prep)
    value = np.where(prep.entry_own, prep.values[i, p], 0.0)
    score = prep.pair_score[i] * value
    n = prep.frame_pairs[prep.pair_frame[i]]
    pos = (b * n + prep.pair_rank[i]) * NUM_PREDICATES + p
    cells_per_pair = _ROWS_PER_PAIR * NUM_PREDICATES

    def gather(frames: np.ndarray, c: int) -> np.ndarray:
        n = c // cells_per_pair
        pairs = _pair_index(prep, frames, n)
        v = prep.values[pairs]  # (G, n, 26)
        s = prep.pair_score[pairs][..., None]
        grid = np.zeros((frames.shape[0], _ROWS_PER_PAIR, n, NUM_PREDICATES))
        for block, fam in enumerate(FAMILIES):
            grid[:, block, :, fam.slice] = s * v[..., fam.slice]
        return grid.reshape(frames.shape[0], c)

    return _best_rank(
        prep,
        t,
        score,
        pos,
        cells_per_pair * prep.frame_pairs,
        gather,
        limit=NO_CONSTRAINT_LIMIT,
    )


def _rank_setting(prep: _Prepared, setting: str) -> np.ndarray:
    if setting == "with":
        return _rank_with(prep)
    if setting == "semi":
        return _rank_semi(prep)
    if setting == "no":
        return _rank_no(prep)
    return _rank_topk(prep, int(setting[3:]))


# --------------------------------------------------------------------------
# Public API


def evaluate_detailed(
    gt: GroundTruth,
    preds: Predictions,
    *,
    task: str,
    settings: Sequence[str] = DEFAULT_SETTINGS,
    ks: Sequence[int] = DEFAULT_KS,
    topk: int = DEFAULT_TOPK,
    validate: bool = True,
    source: str = "predictions",
) -> EvaluationResult:
    """Match predictions to the ground truth in every setting (no file I/O).

    Args:
        gt: ground truth of the evaluated frames (the caller picks the split
            and the small-box filter that fit the task).
        preds: the predictions (``.npz`` contract).
        task: ``'predcls'`` (object scores taken as 1), ``'sgcls'`` or ``'sgdet'``.
        settings: constraint settings (:func:`parse_settings`).
        ks: the K values of R@K / mR@K.
        topk: k of the setting name ``'topk'``.
        validate: check ``preds`` against the contract first (skip only for
            predictions that :func:`load_predictions` already validated).
        source: name of the predictions in error messages.

    Raises:
        PredictionsError: invalid predictions, or a predicted frame that is not
            a frame of ``gt``.
        ConfigError: unknown task or setting, or K < 1.
    """
    if task not in TASKS:
        raise ConfigError(f"unknown task {task!r}; expected one of {', '.join(TASKS)}")
    names = parse_settings(settings, topk)
    ks_t = tuple(int(k) for k in ks)
    if not ks_t or min(ks_t) < 1:
        raise ConfigError(f"ks must be positive integers, got {list(ks)}")
    if validate:
        preds = validate_predictions(preds, source)
    prep = _prepare(gt, preds, task, source)
    ranks = {name: _rank_setting(prep, name) for name in names}
    return EvaluationResult(gt=gt, task=task, settings=names, ks=ks_t, ranks=ranks)


def evaluate(
    gt: GroundTruth,
    preds: Predictions,
    *,
    task: str,
    settings: Sequence[str] = DEFAULT_SETTINGS,
    ks: Sequence[int] = DEFAULT_KS,
    topk: int = DEFAULT_TOPK,
    breakdowns: bool = True,
    validate: bool = True,
    source: str = "predictions",
) -> dict:
    """Evaluate and return the metrics file's dict (see :meth:`EvaluationResult.metrics`).

    Example::

        {"with": {"R@10": 0.70, ..., "mR@100": 0.41}, "semi": {...}, "no": {...},
         "top6": {...}, "frames": 56923, "task": "predcls", "triplets": ...,
         "families": {...}, "time_variant": {...}}
    """
    result = evaluate_detailed(
        gt,
        preds,
        task=task,
        settings=settings,
        ks=ks,
        topk=topk,
        validate=validate,
        source=source,
    )
    return result.metrics(breakdowns=breakdowns)
