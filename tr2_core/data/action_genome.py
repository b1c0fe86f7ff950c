"""Reader for the Action Genome release, unchanged on disk.

:func:`load_split` reads ``AG_ROOT/annotations/`` (layout and rules in
``shared/spec/action-genome.md``) and returns an :class:`ActionGenomeSplit`:
the split's ground truth in the evaluator's columnar form
(:class:`~tr2_core.types.GroundTruth`) plus per-pair training labels.

Frame and video selection (the benchmark's frame set), in this order:

1. Frames are taken from ``object_bbox_and_relationship.pkl``; a frame belongs
   to split ``S`` if ``metadata['set']`` of its *first* object record is ``S``.
   A frame with an empty object list has no split and is skipped.
2. With ``filter_nonperson_box_frame`` (default) a frame whose person
   ``bbox`` has 0 rows is dropped. Without it such frames are kept and get a
   person row whose box is all NaN (``frame_has_person`` is False for them);
   the baselines' code path for this option keeps no video at all, so there
   is nothing to be faithful to.
3. Every visible object of the remaining frames that have at least one visible
   object is *validated* (the records the baselines convert): non-None
   ``bbox`` of 4 finite numbers with ``w > 0`` and ``h > 0``, known class,
   relationship lists that are not None and hold known names of the right
   family; the person record of such a frame must have an (N, 4) ``bbox`` and
   a ``(width, height)`` ``bbox_size``. Other records are only read for
   ``metadata['set']``, ``visible`` and the person box count, so bad data in
   frames the benchmark never uses does not stop loading. Both pickles must
   hold the same frame keys.
4. With ``filter_small_boxes`` visible objects whose box has a short edge
   ``min(w, h) <= 16`` px are removed (what the baselines' variant annotation
   file ``object_bbox_and_relationship_filtersmall.pkl`` contains).
5. A frame is *valid* if it still has at least one visible object.
6. Videos with at most two remaining frames are dropped.
7. Videos are ordered by name, frames inside a video by frame number (the
   number in ``FRAME.png``); objects keep their annotation order.

Per kept frame the boxes are the person box (row 0 of ``person_bbox``'s
``bbox``, label 1, x1 y1 x2 y2 as stored) followed by every kept visible object,
converted from x y w h to ``x1 y1 x2 y2`` with ``x2 = x + w`` and
``y2 = y + h`` (the baselines' conversion; no ``- 1``). Boxes are float32.

Ground-truth triplets per object, in this order: ``(person, object, a)`` for
each attention name, ``(object, person, s)`` for each spatial name (reversed,
as the evaluator lineage does), ``(person, object, c)`` for each contacting
name. Names are kept as listed (a name listed twice yields two triplets, as in
the lineage). Training labels (one pair per kept object, in box order):
``pair_attention`` is the first attention name's index (-1 if the list is
empty), ``pair_spatial`` / ``pair_contacting`` are multi-hot.

``frame_list.txt`` is not read (both pickles carry the same keys).

Parsed splits are cached as ``.npz`` files (no pickle) under
``$TR2_CACHE_DIR/annotations`` (default ``~/.cache/tr2/annotations``), keyed
by the annotation files' (path, size, mtime_ns), the loader options and
:data:`CACHE_FORMAT_VERSION`; a stale or unreadable cache file is rebuilt.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
import warnings
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, fields
from itertools import chain
from operator import itemgetter
from pathlib import Path
from typing import Any

import numpy as np

from tr2_core.data.safe_pickle import gc_paused, safe_load
from tr2_core.errors import ConfigError, DatasetError
from tr2_core.types import GroundTruth
from tr2_core.vocab import (
    ATTENTION,
    CONTACTING,
    OBJECT_CLASSES,
    PERSON,
    PREDICATES,
    SPATIAL,
    glued,
)

__all__ = [
    "ActionGenomeSplit",
    "load_split",
    "check_class_files",
    "frame_number",
    "split_frame_key",
    "default_cache_dir",
    "SPLITS",
    "SMALL_BOX_MAX_EDGE",
    "CACHE_FORMAT_VERSION",
    "ANNOTATION_FILES",
]

SPLITS: tuple[str, ...] = ("train", "test")
SMALL_BOX_MAX_EDGE: float = 16.0
"""Objects whose box short edge is at most this many pixels are "small"."""
CACHE_FORMAT_VERSION: int = 1
"""Bump when the parsed arrays or the selection rules change."""

OBJECT_CLASSES_FILE = "object_classes.txt"
RELATIONSHIP_CLASSES_FILE = "relationship_classes.txt"
PERSON_BBOX_FILE = "person_bbox.pkl"
OBJECT_BBOX_FILE = "object_bbox_and_relationship.pkl"
ANNOTATION_FILES: tuple[str, ...] = (
    OBJECT_CLASSES_FILE,
    RELATIONSHIP_CLASSES_FILE,
    PERSON_BBOX_FILE,
    OBJECT_BBOX_FILE,
)
"""Files under ``annotations/`` that the loader reads (all required)."""

# Object names accepted in object records: slash spelling, background excluded.
_OBJECT_INDEX: dict[str, int] = {n: i for i, n in enumerate(OBJECT_CLASSES) if i > 0}
_FAMILY_INDEX: dict[str, dict[str, int]] = {
    f.name: {n: f.start + i for i, n in enumerate(f.predicates)}
    for f in (ATTENTION, SPATIAL, CONTACTING)
}


# --------------------------------------------------------------------------
# Frame keys


def split_frame_key(key: str) -> tuple[str, int]:
    """``'001YG.mp4/000089.png'`` -> ``('001YG.mp4', 89)``.

    Raises:
        DatasetError: the key is not ``VIDEO/FRAME.ext`` with a numeric frame.
    """
    video, sep, frame = key.partition("/")
    stem = frame.rpartition(".")[0] or frame
    if not sep or not video or "/" in frame or not stem.isdigit():
        raise DatasetError(f"frame key {key!r} is not of the form 'VIDEO.mp4/NUMBER.png'")
    return video, int(stem)


def _split_frame_keys(keys: np.ndarray, source: Path) -> tuple[np.ndarray, np.ndarray]:
    """Vectorised :func:`split_frame_key`: (videos (K,) str, frame numbers (K,) int64)."""
    if keys.size == 0:
        return np.zeros(0, dtype="<U1"), np.zeros(0, dtype=np.int64)
    if not hasattr(np.strings, "partition"):  # NumPy < 2.3
        pairs = [split_frame_key(str(k)) for k in keys.tolist()]
        videos = np.array([p[0] for p in pairs], dtype=str)
        return videos, np.array([p[1] for p in pairs], dtype=np.int64)
    video, sep, frame = np.strings.partition(keys, "/")
    stem, dot, ext = np.strings.rpartition(frame, ".")
    stem = np.where(dot == "", ext, stem)
    ok = (sep == "/") & (np.strings.str_len(video) > 0) & (np.strings.find(frame, "/") < 0)
    ok &= np.strings.isdigit(stem) & (np.strings.str_len(stem) <= 18)
    if not ok.all():
        bad = str(keys[int(np.flatnonzero(~ok)[0])])
        raise DatasetError(f"{source}: frame key {bad!r} is not of the form 'VIDEO.mp4/NUMBER.png'")
    return video, stem.astype(np.int64)


def frame_number(key: str) -> int:
    """The frame number of a frame key: ``'001YG.mp4/000089.png'`` -> ``89``."""
    return split_frame_key(key)[1]


# --------------------------------------------------------------------------
# Result type


@dataclass(frozen=True, eq=False)  # eq on arrays would be ambiguous; identity instead
class ActionGenomeSplit:
    """One split of Action Genome as loaded by :func:`load_split`.

    ``F`` frames, ``B`` boxes, ``P = B - F`` (person, object) pairs: one pair
    per object box, in box order (so pairs are sorted by frame).

    Attributes:
        root: the AG root folder (``annotations/``, ``frames/``).
        split: ``'train'`` or ``'test'``.
        gt: the evaluator's ground truth (see :class:`GroundTruth`).
        frame_numbers: (F,) int64 frame number of each frame key.
        frame_has_person: (F,) bool; False only without
            ``filter_nonperson_box_frame``, where the person row's box is NaN.
        pair_frame: (P,) int64 row into ``gt.frame_keys``.
        pair_subject: (P,) int64 row into ``gt.boxes`` (the frame's person box).
        pair_object: (P,) int64 row into ``gt.boxes`` (the object box).
        pair_attention: (P,) int64 attention index 0..2, -1 if none.
        pair_spatial: (P, 6) bool multi-hot spatial labels.
        pair_contacting: (P, 17) bool multi-hot contacting labels.
        filter_small_boxes: the option the split was loaded with.
        filter_nonperson_box_frame: the option the split was loaded with.
    """

    root: Path
    split: str
    gt: GroundTruth
    frame_numbers: np.ndarray
    frame_has_person: np.ndarray
    pair_frame: np.ndarray
    pair_subject: np.ndarray
    pair_object: np.ndarray
    pair_attention: np.ndarray
    pair_spatial: np.ndarray
    pair_contacting: np.ndarray
    filter_small_boxes: bool = False
    filter_nonperson_box_frame: bool = True

    @property
    def num_frames(self) -> int:
        return self.gt.num_frames

    @property
    def num_videos(self) -> int:
        return self.gt.num_videos

    @property
    def num_pairs(self) -> int:
        return int(self.pair_frame.shape[0])

    def frame_image_path(self, key: str) -> Path:
        """``root/frames/VIDEO.mp4/FRAME.png`` of a frame key."""
        split_frame_key(key)  # validates the form
        return self.root / "frames" / key

    def frame_number(self, key: str) -> int:
        """The frame number in ``key`` (``'001YG.mp4/000089.png'`` -> 89)."""
        return frame_number(key)


# Arrays that make up a split (cache content), name -> owner.
_GT_FIELDS: tuple[str, ...] = tuple(f.name for f in fields(GroundTruth))
_SPLIT_ARRAYS: tuple[str, ...] = (
    "frame_numbers", "frame_has_person", "pair_frame", "pair_subject", "pair_object",
    "pair_attention", "pair_spatial", "pair_contacting",
)  # fmt: skip


# --------------------------------------------------------------------------
# Class files


def _read_vocab_file(path: Path, names: Sequence[str]) -> None:
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError as exc:
        raise DatasetError(f"{path}: file not found") from exc
    except (OSError, UnicodeDecodeError) as exc:
        raise DatasetError(f"{path}: cannot read ({exc})") from exc
    lines = text.splitlines()
    while lines and not lines[-1].strip():
        lines.pop()
    for lineno, (line, name) in enumerate(zip(lines, names, strict=False), start=1):
        found = line.strip()
        # glued() also accepts the slash / underscore spelling of a name
        if glued(found) != glued(name):
            raise DatasetError(
                f"{path}, line {lineno}: expected {glued(name)!r} ({name!r}), found {found!r}; "
                "class files must list the AG vocabulary in AG order"
            )
    if len(lines) != len(names):
        raise DatasetError(f"{path}: expected {len(names)} class names, found {len(lines)} lines")


def check_class_files(annotations_dir: str | os.PathLike[str]) -> None:
    """Check that ``object_classes.txt`` and ``relationship_classes.txt`` list
    :data:`~tr2_core.vocab.OBJECT_CLASSES` (without the background) and
    :data:`~tr2_core.vocab.PREDICATES` by index, in the release's glued
    spelling (``closetcabinet``, ``lookingat``...; surrounding whitespace such
    as the trailing space one copy has after ``closetcabinet`` is ignored).

    Raises:
        DatasetError: a file is missing, or a line does not match (names the
            file and line).
    """
    ann = Path(annotations_dir)
    _read_vocab_file(ann / OBJECT_CLASSES_FILE, OBJECT_CLASSES[1:])
    _read_vocab_file(ann / RELATIONSHIP_CLASSES_FILE, PREDICATES)


# --------------------------------------------------------------------------
# Cache


def default_cache_dir() -> Path:
    """``$TR2_CACHE_DIR/annotations`` if set, else ``~/.cache/tr2/annotations``
    (``$XDG_CACHE_HOME/tr2/annotations`` where that is set)."""
    env = os.environ.get("TR2_CACHE_DIR")
    if env:
        return Path(env).expanduser() / "annotations"
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "tr2" / "annotations"


def _cache_identity(ann: Path, split: str, options: Mapping[str, bool]) -> tuple[str, str]:
    """(file name, content key) of the cache entry for these files and options.

    The file name depends on the folder, split and options only, so a changed
    dataset overwrites its old entry; the content key adds each file's size
    and mtime_ns, and is stored in the entry and compared on load.
    """
    where = {
        "version": CACHE_FORMAT_VERSION,
        "annotations": str(ann.resolve()),
        "split": split,
        "options": dict(sorted(options.items())),
    }
    stats = []
    for name in ANNOTATION_FILES:
        st = (ann / name).stat()
        stats.append([name, st.st_size, st.st_mtime_ns])
    name_hash = hashlib.sha256(json.dumps(where, sort_keys=True).encode()).hexdigest()
    key_hash = hashlib.sha256(json.dumps([where, stats], sort_keys=True).encode()).hexdigest()
    return f"ag-{split}-{name_hash[:24]}.npz", key_hash


def _read_cache(path: Path, key: str) -> dict[str, np.ndarray] | None:
    """The arrays of a cache entry, or None if missing, stale or unreadable."""
    if not path.is_file():
        return None
    try:
        with np.load(path, allow_pickle=False) as npz:
            if str(npz["cache_key"]) != key:
                return None
            arrays = {name: npz[name] for name in (*_GT_FIELDS, *_SPLIT_ARRAYS)}
        _check_consistent(arrays)
    except Exception:  # corrupt / truncated / foreign file: rebuild
        return None
    return arrays


def _write_cache(path: Path, key: str, arrays: Mapping[str, np.ndarray]) -> None:
    """Write atomically (temporary file + ``os.replace``); failures only warn."""
    tmp_name = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp_name = tempfile.mkstemp(prefix=path.name + ".", suffix=".tmp", dir=path.parent)
        with os.fdopen(fd, "wb") as f:
            np.savez(f, cache_key=np.array(key), **arrays)
        os.replace(tmp_name, path)
        tmp_name = None
    except OSError as exc:
        warnings.warn(f"could not write annotation cache {path}: {exc}", stacklevel=3)
    finally:
        if tmp_name is not None:
            try:
                os.unlink(tmp_name)
            except OSError:
                pass


def _check_consistent(a: Mapping[str, np.ndarray]) -> None:
    """Cheap structural check of the arrays of a split (guards the cache)."""
    n_f = a["frame_keys"].shape[0]
    n_b = a["boxes"].shape[0]
    n_p = a["pair_frame"].shape[0]
    n_t = a["triplet_frame"].shape[0]
    ok = (
        a["video_start"].shape == (a["videos"].shape[0] + 1,)
        and a["box_start"].shape == (n_f + 1,)
        and int(a["box_start"][-1]) == n_b
        and int(a["video_start"][-1]) == n_f
        and a["boxes"].shape == (n_b, 4)
        and a["frame_size"].shape == (n_f, 2)
        and all(a[k].shape == (n_f,) for k in ("frame_video", "frame_numbers", "frame_has_person"))
        and all(a[k].shape == (n_b,) for k in ("box_frame", "box_labels"))
        and all(a[k].shape == (n_p,) for k in ("pair_subject", "pair_object", "pair_attention"))
        and a["pair_spatial"].shape == (n_p, SPATIAL.size)
        and a["pair_contacting"].shape == (n_p, CONTACTING.size)
        and n_p == n_b - n_f
        and all(
            a[k].shape == (n_t,) for k in ("triplet_subject", "triplet_object", "triplet_predicate")
        )
    )
    if not ok:
        raise ValueError("inconsistent split arrays")


# --------------------------------------------------------------------------
# Parsing


def _load_pickle(path: Path, show_progress: bool) -> Any:
    if not show_progress:
        return safe_load(path)
    from tqdm import tqdm

    size = path.stat().st_size
    with tqdm(
        total=size, desc=f"reading {path.name}", unit="B", unit_scale=True, leave=False
    ) as bar:
        return safe_load(path, progress=bar.update)


def _first_bad(values: Iterable[Any], ok: Any) -> int:
    """Index of the first value for which ``ok(value)`` is false (slow path)."""
    for i, v in enumerate(values):
        if not ok(v):
            return i
    raise AssertionError("no bad value found")  # pragma: no cover


def _map_names(
    names: list[Any], table: Mapping[str, int], owners: np.ndarray
) -> tuple[np.ndarray, int | None]:
    """Indices of ``names`` in ``table``; on failure (None, owner row of the first bad name)."""
    try:
        return np.fromiter(map(table.__getitem__, names), np.int64, len(names)), None
    except (KeyError, TypeError):
        bad = _first_bad(names, lambda n: isinstance(n, str) and n in table)
        return np.empty(0, np.int64), int(owners[bad])


def _parse(
    ann: Path,
    split: str,
    *,
    filter_small_boxes: bool,
    filter_nonperson_box_frame: bool,
    show_progress: bool,
) -> dict[str, np.ndarray]:
    """Read the two pickles and build the split's columnar arrays."""
    person_path = ann / PERSON_BBOX_FILE
    object_path = ann / OBJECT_BBOX_FILE
    person = _load_pickle(person_path, show_progress)
    objects = _load_pickle(object_path, show_progress)
    for path, value in ((person_path, person), (object_path, objects)):
        if not isinstance(value, dict):
            raise DatasetError(f"{path}: expected a dict frame_key -> record, got {type(value)}")
    if person.keys() != objects.keys():
        only_p = person.keys() - objects.keys()
        if only_p:
            key = min(only_p, key=str)
            raise DatasetError(
                f"frame key {key!r} is in {person_path} but not in {object_path} "
                f"({len(only_p)} such keys)"
            )
        only_o = objects.keys() - person.keys()
        key = min(only_o, key=str)
        raise DatasetError(
            f"frame key {key!r} is in {object_path} but not in {person_path} "
            f"({len(only_o)} such keys)"
        )

    # ---- one pass over the frames of this split -----------------------------
    # A frame is "processed" (its visible objects are converted and validated,
    # as the baselines do) if it is in the split, has a person box (unless
    # filter_nonperson_box_frame is off) and has at least one visible object.
    cand_keys: list[str] = []  # processed frames (dict order)
    cand_nvis: list[int] = []  # visible objects per processed frame
    cand_person: list[Any] = []  # person records of processed frames
    visible: list[Any] = []  # visible object records of processed frames
    add_key, add_n, add_person, add_obj = (
        cand_keys.append, cand_nvis.append, cand_person.append, visible.append
    )  # fmt: skip
    items: Iterable[tuple[Any, Any]] = objects.items()
    if show_progress:
        from tqdm import tqdm

        items = tqdm(items, total=len(objects), desc=f"parsing {split}", unit="frame", leave=False)
    key: Any = None
    where = object_path
    try:
        for key, objs in items:
            if not objs or objs[0]["metadata"]["set"] != split:
                continue
            where = person_path
            rec = person[key]
            if filter_nonperson_box_frame and not len(rec["bbox"]):
                where = object_path
                continue
            where = object_path
            before = len(visible)
            for o in objs:
                if o["visible"]:
                    add_obj(o)
            n = len(visible) - before
            if n:
                add_key(key)
                add_n(n)
                add_person(rec)
    except (KeyError, TypeError, IndexError, AttributeError) as exc:
        what = "person" if where == person_path else "object"
        raise DatasetError(
            f"{where}: frame {key!r}: malformed {what} record ({type(exc).__name__}: {exc})"
        ) from exc
    finally:
        if show_progress:
            items.close()  # type: ignore[attr-defined]
    # free the records of other frames now (lowers the peak memory of the build)
    del items, person, objects
    n_cand = len(cand_keys)
    n_sel = len(visible)
    owner = np.repeat(np.arange(n_cand), np.array(cand_nvis, dtype=np.int64))

    def fail(row: int, what: str) -> DatasetError:
        return DatasetError(f"{object_path}: frame {cand_keys[int(owner[row])]!r}: {what}")

    # ---- person records ------------------------------------------------------
    def column(records: list[Any], field: str, path: Path, rows: np.ndarray | None) -> list[Any]:
        try:
            return list(map(itemgetter(field), records))
        except (KeyError, TypeError, IndexError):
            i = _first_bad(records, lambda r: isinstance(r, Mapping) and field in r)
            frame = cand_keys[i if rows is None else int(rows[i])]
            kind = "person" if path == person_path else "object"
            raise DatasetError(
                f"{path}: frame {frame!r}: malformed {kind} record: no {field!r}"
            ) from None

    p_box = column(cand_person, "bbox", person_path, None)
    p_size = column(cand_person, "bbox_size", person_path, None)
    del cand_person
    nan_row = np.full(4, np.nan, np.float32)
    try:
        has_person = np.fromiter(map(len, p_box), np.int64, n_cand) > 0
        p_rows = [b[0] if n else nan_row for b, n in zip(p_box, has_person.tolist(), strict=True)]
        person_box = np.array(p_rows, dtype=np.float32).reshape(n_cand, 4)
    except (ValueError, TypeError, IndexError, KeyError):
        i = _first_bad(p_box, lambda b: len(np.shape(b)) == 2 and np.shape(b)[1] == 4)
        raise DatasetError(
            f"{person_path}: frame {cand_keys[i]!r}: 'bbox' must be an (N, 4) array"
        ) from None
    try:
        frame_size = np.array(p_size, dtype=np.int64).reshape(n_cand, 2)
    except (ValueError, TypeError):
        i = _first_bad(p_size, lambda s: np.shape(s) == (2,))
        raise DatasetError(
            f"{person_path}: frame {cand_keys[i]!r}: 'bbox_size' must be (width, height)"
        ) from None

    # ---- visible object records ---------------------------------------------
    s_cls = column(visible, "class", object_path, owner)
    s_box = column(visible, "bbox", object_path, owner)
    s_att = column(visible, "attention_relationship", object_path, owner)
    s_spa = column(visible, "spatial_relationship", object_path, owner)
    s_con = column(visible, "contacting_relationship", object_path, owner)
    del visible

    # classes
    cls_idx, bad = _map_names(s_cls, _OBJECT_INDEX, np.arange(n_sel))
    if bad is not None:
        raise fail(bad, f"unknown object class {s_cls[bad]!r}")

    # boxes x y w h -> x1 y1 x2 y2
    try:
        xywh = np.array(s_box, dtype=np.float64).reshape(n_sel, 4)
    except (ValueError, TypeError):
        i = _first_bad(s_box, lambda b: b is not None and np.shape(b) == (4,))
        raise fail(
            i, f"visible object {s_cls[i]!r} has bbox {s_box[i]!r}, expected x y w h"
        ) from None
    bad_box = ~np.isfinite(xywh).all(axis=1) | (xywh[:, 2] <= 0) | (xywh[:, 3] <= 0)
    if bad_box.any():
        i = int(np.flatnonzero(bad_box)[0])
        what = f"visible object {s_cls[i]!r} has bbox x y w h = {s_box[i]!r}"
        raise fail(i, what + " (w and h must be finite and > 0)")

    # relationship lists (flattened per family)
    fam_lists = ((ATTENTION, s_att), (SPATIAL, s_spa), (CONTACTING, s_con))
    flat_pred: list[np.ndarray] = []
    flat_owner: list[np.ndarray] = []
    lengths: dict[str, np.ndarray] = {}
    for family, lists in fam_lists:
        if None in lists:
            i = lists.index(None)
            raise fail(i, f"visible object {s_cls[i]!r} has {family.name}_relationship None")
        try:
            lens = np.fromiter(map(len, lists), np.int64, n_sel)
        except TypeError:
            i = _first_bad(lists, lambda v: hasattr(v, "__len__"))
            raise fail(i, f"{family.name}_relationship {lists[i]!r} is not a list") from None
        own = np.repeat(np.arange(n_sel), lens)
        preds, bad = _map_names(list(chain.from_iterable(lists)), _FAMILY_INDEX[family.name], own)
        if bad is not None:
            table = _FAMILY_INDEX[family.name]
            name = lists[bad][
                _first_bad(lists[bad], lambda n, t=table: isinstance(n, str) and n in t)
            ]
            raise fail(bad, f"unknown {family.name} predicate {name!r} for {s_cls[bad]!r}")
        flat_pred.append(preds)
        flat_owner.append(own)
        lengths[family.name] = lens

    # ---- small-box filter, valid frames, videos ----------------------------
    keep_obj = np.ones(n_sel, dtype=bool)
    if filter_small_boxes:
        keep_obj = np.minimum(xywh[:, 2], xywh[:, 3]) > SMALL_BOX_MAX_EDGE
    n_keep = np.bincount(owner[keep_obj], minlength=n_cand)
    ok_idx = np.flatnonzero(n_keep > 0)
    key_array = np.array(cand_keys, dtype=str)
    video_of, number_of = _split_frame_keys(key_array[ok_idx], object_path)
    videos_all, video_inv = np.unique(video_of, return_inverse=True)
    video_inv = video_inv.reshape(-1)
    per_video = np.bincount(video_inv, minlength=len(videos_all))
    long_enough = per_video[video_inv] > 2
    ok_idx, video_inv = ok_idx[long_enough], video_inv[long_enough]
    numbers = number_of[long_enough]
    kept_videos = np.flatnonzero(per_video > 2)
    video_rank = np.full(len(videos_all), -1, np.int64)
    video_rank[kept_videos] = np.arange(kept_videos.size)
    frame_video = video_rank[video_inv]
    order = np.lexsort((numbers, frame_video))
    frames = ok_idx[order]  # candidate index of each final frame
    frame_video = frame_video[order]
    numbers = numbers[order]
    n_f = int(frames.size)

    # ---- boxes --------------------------------------------------------------
    new_pos = np.full(n_cand, -1, np.int64)
    new_pos[frames] = np.arange(n_f)
    obj_frame_new = np.where(keep_obj, new_pos[owner], -1)
    obj_sel = np.flatnonzero(obj_frame_new >= 0)
    obj_sel = obj_sel[np.argsort(obj_frame_new[obj_sel], kind="stable")]  # final object order
    obj_frame = obj_frame_new[obj_sel]
    n_obj_frame = np.bincount(obj_frame, minlength=n_f)
    box_start = np.zeros(n_f + 1, np.int64)
    np.cumsum(n_obj_frame + 1, out=box_start[1:])
    obj_start = box_start[:-1] - np.arange(n_f)  # first object (in object order) per frame
    obj_rank = np.arange(obj_sel.size) - obj_start[obj_frame]
    obj_row = box_start[obj_frame] + 1 + obj_rank
    person_row = box_start[:-1]
    n_b = int(box_start[-1])

    boxes = np.empty((n_b, 4), np.float32)
    boxes[person_row] = person_box[frames]
    x = xywh[obj_sel]
    boxes[obj_row] = np.stack([x[:, 0], x[:, 1], x[:, 0] + x[:, 2], x[:, 1] + x[:, 3]], axis=1)
    box_labels = np.empty(n_b, np.int64)
    box_labels[person_row] = PERSON
    box_labels[obj_row] = cls_idx[obj_sel]
    box_frame = np.repeat(np.arange(n_f), n_obj_frame + 1)

    # ---- pair labels (one pair per object, in object order) ------------------
    pos_of_sel = np.full(n_sel, -1, np.int64)
    pos_of_sel[obj_sel] = np.arange(obj_sel.size)
    att_lens = lengths[ATTENTION.name]
    att_first = np.full(n_sel, -1, np.int64)
    has_att = att_lens > 0
    att_offsets = np.cumsum(att_lens) - att_lens
    att_first[has_att] = flat_pred[0][att_offsets[has_att]] - ATTENTION.start
    multi_hot: dict[str, np.ndarray] = {}
    for fi, family in ((1, SPATIAL), (2, CONTACTING)):
        mh = np.zeros((obj_sel.size, family.size), dtype=bool)
        pos = pos_of_sel[flat_owner[fi]]
        use = pos >= 0
        mh[pos[use], flat_pred[fi][use] - family.start] = True
        multi_hot[family.name] = mh

    # ---- triplets (per object: attention, spatial, contacting) -------------
    t_pos = pos_of_sel[np.concatenate(flat_owner)]
    t_pred = np.concatenate(flat_pred)
    t_fam = np.concatenate([np.full(p.size, i, np.int64) for i, p in enumerate(flat_pred)])
    use = t_pos >= 0
    t_pos, t_pred, t_fam = t_pos[use], t_pred[use], t_fam[use]
    t_order = np.lexsort((t_fam, t_pos))  # stable: list order kept within a family
    t_pos, t_pred, t_fam = t_pos[t_order], t_pred[t_order], t_fam[t_order]
    t_frame = obj_frame[t_pos]
    t_obj_row = obj_row[t_pos]
    t_person_row = person_row[t_frame]
    spatial = t_fam == 1
    t_subject = np.where(spatial, t_obj_row, t_person_row)
    t_object = np.where(spatial, t_person_row, t_obj_row)

    video_start = np.zeros(kept_videos.size + 1, np.int64)
    np.cumsum(np.bincount(frame_video, minlength=kept_videos.size), out=video_start[1:])
    arrays = {
        "videos": videos_all[kept_videos].astype(str),
        "video_start": video_start,
        "frame_keys": key_array[frames],
        "frame_video": frame_video.astype(np.int64),
        "frame_size": frame_size[frames],
        "box_start": box_start,
        "box_frame": box_frame,
        "boxes": boxes,
        "box_labels": box_labels,
        "triplet_frame": t_frame.astype(np.int64),
        "triplet_subject": t_subject.astype(np.int64),
        "triplet_object": t_object.astype(np.int64),
        "triplet_predicate": t_pred.astype(np.int64),
        "frame_numbers": numbers,
        "frame_has_person": has_person[frames],  # all True if filter_nonperson_box_frame
        "pair_frame": obj_frame.astype(np.int64),
        "pair_subject": person_row[obj_frame],
        "pair_object": obj_row.astype(np.int64),
        "pair_attention": att_first[obj_sel],
        "pair_spatial": multi_hot[SPATIAL.name],
        "pair_contacting": multi_hot[CONTACTING.name],
    }
    _check_consistent(arrays)
    return arrays


# --------------------------------------------------------------------------
# Entry point


def load_split(
    root: str | os.PathLike[str],
    split: str,
    *,
    filter_small_boxes: bool = False,
    filter_nonperson_box_frame: bool = True,
    show_progress: bool = True,
    cache: bool = True,
    cache_dir: str | os.PathLike[str] | None = None,
) -> ActionGenomeSplit:
    """Load one split of the Action Genome release at ``root``.

    Args:
        root: the AG root folder (holding ``annotations/``; ``frames/`` is only
            needed for images).
        split: ``'train'`` or ``'test'``.
        filter_small_boxes: drop objects whose box short edge is <= 16 px
            (the baselines' SGCls / SGDet annotation variant).
        filter_nonperson_box_frame: drop frames without a person box (default,
            as the baselines).
        show_progress: tqdm bars while parsing (not shown on a cache hit).
        cache: read / write the parsed-annotation cache.
        cache_dir: cache folder; default :func:`default_cache_dir`.

    Returns:
        The split (see the module docstring for the exact rules).

    Raises:
        ConfigError: ``split`` is not ``'train'`` / ``'test'``.
        DatasetError: missing files or malformed annotations (the message names
            the file and the frame key).
        UnsafePickleError: a pickle names a global outside the allow-list.
    """
    if split not in SPLITS:
        raise ConfigError(f"split must be one of {SPLITS}, got {split!r}")
    root = Path(root)
    ann = root / "annotations"
    missing = [name for name in ANNOTATION_FILES if not (ann / name).is_file()]
    if missing:
        raise DatasetError(
            f"{ann}: missing annotation file(s) {', '.join(missing)} "
            "(expected the Action Genome release layout AG_ROOT/annotations/)"
        )
    check_class_files(ann)
    options = {
        "filter_small_boxes": bool(filter_small_boxes),
        "filter_nonperson_box_frame": bool(filter_nonperson_box_frame),
    }
    arrays = None
    cache_path = None
    if cache:
        folder = Path(cache_dir).expanduser() if cache_dir is not None else default_cache_dir()
        file_name, cache_key = _cache_identity(ann, split, options)
        cache_path = folder / file_name
        arrays = _read_cache(cache_path, cache_key)
    if arrays is None:
        with gc_paused():  # millions of records are built and dropped; none are cyclic garbage
            arrays = _parse(ann, split, show_progress=show_progress, **options)
        if cache_path is not None:
            _write_cache(cache_path, cache_key, arrays)
    gt = GroundTruth(**{name: arrays[name] for name in _GT_FIELDS})
    return ActionGenomeSplit(
        root=root,
        split=split,
        gt=gt,
        **{name: arrays[name] for name in _SPLIT_ARRAYS},
        **options,
    )
