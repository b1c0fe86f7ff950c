"""The relation model: shapes per mode, labels, heads, guidance outputs, paper size."""

from __future__ import annotations

import pytest
import torch
from model_fixtures import make_features, small_config

from tr2_core.errors import ConfigError, WeightsError
from tr2_core.models import (
    RelationModel,
    create_relation_model,
    load_model_config,
    load_relation_weights,
)
from tr2_core.models.pair_features import box_masks
from tr2_core.vocab import PERSON


@pytest.mark.parametrize("mode", ["predcls", "sgcls", "sgdet"])
def test_shapes_per_mode(mode):
    torch.manual_seed(0)
    model = RelationModel(small_config()).eval()
    f = make_features([[5, 9, 3], [9], [5, 3]])
    out = model(f, mode=mode)
    n, p = f.entity_labels.shape[0], f.pair_frame.shape[0]
    assert out.attention.shape == (p, 3)
    assert out.spatial.shape == (p, 6) and out.contacting.shape == (p, 17)
    assert out.relation_features.shape == (p, 2 * model.config.d_model)
    assert out.entity_labels.shape == (n,) and out.entity_scores.shape == (n,)
    assert out.guidance_visual is None and out.change_logits is None  # eval: no guidance
    if mode == "predcls":
        assert out.entity_logits is None
        assert torch.equal(out.entity_labels, f.entity_labels)
    else:
        assert out.entity_logits.shape == (n, 37)
        subjects = f.pair_subject.unique()
        assert (out.entity_labels[subjects] == PERSON).all()
        objects = f.pair_object
        assert (out.entity_labels[objects] >= 2).all()
    att, spa, con = out.probabilities()
    assert torch.allclose(att.sum(-1), torch.ones(p))
    assert ((spa >= 0) & (spa <= 1)).all() and ((con >= 0) & (con <= 1)).all()


def test_sgcls_ignores_given_labels_predcls_uses_them():
    torch.manual_seed(0)
    model = RelationModel(small_config()).eval()
    f = make_features([[5, 9], [5, 9]])
    a_pred, a_cls = model(f, mode="predcls").attention, model(f, mode="sgcls").attention
    f.entity_labels[f.pair_object] = 20
    assert not torch.allclose(a_pred, model(f, mode="predcls").attention)
    assert torch.allclose(a_cls, model(f, mode="sgcls").attention)


@pytest.mark.parametrize("source", ["detector", "classifier"])
def test_sgdet_labels_given_in_training_detector_or_classifier_at_inference(source):
    """SGDet training uses the given (assigned) labels, as the authors; at inference the
    boxes keep the detector's labels and scores (``detector``, authors) or are relabelled
    by the object classifier (``classifier``)."""
    torch.manual_seed(0)
    model = RelationModel(small_config(f"object_classifier.sgdet_labels={source}"))
    f = make_features([[5, 9], [5, 9]])
    f.entity_scores = torch.linspace(0.2, 0.9, f.entity_labels.shape[0])
    train = model.train()(f, mode="sgdet")
    assert torch.equal(train.entity_labels, f.entity_labels)
    assert torch.equal(train.entity_scores, f.entity_scores)
    assert train.entity_logits.shape == (6, 37)  # the classifier still trains
    out = model.eval()(f, mode="sgdet")
    classified = model(f, mode="sgcls")
    if source == "detector":
        assert torch.equal(out.entity_labels, f.entity_labels)
        assert torch.equal(out.entity_scores, f.entity_scores)
    else:
        assert torch.equal(out.entity_labels, classified.entity_labels)
        assert torch.equal(out.entity_scores, classified.entity_scores)
        assert not torch.equal(out.entity_scores, f.entity_scores)


def test_guidance_outputs_in_training():
    torch.manual_seed(0)
    f = make_features([[5, 9], [5, 9]])
    full = RelationModel(small_config("guidance.mode=full")).train()(f)
    assert full.guidance_visual.shape == (3, 4, 64) and full.change_logits is None
    binary = RelationModel(small_config("guidance.mode=bin")).train()(f)
    assert binary.change_logits.shape == (4, 3) and binary.guidance_visual is None
    none = RelationModel(small_config("guidance.mode=none")).train()(f)
    assert none.guidance_visual is None and none.change_logits is None


def test_empty_clip_and_frames_without_pairs():
    model = RelationModel(small_config()).eval()
    f = make_features([[], []])
    out = model(f, mode="sgcls")
    assert out.attention.shape == (0, 3) and out.relation_features.shape == (0, 512)
    assert out.entity_logits.shape == (2, 37)


def test_text_heads_use_text_table_as_weights():
    torch.manual_seed(0)
    table = torch.randn(37, 26, 64)
    cfg = small_config("heads.classifier=text")
    model = create_relation_model(cfg, text_table=table).eval()
    f = make_features([[5, 9]])
    out = model(f)
    e_r = out.relation_features
    proj = model.heads.proj["spatial"](e_r[1])
    weights = torch.nn.functional.normalize(table[9, 3:9], dim=-1)
    assert torch.allclose(out.spatial[1], weights @ proj, atol=1e-5)
    with pytest.raises(RuntimeError, match="no text table"):
        RelationModel(cfg).eval()(f)
    with pytest.raises(WeightsError, match="width"):
        create_relation_model(cfg, text_table=torch.randn(37, 26, 32))


def test_geometry_branch_masks_and_width():
    subj = torch.tensor([[0.0, 0.0, 10.0, 10.0]])
    obj = torch.tensor([[10.0, 0.0, 20.0, 10.0]])
    m = box_masks(subj, obj, 4)
    assert m.shape == (1, 2, 4, 4)
    assert m[0, 0, :, :2].all() and not m[0, 0, :, 2:].any()
    assert m[0, 1, :, 2:].all() and not m[0, 1, :, :2].any()
    cfg = small_config("representation.geometry=true", "representation.geometry_dim=64")
    model = RelationModel(cfg).eval()
    assert cfg.d_model == 256 + 64
    out = model(make_features([[5, 9]]))
    assert out.relation_features.shape == (2, 2 * 320)


def test_geometry_branch_sees_where_the_boxes_are():
    """The mask map is flattened (STTran's vr_fc), not averaged: the same layout moved
    within the union grid is a different input. A global average pool over these
    stride-4 convolutions gives a layout shifted by 4 cells the same vector."""
    from tr2_core.models.pair_features import GeometryBranch

    torch.manual_seed(0)
    branch = GeometryBranch(27, 32).eval()
    masks = torch.zeros(2, 2, 27, 27)
    masks[0, 0, 8:14, 4:8] = 1  # a subject and an object side by side ...
    masks[0, 1, 8:14, 8:12] = 1
    masks[1, :, 8:14, 8:16] = masks[0, :, 8:14, 4:12]  # ... the same pair 4 cells right
    assert torch.equal(masks[0].sum((1, 2)), masks[1].sum((1, 2)))
    out = branch.net(masks)
    assert out.shape == (2, 32)
    assert (out[0] - out[1]).abs().max() > 1e-2 * out.abs().max()


def test_config_round_trips_through_a_plain_dict():
    from tr2_core.config import from_dict, to_dict
    from tr2_core.models import ModelConfig

    for name in ("tr2", "tr2-small", "sttran-like"):
        cfg = load_model_config(name)
        assert from_dict(ModelConfig, to_dict(cfg)) == cfg


def test_config_validation_names_the_key():
    with pytest.raises(ConfigError, match="fusion.heads"):
        load_model_config("tr2-small", ("fusion.heads=7",))
    with pytest.raises(ConfigError, match="entity_dim"):
        load_model_config("tr2-small", ("detector.backbone=resnet50",))
    with pytest.raises(ConfigError, match="unknown key"):
        load_model_config("tr2-small", ("fusion.layers=2",))


def test_relation_weights_round_trip_and_mismatch(tmp_path):
    torch.manual_seed(0)
    model = RelationModel(small_config()).eval()
    path = tmp_path / "relation.pt"
    torch.save({"model": model.state_dict()}, path)
    other = create_relation_model(small_config(), weights=path).eval()
    f = make_features([[5, 9], [5]])
    assert torch.equal(model(f).attention, other(f).attention)
    ablated = RelationModel(small_config("fusion.temporal_layers=0"))
    with pytest.raises(WeightsError, match="unexpected key"):
        load_relation_weights(ablated, path)
    with pytest.raises(WeightsError, match="not found"):
        load_relation_weights(ablated, tmp_path / "missing.pt")


def test_paper_size_relation_model_forward():
    """Relation model at the paper's size (d_model 1936, e_r 3872) on 2 frames."""
    cfg = load_model_config("tr2")
    assert cfg.d_model == 1936 and cfg.relation_dim == 3872
    torch.manual_seed(0)
    model = RelationModel(cfg, text_table=torch.randn(37, 26, 512)).train()  # SGCls: text heads
    f = make_features([[5, 9], [5, 9]], entity_dim=2048, union_dim=512)
    out = model(f, mode="sgcls")
    assert out.relation_features.shape == (4, 3872)
    assert out.guidance_visual.shape == (3, 4, 512)
    assert len(model.fusion.temporal.layers) == 3 and len(model.fusion.spatial.layers) == 1
    assert model.fusion.temporal.layers[0].attn.num_heads == 8
    assert model.fusion.temporal.layers[0].ffn[0].out_features == 2048
