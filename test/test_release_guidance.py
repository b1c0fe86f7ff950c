"""The release's guidance loss (``guidance.text_rows: local``, ``difference_bias: true``)
equals a plain reference of the authors' getVisualDiff / getTextDiff and MSE
(qncsn2016/TR2 tr2_model.py, train.py); tr2's corrected form differs from it."""

from __future__ import annotations

import pytest
import torch
from model_fixtures import make_features, make_targets, small_config
from torch.nn import functional as F

from tr2_core.models.losses import guidance_loss
from tr2_core.models.relation_model import RelationModel
from tr2_core.vocab import FAMILIES

OBJECTS = [[5, 7], [5, 7, 9], [7, 9], [5, 9, 7]]


def _model_and_output(rows: str, bias: bool):
    cfg = small_config("guidance.mode=full", f"guidance.text_rows={rows}",
                       f"guidance.difference_bias={str(bias).lower()}")  # fmt: skip
    torch.manual_seed(0)
    model = RelationModel(cfg).eval()
    with torch.no_grad():
        for f in FAMILIES:  # visible biases
            model.guidance_proj[f.name].bias.normal_(0, 1)
    features = make_features(OBJECTS, union_dim=64, seed=1)
    with torch.no_grad():
        out = model(features, mode="predcls", with_guidance=True)
    return model, features, out


def _authors_loss(model, features, targets, e_r, table) -> torch.Tensor:
    """getVisualDiff / getTextDiff: pairs grouped by object label in row order; per group
    consecutive differences; v = change_?diff(e_r[t] - e_r[t-1]); text = mean of
    clip_sentence[label][k] over the family-local labels k; MSE per family, summed."""
    obj_label = features.entity_labels[features.pair_object].tolist()
    groups = {g: [i for i, v in enumerate(obj_label) if v == g] for g in sorted(set(obj_label))}
    labels = {
        "attention": [[int(a)] for a in targets.pair_attention],
        "spatial": [row.nonzero().squeeze(1).tolist() for row in targets.pair_spatial],
        "contacting": [row.nonzero().squeeze(1).tolist() for row in targets.pair_contacting],
    }
    total = torch.zeros(())
    for family in FAMILIES:
        proj = model.guidance_proj[family.name]
        dv, dt = [], []
        for g, rows in groups.items():
            text = torch.stack([table[g][labels[family.name][r]].mean(0) for r in rows])
            for k in range(1, len(rows)):
                dv.append(proj(e_r[rows[k]] - e_r[rows[k - 1]]))
                dt.append(text[k] - text[k - 1])
        total = total + F.mse_loss(torch.stack(dv), torch.stack(dt))
    return total


@pytest.mark.parametrize(("rows", "bias", "equal"), [
    ("local", True, True), ("family", True, False), ("local", False, False),
])  # fmt: skip
def test_release_guidance_equals_the_authors_form(rows, bias, equal):
    model, features, out = _model_and_output(rows, bias)
    targets = make_targets(features, seed=2)
    table = torch.randn(37, 26, 64, generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        want = _authors_loss(model, features, targets, out.relation_features, table)
        got = guidance_loss(out, features, targets, table, "full", rows)
    assert (abs(float(got - want)) < 1e-5) == equal


def test_cloned_decoder_init_starts_every_layer_equal_and_draws_the_same():
    torch.manual_seed(0)
    cloned = RelationModel(small_config("fusion.decoder_init=cloned"))
    torch.manual_seed(0)
    independent = RelationModel(small_config())
    layers = cloned.fusion.temporal.layers
    first = layers[0].state_dict()
    assert all(torch.equal(first[k], layer.state_dict()[k]) for layer in layers for k in first)
    other = independent.fusion.temporal.layers
    assert not torch.equal(other[0].ffn[0].weight, other[1].ffn[0].weight)
    assert torch.equal(other[0].ffn[0].weight, layers[1].ffn[0].weight)
    # the rest of the model draws exactly as before
    assert torch.equal(
        independent.heads.heads.attention.weight, cloned.heads.heads.attention.weight
    )
