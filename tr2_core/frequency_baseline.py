"""Frequency baseline (M-FREQ style): predicate scores from training statistics.

For each object class ``c`` the training pairs (person, object of class ``c``)
give:

* attention: the distribution of the attention label over the pairs of ``c``
  that have one (sums to 1);
* spatial / contacting: for each predicate, the fraction of the pairs of ``c``
  labelled with it (independent frequencies in [0, 1]).

A class never seen in training gets the statistics of all pairs. Predictions
are PredCls predictions (GT boxes and labels, object scores 1), one pair per
(person, object) of the split, so the baseline goes through the evaluator like
any model: it is the floor that learned models must beat.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import numpy as np

from tr2_core.errors import ConfigError, WeightsError
from tr2_core.npz import read_npz
from tr2_core.outputs import atomic_write
from tr2_core.types import GroundTruth, Predictions
from tr2_core.vocab import ATTENTION, CONTACTING, NUM_OBJECT_CLASSES, SPATIAL

__all__ = [
    "PairLabels",
    "FrequencyTable",
    "fit_frequency",
    "predict_frequency",
    "save_frequency_table",
    "load_frequency_table",
]


class PairLabels(Protocol):
    """What the baseline needs from a split
    (:class:`~tr2_core.data.action_genome.ActionGenomeSplit` has it)."""

    gt: GroundTruth
    pair_subject: np.ndarray  # (P,) int64 row into gt.boxes (person)
    pair_object: np.ndarray  # (P,) int64 row into gt.boxes (object)
    pair_attention: np.ndarray  # (P,) int64 0..2, -1 none
    pair_spatial: np.ndarray  # (P, 6) bool
    pair_contacting: np.ndarray  # (P, 17) bool


@dataclass(frozen=True)
class FrequencyTable:
    """Per object class predicate statistics (row = AG object index, 0..36).

    Attributes:
        attention: (37, 3) float64 attention distribution per class.
        spatial: (37, 6) float64 frequency of each spatial predicate.
        contacting: (37, 17) float64 frequency of each contacting predicate.
        pairs: (37,) int64 training pairs per class (0: fallback row used).
    """

    attention: np.ndarray
    spatial: np.ndarray
    contacting: np.ndarray
    pairs: np.ndarray


def _rates(sums: np.ndarray, counts: np.ndarray) -> np.ndarray:
    """Per-class ``sums / counts`` (C, n); classes without data get the pooled rate."""
    pooled = sums.sum(axis=0) / max(int(counts.sum()), 1)
    out = np.where(counts[:, None] > 0, sums / np.maximum(counts, 1)[:, None], pooled[None, :])
    return out.astype(np.float64)


def fit_frequency(split: PairLabels) -> FrequencyTable:
    """Count predicate frequencies per object class over the split's pairs."""
    classes = np.asarray(split.gt.box_labels, dtype=np.int64)[split.pair_object]
    pairs = np.bincount(classes, minlength=NUM_OBJECT_CLASSES)

    att = np.asarray(split.pair_attention, dtype=np.int64)
    has_att = att >= 0
    att_counts = np.zeros((NUM_OBJECT_CLASSES, ATTENTION.size))
    np.add.at(att_counts, (classes[has_att], att[has_att]), 1.0)
    att_total = att_counts.sum(axis=1)
    attention = _rates(att_counts, att_total)
    if att_counts.sum() == 0:  # no attention label anywhere: uniform
        attention[:] = 1.0 / ATTENTION.size

    def multi_hot(labels: np.ndarray, size: int) -> np.ndarray:
        sums = np.zeros((NUM_OBJECT_CLASSES, size))
        np.add.at(sums, classes, np.asarray(labels, dtype=np.float64).reshape(-1, size))
        return _rates(sums, pairs)

    return FrequencyTable(
        attention=attention,
        spatial=multi_hot(split.pair_spatial, SPATIAL.size),
        contacting=multi_hot(split.pair_contacting, CONTACTING.size),
        pairs=pairs.astype(np.int64),
    )


def predict_frequency(
    table: FrequencyTable, split: PairLabels, task: str = "predcls"
) -> Predictions:
    """PredCls predictions for every frame and (person, object) pair of ``split``.

    Raises:
        ConfigError: a task other than ``'predcls'`` (the baseline has no detector
            and no object classifier).
    """
    if task != "predcls":
        raise ConfigError(
            f"the frequency baseline predicts PredCls only (GT boxes and labels), not {task!r}"
        )
    gt = split.gt
    classes = np.asarray(gt.box_labels, dtype=np.int64)[split.pair_object]
    return Predictions(
        frame_keys=np.asarray(gt.frame_keys, dtype=str),
        box_frame=np.asarray(gt.box_frame, dtype=np.int64),
        boxes=np.asarray(gt.boxes, dtype=np.float32),
        box_labels=np.asarray(gt.box_labels, dtype=np.int64),
        box_scores=np.ones(gt.boxes.shape[0], dtype=np.float32),
        pair_subject=np.asarray(split.pair_subject, dtype=np.int64),
        pair_object=np.asarray(split.pair_object, dtype=np.int64),
        attention=table.attention[classes].astype(np.float32),
        spatial=table.spatial[classes].astype(np.float32),
        contacting=table.contacting[classes].astype(np.float32),
    )


def save_frequency_table(path: str | os.PathLike[str], table: FrequencyTable) -> Path:
    """Write the table as ``.npz`` (atomic; no pickle)."""
    arrays = {
        "attention": table.attention,
        "spatial": table.spatial,
        "contacting": table.contacting,
        "pairs": table.pairs,
    }
    return atomic_write(path, lambda f: np.savez(f, **arrays))


def load_frequency_table(path: str | os.PathLike[str]) -> FrequencyTable:
    """Read a table written by :func:`save_frequency_table`.

    Raises:
        WeightsError: missing file, missing arrays or wrong shapes.
    """
    shapes = {
        "attention": (NUM_OBJECT_CLASSES, ATTENTION.size),
        "spatial": (NUM_OBJECT_CLASSES, SPATIAL.size),
        "contacting": (NUM_OBJECT_CLASSES, CONTACTING.size),
        "pairs": (NUM_OBJECT_CLASSES,),
    }
    if not Path(path).is_file():
        raise WeightsError(f"{path}: no such frequency table")
    stored = read_npz(path)
    arrays = {}
    for name, shape in shapes.items():
        if name not in stored or stored[name].shape != shape:
            raise WeightsError(f"{path}: a frequency table needs array '{name}' of shape {shape}")
        arrays[name] = stored[name]
    return FrequencyTable(**arrays)
