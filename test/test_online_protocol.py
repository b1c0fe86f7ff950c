"""The online protocol end to end: a tr2-small-online checkpoint trained
for one tiny epoch; for W in {1, 3, whole video} the streaming engine fed a test video
frame by frame gives, for every frame, the scores `tr2 test` wrote for that frame; a
bidirectional checkpoint in the engine is announced."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from tr2_core.cli import main as tr2_main
from tr2_core.data.action_genome import load_split
from tr2_core.data.synthetic import SyntheticConfig, make_synthetic, temporal_config
from tr2_core.evaluation.predictions import load_predictions
from tr2_core.models import load_model_config
from tr2_core.run import load_checkpoint
from tr2_core.run_spec import RunSpec
from tr2_core.stream.engine import StreamingEngine
from tr2_core.train.loop import train
from tr2_core.train.recipe import load_train_config

MODEL_OVERRIDES = ("detector.min_size=64", "detector.max_size=128")


@pytest.fixture(scope="module")
def ag(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("ag_online") / "synthetic"
    cfg = SyntheticConfig(
        videos=4, min_frames=5, max_frames=6, width=160, height=90, seed=2,
        short_video_rate=0.0, no_person_rate=0.0,
    )  # fmt: skip
    make_synthetic(root, cfg, progress=False)
    return root


@pytest.fixture(scope="module")
def checkpoint(ag, tmp_path_factory) -> Path:
    """tr2-small-online (W=3) trained for one epoch (CPU, random-init extractor)."""
    out = tmp_path_factory.mktemp("runs") / "online"
    run = RunSpec(
        data=str(ag), model="tr2-small-online", task="predcls", random_init=True,
        cache_dir=str(tmp_path_factory.mktemp("cache")),
    )  # fmt: skip
    model_cfg = load_model_config("tr2-small-online", MODEL_OVERRIDES)
    train_cfg = load_train_config("small", ("epochs=1",))
    train(out, run, model_cfg, train_cfg, device="cpu", progress=False)
    return out / "last.pt"


def with_window(checkpoint: Path, window: int, out: Path, online: bool = True) -> Path:
    """The same weights with another protocol window W (or offline) in the saved config."""
    ckpt = load_checkpoint(checkpoint)
    ckpt["config"]["model"]["fusion"]["temporal_window"] = window
    ckpt["config"]["model"]["fusion"]["online"] = online
    torch.save(ckpt, out)
    return out


def engine_scores(engine: StreamingEngine, ag: Path, frame_keys, gt) -> list[np.ndarray]:
    """Feed one video's frames to the engine -> per frame (P_t, 3 + 6 + 17) scores."""
    scores = []
    for t, key in enumerate(frame_keys):
        image = np.asarray(Image.open(ag / "frames" / key).convert("RGB"))
        f = int(np.flatnonzero(gt.frame_keys == key)[0])
        b0, b1 = gt.box_start[f], gt.box_start[f + 1]
        res = engine.process(
            image, stamp_ns=t * 100_000_000, boxes=gt.boxes[b0:b1], labels=gt.box_labels[b0:b1]
        )
        scores.append(np.concatenate([res.attention, res.spatial, res.contacting], axis=1))
    return scores


def scores_of_tr2_test(preds, frame_keys) -> list[np.ndarray]:
    """`tr2 test`'s rows per frame, in pair order -> (P_t, 26) scores."""
    all_scores = np.concatenate([preds.attention, preds.spatial, preds.contacting], axis=1)
    pair_frame = preds.box_frame[preds.pair_subject]
    index = {str(k): i for i, k in enumerate(preds.frame_keys)}
    return [all_scores[pair_frame == index[key]] for key in frame_keys]


@pytest.mark.parametrize("window", [1, 3, 0])
def test_engine_equals_tr2_test_frame_by_frame(ag, checkpoint, window, tmp_path, capsys):
    ckpt = with_window(checkpoint, window, tmp_path / f"w{window}.pt")
    out = tmp_path / "test"
    assert tr2_main(["test", "--checkpoint", str(ckpt), "--out", str(out), "--device", "cpu",
                     "--no-progress", "--no-cache"]) == 0  # fmt: skip
    assert "protocol: online" in capsys.readouterr().out
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["protocol"] == "online" and metrics["temporal_window"] == window
    preds = load_predictions(out / "predictions.npz")
    gt = load_split(ag, "test", show_progress=False).gt
    videos = {str(k).split("/")[0] for k in gt.frame_keys}
    compared = 0
    for video in sorted(videos):
        keys = [str(k) for k in gt.frame_keys if str(k).startswith(video + "/")]
        engine = StreamingEngine.from_checkpoint(
            ckpt, device="cpu", mode="predcls", window=8, score_threshold=0.0
        )
        assert engine.protocol == "online" and engine.stats.protocol == "online"
        assert engine.window == (window or 8)
        assert len(keys) <= 8  # W = 0 (whole past): the engine window holds every frame
        got = engine_scores(engine, ag, keys, gt)
        want = scores_of_tr2_test(preds, keys)
        for t, (a, b) in enumerate(zip(got, want, strict=True)):
            assert a.shape == b.shape, (video, t)
            np.testing.assert_allclose(a, b, atol=1e-5, rtol=0, err_msg=f"{video} frame {t}")
            compared += len(a)
    assert compared >= 10  # every pair of every test frame


def test_offline_checkpoint_in_the_engine_is_announced(checkpoint, tmp_path, caplog):
    ckpt = with_window(checkpoint, 0, tmp_path / "offline.pt", online=False)
    with caplog.at_level(logging.WARNING, logger="tr2_core.stream.engine"):
        engine = StreamingEngine.from_checkpoint(ckpt, device="cpu", mode="predcls")
    assert engine.protocol == engine.stats.protocol == "offline-run-causally"
    assert "offline model run causally: expect lower quality than its test figures" in caplog.text


def test_tr2_test_reports_temporal_effects_of_a_synthetic_world(checkpoint, tmp_path, capsys):
    """`tr2 test --data` on a world with temporal effects: metrics.json and the printout
    carry the temporal-effects breakdown (the same helper as `tr2 eval`)."""
    world = tmp_path / "temporal"
    cfg = temporal_config(
        videos=4, min_frames=5, max_frames=6, width=160, height=90, seed=2,
        short_video_rate=0.0, no_person_rate=0.0, occlusion_rate=0.3, motion_blur_rate=0.3,
    )  # fmt: skip
    make_synthetic(world, cfg, progress=False)
    out = tmp_path / "test"
    assert tr2_main(["test", "--checkpoint", str(checkpoint), "--data", str(world), "--out",
                     str(out), "--device", "cpu", "--no-progress", "--no-cache"]) == 0  # fmt: skip
    assert "Temporal effects of the synthetic world (With)" in capsys.readouterr().out
    effects = json.loads((out / "metrics.json").read_text())["temporal_effects"]
    assert list(effects) == ["occluded", "blurred", "halfway", "clean"]
    assert effects["clean"]["triplets"] > 0 and set(effects["clean"]["with"]) >= {"R@10", "R@20"}
