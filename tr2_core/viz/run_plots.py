"""The plots of runs (``tr2 plot curves|recall|fig5``) from their files: read run
folders, metrics and predictions files, evaluate predictions, then draw with the
drawing modules of :mod:`tr2_core.viz`.

The drawing modules take computed data only; this module is where files are read
and the evaluator runs. ``tr2 plot``, ``tr2 demo`` and ``bench/ablations.py`` call
the same functions.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from tr2_core.data.action_genome import load_split
from tr2_core.errors import ConfigError
from tr2_core.evaluation.breakdown import change_gain_curve, predicate_breakdown
from tr2_core.evaluation.changes import relation_changes
from tr2_core.evaluation.predictions import load_predictions, validate_predictions
from tr2_core.evaluation.recall import evaluate_detailed, parse_settings
from tr2_core.evaluation.report import is_per_frame_file, load_per_frame
from tr2_core.outputs import atomic_write_text
from tr2_core.types import GroundTruth, Predictions
from tr2_core.viz.change_gain import draw_change_gain
from tr2_core.viz.curves import DEFAULT_VAL_METRICS, TrainingLog, draw_training_curves
from tr2_core.viz.figure import DEFAULT_DPI, check_output_path, run_labels
from tr2_core.viz.recall_bars import RunMetrics, draw_recall

__all__ = [
    "read_run_log",
    "plot_training_curves",
    "load_metrics",
    "as_predictions",
    "load_split_gt",
    "evaluate_for_plots",
    "plot_recall",
    "fig5_curve",
    "plot_fig5",
]

PredictionsInput = Predictions | str | os.PathLike[str]
"""Predictions in memory, or the path of a predictions ``.npz``."""


# --------------------------------------------------------------------------
# Training curves


def read_run_log(run_dir: str | os.PathLike[str]) -> list[dict[str, Any]]:
    """The per-epoch records of ``RUN_DIR/metrics.jsonl`` (written by ``tr2 train``),
    sorted by epoch; a re-run epoch keeps its last record.

    Raises:
        ConfigError: no such folder, no ``metrics.jsonl``, a line that is not a
            JSON object with an ``epoch``, or no record at all.
    """
    run = Path(run_dir)
    if not run.is_dir():
        raise ConfigError(f"{run}: no such run directory")
    log = run / "metrics.jsonl"
    if not log.is_file():
        raise ConfigError(f"{run}: no metrics.jsonl (not a `tr2 train` run directory?)")
    by_epoch: dict[int, dict[str, Any]] = {}
    for number, line in enumerate(log.read_text().splitlines(), start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as e:
            raise ConfigError(f"{log}:{number}: not a JSON line ({e.msg})") from None
        if not isinstance(record, dict) or not isinstance(record.get("epoch"), int):
            raise ConfigError(f"{log}:{number}: a record needs an integer 'epoch'")
        by_epoch[record["epoch"]] = record
    if not by_epoch:
        raise ConfigError(f"{log}: no epoch recorded yet")
    return [by_epoch[e] for e in sorted(by_epoch)]


def _unique_run_names(paths: Sequence[Path]) -> list[str]:
    names = [p.resolve().name or str(p) for p in paths]
    if len(set(names)) == len(names):
        return names
    return [f"{p.resolve().parent.name}/{p.resolve().name}" for p in paths]


def plot_training_curves(
    run_dirs: Sequence[str | os.PathLike[str]],
    out: str | os.PathLike[str],
    *,
    labels: Sequence[str] | None = None,
    val_metrics: Sequence[str] = DEFAULT_VAL_METRICS,
    dpi: int = DEFAULT_DPI,
) -> Path:
    """Training curves of ``tr2 train`` run folders, overlaid
    (:func:`~tr2_core.viz.curves.draw_training_curves`).

    ``labels``: legend names (default: the folder names).

    Raises:
        ConfigError: a bad run folder (:func:`read_run_log`), a metric path
            found in no run, labels that do not match the runs, or a bad suffix.
    """
    out = check_output_path(out)
    if not run_dirs:
        raise ConfigError("plot curves: give at least one run directory")
    paths = [Path(p) for p in run_dirs]
    records = [read_run_log(p) for p in paths]
    names = run_labels(_unique_run_names(paths), labels, "run directories")
    logs = [TrainingLog(n, r) for n, r in zip(names, records, strict=True)]
    return draw_training_curves(logs, out, val_metrics=val_metrics, dpi=dpi)


# --------------------------------------------------------------------------
# Recall per family and per predicate


def load_metrics(path: str | os.PathLike[str]) -> dict[str, Any]:
    """A metrics JSON file of ``tr2 eval --json``.

    Raises:
        ConfigError: missing or unreadable file, or not a metrics object.
    """
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"{path}: no such metrics file")
    try:
        metrics = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise ConfigError(f"{path}: not a JSON metrics file ({e})") from None
    if not isinstance(metrics, dict) or not any(
        isinstance(v, dict) and any(str(k).startswith("R@") for k in v) for v in metrics.values()
    ):
        raise ConfigError(f"{path}: no R@K metrics in it (expected `tr2 eval --json` output)")
    return metrics


def as_predictions(predictions: PredictionsInput) -> tuple[Predictions, str]:
    """Validated predictions and their name in messages (the path, or
    ``'predictions'``).

    Raises:
        PredictionsError: a missing, unreadable or invalid predictions file.
    """
    if isinstance(predictions, Predictions):
        return validate_predictions(predictions), "predictions"
    return load_predictions(predictions), str(predictions)


def load_split_gt(
    data_root: str | os.PathLike[str], split: str, filter_small_boxes: bool = False
) -> GroundTruth:
    """The ground truth of ``split`` of ``AG_ROOT`` (annotations only).

    Raises:
        DatasetError: missing or malformed annotations.
    """
    return load_split(
        data_root, split, filter_small_boxes=filter_small_boxes, show_progress=False
    ).gt


def evaluate_for_plots(
    gt: GroundTruth,
    predictions: PredictionsInput,
    *,
    task: str = "predcls",
    settings: Sequence[str] = ("with", "semi", "no", "top6"),
    ks: Sequence[int] = (10, 20, 50, 100),
) -> dict[str, Any]:
    """Evaluate predictions and return the metrics dict of ``tr2 eval --json``
    plus ``'predicates'``
    (:func:`~tr2_core.evaluation.breakdown.predicate_breakdown`)."""
    preds, source = as_predictions(predictions)
    result = evaluate_detailed(
        gt, preds, task=task, settings=settings, ks=ks, validate=False, source=source
    )
    metrics = result.metrics()
    metrics["predicates"] = predicate_breakdown(result)
    return metrics


def plot_recall(
    metrics: Sequence[Mapping[str, Any] | PredictionsInput],
    out: str | os.PathLike[str],
    *,
    labels: Sequence[str] | None = None,
    setting: str = "with",
    k: int = 20,
    data_root: str | os.PathLike[str] | None = None,
    gt: GroundTruth | None = None,
    task: str = "predcls",
    split: str = "test",
    filter_small_boxes: bool = False,
    title: str | None = None,
    dpi: int = DEFAULT_DPI,
) -> Path:
    """Recall per predicate family and per predicate, several runs side by side
    (:func:`~tr2_core.viz.recall_bars.draw_recall`).

    Args:
        metrics: per run a metrics dict, a ``tr2 eval --json`` file, or
            predictions (:class:`Predictions` or ``.npz``, evaluated here on
            ``gt`` or the ``split`` of ``data_root`` with ``task``; only these
            give the per-predicate panel).
        out: ``.png`` or ``.svg`` path.
        labels: run names (default: the file stems, or ``run 1``...).
        setting: ``'with'``, ``'semi'``, ``'no'`` or ``'top<k>'``.
        k: the K of R@K.

    Raises:
        ConfigError: bad file, predictions without ground truth, or a run
            without ``setting`` / ``R@k``.
        PredictionsError, DatasetError: bad predictions or annotations.
    """
    out = check_output_path(out)
    if not metrics:
        raise ConfigError("plot recall: give at least one metrics file")
    runs: list[Mapping[str, Any]] = []
    default_names = []
    for i, m in enumerate(metrics):
        is_predictions = isinstance(m, Predictions) or (
            not isinstance(m, Mapping) and Path(m).suffix.lower() == ".npz"
        )
        if is_predictions:
            if gt is None:
                if data_root is None:
                    raise ConfigError(f"{m}: predictions need the ground truth (--data AG_ROOT)")
                gt = load_split_gt(data_root, split, filter_small_boxes)
            runs.append(evaluate_for_plots(gt, m, task=task))  # type: ignore[arg-type]
        elif isinstance(m, Mapping):
            runs.append(dict(m))
        else:
            runs.append(load_metrics(m))
        default_names.append(
            f"run {i + 1}" if isinstance(m, (Mapping, Predictions)) else Path(m).stem
        )
    names = run_labels(default_names, labels, "runs")
    named = [RunMetrics(n, r) for n, r in zip(names, runs, strict=True)]
    return draw_recall(named, out, setting=setting, k=k, title=title, dpi=dpi)


# --------------------------------------------------------------------------
# The paper's Fig. 5


def _per_frame_recall(
    source: PredictionsInput,
    gt: GroundTruth | None,
    *,
    task: str,
    setting: str,
    k: int,
    what: str,
) -> tuple[np.ndarray, np.ndarray | None]:
    """(F,) R@k per GT frame, and the frame keys when read from a per-frame file."""
    if not isinstance(source, Predictions) and is_per_frame_file(source):
        run = load_per_frame(source)
        settings = [str(s) for s in run["settings"].tolist()]
        ks = [int(v) for v in run["ks"].tolist()]
        if setting not in settings or k not in ks:
            raise ConfigError(
                f"{source}: per-frame file has settings {settings} and ks {ks}, not {setting}/R@{k}"
            )
        return run["recall"][settings.index(setting), :, ks.index(k)], run["frame_keys"]
    if gt is None:
        raise ConfigError(f"{what} {source}: a predictions file needs --data AG_ROOT")
    preds, name = as_predictions(source)
    result = evaluate_detailed(
        gt, preds, task=task, settings=[setting], ks=[k], validate=False, source=name
    )
    return result.frame_recall(result.settings[0])[:, 0], None


def _change_degrees(
    gt: GroundTruth | None,
    run_a: PredictionsInput,
    run_b: PredictionsInput,
    keys_a: np.ndarray | None,
    keys_b: np.ndarray | None,
) -> tuple[np.ndarray, np.ndarray]:
    """(F,) video row of each frame and (V,) change degree of each video: from
    the ground truth, or from the per-frame files when there is none."""
    if gt is not None:
        gt_keys = np.asarray(gt.frame_keys)
        for keys, name in ((keys_a, run_a), (keys_b, run_b)):
            if keys is not None and not np.array_equal(np.asarray(keys), gt_keys):
                raise ConfigError(
                    f"{name}: per-frame file is not on the frames of the ground truth "
                    f"({len(keys)} vs {len(gt_keys)} frames; other split or small-box filter?)"
                )
        return np.asarray(gt.frame_video), relation_changes(gt).video_change
    if keys_a is None or keys_b is None or not np.array_equal(keys_a, keys_b):
        raise ConfigError(f"{run_a} and {run_b} are not on the same frames")
    first = load_per_frame(run_a)  # type: ignore[arg-type]  # a per-frame file here
    return first["frame_video"], first["video_change"]


def fig5_curve(
    run_a: PredictionsInput,
    run_b: PredictionsInput,
    *,
    data_root: str | os.PathLike[str] | None = None,
    gt: GroundTruth | None = None,
    task: str = "predcls",
    setting: str = "with",
    k: int = 20,
    bins: int = 10,
    split: str = "test",
    filter_small_boxes: bool = False,
    merge_zero_change: bool = True,
) -> dict[str, np.ndarray]:
    """Fig. 5 data: gain of run A over run B in R@k vs. the proportion of videos
    sorted by change degree (ascending: the most-changing videos last).

    Each run is a predictions ``.npz`` / :class:`Predictions` (evaluated here on
    ``gt`` or the ``split`` of ``data_root``) or a ``tr2 eval --per-frame``
    file. The ground truth (for the change degrees) is needed unless both are
    per-frame files.

    Returns:
        :func:`~tr2_core.evaluation.breakdown.change_gain_curve`'s arrays
        (fractions; ``gain = R_A - R_B``).

    Raises:
        ConfigError / DatasetError / PredictionsError: bad inputs, or runs on
            different frames.
    """
    setting = parse_settings([setting])[0]
    if k < 1 or bins < 1:
        raise ConfigError(f"need k >= 1 and bins >= 1, got k={k}, bins={bins}")
    if gt is None and data_root is not None:
        gt = load_split_gt(data_root, split, filter_small_boxes)
    rec_a, keys_a = _per_frame_recall(run_a, gt, task=task, setting=setting, k=k, what="--a")
    rec_b, keys_b = _per_frame_recall(run_b, gt, task=task, setting=setting, k=k, what="--b")
    frame_video, video_change = _change_degrees(gt, run_a, run_b, keys_a, keys_b)
    if rec_a.shape != rec_b.shape:
        raise ConfigError("the two runs are not on the same frames")
    return change_gain_curve(
        rec_b, rec_a, frame_video, video_change, bins=bins, merge_zero_change=merge_zero_change
    )


def plot_fig5(
    run_a: PredictionsInput,
    run_b: PredictionsInput,
    out: str | os.PathLike[str],
    *,
    data_root: str | os.PathLike[str] | None = None,
    label_a: str = "A",
    label_b: str = "B",
    task: str = "predcls",
    setting: str = "with",
    k: int = 20,
    bins: int = 10,
    split: str = "test",
    filter_small_boxes: bool = False,
    curve_json: str | os.PathLike[str] | None = None,
    dpi: int = DEFAULT_DPI,
) -> Path:
    """The paper's Fig. 5 for any two runs (:func:`fig5_curve` +
    :func:`~tr2_core.viz.change_gain.draw_change_gain`).

    ``curve_json``: also write the curve's arrays (fractions) as JSON.
    """
    out = check_output_path(out)
    curve = fig5_curve(
        run_a, run_b, data_root=data_root, task=task, setting=setting, k=k, bins=bins,
        split=split, filter_small_boxes=filter_small_boxes,
    )  # fmt: skip
    if curve_json is not None:
        data: dict[str, Any] = {
            name: [None if not math.isfinite(v) else v for v in np.asarray(a, float).tolist()]
            for name, a in curve.items()
        }
        data.update(label_a=label_a, label_b=label_b, k=k, setting=setting, task=task)
        atomic_write_text(curve_json, json.dumps(data, indent=1) + "\n")
    return draw_change_gain(
        curve, out, label_a=label_a, label_b=label_b, k=k, setting=setting, task=task, dpi=dpi
    )
