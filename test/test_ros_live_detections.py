"""The installed ``tr2_node`` live (own process, real DDS on loopback, test-unique
domain and namespace) taking its entities from a robot's detector:
vision_msgs/Detection2DArray in (the fixture package's messages, same types as the
real vision_msgs), SceneGraph out with those boxes; a static scene stamped 1 s apart
(an Action Genome-spaced stream, processed as it comes) keeps its track ids and fills
the window. Needs the colcon workspace (scripts/setup_ros.sh), like test_ros_live.py.
"""

from __future__ import annotations

import time

import numpy as np
import pytest
from ros_testing import (
    detection_array,
    image_at,
    live_skip_reason,
    shared_random_checkpoint,
    stamp_ns_of,
    wait_until,
)
from test_ros_live import CONFIG, STARTUP_S, LiveNode, _qos

SKIP = live_skip_reason()
pytestmark = pytest.mark.skipif(SKIP is not None, reason=SKIP or "")

PERSON_BOX, CUP_BOX = (10, 10, 60, 90), (70, 30, 100, 60)


def test_detections_in_a_slow_static_scene_keep_ids_and_fill_the_window(tmp_path):
    from sensor_msgs.msg import Image
    from tr2.msg import SceneGraph
    from vision_msgs.msg import Detection2DArray

    node = LiveNode(
        tmp_path / "tr2_node.log",
        "--params-file", str(CONFIG), "-p", f"checkpoint:={shared_random_checkpoint()}",
        "-p", "mode:=predcls", "-p", "window:=3", "-p", "detections_wait_s:=10.0",
    )  # fmt: skip
    try:
        assert "predcls: entities from" in node.process.output()
        graphs = node.peer.collect(SceneGraph, node.topic("scene_graph"), _qos())
        camera = node.peer.node.create_publisher(Image, node.topic("image"), _qos())
        detector = node.peer.node.create_publisher(
            Detection2DArray, node.topic("detections"), _qos()
        )
        assert wait_until(
            lambda: camera.get_subscription_count() and detector.get_subscription_count(),
            STARTUP_S,
        ), node.process.output()
        output = node.topic("scene_graph")
        assert wait_until(lambda: node.peer.node.count_publishers(output) > 0, 30.0)
        time.sleep(1.0)  # discovery both ways: the first answer must not be lost
        start = time.time_ns()
        for k in range(5):  # stamps 1 s apart; each frame answered before the next
            stamp = start + k * 1_000_000_000
            sec, nanosec = divmod(stamp, 1_000_000_000)
            camera.publish(image_at(stamp, height=96, width=128, seed=k))
            detector.publish(  # after the image, as a detector does
                detection_array(
                    (sec, nanosec),
                    [("person", 0.9, PERSON_BOX), ("cup/glass/bottle", 0.7, CUP_BOX)],
                    rclpy=True,
                )
            )
            assert wait_until(
                lambda s=stamp: any(stamp_ns_of(g) == s for _, g in list(graphs)), 60.0
            ), node.process.output()[-3000:]
        answers = [g for _, g in list(graphs)]
        assert [len(g.window_stamps) for g in answers] == [1, 2, 3, 3, 3]
        tracks = [[int(n.track_id) for n in g.nodes] for g in answers]
        assert all(t == tracks[0] for t in tracks) and len(set(tracks[0])) == 2
        last = answers[-1]
        assert [n.label for n in last.nodes] == ["person", "cup/glass/bottle"]
        np.testing.assert_allclose([list(n.box_xyxy) for n in last.nodes], [PERSON_BOX, CUP_BOX])
        assert len(last.edges) == 1 and int(last.dropped_frames) == 0
    finally:
        status = node.close()
    assert status == 0, node.process.output()[-3000:]
