"""The node's standard outputs without rclpy (rosbags' classes, CDR round trips):
entities as vision_msgs/Detection2DArray, RViz markers, /diagnostics."""

from __future__ import annotations

import numpy as np
from ros_fixtures import FakeEngine, classes, image_msg, make_result, random_rgb
from ros_fixtures import vision_typestore as store

from tr2_core.scene_graph import decode_scene_graph
from tr2_core.vocab import OBJECT_CLASSES
from tr2_ros.detections import ClassMap, entities_from_detections
from tr2_ros.params import NodeParams
from tr2_ros.pipeline import ScenePipeline
from tr2_ros.standard_messages import (
    DIAGNOSTIC_NAME,
    detections_message,
    diagnostics_message,
    markers_message,
    rosbags_factory,
)


def _roundtrip(msg, name):
    ts = store()
    return ts.deserialize_cdr(ts.serialize_cdr(msg, name), name)


def _header():
    t = store().types
    return t["std_msgs/msg/Header"](
        stamp=t["builtin_interfaces/msg/Time"](sec=12, nanosec=345), frame_id="camera"
    )


def test_entities_out_read_back_as_the_same_boxes_labels_scores_and_tracks():
    graph = decode_scene_graph(make_result(4, seed=2))
    msg = detections_message(graph, _header(), rosbags_factory(store()))
    msg = _roundtrip(msg, "vision_msgs/msg/Detection2DArray")
    assert msg.header.frame_id == "camera" and len(msg.detections) == 4
    given = entities_from_detections(msg, ClassMap.action_genome())
    np.testing.assert_allclose(given.boxes, [n.box for n in graph.nodes], atol=1e-4)
    assert given.labels.tolist() == [n.label for n in graph.nodes]
    np.testing.assert_allclose(given.scores, [n.score for n in graph.nodes], rtol=1e-6)
    assert [d.id for d in msg.detections] == [str(n.track_id) for n in graph.nodes]
    assert msg.detections[1].results[0].hypothesis.class_id == OBJECT_CLASSES[graph.nodes[1].label]


def test_markers_boxes_relation_lines_and_captions():
    graph = decode_scene_graph(make_result(3, seed=1), relation_threshold=0.3)
    make = rosbags_factory(store())
    msg = _roundtrip(
        markers_message(graph, _header(), make, metres_per_pixel=0.01),
        "visualization_msgs/msg/MarkerArray",
    )
    marker = store().types["visualization_msgs/msg/Marker"]
    markers = list(msg.markers)
    assert markers[0].action == marker.DELETEALL  # the previous frame's markers go
    by_ns: dict[str, list] = {}
    for m in markers[1:]:
        by_ns.setdefault(m.ns, []).append(m)
    assert {k: len(v) for k, v in by_ns.items()} == {
        "tr2/boxes": 3, "tr2/labels": 3, "tr2/relations": 2, "tr2/relation_labels": 2,
    }  # fmt: skip
    x1, y1, x2, y2 = graph.nodes[1].box
    corners = [(p.x, p.y) for p in by_ns["tr2/boxes"][1].points]
    np.testing.assert_allclose(
        corners, np.array([(x1, y1), (x2, y1), (x2, y2), (x1, y2), (x1, y1)]) * 0.01, rtol=1e-5
    )
    assert by_ns["tr2/boxes"][1].type == marker.LINE_STRIP
    line = by_ns["tr2/relations"][0]
    person = np.asarray(graph.nodes[0].box).reshape(2, 2).mean(0) * 0.01
    np.testing.assert_allclose((line.points[0].x, line.points[0].y), person, rtol=1e-5)
    assert by_ns["tr2/relation_labels"][0].text.count("|") >= 1
    assert all(m.header.frame_id == "camera" for m in markers)


def test_diagnostics_message_round_trips():
    make = rosbags_factory(store())
    stamp = store().types["builtin_interfaces/msg/Time"](sec=3, nanosec=0)
    msg = diagnostics_message(
        stamp, make, {"rate_hz": 2.5, "device": "cpu"}, level="WARN", message="x", hardware_id="cpu"
    )
    msg = _roundtrip(msg, "diagnostic_msgs/msg/DiagnosticArray")
    (status,) = msg.status
    assert status.name == DIAGNOSTIC_NAME and status.level == 1 and status.hardware_id == "cpu"
    assert [(v.key, v.value) for v in status.values] == [("rate_hz", "2.500"), ("device", "cpu")]


def _pipeline(engine, wanted=False):
    out: dict[str, list] = {"graphs": [], "entities": [], "markers": []}
    now = [100.0]
    pipeline = ScenePipeline(
        engine,
        classes(),
        NodeParams(),
        publish_graph=out["graphs"].append,
        make=rosbags_factory(store()),
        publish_entities=out["entities"].append,
        publish_markers=out["markers"].append,
        markers_wanted=lambda: wanted,
        clock=lambda: now[0],
        warn=lambda m: None,
        error=lambda m: None,
    )
    return pipeline, out, now


def test_pipeline_publishes_entities_always_markers_only_while_wanted():
    pipeline, out, _ = _pipeline(FakeEngine())
    pipeline.process(image_msg(random_rgb(48, 64)))
    assert len(out["entities"]) == 1 and out["markers"] == []
    assert len(out["entities"][0].detections) == 4
    wanted, out2, _ = _pipeline(FakeEngine(), wanted=True)
    wanted.process(image_msg(random_rgb(48, 64)))
    assert len(out2["markers"]) == 1


def test_diagnostics_rate_latency_counters_and_warnings():
    engine = FakeEngine(fail_on={13 * 10**9})
    pipeline, out, now = _pipeline(engine)
    assert pipeline.diagnostics(8, "cpu")[:2] == ("OK", "waiting for images")
    for sec in (10, 11, 12):
        now[0] += 0.5
        pipeline.on_image(image_msg(random_rgb(), stamp=(sec, 0)))
        pipeline.step(timeout=0)
    level, message, values = pipeline.diagnostics(8, "cpu")
    assert (level, message) == ("OK", "running")
    assert values["rate_hz"] == 2.0 and values["published"] == 3
    assert values["window_fill"] == "3/8" and values["device"] == "cpu"
    now[0] += 1.0
    pipeline.on_image(image_msg(random_rgb(), stamp=(13, 0)))
    pipeline.step(timeout=0)
    level, message, values = pipeline.diagnostics(8, "cpu")
    assert level == "WARN" and "1 frames failed" in message and values["failed"] == 1
    assert "frames arrive but none was answered" in message and values["rate_hz"] == 0.0
