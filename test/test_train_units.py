"""Training infrastructure, piece by piece (no detector, no CLIP, no data on disk)."""

from __future__ import annotations

import argparse
import random

import numpy as np
import pytest
import torch
from model_fixtures import make_features, make_targets

from tr2_core.cache_keys import cache_key
from tr2_core.checkpoint_schema import check_rng_state
from tr2_core.cli.train import split_overrides
from tr2_core.errors import ConfigError, DatasetError, WeightsError
from tr2_core.models import alpha_from_counts
from tr2_core.run import load_checkpoint, module_fingerprint
from tr2_core.train.checkpoint import (
    atomic_torch_save,
    get_rng_state,
    set_rng_state,
)
from tr2_core.train.dataset import (
    ActionGenomeVideos,
    VideoClip,
    frame_chunks,
    frame_window,
    gt_videos,
    shard_indices,
    slice_features,
    slice_targets,
)
from tr2_core.train.feature_cache import FeatureCache
from tr2_core.train.loop import class_alpha
from tr2_core.train.predict import (
    concat_predictions,
    predictions_from_bytes,
    predictions_to_bytes,
)
from tr2_core.train.recipe import TrainConfig, load_train_config
from tr2_core.train.source import held_out_rows, sgdet_targets, split_rows
from tr2_core.train.validation import gt_first_videos, metric_value
from tr2_core.types import GroundTruth, Predictions, VideoTargets

# ----------------------------------------------------------------------------- config


def test_named_recipes_load_and_paper_recipe_values():
    paper = load_train_config("tr2")
    assert (paper.lr, paper.weight_decay, paper.grad_clip, paper.epochs) == (1e-5, 0.01, 5.0, 15)
    assert paper.plateau_metric == "with/R@20"
    small = load_train_config("small", ("epochs=2", "lr=0.001"))
    assert small.epochs == 2 and small.lr == 1e-3
    # one source of the paper's recipe: the dataclass defaults are tr2.yaml's values
    assert TrainConfig() == paper


@pytest.mark.parametrize(
    "override, message",
    [("lrr=1", "unknown key"), ("epochs=0", "epochs"), ("plateau_metric=R20", "with/R@20")],
)
def test_recipe_rejects_bad_keys(override, message):
    with pytest.raises(ConfigError, match=message):
        load_train_config("small", (override,))


def test_override_routing():
    model, train = split_overrides(["model.fusion.dropout=0", "lr=1", "train.epochs=3"])
    assert model == ["fusion.dropout=0"] and train == ["lr=1", "epochs=3"]


# ----------------------------------------------------------------------------- sharding


@pytest.mark.parametrize("n, world", [(7, 2), (8, 2), (5, 3), (1, 2)])
def test_shards_cover_every_video_with_equal_steps(n, world):
    shards = [shard_indices(n, r, world, shuffle=True, seed=3) for r in range(world)]
    assert len({len(s) for s in shards}) == 1  # DDP: same number of steps on every rank
    assert set().union(*shards) == set(range(n))
    eval_shards = [
        shard_indices(n, r, world, shuffle=False, seed=0, pad=False) for r in range(world)
    ]
    assert sorted(sum(eval_shards, [])) == list(range(n))  # no duplicates for evaluation


def test_shuffle_depends_on_seed_only():
    a = shard_indices(50, 0, 1, shuffle=True, seed=1)
    assert a == shard_indices(50, 0, 1, shuffle=True, seed=1)
    assert a != shard_indices(50, 0, 1, shuffle=True, seed=2)


def test_windows_and_chunks():
    rng = np.random.default_rng(0)
    assert frame_window(5, 0, rng) == (0, 5) and frame_window(5, 8, rng) == (0, 5)
    starts = {frame_window(20, 6, rng)[0] for _ in range(200)}
    assert min(starts) == 0 and max(starts) == 14
    assert frame_chunks(7, 3) == [(0, 3), (3, 6), (6, 7)]
    assert frame_chunks(7, 0) == [(0, 7)]


def test_slicing_renumbers_rows_consistently():
    features = make_features([[2, 3], [4], [5, 6, 7], [8]])
    targets = make_targets(features)
    part = slice_features(features, 1, 3)
    tpart = slice_targets(targets, features, 1, 3)
    assert part.frame_keys == features.frame_keys[1:3]
    keep_e = (features.entity_frame >= 1) & (features.entity_frame < 3)
    keep_p = (features.pair_frame >= 1) & (features.pair_frame < 3)
    assert torch.equal(part.entity_labels, features.entity_labels[keep_e])
    assert torch.equal(part.union_features, features.union_features[keep_p])
    # the renumbered pairs point at the same boxes as before
    assert torch.equal(
        part.entity_boxes[part.pair_object], features.entity_boxes[features.pair_object[keep_p]]
    )
    assert int(part.entity_frame.min()) == 0 and int(part.pair_frame.max()) == 1
    assert torch.equal(tpart.pair_attention, targets.pair_attention[keep_p])
    assert torch.equal(tpart.entity_labels, targets.entity_labels[keep_e])


# ----------------------------------------------------------------------------- cache


def test_feature_cache_roundtrip_and_keys(tmp_path):
    features = make_features([[2, 3], [4]])
    parts = {"task": "predcls", "weights": "abc"}
    exact = FeatureCache(tmp_path, parts, dtype=torch.float32)
    assert exact.get("v.mp4") is None
    exact.put("v.mp4", features, {"entity_gt": torch.tensor([0, 1, -1, 2, 3])})
    got, extras = exact.get("v.mp4")
    assert got.frame_keys == features.frame_keys
    for name in ("entity_features", "union_features", "pair_object", "entity_boxes"):
        assert torch.equal(getattr(got, name), getattr(features, name)), name
    assert extras["entity_gt"].tolist() == [0, 1, -1, 2, 3]
    assert not list(exact.dir.glob("*.tmp")) and (exact.dir / "manifest.json").is_file()

    half = FeatureCache(tmp_path, parts, dtype=torch.float16)
    assert half.dir != exact.dir  # the storage type is part of the key
    half.put("v.mp4", features)
    got16, _ = half.get("v.mp4")
    assert got16.entity_features.dtype == torch.float32
    torch.testing.assert_close(got16.union_features, features.union_features, atol=2e-3, rtol=2e-3)
    # any change of what the features depend on gives another folder
    assert cache_key({**parts, "task": "sgcls"}) != cache_key(parts)
    assert cache_key(dict(reversed(list(parts.items())))) == cache_key(parts)


def test_feature_cache_refuses_corrupt_entries_and_bad_names(tmp_path):
    cache = FeatureCache(tmp_path, {"k": 1})
    cache.path("v.mp4").write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00{not json")
    with pytest.raises(DatasetError, match="unreadable feature-cache entry"):
        cache.get("v.mp4")
    with pytest.raises(DatasetError, match="cannot name a cache file"):
        cache.path("../evil")


def test_fingerprint_follows_weights():
    a = torch.nn.Linear(3, 2)
    fp = module_fingerprint(a)
    assert fp == module_fingerprint(a)
    with torch.no_grad():
        a.weight[0, 0] += 1e-6
    assert module_fingerprint(a) != fp


# ----------------------------------------------------------------------------- checkpoints


def test_checkpoint_atomic_weights_only_and_rng_roundtrip(tmp_path):
    path = tmp_path / "run" / "last.pt"
    random.seed(1), np.random.seed(1), torch.manual_seed(1)  # noqa: NPY002
    state = {"model": {"w": torch.ones(2)}, "config": {"a": 1}, "epoch": 3, "rng": get_rng_state()}
    atomic_torch_save(state, path)
    assert [p.name for p in path.parent.iterdir()] == ["last.pt"]  # no temp file left
    expected = (random.random(), np.random.rand(), torch.rand(1))  # noqa: NPY002
    loaded = torch.load(path, weights_only=True)  # a toy model: no tr2 config to check
    check_rng_state(loaded["rng"], path)  # the states as written pass the schema
    set_rng_state(loaded["rng"])
    again = (random.random(), np.random.rand(), torch.rand(1))  # noqa: NPY002
    assert expected[:2] == again[:2] and torch.equal(expected[2], again[2])
    assert loaded["epoch"] == 3


def test_checkpoint_errors_name_the_file(tmp_path):
    with pytest.raises(WeightsError, match="not found"):
        load_checkpoint(tmp_path / "none.pt")
    bad = tmp_path / "bad.pt"
    torch.save({"model": {}}, bad)
    with pytest.raises(WeightsError, match="missing"):
        load_checkpoint(bad)
    evil = tmp_path / "evil.pt"
    torch.save({"model": argparse.Namespace(x=1), "config": {}, "epoch": 0}, evil)
    with pytest.raises(WeightsError, match="evil.pt: refused: it needs the Python object"):
        load_checkpoint(evil)  # needs an unsafe global: weights_only refuses it


# ----------------------------------------------------------------------------- predictions


def _preds(frames: list[str], boxes_per_frame: int, seed: int) -> Predictions:
    g = np.random.default_rng(seed)
    f = len(frames)
    b = f * boxes_per_frame
    box_frame = np.repeat(np.arange(f), boxes_per_frame)
    subj = np.repeat(np.arange(f) * boxes_per_frame, boxes_per_frame - 1)
    obj = np.setdiff1d(np.arange(b), np.arange(f) * boxes_per_frame)
    p = len(obj)
    return Predictions(
        frame_keys=np.asarray(frames, dtype=str),
        box_frame=box_frame,
        boxes=g.random((b, 4), dtype=np.float32),
        box_labels=np.ones(b, np.int64),
        box_scores=np.ones(b, np.float32),
        pair_subject=subj,
        pair_object=obj,
        attention=g.random((p, 3), dtype=np.float32),
        spatial=g.random((p, 6), dtype=np.float32),
        contacting=g.random((p, 17), dtype=np.float32),
    )


def test_concat_and_bytes_roundtrip():
    a = _preds(["a.mp4/000001.png", "a.mp4/000002.png"], 3, 0)
    b = _preds(["b.mp4/000001.png"], 2, 1)
    both = concat_predictions([a, b])
    assert both.frame_keys.tolist() == [*a.frame_keys, *b.frame_keys]
    # pair rows still link boxes of one frame, now with global indices
    assert np.array_equal(both.box_frame[both.pair_subject], both.box_frame[both.pair_object])
    assert np.array_equal(both.boxes[both.pair_object[-1]], b.boxes[b.pair_object[-1]])
    back = predictions_from_bytes(predictions_to_bytes(both))
    for name in Predictions.FIELDS:
        assert np.array_equal(getattr(back, name), getattr(both, name)), name


def two_video_gt() -> GroundTruth:
    return GroundTruth(
        videos=np.array(["a.mp4", "b.mp4"]),
        video_start=np.array([0, 2, 3]),
        frame_keys=np.array(["a.mp4/1.png", "a.mp4/2.png", "b.mp4/1.png"]),
        frame_video=np.array([0, 0, 1]),
        frame_size=np.full((3, 2), 100),
        box_start=np.array([0, 2, 4, 6]),
        box_frame=np.repeat(np.arange(3), 2),
        boxes=np.zeros((6, 4), np.float32),
        box_labels=np.tile([1, 5], 3),
        triplet_frame=np.array([0, 1, 2, 2]),
        triplet_subject=np.array([0, 2, 4, 5]),
        triplet_object=np.array([1, 3, 5, 4]),
        triplet_predicate=np.array([0, 1, 0, 5]),
    )


def test_gt_prefix_keeps_whole_videos():
    gt = two_video_gt()
    first = gt_first_videos(gt, 1)
    assert first.num_videos == 1 and first.num_frames == 2 and len(first.boxes) == 4
    assert first.triplet_frame.tolist() == [0, 1]
    assert gt_first_videos(gt, 5) is gt


def test_gt_subset_renumbers_frames_boxes_and_triplets():
    gt = two_video_gt()
    second = gt_videos(gt, [1])
    assert second.videos.tolist() == ["b.mp4"] and second.video_start.tolist() == [0, 1]
    assert second.frame_keys.tolist() == ["b.mp4/1.png"] and second.frame_video.tolist() == [0]
    assert second.box_start.tolist() == [0, 2] and second.box_frame.tolist() == [0, 0]
    assert second.triplet_frame.tolist() == [0, 0]
    assert second.triplet_subject.tolist() == [0, 1] and second.triplet_object.tolist() == [1, 0]
    assert second.triplet_predicate.tolist() == [0, 5]
    swapped = gt_videos(gt, [1, 0])  # order follows the rows
    assert swapped.frame_keys.tolist() == ["b.mp4/1.png", "a.mp4/1.png", "a.mp4/2.png"]
    assert swapped.triplet_frame.tolist() == [0, 0, 1, 2]
    assert swapped.triplet_subject.tolist() == [0, 1, 2, 4]


class _Split:
    def __init__(self, n: int) -> None:
        self.gt = argparse.Namespace(videos=np.array([f"{i:05d}.mp4" for i in range(n)]),
                                     num_videos=n)  # fmt: skip


def test_held_out_validation_is_seeded_disjoint_and_default(tmp_path):
    cfg = load_train_config("small")
    assert cfg.val_split == "val" and load_train_config("tr2").val_split == "val"
    split = _Split(50)  # tmp_path: not a synthetic dataset -> the seeded fraction
    held = held_out_rows(split, tmp_path, cfg)
    assert len(held) == 5 and held == held_out_rows(split, tmp_path, cfg)
    train_rows = split_rows("train", split, tmp_path, cfg)
    assert set(train_rows).isdisjoint(held) and len(train_rows) + len(held) == 50
    assert split_rows("val", split, tmp_path, cfg) == held
    other = load_train_config("small", ("val_seed=1",))
    assert held_out_rows(split, tmp_path, other) != held
    lineage = load_train_config("small", ("val_split=test",))  # select on test: train on all
    assert split_rows("train", split, tmp_path, lineage) is None
    with pytest.raises(ConfigError, match="val_fraction"):
        load_train_config("small", ("val_fraction=0",))


def test_metric_value_reads_nested_keys():
    assert metric_value({"with": {"R@20": 0.5}}, "with/R@20") == 0.5
    with pytest.raises(ConfigError, match="no such value"):
        metric_value({"with": {}}, "with/R@20")


# ----------------------------------------------------------------------------- SGDet


def test_sgdet_targets_follow_the_assignment():
    # GT: frame 0 = person(0), cup(1), table(2); frame 1 = person(3), cup(4)
    gt_targets = VideoTargets(
        entity_labels=torch.tensor([1, 11, 32, 1, 11]),
        pair_attention=torch.tensor([0, 1, 2]),
        pair_spatial=torch.eye(6)[:3],
        pair_contacting=torch.eye(17)[:3],
    )
    clip = VideoClip(
        video="v.mp4",
        frame_keys=["v.mp4/000001.png", "v.mp4/000002.png"],
        image_paths=[],
        frame_size=torch.tensor([[100, 100], [100, 100]]),
        entity_frame=torch.tensor([0, 0, 0, 1, 1]),
        entity_boxes=torch.zeros(5, 4),
        entity_labels=gt_targets.entity_labels,
        pair_frame=torch.tensor([0, 0, 1]),
        pair_subject=torch.tensor([0, 0, 3]),
        pair_object=torch.tensor([1, 2, 4]),
        targets=gt_targets,
    )
    # detections: frame 0 = person->GT0, false positive, table->GT2; frame 1 = person->GT3, cup->GT4
    feats = make_features([[5, 32], [11]])
    entity_gt = torch.tensor([0, -1, 2, 3, 4])
    t = sgdet_targets(clip, feats, entity_gt)
    assert t.entity_labels.tolist() == [1, 0, 32, 1, 11]
    assert t.pair_attention.tolist() == [-1, 1, 2]  # false positive: no label
    assert t.pair_spatial[0].sum() == 0 and t.pair_spatial[1].argmax() == 1
    assert t.pair_contacting[2].argmax() == 2


def test_class_alpha_counts_only_the_trained_videos():
    """Focal class weights come from the labels of the videos the run trains on: the
    held-out validation videos' labels do not count."""
    spatial = np.zeros((8, 6), bool)
    spatial[:4, 0] = True  # video a (frames 0, 1): class 0
    spatial[4:, 5] = True  # video b (frame 2): class 5
    split = argparse.Namespace(
        gt=two_video_gt(), pair_frame=np.array([0, 0, 1, 1, 2, 2, 2, 2]),
        pair_subject=np.zeros(8, np.int64), pair_object=np.ones(8, np.int64),
        pair_attention=np.zeros(8, np.int64), pair_spatial=spatial,
        pair_contacting=np.zeros((8, 17), bool),
    )  # fmt: skip
    trained = ActionGenomeVideos(split, rows=[0])  # video b held out
    assert trained.pair_rows().tolist() == [0, 1, 2, 3]
    alpha = class_alpha(trained)["spatial"]
    expected = alpha_from_counts(np.array([4, 0, 0, 0, 0, 0], np.float32))
    assert torch.allclose(alpha, expected), (alpha, expected)
    assert not torch.allclose(class_alpha(ActionGenomeVideos(split))["spatial"], alpha)


def test_listed_validation_videos_all_filtered_out_fall_back_to_the_seeded_subset(tmp_path):
    """A synthetic split whose listed validation videos the loader dropped (small-box
    filter) still holds videos out: the seeded subset, never an empty validation set."""
    from tr2_core.data.synthetic import META_FILE

    cfg = load_train_config("small")
    split = _Split(50)
    seeded = held_out_rows(split, tmp_path, cfg)
    (tmp_path / "annotations").mkdir()
    (tmp_path / "annotations" / META_FILE).write_text('{"val_videos": ["gone.mp4"]}')
    assert held_out_rows(split, tmp_path, cfg) == seeded
    (tmp_path / "annotations" / META_FILE).write_text('{"val_videos": ["00003.mp4"]}')
    assert held_out_rows(split, tmp_path, cfg) == [3]
