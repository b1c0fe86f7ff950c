"""What the node does with a frame, without rclpy: newest-frame hand-over,
decode, infer, build and publish. The node (:mod:`tr2_ros.node`) wires this
to a subscription, publishers and a worker thread; tests and offline tools
wire it to plain callables.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from tr2_core.errors import Tr2Error
from tr2_core.stream.engine_contract import SceneGraphEngine
from tr2_core.stream.frames import run_frame
from tr2_core.types import SceneGraph
from tr2_core.viz.overlay import draw_scene_graph
from tr2_ros.conversions import (
    ConversionError,
    Decoder,
    decode_compressed_image,
    decode_image,
    decode_result,
    encode_rgb_image,
    scene_graph_message,
    stamp_to_ns,
)
from tr2_ros.detections import (
    ClassMap,
    DetectionBuffer,
    GivenEntities,
    entities_from_detections,
)
from tr2_ros.messages import MessageClasses
from tr2_ros.params import NodeParams
from tr2_ros.policy import LatestSlot, RateLimiter
from tr2_ros.standard_messages import MessageFactory, detections_message, markers_message


@dataclass(frozen=True)
class Received:
    """An input message as the worker takes it from the newest-frame slot.

    Attributes:
        msg: the Image / CompressedImage message.
        gap_ns: the longest gap between the stamps of consecutive received messages,
            from the one before the previous taken message up to ``msg`` (frames
            dropped as stale still count as seen: the window follows the camera, not
            the inference rate); None for the first message.
    """

    msg: Any
    gap_ns: int | None

    @staticmethod
    def combine(dropped: Received, newest: Received) -> Received:
        """What the slot keeps when ``newest`` replaces the untaken ``dropped``."""
        gaps = [g for g in (dropped.gap_ns, newest.gap_ns) if g is not None]
        return Received(newest.msg, max(gaps) if gaps else None)


def load_engine(params: NodeParams) -> SceneGraphEngine:
    """Build the streaming engine from the node's parameters (imports torch).

    Raises:
        ConfigError: the checkpoint parameter is empty or names no file.
        WeightsError: (from the engine) missing or mismatched weights.
    """
    checkpoint = params.require_checkpoint()
    from tr2_core.stream.engine import StreamingEngine  # deferred: torch, open_clip

    return StreamingEngine.from_checkpoint(str(checkpoint), options=params.engine_options())


@dataclass(frozen=True)
class PipelineStats:
    """Counters since start.

    Attributes:
        received: input messages handed to :meth:`ScenePipeline.on_image`.
        dropped: stale inputs replaced by a newer one before inference took them.
        rejected: inputs that could not be decoded (bad encoding, size, data).
        failed: frames whose inference or message building failed.
        published: SceneGraph messages published.
        unmatched: frames skipped because no detections matched their stamp (mode
            predcls / sgcls).
        unmapped: detections dropped because the class map does not name their class.
        invalid_detections: detections dropped for no hypothesis or an unusable box.
        missing: frames the camera sent that never arrived, estimated from the header
            stamps against the camera's own rate (lost in transport; not in
            ``received``).
    """

    received: int
    dropped: int
    rejected: int
    failed: int
    published: int
    unmatched: int = 0
    unmapped: int = 0
    invalid_detections: int = 0
    missing: int = 0


def describe_header(header: Any) -> str:
    """``'stamp 12.000000345, frame_id camera'`` for log lines."""
    try:
        sec, nanosec = int(header.stamp.sec), int(header.stamp.nanosec)
        return f"stamp {sec}.{nanosec:09d}, frame_id '{header.frame_id}'"
    except (AttributeError, TypeError, ValueError):
        return "no valid header"


class ScenePipeline:
    """Newest frame in, scene graph out.

    Args:
        engine: the streaming engine.
        classes: message classes to build with.
        params: the node's parameters (transport, thresholds, rate, debug).
        publish_graph: called with each ``tr2/msg/SceneGraph``.
        publish_debug: called with each debug ``sensor_msgs/msg/Image``.
        debug_wanted: whether anyone subscribes to the debug image now.
        warn, error: loggers for one-line reasons (rejected inputs, failures).
        fallback: decoder for raw encodings not handled here (cv_bridge).
        clock: monotonic clock for the rate limit.
        class_map: with mode predcls / sgcls, the detector's classes -> Action Genome's
            (default: :meth:`ClassMap.action_genome`).
        make: message factory for the vision_msgs / visualization_msgs outputs
            (:mod:`tr2_ros.standard_messages`); needed with ``publish_entities`` /
            ``publish_markers``.
        publish_entities: called with each frame's ``vision_msgs/Detection2DArray``.
        publish_markers: called with each frame's ``visualization_msgs/MarkerArray``,
            built only while ``markers_wanted()``.
    """

    def __init__(
        self,
        engine: SceneGraphEngine,
        classes: MessageClasses,
        params: NodeParams,
        *,
        publish_graph: Callable[[Any], None],
        publish_debug: Callable[[Any], None] | None = None,
        debug_wanted: Callable[[], bool] = lambda: False,
        warn: Callable[[str], None] = print,
        error: Callable[[str], None] = print,
        fallback: Decoder | None = None,
        clock: Callable[[], float] = time.monotonic,
        class_map: ClassMap | None = None,
        make: MessageFactory | None = None,
        publish_entities: Callable[[Any], None] | None = None,
        publish_markers: Callable[[Any], None] | None = None,
        markers_wanted: Callable[[], bool] = lambda: False,
    ) -> None:
        self.engine = engine
        self.classes = classes
        self.params = params
        self.slot: LatestSlot[Received] = LatestSlot(Received.combine)
        self._last_received_ns: int | None = None
        self._recent_gaps: list[int] = []
        self._missing = 0
        self.limiter = RateLimiter(params.max_rate_hz, clock)
        self._publish_graph = publish_graph
        self._publish_debug = publish_debug
        self._debug_wanted = debug_wanted
        self._warn, self._error = warn, error
        self._fallback = fallback
        self._lock = threading.Lock()
        self._rejected = self._failed = self._published = 0
        self._unmatched = self._unmapped = self._invalid_detections = 0
        self._make = make
        self._publish_entities, self._publish_markers = publish_entities, publish_markers
        self._markers_wanted = markers_wanted
        self._clock = clock
        # (publish time, seconds from taking the frame to publishing, window length)
        self._recent: list[tuple[float, float, int]] = []
        self._diagnosed: tuple[float, PipelineStats] | None = None
        self.class_map = ClassMap.action_genome() if class_map is None else class_map
        self.detections: DetectionBuffer | None = None
        if params.mode != "sgdet":
            self.detections = DetectionBuffer(int(round(params.detections_tolerance_s * 1e9)))

    # -- callback side -----------------------------------------------------
    def on_image(self, msg: Any) -> None:
        """Subscription callback: only stores the newest message (with the gap to the
        message received before it)."""
        try:
            stamp: int | None = stamp_to_ns(msg.header.stamp)
        except (AttributeError, TypeError, ValueError):
            stamp = None  # rejected with its reason by the worker
        with self._lock:
            previous, self._last_received_ns = self._last_received_ns, stamp
            gap = None if stamp is None or previous is None else stamp - previous
            if gap is not None and gap > 0:
                self._count_missing(gap)
        self.slot.put(Received(msg, gap))

    def _count_missing(self, gap_ns: int) -> None:
        """Estimate frames the camera sent that never arrived (lost in transport: best
        effort, large images) from the header stamps: a gap of k camera periods (the
        median of the recent gaps) means k - 1 frames missing. Gaps longer than
        ``max_gap_s`` are the camera stopping, not losses. Called under the lock."""
        gaps = self._recent_gaps
        if len(gaps) >= 5:
            period = float(np.median(gaps))
            if period > 0 and gap_ns > 1.5 * period and gap_ns <= self.params.max_gap_s * 1e9:
                self._missing += int(round(gap_ns / period)) - 1
        gaps.append(gap_ns)
        del gaps[:-31]

    def tune(self, params: NodeParams) -> None:
        """Take new parameter values between frames (thresholds, rate, detections
        waiting; the engine's own options go through its ``tune``)."""
        self.params = params
        self.limiter.period = 1.0 / params.max_rate_hz if params.max_rate_hz > 0 else 0.0

    def on_detections(self, msg: Any) -> None:
        """Detections subscription callback (mode predcls / sgcls): only stores them."""
        if self.detections is not None:
            self.detections.put(msg)

    # -- worker side -------------------------------------------------------
    def run(self) -> None:
        """Worker loop: process the newest frame until :meth:`stop`."""
        while self.step():
            pass

    def step(self, timeout: float | None = None) -> bool:
        """Wait for the rate limit, take the newest frame (up to ``timeout``
        seconds) and process it. Returns False once stopped."""
        delay = self.limiter.delay()
        if delay > 0:
            time.sleep(delay)
        item = self.slot.take(timeout)
        if item is None:
            return not self.slot.closed
        self.limiter.mark()
        self.process(item.msg, gap_ns=item.gap_ns)
        return True

    def stop(self) -> None:
        """Make :meth:`run` return (after the frame in progress)."""
        self.slot.close()

    def decode(self, msg: Any) -> np.ndarray:
        """(H, W, 3) uint8 RGB from an Image or CompressedImage (per input_transport)."""
        if self.params.input_transport == "compressed":
            return decode_compressed_image(msg)
        return decode_image(msg, fallback=self._fallback)

    def process(self, msg: Any, *, gap_ns: int | None = None) -> Any | None:
        """Decode, infer, publish. Never raises: a rejected input or failed
        frame is logged with its reason and counted. Returns the published
        SceneGraph, or None.

        Args:
            gap_ns: :attr:`Received.gap_ns` (None: the engine measures the gap to the
                previous frame it processed)."""
        header = msg.header
        started = self._clock()
        try:
            image = self.decode(msg)
        except ConversionError as e:
            self._count("_rejected")
            self._warn(f"rejected input image ({describe_header(header)}): {e}")
            return None
        try:
            stamp_ns = stamp_to_ns(header.stamp)
            inputs: dict[str, Any] = {} if gap_ns is None else {"gap_ns": gap_ns}
            if self.detections is not None:
                given = self._given_entities(stamp_ns, header)
                if given is None:
                    return None
                inputs |= {"boxes": given.boxes, "labels": given.labels, "scores": given.scores}
            result = run_frame(self.engine, image, stamp_ns, **inputs)  # as tr2 video / bag
            stats = self.stats()
            graph = decode_result(result, self.params.relation_threshold)
            graph_msg = scene_graph_message(
                graph,
                header,
                self.classes,
                image_width=image.shape[1],
                image_height=image.shape[0],
                dropped_frames=stats.dropped,
                rejected_frames=stats.rejected,
            )
        except Tr2Error as e:
            self._count("_failed")
            self._error(f"no scene graph for frame ({describe_header(header)}): {e}")
            return None
        except Exception as e:  # the engine runs arbitrary torch code; keep the node alive
            self._count("_failed")
            self._error(
                f"inference failed for frame ({describe_header(header)}): {type(e).__name__}: {e}"
            )
            return None
        self._publish_graph(graph_msg)
        self._count("_published")
        with self._lock:
            now = self._clock()
            self._recent.append((now, now - started, len(graph.window_stamps_ns)))
            del self._recent[:-1000]
        self._publish_standard_outputs(graph, header)
        if self.params.publish_debug_image and self._publish_debug and self._debug_wanted():
            self._publish_debug_image(image, graph, header)
        return graph_msg

    def _publish_standard_outputs(self, graph: SceneGraph, header: Any) -> None:
        """vision_msgs entities and RViz markers (these must never stop the node)."""
        if self._make is None:
            return
        try:
            if self._publish_entities is not None:
                self._publish_entities(detections_message(graph, header, self._make))
            if self._publish_markers is not None and self._markers_wanted():
                self._publish_markers(markers_message(graph, header, self._make))
        except Exception as e:
            self._error(f"entities / markers failed ({describe_header(header)}): {e}")

    def diagnostics(self, window: int, device: str) -> tuple[str, str, dict[str, Any]]:
        """(level, message, values) of the ``/diagnostics`` status since the previous
        call: rate and latency over that period, the counters since start, the window
        fill of the newest answer, the engine's window resets and the device. WARN
        while frames arrive but none is answered, or frames failed or found no
        detections in the period."""
        now = self._clock()
        stats = self.stats()
        with self._lock:
            since, before = self._diagnosed or (now, PipelineStats(0, 0, 0, 0, 0))
            self._diagnosed = (now, stats)
            recent = [r for r in self._recent if r[0] > since]
            fill = self._recent[-1][2] if self._recent else 0
        period = max(now - since, 1e-9)
        values: dict[str, Any] = {
            "rate_hz": len(recent) / period if recent else 0.0,
            "latency_ms": 1000 * float(np.mean([r[1] for r in recent])) if recent else 0.0,
            "received": stats.received,
            "published": stats.published,
            "dropped": stats.dropped,
            "missing_estimate": stats.missing,
            "rejected": stats.rejected,
            "failed": stats.failed,
            "unmatched": stats.unmatched,
            "unmapped": stats.unmapped,
            "window_fill": f"{fill}/{window}",
            "resets": self.engine.stats.resets,
            "device": device,
        }
        problems = []
        if stats.received > before.received and not recent:
            problems.append("frames arrive but none was answered")
        if stats.failed > before.failed:
            problems.append(f"{stats.failed - before.failed} frames failed")
        if stats.unmatched > before.unmatched:
            problems.append(f"{stats.unmatched - before.unmatched} frames without detections")
        if problems:
            return "WARN", "; ".join(problems), values
        return "OK", "running" if recent else "waiting for images", values

    def _given_entities(self, stamp_ns: int, header: Any) -> GivenEntities | None:
        """The entities the robot's detector found in this frame (None: no detections
        matched its stamp in time; counted and logged)."""
        assert self.detections is not None
        msg = self.detections.match(stamp_ns, self.params.detections_wait_s)
        if msg is None:
            self._count("_unmatched")
            self._warn(
                f"no detections for frame ({describe_header(header)}) within"
                f" {self.params.detections_tolerance_s:g} s of its stamp after waiting"
                f" {self.params.detections_wait_s:g} s ({self.detections.received} detection"
                f" messages received): frame skipped"
            )
            return None
        given = entities_from_detections(msg, self.class_map)
        with self._lock:
            self._unmapped += given.unmapped
            self._invalid_detections += given.invalid
        return given

    def _publish_debug_image(self, image: np.ndarray, graph: SceneGraph, header: Any) -> None:
        try:
            drawn = draw_scene_graph(image, graph)
            self._publish_debug(encode_rgb_image(drawn, header, self.classes))
        except Exception as e:  # debug output must never stop the node
            self._error(f"debug image failed ({describe_header(header)}): {type(e).__name__}: {e}")

    def _count(self, name: str) -> None:
        with self._lock:
            setattr(self, name, getattr(self, name) + 1)

    def stats(self) -> PipelineStats:
        """Snapshot of the counters."""
        slot = self.slot.stats()
        with self._lock:
            return PipelineStats(
                slot.received, slot.dropped, self._rejected, self._failed, self._published,
                self._unmatched, self._unmapped, self._invalid_detections, self._missing,
            )  # fmt: skip
