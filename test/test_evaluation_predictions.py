"""The predictions .npz contract: round trip, and a clear error for each way to break it."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest

from tr2_core.errors import PredictionsError
from tr2_core.evaluation.predictions import (
    empty_predictions,
    load_predictions,
    save_predictions,
    validate_predictions,
)
from tr2_core.testing.eval_fixtures import random_predictions, random_split
from tr2_core.types import Predictions


@pytest.fixture(scope="module")
def preds() -> Predictions:
    gt = random_split(num_videos=3, num_frames=12, seed=3)
    return random_predictions(gt, seed=3, detect=True)


def arrays(p: Predictions) -> dict[str, np.ndarray]:
    return {name: getattr(p, name) for name in Predictions.FIELDS}


def write(path: Path, **arrays: np.ndarray) -> Path:
    np.savez(path, **arrays)
    return path


def test_round_trip_is_exact_and_atomic(tmp_path: Path, preds: Predictions) -> None:
    out = save_predictions(tmp_path / "sub" / "preds.npz", preds)
    assert out.name == "preds.npz"
    assert sorted(p.name for p in out.parent.iterdir()) == ["preds.npz"]  # no temp file left
    back = load_predictions(out)
    for name in Predictions.FIELDS:
        np.testing.assert_array_equal(getattr(back, name), getattr(preds, name), name)
    assert back.frame_keys.dtype.kind == "U"
    assert back.box_frame.dtype == np.int64 and back.boxes.dtype == np.float32


def test_compatible_dtypes_are_converted(tmp_path: Path, preds: Predictions) -> None:
    a = arrays(preds)
    a["box_frame"] = a["box_frame"].astype(np.int32)
    a["attention"] = a["attention"].astype(np.float64)
    back = load_predictions(write(tmp_path / "p.npz", **a))
    assert back.box_frame.dtype == np.int64 and back.attention.dtype == np.float32


def test_empty_predictions_are_valid(tmp_path: Path) -> None:
    back = load_predictions(save_predictions(tmp_path / "e.npz", empty_predictions()))
    assert back.frame_keys.shape == (0,)


def test_not_a_file_or_not_npz(tmp_path: Path) -> None:
    with pytest.raises(PredictionsError, match="no such predictions file"):
        load_predictions(tmp_path / "missing.npz")
    bad = tmp_path / "bad.npz"
    bad.write_bytes(b"not a zip at all")
    with pytest.raises(PredictionsError, match="bad.npz"):
        load_predictions(bad)


def test_missing_array_is_named(tmp_path: Path, preds: Predictions) -> None:
    a = arrays(preds)
    del a["contacting"]
    with pytest.raises(PredictionsError, match=r"missing array\(s\) contacting"):
        load_predictions(write(tmp_path / "p.npz", **a))


def test_object_array_is_refused_without_unpickling(tmp_path: Path, preds: Predictions) -> None:
    a = arrays(preds)
    a["frame_keys"] = np.array(list(preds.frame_keys), dtype=object)
    with pytest.raises(PredictionsError, match="frame_keys.*unpickling"):
        load_predictions(write(tmp_path / "p.npz", **a))


@pytest.mark.parametrize(
    ("name", "value", "message"),
    [
        ("frame_keys", lambda p: np.arange(p.frame_keys.shape[0]), "frame_keys.*unicode"),
        ("box_labels", lambda p: p.box_labels.astype(np.float32), "box_labels.*integer"),
        ("boxes", lambda p: p.boxes[:, :3], r"boxes.*shape .*expected \(B, 4\)"),
        ("spatial", lambda p: p.spatial[:, :5], r"spatial.*expected \(P, 6\)"),
        ("contacting", lambda p: p.contacting[:-1], "contacting.*rows"),
        ("box_scores", lambda p: p.box_scores[:-1], "box_scores.*rows"),
    ],
)
def test_wrong_dtype_or_shape(
    tmp_path: Path, preds: Predictions, name: str, value, message: str
) -> None:
    a = arrays(preds)
    a[name] = value(preds)
    with pytest.raises(PredictionsError, match=message):
        load_predictions(write(tmp_path / "p.npz", **a))


def modified(p: Predictions, name: str, row: int, value) -> Predictions:
    arr = getattr(p, name).copy()
    arr[row] = value
    return dataclasses.replace(p, **{name: arr})


@pytest.mark.parametrize(
    ("name", "row", "value", "message"),
    [
        ("attention", 2, np.nan, "attention' row 2 holds NaN"),
        ("boxes", 5, np.inf, "boxes' row 5 holds NaN or infinity"),
        ("spatial", 1, 1.5, r"spatial' row 1 holds a score outside \[0, 1\]"),
        ("box_scores", 0, -0.1, r"box_scores' row 0 holds a score outside"),
        ("boxes", 3, [10.0, 10.0, 5.0, 20.0], r"boxes\[3\].*x2 < x1"),
        ("box_labels", 4, 0, r"box_labels\[4\] = 0 is not an AG object index"),
        ("box_labels", 4, 37, r"box_labels\[4\] = 37"),
        ("box_frame", 1, 99, r"box_frame\[1\] = 99 is not a row of frame_keys"),
        ("pair_subject", 0, -1, r"pair_subject\[0\] = -1 is not a row of boxes"),
        ("pair_object", 2, 10_000, r"pair_object\[2\] = 10000"),
    ],
)
def test_bad_values_are_located(preds: Predictions, name: str, row: int, value, message) -> None:
    with pytest.raises(PredictionsError, match=message):
        validate_predictions(modified(preds, name, row, value), "my.npz")


def test_pair_across_frames(preds: Predictions) -> None:
    # Pair 0's object moved to a box of another frame.
    other = int(np.flatnonzero(preds.box_frame != preds.box_frame[preds.pair_subject[0]])[0])
    bad = modified(preds, "pair_object", 0, other)
    with pytest.raises(PredictionsError, match="pair 0 links boxes of different frames"):
        validate_predictions(bad)


def test_duplicate_frame_key(preds: Predictions) -> None:
    keys = preds.frame_keys.copy()
    keys[1] = keys[0]
    with pytest.raises(PredictionsError, match=f"'{keys[0]}' more than once"):
        validate_predictions(dataclasses.replace(preds, frame_keys=keys))


def test_save_refuses_invalid(tmp_path: Path, preds: Predictions) -> None:
    with pytest.raises(PredictionsError, match="NaN"):
        save_predictions(tmp_path / "x.npz", modified(preds, "contacting", 0, np.nan))
    assert not any(tmp_path.iterdir())
