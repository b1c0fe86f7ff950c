"""The pretraining world (tr2_core/pretrain/world.py) and the CLIP fitting on it."""

import numpy as np
import pytest
import torch

from tr2_core.data.synthetic import make_synthetic, temporal_config
from tr2_core.data.synthetic.video_generator import generate_video
from tr2_core.errors import ConfigError
from tr2_core.pretrain.training_frames import load_pretrain_frames
from tr2_core.pretrain.world import WORLD_SEED_BASE, render_world, world_config
from tr2_core.vocab import ATTENTION, OBJECT_INDEX, SPATIAL

CFG = temporal_config(videos=6, seed=3, min_frames=3, max_frames=5, width=160, height=90)


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    root = tmp_path_factory.mktemp("synthetic")
    make_synthetic(root, CFG, progress=False)
    return root


def test_world_is_the_datasets_world_with_new_scenes(dataset):
    world = world_config(dataset, videos=5, seed=1)
    # the dataset's settings (size, temporal rates) ...
    assert (world.width, world.height) == (CFG.width, CFG.height)
    assert world.occlusion_rate == CFG.occlusion_rate > 0
    assert world.direction_rate == CFG.direction_rate > 0
    # ... another seed, every video for training, none held out
    assert world.seed == WORLD_SEED_BASE + 100 * CFG.seed + 1
    assert world.test_fraction == world.val_fraction == 0.0
    assert (world.videos, world.min_frames, world.max_frames) == (5, 3, 6)
    # new scenes: no video of the world draws the dataset's video of the same index
    ours = generate_video(world, 0, "a.mp4", "train")
    theirs = generate_video(CFG, 0, "a.mp4", "train")
    assert not np.array_equal(ours.geoms[0].person_box, theirs.geoms[0].person_box)


def test_world_refuses_a_dataset_without_synthetic_meta(tmp_path):
    (tmp_path / "annotations").mkdir()
    with pytest.raises(ConfigError, match="synthetic_meta.json"):
        world_config(tmp_path, videos=5)


def test_rendered_world_matches_what_the_loader_reads(dataset):
    """The in-memory world and the AG loader of a written dataset give the same frames,
    boxes, labels and multi-hot relations for the same generator settings."""
    cfg = world_config(dataset, videos=4)
    written = dataset.parent / "world_written"
    make_synthetic(written, cfg.__class__(**{**cfg.__dict__, "images": True}), progress=False)
    loaded = load_pretrain_frames(written)
    rendered = render_world(cfg)
    assert len(rendered.images) == len(loaded.images) > 0
    for a, b in zip(rendered.images, loaded.images, strict=True):
        assert torch.equal(a, b)
    for a, b in zip(rendered.boxes, loaded.boxes, strict=True):
        torch.testing.assert_close(a, b)
    for a, b in zip(rendered.labels, loaded.labels, strict=True):
        assert torch.equal(a, b) and int(a[0]) == OBJECT_INDEX["person"]
    for name in ("pair_frame", "pair_class", "pair_subject", "pair_object", "pair_predicates"):
        torch.testing.assert_close(getattr(rendered, name), getattr(loaded, name))
    attention = rendered.pair_predicates[:, : ATTENTION.size].sum(1)
    spatial = rendered.pair_predicates[:, ATTENTION.size : ATTENTION.size + SPATIAL.size]
    assert torch.all(attention == 1) and torch.all(spatial.sum(1) >= 1)


def test_clip_fitting_on_the_world_lowers_its_loss(dataset):
    """A few steps of :func:`train_clip` (probe + contrastive steps) on a tiny world: the
    loss falls and the model comes back frozen."""
    from tr2_core.models.model_config import resolve_config
    from tr2_core.models.pair_features import create_clip
    from tr2_core.pretrain.clip_fit import train_clip

    torch.manual_seed(0)
    cfg = resolve_config("tr2-small")
    frames = render_world(world_config(dataset, videos=6))
    model = create_clip(cfg.clip, random_init=True)
    losses = train_clip(model, frames, cfg, steps=24, batch=32, text_every=4)
    assert len(losses) == 24
    assert np.mean(losses[-6:]) < 0.8 * np.mean(losses[:6])
    assert not model.training and not any(p.requires_grad for p in model.parameters())


def test_the_fits_run_on_deterministic_kernels(dataset, monkeypatch):
    """Both fits of :func:`~tr2_core.pretrain.train_weights` run with deterministic
    kernels (a 2-thread CLIP fit otherwise drifts from one process to the next), and the
    caller's setting is back afterwards."""
    import tr2_core.pretrain as pretrain
    from tr2_core.models.model_config import resolve_config
    from tr2_core.pretrain import PretrainBudget, train_weights

    seen: dict[str, bool] = {}

    def spy(name, real):
        def wrapped(*args, **kwargs):
            seen[name] = torch.are_deterministic_algorithms_enabled()
            return real(*args, **kwargs)

        return wrapped

    monkeypatch.setattr(pretrain, "train_clip", spy("clip", pretrain.train_clip))
    monkeypatch.setattr(pretrain, "train_detector", spy("detector", pretrain.train_detector))
    assert not torch.are_deterministic_algorithms_enabled()
    budget = PretrainBudget(detector_steps=1, clip_steps=1, world_videos=2, seed=0)
    train_weights(dataset, resolve_config("tr2-small"), budget)
    assert seen == {"clip": True, "detector": True}
    assert not torch.are_deterministic_algorithms_enabled()


def test_pretrain_overrides_reach_the_fits_and_key_the_cache(dataset, tmp_path):
    """``tr2 pretrain-synthetic --override``: the fits build the overridden config (a
    ResNet-34 body has a third block in layer1, ResNet-18 none), the cache keys it apart
    and pretrain.json records it; ``device="cpu"`` keeps the CPU key (cache hit)."""
    import json

    from tr2_core.pretrain import PretrainBudget, pretrained_weights

    budget = PretrainBudget(detector_steps=1, clip_steps=1, world_videos=2, seed=0)
    plain = pretrained_weights(dataset, budget=budget, cache_dir=tmp_path)
    deeper = pretrained_weights(
        dataset, budget=budget, cache_dir=tmp_path, overrides=["detector.backbone=resnet34"]
    )
    assert not plain.cached and not deeper.cached
    assert plain.detector.parent != deeper.detector.parent
    assert "backbone.layer1.2.conv1.weight" not in torch.load(plain.detector, weights_only=True)
    assert "backbone.layer1.2.conv1.weight" in torch.load(deeper.detector, weights_only=True)
    meta = json.loads((deeper.detector.parent / "pretrain.json").read_text())
    assert meta["overrides"] == ["detector.backbone=resnet34"] and meta["device"] == "cpu"
    again = pretrained_weights(dataset, budget=budget, cache_dir=tmp_path, device="cpu")
    assert again.cached and again.detector == plain.detector
