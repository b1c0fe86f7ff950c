"""The training loop end to end on a tiny synthetic Action Genome (CPU, random-init
tr2-small): exact resume, feature cache, kill -9 and resume, `tr2 test`, learning."""

from __future__ import annotations

import copy
import importlib.util
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from tr2_core.cli import main as tr2_main
from tr2_core.data.synthetic import SyntheticConfig, make_synthetic
from tr2_core.evaluation.predictions import load_predictions
from tr2_core.evaluation.recall import evaluate
from tr2_core.models import load_model_config
from tr2_core.run import build_run_extractor, load_checkpoint
from tr2_core.run_spec import RunSpec
from tr2_core.train.loop import train
from tr2_core.train.recipe import load_train_config
from tr2_core.train.source import make_source

REPO = Path(__file__).resolve().parent.parent
# smaller detector input than tr2-small's 128 px: same code, faster on a shared 2-core box
MODEL_OVERRIDES = ("detector.min_size=64", "detector.max_size=128")


@pytest.fixture(scope="module", autouse=True)
def private_cache_home(tmp_path_factory):
    """Parsed-annotation and default feature caches in a temporary folder, not ~/.cache."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("TR2_CACHE_DIR", str(tmp_path_factory.mktemp("tr2_cache_home")))
        yield


@pytest.fixture(scope="module")
def ag(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("ag") / "synthetic"
    cfg = SyntheticConfig(
        videos=8, min_frames=4, max_frames=6, width=160, height=90, seed=1,
        short_video_rate=0.0, no_person_rate=0.0,
    )  # fmt: skip
    make_synthetic(root, cfg, progress=False)
    return root


@pytest.fixture(scope="module")
def cache(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("feature_cache")


def new_run(ag: Path, cache: Path) -> RunSpec:
    return RunSpec(
        data=str(ag), model="tr2-small", task="predcls", random_init=True, cache_dir=str(cache)
    )


def records(run_dir: Path) -> list[dict]:
    return [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]


def cache_files(cache: Path) -> dict[str, int]:
    return {str(p): p.stat().st_mtime_ns for p in cache.rglob("*.safetensors")}


def learning_check():
    spec = importlib.util.spec_from_file_location(
        "learning_check", REPO / "bench/learning_check.py"
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


EPOCHS = 3
RECIPE = ("lr=0.001",)  # the small recipe, faster: a few epochs on 6 videos must show learning


@pytest.fixture(scope="module")
def straight_run(ag, cache, tmp_path_factory) -> Path:
    """EPOCHS epochs in one go (the reference for the resume test)."""
    out = tmp_path_factory.mktemp("runs") / "straight"
    model_cfg = load_model_config("tr2-small", MODEL_OVERRIDES)
    train_cfg = load_train_config("small", (f"epochs={EPOCHS}", *RECIPE))
    train(out, new_run(ag, cache), model_cfg, train_cfg, device="cpu", progress=False)
    return out


def test_resume_continues_exactly_and_the_loss_falls(ag, cache, straight_run, tmp_path):
    """The short learning check (bench/learning_check.py's run_training: one epoch, then
    --resume up to EPOCHS) must end bit-for-bit where the uninterrupted run ended, read
    every feature from the cache the first run filled, and its loss must fall."""
    cached = cache_files(cache)
    # 5 train + 1 held-out validation video (the generator's val_videos), computed once
    # by the first run; the 2 test videos are never touched by training (val_split: val)
    assert len(cached) == 6
    out = tmp_path / "resumed"
    recs = learning_check().run_training(
        ag, out, epochs=EPOCHS, model_overrides=MODEL_OVERRIDES, train_overrides=RECIPE,
        cache_dir=cache, progress=False,
    )  # fmt: skip
    assert [r["epoch"] for r in recs] == list(range(1, EPOCHS + 1))
    assert cache_files(cache) == cached  # read back, never recomputed

    a = load_checkpoint(straight_run / "last.pt")
    b = load_checkpoint(out / "last.pt")
    assert a["epoch"] == b["epoch"] == EPOCHS
    for name, tensor in a["model"].items():  # dropout, shuffling, windows: all restored
        assert torch.equal(tensor, b["model"][name]), name
    ra = records(straight_run)
    assert [r["loss"] for r in ra] == [r["loss"] for r in recs]
    assert ra[-1]["val"] == recs[-1]["val"]

    losses = np.array([r["loss"] for r in recs])
    assert losses[-1] < 0.7 * losses[0], losses


def test_epoch_records_and_checkpoint_contents(straight_run):
    rec = records(straight_run)
    assert [r["epoch"] for r in rec] == list(range(1, EPOCHS + 1))
    last = rec[-1]
    assert set(last["losses"]) == {"object", "attention", "spatial", "contacting", "guidance"}
    assert last["random_init"] is True and last["task"] == "predcls"
    assert last["train_frames_per_s"] > 0 and last["lr"] > 0
    assert 0.0 <= last["val"]["with"]["R@20"] <= 1.0
    ckpt = load_checkpoint(straight_run / "last.pt")
    assert ckpt["config"]["train"]["epochs"] == EPOCHS  # plain dicts: the run rebuilds from them
    assert ckpt["config"]["model"]["detector"]["min_size"] == 64
    assert ckpt["config"]["run"]["random_init"] is True
    best = load_checkpoint(straight_run / "best.pt")
    best_epoch = max(rec, key=lambda r: r["val"]["with"]["R@20"])["epoch"]
    assert best["epoch"] == best_epoch


def test_tr2_test_writes_the_contract_files_and_agrees_with_validation(
    ag, straight_run, tmp_path, capsys
):
    """`tr2 test --split val` scores best.pt on the held-out training videos exactly as the
    run's validation did (best.pt is selected there, never on the test split)."""
    from tr2_core.data.action_genome import load_split
    from tr2_core.data.synthetic.writer import validation_videos
    from tr2_core.train.dataset import gt_videos

    out = tmp_path / "test"
    assert tr2_main(["test", "--checkpoint", str(straight_run / "best.pt"), "--out", str(out),
                     "--device", "cpu", "--no-progress", "--split", "val"]) == 0  # fmt: skip
    assert "RANDOM INIT" in capsys.readouterr().out
    preds = load_predictions(out / "predictions.npz")  # validated against the contract
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["random_init"] is True
    train_gt = load_split(ag, "train", show_progress=False).gt
    held = [i for i, v in enumerate(train_gt.videos) if v in set(validation_videos(ag))]
    assert held and set(preds.frame_keys) == set(gt_videos(train_gt, held).frame_keys)
    gt = gt_videos(train_gt, held)
    assert evaluate(gt, preds, task="predcls")["with"] == metrics["with"]
    best = load_checkpoint(straight_run / "best.pt")
    logged = records(straight_run)[best["epoch"] - 1]["val"]["with"]["R@20"]
    assert metrics["with"]["R@20"] == pytest.approx(logged)  # same model, same split


def test_tr2_test_writes_both_outputs_or_neither(straight_run, tmp_path, monkeypatch, capsys):
    """predictions.npz and metrics.json belong together: a failure after the predictions
    are made (here, in scoring) leaves neither, and a rerun's failure keeps the pair an
    earlier run wrote (before: predictions.npz was published alone)."""
    from tr2_core.errors import PredictionsError
    from tr2_core.evaluation import recall

    out = tmp_path / "test"
    argv = ["test", "--checkpoint", str(straight_run / "best.pt"), "--out", str(out),
            "--device", "cpu", "--no-progress", "--split", "val"]  # fmt: skip

    def failing(*args, **kwargs):
        raise PredictionsError("scoring failed")

    with monkeypatch.context() as patch:
        patch.setattr(recall, "evaluate_detailed", failing)
        assert tr2_main(argv) == 2
    assert not (out / "predictions.npz").exists() and not (out / "metrics.json").exists()
    assert tr2_main(argv) == 0
    pair = {name: (out / name).read_bytes() for name in ("predictions.npz", "metrics.json")}
    with monkeypatch.context() as patch:
        patch.setattr(recall, "evaluate_detailed", failing)
        assert tr2_main(argv) == 2
    assert {name: (out / name).read_bytes() for name in pair} == pair
    assert "scoring failed" in capsys.readouterr().err


def test_trained_model_runs_with_detector_inference_overrides(straight_run):
    """`tr2 test --override`: the detector's inference settings change (a weak detector's
    score threshold), anything the weights depend on is refused with the key named."""
    from tr2_core.errors import ConfigError
    from tr2_core.run import load_trained

    best = straight_run / "best.pt"
    trained = load_trained(best, announce=False, model_overrides=["detector.score_thresh=0.03"])
    detector = trained.model.frozen.extractor.detector
    assert detector.roi_heads.score_thresh == pytest.approx(0.03)
    assert trained.model.frozen.extractor.config.detector.score_thresh == pytest.approx(0.03)
    plain = load_trained(best, announce=False)
    assert plain.model.frozen.extractor.detector.roi_heads.score_thresh == pytest.approx(0.1)
    with pytest.raises(ConfigError, match="fusion.temporal_layers=1"):
        load_trained(best, announce=False, model_overrides=["fusion.temporal_layers=1"])


def test_cached_features_equal_fresh_extraction(ag, tmp_path):
    run = new_run(ag, tmp_path / "cache32")
    model_cfg = load_model_config("tr2-small", MODEL_OVERRIDES)
    train_cfg = load_train_config("small", ("cache_dtype=float32",))
    frozen = build_run_extractor(run, model_cfg, train_cfg.seed, "cpu")
    kw = dict(training=True, max_videos=2)
    cached, _ = make_source(
        run, train_cfg, "train", frozen, torch.device("cpu"), use_cache=True, **kw
    )
    fresh, _ = make_source(
        run, train_cfg, "train", frozen, torch.device("cpu"), use_cache=False, **kw
    )
    for start, stop in [(0, None), (1, 3)]:
        fc, tc = cached.get(0, start, stop)  # first call fills the cache, then cuts the window
        ff, tf = fresh.get(0, start, stop)  # only the window's frames are extracted
        assert fc.frame_keys == ff.frame_keys
        for name in ("entity_frame", "entity_labels", "pair_subject", "pair_object"):
            assert torch.equal(getattr(fc, name), getattr(ff, name)), name
        torch.testing.assert_close(fc.union_features, ff.union_features, rtol=1e-4, atol=1e-4)
        torch.testing.assert_close(fc.entity_features, ff.entity_features, rtol=1e-4, atol=1e-4)
        assert torch.equal(tc.pair_attention, tf.pair_attention)
        assert torch.equal(tc.pair_contacting, tf.pair_contacting)
    assert len(list(cached.cache.dir.glob("*.safetensors"))) == 1


def test_sources_extract_with_folded_batch_norms(ag, tmp_path):
    """make_source folds the frozen detector's batch norms (faster extraction); the
    features equal those of the unfolded detector to float rounding."""
    from torchvision.ops.misc import FrozenBatchNorm2d

    run = new_run(ag, tmp_path / "fold")
    model_cfg = load_model_config("tr2-small", MODEL_OVERRIDES)
    train_cfg = load_train_config("small", ("amp=false",))  # float32: compare to rounding
    frozen = build_run_extractor(run, model_cfg, train_cfg.seed, "cpu")
    for m in frozen.extractor.detector.modules():  # non-trivial statistics: folding shows
        if isinstance(m, FrozenBatchNorm2d):
            m.running_var.uniform_(0.5, 1.5)
            m.running_mean.uniform_(-0.1, 0.1)
    plain = copy.deepcopy(frozen.extractor)
    source, _ = make_source(
        run, train_cfg, "test", frozen, torch.device("cpu"), training=False, max_videos=1,
        use_cache=False,
    )  # fmt: skip
    assert not any(isinstance(m, FrozenBatchNorm2d) for m in frozen.extractor.detector.modules())
    clip = source.videos.clip(0)
    folded, _ = source.extract(clip)
    source.extractor = plain
    unfolded, _ = source.extract(clip)
    scale = unfolded.entity_features.abs().max()
    torch.testing.assert_close(
        folded.entity_features, unfolded.entity_features, rtol=1e-4, atol=1e-4 * scale
    )


def test_kill_during_training_then_resume(ag, cache, tmp_path):
    out = tmp_path / "killed"
    cmd = [
        sys.executable, "-m", "tr2_core", "train", "--data", str(ag), "--model", "tr2-small",
        "--train-config", "small", "--out", str(out), "--random-init", "--device", "cpu",
        "--cache-dir", str(cache), "--no-progress", "--epochs", "100",
        *(f"model.{o}" for o in MODEL_OVERRIDES),
    ]  # fmt: skip
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    with open(tmp_path / "first.log", "w") as log:
        proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=env, cwd=REPO)
        deadline = time.monotonic() + 180
        metrics = out / "metrics.jsonl"
        while not (metrics.is_file() and metrics.read_text().count("\n") >= 1):
            assert proc.poll() is None, (tmp_path / "first.log").read_text()[-3000:]
            assert time.monotonic() < deadline, "no epoch finished in 180 s"
            time.sleep(0.05)
        time.sleep(0.3)  # somewhere inside the next epoch
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    done = load_checkpoint(out / "last.pt")["epoch"]  # the file is whole (atomic rename)
    assert 1 <= done < 100
    resumed = subprocess.run(
        [*cmd[:4], "--out", str(out), "--resume", "--epochs", str(done + 1), "--device", "cpu",
         "--no-progress"],
        capture_output=True, text=True, env=env, cwd=REPO, timeout=300,
    )  # fmt: skip
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert f"from the end of epoch {done}" in resumed.stderr
    assert [r["epoch"] for r in records(out)] == list(range(1, done + 2))
    assert load_checkpoint(out / "last.pt")["epoch"] == done + 1


def test_resume_refuses_config_changes(tmp_path, capsys):
    assert tr2_main(["train", "--out", str(tmp_path), "--resume", "lr=1"]) == 2
    assert "--resume continues with the configuration saved" in capsys.readouterr().err


def test_cache_features_command_uses_the_training_key(ag, cache, straight_run, capsys):
    """`tr2 cache-features` with the run's settings finds every video already cached by
    training (same key) and computes only the test split."""
    before = cache_files(cache)
    argv = ["cache-features", "--data", str(ag), "--model", "tr2-small", "--train-config",
            "small", "--random-init", "--cache-dir", str(cache), "--device", "cpu",
            *(f"model.{o}" for o in MODEL_OVERRIDES)]  # fmt: skip
    assert tr2_main(argv) == 0
    out = capsys.readouterr().out
    assert "train: 5 videos cached" in out and "val: 1 videos cached" in out
    assert "test: 2 videos cached" in out
    after = cache_files(cache)
    # training's 6 entries read back untouched; only the test split (never seen by
    # training, which validates on the held-out training video) is new
    assert {k: after[k] for k in before} == before and len(after) == len(before) + 2


def test_init_fine_tunes_online_from_offline(ag, cache, straight_run, tmp_path):
    """``--init``: a new run (here the online model, as a robot's from the authors'
    imported offline checkpoint) starts from another checkpoint's relation weights; a
    checkpoint of other widths is refused in one line before the run folder exists."""
    offline = load_checkpoint(straight_run / "best.pt")
    out = tmp_path / "online"
    model_cfg = load_model_config("tr2-small-online", MODEL_OVERRIDES)
    train_cfg = load_train_config("small", ("epochs=1", "lr=1e-12"))  # weights barely move
    train(out, new_run(ag, cache), model_cfg, train_cfg, device="cpu", progress=False,
          init=straight_run / "best.pt")  # fmt: skip
    tuned = load_checkpoint(out / "last.pt")
    assert tuned["config"]["model"]["name"] == "tr2-small-online"
    for name, tensor in offline["model"].items():
        assert torch.allclose(tuned["model"][name].float(), tensor.float(), atol=1e-8), name
    fresh = train(tmp_path / "fresh", new_run(ag, cache), model_cfg, train_cfg, device="cpu",
                  progress=False)  # fmt: skip
    assert fresh["loss"] != records(out)[-1]["loss"]  # without --init it starts elsewhere

    wider = tmp_path / "wider"
    rc = tr2_main(["train", "--data", str(ag), "--model", "tr2-small", "--out", str(wider),
                   "--random-init", "--init", str(straight_run / "best.pt"), "--device", "cpu",
                   "--no-progress", "model.fusion.ffn_dim=96"])  # fmt: skip
    assert rc == 2
    assert not wider.exists()
