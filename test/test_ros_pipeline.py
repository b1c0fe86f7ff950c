"""The node's frame pipeline without rclpy: rosbags messages in, SceneGraph
messages out through plain callables, with a fake engine."""

from __future__ import annotations

import io
import threading
import time

import numpy as np
import pytest
from PIL import Image as PILImage
from ros_fixtures import (
    FakeEngine,
    classes,
    compressed_msg,
    header,
    image_msg,
    make_result,
    random_rgb,
)

from tr2_core.stream.engine_options import EngineOptions
from tr2_ros.conversions import decode_image, stamp_to_ns
from tr2_ros.params import NodeParams
from tr2_ros.pipeline import ScenePipeline, describe_header


class Outputs:
    def __init__(self) -> None:
        self.graphs: list = []
        self.debug: list = []
        self.warnings: list[str] = []
        self.errors: list[str] = []


def make_pipeline(engine=None, *, debug_wanted=False, **params):
    out = Outputs()
    pipeline = ScenePipeline(
        engine or FakeEngine(),
        classes(),
        NodeParams(**params),
        publish_graph=out.graphs.append,
        publish_debug=out.debug.append,
        debug_wanted=lambda: debug_wanted,
        warn=out.warnings.append,
        error=out.errors.append,
    )
    return pipeline, out


def test_frame_in_graph_out_with_copied_header():
    engine = FakeEngine()
    pipeline, out = make_pipeline(engine)
    msg = image_msg(random_rgb(48, 64), "bgr8", stamp=(1_700_000_000, 42))
    graph = pipeline.process(msg)
    assert out.graphs == [graph]
    assert graph.header is msg.header  # stamp and frame_id copied as is
    assert engine.calls == [((48, 64, 3), 1_700_000_000 * 10**9 + 42)]
    assert (graph.image_width, graph.image_height) == (64, 48)
    assert stamp_to_ns(graph.window_stamps[-1]) == stamp_to_ns(msg.header.stamp)
    assert len(graph.nodes) == 4 and len(graph.edges) == 3
    assert out.debug == [] and out.warnings == [] and out.errors == []


def test_engine_receives_rgb_whatever_the_encoding():
    rgb = random_rgb(8, 6)
    seen = []

    class Recording(FakeEngine):
        def process(self, image, stamp_ns):
            seen.append(image.copy())
            return super().process(image, stamp_ns)

    pipeline, _ = make_pipeline(Recording())
    for encoding in ("rgb8", "bgr8", "bgra8", "rgba8"):
        pipeline.process(image_msg(rgb, encoding, pad=3))
    for image in seen:
        np.testing.assert_array_equal(image, rgb)


def test_rejected_inputs_are_logged_counted_and_skipped():
    engine = FakeEngine()
    pipeline, out = make_pipeline(engine)
    bad = [
        image_msg(random_rgb(4, 5), encoding="16UC1"),
        image_msg(random_rgb(4, 5), step=3),
        image_msg(random_rgb(4, 5), height=0),
        image_msg(random_rgb(4, 5), data=np.zeros(10, np.uint8)),
    ]
    for msg in bad:
        assert pipeline.process(msg) is None
    assert engine.calls == [] and out.graphs == []
    assert len(out.warnings) == 4
    assert (
        "rejected input image (stamp 12.000000345, frame_id 'camera'): unsupported encoding '16UC1'"
        in (out.warnings[0])
    )
    assert "step 3 is smaller" in out.warnings[1]
    assert "zero-size" in out.warnings[2]
    assert "truncated" in out.warnings[3]
    # the node keeps running: the next good frame goes through and carries the count
    graph = pipeline.process(image_msg(random_rgb(4, 5)))
    assert graph is not None and graph.rejected_frames == 4
    assert pipeline.stats().rejected == 4 and pipeline.stats().published == 1


def test_engine_failures_and_broken_results_do_not_stop_the_pipeline():
    engine = FakeEngine(fail_on={12_000_000_345})
    pipeline, out = make_pipeline(engine)
    assert pipeline.process(image_msg(random_rgb(4, 5))) is None
    assert "no scene graph for frame (stamp 12.000000345" in out.errors[0]
    assert "inference failed on this 4x5x3 frame" in out.errors[0]
    assert "RuntimeError: CUDA out of memory" in out.errors[0]

    result = make_result(3, stamp_ns=13 * 10**9)
    result.entity_boxes[1, 2] = np.nan  # a broken checkpoint
    pipeline.engine = FakeEngine(result=result)
    assert pipeline.process(image_msg(random_rgb(4, 5), stamp=(13, 0))) is None
    assert "no scene graph for frame (stamp 13.000000000" in out.errors[1]
    assert "entity_boxes has 1 NaN/inf values in rows [1]" in out.errors[1]

    pipeline.engine = FakeEngine(result=make_result(3, stamp_ns=1))  # answers another frame
    assert pipeline.process(image_msg(random_rgb(4, 5), stamp=(15, 0))) is None
    assert (
        "the engine answered for stamp 1 ns, not for this frame's 15000000000 ns" in (out.errors[2])
    )

    pipeline.engine = FakeEngine()
    assert pipeline.process(image_msg(random_rgb(4, 5), stamp=(14, 0))) is not None
    assert pipeline.stats().failed == 3 and len(out.graphs) == 1


def test_compressed_transport():
    rgb = random_rgb(10, 12)
    buf = io.BytesIO()
    PILImage.fromarray(rgb).save(buf, format="PNG")
    engine = FakeEngine()
    pipeline, out = make_pipeline(engine, input_transport="compressed")
    graph = pipeline.process(compressed_msg(buf.getvalue(), "png"))
    assert graph is not None and (graph.image_width, graph.image_height) == (12, 10)
    assert pipeline.process(compressed_msg(b"\x89PNG broken", "png")) is None
    assert "cannot decode CompressedImage" in out.warnings[0]


def test_debug_image_only_when_subscribed():
    pipeline, out = make_pipeline(debug_wanted=False)
    pipeline.process(image_msg(random_rgb(48, 64)))
    assert out.debug == []
    pipeline, out = make_pipeline(debug_wanted=True)
    msg = image_msg(random_rgb(48, 64))
    pipeline.process(msg)
    (debug,) = out.debug
    assert debug.header is msg.header and debug.encoding == "rgb8"
    drawn = decode_image(debug)
    assert drawn.shape == (48, 64, 3)
    assert (drawn != decode_image(msg)).any()  # something was drawn
    pipeline, out = make_pipeline(debug_wanted=True, publish_debug_image=False)
    pipeline.process(msg)
    assert out.debug == []


def test_worker_thread_takes_newest_and_counts_drops():
    """A camera 3x faster than inference: the worker publishes a subset of
    frames, always the newest available, and the counters add up."""
    engine = FakeEngine(delay=0.006)
    pipeline, out = make_pipeline(engine)
    worker = threading.Thread(target=pipeline.run)
    worker.start()
    frames = 60
    for i in range(frames):
        pipeline.on_image(image_msg(random_rgb(4, 5), stamp=(100 + i, 0)))
        time.sleep(0.002)
    pipeline.stop()  # the worker still takes the frame left in the slot, then returns
    worker.join(timeout=5)
    assert not worker.is_alive()
    stats = pipeline.stats()
    published = [g.header.stamp.sec - 100 for g in out.graphs]
    assert published == sorted(set(published))
    assert published[-1] == frames - 1  # the newest frame is always processed in the end
    assert stats.received == frames
    assert stats.published == len(published)
    assert stats.dropped == frames - len(published)
    assert stats.dropped > 0
    assert out.graphs[-1].dropped_frames <= stats.dropped


def test_rate_limit_spaces_inference():
    engine = FakeEngine()
    pipeline, out = make_pipeline(engine, max_rate_hz=20.0)  # 50 ms apart
    worker = threading.Thread(target=pipeline.run)
    worker.start()
    start = time.monotonic()
    while time.monotonic() - start < 0.3:
        pipeline.on_image(image_msg(random_rgb(4, 5)))
        time.sleep(0.002)
    pipeline.stop()
    worker.join(timeout=5)
    stats = pipeline.stats()
    assert 2 <= len(out.graphs) <= 8  # about 0.3 s / 50 ms, never one per input
    # Inputs arrive every ~2 ms (fewer on a loaded machine): most are dropped.
    assert stats.dropped == stats.received - stats.published
    assert stats.received >= 3 * stats.published


def test_describe_header():
    assert describe_header(header(3, 7, "cam")) == "stamp 3.000000007, frame_id 'cam'"
    assert describe_header(None) == "no valid header"


@pytest.mark.parametrize("transport", ["raw", "compressed"])
def test_step_returns_false_once_stopped(transport):
    pipeline, _ = make_pipeline(input_transport=transport)
    assert pipeline.step(timeout=0.01) is True  # nothing yet, still running
    pipeline.stop()
    assert pipeline.step(timeout=0.01) is False


def test_load_engine_passes_the_parameters(tmp_path, monkeypatch):
    import sys
    import types

    from tr2_core.errors import ConfigError
    from tr2_ros.pipeline import load_engine

    calls = []

    class StreamingEngine:
        @classmethod
        def from_checkpoint(cls, checkpoint, **kwargs):
            calls.append((checkpoint, kwargs))
            return FakeEngine()

    fake = types.ModuleType("tr2_core.stream.engine")
    fake.StreamingEngine = StreamingEngine
    monkeypatch.setitem(sys.modules, "tr2_core.stream.engine", fake)
    with pytest.raises(ConfigError, match="'checkpoint' is empty"):
        load_engine(NodeParams())
    ckpt = tmp_path / "tr2.pt"
    ckpt.write_bytes(b"")
    engine = load_engine(
        NodeParams(
            checkpoint=str(ckpt),
            device="cuda:1",
            window=4,
            clip_weights="/w/clip.pt",
            max_gap_s=7.5,
        )  # fmt: skip
    )
    assert isinstance(engine, FakeEngine)
    expected = EngineOptions(
        checkpoint=str(ckpt), device="cuda:1", window=4, clip_weights="/w/clip.pt",
        score_threshold=0.1, max_gap_s=7.5, threads=2,
    )  # fmt: skip
    assert calls == [(str(ckpt), {"options": expected})]


def test_the_engine_gets_the_longest_gap_between_received_frames():
    """Frames the worker never took still count as seen: a 10 Hz camera processed at a
    slow rate gives gaps of 0.1 s, and a hole among dropped frames is not hidden."""
    engine = FakeEngine()
    pipeline, out = make_pipeline(engine)
    stamps = [(1, 0), (1, 100_000_000), (1, 200_000_000)]  # 10 Hz
    for stamp in stamps:
        pipeline.on_image(image_msg(random_rgb(), stamp=stamp))
    assert pipeline.step(timeout=0)
    for stamp in [(1, 300_000_000), (6, 300_000_000), (6, 400_000_000)]:  # a 5 s hole
        pipeline.on_image(image_msg(random_rgb(), stamp=stamp))
    assert pipeline.step(timeout=0)
    for stamp in [(6, 500_000_000), (6, 600_000_000)]:
        pipeline.on_image(image_msg(random_rgb(), stamp=stamp))
    assert pipeline.step(timeout=0)
    assert [c[1] for c in engine.calls] == [1_200_000_000, 6_400_000_000, 6_600_000_000]
    assert engine.inputs == [{"gap_ns": 100_000_000}, {"gap_ns": 5 * 10**9}, {"gap_ns": 10**8}]
    assert pipeline.stats().dropped == 5 and len(out.graphs) == 3


def test_the_first_frame_has_no_gap():
    engine = FakeEngine()
    pipeline, _ = make_pipeline(engine)
    pipeline.on_image(image_msg(random_rgb(), stamp=(3, 0)))
    assert pipeline.step(timeout=0)
    assert engine.inputs == [{}]


def test_frames_lost_before_the_node_are_estimated_from_the_stamps():
    """A 10 Hz camera whose frames 7, 8 and 15 never arrive: 3 missing, none dropped."""
    pipeline, _ = make_pipeline(FakeEngine())
    for k in range(20):
        if k not in (7, 8, 15):
            pipeline.on_image(image_msg(random_rgb(), stamp=(1, k * 100_000_000)))
            pipeline.step(timeout=0)
    stats = pipeline.stats()
    assert (stats.missing, stats.dropped, stats.received) == (3, 0, 17)
    pipeline.on_image(image_msg(random_rgb(), stamp=(9, 0)))  # the camera stopped 6 s
    assert pipeline.stats().missing == 3
