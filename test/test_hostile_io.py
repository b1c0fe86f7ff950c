"""Hostile outputs, resume and logs: what a command may
replace, how a killed run's files are reclaimed, how a resume treats damaged state.
Frame-level failures are tested with their tools (test_runners_video_runner.py, test_ros_bag.py)."""

from __future__ import annotations

import json
import logging
import math
import subprocess
import sys

import pytest
import torch
from ag_fixtures import small_release

from tr2_core.cli import main
from tr2_core.data.action_genome import load_split
from tr2_core.errors import WeightsError
from tr2_core.evaluation.predictions import save_predictions
from tr2_core.outputs import (
    MARKER,
    OutputPathError,
    atomic_write_text,
    prepare_folder,
    remove_stale_partials,
)
from tr2_core.testing.eval_fixtures import random_predictions
from tr2_core.train.checkpoint import (
    append_log,
    atomic_torch_save,
    get_rng_state,
    reconcile_log,
    restore_training,
)


def _dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


# ----------------------------------------------------------------------------- outputs
def test_eval_refuses_outputs_that_name_its_inputs(tmp_path, capsys):
    """`tr2 eval --json PRED.npz` must not overwrite the predictions with the metrics."""
    rb, _ = small_release()
    root = rb.write(tmp_path / "ag")
    gt = load_split(root, "test", show_progress=False).gt
    preds = save_predictions(tmp_path / "p.npz", random_predictions(gt, seed=1))
    before = preds.read_bytes()
    argv = ["eval", "--data", str(root), "--predictions", str(preds), "--task", "predcls"]
    for flag in ("--json", "--per-frame"):
        assert main([*argv, flag, str(preds)]) == 2
        assert f"{flag} {preds} is the input" in capsys.readouterr().err
    assert main([*argv, "--json", str(root / "annotations" / "m.json")]) == 2
    assert "lies inside the input" in capsys.readouterr().err
    assert preds.read_bytes() == before
    assert main([*argv, "--json", str(tmp_path / "m.json")]) == 0


def test_run_folders_are_never_unrelated_folders(tmp_path):
    """`tr2 train --out` / `tr2 test --out` write only into new, empty or own folders."""
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "thesis.tex").write_text("mine")
    with pytest.raises(OutputPathError, match="tr2 did not write"):
        prepare_folder(mine, "--out", "tr2-train-run")
    run = prepare_folder(tmp_path / "run", "--out", "tr2-train-run")
    (run / "last.pt").write_bytes(b"x")
    assert prepare_folder(run, "--out", "tr2-train-run") == run  # its own kind: reused
    with pytest.raises(OutputPathError, match="a tr2-train-run folder"):
        prepare_folder(run, "--out", "tr2-test")
    assert prepare_folder(mine, "--out", "tr2-train-run", adopt=True) == mine  # old runs
    assert (mine / MARKER).is_file() and (mine / "thesis.tex").is_file()


# ----------------------------------------------------------------------------- resume
def test_killed_atomic_saves_are_reclaimed(tmp_path):
    """A save killed mid-write must not leave its multi-MB temporary file forever."""
    dead = _dead_pid()
    stale = tmp_path / f".last.pt.tr2-partial-{dead}-abc123"
    stale.write_bytes(b"\0" * 1000)
    stale_dir = tmp_path / f".out.tr2-partial-{dead}-xyz"
    stale_dir.mkdir()
    live = tmp_path / ".last.pt.tr2-partial-1-live"  # pid 1 is alive: another writer's
    live.write_bytes(b"")
    atomic_torch_save({"x": torch.zeros(2)}, tmp_path / "last.pt")
    assert not stale.exists() and not stale_dir.exists() and live.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(["last.pt", live.name])
    assert remove_stale_partials(tmp_path) == []


def _training_state():
    torch.manual_seed(0)
    model = torch.nn.Linear(3, 2)
    optimizer = torch.optim.AdamW(model.parameters())
    scheduler = torch.optim.lr_scheduler.ReduceLROnPlateau(optimizer, mode="max")
    scaler = torch.amp.GradScaler("cuda", enabled=False)
    ckpt = {
        "model": model.state_dict(), "optimizer": optimizer.state_dict(),
        "scheduler": scheduler.state_dict(), "scaler": scaler.state_dict(),
        "rng": get_rng_state(), "epoch": 2, "best_metric": 0.5, "extractor_fingerprint": "f",
    }  # fmt: skip
    return ckpt, dict(relation=model, optimizer=optimizer, scheduler=scheduler, scaler=scaler)


@pytest.mark.parametrize(
    ("part", "broken", "named"),
    [
        ("model", lambda c: torch.nn.Linear(4, 2).state_dict(), "model weights"),
        ("optimizer", lambda c: {"state": {}, "param_groups": []}, "optimizer state"),
        ("rng", lambda c: {"python": [3, torch.zeros(1), None]}, "random generator state"),
    ],
)
def test_resume_with_state_that_does_not_fit_is_a_weights_error(tmp_path, part, broken, named):
    """A clear error, not a raw RuntimeError / ValueError / KeyError traceback."""
    ckpt, state = _training_state()
    assert restore_training(ckpt, tmp_path / "last.pt", extractor_fingerprint="f", **state) == (
        2, 0.5,
    )  # fmt: skip
    ckpt[part] = broken(ckpt)
    with pytest.raises(WeightsError, match=f"last.pt: its {named} does not fit this run"):
        restore_training(ckpt, tmp_path / "last.pt", extractor_fingerprint="f", **state)


def _records(path):
    return [json.loads(line)["epoch"] for line in path.read_text().splitlines()]


def test_resume_log_drops_partial_lines_and_duplicates(tmp_path, caplog):
    """A partial last log line must not stop resume with a JSONDecodeError."""
    log = tmp_path / "metrics.jsonl"
    for epoch in (1, 2):
        append_log(log, {"epoch": epoch, "loss": 1.0 / epoch})
    with open(log, "a") as f:
        f.write('{"epoch": 3, "lo')  # killed mid-line
    with caplog.at_level(logging.WARNING, logger="tr2.train"):
        reconcile_log(log, 2, json.dumps({"epoch": 2, "loss": 0.5}))
    assert _records(log) == [1, 2]
    assert "line 3 is partial or garbled; dropped" in caplog.text
    # killed after the log line of epoch 3, before its checkpoint: that line goes
    append_log(log, {"epoch": 3, "loss": 0.3})
    reconcile_log(log, 2, None)
    assert _records(log) == [1, 2]
    # killed after the checkpoint of epoch 3, before its log line: restored from it
    reconcile_log(log, 3, json.dumps({"epoch": 3, "loss": math.pi}))
    assert _records(log) == [1, 2, 3] and json.loads(log.read_text().splitlines()[2])[
        "loss"
    ] == pytest.approx(math.pi)
    atomic_write_text(log, "")
    reconcile_log(log, 0, None)
    assert log.read_text() == ""


# --------------------------------------------------------------------------- classes 6, 7
def test_checkpoint_with_nan_weights_is_refused_at_load(tmp_path):
    """Refused at load, not loaded and later blamed on `tr2 test`'s own predictions.npz."""
    from tr2_core.run import load_checkpoint

    path = tmp_path / "best.pt"
    weights = {"head.weight": torch.ones(2, 3), "head.bias": torch.tensor([0.0, float("nan")])}
    torch.save({"model": weights, "config": {}, "epoch": 1}, path)
    with pytest.raises(WeightsError, match=r"best.pt: weight head.bias \(2,\) has 1 NaN/inf"):
        load_checkpoint(path)


@pytest.fixture(scope="module")
def predcls_engine():
    from engine_fixtures import tiny_model

    from tr2_core.stream.engine import StreamingEngine

    model = tiny_model()
    return lambda: StreamingEngine(
        model.extractor, model.relation, window=2, mode="predcls", score_threshold=0.0
    )


def test_engine_arguments_get_one_clear_error(predcls_engine):
    """Clear errors, not TypeError / IndexError tracebacks from deep inside numpy or torch."""
    from engine_fixtures import frames

    from tr2_core.stream.engine import EngineInputError

    engine, image = predcls_engine(), frames(1)[0]
    boxes = [[0, 0, 10, 10], [5, 5, 20, 20]]
    cases = [
        ({}, "mode 'predcls' needs boxes"),
        ({"boxes": boxes}, "mode 'predcls' needs labels"),
        ({"boxes": boxes, "labels": [1, 99]}, r"object indices 0..36; got \[99\] at rows \[1\]"),
        ({"boxes": boxes, "labels": [1, -3]}, r"got \[-3\]"),
        ({"boxes": [1, 2, 3], "labels": [1]}, r"boxes must be \(N, 4\)"),
        ({"boxes": boxes, "labels": [1.5, 2.0]}, r"labels must be \(N,\) integers"),
    ]
    for stamp, (kwargs, match) in enumerate(cases):
        with pytest.raises(EngineInputError, match=match):
            engine.process(image, stamp, **kwargs)


def test_frame_without_a_pair_keeps_its_entities(predcls_engine):
    """Class 6: main returned an empty result (the entities vanished silently) when a
    frame had no person-object pair."""
    from engine_fixtures import frames

    result = predcls_engine().process(frames(1)[0], 0, boxes=[[2, 2, 30, 30]], labels=[1])
    assert result.entity_labels.tolist() == [1] and result.entity_boxes.shape == (1, 4)
    assert result.pair_subject.shape == (0,) and result.attention.shape[0] == 0
