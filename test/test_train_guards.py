"""Non-finite values are caught where they arise -- the feature cache refuses
an entry that is (or would become) non-finite, naming the video; a non-finite loss stops
training with an error naming the step and video, and the last good checkpoint stays."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from model_fixtures import make_features

from tr2_core.data.synthetic import SyntheticConfig, make_synthetic
from tr2_core.errors import DatasetError
from tr2_core.models import load_model_config
from tr2_core.run import load_checkpoint
from tr2_core.run_spec import RunSpec
from tr2_core.train.feature_cache import FeatureCache
from tr2_core.train.guards import NonFiniteGuard, NonFiniteLossError
from tr2_core.train.loop import train
from tr2_core.train.recipe import load_train_config
from tr2_core.train.source import ClipSource

MODEL_OVERRIDES = ("detector.min_size=64", "detector.max_size=128")


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16, torch.float16])
def test_cache_refuses_nan_naming_the_video(tmp_path, dtype):
    features = make_features([[2, 3], [4]])
    features.union_features[1, 5] = float("nan")
    cache = FeatureCache(tmp_path, {"k": 1}, dtype=dtype)
    with pytest.raises(DatasetError, match=r"video clip7\.mp4: .*union_features.*NaN"):
        cache.put("clip7.mp4", features)
    assert not cache.has("clip7.mp4") and not list(cache.dir.glob("*.tmp"))


def test_cache_refuses_float16_overflow_and_bfloat16_keeps_it(tmp_path):
    """Why the paper recipe hit NaN on CUDA: a random ResNet-101's pooled features reach ~1.6e5,
    beyond float16's 65504 -> inf in a float16 cache. bfloat16 (the default) keeps
    float32's range."""
    features = make_features([[2, 3], [4]])
    features.entity_features[0, 0] = 1.6e5
    half = FeatureCache(tmp_path, {"k": 1}, dtype=torch.float16)
    overflow = r"video v\.mp4: entity_features reach 1\.6e\+05.*float16"
    with pytest.raises(DatasetError, match=overflow):
        half.put("v.mp4", features)
    assert not half.has("v.mp4")
    bf16 = FeatureCache(tmp_path, {"k": 1})
    assert bf16.dtype == torch.bfloat16
    bf16.put("v.mp4", features)
    got, _ = bf16.get("v.mp4")
    assert torch.isfinite(got.entity_features).all()
    assert got.entity_features[0, 0] == pytest.approx(1.6e5, rel=1e-2)


def test_paper_recipe_caches_in_a_safe_dtype():
    assert load_train_config("tr2").cache_dtype != "float16"
    assert load_train_config("tr2").cache_dtype == "bfloat16"


def test_guard_names_first_bad_step_without_per_step_sync():
    guard = NonFiniteGuard(epoch=2)
    guard.record(1, "a.mp4", torch.tensor(1.0), {"x": torch.tensor(0.5)})
    guard.record(2, "b.mp4", torch.tensor(1.0), {"x": torch.tensor(float("inf"))})
    guard.record(3, "c.mp4", torch.tensor(float("nan")), {})
    with pytest.raises(NonFiniteLossError, match=r"epoch 3, step 2 \(video b\.mp4"):
        guard.check()
    guard.check()  # the record was cleared: nothing left to report


@pytest.fixture(scope="module")
def ag(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("ag") / "synthetic"
    cfg = SyntheticConfig(
        videos=4, min_frames=3, max_frames=4, width=160, height=90, seed=3,
        short_video_rate=0.0, no_person_rate=0.0,
    )  # fmt: skip
    make_synthetic(root, cfg, progress=False)
    return root


def test_nonfinite_loss_stops_training_and_keeps_last_good_checkpoint(ag, tmp_path, monkeypatch):
    run = RunSpec(data=str(ag), model="tr2-small", task="predcls", random_init=True,
                  cache_dir=str(tmp_path / "cache"))  # fmt: skip
    model_cfg = load_model_config("tr2-small", MODEL_OVERRIDES)
    # val_split=test: all 3 training videos train (the count below depends on it)
    train_cfg = load_train_config("small", ("epochs=2", "max_train_videos=3",
                                            "max_val_videos=1", "shuffle=false",
                                            "val_split=test"))  # fmt: skip
    get = ClipSource.get
    calls = {"n": 0}

    def poisoned_get(self, index, start=0, stop=None):
        features, targets = get(self, index, start, stop)
        if self.training_source:
            calls["n"] += 1
            if calls["n"] == 5:  # epoch 2, its second video
                calls["video"] = self.video(index)
                features.union_features = features.union_features.clone()
                features.union_features[0, 0] = float("nan")
        return features, targets

    monkeypatch.setattr(ClipSource, "training_source", False, raising=False)
    monkeypatch.setattr(ClipSource, "get", poisoned_get)
    import tr2_core.train.loop as loop

    make = loop.make_source

    def marking_make_source(*args, **kw):
        src, split = make(*args, **kw)
        src.training_source = kw.get("training", False)
        return src, split

    monkeypatch.setattr(loop, "make_source", marking_make_source)
    out = tmp_path / "run"
    with pytest.raises(NonFiniteLossError) as err:
        train(out, run, model_cfg, train_cfg, device="cpu", progress=False)
    message = str(err.value)
    assert "epoch 2, step 2" in message, message
    assert f"(video {calls['video']}," in message, message
    ckpt = load_checkpoint(out / "last.pt")
    assert ckpt["epoch"] == 1  # the good epoch, not overwritten
    assert len((out / "metrics.jsonl").read_text().splitlines()) == 1


def test_prefetched_keeps_order_raises_in_place_and_stops_early():
    import threading

    from tr2_core.train.prefetch import prefetched

    callers = set()

    def load(i):
        callers.add(threading.current_thread().name)
        if i == 5:
            raise ValueError("bad item 5")
        return i * 10

    for depth in (0, 3):
        callers.clear()
        got = []
        with pytest.raises(ValueError, match="bad item 5"):
            for value in prefetched(range(10), load, depth):
                got.append(value)
        assert got == [0, 10, 20, 30, 40]
        assert callers == ({"MainThread"} if depth == 0 else {"tr2-prefetch"})
    it = prefetched(range(1000), lambda i: i, 2)
    assert next(it) == 0
    it.close()  # the producer stops instead of loading all 1000
    assert not any(t.name == "tr2-prefetch" for t in threading.enumerate())
