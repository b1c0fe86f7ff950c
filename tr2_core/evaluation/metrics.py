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

__all__ = ["PREDICATE_FAMILY", "metric_keys", "RecallTables", "recall_tables", "summarise"]

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


def _mean_ratio(hist: np.ndarray, groups: Sequence[int] | None, cols: np.ndarray) -> np.ndarray:
    """(K,) mean over rows holding selected triplets of (matched / triplets)."""
    counts = hist.sum(axis=1) if groups is None else hist[:, list(groups), :].sum(axis=1)
    total = counts.sum(axis=1)  # (R,)
    rows = np.flatnonzero(total)
    if rows.shape[0] == 0:
        return np.full(cols.shape[0], np.nan)
    hits = np.cumsum(counts[rows], axis=1)[:, cols]  # (R', K)
    return (hits / total[rows][:, None]).mean(axis=0)


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
    cols = np.array([tables.ks_sorted.index(k) for k in tables.ks], dtype=np.int64)
    out: dict[str, dict[str, float | None]] = {}
    for name, groups in selections.items():
        recall = _mean_ratio(tables.frame_hist, groups, cols)
        mean_recall = _mean_ratio(tables.pred_hist, groups, cols)
        empty = not np.isfinite(recall).all()
        entry: dict[str, float | None] = {}
        for c, k in enumerate(tables.ks):
            entry[f"R@{k}"] = None if empty else float(recall[c])
        for c, k in enumerate(tables.ks):
            entry[f"mR@{k}"] = None if empty else float(mean_recall[c])
        out[name] = entry
    return out
