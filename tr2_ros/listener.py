"""``tr2_listen``: print the triplets of every SceneGraph on a topic, per frame.

    ros2 run tr2 tr2_listen --threshold 0.5 --ros-args -r scene_graph:=/robot1/scene_graph

A minimal planner-side consumer of ``/scene_graph`` (:mod:`tr2_ros.triplets`
does the work; this adds the subscription and the printing).
"""

from __future__ import annotations

import argparse
import sys

from tr2_ros.node import _qos
from tr2_ros.triplets import FAMILY_NAMES, format_frame, scene_graph_triplets


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="tr2_listen", description=__doc__.splitlines()[0])
    parser.add_argument("--topic", default="scene_graph", help="SceneGraph topic (remappable).")
    parser.add_argument(
        "--threshold", type=float, default=0.5, help="Keep predicates scoring at least this."
    )
    parser.add_argument(
        "--family", action="append", choices=FAMILY_NAMES, help="Only these families (repeat)."
    )
    parser.add_argument(
        "--count", type=int, default=0, help="Exit after this many frames (0: run until Ctrl-C)."
    )
    return parser.parse_args(argv)


def main(args: list[str] | None = None) -> int:
    """Entry point of ``ros2 run tr2 tr2_listen``; returns the exit status."""
    import rclpy
    from rclpy.executors import ExternalShutdownException
    from rclpy.node import Node
    from rclpy.utilities import remove_ros_args
    from tr2.msg import SceneGraph

    argv = sys.argv if args is None else args
    options = parse_args(remove_ros_args(argv)[1:])
    families = tuple(options.family or FAMILY_NAMES)
    rclpy.init(args=argv)
    node = Node("tr2_listen")
    frames = 0

    def on_graph(msg: SceneGraph) -> None:
        nonlocal frames
        triplets = scene_graph_triplets(msg, threshold=options.threshold, families=families)
        print(format_frame(msg, triplets), flush=True)
        frames += 1

    node.create_subscription(SceneGraph, options.topic, on_graph, _qos(10))
    try:
        while rclpy.ok() and (options.count <= 0 or frames < options.count):
            rclpy.spin_once(node, timeout_sec=0.1)
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    finally:
        node.destroy_node()
        rclpy.try_shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main())
