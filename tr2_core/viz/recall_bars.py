"""R@K / mR@K per predicate family and recall per predicate (the terms whose
mean is mR@K) of one or more runs side by side.

:func:`draw_recall` takes each run's metrics dict (the evaluator's, as in
``tr2 eval --json``), optionally with ``'predicates'``
(:func:`tr2_core.evaluation.breakdown.predicate_breakdown`); loading files and
evaluating predictions is the job of (:mod:`tr2_core.viz.run_plots`).
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from tr2_core.errors import ConfigError
from tr2_core.evaluation.report import setting_label, task_label
from tr2_core.viz.figure import (
    DEFAULT_DPI,
    FAMILY_COLOURS,
    RUN_COLOURS,
    check_output_path,
    new_figure,
    percent,
    save_figure,
)
from tr2_core.vocab import FAMILIES, NUM_PREDICATES, PREDICATES, readable

__all__ = ["RunMetrics", "draw_recall"]


@dataclass(frozen=True)
class RunMetrics:
    """One run's metrics.

    Attributes:
        name: legend name of the run.
        metrics: ``{setting: {'R@K': .., 'mR@K': ..}, 'families': .., 'task': ..,
            'triplets': ..}`` (fractions), plus ``'predicates'`` for the
            per-predicate panel.
    """

    name: str
    metrics: Mapping[str, Any]


def _check_runs(runs: Sequence[RunMetrics], setting: str, key_r: str) -> None:
    for run in runs:
        entry = run.metrics.get(setting)
        if not isinstance(entry, Mapping) or key_r not in entry:
            have = [s for s, v in run.metrics.items() if isinstance(v, Mapping) and key_r in v]
            raise ConfigError(
                f"{run.name}: no {setting}/{key_r} in the metrics (settings with {key_r}: "
                f"{', '.join(have) or 'none'})"
            )


def _bar_label(ax: Any, bars: Any, values: Sequence[float], fontsize: float) -> None:
    ax.bar_label(
        bars,
        labels=["" if not math.isfinite(v) else f"{v:.0f}" for v in values],
        fontsize=fontsize,
        padding=1,
    )


def _draw_families(ax: Any, runs: Sequence[RunMetrics], setting: str, k: int) -> None:
    """R@K (solid) and mR@K (hatched) overall and per family, runs side by side."""
    key_r, key_m = f"R@{k}", f"mR@{k}"
    groups = ["all"] + [f.name for f in FAMILIES]
    x = np.arange(len(groups), dtype=np.float64)
    n = len(runs)
    width = 0.8 / (2 * n)
    small = 7 if n <= 3 else 6
    for i, run in enumerate(runs):
        colour = RUN_COLOURS[i % len(RUN_COLOURS)]
        fams = run.metrics.get("families") or {}
        r_vals, m_vals = [], []
        for g in groups:
            entry = run.metrics.get(setting) if g == "all" else (fams.get(g) or {}).get(setting)
            entry = entry or {}
            r_vals.append(percent(entry.get(key_r)))
            m_vals.append(percent(entry.get(key_m)))
        offset = (2 * i - n) * width + width / 2
        b1 = ax.bar(x + offset, r_vals, width, color=colour, label=f"{run.name} {key_r}")
        b2 = ax.bar(x + offset + width, m_vals, width, color=colour, alpha=0.45,
                    hatch="//", edgecolor=colour, label=f"{run.name} {key_m}")  # fmt: skip
        _bar_label(ax, b1, r_vals, small)
        _bar_label(ax, b2, m_vals, small)
    first = runs[0].metrics
    first_families = first.get("families") or {}
    counts = []
    for g in groups:
        t = first.get("triplets") if g == "all" else (first_families.get(g) or {}).get("triplets")
        counts.append("" if t is None else f"\n{int(t):,} GT triplets")
    ax.set_xticks(x, [f"{g}{c}" for g, c in zip(groups, counts, strict=True)])
    for tick, g in zip(ax.get_xticklabels(), groups, strict=True):
        tick.set_color(FAMILY_COLOURS.get(g, "black"))
    ax.set_ylim(0, 109)
    ax.set_ylabel("recall (%)")
    ax.set_title(f"{key_r} (solid) and {key_m} (hatched) per predicate family", fontsize=10)
    ax.grid(True, axis="y", alpha=0.3)
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.0, 1.0), frameon=False)


def _family_bands(ax: Any) -> None:
    for f_index, fam in enumerate(FAMILIES):
        ax.axvspan(fam.start - 0.5, fam.stop - 0.5, color=FAMILY_COLOURS[fam.name],
                   alpha=0.08 if f_index % 2 == 0 else 0.14, linewidth=0)  # fmt: skip
        ax.text((fam.start + fam.stop - 1) / 2, 1.01, fam.name, ha="center", va="bottom",
                transform=ax.get_xaxis_transform(), color=FAMILY_COLOURS[fam.name],
                fontsize=9, fontweight="bold")  # fmt: skip


def _draw_predicates(
    ax: Any, runs: Sequence[RunMetrics], with_predicates: list[int], setting: str, k: int
) -> None:
    """Recall of each predicate (grouped by family) of the runs that carry
    ``'predicates'``, each run's mR@K dashed; predicates absent from the ground
    truth are marked ``n/a``."""
    key_r, key_m = f"R@{k}", f"mR@{k}"
    xp = np.arange(NUM_PREDICATES, dtype=np.float64)
    m = len(with_predicates)
    pw = 0.8 / m
    _family_bands(ax)
    absent = np.ones(NUM_PREDICATES, dtype=bool)
    for j, i in enumerate(with_predicates):
        run = runs[i]
        colour = RUN_COLOURS[i % len(RUN_COLOURS)]
        preds = run.metrics["predicates"]
        vals = []
        for p, pname in enumerate(PREDICATES):
            entry = preds.get(pname) or {}
            if entry.get("triplets"):
                absent[p] = False
            vals.append(percent((entry.get(setting) or {}).get(key_r)))
        mean_recall = percent((run.metrics.get(setting) or {}).get(key_m))
        offset = (j - (m - 1) / 2) * pw
        ax.bar(xp + offset, vals, pw, color=colour,
               label=f"{run.name} ({key_m} = {mean_recall:.1f})")  # fmt: skip
        if math.isfinite(mean_recall):
            ax.axhline(mean_recall, color=colour, linestyle="--", linewidth=1.0)
    for p in np.flatnonzero(absent):
        ax.text(p, 2, "n/a", ha="center", va="bottom", fontsize=7, color="0.45", rotation=90)
    ax.set_xticks(xp, [readable(p) for p in PREDICATES], rotation=55, ha="right",
                  rotation_mode="anchor", fontsize=8)  # fmt: skip
    for tick, p in zip(ax.get_xticklabels(), range(NUM_PREDICATES), strict=True):
        fam = next(f for f in FAMILIES if f.start <= p < f.stop)
        tick.set_color(FAMILY_COLOURS[fam.name] if not absent[p] else "0.55")
    ax.set_xlim(-0.6, NUM_PREDICATES - 0.4)
    ax.set_ylim(0, 105)
    ax.set_ylabel(f"recall of the predicate at K = {k} (%)")
    ax.set_title(
        f"Per predicate (mR view): matched / GT triplets of each predicate; dashed: {key_m}",
        fontsize=10,
        pad=16,
    )
    ax.grid(True, axis="y", alpha=0.3)
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.0, 1.0), frameon=False)
    missing = [run.name for i, run in enumerate(runs) if i not in with_predicates]
    if missing:
        ax.text(
            0.0, -0.42, f"no per-predicate recall in: {', '.join(missing)} (pass a "
            "predictions .npz with --data instead of its metrics JSON)",
            transform=ax.transAxes, fontsize=8, color="0.35",
        )  # fmt: skip


def draw_recall(
    runs: Sequence[RunMetrics],
    out: str | os.PathLike[str],
    *,
    setting: str = "with",
    k: int = 20,
    title: str | None = None,
    dpi: int = DEFAULT_DPI,
) -> Path:
    """Recall per predicate family and per predicate, several runs side by side.

    Top panel: R@K (solid) and mR@K (hatched) overall and per family. Bottom
    panel (when a run carries ``'predicates'``): recall of each predicate,
    grouped by family, with each run's mR@K as a dashed line; predicates
    absent from the ground truth are marked ``n/a``.

    Args:
        runs: the runs' metrics.
        out: ``.png`` or ``.svg`` path.
        setting: ``'with'``, ``'semi'``, ``'no'`` or ``'top<k>'``.
        k: the K of R@K.

    Raises:
        ConfigError: no run, a run without ``setting`` / ``R@k``, or a bad suffix.
    """
    out = check_output_path(out)
    if not runs:
        raise ConfigError("plot recall: give at least one metrics file")
    _check_runs(runs, setting, f"R@{k}")
    with_predicates = [
        i for i, r in enumerate(runs) if isinstance(r.metrics.get("predicates"), Mapping)
    ]
    two_rows = bool(with_predicates)
    fig = new_figure(max(9.0, 5.0 + 0.9 * len(runs)), 4.2 + (5.0 if two_rows else 0.0))
    if two_rows:
        ax_fam, ax_pred = fig.subplots(2, 1, height_ratios=(1.0, 1.25))
    else:
        ax_fam, ax_pred = fig.subplots(1, 1), None
    _draw_families(ax_fam, runs, setting, k)
    if ax_pred is not None:
        _draw_predicates(ax_pred, runs, with_predicates, setting, k)
    task = task_label(runs[0].metrics.get("task"))
    where = f"{task}, {setting_label(setting)}" if task else setting_label(setting)
    fig.suptitle(title or f"Recall per family and predicate ({where}, K = {k})", fontsize=12)
    return save_figure(fig, out, dpi)
