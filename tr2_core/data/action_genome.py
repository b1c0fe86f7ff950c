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
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, fields
from itertools import chain
from operator import itemgetter
from pathlib import Path
from typing import Any

import numpy as np

from tr2_core.data.safe_pickle import gc_paused, safe_load
from tr2_core.errors import ConfigError, DatasetError, clip, describe
from tr2_core.progress import bar_disabled
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
CACHE_FORMAT_VERSION: int = 2
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
    if not sep or not video or "/" in frame or not (stem.isascii() and stem.isdigit()):
        raise DatasetError(f"frame key {describe(key)} is not of the form 'VIDEO.mp4/NUMBER.png'")
    return video, int(stem)


def _split_frame_keys(keys: np.ndarray, source: Path) -> tuple[np.ndarray, np.ndarray]:
    """Vectorised :func:`split_frame_key`: (videos (K,) str, frame numbers (K,) int64)."""
    if keys.size == 0:
        return np.zeros(0, dtype="<U1"), np.zeros(0, dtype=np.int64)
    if not hasattr(getattr(np, "strings", None), "partition"):  # NumPy < 2.3 (1.x: none)
        try:
            pairs = [split_frame_key(str(k)) for k in keys.tolist()]
        except DatasetError as e:  # name the file, as the vectorised path does
            raise DatasetError(f"{source}: {e}") from None
        videos = np.array([p[0] for p in pairs], dtype=str)
        return videos, np.array([p[1] for p in pairs], dtype=np.int64)
    video, sep, frame = np.strings.partition(keys, "/")
    stem, dot, ext = np.strings.rpartition(frame, ".")
    stem = np.where(dot == "", ext, stem)
    ok = (sep == "/") & (np.strings.str_len(video) > 0) & (np.strings.find(frame, "/") < 0)
    # ASCII digits only ('²' is a digit to str.isdigit but not to int())
    ascii_digits = np.strings.str_len(np.strings.strip(stem, "0123456789")) == 0
    ok &= (np.strings.str_len(stem) > 0) & ascii_digits & (np.strings.str_len(stem) <= 18)
    if not ok.all():
        bad = str(keys[int(np.flatnonzero(~ok)[0])])
        raise DatasetError(
            f"{source}: frame key {describe(bad)} is not of the form 'VIDEO.mp4/NUMBER.png'"
        )
    return video, stem.astype(np.int64)


def frame_number(key: str) -> int:
    """The frame number of a frame key: ``'001YG.mp4/000089.png'`` -> ``89``."""
    return split_frame_key(key)[1]


# --------------------------------------------------------------------------
# Result type


@dataclass(frozen=True, eq=False)
class ParsedSplit:
    """What :func:`_parse` builds (and the cache stores): the ground truth and
    the per-pair training labels of one split (shapes in
    :class:`ActionGenomeSplit`)."""

    gt: GroundTruth
    frame_numbers: np.ndarray
    frame_has_person: np.ndarray
    pair_frame: np.ndarray
    pair_subject: np.ndarray
    pair_object: np.ndarray
    pair_attention: np.ndarray
    pair_spatial: np.ndarray
    pair_contacting: np.ndarray

    def arrays(self) -> dict[str, np.ndarray]:
        """Every array by name (the cache entry's content)."""
        out = {name: getattr(self.gt, name) for name in _GT_FIELDS}
        out.update({name: getattr(self, name) for name in _SPLIT_ARRAYS})
        return out

    @classmethod
    def from_arrays(cls, arrays: Mapping[str, np.ndarray]) -> ParsedSplit:
        """Inverse of :meth:`arrays` (checks the shapes agree).

        Raises:
            ValueError: the arrays do not form one split.
        """
        _check_consistent(arrays)
        gt = GroundTruth(**{name: arrays[name] for name in _GT_FIELDS})
        return cls(gt=gt, **{name: arrays[name] for name in _SPLIT_ARRAYS})


@dataclass(frozen=True, eq=False)  # eq on arrays would be ambiguous; identity instead
class ActionGenomeSplit(ParsedSplit):
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


def _read_cache(path: Path, key: str) -> ParsedSplit | None:
    """The split in a cache entry, or None if missing, stale or unreadable."""
    if not path.is_file():
        return None
    try:
        with np.load(path, allow_pickle=False) as npz:
            if str(npz["cache_key"]) != key:
                return None
            arrays = {name: npz[name] for name in (*_GT_FIELDS, *_SPLIT_ARRAYS)}
        return ParsedSplit.from_arrays(arrays)
    except Exception:  # corrupt / truncated / foreign file: rebuild
        return None


def _write_cache(path: Path, key: str, parsed: ParsedSplit) -> None:
    """Write atomically (temporary file + ``os.replace``); failures only warn."""
    tmp_name = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp_name = tempfile.mkstemp(prefix=path.name + ".", suffix=".tmp", dir=path.parent)
        with os.fdopen(fd, "wb") as f:
            np.savez(f, cache_key=np.array(key), **parsed.arrays())
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
# Parsing: named steps, each a function of the previous steps' records.
#   _read_release -> _collect_frames -> _person_columns, _object_columns
#   -> _select_frames -> _layout_boxes -> _pair_labels, _triplets -> ParsedSplit


def _load_pickle(path: Path, show_progress: bool) -> Any:
    if not show_progress:
        return safe_load(path)
    from tqdm import tqdm

    size = path.stat().st_size
    with tqdm(
        total=size,
        desc=f"reading {path.name}",
        unit="B",
        unit_scale=True,
        leave=False,
        disable=bar_disabled(True),
    ) as bar:
        return safe_load(path, progress=bar.update)


def _first_bad(values: Iterable[Any], ok: Callable[[Any], bool]) -> int:
    """Index of the first value for which ``ok(value)`` is false (slow path)."""
    for i, v in enumerate(values):
        if not ok(v):
            return i
    raise AssertionError("no bad value found")  # pragma: no cover


# Exact scalar types a number field may hold (bool is not a number here).
_NUMBER_TYPES: frozenset[type] = frozenset(
    {int, float, np.float16, np.float32, np.float64, np.int8, np.int16, np.int32, np.int64}
    | {np.uint8, np.uint16, np.uint32, np.uint64}
)
_NAME_TYPES: frozenset[type] = frozenset({str, np.str_})


@dataclass(frozen=True)
class _FieldSpec:
    """What one record field must hold: the single validation rule that every
    field read by the loader goes through (:func:`_column`).

    Attributes:
        field: the record key (named in messages).
        expected: what the field should be, in words (named in messages).
        types: exact types the value may have.
        items: exact types of the items of a list / tuple value (None: not checked).
        length: exact item count of a list / tuple, or the last dimension of
            an array (None: any).
        ndim: dimensions an array value must have.
    """

    field: str
    expected: str
    types: frozenset[type]
    items: frozenset[type] | None = None
    length: int | None = None
    ndim: int = 1

    def ok(self, value: Any) -> bool:
        """Whether ``value`` has the declared form (cheap; never expands nested data)."""
        kind = type(value)
        if kind not in self.types:
            return False
        if kind is np.ndarray:  # only numeric arrays are ever declared
            return (
                value.ndim == self.ndim
                and value.dtype.kind in "iuf"
                and (self.length is None or value.shape[-1] == self.length)
            )
        if self.length is not None and len(value) != self.length:
            return False
        return self.items is None or all(type(item) in self.items for item in value)


def _column(
    values: list[Any],
    spec: _FieldSpec,
    fail: Callable[[int, str], DatasetError],
    dtype: type | None = None,
) -> np.ndarray | None:
    """Check every value against ``spec``; convert to a ``dtype`` array if given.

    Raises:
        DatasetError: ``fail(row, text)`` for the first value of the wrong form,
            or whose numbers do not fit ``dtype``.
    """
    if not all(map(spec.ok, values)):
        i = _first_bad(values, spec.ok)
        raise fail(i, f"{spec.field} {describe(values[i])}, expected {spec.expected}")
    if dtype is None:
        return None
    try:
        return np.array(values, dtype=dtype)
    except (OverflowError, ValueError):  # Python ints beyond the dtype's range

        def fits(value: Any) -> bool:
            try:
                np.array(value, dtype=dtype)
            except (OverflowError, ValueError):
                return False
            return True

        i = _first_bad(values, fits)
        raise fail(
            i, f"{spec.field} {describe(values[i])} does not fit {np.dtype(dtype).name}"
        ) from None


_VISIBLE = _FieldSpec("visible", "True or False", frozenset({bool, np.bool_}))
_SET = _FieldSpec("metadata['set']", "'train' or 'test'", _NAME_TYPES)
_OBJECT_BOX = _FieldSpec(
    "bbox", "x y w h (4 numbers)", frozenset({tuple, list, np.ndarray}), _NUMBER_TYPES, 4
)
_RELATIONS = {
    family.name: _FieldSpec(
        f"{family.name}_relationship", "a list of predicate names", frozenset({list, tuple})
    )
    for family in (ATTENTION, SPATIAL, CONTACTING)
}
_PERSON_BOX = _FieldSpec("bbox", "an (N, 4) array", frozenset({np.ndarray}), length=4, ndim=2)
_FRAME_SIZE = _FieldSpec(
    "bbox_size", "(width, height)", frozenset({tuple, list, np.ndarray}), _NUMBER_TYPES, 2
)


def _map_names(
    names: list[Any], table: Mapping[str, int], owners: np.ndarray
) -> tuple[np.ndarray, int | None]:
    """Indices of ``names`` in ``table``; on failure (None, owner row of the first bad name)."""
    try:
        return np.fromiter(map(table.__getitem__, names), np.int64, len(names)), None
    except (KeyError, TypeError):
        bad = _first_bad(names, lambda n: type(n) in _NAME_TYPES and n in table)
        return np.empty(0, np.int64), int(owners[bad])


def _read_release(ann: Path, show_progress: bool) -> tuple[dict[str, Any], dict[str, Any]]:
    """Unpickle both annotation files; check they are dicts with the same str keys."""
    person_path = ann / PERSON_BBOX_FILE
    object_path = ann / OBJECT_BBOX_FILE
    person = _load_pickle(person_path, show_progress)
    objects = _load_pickle(object_path, show_progress)
    for path, value in ((person_path, person), (object_path, objects)):
        if not isinstance(value, dict):
            raise DatasetError(
                f"{path}: expected a dict frame_key -> record, got {type(value).__name__}"
            )
        if not set(map(type, value)) <= _NAME_TYPES:
            key = next(k for k in value if type(k) not in _NAME_TYPES)
            raise DatasetError(f"{path}: frame key {describe(key)} is not a string")
    if person.keys() != objects.keys():
        for path, other, extra in (
            (person_path, object_path, person.keys() - objects.keys()),
            (object_path, person_path, objects.keys() - person.keys()),
        ):
            if extra:
                key = min(extra)
                raise DatasetError(
                    f"frame key {describe(key)} is in {path} but not in {other} "
                    f"({len(extra)} such keys)"
                )
    return person, objects


@dataclass
class _Frames:
    """The processed frames (dict order) of one split: those in the split, with
    a person box (unless filter_nonperson_box_frame is off) and at least one
    visible object; their records are the ones the baselines convert."""

    keys: list[str]
    n_visible: list[int]  # visible objects per frame
    person: list[Any]  # person record per frame
    visible: list[Any]  # visible object records, frame after frame
    person_path: Path
    object_path: Path

    def owner(self) -> np.ndarray:
        """(V,) int64 frame row of each visible object."""
        n = np.array(self.n_visible, dtype=np.int64)
        return np.repeat(np.arange(len(self.keys)), n)

    def fail(self, path: Path, frame: int, text: str) -> DatasetError:
        return DatasetError(f"{path}: frame {describe(self.keys[frame])}: {text}")


def _collect_frames(
    person: dict[str, Any],
    objects: dict[str, Any],
    split: str,
    *,
    filter_nonperson_box_frame: bool,
    show_progress: bool,
    ann: Path,
) -> _Frames:
    """One pass over all frames: pick the processed frames of ``split``."""
    frames = _Frames([], [], [], [], ann / PERSON_BBOX_FILE, ann / OBJECT_BBOX_FILE)
    add_key, add_n, add_person, add_obj = (
        frames.keys.append, frames.n_visible.append, frames.person.append, frames.visible.append
    )  # fmt: skip
    items: Iterable[tuple[Any, Any]] = objects.items()
    if show_progress:
        from tqdm import tqdm

        items = tqdm(
            items,
            total=len(objects),
            desc=f"parsing {split}",
            unit="frame",
            leave=False,
            disable=bar_disabled(True),
        )
    key: Any = None
    where = frames.object_path
    try:
        for key, objs in items:
            if not objs:
                continue
            frame_set = objs[0]["metadata"]["set"]
            if type(frame_set) not in _NAME_TYPES:
                _column([frame_set], _SET, lambda _i, text: DatasetError(text))
            if frame_set != split:
                continue
            where = frames.person_path
            rec = person[key]
            if filter_nonperson_box_frame and not len(rec["bbox"]):
                where = frames.object_path
                continue
            where = frames.object_path
            before = len(frames.visible)
            for o in objs:
                seen = o["visible"]
                if seen is not True and seen is not False:
                    _column([seen], _VISIBLE, lambda _i, text: DatasetError(text))
                if seen:
                    add_obj(o)
            n = len(frames.visible) - before
            if n:
                add_key(key)
                add_n(n)
                add_person(rec)
    except (KeyError, TypeError, IndexError, AttributeError, ValueError, DatasetError) as exc:
        what = "person" if where == frames.person_path else "object"
        text = clip(str(exc)) if isinstance(exc, DatasetError) else _exc_text(exc)
        raise DatasetError(
            f"{where}: frame {describe(key)}: malformed {what} record ({text})"
        ) from exc
    finally:
        if show_progress:
            items.close()  # type: ignore[attr-defined]
    return frames


def _exc_text(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {clip(str(exc))}"


def _field(
    records: list[Any], field: str, path: Path, fail: Callable[[int, str], Exception]
) -> list[Any]:
    """``record[field]`` of every record (each a dict)."""
    try:
        return list(map(itemgetter(field), records))
    except (KeyError, TypeError, IndexError, ValueError):
        i = _first_bad(records, lambda r: isinstance(r, Mapping) and field in r)
        kind = "person" if path.name == PERSON_BBOX_FILE else "object"
        raise fail(i, f"malformed {kind} record: no {field!r}") from None


@dataclass
class _PersonColumns:
    """Per processed frame: has_person (F0,) bool, person_box (F0, 4) float32
    (NaN without a person box), frame_size (F0, 2) int64."""

    has_person: np.ndarray
    person_box: np.ndarray
    frame_size: np.ndarray


def _person_columns(frames: _Frames) -> _PersonColumns:
    """Validate and convert the person records of the processed frames."""

    def fail_record(i: int, text: str) -> DatasetError:
        return frames.fail(frames.person_path, i, text)

    def fail(i: int, text: str) -> DatasetError:
        return fail_record(i, f"person record has {text}")

    p_box = _field(frames.person, "bbox", frames.person_path, fail_record)
    p_size = _field(frames.person, "bbox_size", frames.person_path, fail_record)
    _column(p_box, _PERSON_BOX, fail)
    has_person = np.fromiter((b.shape[0] for b in p_box), np.int64, len(p_box)) > 0
    nan_row = np.full(4, np.nan, np.float32)
    rows = [b[0] if n else nan_row for b, n in zip(p_box, has_person.tolist(), strict=True)]
    person_box = np.array(rows, dtype=np.float32).reshape(len(rows), 4)
    bad = has_person & (
        ~np.isfinite(person_box).all(axis=1)
        | (person_box[:, 2] < person_box[:, 0])
        | (person_box[:, 3] < person_box[:, 1])
    )
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise fail(
            i,
            f"bbox {describe(p_box[i][0].tolist())}: a person box must be finite "
            "x1 y1 x2 y2 with x2 >= x1 and y2 >= y1 (as float32)",
        )
    frame_size = _column(p_size, _FRAME_SIZE, fail, np.int64)
    assert frame_size is not None
    return _PersonColumns(has_person, person_box, frame_size.reshape(len(rows), 2))


@dataclass
class _ObjectColumns:
    """Per visible object of the processed frames (V objects).

    Attributes:
        owner: (V,) int64 processed-frame row.
        labels: (V,) int64 AG object index.
        xywh: (V, 4) float64 boxes as stored.
        predicates: per family (attention, spatial, contacting) the flattened
            predicate indices, (L_f,) int64.
        pred_owner: per family the object row of each flattened predicate.
        lengths: per family (V,) int64 list length.
    """

    owner: np.ndarray
    labels: np.ndarray
    xywh: np.ndarray
    predicates: list[np.ndarray]
    pred_owner: list[np.ndarray]
    lengths: list[np.ndarray]


def _object_columns(frames: _Frames) -> _ObjectColumns:
    """Validate and convert the visible object records of the processed frames."""
    owner = frames.owner()
    n_obj = owner.size
    visible = frames.visible

    def fail_record(i: int, text: str) -> DatasetError:
        return frames.fail(frames.object_path, int(owner[i]), text)

    classes = _field(visible, "class", frames.object_path, fail_record)

    def fail(i: int, text: str) -> DatasetError:
        return fail_record(i, f"visible object {describe(classes[i])} has {text}")

    labels, bad = _map_names(classes, _OBJECT_INDEX, np.arange(n_obj))
    if bad is not None:
        raise fail_record(bad, f"unknown object class {describe(classes[bad])}")
    boxes = _field(visible, "bbox", frames.object_path, fail_record)
    xywh = _column(boxes, _OBJECT_BOX, fail, np.float64)
    assert xywh is not None
    xywh = xywh.reshape(n_obj, 4)
    bad_box = ~np.isfinite(xywh).all(axis=1) | (xywh[:, 2] <= 0) | (xywh[:, 3] <= 0)
    # x + w and y + h must stay finite in the float32 boxes
    far = np.abs(xywh[:, :2]) + xywh[:, 2:]
    with np.errstate(over="ignore"):  # the overflow is what is checked here
        bad_box |= ~np.isfinite(far.astype(np.float32)).all(axis=1)
    if bad_box.any():
        i = int(np.flatnonzero(bad_box)[0])
        raise fail(
            i,
            f"bbox x y w h = {describe(boxes[i])} (w and h must be finite and > 0, "
            "x + w and y + h must fit float32)",
        )
    cols = _ObjectColumns(owner, labels, xywh, [], [], [])
    for family in (ATTENTION, SPATIAL, CONTACTING):
        spec = _RELATIONS[family.name]
        lists = _field(visible, spec.field, frames.object_path, fail_record)
        _column(lists, spec, fail)
        lens = np.fromiter(map(len, lists), np.int64, n_obj)
        own = np.repeat(np.arange(n_obj), lens)
        table = _FAMILY_INDEX[family.name]
        preds, bad = _map_names(list(chain.from_iterable(lists)), table, own)
        if bad is not None:
            name = lists[bad][
                _first_bad(lists[bad], lambda n, t=table: type(n) in _NAME_TYPES and n in t)
            ]
            raise fail_record(
                bad,
                f"unknown {family.name} predicate {describe(name)} for {describe(classes[bad])}",
            )
        cols.predicates.append(preds)
        cols.pred_owner.append(own)
        cols.lengths.append(lens)
    return cols


@dataclass
class _Selection:
    """The benchmark's frames, in final order (F frames).

    Attributes:
        keep_obj: (V,) bool objects left by the small-box filter.
        frames: (F,) int64 processed-frame row of each final frame.
        frame_video: (F,) int64 video index of each final frame.
        numbers: (F,) int64 frame number of each final frame.
        videos: (n_videos,) str kept video names, sorted.
        keys: (F,) str frame keys.
    """

    keep_obj: np.ndarray
    frames: np.ndarray
    frame_video: np.ndarray
    numbers: np.ndarray
    videos: np.ndarray
    keys: np.ndarray


def _select_frames(frames: _Frames, objs: _ObjectColumns, filter_small_boxes: bool) -> _Selection:
    """Small-box filter, valid frames, videos of more than two frames, order."""
    n_cand = len(frames.keys)
    keep_obj = np.ones(objs.owner.size, dtype=bool)
    if filter_small_boxes:
        keep_obj = np.minimum(objs.xywh[:, 2], objs.xywh[:, 3]) > SMALL_BOX_MAX_EDGE
    n_keep = np.bincount(objs.owner[keep_obj], minlength=n_cand)
    ok_idx = np.flatnonzero(n_keep > 0)
    key_array = np.array(frames.keys, dtype=str)
    video_of, number_of = _split_frame_keys(key_array[ok_idx], frames.object_path)
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
    kept = ok_idx[order]
    return _Selection(
        keep_obj=keep_obj,
        frames=kept,
        frame_video=frame_video[order].astype(np.int64),
        numbers=numbers[order],
        videos=videos_all[kept_videos].astype(str),
        keys=key_array[kept],
    )


@dataclass
class _BoxLayout:
    """Rows of ``gt.boxes``: per frame its person box then its kept objects.

    Attributes:
        obj_sel: (K,) int64 visible-object row of each kept object, in box order.
        obj_frame: (K,) int64 final frame of each kept object.
        obj_row: (K,) int64 box row of each kept object.
        person_row: (F,) int64 box row of each frame's person box.
        box_start: (F + 1,) int64 first box row per frame.
    """

    obj_sel: np.ndarray
    obj_frame: np.ndarray
    obj_row: np.ndarray
    person_row: np.ndarray
    box_start: np.ndarray


def _layout_boxes(objs: _ObjectColumns, sel: _Selection) -> _BoxLayout:
    """Where each kept object and each person box goes in ``gt.boxes``."""
    n_f = int(sel.frames.size)
    new_pos = np.full(int(objs.owner.max(initial=-1)) + 1, -1, np.int64)
    new_pos[sel.frames] = np.arange(n_f)
    obj_frame_new = np.where(sel.keep_obj, new_pos[objs.owner], -1)
    obj_sel = np.flatnonzero(obj_frame_new >= 0)
    obj_sel = obj_sel[np.argsort(obj_frame_new[obj_sel], kind="stable")]  # final object order
    obj_frame = obj_frame_new[obj_sel]
    n_obj_frame = np.bincount(obj_frame, minlength=n_f)
    box_start = np.zeros(n_f + 1, np.int64)
    np.cumsum(n_obj_frame + 1, out=box_start[1:])
    obj_start = box_start[:-1] - np.arange(n_f)  # first object (in object order) per frame
    obj_rank = np.arange(obj_sel.size) - obj_start[obj_frame]
    obj_row = box_start[obj_frame] + 1 + obj_rank
    return _BoxLayout(obj_sel, obj_frame, obj_row, box_start[:-1], box_start)


def _boxes(
    people: _PersonColumns, objs: _ObjectColumns, sel: _Selection, lay: _BoxLayout
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(boxes (B, 4) float32 x1 y1 x2 y2, box_labels (B,) int64, box_frame (B,) int64)."""
    n_b = int(lay.box_start[-1])
    boxes = np.empty((n_b, 4), np.float32)
    boxes[lay.person_row] = people.person_box[sel.frames]
    x = objs.xywh[lay.obj_sel]
    boxes[lay.obj_row] = np.stack([x[:, 0], x[:, 1], x[:, 0] + x[:, 2], x[:, 1] + x[:, 3]], axis=1)
    box_labels = np.empty(n_b, np.int64)
    box_labels[lay.person_row] = PERSON
    box_labels[lay.obj_row] = objs.labels[lay.obj_sel]
    box_frame = np.repeat(np.arange(sel.frames.size), np.diff(lay.box_start))
    return boxes, box_labels, box_frame


def _pair_labels(objs: _ObjectColumns, lay: _BoxLayout) -> dict[str, np.ndarray]:
    """Training labels of the (person, object) pairs, one per kept object."""
    n_obj = objs.owner.size
    pos_of_obj = np.full(n_obj, -1, np.int64)
    pos_of_obj[lay.obj_sel] = np.arange(lay.obj_sel.size)
    att_lens = objs.lengths[0]
    att_first = np.full(n_obj, -1, np.int64)
    has_att = att_lens > 0
    att_offsets = np.cumsum(att_lens) - att_lens
    att_first[has_att] = objs.predicates[0][att_offsets[has_att]] - ATTENTION.start
    out = {
        "pair_frame": lay.obj_frame.astype(np.int64),
        "pair_subject": lay.person_row[lay.obj_frame],
        "pair_object": lay.obj_row.astype(np.int64),
        "pair_attention": att_first[lay.obj_sel],
    }
    for fi, family in ((1, SPATIAL), (2, CONTACTING)):
        mh = np.zeros((lay.obj_sel.size, family.size), dtype=bool)
        pos = pos_of_obj[objs.pred_owner[fi]]
        use = pos >= 0
        mh[pos[use], objs.predicates[fi][use] - family.start] = True
        out[f"pair_{family.name}"] = mh
    return out


def _triplets(objs: _ObjectColumns, lay: _BoxLayout) -> dict[str, np.ndarray]:
    """GT triplets per kept object: attention, spatial (reversed), contacting."""
    pos_of_obj = np.full(objs.owner.size, -1, np.int64)
    pos_of_obj[lay.obj_sel] = np.arange(lay.obj_sel.size)
    t_pos = pos_of_obj[np.concatenate(objs.pred_owner)]
    t_pred = np.concatenate(objs.predicates)
    t_fam = np.concatenate([np.full(p.size, i, np.int64) for i, p in enumerate(objs.predicates)])
    use = t_pos >= 0
    t_pos, t_pred, t_fam = t_pos[use], t_pred[use], t_fam[use]
    t_order = np.lexsort((t_fam, t_pos))  # stable: list order kept within a family
    t_pos, t_pred, t_fam = t_pos[t_order], t_pred[t_order], t_fam[t_order]
    t_frame = lay.obj_frame[t_pos]
    t_obj_row = lay.obj_row[t_pos]
    t_person_row = lay.person_row[t_frame]
    spatial = t_fam == 1
    return {
        "triplet_frame": t_frame.astype(np.int64),
        "triplet_subject": np.where(spatial, t_obj_row, t_person_row).astype(np.int64),
        "triplet_object": np.where(spatial, t_person_row, t_obj_row).astype(np.int64),
        "triplet_predicate": t_pred.astype(np.int64),
    }


def _parse(
    ann: Path,
    split: str,
    *,
    filter_small_boxes: bool,
    filter_nonperson_box_frame: bool,
    show_progress: bool,
) -> ParsedSplit:
    """Read the two pickles and build the split (the steps above, in order)."""
    person, objects = _read_release(ann, show_progress)
    frames = _collect_frames(
        person,
        objects,
        split,
        filter_nonperson_box_frame=filter_nonperson_box_frame,
        show_progress=show_progress,
        ann=ann,
    )
    del person, objects  # free the other frames' records now (lowers the peak memory)
    people = _person_columns(frames)
    objs = _object_columns(frames)
    sel = _select_frames(frames, objs, filter_small_boxes)
    del frames
    lay = _layout_boxes(objs, sel)
    boxes, box_labels, box_frame = _boxes(people, objs, sel, lay)
    video_start = np.zeros(sel.videos.size + 1, np.int64)
    np.cumsum(np.bincount(sel.frame_video, minlength=sel.videos.size), out=video_start[1:])
    gt = GroundTruth(
        videos=sel.videos,
        video_start=video_start,
        frame_keys=sel.keys,
        frame_video=sel.frame_video,
        frame_size=people.frame_size[sel.frames],
        box_start=lay.box_start,
        box_frame=box_frame,
        boxes=boxes,
        box_labels=box_labels,
        **_triplets(objs, lay),
    )
    return ParsedSplit.from_arrays(
        {
            **{name: getattr(gt, name) for name in _GT_FIELDS},
            "frame_numbers": sel.numbers,
            "frame_has_person": people.has_person[sel.frames],  # all True when filtered
            **_pair_labels(objs, lay),
        }
    )


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
    parsed = None
    cache_path = None
    if cache:
        folder = Path(cache_dir).expanduser() if cache_dir is not None else default_cache_dir()
        file_name, cache_key = _cache_identity(ann, split, options)
        cache_path = folder / file_name
        parsed = _read_cache(cache_path, cache_key)
    if parsed is None:
        with gc_paused():  # millions of records are built and dropped; none are cyclic garbage
            parsed = _parse(ann, split, show_progress=show_progress, **options)
        if cache_path is not None:
            _write_cache(cache_path, cache_key, parsed)
    return ActionGenomeSplit(
        root=root,
        split=split,
        gt=parsed.gt,
        **{name: getattr(parsed, name) for name in _SPLIT_ARRAYS},
        **options,
    )
