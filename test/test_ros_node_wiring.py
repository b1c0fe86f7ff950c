"""node.py's wiring, run here against a small recording stand-in for rclpy
(for machines where the ROS 2 wheels do not exist, e.g. aarch64). It checks what the
thin layer itself decides: which parameters it declares and how, which
topics and QoS it uses, that the callback only hands frames to the worker,
that the vocabulary is latched and the debug image follows subscribers, and
main()'s exit status. The real rclpy behaviour is covered by
test_ros_node_rclpy.py where ROS 2 is installed."""

from __future__ import annotations

import subprocess
import sys
import threading
import time
import types
from pathlib import Path
from types import SimpleNamespace

import pytest
from ros_fixtures import FakeEngine, classes, image_msg, random_rgb

from tr2_core.errors import ConfigError
from tr2_ros.params import NodeParams, parameter_specs

ROOT = Path(__file__).resolve().parent.parent

# --------------------------------------------------------------------------
# The stand-in.


class _Record(SimpleNamespace):
    def __init__(self, **kwargs):
        super().__init__(**kwargs)


class _Logger:
    def __init__(self, lines):
        self.lines = lines

    def __getattr__(self, level):
        return lambda message: self.lines.append((level, message))


class _Publisher:
    def __init__(self, msg_type, topic, qos):
        self.msg_type, self.topic_name, self.qos = msg_type, topic, qos
        self.published = []
        self.subscribers = 0
        self.lock = threading.Lock()

    def publish(self, msg):
        assert isinstance(msg, self.msg_type), (type(msg), self.msg_type)
        with self.lock:
            self.published.append(msg)

    def get_subscription_count(self):
        return self.subscribers


class _Node:
    instances: list[_Node] = []

    def __init__(self, name, parameter_overrides=(), **kwargs):
        self.name = name
        self.overrides = {p.name: p.value for p in parameter_overrides}
        self.parameters, self.descriptors = {}, {}
        self.publishers, self.subscriptions = {}, {}
        self.log: list[tuple[str, str]] = []
        self.destroyed = False
        _Node.instances.append(self)

    def declare_parameter(self, name, value, descriptor):
        assert name not in self.parameters
        self.parameters[name] = self.overrides.get(name, value)
        self.descriptors[name] = descriptor

    def get_parameter(self, name):
        return SimpleNamespace(value=self.parameters[name])

    def create_publisher(self, msg_type, topic, qos):
        self.publishers[topic] = _Publisher(msg_type, topic, qos)
        return self.publishers[topic]

    def add_on_set_parameters_callback(self, callback):
        self.on_set = callback

    def set_parameters(self, params):
        """What rclpy does: the callback decides, then the values are stored."""
        result = self.on_set(params)
        if result.successful:
            self.parameters.update({p.name: p.value for p in params})
        return result

    def create_timer(self, period, callback):
        self.timers = [*getattr(self, "timers", []), (period, callback)]
        return SimpleNamespace(period=period, callback=callback)

    def create_subscription(self, msg_type, topic, callback, qos):
        sub = SimpleNamespace(msg_type=msg_type, topic_name=topic, callback=callback, qos=qos)
        self.subscriptions[topic] = sub
        return sub

    def destroy_subscription(self, sub):
        del self.subscriptions[sub.topic_name]

    def get_logger(self):
        return _Logger(self.log)

    def destroy_node(self):
        self.destroyed = True


class _LifecycleNode(_Node):
    """rclpy.lifecycle.LifecycleNode's transitions, called directly."""

    def trigger_configure(self):
        return self.on_configure(None)

    def trigger_activate(self):
        return self.on_activate(None)


_ENUMS = {
    "HistoryPolicy": ("KEEP_LAST",),
    "ReliabilityPolicy": ("BEST_EFFORT", "RELIABLE"),
    "DurabilityPolicy": ("TRANSIENT_LOCAL", "VOLATILE"),
}


@pytest.fixture
def fake_rclpy(monkeypatch):
    state = SimpleNamespace(spin=lambda node: None, log=[])
    rclpy = types.ModuleType("rclpy")
    rclpy.init = lambda args=None, signal_handler_options=None: None
    rclpy.spin = lambda node: state.spin(node)
    rclpy.try_shutdown = lambda: None
    node_mod = types.ModuleType("rclpy.node")
    node_mod.Node = _Node
    qos = types.ModuleType("rclpy.qos")
    qos.QoSProfile = _Record
    for enum, members in _ENUMS.items():
        setattr(qos, enum, SimpleNamespace(**{m: f"{enum}.{m}" for m in members}))
    executors = types.ModuleType("rclpy.executors")
    executors.ExternalShutdownException = type("ExternalShutdownException", (Exception,), {})
    executors.SingleThreadedExecutor = lambda: SimpleNamespace(
        add_node=lambda node: setattr(state, "node", node),
        spin_once=lambda timeout_sec=None: state.spin(state.node),
    )
    rclpy.ok = lambda: True
    lifecycle = types.ModuleType("rclpy.lifecycle")
    lifecycle.LifecycleNode = _LifecycleNode
    lifecycle.TransitionCallbackReturn = SimpleNamespace(SUCCESS="SUCCESS", FAILURE="FAILURE")
    signals = types.ModuleType("rclpy.signals")
    signals.SignalHandlerOptions = SimpleNamespace(NO="NO")
    logging = types.ModuleType("rclpy.logging")
    logging.get_logger = lambda name: _Logger(state.log)
    rcl = types.ModuleType("rcl_interfaces")
    rcl_msg = types.ModuleType("rcl_interfaces.msg")
    rcl_msg.ParameterDescriptor = _Record
    rcl_msg.FloatingPointRange = _Record
    rcl_msg.IntegerRange = _Record
    rcl_msg.SetParametersResult = _Record
    rclpy.executors, rclpy.logging = executors, logging
    modules = {
        "rclpy": rclpy, "rclpy.node": node_mod, "rclpy.qos": qos, "rclpy.executors": executors,
        "rclpy.logging": logging, "rcl_interfaces": rcl, "rcl_interfaces.msg": rcl_msg,
        "rclpy.lifecycle": lifecycle, "rclpy.signals": signals,
    }  # fmt: skip
    for name, module in modules.items():
        monkeypatch.setitem(sys.modules, name, module)
    monkeypatch.setitem(sys.modules, "cv_bridge", None)  # not installed
    _Node.instances.clear()
    return state


def _param(name, value):
    return SimpleNamespace(name=name, value=value)


def _make(engine=None, **overrides):
    from tr2_ros.node import Tr2Node

    engine = engine or FakeEngine()
    tr2 = Tr2Node(
        engine_factory=lambda params: engine,
        classes=classes(),
        parameter_overrides=[_param(k, v) for k, v in overrides.items()],
    )
    return tr2, engine


def _wait(condition, timeout=5.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.005)
    return False


# --------------------------------------------------------------------------


def test_module_imports_without_rclpy_or_torch():
    code = (
        "import sys, tr2_ros.node, tr2_ros.pipeline;"
        " assert 'rclpy' not in sys.modules and 'torch' not in sys.modules, sorted(sys.modules)"
    )
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT)
    assert run.returncode == 0, run.stderr


def test_declares_every_parameter_with_description_and_range(fake_rclpy):
    from tr2_ros.node import START_PARAMETERS

    tr2, _ = _make()
    node = tr2.node
    assert list(node.parameters) == [s.name for s in parameter_specs()]
    assert tr2.params == NodeParams()
    for spec in parameter_specs():
        d = node.descriptors[spec.name]
        assert d.description == spec.description and d.name == spec.name
        assert d.read_only == (spec.name in START_PARAMETERS)  # publishers: read at start
    assert node.descriptors["window"].integer_range[0].from_value == 1
    assert node.descriptors["score_threshold"].floating_point_range[0].to_value == 1.0
    assert "best_effort" in node.descriptors["input_reliability"].additional_constraints


def test_overrides_and_invalid_values(fake_rclpy):
    tr2, _ = _make(device="cuda:0", window=4, max_rate_hz=2.0)
    assert (tr2.params.device, tr2.params.window, tr2.params.max_rate_hz) == ("cuda:0", 4, 2.0)
    with pytest.raises(ConfigError, match="parameter 'device'"):
        _make(device="gpu")


def test_publishers_vocabulary_latched_and_qos(fake_rclpy):
    tr2, _ = _make()
    pubs = tr2.node.publishers
    standard = {"scene_graph/entities", "scene_graph/markers", "/diagnostics"}  # when installed
    assert set(pubs) - standard == {
        "scene_graph", "scene_graph/vocabulary", "scene_graph/debug_image"
    }  # fmt: skip
    assert set(pubs) & standard in (set(), standard)
    vocabulary = pubs["scene_graph/vocabulary"]
    assert len(vocabulary.published) == 1
    assert vocabulary.qos.durability == "DurabilityPolicy.TRANSIENT_LOCAL"
    assert vocabulary.published[0].predicates[0] == "looking_at"
    assert pubs["scene_graph"].qos.reliability == "ReliabilityPolicy.RELIABLE"
    tr2, _ = _make(publish_debug_image=False)
    assert "scene_graph/debug_image" not in tr2.node.publishers


def test_activate_subscribes_with_sensor_qos_and_publishes(fake_rclpy):
    tr2, engine = _make()
    assert tr2.node.subscriptions == {}  # nothing before activation
    tr2.activate()
    sub = tr2.node.subscriptions["image"]
    assert sub.msg_type is classes().Image
    assert sub.qos.reliability == "ReliabilityPolicy.BEST_EFFORT" and sub.qos.depth == 1
    msg = image_msg(random_rgb(48, 64), "bgr8", stamp=(21, 5))
    sub.callback(msg)
    graphs = tr2.node.publishers["scene_graph"].published
    assert _wait(lambda: graphs)
    assert graphs[0].header is msg.header
    assert tr2.node.publishers["scene_graph/debug_image"].published == []  # nobody listens
    tr2.node.publishers["scene_graph/debug_image"].subscribers = 1
    sub.callback(image_msg(random_rgb(48, 64), stamp=(22, 0)))
    assert _wait(lambda: tr2.node.publishers["scene_graph/debug_image"].published)
    tr2.destroy()
    assert engine.closed and tr2.node.destroyed and tr2.node.subscriptions == {}
    assert tr2.stats() is None


def test_callback_only_stores_the_frame(fake_rclpy):
    tr2, engine = _make(FakeEngine(delay=0.2))
    tr2.activate()
    callback = tr2.node.subscriptions["image"].callback
    start = time.monotonic()
    for i in range(20):
        callback(image_msg(random_rgb(8, 8), stamp=(i, 0)))
    assert time.monotonic() - start < 0.15  # never waits for inference
    tr2.deactivate()  # the worker finishes, takes the frame left in the slot, stops
    assert len(engine.calls) <= 3  # busy with the first frame, then only the newest
    assert engine.calls[-1][1] == 19 * 10**9


def test_rejected_frames_logged_as_warnings(fake_rclpy):
    tr2, engine = _make()
    tr2.activate()
    tr2.node.subscriptions["image"].callback(image_msg(random_rgb(4, 5), encoding="bayer_rggb8"))
    assert _wait(lambda: tr2.stats().rejected == 1)
    warnings = [m for level, m in tr2.node.log if level == "warning"]
    assert any("unsupported encoding 'bayer_rggb8'" in m for m in warnings)
    tr2.destroy()


def test_compressed_and_reliable_input(fake_rclpy):
    tr2, _ = _make(input_transport="compressed", input_reliability="reliable", input_depth=3)
    tr2.activate()
    sub = tr2.node.subscriptions["image/compressed"]
    assert sub.msg_type is classes().CompressedImage
    assert sub.qos.reliability == "ReliabilityPolicy.RELIABLE" and sub.qos.depth == 3
    tr2.destroy()


def test_main_exit_status(fake_rclpy, monkeypatch):
    from tr2_ros import node as node_module

    monkeypatch.setattr(node_module, "rclpy_classes", classes)
    assert node_module.main([]) == 1  # checkpoint empty
    assert any(
        level == "fatal" and "parameter 'checkpoint' is empty" in m for level, m in fake_rclpy.log
    )
    assert _Node.instances[-1].destroyed

    # a working start, stopped by Ctrl-C
    engine = FakeEngine()
    monkeypatch.setattr(node_module, "load_engine", lambda params: engine)

    def interrupt(node):
        raise KeyboardInterrupt

    fake_rclpy.spin = interrupt
    assert node_module.main([]) == 0
    assert _Node.instances[-1].destroyed and engine.closed


def test_live_parameters_apply_at_once_others_at_the_next_configure(fake_rclpy):
    tr2, engine = _make()
    tuned = []
    engine.tune = lambda **changes: tuned.append(changes)
    tr2.activate()
    node = tr2.node
    result = node.set_parameters([_param("relation_threshold", 0.7), _param("max_gap_s", 0.5)])
    assert result.successful
    assert tr2._pipeline.params.relation_threshold == 0.7 and tuned == [{"max_gap_s": 0.5}]
    assert not node.set_parameters([_param("window", 0)]).successful  # validated
    assert "parameter 'window'" in node.set_parameters([_param("window", 0)]).reason
    assert node.set_parameters([_param("window", 4), _param("max_rate_hz", 2.0)]).successful
    assert tr2.params.window == 8 and tr2._pipeline.limiter.period == 0.5
    assert any("window: takes effect at the next configure" in m for _, m in node.log)
    tr2.cleanup()
    tr2.configure()
    assert tr2.params.window == 4  # read again at configure


def test_engine_log_records_reach_the_ros_logger(fake_rclpy):
    import logging

    tr2, _ = _make()
    logging.getLogger("tr2_core.stream.engine").warning("stream reset: %s", "gap of 2 s")
    assert ("warning", "[tr2_core.stream.engine] stream reset: gap of 2 s") in tr2.node.log
    tr2.destroy()
    logging.getLogger("tr2_core.stream.engine").warning("after destroy")
    assert not any("after destroy" in m for _, m in tr2.node.log)
