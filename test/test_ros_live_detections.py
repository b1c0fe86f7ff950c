"""The installed ``tr2_node`` live (own process, real DDS on loopback, test-unique
domain and namespace) in a robot's perception stack: entities from the robot's
detector (vision_msgs/Detection2DArray in: the fixture package's messages, same types
as the real vision_msgs), SceneGraph out with those boxes; a static scene stamped 1 s
apart (an Action Genome-spaced stream) keeps its track ids and fills the window; the
entities out as Detection2DArray, RViz markers while subscribed, /diagnostics; a live
parameter change and the engine's warning on /rosout; the spatial direction through
tr2_listen. Needs the colcon workspace (scripts/setup_ros.sh), like test_ros_live.py.
"""

from __future__ import annotations

import re
import time

import numpy as np
import pytest
from ros_fixtures import (
    CONFIG,
    STARTUP_S,
    LiveNode,
    LiveProcess,
    detection_array,
    image_at,
    live_skip_reason,
    qos,
    shared_random_checkpoint,
    stamp_ns_of,
    wait_until,
)

SKIP = live_skip_reason()
pytestmark = pytest.mark.skipif(SKIP is not None, reason=SKIP or "")

PERSON_BOX, CUP_BOX = (10, 10, 60, 90), (70, 30, 100, 60)


@pytest.fixture(scope="module")
def robot(tmp_path_factory):
    """A tr2_node in predcls (entities from the detector), W=3, with a camera and a
    detector publishing to it and the scene graphs collected."""
    from sensor_msgs.msg import Image
    from tr2.msg import SceneGraph
    from vision_msgs.msg import Detection2DArray

    node = LiveNode(
        tmp_path_factory.mktemp("robot") / "tr2_node.log",
        "--params-file", str(CONFIG), "-p", f"checkpoint:={shared_random_checkpoint()}",
        "-p", "mode:=predcls", "-p", "window:=3", "-p", "detections_wait_s:=10.0",
        "-p", "diagnostics_period_s:=0.5",
    )  # fmt: skip
    node.graphs = node.peer.collect(SceneGraph, node.topic("scene_graph"), qos())
    node.camera = node.peer.node.create_publisher(Image, node.topic("image"), qos())
    node.detector = node.peer.node.create_publisher(
        Detection2DArray, node.topic("detections"), qos()
    )
    assert wait_until(
        lambda: node.camera.get_subscription_count() and node.detector.get_subscription_count(),
        STARTUP_S,
    ), node.process.output()
    output = node.topic("scene_graph")
    assert wait_until(lambda: node.peer.node.count_publishers(output) > 0, 30.0)
    time.sleep(1.0)  # discovery both ways: the first answer must not be lost
    node.next_stamp = time.time_ns()
    yield node
    status = node.close()
    assert status == 0, node.process.output()[-3000:]


def send_scene(robot, frames: int, period_s: float = 1.0) -> list:
    """``frames`` image + detections pairs stamped ``period_s`` apart, each answered
    before the next; their SceneGraphs. Starts 100 s after the previous scene: a new
    window (the gap resets it)."""
    start = robot.next_stamp + 100 * 10**9
    robot.next_stamp = start + frames * int(period_s * 1e9)
    stamps = [start + k * int(period_s * 1e9) for k in range(frames)]
    for k, stamp in enumerate(stamps):
        sec, nanosec = divmod(stamp, 1_000_000_000)
        robot.camera.publish(image_at(stamp, height=96, width=128, seed=k))
        robot.detector.publish(  # after the image, as a detector does
            detection_array(
                (sec, nanosec),
                [("person", 0.9, PERSON_BOX), ("cup/glass/bottle", 0.7, CUP_BOX)],
                rclpy=True,
            )
        )
        assert wait_until(
            lambda s=stamp: any(stamp_ns_of(g) == s for _, g in list(robot.graphs)), 60.0
        ), robot.process.output()[-3000:]
    by_stamp = {stamp_ns_of(g): g for _, g in list(robot.graphs)}
    return [by_stamp[s] for s in stamps]


def test_detections_in_a_slow_static_scene_keep_ids_and_fill_the_window(robot):
    assert "predcls: entities from" in robot.process.output()
    answers = send_scene(robot, 5)
    assert [len(g.window_stamps) for g in answers] == [1, 2, 3, 3, 3]
    tracks = [[int(n.track_id) for n in g.nodes] for g in answers]
    assert all(t == tracks[0] for t in tracks) and len(set(tracks[0])) == 2
    last = answers[-1]
    assert [n.label for n in last.nodes] == ["person", "cup/glass/bottle"]
    np.testing.assert_allclose([list(n.box_xyxy) for n in last.nodes], [PERSON_BOX, CUP_BOX])
    assert len(last.edges) == 1 and int(last.dropped_frames) == 0


def test_entities_out_and_markers_while_subscribed(robot):
    from vision_msgs.msg import Detection2DArray
    from visualization_msgs.msg import MarkerArray

    entities = robot.peer.collect(Detection2DArray, robot.topic("scene_graph/entities"), qos())
    markers = robot.peer.collect(MarkerArray, robot.topic("scene_graph/markers"), qos(1))
    time.sleep(2.0)  # discovery
    (graph,) = send_scene(robot, 1)
    stamp = stamp_ns_of(graph)
    assert wait_until(lambda: any(stamp_ns_of(m) == stamp for _, m in list(entities)), 20.0)
    (out,) = [m for _, m in list(entities) if stamp_ns_of(m) == stamp]
    assert [d.results[0].hypothesis.class_id for d in out.detections] == [
        "person", "cup/glass/bottle"
    ]  # fmt: skip
    assert [d.id for d in out.detections] == [str(n.track_id) for n in graph.nodes]
    assert wait_until(lambda: markers, 20.0), robot.process.output()[-2000:]
    namespaces = [m.ns for m in markers[-1][1].markers]
    assert namespaces.count("tr2/boxes") == 2 and namespaces.count("tr2/relations") == 1


def test_diagnostics_published(robot):
    from diagnostic_msgs.msg import DiagnosticArray

    diagnostics = robot.peer.collect(DiagnosticArray, "/diagnostics", qos())
    send_scene(robot, 1)

    def running() -> dict | None:
        for _, msg in list(diagnostics):
            for status in msg.status:
                values = {v.key: v.value for v in status.values}
                if status.name == "tr2: scene graph" and "window_fill" in values:
                    return values
        return None

    assert wait_until(running, 20.0), robot.process.output()[-2000:]
    values = running()
    assert values["device"] == "cpu" and values["window_fill"].endswith("/3")
    assert {"rate_hz", "latency_ms", "dropped", "rejected", "resets"} <= set(values)


def test_live_parameter_change_takes_effect_and_engine_warnings_reach_rosout(robot):
    from rcl_interfaces.msg import Log
    from rcl_interfaces.srv import SetParameters
    from rclpy.parameter import Parameter

    rosout = robot.peer.collect(Log, "/rosout", qos(100))
    client = robot.peer.node.create_client(SetParameters, robot.topic("tr2/set_parameters"))

    def set_gap(seconds: float) -> None:
        request = SetParameters.Request(
            parameters=[Parameter("max_gap_s", Parameter.Type.DOUBLE, seconds).to_parameter_msg()]
        )
        response = robot.peer.call(client, request, timeout=30.0)
        assert response is not None and response.results[0].successful, response

    set_gap(0.5)
    try:
        answers = send_scene(robot, 2)  # 1 s apart: now a gap that resets the window
        assert [len(g.window_stamps) for g in answers] == [1, 1]
        assert wait_until(
            lambda: any("gap of 1.000 s > 0.5 s" in m.msg for _, m in list(rosout)), 20.0
        ), robot.process.output()[-2000:]
        (record,) = [m for _, m in list(rosout) if "gap of 1.000 s > 0.5 s" in m.msg][:1]
        assert record.name.endswith("tr2") and record.level == Log.WARN
    finally:
        set_gap(3.0)
    assert [len(g.window_stamps) for g in send_scene(robot, 2)] == [1, 2]


def test_spatial_direction_end_to_end_in_tr2_listen(robot, tmp_path):
    """Node -> SceneGraph -> tr2_listen: spatial triplets read <object, predicate,
    person> (the cup is in front of the person), contacting <person, predicate, object>,
    as SceneGraphEdge.msg documents."""
    listener = LiveProcess(
        "tr2_listen",
        tmp_path / "tr2_listen.log",
        robot.domain,
        args=("--count", "1", "--threshold", "0.0"),
        ros_args=("-r", f"__ns:={robot.ns}"),
    )
    try:
        time.sleep(3.0)  # the listener's subscription discovered
        deadline = time.monotonic() + STARTUP_S
        while listener.proc.poll() is None and time.monotonic() < deadline:
            send_scene(robot, 1)
    finally:
        status = listener.stop()
    out = listener.output()
    assert status == 0, out
    spatial = re.findall(r"^\s+spatial\s+(\S+)#\d+ (\S+) (\S+)#\d+", out, re.M)
    contacting = re.findall(r"^\s+contacting\s+(\S+)#\d+ (\S+) (\S+)#\d+", out, re.M)
    assert len(spatial) == 6 and len(contacting) == 17, out  # threshold 0: every predicate
    assert {(s, o) for s, _, o in spatial} == {("cup/glass/bottle", "person")}
    assert {(s, o) for s, _, o in contacting} == {("person", "cup/glass/bottle")}
