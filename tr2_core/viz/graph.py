"""Pictures of predictions: the scene graph of one frame and the predicate
timeline of one (person, object) pair over a video (matplotlib, PNG or SVG).

* :func:`plot_scene_graph` / :func:`plot_scene_graph_result`: left the frame
  with boxes, ids and labels; right the graph. Nodes are the entities (same
  ids and colours as the boxes) and the predicates, drawn as ``subject ->
  predicate -> object``: per pair the top attention predicate, the top spatial
  one with the reversed direction (``object -> predicate -> person``, as the
  evaluator reads spatial triplets), the top contacting one, and every further
  spatial / contacting predicate scoring at least the threshold. With ground
  truth, predicates in it are ticked and the GT predicates that are not shown
  are added as "missed" nodes.
* :func:`plot_timeline`: rows = the 26 predicates grouped by family, columns =
  the frames of a video, colour = predicted score of the (person, object
  class) pair, dots = ground truth, red lines = frames whose GT relations of
  the pair changed (the time-variant relations TR² targets).

Entities of a frame are numbered by their row inside the frame (``0`` is the
first box, usually the person); a :class:`~tr2_core.types.SceneGraphResult`
uses its track ids.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from tr2_core.errors import ConfigError, DatasetError, PredictionsError
from tr2_core.types import GroundTruth, Predictions, SceneGraphResult
from tr2_core.viz.plots import (
    DEFAULT_DPI,
    FAMILY_COLOURS,
    _as_predictions,
    check_output_path,
    new_figure,
    save_figure,
)
from tr2_core.vocab import (
    FAMILIES,
    NUM_PREDICATES,
    OBJECT_CLASSES,
    OBJECT_INDEX,
    PERSON,
    PREDICATES,
    SPATIAL,
    family_of,
    glued,
    readable,
)

if TYPE_CHECKING:
    from matplotlib.axes import Axes

__all__ = [
    "ENTITY_COLOURS",
    "FramePairs",
    "frame_pairs_from_predictions",
    "frame_pairs_from_result",
    "draw_scene_graph_figure",
    "plot_scene_graph",
    "plot_scene_graph_result",
    "timeline_data",
    "plot_timeline",
]

ENTITY_COLOURS: tuple[str, ...] = (
    "#e6194b", "#3cb44b", "#4363d8", "#f58231", "#911eb4", "#42d4f4", "#f032e6",
    "#9a6324", "#469990", "#800000", "#808000", "#000075", "#bfef45", "#dcbeff",
)  # fmt: skip
"""Box / node colour of entity id ``i``: ``ENTITY_COLOURS[i % len]``."""

_SPLITS_TRIED = ("test", "train")


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


def _gt_pair_predicates(fp: FramePairs, gt: GroundTruth, frame: int) -> np.ndarray:
    """(P, 26) bool GT predicates of each predicted pair of GT frame ``frame``.

    An entity is the GT box of its label with the highest legacy IoU >= 0.5
    (the evaluator's matching rule); attention / contacting triplets are read
    from (person, object), spatial ones from the reversed (object, person).
    """
    from tr2_core.evaluation.metrics import PREDICATE_FAMILY
    from tr2_core.evaluation.recall import IOU_THRESHOLD, legacy_iou

    lo, hi = int(gt.box_start[frame]), int(gt.box_start[frame + 1])
    gt_boxes, gt_labels = gt.boxes[lo:hi], gt.box_labels[lo:hi]
    n, m = fp.boxes.shape[0], hi - lo
    match = np.full(n, -1, dtype=np.int64)
    if n and m:
        iou = legacy_iou(np.repeat(fp.boxes, m, axis=0), np.tile(gt_boxes, (n, 1))).reshape(n, m)
        iou = np.where(fp.labels[:, None] == gt_labels[None, :], iou, -1.0)
        best = iou.argmax(axis=1)
        ok = iou[np.arange(n), best] >= IOU_THRESHOLD
        match[ok] = lo + best[ok]
    out = np.zeros((fp.pair_subject.shape[0], NUM_PREDICATES), dtype=bool)
    t = np.flatnonzero(gt.triplet_frame == frame)
    if t.shape[0] == 0 or out.shape[0] == 0:
        return out
    t_sub, t_obj, t_pred = gt.triplet_subject[t], gt.triplet_object[t], gt.triplet_predicate[t]
    spatial = PREDICATE_FAMILY[t_pred] == FAMILIES.index(SPATIAL)
    person_box = np.where(spatial, t_obj, t_sub)
    object_box = np.where(spatial, t_sub, t_obj)
    ps, po = match[fp.pair_subject], match[fp.pair_object]
    hit = (ps[:, None] == person_box[None, :]) & (po[:, None] == object_box[None, :])
    hit &= (ps >= 0)[:, None] & (po >= 0)[:, None]
    pair_idx, trip_idx = np.nonzero(hit)
    out[pair_idx, t_pred[trip_idx]] = True
    return out


def _find_gt(
    data_root: Path, *, key: str | None = None, video: str | None = None, split: str | None = None
) -> tuple[GroundTruth, str] | None:
    """The ground truth holding frame ``key`` / ``video`` (``split`` or test then train);
    None if no split holds it."""
    from tr2_core.data.action_genome import load_split

    for name in (split,) if split else _SPLITS_TRIED:
        gt = load_split(data_root, name, show_progress=False).gt
        if key is not None and np.any(gt.frame_keys == key):
            return gt, name
        if video is not None and np.any(gt.videos == video):
            return gt, name
    return None


def _load_image(path: Path) -> np.ndarray:
    from PIL import Image

    if not path.is_file():
        raise DatasetError(f"{path}: no such frame image (expected AG_ROOT/frames/VIDEO/FRAME)")
    try:
        with Image.open(path) as im:
            return np.asarray(im.convert("RGB"))
    except OSError as e:
        raise DatasetError(f"{path}: unreadable image ({e})") from None


# --------------------------------------------------------------------------
# Scene graph figure


def _colour(entity_id: int) -> str:
    return ENTITY_COLOURS[int(entity_id) % len(ENTITY_COLOURS)]


def _ink(colour: str) -> str:
    """Black or white text, whichever reads better on ``colour``."""
    from matplotlib.colors import to_rgb

    r, g, b = to_rgb(colour)
    return "black" if 0.299 * r + 0.587 * g + 0.114 * b > 0.6 else "white"


def _class_name(label: int) -> str:
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
        text = f"{fp.ids[i]} {_class_name(fp.labels[i])}"
        if show_scores:
            text += f" {fp.scores[i]:.2f}"
        ax.text(x1, y1, text, fontsize=fontsize, color=_ink(colour), va="bottom", ha="left",
                bbox={"boxstyle": "square,pad=0.15", "fc": colour, "ec": "none", "alpha": 0.85},
                clip_on=False)  # fmt: skip
    ax.set_axis_off()


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
        fp: the frame's entities and pairs.
        threshold: spatial / contacting predicates beyond the family's top one
            are drawn when they score at least this.
        max_per_family: at most this many spatial / contacting predicates per pair.
        max_pairs: draw the pairs with the highest entity scores (then file order).
    """
    from matplotlib.lines import Line2D
    from matplotlib.patches import Patch

    out = check_output_path(out)
    if not 0.0 <= threshold <= 1.0 or max_per_family < 1 or max_pairs < 1:
        raise ConfigError(
            f"need 0 <= threshold <= 1, max_per_family >= 1 and max_pairs >= 1 "
            f"(got {threshold}, {max_per_family}, {max_pairs})"
        )
    num_pairs = fp.pair_subject.shape[0]
    pair_score = fp.scores[fp.pair_subject] * fp.scores[fp.pair_object]
    keep = np.sort(np.argsort(-pair_score, kind="stable")[:max_pairs])
    # Pairs grouped by subject, then by object id.
    keep = keep[np.lexsort((fp.ids[fp.pair_object[keep]], fp.ids[fp.pair_subject[keep]]))]
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
    if image is not None:
        aspect = image.shape[1] / max(image.shape[0], 1)
    else:
        aspect = 16 / 9
    image_width = min(max(height * 0.75 * aspect, 4.0), 9.0)
    fig = new_figure(image_width + 7.2, height)
    ax_img, ax_g = fig.subplots(1, 2, width_ratios=(image_width, 7.2))
    _draw_frame(ax_img, image, fp, fontsize=8)
    ax_img.set_title("frame: boxes with entity id and class", fontsize=10)

    # ---- layered layout: subjects | predicates | objects
    x_sub, x_pred, x_obj = 0.12, 0.5, 0.88
    y = 0.0
    pred_y: list[list[float]] = []
    for nodes in pair_nodes:
        ys = [y - i for i in range(len(nodes))]
        pred_y.append(ys)
        y -= len(nodes) + 0.7
    entity_rows: dict[int, list[float]] = {}
    for p, ys in zip(keep, pred_y, strict=True):
        for e in (int(fp.pair_subject[p]), int(fp.pair_object[p])):
            entity_rows.setdefault(e, []).extend(ys)
    ax_g.set_xlim(0, 1)
    low = min((min(ys) for ys in pred_y), default=0.0)
    ax_g.set_ylim(low - 0.8, 0.8)
    ax_g.set_axis_off()

    node_text: dict[int, Any] = {}
    for e, ys in entity_rows.items():
        is_subject = e in set(fp.pair_subject[keep].tolist())
        colour = _colour(fp.ids[e])
        node_text[e] = ax_g.text(
            x_sub if is_subject else x_obj, float(np.mean(ys)),
            f"{fp.ids[e]} {_class_name(fp.labels[e])}", ha="center", va="center", fontsize=9,
            fontweight="bold", color="black", zorder=3,
            bbox={"boxstyle": "round,pad=0.4", "fc": "white", "ec": colour, "lw": 2.2},
        )  # fmt: skip
    arrow = {"arrowstyle": "-|>", "color": "0.35", "lw": 0.9, "shrinkA": 5, "shrinkB": 5,
             "mutation_scale": 9}  # fmt: skip
    for p, nodes, ys in zip(keep, pair_nodes, pred_y, strict=True):
        sub, obj = node_text[int(fp.pair_subject[p])], node_text[int(fp.pair_object[p])]
        for (pred, score, kind), yy in zip(nodes, ys, strict=True):
            fam = family_of(pred)
            colour = FAMILY_COLOURS[fam.name]
            is_gt = fp.gt_predicates is not None and bool(fp.gt_predicates[p, pred])
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
            node = ax_g.text(x_pred, yy, f"{mark}{readable(PREDICATES[pred])} {score:.2f}",
                             ha="center", va="center", fontsize=8.5, color=text_colour,
                             bbox=style, zorder=3)  # fmt: skip
            line = dict(arrow, color=colour if kind != "missed" else "#c0392b",
                        ls="-" if kind == "top" else "--")  # fmt: skip
            src, dst = (obj, sub) if fam.name == "spatial" else (sub, obj)
            # source -> predicate -> destination, each from one box edge to the other
            s_side, d_side = (0.0, 1.0) if fam.name == "spatial" else (1.0, 0.0)
            ax_g.annotate("", xy=(1.0 - s_side, 0.5), xycoords=node, xytext=(s_side, 0.5),
                          textcoords=src, arrowprops=line, zorder=2)  # fmt: skip
            ax_g.annotate("", xy=(d_side, 0.5), xycoords=dst, xytext=(1.0 - d_side, 0.5),
                          textcoords=node, arrowprops=line, zorder=2)  # fmt: skip
    if not len(keep):
        ax_g.text(0.5, 0.0, "no (person, object) pair in this frame", ha="center",
                  va="center", color="0.4")  # fmt: skip
    shown = (
        f"{len(keep)} of {num_pairs} pairs"
        if len(keep) < num_pairs
        else f"{num_pairs} pair" + ("s" if num_pairs != 1 else "")
    )
    ax_g.set_title(f"scene graph ({shown}; spatial edges point object → person)", fontsize=10)

    handles = [Patch(fc=FAMILY_COLOURS[f.name], ec=FAMILY_COLOURS[f.name], label=f.name)
               for f in FAMILIES]  # fmt: skip
    handles.append(Patch(fc="white", ec="0.4", ls="--",
                         label=f"top of its family, score < {threshold:g}"))  # fmt: skip
    if fp.gt_predicates is not None:
        handles.append(Line2D([], [], ls="none", marker="$✓$", color="black",
                              label="in the ground truth"))  # fmt: skip
        handles.append(Patch(fc="white", ec="#c0392b", ls="--", label="✗ GT predicate not shown"))
    fig.legend(handles=handles, loc="outside lower center", ncols=len(handles), fontsize=8,
               frameon=False)  # fmt: skip
    fig.suptitle(title or fp.key, fontsize=12)
    return save_figure(fig, out, dpi)


def plot_scene_graph(
    data_root: str | os.PathLike[str],
    predictions: Predictions | str | os.PathLike[str],
    frame_key: str,
    out: str | os.PathLike[str],
    *,
    threshold: float = 0.5,
    max_per_family: int = 3,
    max_pairs: int = 12,
    show_gt: bool = True,
    split: str | None = None,
    dpi: int = DEFAULT_DPI,
) -> Path:
    """Scene graph of frame ``frame_key`` of a predictions file, beside the
    image ``AG_ROOT/frames/<frame_key>``.

    With ``show_gt`` and ``AG_ROOT/annotations/`` present, the frame's ground
    truth (``split``, or test then train) ticks correct predicates and adds the
    missed ones.

    Raises:
        PredictionsError: the frame is not in the predictions.
        DatasetError: missing frame image or malformed annotations.
    """
    out = check_output_path(out)
    preds, source = _as_predictions(predictions)
    fp = frame_pairs_from_predictions(preds, frame_key, source)
    root = Path(data_root)
    image = _load_image(root / "frames" / frame_key)
    note = ""
    if show_gt and (root / "annotations").is_dir():
        found = _find_gt(root, key=frame_key, split=split)
        if found is None:
            note = " (frame not in the ground truth)"
        else:
            gt, name = found
            frame = int(np.flatnonzero(gt.frame_keys == frame_key)[0])
            fp = FramePairs(**{**fp.__dict__, "gt_predicates": _gt_pair_predicates(fp, gt, frame)})
            note = f" ({name} split; ✓ = in the ground truth)"
    return draw_scene_graph_figure(
        image, fp, out, threshold=threshold, max_per_family=max_per_family,
        max_pairs=max_pairs, title=f"{frame_key}{note}", dpi=dpi,
    )  # fmt: skip


def plot_scene_graph_result(
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


# --------------------------------------------------------------------------
# Timeline of one pair over a video


def _object_index(name: str) -> int:
    """AG object index of a class given as ``cup/glass/bottle``, ``cupglassbottle``,
    ``cup or glass or bottle`` or ``cup`` (a unique prefix of one class's names)."""
    wanted = name.strip().lower()
    by_name = {glued(c): i for i, c in enumerate(OBJECT_CLASSES) if i > PERSON}
    key = glued(wanted.replace(" or ", "/"))
    if key in by_name:
        return by_name[key]
    if wanted in OBJECT_INDEX and OBJECT_INDEX[wanted] > PERSON:
        return OBJECT_INDEX[wanted]
    hits = {i for i, c in enumerate(OBJECT_CLASSES) if i > PERSON and wanted in c.split("/")}
    if len(hits) == 1:
        return hits.pop()
    raise ConfigError(
        f"unknown object class {name!r}; expected one of {', '.join(OBJECT_CLASSES[PERSON + 1 :])}"
    )


def _frame_numbers(keys: np.ndarray) -> np.ndarray:
    from tr2_core.data.action_genome import frame_number

    return np.array([frame_number(str(k)) for k in keys.tolist()], dtype=np.int64)


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


def _video_name(preds: Predictions, video: str, source: str) -> tuple[str, np.ndarray]:
    """The video id as found in the predictions, and its frame rows."""
    from tr2_core.data.action_genome import _split_frame_keys

    videos, _ = _split_frame_keys(preds.frame_keys, Path(source))
    for name in (video, f"{video}.mp4"):
        rows = np.flatnonzero(videos == name)
        if rows.shape[0]:
            return name, rows
    present = sorted(set(videos.tolist()))
    raise PredictionsError(
        f"{source}: video '{video}' is not in the predictions ({len(present)} videos, e.g. "
        f"{', '.join(present[:5]) or 'none'})"
    )


def timeline_data(
    gt: GroundTruth,
    preds: Predictions,
    video: str,
    object_class: str | int | None = None,
    *,
    source: str = "predictions",
) -> TimelineData:
    """Collect :class:`TimelineData` (vectorised over pairs and triplets).

    ``object_class`` None picks the class of the video whose GT relations change
    most often (ties: more predicted frames, then lower index).

    Raises:
        PredictionsError: video not in the predictions.
        DatasetError: video not in ``gt``.
        ConfigError: unknown class or a class absent from the video.
    """
    from tr2_core.evaluation.breakdown import triplet_object_class

    video, pred_rows = _video_name(preds, video, source)
    v = np.flatnonzero(gt.videos == video)
    if v.shape[0] == 0:
        raise DatasetError(f"video '{video}' is not in the ground truth of this split")
    f0, f1 = int(gt.video_start[v[0]]), int(gt.video_start[v[0] + 1])
    keys = np.union1d(preds.frame_keys[pred_rows], gt.frame_keys[f0:f1])
    numbers = _frame_numbers(keys)
    order = np.argsort(numbers, kind="stable")
    keys, numbers = keys[order], numbers[order]
    t_count = keys.shape[0]
    column_of_pred_frame = np.full(preds.frame_keys.shape[0], -1, dtype=np.int64)
    column_of_pred_frame[pred_rows] = _columns(keys, preds.frame_keys[pred_rows])
    gt_col = _columns(keys, gt.frame_keys[f0:f1])

    # predicted pairs of the video: (person, object) with their column and class
    pair_col = column_of_pred_frame[preds.box_frame[preds.pair_subject]]
    pair_cls = preds.box_labels[preds.pair_object]
    in_video = (pair_col >= 0) & (preds.box_labels[preds.pair_subject] == PERSON)
    # GT triplets of the video
    t_sel = np.flatnonzero((gt.triplet_frame >= f0) & (gt.triplet_frame < f1))
    t_cls = triplet_object_class(gt)[t_sel]
    t_col = gt_col[gt.triplet_frame[t_sel] - f0]
    t_pred = gt.triplet_predicate[t_sel]

    def gt_matrix(cls: int) -> np.ndarray:
        out = np.zeros((NUM_PREDICATES, t_count), dtype=bool)
        sel = t_cls == cls
        out[t_pred[sel], t_col[sel]] = True
        return out

    gt_frame = np.zeros(t_count, dtype=bool)
    gt_frame[gt_col] = True

    def changes(matrix: np.ndarray) -> np.ndarray:
        cols = np.flatnonzero(gt_frame)
        change = np.zeros(t_count, dtype=bool)
        if cols.shape[0] > 1:
            diff = np.any(matrix[:, cols[1:]] != matrix[:, cols[:-1]], axis=0)
            change[cols[1:]] = diff
        return change

    present = sorted(set(pair_cls[in_video].tolist()) | set(t_cls.tolist()))
    if object_class is None:
        if not present:
            raise ConfigError(f"video '{video}' has no (person, object) pair")
        best = max(
            present,
            key=lambda c: (
                int(changes(gt_matrix(c)).sum()),
                int(np.unique(pair_col[in_video & (pair_cls == c)]).shape[0]),
                -c,
            ),
        )
        cls = int(best)
    else:
        cls = object_class if isinstance(object_class, int) else _object_index(object_class)
        if cls not in present:
            raise ConfigError(
                f"no '{_class_name(cls)}' in video '{video}'; its object classes: "
                f"{', '.join(_class_name(c) for c in present) or 'none'}"
            )
    sel = np.flatnonzero(in_video & (pair_cls == cls))
    values = np.concatenate(
        [preds.attention[sel], preds.spatial[sel], preds.contacting[sel]], axis=1
    ).astype(np.float32)
    scores = np.full((NUM_PREDICATES, t_count), -np.inf, dtype=np.float32)
    np.maximum.at(scores.T, pair_col[sel], values)
    scores[np.isneginf(scores)] = np.nan
    per_col = np.bincount(pair_col[sel], minlength=t_count)
    matrix = gt_matrix(cls)
    return TimelineData(
        video=video,
        object_class=cls,
        frame_keys=keys,
        frame_numbers=numbers,
        scores=scores,
        gt=matrix,
        gt_frame=gt_frame,
        change=changes(matrix),
        multiple=int((per_col > 1).sum()),
    )


def _columns(sorted_keys: np.ndarray, keys: np.ndarray) -> np.ndarray:
    """Column of each key in ``sorted_keys`` (ordered by frame number, not string)."""
    lookup = np.argsort(sorted_keys, kind="stable")
    pos = np.searchsorted(sorted_keys, keys, sorter=lookup)
    return lookup[np.minimum(pos, sorted_keys.shape[0] - 1)].astype(np.int64)


def plot_timeline(
    data_root: str | os.PathLike[str],
    predictions: Predictions | str | os.PathLike[str],
    video: str,
    out: str | os.PathLike[str],
    *,
    object_class: str | int | None = None,
    split: str | None = None,
    dpi: int = DEFAULT_DPI,
) -> Path:
    """Predicate timeline of the (person, ``object_class``) pair of ``video``:
    heatmap of predicted scores (rows = predicates grouped by family, columns
    = frames), GT predicates as dots, red lines where GT relations change.

    The ground truth is read from ``AG_ROOT/annotations`` (``split``, or the
    test then the train split, whichever holds the video).

    Raises:
        PredictionsError: video not in the predictions.
        DatasetError: video in no split of the annotations.
        ConfigError: unknown or absent object class.
    """
    out = check_output_path(out)
    preds, source = _as_predictions(predictions)
    name, _ = _video_name(preds, video, source)
    found = _find_gt(Path(data_root), video=name, split=split)
    if found is None:
        splits = split or " or ".join(_SPLITS_TRIED)
        raise DatasetError(
            f"{data_root}: video '{name}' is in no {splits} split of the annotations"
        )
    gt, split_name = found
    data = timeline_data(gt, preds, name, object_class, source=source)
    return draw_timeline(data, out, subtitle=f"{split_name} split", dpi=dpi)


def draw_timeline(
    data: TimelineData, out: str | os.PathLike[str], *, subtitle: str = "", dpi: int = DEFAULT_DPI
) -> Path:
    """Draw a :class:`TimelineData` (see :func:`plot_timeline`)."""
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
        notes.append(f"max over several {_class_name(data.object_class)} in {data.multiple} frames")
    ax.set_title(
        f"{data.video}: person — {_class_name(data.object_class)}, predicate scores per frame\n"
        f"({'; '.join(notes)})",
        fontsize=11,
    )
    return save_figure(fig, out, dpi)
