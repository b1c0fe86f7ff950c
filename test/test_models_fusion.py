"""Relation feature fusion: regrouping, masks, temporal embedding, message token,
ablation switches."""

from __future__ import annotations

import pytest
import torch
from model_fixtures import make_features, small_config

from tr2_core.models.fusion import (
    MessageToken,
    RelationFusion,
    SpatialEncoder,
    TemporalDecoder,
    TemporalLayer,
    make_grouping,
    pair_sequence_keys,
    sequence_layout,
    sinusoidal_embedding,
)
from tr2_core.models.model_config import FusionConfig, load_model_config
from tr2_core.models.relation_model import RelationModel

D = 32
CFG = FusionConfig(heads=4, ffn_dim=64, dropout=0.0)


def test_grouping_round_trip_and_addresses():
    keys = torch.tensor([5, 2, 5, 9, 2, 5])
    order = torch.tensor([3, 1, 0, 0, 0, 1])
    g = make_grouping(keys, order)
    assert g.num_groups == 3 and g.max_len == 3
    assert g.group.tolist() == [1, 0, 1, 2, 0, 1]
    # inside group of key 5 the order is by `order` (0, 1, 3) -> rows 2, 5, 0
    assert g.position.tolist() == [2, 1, 0, 0, 0, 1]
    x = torch.randn(6, 7)
    padded, valid = g.pad(x)
    assert padded.shape == (3, 3, 7) and int(valid.sum()) == 6
    assert torch.equal(g.unpad(padded), x)  # exact round trip
    assert torch.equal(padded[1, 0], x[2]) and torch.equal(padded[0, 1], x[1])


def test_grouping_random_round_trip():
    gen = torch.Generator().manual_seed(1)
    for _ in range(20):
        n = int(torch.randint(1, 40, (1,), generator=gen))
        keys = torch.randint(0, 6, (n,), generator=gen)
        order = torch.randint(0, 10, (n,), generator=gen)
        g = make_grouping(keys, order)
        x = torch.randn(n, 3, generator=gen)
        padded, valid = g.pad(x)
        assert torch.equal(g.unpad(padded), x)
        # addresses are unique and positions dense from 0
        flat = g.group * g.max_len + g.position
        assert flat.unique().numel() == n
        assert int(valid.sum(1).max()) == g.max_len


def test_sequence_keys_track_then_label():
    f = make_features([[5, 9], [5, 9]], tracks=[[0, 7, 8], [0, 7, 8]])
    keys = pair_sequence_keys(f.pair_subject, f.pair_object, f.entity_track, f.entity_labels)
    assert keys.tolist() == [[1, 0, 7], [1, 0, 8], [1, 0, 7], [1, 0, 8]]
    f2 = make_features([[5, 5], [5]])  # no tracker: the label key merges same-class objects
    keys2 = pair_sequence_keys(f2.pair_subject, f2.pair_object, f2.entity_track, f2.entity_labels)
    assert keys2.tolist() == [[0, 1, 5]] * 3


def test_sequence_layout_prev_and_order():
    # frames: 0: objects 5, 9 ; 1: 9 ; 2: 5, 9
    f = make_features([[5, 9], [9], [5, 9]])
    lay = sequence_layout(
        f.pair_frame, f.pair_subject, f.pair_object, f.entity_track, f.entity_labels
    )
    # pair rows: 0 (t0, 5), 1 (t0, 9), 2 (t1, 9), 3 (t2, 5), 4 (t2, 9)
    assert lay.prev.tolist() == [0, 1, 1, 0, 2]
    assert lay.grouping.num_groups == 2
    assert lay.grouping.position.tolist() == [0, 0, 1, 1, 2]


def test_sinusoidal_embedding_values():
    emb = sinusoidal_embedding(torch.tensor([0, 3]), 8)
    assert emb.shape == (2, 8)
    assert torch.allclose(emb[0], torch.tensor([0.0] * 4 + [1.0] * 4))
    inv = torch.exp(torch.arange(4) * -(torch.log(torch.tensor(1.0e4)) / 3))
    assert torch.allclose(emb[1, :4], torch.sin(3 * inv)) and torch.allclose(
        emb[1, 4:], torch.cos(3 * inv)
    )


@pytest.mark.parametrize("grad", [True, False])  # no_grad may take torch's fast path
def test_spatial_encoder_padding_never_leaks(grad):
    torch.manual_seed(0)
    enc = SpatialEncoder(D, CFG).eval()
    padded = torch.randn(3, 5, D)
    valid = torch.tensor([[1, 1, 0, 0, 0], [1, 1, 1, 1, 1], [1, 0, 0, 0, 0]], dtype=torch.bool)
    out1 = enc.forward_padded(padded.clone(), valid)
    garbage = padded.clone()
    garbage[~valid] = 1e3 * torch.randn(int((~valid).sum()), D)
    with torch.set_grad_enabled(grad):
        out2 = enc.forward_padded(garbage, valid)
    assert torch.allclose(out1[valid], out2[valid], atol=1e-5)
    assert not torch.allclose(
        out1[0, 0], enc.forward_padded(padded[:, :1].clone(), valid[:, :1])[0, 0]
    )


def test_spatial_encoder_only_mixes_within_frame():
    torch.manual_seed(0)
    enc = SpatialEncoder(D, CFG).eval()
    frames = make_grouping(torch.tensor([0, 0, 1, 1, 1]))
    x = torch.randn(5, D)
    out = enc(x, frames)
    x2 = x.clone()
    x2[3] += 1.0  # change a relation of frame 1
    out2 = enc(x2, frames)
    assert torch.allclose(out[:2], out2[:2], atol=1e-6)  # frame 0 untouched
    assert not torch.allclose(out[2], out2[2])  # frame 1 neighbours changed


def test_temporal_decoder_padding_never_leaks_and_window():
    torch.manual_seed(0)
    dec = TemporalDecoder(
        D, FusionConfig(heads=4, ffn_dim=64, dropout=0.0, temporal_layers=2)
    ).eval()
    padded = torch.randn(2, 4, D)
    frame = torch.tensor([[0, 1, 2, 0], [0, 2, 0, 0]])
    valid = torch.tensor([[1, 1, 1, 0], [1, 1, 0, 0]], dtype=torch.bool)
    out1 = dec.forward_padded(padded.clone(), frame, valid)
    garbage = padded.clone()
    garbage[~valid] = 1e3
    frame2 = frame.clone()
    frame2[~valid] = 77
    out2 = dec.forward_padded(garbage, frame2, valid)
    assert torch.isfinite(out2).all()
    assert torch.allclose(out1[valid], out2[valid], atol=1e-5)
    # full attention: the first element sees the future; a window of 2 (STTran-like) does not
    x = padded.clone()
    x[0, 2] += 1.0
    assert not torch.allclose(dec.forward_padded(x, frame, valid)[0, 0], out1[0, 0])
    # one layer: a window of 2 sees exactly its own and the previous frame (stacked layers
    # widen the receptive field by one frame per layer, as any masked attention does)
    win = TemporalDecoder(
        D, FusionConfig(heads=4, ffn_dim=64, dropout=0.0, temporal_layers=1, temporal_window=2)
    ).eval()
    base = win.forward_padded(padded.clone(), frame, valid)
    changed = win.forward_padded(x, frame, valid)
    assert torch.allclose(base[0, :2], changed[0, :2], atol=1e-6)  # frames 0, 1 ignore frame 2
    y = padded.clone()
    y[0, 0] += 1.0  # frame 0 is inside frame 1's window but not frame 2's
    changed = win.forward_padded(y, frame, valid)
    assert not torch.allclose(base[0, 1], changed[0, 1])
    assert torch.allclose(base[0, 2], changed[0, 2], atol=1e-6)


def test_temporal_position_embedding_matters():
    torch.manual_seed(0)
    cfg = FusionConfig(heads=4, ffn_dim=64, dropout=0.0, temporal_position="frame")
    dec = TemporalDecoder(D, cfg).eval()
    padded = torch.randn(1, 3, D)
    valid = torch.ones(1, 3, dtype=torch.bool)
    a = dec.forward_padded(padded, torch.tensor([[0, 1, 2]]), valid)
    b = dec.forward_padded(padded, torch.tensor([[0, 5, 9]]), valid)
    assert not torch.allclose(a, b)


def test_message_token_matches_hand_computation():
    torch.manual_seed(0)
    tok = MessageToken(4)
    cur, prev = torch.randn(3, 4), torch.randn(3, 4)
    out = tok(cur, prev)
    w1, b1 = tok.fuse.weight, tok.fuse.bias
    w2, b2 = tok.fc1.weight, tok.fc1.bias
    w3, b3 = tok.fc2.weight, tok.fc2.bias
    for i in range(3):
        z = torch.cat([cur[i], prev[i]])
        h = w1 @ z + b1
        m = torch.tanh(w3 @ torch.tanh(w2 @ h + b2) + b3)
        expected = torch.cat([cur[i], prev[i] * m])
        assert torch.allclose(out[i], expected, atol=1e-6)


@pytest.mark.parametrize("first", ["self", "zeros"])
def test_fusion_message_token_uses_previous_frame_and_first_element_rule(first):
    """Later elements: e_f[t-1] for both g and the product. First element: the product
    uses the element itself; g sees the element (``self``) or zeros (``zeros``, authors)."""
    torch.manual_seed(0)
    cfg = FusionConfig(
        spatial_layers=0, temporal_layers=0, heads=4, ffn_dim=64, dropout=0.0, message_first=first
    )
    fusion = RelationFusion(D, cfg).eval()
    f = make_features([[5], [5], [5]])
    lay = sequence_layout(
        f.pair_frame, f.pair_subject, f.pair_object, f.entity_track, f.entity_labels
    )
    x = torch.randn(3, D)
    out = fusion(x, f.pair_frame, lay)
    tok = fusion.message
    assert out.shape == (3, 2 * D)
    assert torch.allclose(out[2], tok(x[2:3], x[1:2])[0], atol=1e-6)
    gate_in = x[0] if first == "self" else torch.zeros(D)
    m0 = torch.tanh(tok.fc2(torch.tanh(tok.fc1(tok.fuse(torch.cat([x[0], gate_in]))))))
    assert torch.allclose(out[0], torch.cat([x[0], x[0] * m0]), atol=1e-6)
    assert torch.allclose(out[0], tok(x[:1], x[:1])[0], atol=1e-6) == (first == "self")


def test_fusion_round_trip_is_identity_without_modules():
    cfg = FusionConfig(spatial_layers=0, temporal_layers=0, message_token=False, heads=4)
    fusion = RelationFusion(D, cfg)
    assert len(list(fusion.parameters())) == 0
    f = make_features([[5, 9, 3], [9], [5, 3]])
    lay = sequence_layout(
        f.pair_frame, f.pair_subject, f.pair_object, f.entity_track, f.entity_labels
    )
    x = torch.randn(f.pair_frame.shape[0], D)
    assert torch.equal(fusion(x, f.pair_frame, lay), x)


@pytest.mark.parametrize(
    "override, absent",
    [
        ("fusion.spatial_layers=0", "fusion.spatial."),
        ("fusion.temporal_layers=0", "fusion.temporal."),
        ("fusion.message_token=false", "fusion.message."),
        ("guidance.mode=none", "guidance_proj."),
    ],
)
def test_ablation_switch_removes_parameters(override, absent):
    full = RelationModel(small_config())
    ablated = RelationModel(small_config(override))
    assert any(name.startswith(absent) for name, _ in full.named_parameters())
    assert not any(name.startswith(absent) for name, _ in ablated.named_parameters())


def test_temporal_decoder_weights_affect_output_only_when_present():
    f = make_features([[5, 9], [5, 9], [9]])
    for override, should_change in (
        ("fusion.temporal_layers=3", True),
        ("fusion.temporal_layers=0", False),
    ):
        torch.manual_seed(0)
        model = RelationModel(small_config(override)).eval()
        base = model(f).relation_features
        with torch.no_grad():
            for name, p in model.named_parameters():
                if "temporal" in name:
                    p.add_(0.5 * torch.randn_like(p))
        changed = model(f).relation_features
        assert (not torch.allclose(base, changed)) == should_change


def test_spatial_off_keeps_relations_of_a_frame_independent():
    torch.manual_seed(0)
    model = RelationModel(
        small_config("fusion.spatial_layers=0", "fusion.temporal_layers=0")
    ).eval()
    f = make_features([[5, 9], [5, 9]])
    base = model(f).relation_features
    f.union_features[1] += 3.0  # pair (person, 9) at frame 0
    out = model(f).relation_features
    assert torch.allclose(base[0], out[0]) and torch.allclose(base[2], out[2])
    assert not torch.allclose(base[3], out[3])  # its successor sees it through the token


# --------------------------------------------------------------------------- authors' form
def test_temporal_position_is_the_slot_in_the_pair_sequence():
    """Authors: the sinusoid encodes the position in the pair's sequence, so a pair seen at
    frames 0, 5, 9 gets positions 0, 1, 2 (the frame variant keeps 0, 5, 9)."""
    frame = torch.tensor([[0, 5, 9], [3, 0, 0]])
    seq = TemporalDecoder(D, FusionConfig(heads=4, ffn_dim=64, dropout=0.0))
    assert seq.position_index(frame).tolist() == [[0, 1, 2], [0, 1, 2]]
    by_frame = TemporalDecoder(D, FusionConfig(heads=4, temporal_position="frame"))
    assert torch.equal(by_frame.position_index(frame), frame)
    # end to end: a pair at frames 1 and 3 is embedded as positions 0 and 1
    f = make_features([[9], [5], [5, 9], [9]])
    lay = sequence_layout(
        f.pair_frame, f.pair_subject, f.pair_object, f.entity_track, f.entity_labels
    )
    frames, _ = lay.grouping.pad(lay.frame)
    assert frames.tolist() == [[1, 2, 0], [0, 2, 3]]  # key 5: frames 1, 2; key 9: 0, 2, 3
    torch.manual_seed(0)
    dec = TemporalDecoder(D, FusionConfig(heads=4, ffn_dim=64, dropout=0.0)).eval()
    padded, valid = lay.grouping.pad(torch.randn(f.pair_frame.shape[0], D))
    shifted = torch.where(valid, frames + 7, frames)  # same order, other frame numbers
    assert torch.allclose(
        dec.forward_padded(padded, frames, valid), dec.forward_padded(padded, shifted, valid)
    )


def test_decoder_layer_has_no_layernorm_after_the_ffn_by_default():
    torch.manual_seed(0)
    layer = TemporalLayer(D, FusionConfig(heads=4, ffn_dim=64, dropout=0.0)).eval()
    assert layer.norm2 is None
    assert sum(isinstance(m, torch.nn.LayerNorm) for m in layer.modules()) == 1
    x, pos = torch.randn(1, 3, D), torch.zeros(1, 3, D)
    blocked = torch.zeros(4, 3, 3, dtype=torch.bool)
    attn, _ = layer.attn(x, x, x, need_weights=False)
    h = layer.norm1(x + attn)
    assert torch.allclose(layer(x, pos, blocked), h + layer.ffn(h), atol=1e-5)
    normed = TemporalLayer(D, FusionConfig(heads=4, ffn_dim=64, post_ffn_norm=True))
    assert isinstance(normed.norm2, torch.nn.LayerNorm)
    paper = load_model_config("tr2").fusion
    assert not paper.post_ffn_norm and paper.temporal_position == "sequence"
    assert paper.message_first == "zeros"
