"""The inputs of ``tr2 plot graph|timeline``: read predictions, frame images and
the ground truth of ``AG_ROOT``, match predicted pairs to GT triplets, collect
a pair's scores over a video, then draw with :mod:`tr2_core.viz`.

The drawing functions take computed data only; this module is where files are
read and the ground truth is matched. ``tr2 demo`` calls the same functions.
"""

from __future__ import annotations

import os
from dataclasses import replace
from pathlib import Path

import numpy as np

from tr2_core.errors import ConfigError, DatasetError, PredictionsError
from tr2_core.types import GroundTruth, Predictions
from tr2_core.viz.figure import DEFAULT_DPI, check_output_path
from tr2_core.viz.run_plots import PredictionsInput, as_predictions
from tr2_core.viz.scene_graph_figure import (
    FramePairs,
    class_name,
    draw_scene_graph_figure,
    frame_pairs_from_predictions,
)
from tr2_core.viz.timeline import TimelineData, draw_timeline
from tr2_core.vocab import (
    FAMILIES,
    NUM_PREDICATES,
    OBJECT_CLASSES,
    OBJECT_INDEX,
    PERSON,
    SPATIAL,
    glued,
)

__all__ = [
    "SPLITS_TRIED",
    "find_gt",
    "gt_pair_predicates",
    "plot_scene_graph",
    "object_class_index",
    "timeline_data",
    "plot_timeline",
]

SPLITS_TRIED: tuple[str, ...] = ("test", "train")
"""Splits searched, in order, for a frame or video when no split is given."""


def find_gt(
    data_root: Path, *, key: str | None = None, video: str | None = None, split: str | None = None
) -> tuple[GroundTruth, str] | None:
    """The ground truth holding frame ``key`` / ``video`` (``split``, or test then
    train) and the split's name; None if no split holds it."""
    from tr2_core.data.action_genome import load_split

    for name in (split,) if split else SPLITS_TRIED:
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
# Scene graph of one frame


def gt_pair_predicates(fp: FramePairs, gt: GroundTruth, frame: int) -> np.ndarray:
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


def plot_scene_graph(
    data_root: str | os.PathLike[str],
    predictions: PredictionsInput,
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
    image ``AG_ROOT/frames/<frame_key>``
    (:func:`~tr2_core.viz.scene_graph_figure.draw_scene_graph_figure`).

    With ``show_gt`` and ``AG_ROOT/annotations/`` present, the frame's ground
    truth (``split``, or test then train) ticks correct predicates and adds the
    missed ones.

    Raises:
        PredictionsError: the frame is not in the predictions.
        DatasetError: missing frame image or malformed annotations.
    """
    out = check_output_path(out)
    preds, source = as_predictions(predictions)
    fp = frame_pairs_from_predictions(preds, frame_key, source)
    root = Path(data_root)
    image = _load_image(root / "frames" / frame_key)
    note = ""
    if show_gt and (root / "annotations").is_dir():
        found = find_gt(root, key=frame_key, split=split)
        if found is None:
            note = " (frame not in the ground truth)"
        else:
            gt, name = found
            frame = int(np.flatnonzero(gt.frame_keys == frame_key)[0])
            fp = replace(fp, gt_predicates=gt_pair_predicates(fp, gt, frame))
            note = f" ({name} split; ✓ = in the ground truth)"
    return draw_scene_graph_figure(
        image, fp, out, threshold=threshold, max_per_family=max_per_family,
        max_pairs=max_pairs, title=f"{frame_key}{note}", dpi=dpi,
    )  # fmt: skip


# --------------------------------------------------------------------------
# Timeline of one pair over a video


def object_class_index(name: str) -> int:
    """AG object index of a class given as ``cup/glass/bottle``, ``cupglassbottle``,
    ``cup or glass or bottle`` or ``cup`` (a unique prefix of one class's names).

    Raises:
        ConfigError: no such object class (``person`` is none).
    """
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


def _columns(sorted_keys: np.ndarray, keys: np.ndarray) -> np.ndarray:
    """Column of each key in ``sorted_keys`` (ordered by frame number, not string)."""
    lookup = np.argsort(sorted_keys, kind="stable")
    pos = np.searchsorted(sorted_keys, keys, sorter=lookup)
    return lookup[np.minimum(pos, sorted_keys.shape[0] - 1)].astype(np.int64)


def _gt_matrix(
    t_cls: np.ndarray, t_pred: np.ndarray, t_col: np.ndarray, cls: int, t_count: int
) -> np.ndarray:
    """(26, T) bool GT predicates of the (person, ``cls``) pair per column."""
    out = np.zeros((NUM_PREDICATES, t_count), dtype=bool)
    sel = t_cls == cls
    out[t_pred[sel], t_col[sel]] = True
    return out


def _gt_changes(matrix: np.ndarray, gt_frame: np.ndarray) -> np.ndarray:
    """(T,) bool: the GT column differs from the previous GT column."""
    cols = np.flatnonzero(gt_frame)
    change = np.zeros(gt_frame.shape[0], dtype=bool)
    if cols.shape[0] > 1:
        change[cols[1:]] = np.any(matrix[:, cols[1:]] != matrix[:, cols[:-1]], axis=0)
    return change


def timeline_data(
    gt: GroundTruth,
    preds: Predictions,
    video: str,
    object_class: str | int | None = None,
    *,
    source: str = "predictions",
) -> TimelineData:
    """Collect a :class:`~tr2_core.viz.timeline.TimelineData` (vectorised over
    pairs and triplets).

    ``object_class`` None picks the class of the video whose GT relations change
    most often (ties: more predicted frames, then lower index).

    Raises:
        PredictionsError: video not in the predictions.
        DatasetError: video not in ``gt``.
        ConfigError: unknown class or a class absent from the video.
    """
    from tr2_core.data.action_genome import frame_number
    from tr2_core.evaluation.changes import triplet_object_class

    video, pred_rows = _video_name(preds, video, source)
    v = np.flatnonzero(gt.videos == video)
    if v.shape[0] == 0:
        raise DatasetError(f"video '{video}' is not in the ground truth of this split")
    f0, f1 = int(gt.video_start[v[0]]), int(gt.video_start[v[0] + 1])
    keys = np.union1d(preds.frame_keys[pred_rows], gt.frame_keys[f0:f1])
    numbers = np.array([frame_number(str(k)) for k in keys.tolist()], dtype=np.int64)
    order = np.argsort(numbers, kind="stable")
    keys, numbers = keys[order], numbers[order]
    t_count = keys.shape[0]
    column_of_pred_frame = np.full(preds.frame_keys.shape[0], -1, dtype=np.int64)
    column_of_pred_frame[pred_rows] = _columns(keys, preds.frame_keys[pred_rows])
    gt_col = _columns(keys, gt.frame_keys[f0:f1])
    gt_frame = np.zeros(t_count, dtype=bool)
    gt_frame[gt_col] = True

    # predicted (person, object) pairs of the video, with their column and class
    pair_col = column_of_pred_frame[preds.box_frame[preds.pair_subject]]
    pair_cls = preds.box_labels[preds.pair_object]
    in_video = (pair_col >= 0) & (preds.box_labels[preds.pair_subject] == PERSON)
    # GT triplets of the video
    t_sel = np.flatnonzero((gt.triplet_frame >= f0) & (gt.triplet_frame < f1))
    t_cls = triplet_object_class(gt)[t_sel]
    t_col = gt_col[gt.triplet_frame[t_sel] - f0]
    t_pred = gt.triplet_predicate[t_sel]

    present = sorted(set(pair_cls[in_video].tolist()) | set(t_cls.tolist()))
    if object_class is None:
        if not present:
            raise ConfigError(f"video '{video}' has no (person, object) pair")
        cls = int(max(present, key=lambda c: (
            int(_gt_changes(_gt_matrix(t_cls, t_pred, t_col, c, t_count), gt_frame).sum()),
            int(np.unique(pair_col[in_video & (pair_cls == c)]).shape[0]),
            -c,
        )))  # fmt: skip
    else:
        cls = object_class if isinstance(object_class, int) else object_class_index(object_class)
        if cls not in present:
            raise ConfigError(
                f"no '{class_name(cls)}' in video '{video}'; its object classes: "
                f"{', '.join(class_name(c) for c in present) or 'none'}"
            )
    sel = np.flatnonzero(in_video & (pair_cls == cls))
    values = np.concatenate(
        [preds.attention[sel], preds.spatial[sel], preds.contacting[sel]], axis=1
    ).astype(np.float32)
    scores = np.full((NUM_PREDICATES, t_count), -np.inf, dtype=np.float32)
    np.maximum.at(scores.T, pair_col[sel], values)
    scores[np.isneginf(scores)] = np.nan
    matrix = _gt_matrix(t_cls, t_pred, t_col, cls, t_count)
    return TimelineData(
        video=video,
        object_class=cls,
        frame_keys=keys,
        frame_numbers=numbers,
        scores=scores,
        gt=matrix,
        gt_frame=gt_frame,
        change=_gt_changes(matrix, gt_frame),
        multiple=int((np.bincount(pair_col[sel], minlength=t_count) > 1).sum()),
    )


def plot_timeline(
    data_root: str | os.PathLike[str],
    predictions: PredictionsInput,
    video: str,
    out: str | os.PathLike[str],
    *,
    object_class: str | int | None = None,
    split: str | None = None,
    dpi: int = DEFAULT_DPI,
) -> Path:
    """Predicate timeline of the (person, ``object_class``) pair of ``video``
    (:func:`~tr2_core.viz.timeline.draw_timeline`).

    The ground truth is read from ``AG_ROOT/annotations`` (``split``, or the
    test then the train split, whichever holds the video).

    Raises:
        PredictionsError: video not in the predictions.
        DatasetError: video in no split of the annotations.
        ConfigError: unknown or absent object class.
    """
    out = check_output_path(out)
    preds, source = as_predictions(predictions)
    name, _ = _video_name(preds, video, source)
    found = find_gt(Path(data_root), video=name, split=split)
    if found is None:
        splits = split or " or ".join(SPLITS_TRIED)
        raise DatasetError(
            f"{data_root}: video '{name}' is in no {splits} split of the annotations"
        )
    gt, split_name = found
    data = timeline_data(gt, preds, name, object_class, source=source)
    return draw_timeline(data, out, subtitle=f"{split_name} split", dpi=dpi)
