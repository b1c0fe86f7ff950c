"""The ``tr2`` ROS 2 node: a thin rclpy layer over :mod:`tr2_ros.pipeline`.

Topics (relative names, remap them or set the *_topic parameters):

* ``image`` (sensor_msgs/Image), or ``image/compressed``
  (sensor_msgs/CompressedImage) with ``input_transport: compressed``; QoS keep
  last ``input_depth``, reliability per ``input_reliability`` (best effort by
  default: sensor-data QoS, matches every camera driver);
* ``scene_graph`` (tr2/SceneGraph), header copied from the image;
* ``scene_graph/vocabulary`` (tr2/Vocabulary), published once, transient local;
* ``scene_graph/debug_image`` (sensor_msgs/Image rgb8), drawn only while
  someone subscribes;
* ``detections`` (vision_msgs/Detection2DArray, in) with ``mode`` predcls / sgcls:
  the robot's detector, matched to the images by stamp (:mod:`tr2_ros.detections`);
* ``scene_graph/entities`` (vision_msgs/Detection2DArray), ``scene_graph/markers``
  (visualization_msgs/MarkerArray, built only while subscribed) and ``/diagnostics``
  (:mod:`tr2_ros.standard_messages`).

Parameters (docs/ros.md): :data:`LIVE_PARAMETERS` apply at once when set, the
read-only :data:`START_PARAMETERS` at start, every other at each configure. The
engine's Python log records go to the node's ROS logger (and so to ``/rosout``).

The subscription callback only stores the newest message; one worker thread
takes the newest frame whenever it is free (stale frames are dropped and
counted in ``SceneGraph.dropped_frames``).

The node is a lifecycle (managed) node (:mod:`tr2_ros.lifecycle`):
``configure`` loads the engine (torch), ``activate`` subscribes and starts the
worker, ``deactivate`` stops both, ``cleanup`` frees the engine and its GPU
memory. With ``autostart`` (default true) :func:`main` configures and
activates at start, so ``ros2 run`` / ``ros2 launch`` stay one step. rclpy is
imported when a node is made, so this module imports anywhere.

Run: ``ros2 run tr2 tr2_node --ros-args --params-file config/tr2.yaml`` or
``ros2 launch tr2 tr2.launch.py checkpoint:=/path/to/tr2.pt``.
"""

from __future__ import annotations

import dataclasses
import gc
import logging
import sys
import threading
from collections.abc import Callable
from typing import Any

from tr2_core.errors import Tr2Error
from tr2_core.stream.engine_contract import OFFLINE_RUN_CAUSALLY, ONLINE, SceneGraphEngine
from tr2_ros.conversions import Decoder, build_vocabulary
from tr2_ros.detections import ClassMap
from tr2_ros.lifecycle import make_lifecycle_node
from tr2_ros.messages import MessageClasses, rclpy_classes
from tr2_ros.params import NodeParams, parameter_specs
from tr2_ros.pipeline import PipelineStats, ScenePipeline, load_engine
from tr2_ros.standard_messages import diagnostics_message, rclpy_factory

NODE_NAME = "tr2"

LIVE_PARAMETERS: tuple[str, ...] = (
    "score_threshold", "relation_threshold", "max_rate_hz", "max_gap_s",
)  # fmt: skip
"""Parameters a ``ros2 param set`` applies at once, while the node runs."""

START_PARAMETERS: tuple[str, ...] = (
    "output_topic", "vocabulary_topic", "publish_debug_image", "debug_image_topic",
    "entities_topic", "publish_markers", "markers_topic", "diagnostics_period_s", "autostart",
)  # fmt: skip
"""Read-only parameters, read once when the node starts (its publishers). Every other
parameter is read again at each configure, so cleanup -> configure picks up new values."""


class RosLogHandler(logging.Handler):
    """Forwards Python ``logging`` records (the engine's: window resets, the model
    protocol) to an rclpy logger, so that ``/rosout`` and the console see them."""

    def __init__(self, ros_logger: Any) -> None:
        super().__init__(logging.INFO)
        self._ros_logger = ros_logger

    def emit(self, record: logging.LogRecord) -> None:
        try:
            text = f"[{record.name}] {record.getMessage()}"
            level = record.levelno
            if level >= logging.CRITICAL:
                self._ros_logger.fatal(text)
            elif level >= logging.ERROR:
                self._ros_logger.error(text)
            elif level >= logging.WARNING:
                self._ros_logger.warning(text)
            else:
                self._ros_logger.info(text)
        except Exception:  # logging must never raise into the engine
            self.handleError(record)


def cv_bridge_fallback() -> Decoder | None:
    """cv_bridge's conversion to rgb8 (for encodings such as bayer or 16-bit),
    or None where cv_bridge is not installed."""
    try:
        from cv_bridge import CvBridge
    except ImportError:
        return None
    bridge = CvBridge()
    return lambda msg: bridge.imgmsg_to_cv2(msg, desired_encoding="rgb8")


def _qos(depth: int, *, best_effort: bool = False, latched: bool = False) -> Any:
    from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy

    return QoSProfile(
        history=HistoryPolicy.KEEP_LAST,
        depth=depth,
        reliability=ReliabilityPolicy.BEST_EFFORT if best_effort else ReliabilityPolicy.RELIABLE,
        durability=DurabilityPolicy.TRANSIENT_LOCAL if latched else DurabilityPolicy.VOLATILE,
    )


_PROTOCOL_LINES = {
    ONLINE: "online model (its output is what tr2 test scored)",
    OFFLINE_RUN_CAUSALLY: "offline model run causally: expect lower quality than its test figures",
}


def model_protocol(engine: SceneGraphEngine) -> str:
    """How the engine's model sees time, for the start-up log line: the engine's
    ``protocol`` (``online`` or ``offline-run-causally``, docs/protocols.md) in words,
    and the name of the model config it runs (the one its checkpoint records)."""
    words = _PROTOCOL_LINES.get(engine.protocol, engine.protocol)
    return f"{words}; checkpoint model config '{engine.model_name}'"


def checked_engine(engine: Any) -> SceneGraphEngine:
    """``engine`` if it has what the node relies on (:class:`SceneGraphEngine`).

    Raises:
        Tr2Error: one line naming what it lacks.
    """
    if isinstance(engine, SceneGraphEngine):
        return engine
    needed = ("protocol", "model_name", "window", "stats", "process", "tune", "close")
    missing = [name for name in needed if not hasattr(engine, name)]
    raise Tr2Error(f"the engine factory made a {type(engine).__name__} without {missing}")


def release_accelerator_memory() -> None:
    """Return cached GPU memory to the driver once the engine is dropped."""
    gc.collect()
    torch = sys.modules.get("torch")  # never import torch just for this
    if torch is not None and torch.cuda.is_available():
        torch.cuda.empty_cache()


class Tr2Node:
    """Scene graphs from camera images, as a lifecycle node; ``self.node`` is
    the rclpy (lifecycle) node to spin.

    The lifecycle transitions call :meth:`configure`, :meth:`activate`,
    :meth:`deactivate` and :meth:`cleanup`; tests and scripts may call them
    directly (``activate`` configures first when needed).

    Args:
        engine_factory: builds the engine from the parameters at configuration
            (default: :func:`tr2_ros.pipeline.load_engine`; tests inject fakes).
        classes: message classes (default: rclpy's generated ones).
        **kwargs: passed to :class:`rclpy.lifecycle.LifecycleNode` (namespace,
            parameter_overrides, ...).

    Raises:
        ConfigError: a parameter is invalid (message names it).
    """

    def __init__(
        self,
        *,
        engine_factory: Callable[[NodeParams], SceneGraphEngine] | None = None,
        classes: MessageClasses | None = None,
        **kwargs: Any,
    ) -> None:
        self.node = make_lifecycle_node(NODE_NAME, lambda: self, **kwargs)
        self.params = self._declare_parameters()
        self._log_handler = RosLogHandler(self.node.get_logger())
        library_log = logging.getLogger("tr2_core")
        library_log.addHandler(self._log_handler)
        if library_log.level == logging.NOTSET:
            library_log.setLevel(logging.INFO)
        self.classes = rclpy_classes() if classes is None else classes
        self._engine_factory = load_engine if engine_factory is None else engine_factory
        self._engine: SceneGraphEngine | None = None
        self._pipeline: ScenePipeline | None = None
        self._worker: threading.Thread | None = None
        self._subscription = self._detections_subscription = None
        self._class_map: ClassMap | None = None
        self._debug_drawing = False
        p = self.params

        node = self.node
        # Lifecycle publishers (publish only while active) for the per-frame outputs; the
        # latched vocabulary and /diagnostics (STALE while inactive) stay plain.
        managed = getattr(node, "create_lifecycle_publisher", node.create_publisher)
        self._graph_pub = managed(self.classes.SceneGraph, p.output_topic, _qos(10))
        self._vocabulary_pub = node.create_publisher(
            self.classes.Vocabulary, p.vocabulary_topic, _qos(1, latched=True)
        )
        self._vocabulary_pub.publish(build_vocabulary(self.classes))
        self._debug_pub = None
        if p.publish_debug_image:
            self._debug_pub = managed(self.classes.Image, p.debug_image_topic, _qos(1))
        self._entities_pub = self._markers_pub = self._diagnostics_pub = None
        self._diagnostics_timer = None
        self._make = None
        try:  # declared in package.xml; a bare wheel install may lack them
            from diagnostic_msgs.msg import DiagnosticArray
            from vision_msgs.msg import Detection2DArray
            from visualization_msgs.msg import MarkerArray
        except ImportError as e:
            node.get_logger().warning(
                f"no entities / markers / diagnostics output: {e} (install vision_msgs,"
                " visualization_msgs and diagnostic_msgs)"
            )
        else:
            self._make = rclpy_factory()
            self._entities_pub = managed(Detection2DArray, p.entities_topic, _qos(10))
            if p.publish_markers:
                self._markers_pub = managed(MarkerArray, p.markers_topic, _qos(1))
            if p.diagnostics_period_s > 0:
                self._diagnostics_pub = node.create_publisher(
                    DiagnosticArray, "/diagnostics", _qos(10)
                )
                self._diagnostics_timer = node.create_timer(
                    p.diagnostics_period_s, self._publish_diagnostics
                )

    def _declare_parameters(self) -> NodeParams:
        from rcl_interfaces.msg import FloatingPointRange, IntegerRange, ParameterDescriptor

        for spec in parameter_specs():
            descriptor = ParameterDescriptor(
                name=spec.name,
                description=spec.description,
                additional_constraints=spec.constraints,
                read_only=spec.name in START_PARAMETERS,
            )
            if spec.low is not None and isinstance(spec.default, float):
                descriptor.floating_point_range = [
                    FloatingPointRange(
                        from_value=float(spec.low), to_value=float(spec.high), step=0.0
                    )
                ]
            elif spec.low is not None and isinstance(spec.default, int):
                descriptor.integer_range = [
                    IntegerRange(from_value=int(spec.low), to_value=int(spec.high), step=1)
                ]
            self.node.declare_parameter(spec.name, spec.default, descriptor)
        params = self._read_parameters()
        self.node.add_on_set_parameters_callback(self._on_set_parameters)
        return params

    def _read_parameters(self) -> NodeParams:
        values = {spec.name: self.node.get_parameter(spec.name).value for spec in parameter_specs()}
        return NodeParams.from_mapping(values, strict_types=True)

    def _on_set_parameters(self, changes: list[Any]) -> Any:
        """``ros2 param set``: validated as a whole; :data:`LIVE_PARAMETERS` apply at
        once, the others at the next configure (cleanup -> configure)."""
        from rcl_interfaces.msg import SetParametersResult

        current = {name: getattr(self.params, name) for name in self.params.__dataclass_fields__}
        try:
            new = NodeParams.from_mapping(
                current | {c.name: c.value for c in changes}, strict_types=True
            )
        except Tr2Error as e:
            return SetParametersResult(successful=False, reason=str(e))
        live = {c.name: getattr(new, c.name) for c in changes if c.name in LIVE_PARAMETERS}
        later = sorted(c.name for c in changes if c.name not in LIVE_PARAMETERS)
        self.params = dataclasses.replace(self.params, **live)
        if self._pipeline is not None and live:
            self._pipeline.tune(self.params)
        engine_live = {k: v for k, v in live.items() if k in ("score_threshold", "max_gap_s")}
        if self._engine is not None and engine_live:
            self._engine.tune(**engine_live)
        logger = self.node.get_logger()
        if live:
            logger.info("set live: " + ", ".join(f"{k}={v}" for k, v in live.items()))
        if later:
            logger.info(f"set {', '.join(later)}: takes effect at the next configure")
        return SetParametersResult(successful=True, reason="")

    # -- lifecycle -----------------------------------------------------------
    def configure(self) -> None:
        """Load the engine (once) and log what runs: protocol, device, window, rate.

        Raises:
            Tr2Error: the engine cannot be built (checkpoint, weights).
        """
        if self._engine is not None:
            return
        self.params = p = self._read_parameters()  # values set since the last configure
        logger = self.node.get_logger()
        logger.info(f"loading the TR2 engine (checkpoint '{p.checkpoint}', device {p.device})")
        self._class_map = None
        if p.mode != "sgdet":
            self._class_map = ClassMap.load(p.class_map) if p.class_map else None
        self._engine = engine = checked_engine(self._engine_factory(p))
        rate = f"at most {p.max_rate_hz:g} Hz" if p.max_rate_hz > 0 else "as fast as the model runs"
        logger.info(
            f"TR2 model: {model_protocol(engine)}; device {p.device},"
            f" window {engine.window} frames, rate {rate}, max gap {p.max_gap_s:g} s,"
            f" {p.threads or 'all'} CPU threads"
        )

    def activate(self) -> None:
        """Start the worker and subscribe to images (configures first if needed).

        Raises:
            Tr2Error: the engine cannot be built (checkpoint, weights).
        """
        if self._pipeline is not None:
            return
        self.configure()
        p = self.params
        logger = self.node.get_logger()
        self._pipeline = ScenePipeline(
            self._engine,
            self.classes,
            p,
            publish_graph=self._graph_pub.publish,
            publish_debug=self._debug_pub.publish if self._debug_pub is not None else None,
            debug_wanted=self._debug_wanted,
            warn=logger.warning,
            error=logger.error,
            fallback=cv_bridge_fallback() if p.input_transport == "raw" else None,
            class_map=self._class_map,
            make=self._make,
            publish_entities=self._entities_pub.publish if self._entities_pub else None,
            publish_markers=self._markers_pub.publish if self._markers_pub else None,
            markers_wanted=self._markers_wanted,
        )
        self._set_publishers_active(True)  # before the worker's first frame
        self._worker = threading.Thread(
            target=self._pipeline.run, name="tr2-inference", daemon=True
        )
        self._worker.start()
        qos = _qos(p.input_depth, best_effort=p.input_reliability == "best_effort")
        if p.input_transport == "compressed":
            topic, msg_type = f"{p.input_topic}/compressed", self.classes.CompressedImage
        else:
            topic, msg_type = p.input_topic, self.classes.Image
        self._subscription = self.node.create_subscription(
            msg_type, topic, self._pipeline.on_image, qos
        )
        given = ""
        if p.mode != "sgdet":
            from vision_msgs.msg import Detection2DArray

            self._detections_subscription = self.node.create_subscription(
                Detection2DArray,
                p.detections_topic,
                self._pipeline.on_detections,
                _qos(10, best_effort=p.input_reliability == "best_effort"),
            )
            classes = self._pipeline.class_map
            given = (
                f"; {p.mode}: entities from"
                f" '{getattr(self._detections_subscription, 'topic_name', p.detections_topic)}'"
                f" (classes: {classes.source}, {len(classes.classes)} mapped)"
            )
        logger.info(
            f"active: subscribed to '{getattr(self._subscription, 'topic_name', topic)}'"
            f" ({p.input_transport}, {p.input_reliability}); publishing"
            f" '{getattr(self._graph_pub, 'topic_name', p.output_topic)}'{given}"
        )

    def deactivate(self) -> None:
        """Unsubscribe and stop the worker after its current frame (the engine stays loaded)."""
        for name in ("_subscription", "_detections_subscription"):
            if getattr(self, name) is not None:
                self.node.destroy_subscription(getattr(self, name))
                setattr(self, name, None)
        if self._pipeline is not None:
            self._pipeline.stop()
            if self._worker is not None:
                self._worker.join()
            self._pipeline = self._worker = None
            self._set_publishers_active(False)
            self.node.get_logger().info("inactive: unsubscribed, worker stopped")

    def cleanup(self) -> None:
        """Deactivate, then release the engine and the GPU memory it cached."""
        self.deactivate()
        if self._engine is None:
            return
        engine, self._engine = self._engine, None
        engine.close()
        del engine
        release_accelerator_memory()
        self.node.get_logger().info("unconfigured: engine released")

    def stats(self) -> PipelineStats | None:
        """Counters of the running pipeline (None while not active)."""
        return None if self._pipeline is None else self._pipeline.stats()

    def _set_publishers_active(self, active: bool) -> None:
        """(De)activate the lifecycle publishers: this node's transitions drive them
        (also when tests or scripts call :meth:`activate` directly)."""
        for pub in (self._graph_pub, self._debug_pub, self._entities_pub, self._markers_pub):
            switch = getattr(pub, "on_activate" if active else "on_deactivate", None)
            if callable(switch):
                switch(None)

    def _markers_wanted(self) -> bool:
        return self._markers_pub is not None and self._markers_pub.get_subscription_count() > 0

    def _publish_diagnostics(self) -> None:
        """Timer: one ``/diagnostics`` status (STALE while not active)."""
        if self._diagnostics_pub is None or self._make is None:
            return

        p = self.params
        if self._pipeline is None or self._engine is None:
            level, message, values = "STALE", "not active", {"device": p.device}
        else:
            level, message, values = self._pipeline.diagnostics(self._engine.window, p.device)
        stamp = self.node.get_clock().now().to_msg()
        self._diagnostics_pub.publish(
            diagnostics_message(
                stamp, self._make, values, level=level, message=message, hardware_id=p.device
            )
        )

    def _debug_wanted(self) -> bool:
        wanted = self._debug_pub is not None and self._debug_pub.get_subscription_count() > 0
        if wanted != self._debug_drawing:  # log the switch, not every frame
            self._debug_drawing = wanted
            self.node.get_logger().info(
                "debug image: subscriber present, drawing"
                if wanted
                else "debug image: no subscriber, not drawing"
            )
        return wanted

    def destroy(self) -> None:
        """Clean up and destroy the rclpy node."""
        self.cleanup()
        logging.getLogger("tr2_core").removeHandler(self._log_handler)
        self.node.destroy_node()


def _interrupt(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt


def main(args: list[str] | None = None) -> int:
    """Entry point of ``ros2 run tr2 tr2_node``; returns the exit status
    (1 with a fatal log line when parameters are unusable or, with
    ``autostart``, when the engine cannot be loaded).

    SIGINT and SIGTERM stop the node cleanly: the worker finishes its frame
    and the engine is released *before* ROS shuts down (rclpy's own signal
    handler would invalidate the context under the worker's publisher first).
    """
    import signal

    import rclpy
    from rclpy.executors import ExternalShutdownException, SingleThreadedExecutor
    from rclpy.lifecycle import TransitionCallbackReturn
    from rclpy.logging import get_logger
    from rclpy.signals import SignalHandlerOptions

    rclpy.init(args=args, signal_handler_options=SignalHandlerOptions.NO)
    previous = {}
    try:  # SIGINT too: a shell's background job starts with SIGINT ignored
        for signum in (signal.SIGINT, signal.SIGTERM):
            previous[signum] = signal.signal(signum, _interrupt)
    except ValueError:  # not the main thread (embedded use): keep the caller's handlers
        pass
    tr2: Tr2Node | None = None
    status = 0
    try:
        tr2 = Tr2Node()
        if tr2.params.autostart:
            ok = TransitionCallbackReturn.SUCCESS
            if tr2.node.trigger_configure() != ok or tr2.node.trigger_activate() != ok:
                reason = getattr(tr2.node, "transition_error", None) or "see above"
                get_logger(NODE_NAME).fatal(f"autostart failed: {reason}")
                return 1
        else:
            tr2.node.get_logger().info(
                "autostart is false: waiting for lifecycle transitions (configure, activate)"
            )
        executor = SingleThreadedExecutor()
        executor.add_node(tr2.node)
        while rclpy.ok():  # short waits: a signal surfaces as KeyboardInterrupt within 0.2 s
            executor.spin_once(timeout_sec=0.2)
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    except Tr2Error as e:
        get_logger(NODE_NAME).fatal(str(e))
        status = 1
    except Exception as e:  # e.g. rclpy rejecting a parameter override's type or range
        get_logger(NODE_NAME).fatal(f"cannot start: {type(e).__name__}: {e}")
        status = 1
    finally:
        if tr2 is not None:
            tr2.destroy()
        rclpy.try_shutdown()
        for signum, handler in previous.items():
            signal.signal(signum, handler)
    return status


if __name__ == "__main__":
    sys.exit(main())
