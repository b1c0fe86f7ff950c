"""Loss terms against hand computations."""

from __future__ import annotations

import math

import pytest
import torch
from model_fixtures import make_features, make_targets, small_config

from tr2_core.models.losses import (
    alpha_from_counts,
    attention_ce,
    change_bce,
    compute_losses,
    family_targets,
    focal_bce,
    guidance_mse,
    object_ce,
    text_targets,
)
from tr2_core.models.relation_model import RelationModel
from tr2_core.vocab import ATTENTION, CONTACTING, SPATIAL


def _sig(x: float) -> float:
    return 1.0 / (1.0 + math.exp(-x))


def test_focal_bce_hand_computed():
    logits = torch.tensor([[2.0, -1.0], [0.5, 0.0]])
    targets = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    alpha = torch.tensor([0.7, 1.3])
    total = 0.0
    for p in range(2):
        for k in range(2):
            q = _sig(float(logits[p, k]))
            qt = q if targets[p, k] == 1 else 1 - q
            total += float(alpha[k]) * (1 - qt) ** 2 * -math.log(qt)
    expected = total / 2  # sum over classes, mean over pairs
    assert focal_bce(logits, targets, alpha, 2.0).item() == pytest.approx(expected, rel=1e-6)
    # gamma 0 and alpha 1 is plain BCE summed over classes
    bce = torch.nn.functional.binary_cross_entropy_with_logits(logits, targets, reduction="sum") / 2
    assert focal_bce(logits, targets, None, 0.0).item() == pytest.approx(bce.item(), rel=1e-6)


def test_focal_bce_down_weights_easy_examples():
    easy = focal_bce(torch.tensor([[6.0]]), torch.tensor([[1.0]]))
    hard = focal_bce(torch.tensor([[-6.0]]), torch.tensor([[1.0]]))
    assert easy.item() < 1e-6 < hard.item()


def test_cross_entropies_hand_computed():
    logits = torch.tensor([[1.0, 2.0, 0.5], [0.0, 0.0, 0.0], [3.0, 0.0, 0.0]])
    labels = torch.tensor([1, -1, 0])

    def ce(row, y):
        return -math.log(math.exp(row[y]) / sum(math.exp(v) for v in row))

    expected = (ce([1.0, 2.0, 0.5], 1) + ce([3.0, 0.0, 0.0], 0)) / 2  # -1 ignored
    assert attention_ce(logits, labels).item() == pytest.approx(expected, rel=1e-6)
    assert attention_ce(logits, torch.full((3,), -1)).item() == 0.0
    assert object_ce(logits, torch.tensor([1, 0, 0])).item() == pytest.approx(
        (ce([1.0, 2.0, 0.5], 1) + ce([0.0, 0.0, 0.0], 0) + ce([3.0, 0.0, 0.0], 0)) / 3, rel=1e-6
    )


def test_alpha_from_counts_formula():
    counts = [100.0, 10000.0]
    a = [math.log(c) for c in counts]
    a = [x / sum(a) for x in a]
    inv = [1 / x for x in a]
    expected = [x / (sum(inv) / 2) for x in inv]
    assert alpha_from_counts(counts).tolist() == pytest.approx(expected, rel=1e-6)
    assert alpha_from_counts(counts)[0] > alpha_from_counts(counts)[1]  # rarer weighs more


def test_text_targets_mean_of_gt_predicates():
    table = torch.randn(37, 26, 4)
    multi_hot = torch.tensor([[1.0, 0, 1, 0, 0, 0], [0, 0, 0, 0, 0, 0]])
    s, valid = text_targets(table, torch.tensor([7, 3]), multi_hot, SPATIAL)
    expected = (table[7, SPATIAL.start + 0] + table[7, SPATIAL.start + 2]) / 2
    assert torch.allclose(s[0], expected) and valid.tolist() == [True, False]


def test_eq2_and_eq4_hand_computed():
    v = torch.tensor([[1.0, 2.0], [2.0, 0.0], [5.0, 5.0], [0.0, 1.0]])
    s = torch.tensor([[0.0, 1.0], [1.0, 1.0], [0.0, 0.0], [2.0, 2.0]])
    prev = torch.tensor([0, 0, 2, 1])  # sequences: 0 -> 1 -> 3 and 2 alone
    valid = torch.tensor([True, True, True, True])
    # Eq. 2 over transitions (0->1) and (1->3)
    d1 = ((v[1] - v[0]) - (s[1] - s[0])) ** 2
    d2 = ((v[3] - v[1]) - (s[3] - s[1])) ** 2
    expected2 = torch.cat([d1, d2]).mean()
    assert guidance_mse(v, s, prev, valid).item() == pytest.approx(expected2.item())
    # Eq. 4: rows 1 and 3 (i = 2..T of each sequence)
    expected4 = torch.cat([(v[1] - s[1]) ** 2, (v[3] - s[3]) ** 2]).mean()
    assert guidance_mse(v, s, prev, valid, temporal_difference=False).item() == pytest.approx(
        expected4.item()
    )
    # a row without a text target drops the transitions touching it
    valid2 = torch.tensor([True, False, True, True])
    assert guidance_mse(v, s, prev, valid2).item() == 0.0


def test_eq2_is_invariant_to_a_constant_offset_but_eq4_is_not():
    v = torch.randn(3, 4)
    s = torch.randn(3, 4)
    prev = torch.tensor([0, 0, 1])
    valid = torch.ones(3, dtype=torch.bool)
    a = guidance_mse(v, s, prev, valid)
    b = guidance_mse(v + 10.0, s, prev, valid)
    assert a.item() == pytest.approx(b.item(), rel=1e-5)
    assert guidance_mse(v + 10.0, s, prev, valid, False) > guidance_mse(v, s, prev, valid, False)


def test_change_bce_hand_computed():
    logits = torch.tensor([0.0, 2.0, -1.0])
    multi_hot = torch.tensor([[1.0, 0.0], [1.0, 0.0], [0.0, 1.0]])
    prev = torch.tensor([0, 0, 1])
    valid = torch.ones(3, dtype=torch.bool)
    # row 1: same labels as row 0 -> 0; row 2: changed -> 1
    expected = (-math.log(1 - _sig(2.0)) - math.log(_sig(-1.0))) / 2
    assert change_bce(logits, multi_hot, prev, valid).item() == pytest.approx(expected, rel=1e-6)


def test_family_targets_attention_one_hot():
    att = torch.tensor([2, -1])
    out = family_targets(ATTENTION, att, torch.zeros(2, 6), torch.zeros(2, 17))
    assert out.tolist() == [[0, 0, 1], [0, 0, 0]]
    con = torch.rand(2, 17)
    assert torch.equal(family_targets(CONTACTING, att, torch.zeros(2, 6), con), con)


@pytest.mark.parametrize("mode", ["none", "full", "no_tdiff", "bin"])
def test_compute_losses_terms_and_gradients(mode):
    torch.manual_seed(0)
    cfg = small_config(f"guidance.mode={mode}")
    model = RelationModel(cfg).train()
    f = make_features([[5, 9], [5, 9], [5]])
    t = make_targets(f)
    table = torch.randn(37, 26, 64)
    # PredCls keys the sequences by the given labels (an untrained classifier's labels
    # would split them); the object term is checked on an SGCls pass
    out = model(f, t, mode="predcls")
    alpha = {"spatial": torch.ones(6), "contacting": alpha_from_counts(torch.arange(17) + 10.0)}
    losses = compute_losses(out, f, t, table, cfg, class_alpha=alpha)
    assert set(losses) == {"object", "attention", "spatial", "contacting", "guidance"}
    assert all(v.ndim == 0 and torch.isfinite(v) for v in losses.values())
    assert (losses["guidance"].item() == 0.0) == (mode == "none")
    obj = compute_losses(model(f, t, mode="sgcls"), f, t, table, cfg, task="sgcls")["object"]
    (sum(losses.values()) + obj).backward()
    grads = {n: p.grad for n, p in model.named_parameters()}
    assert grads["object_classifier.mlp.0.weight"].abs().sum() > 0
    if mode != "none":
        assert grads["guidance_proj.spatial.weight"].abs().sum() > 0


def test_compute_losses_guidance_matches_manual_eq2():
    torch.manual_seed(0)
    cfg = small_config("guidance.mode=full", "guidance.weight=0.5")
    model = RelationModel(cfg).train()
    f = make_features([[5], [5], [5]])
    t = make_targets(f)
    table = torch.randn(37, 26, 64)
    out = model(f, t)
    got = compute_losses(out, f, t, table, cfg)["guidance"]
    total = 0.0
    labels = {
        "attention": family_targets(ATTENTION, t.pair_attention, t.pair_spatial, t.pair_contacting),
        "spatial": t.pair_spatial,
        "contacting": t.pair_contacting,
    }
    for i, fam in enumerate((ATTENTION, SPATIAL, CONTACTING)):
        v = out.guidance_visual[i]
        s = torch.stack(
            [
                table[5, fam.start + labels[fam.name][r].nonzero().flatten()].mean(0)
                for r in range(3)
            ]
        )
        dv, ds = v[1:] - v[:-1], s[1:] - s[:-1]
        total += ((dv - ds) ** 2).mean()
    assert got.item() == pytest.approx(0.5 * float(total.detach()), rel=1e-5)


def test_object_term_absent_in_predcls_and_weighted_by_lambda():
    cfg = small_config("loss.object_weight=2.5")
    model = RelationModel(cfg).eval()
    f = make_features([[5, 9]])
    t = make_targets(f)
    out_p = model(f, mode="predcls", with_guidance=True)
    assert out_p.entity_logits is None
    assert compute_losses(out_p, f, t, torch.zeros(37, 26, 64), cfg)["object"].item() == 0.0
    out_s = model(f, mode="sgcls", with_guidance=True)
    got = compute_losses(out_s, f, t, torch.zeros(37, 26, 64), cfg)["object"]
    expected = 2.5 * torch.nn.functional.cross_entropy(out_s.entity_logits, t.entity_labels)
    assert got.item() == pytest.approx(expected.item(), rel=1e-6)
