"""Helpers shared by the scripts in bench/ (imported as ``_common``: Python puts a
script's own folder on its path; pytest gets ``bench`` from ``pythonpath`` in
pyproject.toml)."""

from __future__ import annotations

import dataclasses

import numpy as np
import torch
from torchvision.ops import box_iou

from tr2_core.frequency_baseline import FrequencyTable
from tr2_core.types import Predictions
from tr2_core.vocab import PERSON


def parse_engine_options(items: list[str]) -> dict[str, object]:
    """``["tf32=true", "compile=cuda-graphs"]`` -> EngineOptions changes (typed by the
    field's default)."""
    from tr2_core.stream.engine_options import EngineOptions

    defaults = EngineOptions()
    changes: dict[str, object] = {}
    for item in items:
        name, _, value = item.partition("=")
        kind = type(getattr(defaults, name))
        changes[name] = value.lower() in ("1", "true", "yes", "on") if kind is bool else kind(value)
    return changes


def frequency_on_detections(preds: Predictions, table: FrequencyTable) -> Predictions:
    """``preds`` with every pair's predicate scores replaced by the frequencies of its
    object's label (``table``: :func:`~tr2_core.frequency_baseline.fit_frequency`)."""
    classes = preds.box_labels[preds.pair_object]
    return dataclasses.replace(
        preds,
        attention=table.attention[classes].astype(np.float32),
        spatial=table.spatial[classes].astype(np.float32),
        contacting=table.contacting[classes].astype(np.float32),
    )


def person_found(preds: Predictions, gt, iou_threshold: float = 0.5) -> float:
    """Share of ``gt``'s frames (a split's ``gt``) where a ``person`` box of ``preds``
    has IoU >= ``iou_threshold`` with the GT person box."""
    row_of = {str(k): i for i, k in enumerate(preds.frame_keys)}
    found = 0
    for f, key in enumerate(gt.frame_keys):
        b0, b1 = int(gt.box_start[f]), int(gt.box_start[f + 1])
        people = gt.boxes[b0:b1][gt.box_labels[b0:b1] == PERSON].astype(np.float32)
        mine = (preds.box_frame == row_of[str(key)]) & (preds.box_labels == PERSON)
        if len(people) and mine.any():
            iou = box_iou(torch.from_numpy(people), torch.from_numpy(preds.boxes[mine]))
            found += bool((iou >= iou_threshold).any())
    return found / max(len(gt.frame_keys), 1)


def scene(height: int, width: int, entities: int, seed: int = 0):
    """A random frame (H, W, 3) uint8 and ``entities`` boxes (N, 4) float32 (person first)
    with their labels (N,) int64."""
    rng = np.random.default_rng(seed)
    image = rng.integers(0, 256, (height, width, 3), dtype=np.uint8)
    xy = rng.uniform(0, [width * 0.6, height * 0.6], (entities, 2))
    wh = rng.uniform(0.1, 0.4, (entities, 2)) * [width, height]
    boxes = np.concatenate([xy, xy + wh], axis=1).astype(np.float32)
    labels = np.concatenate([[PERSON], rng.integers(2, 37, entities - 1)]).astype(np.int64)
    return image, boxes, labels
