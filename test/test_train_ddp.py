"""DistributedDataParallel: `torchrun --nproc_per_node 2 ... tr2 train` on CPU (gloo) for
one epoch of a tiny synthetic Action Genome, in SGCls (the object classifier and its loss
take part; PredCls runs everywhere else in the training tests)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from tr2_core.data.action_genome import load_split
from tr2_core.data.synthetic import SyntheticConfig, make_synthetic
from tr2_core.run import load_checkpoint
from tr2_core.train.dataset import shard_indices
from tr2_core.train.recipe import load_train_config

REPO = Path(__file__).resolve().parent.parent


@pytest.mark.skipif(
    not __import__("torch").distributed.is_gloo_available(),
    reason="this torch build has no gloo backend (needed for CPU DDP)",
)
def test_torchrun_two_processes_one_epoch(tmp_path):
    data = tmp_path / "ag"
    cfg = SyntheticConfig(
        videos=8, min_frames=4, max_frames=6, width=160, height=90, seed=1,
        short_video_rate=0.0, no_person_rate=0.0,
    )  # fmt: skip
    make_synthetic(data, cfg, progress=False)
    out = tmp_path / "run"
    env = {
        **os.environ,
        "PYTHONPATH": str(REPO),
        "TR2_CACHE_DIR": str(tmp_path / "cache"),
        "OMP_NUM_THREADS": "1",
    }
    cmd = [
        sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
        "-m", "tr2_core", "train", "--data", str(data), "--model", "tr2-small",
        "--train-config", "small", "--out", str(out), "--random-init", "--device", "cpu",
        "--epochs", "1", "--no-progress", "--task", "sgcls",
        "model.detector.min_size=64", "model.detector.max_size=128",
        # validation on the test split (the lineage's selection): every training video
        # trains, and `tr2 test` below re-scores the very split validation scored
        "val_split=test",
    ]  # fmt: skip
    done = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=REPO, timeout=240)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-4000:]

    (record,) = [json.loads(x) for x in (out / "metrics.jsonl").read_text().splitlines()]
    assert record["world_size"] == 2 and record["task"] == "sgcls"
    assert record["losses"]["object"] > 0  # SGCls trains the object classifier
    train = load_split(data, "train", filter_small_boxes=True, show_progress=False)
    # the training videos over 2 ranks (an odd count padded by one repeat, so that both
    # ranks take the same number of steps); frame counts are summed over the ranks
    per_video = np.diff(train.gt.video_start)
    seed = load_train_config("small").seed
    shards = [shard_indices(len(per_video), r, 2, shuffle=True, seed=seed) for r in (0, 1)]
    assert len(shards[0]) == len(shards[1])
    assert record["train_frames"] == sum(int(per_video[i]) for s in shards for i in s)
    assert record["train_frames"] >= train.num_frames
    assert load_checkpoint(out / "last.pt")["epoch"] == 1
    # the validation metric came from predictions gathered from both ranks: one process
    # running the saved model over the whole split must get the same numbers
    test_out = tmp_path / "test"
    single = subprocess.run(
        [sys.executable, "-m", "tr2_core", "test", "--checkpoint", str(out / "last.pt"),
         "--out", str(test_out), "--device", "cpu", "--no-progress"],
        capture_output=True, text=True, env=env, cwd=REPO, timeout=240,
    )  # fmt: skip
    assert single.returncode == 0, single.stderr[-3000:]
    metrics = json.loads((test_out / "metrics.json").read_text())
    assert metrics["frames"] == record["val"]["frames"]
    assert metrics["with"] == pytest.approx(record["val"]["with"])
    assert metrics["no"] == pytest.approx(record["val"]["no"])
