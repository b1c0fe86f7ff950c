"""The TR² paper's Fig. 5 for any two runs: gain of run A over run B in R@K as
a function of the proportion of videos sorted by relation-change degree.

:func:`draw_change_gain` draws the arrays of
:func:`tr2_core.evaluation.breakdown.change_gain_curve`; evaluating the runs is
the job of (:func:`tr2_core.viz.run_plots.fig5_curve`).
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping
from pathlib import Path

import numpy as np

from tr2_core.evaluation.report import setting_label, task_label
from tr2_core.viz.figure import DEFAULT_DPI, check_output_path, new_figure, save_figure

__all__ = ["draw_change_gain"]


def draw_change_gain(
    curve: Mapping[str, np.ndarray],
    out: str | os.PathLike[str],
    *,
    label_a: str = "A",
    label_b: str = "B",
    k: int = 20,
    setting: str = "with",
    task: str = "predcls",
    dpi: int = DEFAULT_DPI,
) -> Path:
    """Draw a change-gain curve in the paper's Fig. 5 layout: x = proportion of videos
    sorted by change degree (ascending), bars = R@K gain of the videos of each
    group (percentage points; the leading change-0 groups merged into one
    bar), line = gain over all videos up to that proportion; the top axis gives
    each group's mean change degree."""
    out = check_output_path(out)
    proportion = 100.0 * np.asarray(curve["proportion"], dtype=np.float64)
    gain = 100.0 * np.asarray(curve["gain"], dtype=np.float64)
    cumulative = 100.0 * np.asarray(curve["gain_cumulative"], dtype=np.float64)
    degree = np.asarray(curve["change_degree"], dtype=np.float64)
    videos = np.asarray(curve["videos"])
    frames = np.asarray(curve["frames"])
    left = np.r_[0.0, proportion[:-1]]
    centre = (left + proportion) / 2
    widths = proportion - left

    fig = new_figure(8.5, 5.0)
    ax = fig.subplots()
    colours = ["#2a9d8f" if (math.isfinite(g) and g >= 0) else "#e76f51" for g in gain]
    bars = ax.bar(centre, np.nan_to_num(gain), widths * 0.92, color=colours, edgecolor="0.25",
                  linewidth=0.6, label="gain on the group's videos")  # fmt: skip
    finite = np.concatenate([gain[np.isfinite(gain)], cumulative[np.isfinite(cumulative)], [0.0]])
    span = max(float(finite.max() - finite.min()), 1.0)
    # Values inside tall bars (clear of the cumulative line), above short ones.
    tall = np.isfinite(gain) & (np.abs(gain) > 0.15 * span)
    text = [f"{g:+.1f}" if math.isfinite(g) else "no frames" for g in gain]
    ax.bar_label(bars, labels=[t if big else "" for t, big in zip(text, tall, strict=True)],
                 label_type="center", fontsize=8, color="white", fontweight="bold")  # fmt: skip
    ax.bar_label(bars, labels=[t if not big else "" for t, big in zip(text, tall, strict=True)],
                 fontsize=8, padding=2)  # fmt: skip
    ax.plot(proportion, cumulative, color="0.15", marker="o", markersize=4, linewidth=1.4,
            clip_on=False, label="gain on all videos up to the proportion")  # fmt: skip
    ax.axhline(0.0, color="0.3", linewidth=0.8)
    ax.set_xlim(0, 100)
    edges = np.r_[0.0, proportion]
    ax.set_xticks(edges, [f"{p:.0f}%" for p in edges], fontsize=8)
    ax.set_xlabel("proportion of videos, sorted by relation-change degree (most-changing last)")
    ax.set_ylabel(f"gain in R@{k} (percentage points)")
    ax.set_ylim(float(finite.min()) - 0.18 * span, float(finite.max()) + 0.18 * span)
    ax.grid(True, axis="y", alpha=0.3)
    top = ax.secondary_xaxis("top")
    merged = videos.shape[0] > 1 and degree[0] == 0 and widths[0] > widths[-1] + 1e-9
    top.set_xticks(
        centre,
        [f"{d:.2f}" + (" (merged)" if merged and i == 0 else "") for i, d in enumerate(degree)],
        fontsize=7,
    )
    top.set_xlabel("mean change degree of the group's videos", fontsize=8)
    handles, names = ax.get_legend_handles_labels()
    if cumulative.shape[0]:
        from matplotlib.patches import Patch

        handles.append(Patch(visible=False))
        names.append(
            f"{int(videos.sum()):,} videos, {int(frames.sum()):,} frames; "
            f"overall gain {cumulative[-1]:+.2f}"
        )
    fig.legend(handles, names, loc="outside lower center", ncols=3, fontsize=8, frameon=False)
    ax.set_title(
        f"Gain of {label_a} over {label_b} in R@{k} ({task_label(task)}, "
        f"{setting_label(setting)}) vs. relation change",
        fontsize=11,
    )
    return save_figure(fig, out, dpi)
