"""``tr2 eval`` end to end on annotations in the release layout."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from tr2_core.cli import main
from tr2_core.data.action_genome import load_split
from tr2_core.data.release_writer import write_annotations
from tr2_core.evaluation.predictions import save_predictions
from tr2_core.evaluation.recall import evaluate
from tr2_core.testing.eval_fixtures import random_predictions, random_split, release_records

REPO = Path(__file__).resolve().parents[1]


def write_release(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, small_boxes: bool) -> Path:
    """Release annotations of a random test split (private parse cache). With
    ``small_boxes``, frame 0's objects are all small (<= 16 px: the frame leaves the
    filtered split) and one object of frame 1 is small."""
    monkeypatch.setenv("TR2_CACHE_DIR", str(tmp_path / "cache"))
    gt = random_split(num_videos=5, num_frames=40, seed=11)
    objects = gt.box_labels != 1
    for frame, count in ((0, None), (1, 1)) if small_boxes else ():
        rows = np.flatnonzero((gt.box_frame == frame) & objects)[:count]
        gt.boxes[rows, 2:] = gt.boxes[rows, :2] + 8
    person, records = release_records(gt, "test")
    root = tmp_path / "ag"
    write_annotations(root, person, records)
    return root


@pytest.fixture()
def ag_root(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    return write_release(tmp_path, monkeypatch, small_boxes=False)


def test_eval_prints_table_and_writes_json(
    ag_root: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    gt = load_split(ag_root, "test", show_progress=False).gt
    preds = random_predictions(gt, seed=4)
    pred_path = save_predictions(tmp_path / "preds.npz", preds)
    out = tmp_path / "metrics.json"
    per_frame = tmp_path / "per_frame.npz"
    argv = ["eval", "--data", str(ag_root), "--predictions", str(pred_path), "--task", "predcls"]
    rc = main([*argv, "--json", str(out), "--per-frame", str(per_frame)])
    assert rc == 0
    text = capsys.readouterr().out
    assert "PredCls: 40 frames" in text
    assert "Top-6" in text and "Per predicate family" in text and "Time-variant" in text
    metrics = json.loads(out.read_text())
    expected = evaluate(gt, preds, task="predcls")
    assert metrics["with"] == pytest.approx(expected["with"])
    assert metrics["top6"] == pytest.approx(expected["top6"])
    assert metrics["frames"] == 40
    assert set(metrics["with"]) == {f"{m}@{k}" for m in ("R", "mR") for k in (10, 20, 50, 100)}
    # The table shows percent of the JSON's fractions.
    assert f"{100 * metrics['with']['R@10']:.1f}" in text
    with np.load(per_frame, allow_pickle=False) as npz:
        assert npz["recall"].shape == (4, 40, 4)


def test_eval_rejects_a_bad_file_without_traceback(
    ag_root: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    gt = load_split(ag_root, "test", show_progress=False).gt
    preds = random_predictions(gt, seed=4)
    arrays = {name: getattr(preds, name) for name in preds.FIELDS}
    arrays["frame_keys"] = arrays["frame_keys"].copy()
    arrays["frame_keys"][3] = "zzz.mp4/000001.png"
    bad = tmp_path / "bad.npz"
    np.savez(bad, **arrays)
    rc = main(["eval", "--data", str(ag_root), "--predictions", str(bad), "--task", "sgdet"])
    assert rc == 2
    err = capsys.readouterr().err
    assert "zzz.mp4/000001.png" in err and "not frames of the ground-truth split" in err
    assert "Traceback" not in err


def test_eval_command_does_not_import_torch(ag_root: Path, tmp_path: Path) -> None:
    gt = load_split(ag_root, "test", show_progress=False).gt
    pred_path = save_predictions(tmp_path / "p.npz", random_predictions(gt, seed=1))
    code = (
        "import sys; from tr2_core.cli import main; "
        f"rc = main(['eval', '--data', {str(ag_root)!r}, '--predictions', {str(pred_path)!r}, "
        "'--task', 'sgcls']); "
        "assert 'torch' not in sys.modules, 'tr2 eval imported torch'; sys.exit(rc)"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    assert "SGCls: 40 frames" in done.stdout


@pytest.fixture()
def small_box_root(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    return write_release(tmp_path, monkeypatch, small_boxes=True)


def test_eval_defaults_to_the_baselines_small_box_protocol(
    small_box_root: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """SGCls: tr2 eval filters small boxes by default, as tr2 train / tr2 test;
    --no-filter-small-boxes turns it off (and says it is not the baselines')."""
    filtered = load_split(small_box_root, "test", filter_small_boxes=True, show_progress=False)
    full = load_split(small_box_root, "test", show_progress=False)
    assert len(filtered.gt.frame_keys) == len(full.gt.frame_keys) - 1
    preds = random_predictions(filtered.gt, seed=5)
    path = save_predictions(tmp_path / "preds.npz", preds)
    out = tmp_path / "m.json"
    argv = ["eval", "--data", str(small_box_root), "--predictions", str(path), "--task", "sgcls"]
    assert main([*argv, "--json", str(out)]) == 0
    expected = evaluate(filtered.gt, preds, task="sgcls")
    assert json.loads(out.read_text())["with"] == pytest.approx(expected["with"])
    capsys.readouterr()
    # unfiltered ground truth has one frame these predictions lack: refused by default
    assert main([*argv, "--no-filter-small-boxes"]) == 2
    err = capsys.readouterr().err
    assert f"first missing: '{full.gt.frame_keys[0]}'" in err
    assert main([*argv, "--no-filter-small-boxes", "--partial"]) == 0
    assert "the baselines' sgcls protocol has it on" in capsys.readouterr().err


def test_eval_refuses_predictions_of_frames_outside_the_split(
    small_box_root: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Predictions of the unfiltered split scored against the filtered one: an extra
    frame, named."""
    full = load_split(small_box_root, "test", show_progress=False).gt
    path = save_predictions(tmp_path / "preds.npz", random_predictions(full, seed=6))
    argv = ["eval", "--data", str(small_box_root), "--predictions", str(path), "--task", "sgdet"]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert "preds.npz" in err and f"first extra: '{full.frame_keys[0]}'" in err
    assert "Traceback" not in err
