"""The outcome of one evaluation (:class:`EvaluationResult`: the rank of every
GT triplet per setting) and the metrics dict derived from it, with the
per-family and time-variant breakdowns.

:func:`tr2_core.evaluation.recall.evaluate_detailed` produces it; the
breakdown helpers (:mod:`tr2_core.evaluation.breakdown`), the report and the
plots read it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

from tr2_core.evaluation.changes import (
    CHANGED,
    FIRST_FRAME,
    UNCHANGED,
    RelationChanges,
    relation_changes,
)
from tr2_core.evaluation.metrics import (
    PREDICATE_FAMILY,
    recall_tables,
    summarise,
    summarise_selected,
)
from tr2_core.types import GroundTruth
from tr2_core.vocab import FAMILIES

__all__ = ["UNMATCHED", "EvaluationResult"]

UNMATCHED: int = int(np.iinfo(np.int64).max)
"""Rank of a GT triplet that no candidate matches."""


@dataclass(frozen=True)
class EvaluationResult:
    """Per-triplet outcome of one evaluation; all metrics derive from it.

    Attributes:
        gt: the ground truth evaluated against.
        task: ``'predcls'``, ``'sgcls'`` or ``'sgdet'``.
        settings: canonical setting names, e.g. ``('with', 'semi', 'no', 'top6')``.
        ks: the K of R@K / mR@K.
        ranks: setting -> (T,) int64, the 0-based rank inside its frame of the
            first candidate matching each GT triplet (:data:`UNMATCHED` if none;
            for ``no`` only the first 100 candidates count).
    """

    gt: GroundTruth
    task: str
    settings: tuple[str, ...]
    ks: tuple[int, ...]
    ranks: Mapping[str, np.ndarray]

    def matched(self, setting: str) -> np.ndarray:
        """(T, len(ks)) bool: triplet matched within its frame's top K."""
        return self.ranks[setting][:, None] < np.asarray(self.ks, dtype=np.int64)[None, :]

    @property
    def frame_has_triplets(self) -> np.ndarray:
        """(F,) bool: frames that count (those with at least one GT triplet)."""
        return np.bincount(self.gt.triplet_frame, minlength=self.gt.num_frames) > 0

    def frame_recall(self, setting: str, triplets: np.ndarray | None = None) -> np.ndarray:
        """(F, len(ks)) float64 per-frame R@K; NaN for frames without GT triplets.

        ``triplets``: optional (T,) bool selection of GT triplets (e.g. the
        "changed" ones): recall over the selected triplets only, NaN for frames
        without a selected one; its mean over frames is the selection's R@K in
        :meth:`metrics`' breakdowns.
        """
        gt = self.gt
        frame = gt.triplet_frame
        matched = self.matched(setting)
        if triplets is not None:
            frame, matched = frame[triplets], matched[triplets]
        gt_count = np.bincount(frame, minlength=gt.num_frames)
        out = np.full((gt.num_frames, len(self.ks)), np.nan)
        has = gt_count > 0
        for col in range(len(self.ks)):
            hits = np.bincount(frame, weights=matched[:, col], minlength=gt.num_frames)
            out[has, col] = hits[has] / gt_count[has]
        return out

    def metrics(self, *, breakdowns: bool = True, changes: RelationChanges | None = None) -> dict:
        """The metrics file's structure (fractions in [0, 1]).

        ``{setting: {'R@K': .., 'mR@K': ..}, ..., 'frames': N, 'task': ..,
        'triplets': T}`` plus, with ``breakdowns``, ``'families'`` and
        ``'time_variant'`` (see :mod:`tr2_core.evaluation.breakdown`).
        Values are ``None`` where undefined (no GT triplet). ``changes``:
        precomputed :func:`~tr2_core.evaluation.changes.relation_changes`.
        """
        gt = self.gt
        if breakdowns:
            full = _with_breakdowns(self, changes)
            out = {setting: full[setting] for setting in self.settings}
        else:
            full = {}
            out = {
                setting: summarise(
                    recall_tables(
                        self.ranks[setting],
                        gt.triplet_frame,
                        gt.triplet_predicate,
                        gt.num_frames,
                        self.ks,
                    ),
                    {"all": None},
                )["all"]
                for setting in self.settings
            }
        out["frames"] = int(self.frame_has_triplets.sum())
        out["task"] = self.task
        out["triplets"] = int(gt.triplet_frame.shape[0])
        if breakdowns:
            out["families"] = full["families"]
            out["time_variant"] = full["time_variant"]
        return out


def _with_breakdowns(result: EvaluationResult, changes: RelationChanges | None) -> dict:
    """Main metrics plus both breakdowns: ``{setting: {'R@K': .., 'mR@K': ..}, ...,
    'families': ..., 'time_variant': ...}`` (:mod:`tr2_core.evaluation.breakdown`)."""
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
