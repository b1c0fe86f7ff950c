"""Training curves of one or more runs, overlaid (one colour per run).

:func:`draw_training_curves` takes the per-epoch records of each run (the
lines of a ``tr2 train`` folder's ``metrics.jsonl``, read by
:func:`tr2_core.viz.run_plots.read_run_log`).
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tr2_core.errors import ConfigError
from tr2_core.evaluation.report import setting_label, task_label
from tr2_core.viz.figure import (
    DEFAULT_DPI,
    RUN_COLOURS,
    RUN_MARKERS,
    check_output_path,
    new_figure,
    save_figure,
)

__all__ = ["DEFAULT_VAL_METRICS", "TrainingLog", "draw_training_curves"]

DEFAULT_VAL_METRICS: tuple[str, ...] = ("with/R@20", "no/R@20", "with/mR@20")
"""Validation metrics drawn by default (``setting/KEY`` paths)."""


@dataclass(frozen=True)
class TrainingLog:
    """One run's training log.

    Attributes:
        name: legend name of the run.
        records: per-epoch records sorted by epoch, each a mapping with an
            integer ``epoch`` and optionally ``loss``, ``losses`` (term ->
            value), ``lr``, ``val`` (the evaluator's metrics dict), ``task``
            and ``random_init``.
    """

    name: str
    records: Sequence[Mapping[str, Any]]


def _metric_path(metrics: Any, path: str) -> float | None:
    node = metrics
    for part in path.split("/"):
        if not isinstance(node, Mapping) or part not in node:
            return None
        node = node[part]
    return None if node is None else float(node)


def _loss_terms(logs: Sequence[TrainingLog]) -> tuple[list[str], list[str]]:
    """(terms non-zero in some record, terms always zero), each sorted."""
    terms = sorted({t for log in logs for r in log.records for t in (r.get("losses") or {})})
    nonzero = [
        t for t in terms
        if any(abs(float((r.get("losses") or {}).get(t, 0.0))) > 0
               for log in logs for r in log.records)
    ]  # fmt: skip
    return nonzero, [t for t in terms if t not in nonzero]


def _check_val_metrics(logs: Sequence[TrainingLog], val_metrics: Sequence[str]) -> None:
    records = [r for log in logs for r in log.records]
    if not any(r.get("val") for r in records):
        return  # no validation at all: the panels say so
    for m in val_metrics:
        if not any(_metric_path(r.get("val"), m) is not None for r in records):
            raise ConfigError(
                f"validation metric {m!r} is in no record (expected 'setting/KEY' such as "
                "'with/R@20')"
            )


def _series(records: Sequence[Mapping[str, Any]], key: str) -> tuple[list[int], list[float]]:
    """Epochs and finite values of panel ``key`` (``val/`` metrics in percent)."""
    epochs, values = [], []
    for r in records:
        if key.startswith("val/"):
            v = _metric_path(r.get("val"), key[4:])
            v = None if v is None else 100.0 * v
        else:
            v = _metric_path(r, key)
        if v is not None and math.isfinite(v):
            epochs.append(r["epoch"])
            values.append(v)
    return epochs, values


def _draw_panel(
    ax: Any, key: str, title: str, logs: Sequence[TrainingLog], names: list[str]
) -> None:
    drawn = False
    for i, log in enumerate(logs):
        epochs, values = _series(log.records, key)
        if epochs:
            drawn = True
            # Earlier runs drawn wider, so identical curves stay visible.
            wide = max(len(logs) - 1 - i, 0)
            ax.plot(epochs, values, marker=RUN_MARKERS[i % len(RUN_MARKERS)],
                    markersize=4 + 1.5 * wide, linewidth=1.4 + 1.2 * wide, alpha=0.9,
                    color=RUN_COLOURS[i % len(RUN_COLOURS)], label=names[i])  # fmt: skip
    ax.set_title(title, fontsize=10)
    ax.set_xlabel("epoch")
    if key.startswith("val/"):
        ax.set_ylabel("%")
    elif key == "lr":
        ax.set_ylabel("lr")
        if drawn:
            ax.set_yscale("log")
    else:
        ax.set_ylabel("loss")
    ax.grid(True, alpha=0.3)
    ax.xaxis.get_major_locator().set_params(integer=True)
    if not drawn:
        ax.text(0.5, 0.5, "no value recorded", ha="center", va="center",
                transform=ax.transAxes, color="0.4")  # fmt: skip


def draw_training_curves(
    logs: Sequence[TrainingLog],
    out: str | os.PathLike[str],
    *,
    val_metrics: Sequence[str] = DEFAULT_VAL_METRICS,
    dpi: int = DEFAULT_DPI,
) -> Path:
    """Training curves of one or more runs, overlaid (one colour per run).

    Panels: the total loss, each loss term that is non-zero in some run
    (``losses`` of the records), each validation metric of ``val_metrics``
    (percent; epochs without validation are skipped) and the learning rate
    (log scale). A run trained from random CLIP weights gets ``[random init]``
    appended to its name.

    Args:
        logs: the runs' records.
        out: ``.png`` or ``.svg`` path.
        val_metrics: ``setting/KEY`` paths into the validation metrics, e.g.
            ``'with/R@20'``, ``'top6/mR@50'``.

    Raises:
        ConfigError: no run, a metric path found in no record, or a bad suffix.
    """
    out = check_output_path(out)
    if not logs:
        raise ConfigError("plot curves: give at least one run directory")
    names = [
        f"{log.name} [random init]" if any(r.get("random_init") for r in log.records) else log.name
        for log in logs
    ]
    nonzero, always_zero = _loss_terms(logs)
    _check_val_metrics(logs, val_metrics)

    panels: list[tuple[str, str]] = [("loss", "total loss")]
    panels += [(f"losses/{t}", f"{t} loss") for t in nonzero]
    panels += [(f"val/{m}", f"validation {setting_label(m.split('/')[0])} {m.split('/', 1)[-1]}")
               for m in val_metrics]  # fmt: skip
    panels.append(("lr", "learning rate"))
    ncols = min(4, math.ceil(math.sqrt(len(panels))))
    nrows = math.ceil(len(panels) / ncols)
    fig = new_figure(3.6 * ncols, 2.9 * nrows + 0.6)
    axes = fig.subplots(nrows, ncols, squeeze=False).ravel()
    for ax in axes[len(panels) :]:
        ax.set_visible(False)
    for ax, (key, title) in zip(axes, panels, strict=False):
        _draw_panel(ax, key, title, logs, names)

    handles, legend_labels = [], []
    for ax in axes[: len(panels)]:
        for h, lab in zip(*ax.get_legend_handles_labels(), strict=True):
            if lab not in legend_labels:
                handles.append(h)
                legend_labels.append(lab)
    title = "Training curves"
    tasks = sorted({str(r.get("task")) for log in logs for r in log.records if r.get("task")})
    if tasks:
        title += f" ({', '.join(task_label(t) for t in tasks)})"
    if always_zero:
        title += f"; loss terms always 0: {', '.join(always_zero)}"
    fig.suptitle(title, fontsize=12)
    fig.legend(handles, legend_labels, loc="outside lower center",
               ncols=min(len(handles), 4), frameon=False)  # fmt: skip
    return save_figure(fig, out, dpi)
