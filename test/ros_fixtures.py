"""Shared helpers for the ROS-side tests: rosbags message classes, image
messages in every encoding, scene-graph results, a random-init checkpoint,
and the live-test plumbing (executables in their own processes, a peer node,
loopback-only DDS in a test-unique domain)."""

from __future__ import annotations

import functools
import itertools
import os
import re
import signal
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path

import numpy as np

from tr2_core.stream.engine_contract import ONLINE, EngineStats
from tr2_core.types import SceneGraphResult
from tr2_core.vocab import ATTENTION, CONTACTING, SPATIAL
from tr2_ros.conversions import ENCODINGS
from tr2_ros.messages import MessageClasses, make_typestore, rosbags_classes


@functools.cache
def classes() -> MessageClasses:
    return rosbags_classes(make_typestore("humble"))


def header(sec: int = 12, nanosec: int = 345, frame_id: str = "camera"):
    c = classes()
    return c.Header(stamp=c.Time(sec=sec, nanosec=nanosec), frame_id=frame_id)


def random_rgb(height: int = 6, width: int = 5, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (height, width, 3), dtype=np.uint8)


def encode(rgb: np.ndarray, encoding: str) -> np.ndarray:
    """(H, W, 3) RGB -> (H, W, C) pixels as stored in ``encoding``."""
    if encoding == "mono8":
        return rgb[..., :1]
    channels, order = ENCODINGS[encoding]
    out = np.empty(rgb.shape[:2] + (channels,), dtype=np.uint8)
    out[..., list(order)] = rgb
    if channels == 4:
        out[..., 3] = 200  # alpha
    return out


def image_msg(
    rgb: np.ndarray, stored_as: str = "rgb8", *, pad: int = 0, stamp=(12, 345), data=None, **fields
):
    """A rosbags ``sensor_msgs/msg/Image`` holding ``rgb`` stored as ``stored_as``,
    rows padded with ``pad`` garbage bytes; ``fields`` override message fields."""
    pixels = encode(rgb, stored_as)
    height, width, channels = pixels.shape
    step = width * channels + pad
    rows = np.full((height, step), 0xAB, dtype=np.uint8)
    rows[:, : width * channels] = pixels.reshape(height, -1)
    values = dict(
        header=header(*stamp),
        height=height,
        width=width,
        encoding=stored_as,
        is_bigendian=0,
        step=step,
        data=rows.reshape(-1) if data is None else data,
    )
    values.update(fields)
    return classes().Image(**values)


def compressed_msg(payload: bytes, fmt: str = "jpeg", stamp=(12, 345)):
    return classes().CompressedImage(
        header=header(*stamp), format=fmt, data=np.frombuffer(payload, dtype=np.uint8)
    )


def make_result(
    num_entities: int = 4,
    num_pairs: int | None = None,
    *,
    seed: int = 0,
    stamp_ns: int = 12_000_000_345,
    width: float = 64.0,
    height: float = 48.0,
) -> SceneGraphResult:
    """A plausible result: entity 0 is the person, pairs (0, k)."""
    rng = np.random.default_rng(seed)
    n = num_entities
    p = max(n - 1, 0) if num_pairs is None else num_pairs
    assert n > 1 or p == 0, "pairs need a person and an object"
    xy = rng.uniform(0, [width / 2, height / 2], (n, 2))
    wh = rng.uniform(0.1, 1.0, (n, 2)) * [width / 2, height / 2]
    boxes = np.concatenate([xy, xy + wh], axis=1).astype(np.float32)
    labels = np.concatenate([[1], rng.integers(2, 37, max(n - 1, 0))]).astype(np.int64)[:n]
    attention = rng.random((p, ATTENTION.size)).astype(np.float32)
    attention /= attention.sum(axis=1, keepdims=True)
    return SceneGraphResult(
        stamp_ns=stamp_ns,
        entity_track=np.arange(100, 100 + n, dtype=np.int64),
        entity_labels=labels,
        entity_scores=rng.uniform(0.2, 1.0, n).astype(np.float32),
        entity_boxes=boxes,
        pair_subject=np.zeros(p, dtype=np.int64),
        pair_object=1 + np.arange(p, dtype=np.int64) % max(n - 1, 1),
        attention=attention,
        spatial=rng.random((p, SPATIAL.size)).astype(np.float32),
        contacting=rng.random((p, CONTACTING.size)).astype(np.float32),
        window_stamps_ns=np.array([stamp_ns - 2_000_000_000, stamp_ns - 1_000_000_000, stamp_ns]),
    )


class FakeEngine:
    """Stands in for ``tr2_core.stream.StreamingEngine`` (it implements
    :class:`~tr2_core.stream.engine_contract.SceneGraphEngine`): records its inputs,
    returns ``make_result`` sized to the image, optionally waits or fails."""

    protocol, model_name, window = ONLINE, "fake", 8

    def __init__(self, delay: float = 0.0, fail_on: set[int] | None = None, result=None):
        self.delay = delay
        self.fail_on = fail_on or set()
        self.result = result
        self.calls: list[tuple[tuple[int, ...], int]] = []
        self.inputs: list[dict] = []
        self.stats = EngineStats(protocol=ONLINE)
        self.tuned: list[dict] = []
        self.closed = False

    def process(self, image: np.ndarray, stamp_ns: int, **inputs) -> SceneGraphResult:
        assert image.dtype == np.uint8 and image.ndim == 3 and image.shape[2] == 3
        self.calls.append((image.shape, stamp_ns))
        self.inputs.append(inputs)
        if self.delay:
            time.sleep(self.delay)
        if stamp_ns in self.fail_on:
            raise RuntimeError("CUDA out of memory (fake)")
        if self.result is not None:
            return self.result
        return make_result(
            4, stamp_ns=stamp_ns, width=float(image.shape[1]), height=float(image.shape[0])
        )

    def tune(self, **changes) -> None:
        self.tuned.append(changes)

    def close(self) -> None:
        self.closed = True


@functools.cache
def shared_random_checkpoint() -> str:
    """One :func:`make_random_checkpoint` per test process (removed at exit)."""
    import atexit
    import shutil
    import tempfile

    folder = tempfile.mkdtemp(prefix="tr2_live_")
    atexit.register(shutil.rmtree, folder, ignore_errors=True)
    return make_random_checkpoint(Path(folder) / "tr2-small-random.pt")


def make_random_checkpoint(path) -> str:
    """A ``tr2 train``-style checkpoint of a random-init tr2-small (SGDet) at ``path``:
    what the real node loads in the live tests. A few MB; about a second on CPU."""
    import torch

    from tr2_core.models.model_config import load_model_config
    from tr2_core.run import build_run_model
    from tr2_core.run_spec import RunSpec
    from tr2_core.train.checkpoint import run_config_dict
    from tr2_core.train.recipe import TrainConfig

    run = RunSpec(data="", model="tr2-small", task="sgdet", random_init=True)
    model_cfg, train_cfg = load_model_config("tr2-small"), TrainConfig()
    parts = build_run_model(run, model_cfg, train_cfg.seed, torch.device("cpu"), training=False)
    state = {
        "config": run_config_dict(run, model_cfg, train_cfg),
        "model": parts.relation.state_dict(),
        "epoch": 0,
        "extractor_fingerprint": parts.extractor_fingerprint,
    }
    torch.save(state, path)
    return str(path)


# --------------------------------------------------------------------------
# Live ROS 2: the installed executables in their own processes, real DDS on loopback.

_domains = itertools.count()


def ros_isolation_env(domain_id: int) -> dict[str, str]:
    """Environment keeping DDS on this machine, in its own domain (set before rclpy starts)."""
    return {
        "ROS_DOMAIN_ID": str(domain_id),
        "ROS_AUTOMATIC_DISCOVERY_RANGE": "LOCALHOST",
        "ROS_LOCALHOST_ONLY": "1",  # Humble's spelling of the same rule
    }


def unique_domain_id() -> int:
    """A ROS domain id (1..100) differing between the tests of one session and,
    most likely, from concurrent sessions (they also use unique namespaces)."""
    return 1 + (os.getpid() * 37 + next(_domains)) % 100


def unique_namespace(prefix: str = "live") -> str:
    return f"/{prefix}_{uuid.uuid4().hex[:10]}"


def live_skip_reason() -> str | None:
    """Why the live tests cannot run here (None when they can)."""
    try:
        import rclpy  # noqa: F401
        from tr2.msg import SceneGraph  # noqa: F401
    except ImportError as e:
        return (
            f"ROS 2 not available ({e}): run scripts/setup_ros.sh and `source scripts/ros_env.sh`"
            " (scripts/test.sh does both)"
        )
    if installed_executable("tr2_node") is None:
        return "tr2_node is not installed: colcon build the package (scripts/setup_ros.sh)"
    return None


def installed_executable(name: str) -> str | None:
    """``<prefix of the ROS package tr2>/lib/tr2/<name>``, or None."""
    try:
        from ament_index_python.packages import PackageNotFoundError, get_package_prefix
    except ImportError:
        return None
    try:
        path = Path(get_package_prefix("tr2")) / "lib" / "tr2" / name
    except PackageNotFoundError:
        return None
    return str(path) if path.is_file() else None


def image_at(
    stamp_ns: int, *, encoding: str = "rgb8", height: int = 48, width: int = 64, seed: int = 0
):
    """An rclpy ``sensor_msgs/msg/Image`` (random pixels) stamped ``stamp_ns``."""
    from builtin_interfaces.msg import Time
    from sensor_msgs.msg import Image
    from std_msgs.msg import Header

    channels = 1 if encoding == "mono8" else 3
    pixels = np.random.default_rng(seed).integers(0, 256, height * width * channels, np.uint8)
    sec, nanosec = divmod(int(stamp_ns), 1_000_000_000)
    return Image(
        header=Header(stamp=Time(sec=sec, nanosec=nanosec), frame_id="camera_optical"),
        height=height,
        width=width,
        encoding=encoding,
        is_bigendian=0,
        step=width * channels,
        data=pixels.tobytes(),
    )


def stamp_ns_of(msg) -> int:
    return int(msg.header.stamp.sec) * 1_000_000_000 + int(msg.header.stamp.nanosec)


class LiveProcess:
    """An installed executable (``tr2_node``, ``tr2_listen``) in its own process,
    its output in ``log_path``. ``ros_args`` follow ``--ros-args``."""

    def __init__(
        self,
        name: str,
        log_path: Path,
        domain_id: int,
        *,
        args: tuple[str, ...] = (),
        ros_args: tuple[str, ...] = (),
    ) -> None:
        executable = installed_executable(name)
        assert executable is not None, f"{name} is not installed"
        env = dict(os.environ, **ros_isolation_env(domain_id))
        env |= {"PYTHONUNBUFFERED": "1", "RCUTILS_LOGGING_BUFFERED_STREAM": "1"}
        env["RCUTILS_COLORIZED_OUTPUT"] = "0"
        self.log_path = Path(log_path)
        self._log = open(self.log_path, "w")  # noqa: SIM115 (closed in stop)
        command = [sys.executable, executable, *args]
        if ros_args:
            command += ["--ros-args", *ros_args]
        self.proc = subprocess.Popen(
            command, stdout=self._log, stderr=subprocess.STDOUT, env=env, text=True
        )

    def output(self) -> str:
        return self.log_path.read_text(errors="replace")

    def wait_for_output(self, pattern: str, timeout: float) -> re.Match[str] | None:
        """The first match of the regex ``pattern`` in the output, waiting up to ``timeout`` s."""
        deadline = time.monotonic() + timeout
        while True:
            match = re.search(pattern, self.output())
            if match or time.monotonic() > deadline or self.proc.poll() is not None:
                return match or re.search(pattern, self.output())
            time.sleep(0.1)

    def stop(self, sig: int = signal.SIGINT, timeout: float = 60.0) -> int | None:
        """Send ``sig``, wait up to ``timeout`` s; kill if still alive. Returns the exit
        status (None when it had to be killed). A node stops in well under a second;
        the interpreter's exit with torch loaded takes seconds more on a busy machine."""
        status = self.proc.poll()
        if status is None:
            self.proc.send_signal(sig)
            try:
                status = self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
                status = None
        self._log.close()
        return status


class Peer:
    """The test's own rclpy node (camera, planner, lifecycle client) in its own
    context and domain, spun by a background thread."""

    def __init__(self, domain_id: int, name: str = "tr2_test_peer") -> None:
        import rclpy
        from rclpy.context import Context
        from rclpy.executors import SingleThreadedExecutor
        from rclpy.node import Node

        for key, value in ros_isolation_env(domain_id).items():
            os.environ[key] = value  # read by rcl when the context starts
        self.context = Context()
        rclpy.init(context=self.context, domain_id=domain_id)
        self.node = Node(name, context=self.context)
        self.executor = SingleThreadedExecutor(context=self.context)
        self.executor.add_node(self.node)
        self.lock = threading.Lock()
        self._subscriptions: dict[int, object] = {}
        self._thread = threading.Thread(target=self._spin, daemon=True)
        self._thread.start()

    def _spin(self) -> None:
        while self.context.ok():
            try:
                self.executor.spin_once(timeout_sec=0.05)
            except Exception:  # shutting down
                if not self.context.ok():
                    return
                raise

    def collect(self, msg_type, topic: str, qos) -> list:
        """Subscribe; returns the list that receives ``(receive time, msg)`` pairs."""
        received: list = []

        def on_msg(msg) -> None:
            with self.lock:
                received.append((time.time(), msg))

        self._subscriptions[id(received)] = self.node.create_subscription(
            msg_type, topic, on_msg, qos
        )
        return received

    def unsubscribe(self, received: list) -> None:
        """Destroy the subscription that fills ``received``."""
        self.node.destroy_subscription(self._subscriptions.pop(id(received)))

    def call(self, client, request, timeout: float = 10.0):
        """Call a service (waiting for it); the response, or None on timeout."""
        if not client.wait_for_service(timeout_sec=timeout):
            return None
        future = client.call_async(request)
        deadline = time.monotonic() + timeout
        while not future.done() and time.monotonic() < deadline:
            time.sleep(0.02)
        return future.result() if future.done() else None

    def close(self) -> None:
        import rclpy

        rclpy.try_shutdown(context=self.context)
        self._thread.join(timeout=5)
        self.node.destroy_node()


def wait_until(condition, timeout: float, interval: float = 0.05, action=None) -> bool:
    """Poll ``condition`` (calling ``action`` before each poll) until true or ``timeout`` s."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if action is not None:
            action()
        if condition():
            return True
        time.sleep(interval)
    return bool(condition())


# --------------------------------------------------------------------------
# vision_msgs (the robot's detector): the fixture package's definitions.

VISION_MSGS = Path(__file__).resolve().parent / "fixtures" / "ros_packages" / "vision_msgs"


@functools.cache
def vision_typestore():
    """A rosbags typestore (Jazzy) with the fixture vision_msgs registered."""
    from rosbags.typesys import Stores, get_types_from_msg, get_typestore

    store = get_typestore(Stores.ROS2_JAZZY)
    types: dict = {}
    for path in sorted((VISION_MSGS / "msg").glob("*.msg")):
        types.update(get_types_from_msg(path.read_text(), f"vision_msgs/msg/{path.stem}"))
    store.register(types)
    return store


def detection_array(stamp=(12, 345), detections=(), *, theta: float = 0.0, rclpy: bool = False):
    """A ``vision_msgs/msg/Detection2DArray`` (rosbags', or rclpy's with ``rclpy``) of
    ``detections``: ``(class_id, score, (x1, y1, x2, y2))`` each, or
    ``(hypotheses, box)`` with hypotheses ``[(class_id, score), ...]``."""
    if rclpy:
        from builtin_interfaces.msg import Time
        from geometry_msgs.msg import PoseWithCovariance
        from std_msgs.msg import Header
        from vision_msgs import msg as v

        def make(name, **fields):
            return getattr(v, name)(**fields)

        pose = PoseWithCovariance
    else:
        t = vision_typestore().types
        Time, Header = t["builtin_interfaces/msg/Time"], t["std_msgs/msg/Header"]  # noqa: N806
        Point, Quaternion = t["geometry_msgs/msg/Point"], t["geometry_msgs/msg/Quaternion"]  # noqa: N806

        def make(name, **fields):
            return t[f"vision_msgs/msg/{name}"](**fields)

        def pose():
            return t["geometry_msgs/msg/PoseWithCovariance"](
                pose=t["geometry_msgs/msg/Pose"](
                    position=Point(x=0.0, y=0.0, z=0.0),
                    orientation=Quaternion(x=0.0, y=0.0, z=0.0, w=1.0),
                ),
                covariance=np.zeros(36),
            )

    header = Header(stamp=Time(sec=stamp[0], nanosec=stamp[1]), frame_id="camera")
    out = []
    for item in detections:
        hypotheses, box = ([item[:2]], item[2]) if len(item) == 3 else item
        x1, y1, x2, y2 = (float(v) for v in box)
        results = [
            make(
                "ObjectHypothesisWithPose",
                hypothesis=make("ObjectHypothesis", class_id=str(c), score=float(s)),
                pose=pose(),
            )
            for c, s in hypotheses
        ]
        center = make(
            "Pose2D",
            position=make("Point2D", x=(x1 + x2) / 2, y=(y1 + y2) / 2),
            theta=float(theta),
        )
        bbox = make("BoundingBox2D", center=center, size_x=x2 - x1, size_y=y2 - y1)
        out.append(make("Detection2D", header=header, results=results, bbox=bbox, id=""))
    return make("Detection2DArray", header=header, detections=out)


# --------------------------------------------------------------------------
# A live tr2_node process and the tests' peer node.

CONFIG = Path(__file__).resolve().parent.parent / "config" / "tr2.yaml"
"""The node's parameters file."""
STARTUP_S = 180.0  # torch + model load on a busy 2-core CI machine
ANSWER_S = 60.0


class LiveNode:
    """A tr2_node process and the test's peer node in the same domain and namespace."""

    def __init__(self, log_path: Path, *ros_args: str, active: bool = True) -> None:
        self.domain = unique_domain_id()
        self.ns = unique_namespace()
        self.process = LiveProcess(
            "tr2_node", log_path, self.domain, ros_args=(*ros_args, "-r", f"__ns:={self.ns}")
        )
        self.peer = Peer(self.domain)
        if active:
            started = self.process.wait_for_output(r"active: subscribed to", STARTUP_S)
            assert started, f"tr2_node did not become active:\n{self.process.output()}"

    def topic(self, name: str) -> str:
        return f"{self.ns}/{name}"

    def close(self) -> int | None:
        self.peer.close()
        return self.process.stop()


def qos(depth: int = 10, *, best_effort: bool = False, latched: bool = False):
    """The node's own QoS profile (rclpy), for the test's peer."""
    from tr2_ros.node import _qos as node_qos

    return node_qos(depth, best_effort=best_effort, latched=latched)


def answered(graphs: list, stamps: set[int]) -> list:
    """The (receive time, graph) pairs answering one of ``stamps``."""
    return [(t, g) for t, g in list(graphs) if stamp_ns_of(g) in stamps]


def publish_until_answered(publisher, graphs: list, timeout: float = ANSWER_S, **image):
    """Publish fresh frames every 0.25 s until one is answered; that (time, graph)."""
    stamps: set[int] = set()

    def publish() -> None:
        stamp = time.time_ns()
        stamps.add(stamp)
        publisher.publish(image_at(stamp, **image))

    assert wait_until(lambda: answered(graphs, stamps), timeout, 0.25, publish), "no answer"
    return answered(graphs, stamps)[0]
