"""The installed ``tr2_node`` as a lifecycle (managed) node, live, driven
through its standard services (``<node>/change_state``, ``<node>/get_state``)
as nav2's lifecycle manager does: with ``autostart:=false`` it waits
unconfigured; configure loads the model; activate starts answering images;
deactivate stops; cleanup frees the model; configure + activate again
answers again. A configure that fails (no checkpoint) leaves the node
unconfigured and alive. Real DDS on loopback in a test-unique domain.

Needs the colcon workspace (scripts/setup_ros.sh, `source scripts/ros_env.sh`;
scripts/test.sh does both); elsewhere the tests are skipped with that reason.
"""

from __future__ import annotations

import time

import pytest
from ros_fixtures import (
    ANSWER_S,
    STARTUP_S,
    LiveNode,
    answered,
    image_at,
    live_skip_reason,
    qos,
    shared_random_checkpoint,
    wait_until,
)

SKIP = live_skip_reason()
pytestmark = pytest.mark.skipif(SKIP is not None, reason=SKIP or "")

QUIET_S = 2.0
"""How long a node that should not answer is watched while frames are published."""


TARGET_STATE = {
    "configure": "inactive",
    "activate": "active",
    "deactivate": "inactive",
    "cleanup": "unconfigured",
    "unconfigured_shutdown": "finalized",
}
TRANSITIONAL = {
    "configuring",
    "activating",
    "deactivating",
    "cleaningup",
    "shuttingdown",
    "errorprocessing",
}
CALL_S = 20.0
"""One service call's bound. DDS may lose a reply sent before the client's reply
reader is matched (right after the service appears): then the call is retried
(get_state) or the transition's outcome read from get_state (change_state)."""


class Lifecycle:
    """change_state / get_state clients of the node under test."""

    def __init__(self, node: LiveNode) -> None:
        from lifecycle_msgs.srv import ChangeState, GetState

        self.node = node
        self._change = node.peer.node.create_client(ChangeState, node.topic("tr2/change_state"))
        self._get = node.peer.node.create_client(GetState, node.topic("tr2/get_state"))
        ready = self._change.wait_for_service(timeout_sec=STARTUP_S)
        assert ready and self._get.wait_for_service(timeout_sec=CALL_S), "no lifecycle services"

    def state(self) -> str:
        from lifecycle_msgs.srv import GetState

        for _ in range(5):
            response = self.node.peer.call(self._get, GetState.Request(), timeout=CALL_S)
            if response is not None:
                return response.current_state.label
        raise AssertionError("get_state did not answer 5 times")

    def change(self, transition: str) -> bool:
        """Whether the transition succeeded."""
        from lifecycle_msgs.msg import Transition
        from lifecycle_msgs.srv import ChangeState

        request = ChangeState.Request()
        request.transition = Transition(id=getattr(Transition, f"TRANSITION_{transition.upper()}"))
        response = self.node.peer.call(self._change, request, timeout=CALL_S)
        if response is not None:
            return bool(response.success)
        # The reply was lost or the transition is still running (a slow model load).
        deadline = time.monotonic() + STARTUP_S
        while (state := self.state()) in TRANSITIONAL and time.monotonic() < deadline:
            time.sleep(0.5)
        return state == TARGET_STATE[transition]


def _answers_within(node: LiveNode, camera, graphs: list, seconds: float) -> int:
    """Frames published for ``seconds`` that the node answered."""
    stamps: set[int] = set()
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        stamps.add(time.time_ns())
        camera.publish(image_at(max(stamps)))
        time.sleep(0.2)
    return len(answered(graphs, stamps))


def _waiting_node(tmp_path, checkpoint: str) -> LiveNode:
    """A tr2_node started with autostart:=false (unconfigured, waiting for transitions)."""
    return LiveNode(
        tmp_path / "tr2_node.log",
        "-p", f"checkpoint:={checkpoint}", "-p", "autostart:=false",
        active=False,
    )  # fmt: skip


def test_lifecycle_transitions_through_the_services(tmp_path):
    from sensor_msgs.msg import Image
    from tr2.msg import SceneGraph

    node = _waiting_node(tmp_path, shared_random_checkpoint())
    try:
        graphs = node.peer.collect(SceneGraph, node.topic("scene_graph"), qos())
        camera = node.peer.node.create_publisher(
            Image, node.topic("image"), qos(1, best_effort=True)
        )
        lifecycle = Lifecycle(node)
        assert lifecycle.state() == "unconfigured"
        assert "autostart is false" in node.process.output()
        assert _answers_within(node, camera, graphs, QUIET_S) == 0

        assert lifecycle.change("configure") and lifecycle.state() == "inactive"
        assert "TR2 model:" in node.process.output()  # the model is loaded
        assert _answers_within(node, camera, graphs, QUIET_S) == 0

        for round_ in range(2):  # the second round reloads the model after cleanup
            assert lifecycle.change("activate") and lifecycle.state() == "active"
            assert wait_until(
                lambda: graphs, ANSWER_S, 0.25, lambda: camera.publish(image_at(time.time_ns()))
            ), f"round {round_}: no answer while active"
            assert lifecycle.change("deactivate") and lifecycle.state() == "inactive"
            time.sleep(0.5)  # a frame in flight may still be answered
            graphs.clear()
            assert _answers_within(node, camera, graphs, QUIET_S) == 0
            assert lifecycle.change("cleanup") and lifecycle.state() == "unconfigured"
            assert node.process.output().count("unconfigured: engine released") == round_ + 1
            if round_ == 0:
                assert lifecycle.change("configure")
        assert node.process.output().count("TR2 model:") == 2
        assert lifecycle.change("unconfigured_shutdown") and lifecycle.state() == "finalized"
    finally:
        status = node.close()
    assert status == 0, node.process.output()


def test_failed_configure_leaves_the_node_unconfigured_and_running(tmp_path):
    node = _waiting_node(tmp_path, str(tmp_path / "missing.pt"))
    try:
        lifecycle = Lifecycle(node)
        assert not lifecycle.change("configure")
        assert lifecycle.state() == "unconfigured"
        assert "does not exist" in node.process.output()
        assert node.process.proc.poll() is None
    finally:
        status = node.close()
    assert status == 0, node.process.output()
