"""The frequency baseline: statistics by hand, and the demo path baseline -> eval."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from tr2_core.cli import main
from tr2_core.data.action_genome import load_split
from tr2_core.data.release_writer import write_annotations
from tr2_core.errors import ConfigError, WeightsError
from tr2_core.evaluation.predictions import validate_predictions
from tr2_core.evaluation.recall import evaluate
from tr2_core.frequency_baseline import (
    fit_frequency,
    load_frequency_table,
    predict_frequency,
    save_frequency_table,
)
from tr2_core.testing.eval_fixtures import random_predictions, random_split, release_records
from tr2_core.vocab import CONTACTING, OBJECT_INDEX, SPATIAL

CUP = OBJECT_INDEX["cup/glass/bottle"]
BOOK = OBJECT_INDEX["book"]
DOOR = OBJECT_INDEX["door"]


def small_split() -> SimpleNamespace:
    """Boxes: frame 0 person, cup, cup; frame 1 person, book. Three pairs."""
    gt = SimpleNamespace(
        frame_keys=np.array(["v.mp4/000001.png", "v.mp4/000002.png"]),
        box_frame=np.array([0, 0, 0, 1]),
        boxes=np.array([[0, 0, 9, 9], [10, 10, 19, 19], [20, 20, 29, 29], [0, 0, 5, 5]], "f4"),
        box_labels=np.array([1, CUP, CUP, BOOK]),
    )
    spatial = np.zeros((3, SPATIAL.size), dtype=bool)
    spatial[0, 0] = spatial[1, 0] = spatial[1, 2] = True  # cup: above twice, in_front_of once
    contacting = np.zeros((3, CONTACTING.size), dtype=bool)
    contacting[2, 5] = True  # book: holding
    return SimpleNamespace(
        gt=gt,
        pair_subject=np.array([0, 0, 3]),
        pair_object=np.array([1, 2, 3]),
        pair_attention=np.array([0, 1, -1]),
        pair_spatial=spatial,
        pair_contacting=contacting,
    )


def test_frequencies_by_hand(tmp_path: Path) -> None:
    table = fit_frequency(small_split())
    assert table.pairs[CUP] == 2 and table.pairs[BOOK] == 1
    np.testing.assert_allclose(table.attention[CUP], [0.5, 0.5, 0.0])
    np.testing.assert_allclose(table.spatial[CUP], [1.0, 0.0, 0.5, 0.0, 0.0, 0.0])
    assert table.contacting[BOOK][5] == 1.0 and table.contacting[BOOK].sum() == 1.0
    # The book has no attention label: pooled distribution of the cups' labels.
    np.testing.assert_allclose(table.attention[BOOK], [0.5, 0.5, 0.0])
    # An unseen class gets the pooled statistics of all pairs.
    np.testing.assert_allclose(table.spatial[DOOR], [2 / 3, 0, 1 / 3, 0, 0, 0])
    back = load_frequency_table(save_frequency_table(tmp_path / "freq.npz", table))
    np.testing.assert_array_equal(back.contacting, table.contacting)
    with pytest.raises(WeightsError, match="no such frequency table"):
        load_frequency_table(tmp_path / "missing.npz")


def test_predictions_follow_the_contract() -> None:
    split = small_split()
    preds = validate_predictions(predict_frequency(fit_frequency(split), split))
    assert preds.box_scores.tolist() == [1.0] * 4
    np.testing.assert_allclose(preds.spatial[0], [1.0, 0.0, 0.5, 0.0, 0.0, 0.0])
    with pytest.raises(ConfigError, match="PredCls only"):
        predict_frequency(fit_frequency(split), split, task="sgdet")


def test_baseline_command_then_eval(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("TR2_CACHE_DIR", str(tmp_path / "cache"))
    test_gt = random_split(num_videos=4, num_frames=30, seed=21)
    train_gt = random_split(num_videos=12, num_frames=90, seed=22)
    train_gt = dataclasses.replace(
        train_gt,
        videos=np.char.add("t", train_gt.videos),
        frame_keys=np.char.add("t", train_gt.frame_keys),
    )
    person, objects = release_records(test_gt, "test")
    p2, o2 = release_records(train_gt, "train")
    root = tmp_path / "ag"
    write_annotations(root, {**person, **p2}, {**objects, **o2})

    out = tmp_path / "freq_preds.npz"
    assert main(["baseline", "--data", str(root), "--out", str(out)]) == 0
    assert "predictions for 30 test frames" in capsys.readouterr().out
    metrics_path = tmp_path / "m.json"
    argv = ["eval", "--data", str(root), "--predictions", str(out), "--task", "predcls"]
    assert main([*argv, "--json", str(metrics_path)]) == 0
    freq = json.loads(metrics_path.read_text())
    # Labels here are random, so the floor is low but not zero; a model that
    # sees the answer (boosted GT scores) beats it.
    assert 0.0 < freq["with"]["R@20"] < 1.0
    split = load_split(root, "test", show_progress=False)
    informed = random_predictions(split.gt, seed=3)
    assert evaluate(split.gt, informed, task="predcls")["with"]["R@20"] > freq["with"]["R@20"]
    # Every predicted frame of the baseline is a test frame and every test frame is predicted.
    with np.load(out, allow_pickle=False) as npz:
        assert sorted(npz["frame_keys"].tolist()) == sorted(split.gt.frame_keys.tolist())
