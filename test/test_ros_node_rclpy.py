"""The tr2 node end to end under rclpy, with a fake engine: Image in,
SceneGraph out (header copied), vocabulary latched, debug image only when
subscribed, malformed images rejected while the node keeps running.

Needs ROS 2 (Humble or later) with the tr2 package built and sourced:
    colcon build --packages-select tr2 && source install/setup.bash
    python3 -m pytest test/test_ros_node_rclpy.py
(without an apt ROS: scripts/setup_ros.sh, then `source scripts/ros_env.sh`;
scripts/test.sh does both). Elsewhere every test here is reported as skipped,
with the reason. test_ros_live.py runs the installed executables live.
"""

from __future__ import annotations

import time

import numpy as np
import pytest

rclpy = pytest.importorskip(
    "rclpy", reason="rclpy not available: needs a sourced ROS 2 (Humble or later) environment"
)
pytest.importorskip(
    "tr2.msg",
    reason="tr2 messages not built: colcon build --packages-select tr2, source install/setup.bash",
)

from builtin_interfaces.msg import Time  # noqa: E402
from rclpy.node import Node  # noqa: E402
from rclpy.parameter import Parameter  # noqa: E402
from rclpy.qos import qos_profile_sensor_data  # noqa: E402
from ros_fixtures import FakeEngine, image_at, ros_isolation_env, unique_domain_id  # noqa: E402
from sensor_msgs.msg import CompressedImage, Image  # noqa: E402
from std_msgs.msg import Header  # noqa: E402
from tr2.msg import SceneGraph, Vocabulary  # noqa: E402

from tr2_core.errors import ConfigError  # noqa: E402
from tr2_ros.node import Tr2Node, _qos, main  # noqa: E402


@pytest.fixture(autouse=True)
def loopback_only(monkeypatch):
    """DDS traffic stays on this machine, in a domain of its own (read by rclpy.init)."""
    for key, value in ros_isolation_env(unique_domain_id()).items():
        monkeypatch.setenv(key, value)


@pytest.fixture
def ros():
    rclpy.init()
    yield
    rclpy.try_shutdown()


def _image(sec: int, encoding: str = "bgr8", height: int = 48, width: int = 64) -> Image:
    return image_at(sec * 10**9 + 7, encoding=encoding, height=height, width=width, seed=sec)


class Harness:
    """A camera and a planner around a Tr2Node, spun by one executor."""

    def __init__(self, tr2: Tr2Node, *, debug: bool = True, compressed: bool = False) -> None:
        from rclpy.executors import SingleThreadedExecutor

        self.tr2 = tr2
        self.peer = Node("tr2_test_peer")
        self.graphs: list = []
        self.vocabularies: list = []
        self.debug: list = []
        image_type = CompressedImage if compressed else Image
        topic = "image/compressed" if compressed else "image"
        self.camera = self.peer.create_publisher(image_type, topic, qos_profile_sensor_data)
        self.peer.create_subscription(SceneGraph, "scene_graph", self.graphs.append, _qos(10))
        self.peer.create_subscription(
            Vocabulary, "scene_graph/vocabulary", self.vocabularies.append, _qos(1, latched=True)
        )
        if debug:
            self.peer.create_subscription(
                Image, "scene_graph/debug_image", self.debug.append, _qos(1)
            )
        self.executor = SingleThreadedExecutor()
        self.executor.add_node(tr2.node)
        self.executor.add_node(self.peer)

    def spin_until(self, condition, timeout: float = 10.0, publish=None) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if publish is not None:
                self.camera.publish(publish)
            self.executor.spin_once(timeout_sec=0.05)
            if condition():
                return True
        return False

    def close(self) -> None:
        self.executor.shutdown()
        self.tr2.destroy()
        self.peer.destroy_node()


def test_image_in_scene_graph_out(ros):
    engine = FakeEngine()
    tr2 = Tr2Node(engine_factory=lambda params: engine)
    tr2.activate()
    h = Harness(tr2)
    try:
        assert h.spin_until(lambda: h.graphs and h.vocabularies and h.debug, publish=_image(5))
        graph = h.graphs[0]
        assert (graph.header.stamp.sec, graph.header.stamp.nanosec) == (5, 7)
        assert graph.header.frame_id == "camera_optical"
        assert (graph.image_width, graph.image_height) == (64, 48)
        assert len(graph.nodes) == 4 and len(graph.edges) == 3
        assert graph.nodes[0].label == "person"
        edge = graph.edges[0]
        assert edge.contacting.family == "contacting" and len(edge.contacting.scores) == 17
        assert graph.window_stamps[-1].sec == 5
        assert engine.calls[0] == ((48, 64, 3), 5 * 10**9 + 7)
        assert list(h.vocabularies[0].predicates)[9] == "carrying"
        debug = h.debug[0]
        assert debug.encoding == "rgb8" and (debug.height, debug.width) == (48, 64)
        assert debug.header.frame_id == "camera_optical"
    finally:
        h.close()
    assert engine.closed  # released on deactivate


def test_malformed_images_are_rejected_and_the_node_keeps_running(ros):
    engine = FakeEngine()
    tr2 = Tr2Node(engine_factory=lambda params: engine)
    tr2.activate()
    h = Harness(tr2, debug=False)
    try:
        bad = _image(6)
        bad.step = 10  # smaller than a row
        assert h.spin_until(lambda: tr2.stats().rejected >= 1, publish=bad)
        unsupported = _image(7)
        unsupported.encoding = "no_such_encoding"
        assert h.spin_until(lambda: tr2.stats().rejected >= 2, publish=unsupported)
        assert engine.calls == []
        assert h.spin_until(lambda: h.graphs, publish=_image(8))
        assert h.graphs[-1].rejected_frames >= 2
        assert h.debug == []
    finally:
        h.close()


def test_debug_image_not_published_without_subscribers(ros):
    engine = FakeEngine()
    tr2 = Tr2Node(engine_factory=lambda params: engine)
    tr2.activate()
    h = Harness(tr2, debug=False)
    try:
        assert h.spin_until(lambda: len(h.graphs) >= 3, publish=_image(9))
        assert not tr2._debug_wanted()
    finally:
        h.close()


def test_compressed_input(ros):
    import io

    from PIL import Image as PILImage

    buf = io.BytesIO()
    PILImage.fromarray(np.zeros((30, 40, 3), np.uint8)).save(buf, format="PNG")
    msg = CompressedImage(
        header=Header(stamp=Time(sec=3, nanosec=0), frame_id="cam"),
        format="png",
        data=buf.getvalue(),
    )
    tr2 = Tr2Node(
        engine_factory=lambda params: FakeEngine(),
        parameter_overrides=[Parameter("input_transport", value="compressed")],
    )
    tr2.activate()
    h = Harness(tr2, debug=False, compressed=True)
    try:
        assert h.spin_until(lambda: h.graphs, publish=msg)
        assert (h.graphs[0].image_width, h.graphs[0].image_height) == (40, 30)
    finally:
        h.close()


def test_invalid_parameter_is_reported(ros):
    with pytest.raises(ConfigError, match="parameter 'device'"):
        Tr2Node(
            engine_factory=lambda params: FakeEngine(),
            parameter_overrides=[Parameter("device", value="gpu")],
        )


def test_main_exits_with_status_1_without_checkpoint():
    assert main(["tr2_node"]) == 1  # 'checkpoint' is empty: fatal log line, exit 1
    assert main(["tr2_node", "--ros-args", "-p", "window:=0"]) == 1


def test_per_frame_outputs_are_lifecycle_publishers(ros):
    from rclpy.lifecycle import LifecyclePublisher

    tr2 = Tr2Node(engine_factory=lambda params: FakeEngine())
    try:
        managed = [tr2._graph_pub, tr2._debug_pub, tr2._entities_pub, tr2._markers_pub]
        assert all(isinstance(p, LifecyclePublisher) for p in managed)
        assert not any(p._enabled for p in managed)  # unconfigured: publish() is a no-op
        assert not isinstance(tr2._vocabulary_pub, LifecyclePublisher)  # latched at start
        tr2.activate()
        assert all(p._enabled for p in managed)
        tr2.deactivate()
        assert not any(p._enabled for p in managed)
    finally:
        tr2.destroy()
