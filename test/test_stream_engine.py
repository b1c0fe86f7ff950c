"""The streaming engine equals the offline model on the same window (small random-init
config of the same code; see tr2_core/configs/models/tr2-small.yaml)."""

import numpy as np
import pytest
import torch

from tr2_core.errors import ConfigError
from tr2_core.run import build_model
from tr2_core.stream.engine import StreamingEngine

H, W = 96, 128


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    return build_model("tr2-small", random_init=True)


def _frames(n: int, seed: int = 0):
    rng = np.random.default_rng(seed)
    images, boxes = [], []
    for t in range(n):
        images.append(rng.integers(0, 255, (H, W, 3), dtype=np.uint8))
        person = [10 + t, 10, 60 + t, 90]
        cup = [70 - t, 30, 100 - t, 60]
        book = [5, 60 + t, 40, 90]
        boxes.append(np.array([person, cup, book], np.float32))
    labels = np.array([1, 11, 5], np.int64)
    return images, boxes, labels


def _offline_last(model, images, boxes, labels, tracks):
    feats = model.extractor.extract(
        [torch.from_numpy(im).permute(2, 0, 1) for im in images],
        [torch.from_numpy(b) for b in boxes],
        [torch.from_numpy(labels) for _ in boxes],
        tracks=[torch.from_numpy(t) for t in tracks],
    )
    model.relation.eval()
    with torch.no_grad():
        out = model.relation(feats, mode="predcls")
    att, spa, con = out.probabilities()
    last = feats.pair_frame == len(images) - 1
    return att[last].numpy(), spa[last].numpy(), con[last].numpy()


@pytest.mark.parametrize("window", [1, 3])
def test_streaming_equals_offline_on_the_same_window(model, window):
    images, boxes, labels = _frames(5)
    engine = StreamingEngine(model.extractor, model.relation, window=window, mode="predcls")
    tracks = []
    for t in range(len(images)):
        res = engine.process(images[t], stamp_ns=t * 100_000_000, boxes=boxes[t], labels=labels)
        tracks.append(res.entity_track)
        lo = max(0, t - window + 1)
        att, spa, con = _offline_last(
            model, images[lo : t + 1], boxes[lo : t + 1], labels, tracks[lo : t + 1]
        )
        np.testing.assert_allclose(res.attention, att, atol=1e-5)
        np.testing.assert_allclose(res.spatial, spa, atol=1e-5)
        np.testing.assert_allclose(res.contacting, con, atol=1e-5)
        assert len(res.window_stamps_ns) == min(t + 1, window)
    # the tracker kept one id per entity across the moving boxes
    assert all((tr == tracks[0]).all() for tr in tracks)


def test_streaming_uses_the_engine_tasks_heads():
    """Heads that differ per task (text in PredCls, linear in SGDet): the engine decodes
    with its own task's heads, as the offline model does for that task."""
    torch.manual_seed(0)
    model = build_model(
        "tr2-small",
        random_init=True,
        overrides=["heads.classifier=text", "heads.sgdet_classifier=linear"],
        text_table=torch.randn(37, 26, 64),
        announce=False,
    )
    images, boxes, labels = _frames(3, seed=2)
    engine = StreamingEngine(model.extractor, model.relation, window=2, mode="predcls")
    tracks = []
    for t in range(len(images)):
        res = engine.process(images[t], stamp_ns=t * 100_000_000, boxes=boxes[t], labels=labels)
        tracks.append(res.entity_track)
    att, spa, con = _offline_last(model, images[1:], boxes[1:], labels, tracks[1:])
    np.testing.assert_allclose(res.attention, att, atol=1e-5)
    np.testing.assert_allclose(res.contacting, con, atol=1e-5)


def test_window_changes_the_output(model):
    """With W > 1 the temporal pass really uses earlier frames."""
    images, boxes, labels = _frames(3, seed=1)
    single = StreamingEngine(model.extractor, model.relation, window=1, mode="predcls")
    multi = StreamingEngine(model.extractor, model.relation, window=3, mode="predcls")
    for t in range(3):
        a = single.process(images[t], t * 10**8, boxes[t], labels)
        b = multi.process(images[t], t * 10**8, boxes[t], labels)
    assert not np.allclose(a.contacting, b.contacting, atol=1e-6)


def test_resets_on_backwards_time_and_long_gaps(model, caplog):
    images, boxes, labels = _frames(4)
    engine = StreamingEngine(
        model.extractor, model.relation, window=4, mode="predcls", max_gap_s=0.5
    )
    stamps = [10**9, 10**9 + 10**8, 10**9, 5 * 10**9]  # back in time, then a 4 s gap
    sizes = []
    for im, b, s in zip(images, boxes, stamps, strict=True):
        sizes.append(len(engine.process(im, s, b, labels).window_stamps_ns))
    assert sizes == [1, 2, 1, 1]
    assert engine.stats.resets == 2
    assert "backwards" in engine.stats.reset_reasons[0]
    assert "gap" in engine.stats.reset_reasons[1]


def test_bad_images_are_rejected_with_a_clear_error(model):
    engine = StreamingEngine(model.extractor, model.relation, mode="predcls")
    with pytest.raises(ValueError, match="uint8 RGB"):
        engine.process(np.zeros((0, 10, 3), np.uint8), 0, np.zeros((1, 4)), np.ones(1))
    with pytest.raises(ValueError, match="uint8 RGB"):
        engine.process(np.zeros((10, 10), np.uint8), 0, np.zeros((1, 4)), np.ones(1))


def test_nan_outputs_are_dropped_not_raised(model):
    images, boxes, labels = _frames(1)
    engine = StreamingEngine(model.extractor, model.relation, mode="predcls")
    bad = boxes[0].copy()
    bad[2] = np.nan  # a broken upstream: one object's box is NaN
    res = engine.process(images[0], 0, bad, labels)
    assert np.isfinite(res.entity_boxes).all()
    assert len(res.entity_labels) == 2 and len(res.pair_object) == 1
    assert engine.stats.rejected >= 1


def _nan_copy(module):
    import copy

    broken = copy.deepcopy(module)
    with torch.no_grad():
        for p in broken.parameters():
            p.fill_(float("nan"))
    return broken


def test_broken_checkpoint_nan_relation_weights_never_crash(model):
    """A relation model whose weights are all NaN (a broken checkpoint): every pair is
    dropped from the result and counted, nothing raises."""
    images, boxes, labels = _frames(2)
    engine = StreamingEngine(model.extractor, _nan_copy(model.relation), window=2, mode="predcls")
    for t in range(2):
        res = engine.process(images[t], t * 10**8, boxes[t], labels)
        assert len(res.pair_subject) == 0
        assert np.isfinite(res.entity_boxes).all()
    assert engine.stats.rejected >= 2


def test_broken_checkpoint_nan_detector_never_crashes(model):
    """SGDet with an all-NaN detector: no entities survive, an empty graph comes out."""
    images, _, _ = _frames(1)
    broken = _nan_copy(model.extractor)
    engine = StreamingEngine(broken, model.relation, window=2, mode="sgdet")
    res = engine.process(images[0], 0)
    assert np.isfinite(res.entity_boxes).all()
    assert len(res.pair_subject) == len(res.attention)


@pytest.mark.parametrize("rate_hz", [1.0, 0.5])
def test_a_slow_static_stream_keeps_its_ids_and_fills_the_window(model, rate_hz):
    """Action Genome-spaced (1 Hz) and 0.5 Hz frames of a scene that stays put: with the
    default max_gap_s the window fills to W and every entity keeps its track id."""
    images, boxes, labels = _frames(1)
    engine = StreamingEngine(model.extractor, model.relation, window=4, mode="predcls")
    period_ns = int(1e9 / rate_hz)
    sizes, tracks = [], []
    for t in range(6):
        result = engine.process(images[0], 10**9 + t * period_ns, boxes[0], labels)
        sizes.append(len(result.window_stamps_ns))
        tracks.append(result.entity_track.tolist())
    assert sizes == [1, 2, 3, 4, 4, 4]
    assert all(t == tracks[0] for t in tracks) and len(set(tracks[0])) == 3
    assert engine.stats.resets == 0


def test_the_gap_is_measured_between_received_frames(model):
    """A caller that drops stale frames passes the longest gap between the frames it
    received: frames processed 5 s apart out of a 10 Hz camera keep the window; a 4 s
    hole in what was received resets it."""
    images, boxes, labels = _frames(1)
    engine = StreamingEngine(model.extractor, model.relation, window=4, mode="predcls")
    sizes = [
        len(engine.process(images[0], s * 10**9, boxes[0], labels, gap_ns=g).window_stamps_ns)
        for s, g in ((1, None), (6, 10**8), (11, 10**8), (16, 4 * 10**9), (21, 10**8))
    ]
    assert sizes == [1, 2, 3, 1, 2]
    assert engine.stats.resets == 1 and "gap of 4.000 s" in engine.stats.reset_reasons[0]
    # without gap_ns the 5 s between processed frames is the gap: a reset each time
    plain = StreamingEngine(model.extractor, model.relation, window=4, mode="predcls")
    for s in (1, 6, 11):
        result = plain.process(images[0], s * 10**9, boxes[0], labels)
    assert len(result.window_stamps_ns) == 1 and plain.stats.resets == 2


def test_tune_changes_the_gap_and_threshold_between_frames(model):
    images, boxes, labels = _frames(1)
    engine = StreamingEngine(model.extractor, model.relation, window=4, mode="predcls")
    engine.process(images[0], 10**9, boxes[0], labels)
    engine.tune(max_gap_s=0.5, score_threshold=0.2)
    result = engine.process(images[0], 2 * 10**9, boxes[0], labels)
    assert len(result.window_stamps_ns) == 1 and engine.stats.resets == 1
    assert engine.options.score_threshold == 0.2
    with pytest.raises(ConfigError, match="cannot change while running"):
        engine.tune(window=2)
    with pytest.raises(ConfigError, match="max_gap_s"):
        engine.tune(max_gap_s=-1.0)
