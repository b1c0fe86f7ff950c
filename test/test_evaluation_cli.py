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


@pytest.fixture()
def ag_root(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("TR2_CACHE_DIR", str(tmp_path / "cache"))
    gt = random_split(num_videos=5, num_frames=40, seed=11)
    person, objects = release_records(gt, "test")
    root = tmp_path / "ag"
    write_annotations(root, person, objects)
    return root


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
