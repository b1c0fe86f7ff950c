"""Hostile inputs, frame side: the engine's Python API, videos that do not decode or
stop early, two spellings of one annotated frame, and values reported as they are.

Each test here failed before its fix (the comment says how)."""

from __future__ import annotations

import json

import numpy as np
import pytest
from engine_fixtures import TINY_ARGS, EmptyEngine, frames, tiny_model, write_mp4

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
    with pytest.raises(ConfigError, match="options must be EngineOptions"):
        StreamingEngine.from_checkpoint("best.pt", options={"window": 2})
    with pytest.raises(ConfigError, match="checkpoint must be a path"):
        StreamingEngine.from_checkpoint(7)
    with pytest.raises(ConfigError, match="unknown"):
        StreamingEngine.from_checkpoint("best.pt", windw=2)


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


# --------------------------------------------------------------------------- videos
def _undecodable_mp4(path) -> None:
    """An MP4 whose index is intact and whose every coded byte is garbage."""
    write_mp4(path, frames(8), options={"movflags": "faststart"})
    data = path.read_bytes()
    start = data.find(b"mdat") + 4
    path.write_bytes(data[:start] + b"\xff" * (len(data) - start))


def test_overlay_on_a_video_where_no_frame_decodes(tmp_path, capsys):
    """Before: with --overlay, exit 2 'internal error: nothing was written' and no JSON
    lines; without it, one error line per frame and exit 0."""

    from tr2_core.cli import main

    src = tmp_path / "garbled.mp4"
    _undecodable_mp4(src)
    for overlay in (None, tmp_path / "sg.mp4"):
        jsonl = tmp_path / f"{'plain' if overlay is None else 'overlay'}.jsonl"
        argv = ["video", str(src), "--jsonl", str(jsonl), *TINY_ARGS]
        argv += ["--overlay", str(overlay)] if overlay is not None else []
        assert main(argv) == 1  # done, but no frame gave a scene graph
        out = capsys.readouterr().out
        lines = [json.loads(line) for line in jsonl.read_text().splitlines()]
        assert lines and all("error" in line for line in lines)
        assert "no frame gave a scene graph" in out
        if overlay is not None:
            assert not overlay.exists() and f"--overlay {overlay} was not written" in out
    assert (tmp_path / "plain.jsonl").read_bytes() == (tmp_path / "overlay.jsonl").read_bytes()


def test_mp4_cut_at_90_percent_is_one_line_or_a_warning(tmp_path):

    from tr2_core.runners.video_runner import VideoError, process_video

    for layout, options in (("index last", {}), ("index first", {"movflags": "faststart"})):
        path = tmp_path / "cut.mp4"
        write_mp4(path, frames(20), options=options)
        data = path.read_bytes()
        path.write_bytes(data[: len(data) * 9 // 10])
        try:
            report = process_video(path, EmptyEngine(), tmp_path / "o.jsonl", overwrite=True,
                                   progress=False)  # fmt: skip
        except VideoError as e:  # the index is cut off: nothing can be read
            assert layout == "index last" and "\n" not in str(e) and "cut.mp4" in str(e)
        else:
            assert layout == "index first" and 0 < report.frames < 20
            assert "frames the container announces are missing" in report.summary()


class _Damaged:
    """A demuxed packet whose decoding fails the way PyAV does on some damaged files
    (an AttributeError from inside the binding, not an FFmpegError)."""

    def __init__(self, packet) -> None:
        self.pts, self.time_base = packet.pts, packet.time_base

    def decode(self):
        raise AttributeError("'NoneType' object has no attribute 'format'")


def test_pyav_errors_on_damaged_packets_cost_one_frame(tmp_path, monkeypatch):
    """Before: the AttributeError left process_video as a traceback."""

    import tr2_core.runners.video_runner as video

    path = tmp_path / "a.mp4"
    write_mp4(path, frames(10))
    real_init = video.VideoSource.__init__

    def init(self, *args, **kwargs):
        real_init(self, *args, **kwargs)
        demux = self.container.demux

        def damaged_third(*a):
            for i, packet in enumerate(demux(*a)):
                yield _Damaged(packet) if i == 2 else packet

        self.container = type("C", (), {"demux": staticmethod(damaged_third),
                                        "close": self.container.close})()  # fmt: skip

    monkeypatch.setattr(video.VideoSource, "__init__", init)
    report = video.process_video(path, EmptyEngine(), tmp_path / "o.jsonl", progress=False)
    lines = [json.loads(line) for line in (tmp_path / "o.jsonl").read_text().splitlines()]
    errors = [line["error"] for line in lines if "error" in line]
    assert report.rejected == 1 and len(errors) == 1 and "AttributeError" in errors[0]
    assert report.frames == len(lines) >= 9


@pytest.mark.parametrize("suffix", [".mkv", ".webm"])
def test_half_truncated_video_without_a_frame_count_is_reported(tmp_path, suffix):
    """Matroska states a duration but no frame count. Before: a file cut in half ran as
    a short video, exit 0, no warning."""

    from tr2_core.runners.video_runner import process_video

    path = tmp_path / f"a{suffix}"
    if suffix == ".webm":
        av = pytest.importorskip("av", reason="video files need PyAV")
        if "libvpx-vp9" not in av.codecs_available:
            pytest.skip("this FFmpeg build has no VP9 encoder")
        with av.open(str(path), mode="w") as out:
            stream = out.add_stream("libvpx-vp9", rate=10)
            stream.height, stream.width, stream.pix_fmt = 48, 64, "yuv420p"
            for rgb in frames(30, seed=2):
                out.mux(stream.encode(av.VideoFrame.from_ndarray(rgb, format="rgb24")))
            out.mux(stream.encode())
    else:
        write_mp4(path, frames(30, seed=2))
    whole = process_video(path, EmptyEngine(), tmp_path / "whole.jsonl", progress=False)
    assert whole.frames == 30 and whole.truncated is None  # no false alarm
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    report = process_video(path, EmptyEngine(), tmp_path / "half.jsonl", progress=False)
    assert 0 < report.frames < 25
    assert f"the container states 3.00 s, the {report.frames} frames read cover" in (
        report.truncated or ""
    )
    assert "WARNING: input truncated" in report.summary()


# --------------------------------------------------------------------------- engine, generated
def _engine_inputs():
    from hypothesis import strategies as st

    shapes = st.one_of(
        st.tuples(st.integers(1, 80), st.integers(1, 80), st.just(3)),
        st.tuples(st.just(1), st.integers(100, 6000), st.just(3)),  # a line of pixels
        st.tuples(st.integers(0, 4), st.integers(0, 4), st.integers(0, 5)),
        st.tuples(st.integers(1, 8)),
    )
    dtypes = st.sampled_from([np.uint8, np.uint8, np.uint16, np.float32, np.int64, bool])
    stamps = st.one_of(
        st.integers(-(2**64), 2**64), st.floats(), st.none(), st.text(max_size=3),
        st.sampled_from([np.uint64(2**64 - 1), np.int32(5), True]),
    )  # fmt: skip
    boxes = st.one_of(
        st.none(),
        st.lists(st.lists(st.floats(-1e6, 1e6) | st.just(float("nan")), min_size=4, max_size=4),
                 max_size=3),
        st.lists(st.integers(), max_size=5),
        st.text(max_size=4),
    )  # fmt: skip
    labels = st.one_of(
        st.none(), st.lists(st.integers(-(2**65), 2**65), max_size=3),
        st.lists(st.floats(), max_size=3), st.text(max_size=3),
    )  # fmt: skip
    return shapes, dtypes, stamps, boxes, labels


_SHAPES, _DTYPES, _STAMPS, _BOXES, _LABELS = _engine_inputs()


@pytest.fixture(scope="module")
def predcls_engine() -> StreamingEngine:
    model = tiny_model()
    return StreamingEngine(
        model.extractor, model.relation, window=2, mode="predcls", score_threshold=0.0
    )


def test_generated_engine_calls_give_a_result_or_one_input_error(engine, predcls_engine):
    """Any image, stamp, boxes and labels: a result for this stamp, or one
    EngineInputError; the engine stays usable either way."""
    from hypothesis import HealthCheck, given, settings
    from hypothesis import strategies as st

    @settings(max_examples=40, deadline=None, database=None, derandomize=True,
              suppress_health_check=[HealthCheck.too_slow])  # fmt: skip
    @given(shape=_SHAPES, dtype=_DTYPES, stamp=_STAMPS, boxes=_BOXES, labels=_LABELS,
           predcls=st.booleans())  # fmt: skip
    def check(shape, dtype, stamp, boxes, labels, predcls):
        target = predcls_engine if predcls else engine
        image = np.zeros(shape, dtype)
        try:
            result = target.process(image, stamp, boxes=boxes, labels=labels)
        except EngineInputError as e:
            assert "\n" not in str(e)
        else:
            assert result.stamp_ns == stamp and isinstance(result.stamp_ns, int)
        fine = target.process(frames(1)[0], 10**18, boxes=[[1, 1, 30, 30]], labels=[1])
        assert fine.stamp_ns == 10**18

    check()
