"""The predicate timeline of one (person, object class) pair over a video
(matplotlib, PNG or SVG).

Rows = the 26 predicates grouped by family, columns = the frames of a video,
colour = predicted score of the pair, dots = ground truth, red lines = frames
whose GT relations of the pair changed (the time-variant relations TR²
targets). :func:`draw_timeline` draws a :class:`TimelineData`; collecting it
from predictions and ground truth is the command's job
(:func:`tr2_core.cli.plot_frames.timeline_data`).
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from tr2_core.viz.figure import (
    DEFAULT_DPI,
    FAMILY_COLOURS,
    check_output_path,
    new_figure,
    save_figure,
)
from tr2_core.viz.scene_graph_figure import class_name
from tr2_core.vocab import FAMILIES, NUM_PREDICATES, PREDICATES, family_of, readable

__all__ = ["TimelineData", "draw_timeline"]


@dataclass(frozen=True)
class TimelineData:
    """Scores and ground truth of one (person, object class) pair over a video.

    Attributes:
        video: the video id.
        object_class: AG object index.
        frame_keys: (T,) str frames (predicted or GT), by frame number.
        frame_numbers: (T,) int64.
        scores: (26, T) float32 predicted score (max over the frame's pairs of
            that class; NaN where the pair is not predicted).
        gt: (26, T) bool ground-truth predicates of the pair.
        gt_frame: (T,) bool the column is a GT frame.
        change: (T,) bool GT relations of the pair differ from the previous GT
            frame (False for the first).
        multiple: number of frames where several objects of the class were merged.
    """

    video: str
    object_class: int
    frame_keys: np.ndarray
    frame_numbers: np.ndarray
    scores: np.ndarray
    gt: np.ndarray
    gt_frame: np.ndarray
    change: np.ndarray
    multiple: int


def draw_timeline(
    data: TimelineData, out: str | os.PathLike[str], *, subtitle: str = "", dpi: int = DEFAULT_DPI
) -> Path:
    """Predicate timeline of one (person, object class) pair: heatmap of
    predicted scores (rows = predicates grouped by family, columns = frames),
    GT predicates as dots, red lines where GT relations change."""
    from matplotlib.lines import Line2D

    out = check_output_path(out)
    t_count = data.frame_keys.shape[0]
    width = min(16.0, max(8.0, 0.2 * t_count + 4.5))
    fig = new_figure(width, 0.25 * NUM_PREDICATES + 2.4)
    ax = fig.subplots()
    masked = np.ma.masked_invalid(data.scores)
    import matplotlib as mpl

    cmap = mpl.colormaps["viridis"].with_extremes(bad="#d9d9d9")
    image = ax.imshow(masked, aspect="auto", cmap=cmap, vmin=0.0, vmax=1.0,
                      interpolation="nearest")  # fmt: skip
    rows, cols = np.nonzero(data.gt)
    dot = max(6.0, min(28.0, 500.0 / max(t_count, 1)))
    ax.scatter(cols, rows, s=dot, facecolor="white", edgecolor="black", linewidth=0.8, zorder=3)
    for c in np.flatnonzero(data.change):
        ax.axvline(c - 0.5, color="#e63946", linewidth=1.6, zorder=4)
    for fam in FAMILIES[1:]:
        ax.axhline(fam.start - 0.5, color="white", linewidth=2.0, zorder=2)
    ax.set_yticks(np.arange(NUM_PREDICATES), [readable(p) for p in PREDICATES], fontsize=8)
    for tick, p in zip(ax.get_yticklabels(), range(NUM_PREDICATES), strict=True):
        tick.set_color(FAMILY_COLOURS[family_of(p).name])
    for fam in FAMILIES:
        ax.text(1.005, (fam.start + fam.stop - 1) / 2, fam.name, rotation=-90, va="center",
                ha="left", fontsize=9, color=FAMILY_COLOURS[fam.name], fontweight="bold",
                transform=ax.get_yaxis_transform())  # fmt: skip
    step = max(1, math.ceil(t_count / 24))
    ticks = np.arange(0, t_count, step)
    ax.set_xticks(ticks, [str(n) for n in data.frame_numbers[ticks]], fontsize=8,
                  rotation=90 if t_count > 12 else 0)  # fmt: skip
    ax.set_xlabel("frame number (frames of the video, in order; grey: pair not predicted)")
    bar = fig.colorbar(image, ax=ax, fraction=0.04, pad=0.06)
    bar.set_label("predicted score")
    handles = [
        Line2D([], [], ls="none", marker="o", markerfacecolor="white", markeredgecolor="black",
               label="ground-truth predicate"),
        Line2D([], [], color="#e63946", linewidth=1.6, label="GT relations of the pair change"),
    ]  # fmt: skip
    fig.legend(handles=handles, loc="outside lower center", ncols=2, fontsize=8, frameon=False)
    notes = [subtitle] if subtitle else []
    notes.append(f"{int(data.change.sum())} GT change(s) in {int(data.gt_frame.sum())} GT frames")
    if data.multiple:
        notes.append(f"max over several {class_name(data.object_class)} in {data.multiple} frames")
    ax.set_title(
        f"{data.video}: person — {class_name(data.object_class)}, predicate scores per frame\n"
        f"({'; '.join(notes)})",
        fontsize=11,
    )
    return save_figure(fig, out, dpi)
