"""Online TR² (``fusion.online``): the causal mask, the per-frame windows over a whole
clip equal the engine's window decode, and SGCls trains on GT labels."""

from __future__ import annotations

import pytest
import torch
from model_fixtures import make_features, small_config

from tr2_core.models import RelationModel
from tr2_core.models.fusion import TemporalDecoder
from tr2_core.models.relation_outputs import concat_encodings
from tr2_core.train.dataset import slice_features

# a pair absent in frame 2, two cups (label 11) sharing a class-label sequence in frame 3
OBJECTS = [[11, 5], [11, 5], [5], [11, 11, 5], [11, 5], [5, 11]]


def online_model(window: int, *extra: str) -> RelationModel:
    torch.manual_seed(0)
    cfg = small_config("fusion.online=true", f"fusion.temporal_window={window}", *extra)
    return RelationModel(cfg).eval()


def test_causal_mask_blocks_future_frames_only_when_online():
    frame = torch.tensor([[0, 1, 2, 2]])
    valid = torch.ones(1, 4, dtype=torch.bool)
    online = TemporalDecoder(8, small_config("fusion.online=true").fusion)
    blocked = online.attention_block(frame, valid)[0]
    expected = torch.tensor(
        [[0, 1, 1, 1], [0, 0, 1, 1], [0, 0, 0, 0], [0, 0, 0, 0]], dtype=torch.bool
    )
    assert torch.equal(blocked, expected)
    offline = TemporalDecoder(8, small_config().fusion)
    assert not offline.attention_block(frame, valid).any()  # bidirectional, unchanged
    windowed = TemporalDecoder(
        8, small_config("fusion.online=true", "fusion.temporal_window=2").fusion
    )
    assert windowed.attention_block(frame, valid)[0, 2, 0]  # frame 0 is outside 2 frames of 2


@pytest.mark.parametrize("window", [1, 3, 0])
@pytest.mark.parametrize("mode", ["predcls", "sgcls"])
def test_whole_clip_decode_equals_the_engines_window_decode(window, mode):
    """Every row of the whole-clip online decode equals decoding only the frames of its
    window with the engine's call (``only_frame`` = the newest): the online protocol."""
    model = online_model(window)
    feats = make_features(OBJECTS, seed=3)
    with torch.no_grad():
        whole = model.decode(model.encode(feats, mode), mode)
        per_frame = [
            model.encode(slice_features(feats, t, t + 1), mode) for t in range(len(OBJECTS))
        ]
        for t in range(len(OBJECTS)):
            lo = 0 if window == 0 else max(0, t - window + 1)
            out = model.decode(concat_encodings(per_frame[lo : t + 1]), mode, only_frame=t - lo)
            rows = feats.pair_frame == t
            for family in ("attention", "spatial", "contacting"):
                torch.testing.assert_close(
                    getattr(out, family), getattr(whole, family)[rows], atol=1e-5, rtol=0
                )


def test_online_differs_from_offline_and_sees_no_future():
    """Changing a later frame leaves an earlier frame's online prediction unchanged (and
    changes it offline)."""
    feats = make_features(OBJECTS, seed=3)
    later = make_features(OBJECTS, seed=3)
    later.union_features[later.pair_frame == 5] += 1.0
    early = feats.pair_frame < 5
    for online, same in ((True, True), (False, False)):
        model = online_model(0) if online else RelationModel(small_config()).eval()
        with torch.no_grad():
            a = model(feats).attention[early]
            b = model(later).attention[early]
        assert torch.allclose(a, b, atol=1e-6) is same


def test_sgcls_trains_on_gt_labels_and_infers_with_predicted_ones():
    """Authors: the relation model trains on GT labels in SGCls (embeddings, keys, text
    heads); the classifier's labels are used at inference only."""
    torch.manual_seed(0)
    model = RelationModel(small_config())
    feats = make_features(OBJECTS, seed=1)
    model.train()
    enc = model.encode(feats, "sgcls")
    assert enc.entity_logits is not None  # the classifier still trains
    assert torch.equal(enc.entity_labels, feats.entity_labels)
    model.eval()
    with torch.no_grad():
        _, predicted, _ = model.object_classifier.classify(feats)
        enc = model.encode(feats, "sgcls")
    assert not torch.equal(predicted, feats.entity_labels)  # random classifier: differs
    assert torch.equal(enc.entity_labels, predicted)
    # the representation's class embeddings see the GT labels in training
    model.train()
    torch.manual_seed(1)
    a = model.encode(feats, "sgcls").encoded
    torch.manual_seed(1)
    b = model.encode(feats, "predcls").encoded
    torch.testing.assert_close(a, b)
