"""The validation / test run: every rank predicts its share of a split's videos, rank 0
gathers them and evaluates with the project's evaluator."""

from __future__ import annotations

import contextlib
import math
from collections.abc import Callable
from typing import Any

import torch

from tr2_core.errors import ConfigError
from tr2_core.evaluation.recall import evaluate
from tr2_core.train.dataset import gt_videos, shard_indices
from tr2_core.train.distributed import Dist, broadcast_float, gather_predictions
from tr2_core.train.predict import predict
from tr2_core.train.source import ClipSource
from tr2_core.types import GroundTruth


def metric_value(metrics: dict, key: str) -> float:
    """``"with/R@20"`` -> ``metrics["with"]["R@20"]``."""
    node: Any = metrics
    for part in key.split("/"):
        if not isinstance(node, dict) or part not in node:
            raise ConfigError(f"plateau_metric {key!r}: no such value in the evaluator's result")
        node = node[part]
    return float(node)


def gt_first_videos(gt: GroundTruth, num_videos: int) -> GroundTruth:
    """The ground truth of the first ``num_videos`` videos (a CSR prefix)."""
    return gt_videos(gt, range(min(num_videos, gt.num_videos)))


def validate(
    relation: torch.nn.Module,
    source: ClipSource,
    gt: GroundTruth,
    d: Dist,
    *,
    task: str,
    metric: str,
    max_clip_frames: int,
    autocast: Callable[[], contextlib.AbstractContextManager] = contextlib.nullcontext,
    progress: bool = True,
) -> tuple[dict | None, float]:
    """Predict ``source`` (each rank its share), evaluate on rank 0 against ``gt``.

    Returns:
        (the evaluator's result on rank 0, None elsewhere; the ``metric`` value, on every
        rank).
    """
    order = shard_indices(len(source), d.rank, d.world_size, shuffle=False, seed=0, pad=False)
    preds = predict(
        relation, source, order, task=task, device=d.device, max_clip_frames=max_clip_frames,
        autocast=autocast, progress=progress and d.master, desc="validate",
    )  # fmt: skip
    gathered = gather_predictions(preds, d)
    metrics, value = None, math.nan
    if d.master and gathered is not None:
        metrics = evaluate(gt, gathered, task=task, breakdowns=False)
        value = metric_value(metrics, metric)
    return metrics, broadcast_float(value, d)
