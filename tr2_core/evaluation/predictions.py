"""The predictions ``.npz`` file: the contract between a model and the evaluator.

Layout (``docs/evaluation.md``), one file per split, columnar::

    frame_keys      (F,)   str      'VIDEO.mp4/FRAME.png', one per predicted frame
    box_frame       (B,)   int64    row index into frame_keys
    boxes           (B,4)  float32  x1 y1 x2 y2, original-image pixels
    box_labels      (B,)   int64    AG object index 1..36 (1 = person)
    box_scores      (B,)   float32  object confidence (1.0 in PredCls)
    pair_subject    (P,)   int64    row index into boxes (the person box)
    pair_object     (P,)   int64    row index into boxes (the object box)
    attention       (P,3)  float32  probabilities
    spatial         (P,6)  float32  sigmoid scores
    contacting      (P,17) float32  sigmoid scores

:func:`load_predictions` reads a file with ``allow_pickle=False`` and
:func:`validate_predictions` checks every rule below; a violation raises
:class:`~tr2_core.errors.PredictionsError` naming the file, the array and the
first offending row:

* every array present (extra arrays are ignored), with the right kind
  (``frame_keys`` a unicode string array, indices and labels integers, the rest
  floating point) and shape; arrays are converted to the contract's dtypes;
* no duplicate frame key;
* ``box_frame`` in ``0..F-1``, ``pair_subject`` / ``pair_object`` in ``0..B-1``,
  a pair's subject and object boxes in the same frame;
* ``box_labels`` in ``1..36``;
* no NaN or infinity; ``x2 >= x1`` and ``y2 >= y1`` (catches ``x y w h``
  boxes written by mistake);
* ``box_scores`` and the three predicate score arrays in ``[0, 1]``.

Whether each predicted frame is a frame of the ground-truth split is checked by
the evaluator, which has the ground truth; :func:`check_frame_coverage` warns
about ground-truth frames the file does not predict (they score 0).

Before any array is inflated, :func:`load_predictions` reads the zip directory
and each array's ``.npy`` header: an array whose header does not match its
stored size, or that inflates more than :data:`MAX_INFLATION` times its
compressed size (beyond :data:`INFLATION_FREE_BYTES`), is refused.
"""

from __future__ import annotations

import os
import warnings
import zipfile
from collections.abc import Mapping
from pathlib import Path

import numpy as np

from tr2_core.errors import PredictionsError, clip, describe
from tr2_core.npz import native_byte_order
from tr2_core.outputs import atomic_write
from tr2_core.types import Predictions
from tr2_core.vocab import ATTENTION, CONTACTING, NUM_OBJECT_CLASSES, SPATIAL

__all__ = [
    "load_predictions",
    "save_predictions",
    "validate_predictions",
    "empty_predictions",
    "check_frame_coverage",
    "ARRAY_SPECS",
    "MAX_INFLATION",
    "INFLATION_FREE_BYTES",
]

MAX_INFLATION = 64
"""Most an array may grow when inflated from the zip (``np.savez_compressed``
of real scores stays far below; a zip bomb is far above)."""
INFLATION_FREE_BYTES = 64 << 20
"""Arrays up to this size (bytes) are read whatever their compression ratio."""

# name -> (dtype kind check, contract dtype, trailing shape after the row axis, length group)
_INT, _FLOAT, _STR = "integer", "floating", "unicode string"
ARRAY_SPECS: dict[str, tuple[str, type, tuple[int, ...], str]] = {
    "frame_keys": (_STR, np.str_, (), "F"),
    "box_frame": (_INT, np.int64, (), "B"),
    "boxes": (_FLOAT, np.float32, (4,), "B"),
    "box_labels": (_INT, np.int64, (), "B"),
    "box_scores": (_FLOAT, np.float32, (), "B"),
    "pair_subject": (_INT, np.int64, (), "P"),
    "pair_object": (_INT, np.int64, (), "P"),
    "attention": (_FLOAT, np.float32, (ATTENTION.size,), "P"),
    "spatial": (_FLOAT, np.float32, (SPATIAL.size,), "P"),
    "contacting": (_FLOAT, np.float32, (CONTACTING.size,), "P"),
}
"""Per array: kind, dtype of the contract, shape after the first axis, and the
letter of the length it shares with other arrays."""

_GROUP_NAMES = {"F": "predicted frame", "B": "box", "P": "pair"}


def _kind_ok(arr: np.ndarray, kind: str) -> bool:
    if kind == _STR:
        return arr.dtype.kind == "U"
    if kind == _INT:
        return arr.dtype.kind in "iu"
    return arr.dtype.kind == "f"


def _shape_text(trailing: tuple[int, ...], group: str) -> str:
    return "(" + ", ".join([group, *map(str, trailing)]) + ("," if not trailing else "") + ")"


def _first(mask: np.ndarray) -> int:
    """Index of the first True row of a (N,) or (N, ...) bool mask."""
    if mask.ndim > 1:
        mask = mask.reshape(mask.shape[0], -1).any(axis=1)
    return int(np.flatnonzero(mask)[0])


def _normalise(arrays: Mapping[str, object], source: str) -> Predictions:
    """Check presence, kind and shape of every array; convert to the contract dtypes."""
    missing = [name for name in ARRAY_SPECS if name not in arrays]
    if missing:
        raise PredictionsError(
            f"{source}: missing array(s) {', '.join(missing)} "
            f"(a predictions file holds {', '.join(ARRAY_SPECS)})"
        )
    out: dict[str, np.ndarray] = {}
    lengths: dict[str, tuple[int, str]] = {}
    for name, (kind, dtype, trailing, group) in ARRAY_SPECS.items():
        arr = np.asarray(arrays[name])
        if not _kind_ok(arr, kind):
            hint = " (save keys with np.asarray(keys, dtype=str))" if kind == _STR else ""
            raise PredictionsError(
                f"{source}: array '{name}' has dtype {arr.dtype}, expected {kind}{hint}"
            )
        if arr.ndim != 1 + len(trailing) or arr.shape[1:] != trailing:
            raise PredictionsError(
                f"{source}: array '{name}' has shape {arr.shape}, "
                f"expected {_shape_text(trailing, group)}"
            )
        if group in lengths and lengths[group][0] != arr.shape[0]:
            other_len, other = lengths[group]
            raise PredictionsError(
                f"{source}: array '{name}' has {arr.shape[0]} rows but '{other}' has "
                f"{other_len}; both must have one row per {_GROUP_NAMES[group]}"
            )
        lengths.setdefault(group, (arr.shape[0], name))
        if kind == _INT and arr.dtype.kind == "u" and arr.dtype.itemsize == 8:
            beyond = arr > np.iinfo(np.int64).max  # would wrap to negative values
            if beyond.any():
                row = _first(beyond)
                raise PredictionsError(
                    f"{source}: {name}[{row}] = {int(arr[row])} does not fit int64"
                )
        out[name] = arr if kind == _STR else np.ascontiguousarray(arr, dtype=dtype)
    return Predictions(**out)


def validate_predictions(preds: Predictions, source: str = "predictions") -> Predictions:
    """Check ``preds`` against the contract (module docstring).

    Args:
        preds: predictions, as loaded or built in memory.
        source: what to call them in error messages (usually the file path).

    Returns:
        The same predictions with every array in the contract's dtype (no copy
        where it already is).

    Raises:
        PredictionsError: naming the array, the problem and the first bad row.
    """
    p = _normalise({name: getattr(preds, name) for name in Predictions.FIELDS}, source)
    n_frames, n_boxes = p.frame_keys.shape[0], p.boxes.shape[0]

    if n_frames:
        keys_sorted = np.sort(p.frame_keys)
        dup = keys_sorted[1:] == keys_sorted[:-1]
        if dup.any():
            key = keys_sorted[1:][dup][0]
            raise PredictionsError(f"{source}: frame_keys holds '{key}' more than once")

    def check_index(name: str, values: np.ndarray, bound: int, what: str) -> None:
        bad = (values < 0) | (values >= bound)
        if bad.any():
            i = _first(bad)
            raise PredictionsError(
                f"{source}: {name}[{i}] = {int(values[i])} is not a row of {what} (0..{bound - 1})"
            )

    check_index("box_frame", p.box_frame, n_frames, f"frame_keys ({n_frames} frames)")
    check_index("pair_subject", p.pair_subject, n_boxes, f"boxes ({n_boxes} boxes)")
    check_index("pair_object", p.pair_object, n_boxes, f"boxes ({n_boxes} boxes)")

    bad = (p.box_labels < 1) | (p.box_labels >= NUM_OBJECT_CLASSES)
    if bad.any():
        i = _first(bad)
        raise PredictionsError(
            f"{source}: box_labels[{i}] = {int(p.box_labels[i])} is not an AG object "
            f"index (1..{NUM_OBJECT_CLASSES - 1})"
        )

    for name in ("boxes", "box_scores", "attention", "spatial", "contacting"):
        values = getattr(p, name)
        bad = ~np.isfinite(values)
        if bad.any():
            i = _first(bad)
            raise PredictionsError(f"{source}: array '{name}' row {i} holds NaN or infinity")
    for name in ("box_scores", "attention", "spatial", "contacting"):
        values = getattr(p, name)
        bad = (values < 0) | (values > 1)
        if bad.any():
            i = _first(bad)
            raise PredictionsError(
                f"{source}: array '{name}' row {i} holds a score outside [0, 1] "
                f"({values[i].tolist()}); scores are probabilities / sigmoids"
            )
    bad = (p.boxes[:, 2] < p.boxes[:, 0]) | (p.boxes[:, 3] < p.boxes[:, 1])
    if bad.any():
        i = _first(bad)
        raise PredictionsError(
            f"{source}: boxes[{i}] = {p.boxes[i].tolist()} has x2 < x1 or y2 < y1 "
            "(boxes are x1 y1 x2 y2, not x y w h)"
        )

    sub_frame = p.box_frame[p.pair_subject]
    obj_frame = p.box_frame[p.pair_object]
    bad = sub_frame != obj_frame
    if bad.any():
        i = _first(bad)
        raise PredictionsError(
            f"{source}: pair {i} links boxes of different frames: subject box "
            f"{int(p.pair_subject[i])} is in '{p.frame_keys[sub_frame[i]]}', object box "
            f"{int(p.pair_object[i])} is in '{p.frame_keys[obj_frame[i]]}'"
        )
    return p


def _check_member(zf: zipfile.ZipFile, info: zipfile.ZipInfo, name: str, source: str) -> None:
    """Bound an array before inflating it: the zip directory's sizes and the
    ``.npy`` header (dtype, shape) must agree, within :data:`MAX_INFLATION`."""
    if info.file_size > INFLATION_FREE_BYTES and info.file_size > MAX_INFLATION * max(
        info.compress_size, 1
    ):
        raise PredictionsError(
            f"{source}: array '{name}' would inflate from {info.compress_size:,} to "
            f"{info.file_size:,} bytes (more than {MAX_INFLATION}x): refused"
        )
    with zf.open(info) as member:
        version = np.lib.format.read_magic(member)
        read_header = (
            np.lib.format.read_array_header_1_0
            if version == (1, 0)
            else np.lib.format.read_array_header_2_0
        )
        shape, _fortran, dtype = read_header(member)
        header_bytes = member.tell()
    if dtype.hasobject or dtype.kind == "O":
        raise PredictionsError(
            f"{source}: array '{name}' cannot be read without unpickling (dtype "
            f"{describe(str(dtype))}); store strings as a unicode array (dtype=str)"
        )
    count = 1
    for dim in shape:
        count *= dim
    if header_bytes + count * dtype.itemsize != info.file_size:
        raise PredictionsError(
            f"{source}: array '{name}' header says {describe(shape)} {dtype} but the file "
            f"stores {info.file_size - header_bytes:,} bytes of data (corrupt file)"
        )


def _read_arrays(path: Path) -> dict[str, np.ndarray]:
    """The contract's arrays of an ``.npz`` file, each bounded before it is read."""
    if not zipfile.is_zipfile(path):
        hint = " (a .npy holds one array; predictions are a .npz of named arrays)"
        raise PredictionsError(f"{path}: not a .npz file{hint if path.suffix == '.npy' else ''}")
    arrays: dict[str, np.ndarray] = {}
    with zipfile.ZipFile(path) as zf, np.load(path, allow_pickle=False) as npz:
        members = {info.filename: info for info in zf.infolist()}
        for name in ARRAY_SPECS:
            info = members.get(f"{name}.npy")
            if info is None:
                continue
            _check_member(zf, info, name, str(path))
            arrays[name] = native_byte_order(npz[name])
    return arrays


def load_predictions(path: str | os.PathLike[str]) -> Predictions:
    """Read and validate a predictions ``.npz`` (never unpickles anything).

    Raises:
        PredictionsError: unreadable file, an array that would inflate beyond
            bounds, or any rule of the contract broken (the message names the
            file and the array).
    """
    path = Path(path)
    if not path.is_file():
        what = "a folder, not a predictions file" if path.is_dir() else "no such predictions file"
        raise PredictionsError(f"{path}: {what}")
    try:
        arrays = _read_arrays(path)
    except PredictionsError:
        raise
    except (OSError, ValueError, zipfile.BadZipFile, EOFError, RuntimeError) as e:
        raise PredictionsError(f"{path}: not a readable .npz file ({clip(str(e))})") from None
    return validate_predictions(_normalise(arrays, str(path)), source=str(path))


def small_box_filter(task: str, requested: bool | None = None) -> bool:
    """Whether objects with a box short edge <= 16 px are left out of the ground truth:
    ``requested`` when given, else the baselines' protocol for ``task`` (on for SGCls and
    SGDet, off for PredCls). Every command (train, test, eval, plot, cache-features)
    takes its default from here."""
    if requested is not None:
        return bool(requested)
    return task != "predcls"


def check_frame_coverage(
    gt_frame_keys: np.ndarray, preds: Predictions, source: str, *, strict: bool = True
) -> int:
    """Refuse predictions whose frame set is not the split's.

    Missing ground-truth frames would score 0 and extra frames (another split, other
    annotations, another small-box filter) would be ignored: either way the numbers are
    not the split's. The message names the counts and the first missing frame (in
    ground-truth order) and the first extra frame (in prediction order).

    Args:
        gt_frame_keys: (F,) str the split's frame keys.
        preds: the predictions.
        source: what to call them in the message (the file path).
        strict: raise (default); ``False`` warns (``UserWarning``) instead.

    Returns:
        The number of missing frames (0 when the sets match).

    Raises:
        PredictionsError: with ``strict``, when the frame sets differ.
    """
    gt_keys = np.asarray(gt_frame_keys).astype(str)
    pred_keys = np.asarray(preds.frame_keys).astype(str)
    missing = np.flatnonzero(~np.isin(gt_keys, pred_keys))
    extra = np.flatnonzero(~np.isin(pred_keys, gt_keys))
    problems = []
    if missing.size:
        problems.append(
            f"{missing.size} of {len(gt_keys)} ground-truth frames have no predictions "
            f"(first missing: {describe(str(gt_keys[missing[0]]))}; they would score 0)"
        )
    if extra.size:
        problems.append(
            f"{extra.size} predicted frames are not frames of the ground-truth split "
            f"(first extra: {describe(str(pred_keys[extra[0]]))})"
        )
    if problems:
        message = f"{source}: frame set does not match the split: " + "; ".join(problems)
        if strict:
            raise PredictionsError(message)
        warnings.warn(message, stacklevel=2)
    return int(missing.size)


def save_predictions(path: str | os.PathLike[str], preds: Predictions) -> Path:
    """Validate ``preds`` and write them atomically (temporary file + ``os.replace``).

    The file is an uncompressed ``.npz`` (fast to load; ~16 MB for the AG test
    split in PredCls).

    Returns:
        The path written.
    """
    path = Path(path)
    preds = validate_predictions(preds, source=str(path))
    arrays = {name: getattr(preds, name) for name in Predictions.FIELDS}
    return atomic_write(path, lambda f: np.savez(f, **arrays))


def empty_predictions() -> Predictions:
    """Predictions with no frame (every ground-truth frame then scores 0)."""
    return Predictions(
        frame_keys=np.zeros(0, dtype="<U1"),
        box_frame=np.zeros(0, np.int64),
        boxes=np.zeros((0, 4), np.float32),
        box_labels=np.zeros(0, np.int64),
        box_scores=np.zeros(0, np.float32),
        pair_subject=np.zeros(0, np.int64),
        pair_object=np.zeros(0, np.int64),
        attention=np.zeros((0, ATTENTION.size), np.float32),
        spatial=np.zeros((0, SPATIAL.size), np.float32),
        contacting=np.zeros((0, CONTACTING.size), np.float32),
    )
