"""The paper-size `tr2` config behaves as the authors' release (qncsn2016/TR2) where a
choice changes results; see docs/faithfulness.md."""

from __future__ import annotations

import logging
import math

import pytest
import torch
from model_fixtures import make_features, make_targets

from tr2_core.models import RelationModel, load_model_config
from tr2_core.models.entities import Float32BoxCoder, build_detector
from tr2_core.models.entity_classifier import decide_entity_labels
from tr2_core.models.glove import glove_class_vectors, init_class_embeddings
from tr2_core.models.guidance import ChangeHead
from tr2_core.models.losses import compute_losses, pair_focal_bce
from tr2_core.models.model_config import ObjectClassifierConfig
from tr2_core.models.predicate_heads import (
    LinearPredicateHeads,
    TaskPredicateHeads,
    TextPredicateHeads,
)
from tr2_core.train.recipe import load_train_config
from tr2_core.vocab import OBJECT_CLASSES, PERSON


def _bce(q: float, y: float) -> float:
    return -(y * math.log(q) + (1 - y) * math.log(1 - q))


def _sig(x: float) -> float:
    return 1.0 / (1.0 + math.exp(-x))


# --------------------------------------------------------------------------- a. loss
def test_pair_focal_loss_matches_hand_computation():
    logits = torch.tensor([[2.0, -1.0, 0.5], [0.0, 1.5, -2.0], [1.0, 1.0, 1.0]])
    targets = torch.tensor([[1.0, 0.0, 1.0], [0.0, 1.0, 0.0], [0.0, 0.0, 0.0]])
    alpha = torch.tensor([0.5, 1.0, 1.5])

    def expected(alpha_of):
        total = 0.0
        for p in range(3):
            bce = sum(
                _bce(_sig(float(logits[p, k])), float(targets[p, k])) for k in range(3)
            )  # summed over the family's classes
            gt = [k for k in range(3) if targets[p, k] == 1]
            a = sum(alpha_of(k) for k in gt) / len(gt) if gt else 1.0
            total += a * (1 - math.exp(-bce)) ** 2 * bce
        return total / 3

    got = pair_focal_bce(logits, targets, alpha, 2.0)
    assert got.item() == pytest.approx(expected(lambda k: float(alpha[k])), rel=1e-6)
    # the authors' off-by-one (alpha[k - 1]; class 0 -> the last class), only on request
    shifted = pair_focal_bce(logits, targets, alpha, 2.0, alpha_index_shift=True)
    assert shifted.item() == pytest.approx(expected(lambda k: float(alpha[k - 1])), rel=1e-6)
    assert shifted.item() != pytest.approx(got.item(), rel=1e-3)


def test_paper_config_uses_the_pair_focal_loss_and_lambda_per_task():
    cfg = load_model_config("tr2")
    assert cfg.loss.focal_form == "pair" and not cfg.loss.alpha_index_shift
    assert cfg.loss.object_weight_for("sgcls") == 10.0
    assert cfg.loss.object_weight_for("sgdet") == 1.0
    assert cfg.object_classifier.sgdet_labels == "detector"  # tr2: the detector's labels
    assert load_model_config("tr2-release").object_classifier.sgdet_labels == "release"
    small = load_model_config("tr2-small", ("fusion.dropout=0.0", "guidance.mode=none"))
    torch.manual_seed(0)
    model = RelationModel(small).train()
    f = make_features([[5, 9], [5, 9]])
    t = make_targets(f)
    out = model(f, t, mode="sgcls")
    alpha = {"spatial": torch.rand(6) + 0.5, "contacting": torch.rand(17) + 0.5}
    losses = compute_losses(out, f, t, None, small, class_alpha=alpha, task="sgcls")
    assert losses["spatial"].item() == pytest.approx(
        pair_focal_bce(out.spatial, t.pair_spatial, alpha["spatial"]).item(), rel=1e-6
    )
    sgdet = compute_losses(out, f, t, None, small, class_alpha=alpha, task="sgdet")
    assert losses["object"].item() == pytest.approx(10 * sgdet["object"].item(), rel=1e-5)


# --------------------------------------------------------------------------- b. heads
def test_paper_heads_text_for_predcls_sgcls_linear_for_sgdet():
    cfg = load_model_config("tr2")
    table = torch.randn(37, 26, 512) * 3.0  # raw encode_text output: not unit norm
    model = RelationModel(cfg, text_table=table).eval()
    heads = model.heads
    assert isinstance(heads, TaskPredicateHeads)
    assert isinstance(heads.text, TextPredicateHeads) and isinstance(
        heads.linear, LinearPredicateHeads
    )
    proj = heads.text.proj["contacting"]
    assert (proj.in_features, proj.out_features) == (3872, 512)
    assert heads.linear.heads["contacting"].in_features == 3872
    assert torch.equal(heads.text.text_table, table)  # unnormalised
    e_r = torch.randn(2, 3872)
    obj = torch.tensor([5, 9])
    logits = heads(e_r, obj, "sgcls")
    assert torch.allclose(logits["contacting"][1], table[9, 9:] @ proj(e_r[1]), atol=1e-3)
    assert torch.equal(heads(e_r, obj, "predcls")["spatial"], logits["spatial"])
    linear = heads(e_r, obj, "sgdet")
    assert torch.equal(linear["attention"], heads.linear.heads["attention"](e_r))
    with pytest.raises(ValueError, match="task"):
        heads(e_r, obj)


# --------------------------------------------------------------------------- d. objects
def test_object_label_decision_as_the_authors():
    """Softmax over the 36 non-background classes, person = the most person-like box of
    the frame, objects take their best class in 2..36, duplicates of the most frequent
    class are relabelled except the most confident box."""
    cfg = ObjectClassifierConfig()
    logits = torch.full((5, 37), -10.0)
    logits[:, 0] = 50.0  # background is ignored by the decision
    # frame 0: row 0 weakly person-like, row 1 strongly -> row 1 is the person
    logits[0, PERSON] = 2.0
    logits[0, 7] = 3.0
    logits[1, PERSON] = 6.0
    logits[1, 7] = 1.0
    # frame 1: rows 2, 3, 4; rows 2 and 3 both prefer class 5; row 3 is less sure
    logits[2, 5] = 5.0
    logits[3, 5] = 3.0
    logits[3, 12] = 2.0
    logits[4, PERSON] = 4.0
    logits[4, 20] = 1.0
    frame = torch.tensor([0, 0, 1, 1, 1])
    labels, scores = decide_entity_labels(logits, frame, torch.tensor([0, 2]), cfg)
    assert labels.tolist() == [7, PERSON, 5, 12, PERSON]
    probs = logits[:, 1:].softmax(-1)
    assert scores[1].item() == pytest.approx(probs[1, 0].item())
    assert scores[3].item() == pytest.approx(probs[3, 11].item())  # class 12, next best
    # the project's alternative: the pairs' subjects are the person
    subj = ObjectClassifierConfig(person="pair_subject", dedup=False)
    labels, _ = decide_entity_labels(logits, frame, torch.tensor([0, 2]), subj)
    assert labels.tolist() == [PERSON, 7, PERSON, 5, 20]


def test_object_classifier_inputs_visual_and_box_embedding():
    cfg = load_model_config("tr2")
    model = RelationModel(cfg).train()
    clf = model.object_classifier
    assert clf.mlp[0].in_features == 2048 + 128
    assert isinstance(clf.mlp[1], torch.nn.BatchNorm1d)
    f = make_features([[5, 9]], entity_dim=2048, union_dim=512)
    logits, labels, scores = clf.classify(f)
    assert logits.shape == (3, 37) and labels.shape == (3,)
    one = clf(f.entity_features[:1], f.entity_boxes[:1])  # one entity in training
    assert torch.isfinite(one).all()


# --------------------------------------------------------------------------- e. recipe
def test_paper_recipe_and_glove_initialisation(tmp_path, caplog):
    train = load_train_config("tr2")
    assert (train.epochs, train.min_lr, train.amp) == (15, 1e-6, False)
    dim = 4
    lines = [f"{w} " + " ".join(str(i + j / 10) for j in range(dim)) for i, w in
             enumerate(["person", "cup", "sofa", "closet", "the"])]  # fmt: skip
    path = tmp_path / "glove.txt"
    path.write_text("\n".join(lines) + "\n")
    vectors, missing = glove_class_vectors(path, dim)
    assert vectors[OBJECT_CLASSES.index("cup/glass/bottle")].tolist() == pytest.approx(
        [1.0, 1.1, 1.2, 1.3]
    )
    assert vectors[OBJECT_CLASSES.index("sofa/couch")][0].item() == pytest.approx(2.0)
    assert "__background__" in missing and "bag" in missing and "person" not in missing
    emb = [torch.nn.Embedding(37, dim), torch.nn.Embedding(37, dim)]
    with caplog.at_level(logging.INFO):
        init_class_embeddings(emb, path)
        assert torch.equal(emb[0].weight, emb[1].weight)
        assert emb[0].weight[PERSON].tolist() == pytest.approx([0.0, 0.1, 0.2, 0.3])
        init_class_embeddings(emb, None)
    assert "GloVe 4-d" in caplog.text and "random init" in caplog.text
    from tr2_core.errors import WeightsError

    with pytest.raises(WeightsError, match="expected 5 numbers"):
        glove_class_vectors(path, 5)


# --------------------------------------------------------------------------- f. boxes
def test_box_decoding_stays_float32_under_bf16_autocast():
    """torchvision casts reference boxes to the regression dtype: near 1000 px bf16 has
    4 px steps. The detector's coders decode in float32."""
    boxes = torch.tensor([[997.0, 501.0, 1003.0, 1001.0]])
    codes = torch.tensor([[0.013, -0.02, 0.01, 0.003]]).to(torch.bfloat16)
    exact = Float32BoxCoder((10.0, 10.0, 5.0, 5.0)).decode_single(codes.float(), boxes)
    from torchvision.models.detection._utils import BoxCoder

    with torch.autocast("cpu", dtype=torch.bfloat16):
        lossy = BoxCoder((10.0, 10.0, 5.0, 5.0)).decode_single(codes, boxes)
        ours = Float32BoxCoder((10.0, 10.0, 5.0, 5.0)).decode_single(codes, boxes)
    assert (lossy.float() - exact).abs().max() > 0.5  # what the fix is about
    assert ours.dtype == torch.float32 and torch.equal(ours, exact)
    det = build_detector(load_model_config("tr2-small").detector)
    assert isinstance(det.rpn.box_coder, Float32BoxCoder)
    assert isinstance(det.roi_heads.box_coder, Float32BoxCoder)
    assert det.roi_heads.box_coder.weights == (10.0, 10.0, 5.0, 5.0)
    torch.manual_seed(0)
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
        out = det([torch.rand(3, 96, 128)])
    assert out[0]["boxes"].dtype == torch.float32


# --------------------------------------------------------------------------- g. TR²ᵇⁱⁿ
def test_change_head_is_symmetric_in_the_direction_of_change():
    torch.manual_seed(0)
    head = ChangeHead(8)
    d = torch.randn(5, 8)
    assert torch.equal(head(d), head(-d))
    antisym = ChangeHead(8, "linear")
    assert not torch.allclose(antisym(d), antisym(-d))
    assert load_model_config("tr2-bin").guidance.change_head == "abs"
    model = RelationModel(load_model_config("tr2-small", ("guidance.mode=bin",))).train()
    assert all(isinstance(h, ChangeHead) and h.symmetric for h in model.change_heads.values())
    f = make_features([[5], [5]])
    assert model(f).change_logits.shape == (2, 3)
