"""Hostile inputs, frame side: the engine's Python API, videos that do not decode or
stop early, two spellings of one annotated frame, and values reported as they are.

Each test here failed before its fix (the comment says how)."""

from __future__ import annotations

import numpy as np
import pytest
from tools_testing import frames, tiny_model

from tr2_core.stream.engine import EngineInputError, StreamingEngine


@pytest.fixture(scope="module")
def engine() -> StreamingEngine:
    model = tiny_model()
    return StreamingEngine(model.extractor, model.relation, window=2, score_threshold=0.0)


# --------------------------------------------------------------------------- engine
@pytest.mark.parametrize(
    ("stamp", "match"),
    [
        (2**63, r"stamp_ns 9223372036854775808 is beyond int64"),
        (np.uint64(2**64 - 1), r"stamp_ns 18446744073709551615 is beyond int64"),
        (-(2**63) - 1, r"is beyond int64"),
        (1.5, r"stamp_ns must be an integer .*float"),
        ("3", r"stamp_ns must be an integer .*str"),
        (None, r"stamp_ns must be an integer"),
        (True, r"stamp_ns must be an integer .*bool"),
    ],
)
def test_engine_refuses_stamps_it_cannot_keep(engine, stamp, match):
    """Before: OverflowError / TypeError from numpy, or a float or bool stamp accepted
    and returned as the result's stamp."""
    with pytest.raises(EngineInputError, match=match) as info:
        engine.process(frames(1)[0], stamp)
    assert "\n" not in str(info.value)
    assert engine.process(frames(1)[0], np.int64(7)).stamp_ns == 7  # still usable


@pytest.mark.parametrize("shape", [(1, 5000, 3), (5000, 1, 3), (1, 200, 3)])
def test_engine_refuses_images_the_detector_cannot_resize(engine, shape):
    """Before: a RuntimeError from torch's interpolate ('output (H: 0, W: 64)')."""
    with pytest.raises(EngineInputError, match=r"too elongated: the detector resizes it to"):
        engine.process(np.zeros(shape, np.uint8), 10)
    result = engine.process(np.zeros((2, 100, 3), np.uint8), 11)  # extreme but resizable
    assert result.stamp_ns == 11


def test_engine_construction_names_wrong_arguments():
    """Before: AttributeError from deep inside the constructor."""
    from tr2_core.errors import ConfigError

    model = tiny_model()
    with pytest.raises(ConfigError, match="options must be EngineOptions"):
        StreamingEngine(model.extractor, model.relation, {"window": 2})
    with pytest.raises(EngineInputError, match="relation must be a tr2 RelationModel"):
        StreamingEngine(model.extractor, "model.pt")


def test_engine_refusal_is_a_rejected_frame_in_the_frame_loop(engine):
    from tr2_core.stream.frames import FrameFailed, run_frame

    with pytest.raises(FrameFailed, match=r"1x5000x3 frame: EngineInputError: image of 1x5000"):
        run_frame(engine, np.zeros((1, 5000, 3), np.uint8), 20)


# --------------------------------------------------------------------------- values
def test_uint64_prediction_values_are_reported_as_they_are(tmp_path):
    """Before: a uint64 label 2**64-1 was cast to int64 first and reported as '-1'."""
    from ag_fixtures import ReleaseBuilder

    from tr2_core.data.action_genome import load_split
    from tr2_core.errors import PredictionsError
    from tr2_core.evaluation.predictions import load_predictions
    from tr2_core.testing.eval_fixtures import random_predictions

    rb = ReleaseBuilder()
    rb.video("V.mp4", [1, 2, 3])
    gt = load_split(rb.write(tmp_path / "ag"), "test", show_progress=False).gt
    preds = random_predictions(gt, seed=1)
    arrays = {name: getattr(preds, name) for name in preds.__dataclass_fields__}
    arrays["box_labels"] = arrays["box_labels"].astype(np.uint64)
    arrays["box_labels"][1] = np.uint64(2**64 - 1)
    np.savez(tmp_path / "p.npz", **arrays)
    with pytest.raises(PredictionsError, match=r"box_labels\[1\] = 18446744073709551615 does"):
        load_predictions(tmp_path / "p.npz")


# --------------------------------------------------------------------------- annotations
@pytest.mark.parametrize("other", ["V.mp4/4.png", "V.mp4/0004.jpg", "V.mp4/4"])
def test_two_spellings_of_one_frame_are_refused_naming_both(tmp_path, other):
    """Before: both keys were accepted and the frame was predicted and scored twice."""
    import copy

    from ag_fixtures import ReleaseBuilder

    from tr2_core.data.action_genome import load_split
    from tr2_core.errors import DatasetError

    rb = ReleaseBuilder()
    rb.video("V.mp4", [1, 2, 3])
    key = rb.frame("V.mp4", 4, [{"cls": "book"}])
    rb.person[other] = copy.deepcopy(rb.person[key])
    rb.objects[other] = copy.deepcopy(rb.objects[key])
    with pytest.raises(DatasetError) as info:
        load_split(rb.write(tmp_path / "ag"), "test", show_progress=False)
    message = str(info.value)
    assert key in message and other in message and "name the same frame" in message
    assert "object_bbox_and_relationship.pkl" in message and "\n" not in message
