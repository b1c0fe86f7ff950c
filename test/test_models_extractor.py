"""Frozen extractor: pooled RoI features, batched CLIP union crops, SGDet detection,
weights errors, and the paper-size build."""

from __future__ import annotations

import logging

import pytest
import torch
from model_fixtures import BOXES, LABELS, frames, people_and_bags_extractor, small_config

from tr2_core.errors import WeightsError
from tr2_core.models import create_extractor, load_model_config
from tr2_core.models.entities import build_detector
from tr2_core.models.pair_features import UnionFeatureEncoder, create_clip, square_crop_boxes
from tr2_core.run import build_model
from tr2_core.vocab import PERSON


@pytest.fixture(scope="module")
def extractor():
    return create_extractor(small_config("detector.score_thresh=0.0"), random_init=True)


def test_given_boxes_shapes_and_pairs(extractor):
    imgs = frames()
    f = extractor.extract(imgs, [BOXES] * 3, [LABELS] * 3, frame_keys=["a", "b", "c"])
    assert f.entity_features.shape == (9, 512) and f.union_features.shape == (6, 64)
    assert f.entity_frame.tolist() == [0, 0, 0, 1, 1, 1, 2, 2, 2]
    assert f.pair_subject.tolist() == [0, 0, 3, 3, 6, 6]
    assert f.pair_object.tolist() == [1, 2, 4, 5, 7, 8]
    assert f.entity_track.tolist() == [-1] * 9 and f.frame_keys == ["a", "b", "c"]
    assert extractor.random_init is True
    assert not any(p.requires_grad for p in extractor.parameters())
    # the same frame content gives the same features, independent of the other frames
    g = extractor.extract([imgs[1], imgs[1]], [BOXES] * 2, [LABELS] * 2)
    assert torch.allclose(g.entity_features[:3], f.entity_features[3:6], atol=1e-4)
    assert torch.allclose(g.union_features[:2], f.union_features[2:4], atol=1e-4)
    assert not torch.allclose(f.entity_features[0], f.entity_features[1])


def test_frames_of_different_sizes(extractor):
    imgs = [frames(1, 0, (96, 128))[0], frames(1, 1, (80, 100))[0]]
    f = extractor.extract(imgs, [BOXES, BOXES[:2]], [LABELS, LABELS[:2]])
    assert f.union_features.shape == (3, 64) and torch.isfinite(f.union_features).all()


@pytest.mark.parametrize("chunk, calls", [(512, 1), (2, 3)])
def test_clip_crops_batched_in_one_call(chunk, calls):
    cfg = small_config(f"clip.crop_batch_size={chunk}")
    ext = create_extractor(cfg, random_init=True)
    seen = []
    ext.union.clip.visual.register_forward_hook(lambda m, i, o: seen.append(i[0].shape[0]))
    ext.extract(frames(), [BOXES] * 3, [LABELS] * 3)  # 6 union crops
    assert len(seen) == calls and sum(seen) == 6


def test_crop_and_resize_geometry():
    cfg = small_config("clip.crop_mode=stretch").clip
    enc = UnionFeatureEncoder(create_clip(cfg, random_init=True), cfg)
    width = 100
    ramp = torch.arange(width, dtype=torch.float32).expand(3, 50, width).clone()[None] / 255
    box = torch.tensor([[20.0, 10.0, 84.0, 40.0]])
    crops = enc.crops(ramp, torch.tensor([0]), box) * enc.std + enc.mean
    size = enc.image_size[1]
    centres = 20.0 + (torch.arange(size) + 0.5) * 64.0 / size - 0.5
    assert torch.allclose(crops[0, 0, 5] * 255, centres, atol=1e-3)
    sq = square_crop_boxes(torch.tensor([[0.0, 0.0, 100.0, 40.0]]))
    assert sq.tolist() == [[30.0, 0.0, 70.0, 40.0]]


def test_sgdet_detection_invariants():
    ext = people_and_bags_extractor()
    raw = ext.detector([im.float() / 255 for im in frames()])
    assert min(int((r["labels"] == PERSON).sum()) for r in raw) > 1
    assert min(int((r["labels"] == 2).sum()) for r in raw) > 1
    f = ext.extract(frames())
    assert f.pair_frame.shape[0] > 0
    assert f.entity_features.shape[1] == 512
    for t in range(3):
        rows = f.entity_frame == t
        assert int((f.entity_labels[rows] == PERSON).sum()) <= 1
    assert (f.entity_labels[f.pair_subject] == PERSON).all()
    assert (f.pair_subject != f.pair_object).all()
    assert torch.equal(f.entity_frame, f.entity_frame.sort().values)


def test_missing_weights_are_errors_not_random(tmp_path, caplog):
    cfg = small_config()
    with pytest.raises(WeightsError, match="no detector weights"):
        create_extractor(cfg)
    with pytest.raises(WeightsError, match="not found"):
        create_extractor(cfg, detector_weights=tmp_path / "nope.pt", clip_weights="x.bin")
    garbage = tmp_path / "garbage.pt"
    garbage.write_bytes(b"not a checkpoint")
    with pytest.raises(WeightsError, match="not a readable"):
        create_extractor(cfg, detector_weights=garbage)
    with caplog.at_level(logging.WARNING):
        model = build_model(cfg, random_init=True)
    assert model.extractor.random_init
    assert caplog.text.count("RANDOM INIT") == 1  # announced once, by the run builder


def test_detector_weights_strict(tmp_path):
    cfg = small_config()
    det = build_detector(cfg.detector)
    good = tmp_path / "det.pt"
    torch.save(det.state_dict(), good)
    other = build_detector(small_config().detector.__class__(backbone="resnet34"))
    bad = tmp_path / "det34.pt"
    torch.save(other.state_dict(), bad)
    clip_file = tmp_path / "clip.pt"
    clip = create_clip(cfg.clip, random_init=True)
    torch.save(clip.state_dict(), clip_file)
    with pytest.raises(WeightsError, match="do not match"):
        create_extractor(cfg, detector_weights=bad, clip_weights=str(clip_file))
    ext = create_extractor(cfg, detector_weights=good, clip_weights=str(clip_file))
    assert ext.random_init is False
    for k, v in det.state_dict().items():
        assert torch.equal(ext.detector.state_dict()[k], v)
    for k, v in clip.state_dict().items():
        assert torch.equal(ext.union.clip.state_dict()[k], v)


def test_clip_weights_errors(tmp_path):
    cfg = small_config().clip
    with pytest.raises(WeightsError, match="no CLIP weights"):
        create_clip(cfg)
    with pytest.raises(WeightsError, match="not found"):
        create_clip(cfg, pretrained=str(tmp_path / "missing.bin"))
    wide = small_config().clip.__class__(overrides={**cfg.overrides, "embed_dim": 32})
    bad = tmp_path / "wide.pt"
    torch.save(create_clip(wide, random_init=True).state_dict(), bad)
    with pytest.raises(WeightsError, match="cannot load CLIP"):
        create_clip(cfg, pretrained=str(bad))
    garbage = tmp_path / "garbage.bin"
    garbage.write_bytes(b"not a checkpoint")
    with pytest.raises(WeightsError, match="cannot load CLIP"):
        create_clip(cfg, pretrained=str(garbage))
    with pytest.raises(WeightsError, match="cannot load CLIP"):
        create_clip(cfg, pretrained="no-such-tag")


def test_paper_size_model_builds_and_runs_on_two_tiny_frames():
    """ResNet-101 C4 Faster R-CNN + ViT-B-32 + the 1936-d relation model, random init.
    The detector's resize is lowered (min_size 96) to keep the CPU test fast."""
    cfg = load_model_config("tr2")
    assert cfg.detector.backbone == "resnet101" and cfg.clip.model_name == "ViT-B-32"
    table = torch.randn(37, 26, 512)  # PredCls/SGCls classify with the prompt table
    model = build_model(
        "tr2",
        random_init=True,
        overrides=["detector.min_size=96", "detector.max_size=128"],
        text_table=table,
    )
    assert model.extractor.union.out_dim == 512 and model.extractor.union.image_size == (224, 224)
    imgs = frames(2, size=(64, 80))
    boxes = [torch.tensor([[5.0, 5.0, 40.0, 60.0], [30.0, 20.0, 78.0, 62.0]])] * 2
    labels = [torch.tensor([PERSON, 5])] * 2
    features = model.extractor.extract(imgs, boxes, labels)
    with torch.no_grad():
        out = model.relation.eval()(features, mode="predcls")
    assert features.entity_features.shape == (4, 2048)
    assert features.union_features.shape == (2, 512)
    assert out.relation_features.shape == (2, 3872) and out.contacting.shape == (2, 17)
