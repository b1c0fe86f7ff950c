"""How many raw camera frames arrive over DDS on this machine (loopback, a second
process), by image size and reliability: what the node's image subscription can
expect before any inference. Figures go to docs/ros.md ("QoS and large raw images").

    source scripts/ros_env.sh
    .venv/bin/python bench/bench_large_images.py --sizes 640x480 1920x1080 --rate 30 --seconds 5

The publisher sends ``rate`` Hz rgb8 images for ``seconds`` (keep last 1, the
camera-driver default depth varies); the subscriber (keep last 1, as the node) counts
the distinct stamps received. Traffic stays on this machine (LOCALHOST discovery, a
domain of its own).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import textwrap
import time

PUBLISHER = textwrap.dedent(
    """
    import sys, time
    import numpy as np
    import rclpy
    from rclpy.qos import QoSProfile, ReliabilityPolicy, HistoryPolicy
    from sensor_msgs.msg import Image
    width, height, rate, seconds, reliable = sys.argv[1:6]
    width, height, rate, seconds = int(width), int(height), float(rate), float(seconds)
    rclpy.init()
    node = rclpy.create_node("bench_camera")
    qos = QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=1, reliability=(
        ReliabilityPolicy.RELIABLE if reliable == "1" else ReliabilityPolicy.BEST_EFFORT))
    pub = node.create_publisher(Image, "bench_image", qos)
    deadline = time.monotonic() + 20
    while pub.get_subscription_count() == 0 and time.monotonic() < deadline:
        time.sleep(0.05)
    time.sleep(0.5)
    data = np.random.default_rng(0).integers(0, 256, width * height * 3, np.uint8).tobytes()
    msg = Image(height=height, width=width, encoding="rgb8", step=width * 3, data=data)
    start = time.monotonic()
    for k in range(int(rate * seconds)):
        msg.header.stamp.sec, msg.header.stamp.nanosec = k, 0
        pub.publish(msg)
        time.sleep(max(0.0, start + (k + 1) / rate - time.monotonic()))
    time.sleep(1.0)
    print(int(rate * seconds))
    """
)


def measure(width: int, height: int, rate: float, seconds: float, reliable: bool) -> tuple:
    import rclpy
    from rclpy.qos import HistoryPolicy, QoSProfile, ReliabilityPolicy
    from sensor_msgs.msg import Image

    rclpy.init()
    node = rclpy.create_node("bench_subscriber")
    stamps: set[int] = set()
    qos = QoSProfile(
        history=HistoryPolicy.KEEP_LAST,
        depth=1,
        reliability=ReliabilityPolicy.RELIABLE if reliable else ReliabilityPolicy.BEST_EFFORT,
    )
    node.create_subscription(Image, "bench_image", lambda m: stamps.add(m.header.stamp.sec), qos)
    args = [str(width), str(height), str(rate), str(seconds), "1" if reliable else "0"]
    proc = subprocess.Popen(
        [sys.executable, "-c", PUBLISHER, *args], stdout=subprocess.PIPE, text=True
    )
    while proc.poll() is None:
        rclpy.spin_once(node, timeout_sec=0.01)
    for _ in range(50):
        rclpy.spin_once(node, timeout_sec=0.01)
    sent = int(proc.stdout.read().strip() or 0)
    node.destroy_node()
    rclpy.shutdown()
    return sent, len(stamps)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", nargs="+", default=["640x480", "1920x1080"])
    parser.add_argument("--rate", type=float, default=30.0)
    parser.add_argument("--seconds", type=float, default=5.0)
    args = parser.parse_args()
    os.environ.setdefault("ROS_AUTOMATIC_DISCOVERY_RANGE", "LOCALHOST")
    os.environ.setdefault("ROS_DOMAIN_ID", str(50 + os.getpid() % 40))
    print("| size | reliability | sent | received | received % |")
    print("|---|---|---|---|---|")
    for size in args.sizes:
        width, height = (int(v) for v in size.split("x"))
        for reliable in (False, True):
            sent, got = measure(width, height, args.rate, args.seconds, reliable)
            name = "reliable" if reliable else "best_effort"
            share = 100 * got / max(sent, 1)
            print(f"| {size} | {name} | {sent} | {got} | {share:.0f} |", flush=True)
            time.sleep(0.5)


if __name__ == "__main__":
    main()
