"""The scene graph of one frame, beside the frame (matplotlib, PNG or SVG).

Left the frame with boxes, ids and labels; right the graph. Nodes are the
entities (same ids and colours as the boxes) and the predicates, drawn as
``subject -> predicate -> object``: per pair the top attention predicate, the
top spatial one with the reversed direction (``object -> predicate ->
person``, as the evaluator reads spatial triplets), the top contacting one,
and every further spatial / contacting predicate scoring at least the
threshold. With ground truth (:attr:`FramePairs.gt_predicates`, matched by the
command: :func:`tr2_core.cli.plot_frames.gt_pair_predicates`), predicates in it
are ticked and the GT predicates that are not shown are added as "missed"
nodes.

Entities of a frame are numbered by their row inside the frame (``0`` is the
first box, usually the person); a :class:`~tr2_core.types.SceneGraphResult`
uses its track ids.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from tr2_core.errors import ConfigError, PredictionsError
from tr2_core.types import Predictions, SceneGraphResult
from tr2_core.viz.figure import (
    DEFAULT_DPI,
    FAMILY_COLOURS,
    check_output_path,
    new_figure,
    save_figure,
)
from tr2_core.vocab import FAMILIES, OBJECT_CLASSES, PREDICATES, family_of, readable

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.text import Text

__all__ = [
    "ENTITY_COLOURS",
    "FramePairs",
    "frame_pairs_from_predictions",
    "frame_pairs_from_result",
    "class_name",
    "draw_scene_graph_figure",
    "draw_scene_graph_result",
]

ENTITY_COLOURS: tuple[str, ...] = (
    "#e6194b", "#3cb44b", "#4363d8", "#f58231", "#911eb4", "#42d4f4", "#f032e6",
    "#9a6324", "#469990", "#800000", "#808000", "#000075", "#bfef45", "#dcbeff",
)  # fmt: skip
"""Box / node colour of entity id ``i``: ``ENTITY_COLOURS[i % len]``."""


# --------------------------------------------------------------------------
# One frame's entities and pairs


@dataclass(frozen=True)
class FramePairs:
    """The entities and scored pairs of one frame (NumPy).

    Attributes:
        key: frame name shown in the title.
        ids: (N,) int64 entity ids (row in frame or track id).
        boxes: (N, 4) float32 ``x1 y1 x2 y2`` pixels.
        labels: (N,) int64 AG object index.
        scores: (N,) float32 entity confidence.
        pair_subject, pair_object: (P,) int64 rows into the entities.
        scores_26: (P, 26) float32 ``[attention | spatial | contacting]``.
        gt_predicates: (P, 26) bool ground-truth predicates of each pair, or
            None without ground truth.
    """

    key: str
    ids: np.ndarray
    boxes: np.ndarray
    labels: np.ndarray
    scores: np.ndarray
    pair_subject: np.ndarray
    pair_object: np.ndarray
    scores_26: np.ndarray
    gt_predicates: np.ndarray | None = None


def _frame_row(preds: Predictions, key: str, source: str) -> int:
    rows = np.flatnonzero(preds.frame_keys == key)
    if rows.shape[0] == 0:
        video = key.partition("/")[0]
        same = [str(k) for k in preds.frame_keys if str(k).startswith(video + "/")][:3]
        hint = f"; frames of {video} there: {', '.join(same)}" if same else ""
        example = f", e.g. '{preds.frame_keys[0]}'" if preds.frame_keys.shape[0] else ""
        raise PredictionsError(
            f"{source}: frame '{key}' is not in the predictions "
            f"({preds.frame_keys.shape[0]:,} frames{example}){hint}"
        )
    return int(rows[0])


def frame_pairs_from_predictions(
    preds: Predictions, key: str, source: str = "predictions"
) -> FramePairs:
    """The entities (row order inside the frame) and pairs of frame ``key``.

    Raises:
        PredictionsError: the frame is not in ``preds``.
    """
    row = _frame_row(preds, key, source)
    boxes = np.flatnonzero(preds.box_frame == row)
    local = np.full(preds.box_frame.shape[0], -1, dtype=np.int64)
    local[boxes] = np.arange(boxes.shape[0])
    pairs = np.flatnonzero(local[preds.pair_subject] >= 0)
    return FramePairs(
        key=key,
        ids=np.arange(boxes.shape[0], dtype=np.int64),
        boxes=preds.boxes[boxes],
        labels=preds.box_labels[boxes],
        scores=preds.box_scores[boxes],
        pair_subject=local[preds.pair_subject[pairs]],
        pair_object=local[preds.pair_object[pairs]],
        scores_26=np.concatenate(
            [preds.attention[pairs], preds.spatial[pairs], preds.contacting[pairs]], axis=1
        ),
    )


def frame_pairs_from_result(result: SceneGraphResult, key: str = "") -> FramePairs:
    """A streaming :class:`SceneGraphResult` (entity ids = track ids)."""
    key = key or f"stamp {result.stamp_ns / 1e9:.3f} s"
    return FramePairs(
        key=key,
        ids=np.asarray(result.entity_track, dtype=np.int64),
        boxes=np.asarray(result.entity_boxes, dtype=np.float32),
        labels=np.asarray(result.entity_labels, dtype=np.int64),
        scores=np.asarray(result.entity_scores, dtype=np.float32),
        pair_subject=np.asarray(result.pair_subject, dtype=np.int64),
        pair_object=np.asarray(result.pair_object, dtype=np.int64),
        scores_26=np.concatenate(
            [
                np.asarray(result.attention, np.float32),
                np.asarray(result.spatial, np.float32),
                np.asarray(result.contacting, np.float32),
            ],
            axis=1,
        ),
    )


# --------------------------------------------------------------------------
# Scene graph figure


def _colour(entity_id: int) -> str:
    return ENTITY_COLOURS[int(entity_id) % len(ENTITY_COLOURS)]


def _ink(colour: str) -> str:
    """Black or white text, whichever reads better on ``colour``."""
    from matplotlib.colors import to_rgb

    r, g, b = to_rgb(colour)
    return "black" if 0.299 * r + 0.587 * g + 0.114 * b > 0.6 else "white"


def class_name(label: int) -> str:
    """Name of AG object class ``label`` (``#label`` when out of range)."""
    return OBJECT_CLASSES[int(label)] if 0 <= int(label) < len(OBJECT_CLASSES) else f"#{label}"


def _pair_nodes(
    scores: np.ndarray, gt: np.ndarray | None, threshold: float, max_per_family: int
) -> list[tuple[int, float, str]]:
    """Predicate nodes of one pair: (predicate, score, kind) with kind in
    'top' (drawn), 'weak' (family's top, below threshold), 'missed' (GT only)."""
    nodes: list[tuple[int, float, str]] = []
    for fam in FAMILIES:
        block = scores[fam.slice]
        order = np.argsort(-block, kind="stable")
        chosen = [int(order[0])]
        if fam.multi_label:
            extra = [int(i) for i in order[1:max_per_family] if block[i] >= threshold]
            chosen += extra
        for i in chosen:
            weak = fam.multi_label and block[i] < threshold
            nodes.append((fam.start + i, float(block[i]), "weak" if weak else "top"))
        if gt is not None:
            shown = {fam.start + i for i in chosen}
            for p in np.flatnonzero(gt[fam.slice]):
                if fam.start + int(p) not in shown:
                    nodes.append((fam.start + int(p), float(block[p]), "missed"))
    return nodes


def _draw_frame(ax: Axes, image: np.ndarray | None, fp: FramePairs, fontsize: float) -> None:
    from matplotlib.patches import Rectangle

    if image is not None:
        ax.imshow(image)
    else:  # no image: grey canvas spanning the boxes
        w = float(max(fp.boxes[:, 2].max(initial=1.0), 1.0)) * 1.05
        h = float(max(fp.boxes[:, 3].max(initial=1.0), 1.0)) * 1.05
        ax.imshow(np.full((int(h), int(w), 3), 200, np.uint8))
    show_scores = bool(np.any(fp.scores < 0.999))
    for i in range(fp.ids.shape[0]):  # a handful of boxes per frame
        x1, y1, x2, y2 = (float(v) for v in fp.boxes[i])
        colour = _colour(fp.ids[i])
        ax.add_patch(Rectangle((x1, y1), x2 - x1, y2 - y1, fill=False, edgecolor=colour,
                               linewidth=2.0))  # fmt: skip
        text = f"{fp.ids[i]} {class_name(fp.labels[i])}"
        if show_scores:
            text += f" {fp.scores[i]:.2f}"
        ax.text(x1, y1, text, fontsize=fontsize, color=_ink(colour), va="bottom", ha="left",
                bbox={"boxstyle": "square,pad=0.15", "fc": colour, "ec": "none", "alpha": 0.85},
                clip_on=False)  # fmt: skip
    ax.set_axis_off()


def _kept_pairs(fp: FramePairs, max_pairs: int) -> np.ndarray:
    """Rows of the ``max_pairs`` pairs with the highest entity scores (then file
    order), grouped by subject, then by object id."""
    pair_score = fp.scores[fp.pair_subject] * fp.scores[fp.pair_object]
    keep = np.sort(np.argsort(-pair_score, kind="stable")[:max_pairs])
    return keep[np.lexsort((fp.ids[fp.pair_object[keep]], fp.ids[fp.pair_subject[keep]]))]


def _entity_nodes(
    ax: Axes, fp: FramePairs, keep: np.ndarray, pred_y: list[list[float]]
) -> dict[int, Text]:
    """One node per entity of the kept pairs: subjects left, objects right, each
    at the mean height of its predicate nodes."""
    x_sub, x_obj = 0.12, 0.88
    entity_rows: dict[int, list[float]] = {}
    for p, ys in zip(keep, pred_y, strict=True):
        for e in (int(fp.pair_subject[p]), int(fp.pair_object[p])):
            entity_rows.setdefault(e, []).extend(ys)
    subjects = set(fp.pair_subject[keep].tolist())
    node_text: dict[int, Text] = {}
    for e, ys in entity_rows.items():
        colour = _colour(fp.ids[e])
        node_text[e] = ax.text(
            x_sub if e in subjects else x_obj, float(np.mean(ys)),
            f"{fp.ids[e]} {class_name(fp.labels[e])}", ha="center", va="center", fontsize=9,
            fontweight="bold", color="black", zorder=3,
            bbox={"boxstyle": "round,pad=0.4", "fc": "white", "ec": colour, "lw": 2.2},
        )  # fmt: skip
    return node_text


def _predicate_node(
    ax: Axes, y: float, pred: int, score: float, kind: str, is_gt: bool, ends: tuple[Text, Text]
) -> None:
    """A predicate node at height ``y`` with its two arrows: subject -> predicate
    -> object, reversed (object -> predicate -> subject) for spatial ones."""
    fam = family_of(pred)
    colour = FAMILY_COLOURS[fam.name]
    mark = "✓ " if is_gt and kind != "missed" else ("✗ " if kind == "missed" else "")
    style = {
        "boxstyle": "round,pad=0.3",
        "fc": colour if kind == "top" else "white",
        "ec": "#c0392b" if kind == "missed" else colour,
        "lw": 1.6,
        "ls": "--" if kind != "top" else "-",
        "alpha": 1.0,
    }
    text_colour = "white" if kind == "top" else "0.2"
    node = ax.text(0.5, y, f"{mark}{readable(PREDICATES[pred])} {score:.2f}", ha="center",
                   va="center", fontsize=8.5, color=text_colour, bbox=style,
                   zorder=3)  # fmt: skip
    line = {"arrowstyle": "-|>", "lw": 0.9, "shrinkA": 5, "shrinkB": 5, "mutation_scale": 9,
            "color": colour if kind != "missed" else "#c0392b",
            "ls": "-" if kind == "top" else "--"}  # fmt: skip
    sub, obj = ends
    src, dst = (obj, sub) if fam.name == "spatial" else (sub, obj)
    # source -> predicate -> destination, each from one box edge to the other
    s_side, d_side = (0.0, 1.0) if fam.name == "spatial" else (1.0, 0.0)
    ax.annotate("", xy=(1.0 - s_side, 0.5), xycoords=node, xytext=(s_side, 0.5),
                textcoords=src, arrowprops=line, zorder=2)  # fmt: skip
    ax.annotate("", xy=(d_side, 0.5), xycoords=dst, xytext=(1.0 - d_side, 0.5),
                textcoords=node, arrowprops=line, zorder=2)  # fmt: skip


def _draw_graph(
    ax: Axes, fp: FramePairs, keep: np.ndarray, pair_nodes: list[list[tuple[int, float, str]]]
) -> None:
    """Layered layout: subjects | predicates | objects, one block of predicate
    rows per kept pair."""
    y = 0.0
    pred_y: list[list[float]] = []
    for nodes in pair_nodes:
        pred_y.append([y - i for i in range(len(nodes))])
        y -= len(nodes) + 0.7
    ax.set_xlim(0, 1)
    low = min((min(ys) for ys in pred_y), default=0.0)
    ax.set_ylim(low - 0.8, 0.8)
    ax.set_axis_off()
    node_text = _entity_nodes(ax, fp, keep, pred_y)
    for p, nodes, ys in zip(keep, pair_nodes, pred_y, strict=True):
        ends = (node_text[int(fp.pair_subject[p])], node_text[int(fp.pair_object[p])])
        for (pred, score, kind), yy in zip(nodes, ys, strict=True):
            is_gt = fp.gt_predicates is not None and bool(fp.gt_predicates[p, pred])
            _predicate_node(ax, yy, pred, score, kind, is_gt, ends)
    num_pairs = fp.pair_subject.shape[0]
    if not len(keep):
        ax.text(0.5, 0.0, "no (person, object) pair in this frame", ha="center",
                va="center", color="0.4")  # fmt: skip
    shown = (
        f"{len(keep)} of {num_pairs} pairs"
        if len(keep) < num_pairs
        else f"{num_pairs} pair" + ("s" if num_pairs != 1 else "")
    )
    ax.set_title(f"scene graph ({shown}; spatial edges point object → person)", fontsize=10)


def _legend(fig: Any, threshold: float, with_gt: bool) -> None:
    from matplotlib.lines import Line2D
    from matplotlib.patches import Patch

    handles: list[Any] = [
        Patch(fc=FAMILY_COLOURS[f.name], ec=FAMILY_COLOURS[f.name], label=f.name) for f in FAMILIES
    ]
    handles.append(Patch(fc="white", ec="0.4", ls="--",
                         label=f"top of its family, score < {threshold:g}"))  # fmt: skip
    if with_gt:
        handles.append(Line2D([], [], ls="none", marker="$✓$", color="black",
                              label="in the ground truth"))  # fmt: skip
        handles.append(Patch(fc="white", ec="#c0392b", ls="--", label="✗ GT predicate not shown"))
    fig.legend(handles=handles, loc="outside lower center", ncols=len(handles), fontsize=8,
               frameon=False)  # fmt: skip


def draw_scene_graph_figure(
    image: np.ndarray | None,
    fp: FramePairs,
    out: str | os.PathLike[str],
    *,
    threshold: float = 0.5,
    max_per_family: int = 3,
    max_pairs: int = 12,
    title: str | None = None,
    dpi: int = DEFAULT_DPI,
) -> Path:
    """Draw the frame (left) and its scene graph (right) and save it.

    Args:
        image: (H, W, 3) uint8 RGB frame, or None for a grey canvas.
        fp: the frame's entities and pairs (with ``gt_predicates`` to tick
            the ground truth).
        threshold: spatial / contacting predicates beyond the family's top one
            are drawn when they score at least this.
        max_per_family: at most this many spatial / contacting predicates per pair.
        max_pairs: draw the pairs with the highest entity scores (then file order).

    Raises:
        ConfigError: a parameter out of range, or a bad suffix.
    """
    out = check_output_path(out)
    if not 0.0 <= threshold <= 1.0 or max_per_family < 1 or max_pairs < 1:
        raise ConfigError(
            f"need 0 <= threshold <= 1, max_per_family >= 1 and max_pairs >= 1 "
            f"(got {threshold}, {max_per_family}, {max_pairs})"
        )
    keep = _kept_pairs(fp, max_pairs)
    pair_nodes = [
        _pair_nodes(
            fp.scores_26[p],
            None if fp.gt_predicates is None else fp.gt_predicates[p],
            threshold,
            max_per_family,
        )
        for p in keep
    ]
    rows = sum(len(n) for n in pair_nodes) + 0.7 * max(len(pair_nodes) - 1, 0)
    height = max(4.8, 0.36 * rows + 1.6)
    aspect = image.shape[1] / max(image.shape[0], 1) if image is not None else 16 / 9
    image_width = min(max(height * 0.75 * aspect, 4.0), 9.0)
    fig = new_figure(image_width + 7.2, height)
    ax_img, ax_g = fig.subplots(1, 2, width_ratios=(image_width, 7.2))
    _draw_frame(ax_img, image, fp, fontsize=8)
    ax_img.set_title("frame: boxes with entity id and class", fontsize=10)
    _draw_graph(ax_g, fp, keep, pair_nodes)
    _legend(fig, threshold, fp.gt_predicates is not None)
    fig.suptitle(title or fp.key, fontsize=12)
    return save_figure(fig, out, dpi)


def draw_scene_graph_result(
    image: np.ndarray | None,
    result: SceneGraphResult,
    out: str | os.PathLike[str],
    *,
    title: str | None = None,
    threshold: float = 0.5,
    max_pairs: int = 12,
    dpi: int = DEFAULT_DPI,
) -> Path:
    """Scene graph of a streaming :class:`SceneGraphResult` (ids = track ids)
    beside its (H, W, 3) uint8 RGB frame (or a grey canvas)."""
    fp = frame_pairs_from_result(result, title or "")
    return draw_scene_graph_figure(
        image, fp, out, threshold=threshold, max_pairs=max_pairs, title=title, dpi=dpi
    )
