"""Summaries of per-triplet ranks: R@K (mean over frames) and mR@K, overall
or for selections of triplets (a family, the changed triplets...).

Shared by the fast evaluator (:mod:`tr2_core.evaluation.recall`) and its
breakdowns (:mod:`tr2_core.evaluation.breakdown`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from tr2_core.vocab import FAMILIES, NUM_PREDICATES

__all__ = [
    "PREDICATE_FAMILY",
    "metric_keys",
    "RecallTables",
    "recall_tables",
    "select",
    "summarise",
    "summarise_selected",
]

PREDICATE_FAMILY: np.ndarray = np.concatenate(
    [np.full(f.size, i, dtype=np.int64) for i, f in enumerate(FAMILIES)]
)
"""(26,) int64: index into :data:`~tr2_core.vocab.FAMILIES` of each predicate."""


def metric_keys(ks: Sequence[int]) -> list[str]:
    """``['R@10', ..., 'mR@10', ...]``: the metrics file's key order."""
    return [f"R@{k}" for k in ks] + [f"mR@{k}" for k in ks]


@dataclass(frozen=True)
class RecallTables:
    """Histograms of GT triplets by frame / predicate, group and match level.

    The *level* of a triplet is the number of distinct K values ``<= rank``:
    it is matched at the j-th smallest K iff ``level <= j``.

    Attributes:
        ks: the K values, as given.
        ks_sorted: the distinct K values, ascending (L - 1 of them).
        frame_hist: (F, G, L) int64 triplet counts per frame, group, level.
        pred_hist: (26, G, L) int64 triplet counts per predicate, group, level.
    """

    ks: tuple[int, ...]
    ks_sorted: tuple[int, ...]
    frame_hist: np.ndarray
    pred_hist: np.ndarray


def recall_tables(
    ranks: np.ndarray,
    triplet_frame: np.ndarray,
    triplet_predicate: np.ndarray,
    num_frames: int,
    ks: Sequence[int],
    group: np.ndarray | None = None,
    num_groups: int = 1,
) -> RecallTables:
    """Histogram triplets by frame / predicate, group and match level.

    Args:
        ranks: (T,) int64 rank of each triplet's first matching candidate in
            its frame (a huge value if unmatched); matched at K iff ``rank < K``.
        triplet_frame: (T,) int64 frame row of each triplet.
        triplet_predicate: (T,) int64 predicate of each triplet.
        num_frames: F, the number of ground-truth frames.
        ks: the K values.
        group: optional (T,) int64 group of each triplet in ``0..num_groups-1``;
            default: one group.
        num_groups: G.
    """
    ks_t = tuple(int(k) for k in ks)
    ks_sorted = tuple(sorted(set(ks_t)))
    ranks = np.asarray(ranks, dtype=np.int64)
    levels = len(ks_sorted) + 1
    level = np.zeros(ranks.shape[0], dtype=np.int64)
    for k in ks_sorted:
        level += ranks >= k
    group = np.zeros_like(level) if group is None else np.asarray(group, dtype=np.int64)

    def hist(index: np.ndarray, rows: int) -> np.ndarray:
        flat = (np.asarray(index, dtype=np.int64) * num_groups + group) * levels + level
        counts = np.bincount(flat, minlength=rows * num_groups * levels)
        return counts.reshape(rows, num_groups, levels)

    return RecallTables(
        ks=ks_t,
        ks_sorted=ks_sorted,
        frame_hist=hist(triplet_frame, num_frames),
        pred_hist=hist(triplet_predicate, NUM_PREDICATES),
    )


def _mean_ratio(hist: np.ndarray, cols: np.ndarray) -> np.ndarray:
    """(S, K) per selection: mean over rows holding selected triplets of (matched / triplets).

    ``hist``: (R, S, L) counts per row (frame or predicate), selection and level.
    NaN for a selection without triplets.
    """
    total = hist.sum(axis=2)  # (R, S)
    hits = np.cumsum(hist, axis=2)[:, :, cols]  # (R, S, K)
    ratio = hits / np.maximum(total, 1)[:, :, None]
    rows = (total > 0).sum(axis=0)  # (S,)
    with np.errstate(invalid="ignore", divide="ignore"):
        return ratio.sum(axis=0) / rows[:, None]


def select(
    tables: RecallTables, selections: Mapping[str, Sequence[int] | None]
) -> tuple[np.ndarray, np.ndarray]:
    """Sum the groups of each selection: (F, S, L) and (26, S, L) histograms."""

    def pick(hist: np.ndarray) -> np.ndarray:
        parts = [
            hist.sum(axis=1) if groups is None else hist[:, list(groups), :].sum(axis=1)
            for groups in selections.values()
        ]
        return np.stack(parts, axis=1)

    return pick(tables.frame_hist), pick(tables.pred_hist)


def summarise_selected(
    frame_hist: np.ndarray,
    pred_hist: np.ndarray,
    tables: RecallTables,
    names: Sequence[str],
) -> dict[str, dict[str, float | None]]:
    """R@K and mR@K per selection from (F, S, L) / (26, S, L) histograms."""
    cols = np.array([tables.ks_sorted.index(k) for k in tables.ks], dtype=np.int64)
    recall = _mean_ratio(frame_hist, cols)
    mean_recall = _mean_ratio(pred_hist, cols)
    out: dict[str, dict[str, float | None]] = {}
    for j, name in enumerate(names):
        empty = not np.isfinite(recall[j]).all()
        entry: dict[str, float | None] = {}
        for c, k in enumerate(tables.ks):
            entry[f"R@{k}"] = None if empty else float(recall[j, c])
        for c, k in enumerate(tables.ks):
            entry[f"mR@{k}"] = None if empty else float(mean_recall[j, c])
        out[name] = entry
    return out


def summarise(
    tables: RecallTables, selections: Mapping[str, Sequence[int] | None]
) -> dict[str, dict[str, float | None]]:
    """R@K and mR@K of selections of groups.

    Args:
        tables: from :func:`recall_tables`.
        selections: name -> the groups whose triplets it holds (``None``: all).

    Returns:
        name -> ``{'R@K': mean over frames holding >= 1 selected triplet of
        (matched / triplets), 'mR@K': mean over the predicates present of
        (matched / triplets)}`` in :func:`metric_keys` order; ``None`` values
        for a selection without triplets.
    """
    frame_hist, pred_hist = select(tables, selections)
    return summarise_selected(frame_hist, pred_hist, tables, list(selections))
