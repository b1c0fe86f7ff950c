"""``tr2 bag``: a rosbag2 in, the same bag plus scene graphs out (no ROS needed).

Every message of the input bag (sqlite3 or MCAP, any rosbag2 version rosbags
reads) is copied to the output bag byte for byte, with its topic, type,
definition, QoS profiles and bag timestamp. For each message on the image
topic (``sensor_msgs/msg/Image`` or ``sensor_msgs/msg/CompressedImage``) the
streaming engine's result is written to ``/scene_graph`` as a
``tr2/msg/SceneGraph`` at the image's bag timestamp, its header copied from
the image (stamp and frame_id), exactly as the ROS node publishes it; the
``tr2/msg/Vocabulary`` goes once to ``/scene_graph/vocabulary`` (transient
local) and, when asked, the annotated frame to ``/scene_graph/debug_image``.

A frame that cannot be used (undeserialisable message, unsupported encoding,
truncated data or compressed image, or one the engine cannot take:
:func:`tr2_core.stream.frames.run_frame`, the ROS node's rule too) is skipped,
logged with its reason and counted; its original message is still copied.
Ctrl-C keeps the messages copied so far. OUT replaces only a bag an earlier
``tr2 bag`` wrote (:mod:`tr2_core.outputs`). An unreadable or corrupt bag
raises :class:`BagError`, and the output only appears, complete, when the run
succeeds (:func:`tr2_core.outputs.staged_outputs`).

It lives on the ROS side because it writes ROS messages (:mod:`tr2_ros.conversions`);
it needs rosbags, never rclpy.
"""

from __future__ import annotations

import contextlib
import logging
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tr2_core.errors import Tr2Error, clip
from tr2_core.outputs import Output, check_staged_outputs, staged_outputs
from tr2_core.progress import bar_disabled
from tr2_core.stream.engine_contract import SceneGraphEngine
from tr2_core.stream.frames import FrameFailed, SkipLog, run_frame
from tr2_core.types import SceneGraphResult
from tr2_core.viz.overlay import draw_scene_graph
from tr2_ros.conversions import (
    ConversionError,
    ImageRejected,
    build_vocabulary,
    decode_compressed_image,
    decode_image,
    decode_result,
    encode_rgb_image,
    scene_graph_message,
    stamp_to_ns,
)
from tr2_ros.detections import ClassMap, DetectionIndex, entities_from_detections
from tr2_ros.messages import MessageClasses, make_typestore, rosbags_classes, type_name

log = logging.getLogger(__name__)

IMAGE_TYPE = "sensor_msgs/msg/Image"
DETECTIONS_TYPE = "vision_msgs/msg/Detection2DArray"
COMPRESSED_TYPE = "sensor_msgs/msg/CompressedImage"
STORAGES = ("sqlite3", "mcap")


class BagError(Tr2Error):
    """An unreadable / corrupt input bag, a missing or wrong image topic, or an
    output bag that cannot be written."""


@dataclass
class BagReport:
    """What :func:`process_bag` did.

    Attributes:
        output: the bag written.
        storage: its storage plugin (``sqlite3`` or ``mcap``).
        messages: messages read from the input (all topics).
        frames: messages on the image topic.
        graphs: SceneGraph messages written.
        rejected: frames skipped because the image could not be used.
        failed: frames whose engine result could not become a message.
        unmatched: frames skipped because no detections matched their stamp
            (``detections_topic``).
        unmapped: detections dropped because the class map does not name their class.
        skips: skipped frames per reason, rejected and failed (``skip_reasons``).
        interrupted: Ctrl-C stopped the run; the bag holds the messages copied so far.
        dropped_topics: input topics not copied (type without definition).
    """

    output: Path
    storage: str
    messages: int = 0
    frames: int = 0
    graphs: int = 0
    rejected: int = 0
    failed: int = 0
    unmatched: int = 0
    unmapped: int = 0
    skips: SkipLog = field(default_factory=lambda: SkipLog(log))
    dropped_topics: list[str] = field(default_factory=list)
    interrupted: bool = False

    @property
    def skip_reasons(self) -> Counter[str]:
        return self.skips.reasons

    def summary(self) -> str:
        """A few human-readable lines for the command's output."""
        lines = [
            f"wrote {self.output} ({self.storage}): {self.messages} messages copied, "
            f"{self.graphs} scene graphs from {self.frames} frames; "
            f"{self.rejected} frames rejected, {self.failed} failed"
            + (
                f", {self.unmatched} without detections; {self.unmapped} detections of"
                " unmapped classes dropped"
                if self.unmatched or self.unmapped
                else ""
            )
        ]
        lines += [f"  {n} x {reason}" for reason, n in self.skip_reasons.most_common(5)]
        if self.dropped_topics:
            lines.append(f"  topics not copied (no type definition): {self.dropped_topics}")
        if self.interrupted:
            lines.append(
                f"  WARNING: interrupted: only the first {self.messages} messages were copied"
            )
        return "\n".join(lines)


def input_storage(path: Path) -> str:
    """Storage plugin of a bag folder or a bare ``.db3`` / ``.mcap`` file."""
    if path.is_dir():
        return "mcap" if any(path.glob("*.mcap*")) else "sqlite3"
    return "mcap" if path.suffix == ".mcap" else "sqlite3"


def _qos_transient_local() -> Any:
    from rosbags.interfaces import (
        Qos,
        QosDurability,
        QosHistory,
        QosLiveliness,
        QosReliability,
        QosTime,
    )

    zero = QosTime(0, 0)
    return Qos(
        QosHistory.KEEP_LAST, 1, QosReliability.RELIABLE, QosDurability.TRANSIENT_LOCAL,
        zero, zero, QosLiveliness.AUTOMATIC, zero, False,
    )  # fmt: skip


def _reading(src: Path, what: str, fn: Callable[[], Any]) -> Any:
    """Run a reader call; any failure becomes a :class:`BagError` naming the bag."""
    try:
        return fn()
    except Tr2Error:
        raise
    except Exception as e:  # rosbags, sqlite3, mcap, yaml and OS errors alike
        reason = clip(" ".join(str(e).split()))  # one line (YAML errors span several)
        raise BagError(f"cannot read bag {src} ({what}): {type(e).__name__}: {reason}") from e


def _messages(src: Path, reader: Any) -> Iterator[tuple[Any, int, bytes]]:
    """The reader's messages, read errors turned into :class:`BagError`."""
    it = iter(_reading(src, "messages", lambda: reader.messages()))
    while True:
        item = _reading(src, "messages", lambda: next(it, None))
        if item is None:
            return
        yield item


class _Frames:
    """Image message -> scene graph (and debug image); counts and logs skips."""

    def __init__(
        self,
        engine: SceneGraphEngine,
        typestore: Any,
        classes: MessageClasses,
        report: BagReport,
        relation_threshold: float,
        debug: bool,
        detections: Detections | None = None,
    ) -> None:
        self.detections = detections
        self.engine = engine
        self.typestore = typestore
        self.classes = classes
        self.report = report
        self.relation_threshold = relation_threshold
        self.debug = debug

    def _skip(self, counter: str, reason: str, where: str) -> None:
        setattr(self.report, counter, getattr(self.report, counter) + 1)
        self.report.skips.skip(where, reason)

    def __call__(self, raw: bytes, msgtype: str, bag_ns: int) -> tuple[Any, Any] | None:
        """(SceneGraph, debug Image or None), or None when the frame is skipped."""
        self.report.frames += 1
        where = f"#{self.report.frames - 1} (bag time {bag_ns} ns)"
        try:
            msg = self.typestore.deserialize_cdr(raw, msgtype)
        except Exception as e:  # truncated or garbled CDR: any exception from the parser
            self._skip("rejected", f"cannot deserialise {msgtype}: {type(e).__name__}", where)
            return None
        try:
            if msgtype == COMPRESSED_TYPE:
                image = decode_compressed_image(msg)
            else:
                image = decode_image(msg)
            stamp_ns = stamp_to_ns(msg.header.stamp)
        except ImageRejected as e:
            self._skip("rejected", str(e), where)
            return None
        inputs: dict[str, Any] = {}
        if self.detections is not None:
            found = self.detections.index.match(stamp_ns)
            if found is None:
                self._skip("unmatched", f"no detections at stamp {stamp_ns} ns", where)
                return None
            given = entities_from_detections(found, self.detections.class_map)
            self.report.unmapped += given.unmapped
            inputs = {"boxes": given.boxes, "labels": given.labels, "scores": given.scores}
        try:
            result: SceneGraphResult = run_frame(self.engine, image, stamp_ns, **inputs)
            graph = decode_result(result, self.relation_threshold)
            graph_msg = scene_graph_message(
                graph,
                msg.header,
                self.classes,
                image_width=image.shape[1],
                image_height=image.shape[0],
                rejected_frames=self.report.rejected,
            )
        except (ConversionError, FrameFailed) as e:
            self._skip("failed", str(e), where)
            return None
        debug = None
        if self.debug:
            debug = encode_rgb_image(draw_scene_graph(image, graph), msg.header, self.classes)
        return graph_msg, debug


@dataclass(frozen=True)
class Detections:
    """Where ``tr2 bag`` takes entities from (mode predcls / sgcls): the detector's
    ``vision_msgs/Detection2DArray`` topic, matched to the images by header stamp.

    Attributes:
        topic: the detections topic in the input bag.
        class_map: detector classes -> Action Genome's.
        tolerance_ns: largest stamp difference accepted (0: exact).
    """

    topic: str
    class_map: ClassMap
    tolerance_ns: int = 0


@dataclass(frozen=True)
class _LoadedDetections:
    index: DetectionIndex
    class_map: ClassMap


def _load_detections(
    src: Path, reader: Any, connections: list[Any], typestore: Any, wanted: Detections
) -> _LoadedDetections:
    """Every message on the detections topic, deserialised and indexed by stamp (a
    detector publishes after its image: one pass first, so each image finds its own).

    Raises:
        BagError: the topic is missing, of another type, or its type has no definition.
    """
    conns = [c for c in connections if c.topic == wanted.topic]
    if not conns:
        topics = sorted({c.topic for c in connections if c.msgtype == DETECTIONS_TYPE})
        raise BagError(
            f"bag {src} has no topic {wanted.topic!r}; its {DETECTIONS_TYPE} topics are"
            f" {topics or 'none'}"
        )
    if wrong := sorted({c.msgtype for c in conns} - {DETECTIONS_TYPE}):
        raise BagError(
            f"topic {wanted.topic!r} in {src} carries {wrong}; expected {DETECTIONS_TYPE}"
        )
    if DETECTIONS_TYPE not in typestore.fielddefs:
        from rosbags.typesys import get_types_from_msg

        text = next((c.msgdef.data for c in conns if c.msgdef is not None and c.msgdef.data), "")
        if not text:
            raise BagError(f"bag {src} has no definition of {DETECTIONS_TYPE} for {wanted.topic!r}")
        types = get_types_from_msg(text, DETECTIONS_TYPE)
        typestore.register({k: v for k, v in types.items() if k not in typestore.fielddefs})
    messages = []
    for conn, _, raw in _reading(src, "messages", lambda: list(reader.messages(connections=conns))):
        try:
            messages.append(typestore.deserialize_cdr(raw, conn.msgtype))
        except Exception as e:  # garbled CDR: that message only
            log.warning("detections message skipped: cannot deserialise: %s", type(e).__name__)
    return _LoadedDetections(DetectionIndex(messages, wanted.tolerance_ns), wanted.class_map)


def _copy_definition(conn: Any, typestore: Any) -> tuple[str, str] | None:
    """(msgdef, rihs01) to write an input connection with, or None if unknown."""
    msgdef = conn.msgdef.data if conn.msgdef is not None else ""
    digest = conn.digest or ""
    if msgdef and digest:
        return msgdef, digest
    if conn.msgtype not in typestore.fielddefs:
        return None
    if not msgdef:
        msgdef, _ = typestore.generate_msgdef(conn.msgtype, ros_version=2)
    return msgdef, digest or typestore.hash_rihs01(conn.msgtype)


def _writing(dst: Path, fn: Callable[[], Any]) -> Any:
    """Run a writer call; OS / rosbags failures become a :class:`BagError` naming ``dst``."""
    from rosbags.rosbag2 import WriterError

    try:
        return fn()
    except (OSError, WriterError) as e:
        raise BagError(f"cannot write bag {dst}: {type(e).__name__}: {e}") from e


def _copy_connections(
    writer: Any, connections: list[Any], typestore: Any, report: BagReport
) -> dict[int, Any]:
    """Input connection id -> output connection, one output connection per distinct
    (topic, type, serialisation, QoS); topics whose type has no definition are dropped
    and reported."""
    out_conn: dict[int, Any] = {}
    by_key: dict[tuple, Any] = {}
    for conn in connections:
        ext = conn.ext
        key = (conn.topic, conn.msgtype, ext.serialization_format, tuple(ext.offered_qos_profiles))
        if key not in by_key:
            definition = _copy_definition(conn, typestore)
            if definition is None:
                report.dropped_topics.append(conn.topic)
                log.warning(
                    "topic %s not copied: the bag has no definition of %s", conn.topic, conn.msgtype
                )
                continue
            by_key[key] = writer.add_connection(
                conn.topic,
                conn.msgtype,
                msgdef=definition[0],
                rihs01=definition[1],
                serialization_format=ext.serialization_format,
                offered_qos_profiles=ext.offered_qos_profiles,
            )
        out_conn[conn.id] = by_key[key]
    return out_conn


def _copy(
    src: Path,
    reader: Any,
    writer: Any,
    connections: list[Any],
    typestore: Any,
    classes: MessageClasses,
    frames: _Frames,
    report: BagReport,
    *,
    image_topic: str,
    graph_topic: str,
    vocabulary_topic: str | None,
    debug_topic: str | None,
    total: int,
    progress: bool,
) -> None:
    """The copy loop of :func:`process_bag` (writer open, reader open)."""
    from tqdm import tqdm

    dst = report.output
    writer.set_custom_data("tr2.source_bag", str(src))
    writer.set_custom_data("tr2.image_topic", image_topic)
    out_conn = _copy_connections(writer, connections, typestore, report)
    graph_conn = writer.add_connection(graph_topic, type_name("SceneGraph"), typestore=typestore)
    vocab_conn = None
    if vocabulary_topic:
        vocab_conn = writer.add_connection(
            vocabulary_topic,
            type_name("Vocabulary"),
            typestore=typestore,
            offered_qos_profiles=[_qos_transient_local()],
        )
    debug_conn = None
    if debug_topic:
        debug_conn = writer.add_connection(debug_topic, IMAGE_TYPE, typestore=typestore)

    def write(conn: Any, bag_ns: int, msg: Any) -> None:
        data = (
            msg
            if isinstance(msg, bytes | memoryview)
            else typestore.serialize_cdr(msg, msg.__msgtype__)
        )
        _writing(dst, lambda: writer.write(conn, bag_ns, data))

    with tqdm(total=total, unit="msg", desc="tr2 bag", disable=bar_disabled(progress)) as bar:
        try:  # Ctrl-C keeps the messages copied so far (the summary says so)
            for conn, bag_ns, raw in _messages(src, reader):
                report.messages += 1
                bar.update()
                if conn.id in out_conn:
                    write(out_conn[conn.id], bag_ns, raw)
                if conn.topic != image_topic:
                    continue
                if vocab_conn is not None:  # once, before the first graph
                    write(vocab_conn, bag_ns, build_vocabulary(classes))
                    vocab_conn = None
                out = frames(raw, conn.msgtype, bag_ns)
                if out is None:
                    continue
                graph, debug = out
                write(graph_conn, bag_ns, graph)
                report.graphs += 1
                if debug is not None and debug_conn is not None:
                    write(debug_conn, bag_ns, debug)
                bar.set_postfix(graphs=report.graphs, skipped=report.rejected + report.failed)
        except KeyboardInterrupt:
            report.interrupted = True


def check_paths(src: Path, dst: Path, *, overwrite: bool) -> None:
    """Cheap checks before any work (the CLI runs them before building the model).

    Raises:
        BagError: ``src`` missing.
        OutputExistsError: ``dst`` exists and ``overwrite`` is off.
        OutputPathError: ``dst`` is, holds or lies in ``src``, or is a folder that
            ``tr2 bag`` did not write (only those are replaced).
    """
    src, dst = Path(src), Path(dst)
    if not src.exists():
        raise BagError(f"input bag {src} does not exist")
    check_staged_outputs(bag_output(dst), inputs=[src], overwrite=overwrite)


def bag_output(dst: Path) -> Output:
    """OUT: a bag folder, replaced only when an earlier ``tr2 bag`` wrote it."""
    return Output.folder(dst, "OUT", "tr2-bag")


def open_bag(
    src: Path, image_topic: str, output_topics: list[str | None] = ()
) -> tuple[Any, list[Any]]:
    """Open ``src`` and check its image topic: (open rosbags Reader, its connections).

    Raises:
        BagError: unreadable / corrupt bag, ``image_topic`` missing or not carrying
            images, an output topic already in the bag.
    """
    from rosbags.rosbag2 import Reader

    reader = _reading(src, "open", lambda: Reader(src))
    _reading(src, "open", reader.open)
    try:
        connections = _reading(src, "connections", lambda: list(reader.connections))
        topics = {c.topic: c.msgtype for c in connections}
        if image_topic not in topics:
            images = sorted(t for t, m in topics.items() if m in (IMAGE_TYPE, COMPRESSED_TYPE))
            raise BagError(
                f"bag {src} has no topic {image_topic!r}; its image topics are {images or 'none'}"
            )
        image_types = {c.msgtype for c in connections if c.topic == image_topic}
        if not image_types <= {IMAGE_TYPE, COMPRESSED_TYPE}:
            raise BagError(
                f"topic {image_topic!r} in {src} carries {sorted(image_types)}; "
                f"expected {IMAGE_TYPE} or {COMPRESSED_TYPE}"
            )
        if clash := [t for t in output_topics if t and t in topics]:
            raise BagError(
                f"bag {src} already has topic(s) {clash}; choose other output topics "
                "(--graph-topic / --vocabulary-topic / --debug-topic)"
            )
    except BaseException:
        _close(src, reader)
        raise
    return reader, connections


def _close(src: Path, reader: Any) -> None:
    try:
        reader.close()
    except Exception:  # closing a broken reader must not hide the real error
        log.debug("closing the reader of %s failed", src, exc_info=True)


def process_bag(
    src: str | Path,
    dst: str | Path,
    engine: SceneGraphEngine,
    image_topic: str,
    *,
    graph_topic: str = "/scene_graph",
    vocabulary_topic: str | None = "/scene_graph/vocabulary",
    debug_topic: str | None = None,
    storage: str | None = None,
    distro: str = "humble",
    relation_threshold: float = 0.5,
    overwrite: bool = False,
    progress: bool = True,
    detections: Detections | None = None,
) -> BagReport:
    """Copy ``src`` to ``dst`` adding the scene graph of every frame on ``image_topic``.

    Args:
        src: input bag (rosbag2 folder, or a bare ``.db3`` / ``.mcap`` file).
        dst: output bag folder (must not exist unless ``overwrite``).
        engine: a fresh streaming engine (``process(image, stamp_ns)``).
        image_topic: topic of ``sensor_msgs/msg/Image`` or ``CompressedImage`` messages.
        graph_topic: where the ``tr2/msg/SceneGraph`` messages go.
        vocabulary_topic: where the ``tr2/msg/Vocabulary`` goes (None: not written).
        debug_topic: where annotated frames go (``sensor_msgs/msg/Image`` rgb8); None: none.
        storage: ``sqlite3`` or ``mcap``; None: the input's.
        distro: ROS 2 distribution whose standard types define messages lacking a
            definition in the input bag.
        relation_threshold: spatial/contacting predicates listed as holding from this score.
        overwrite: replace an existing ``dst`` (only once the new bag is complete).
        progress: show a progress bar.
        detections: take each frame's entities from the robot's detector in the bag
            (the engine in predcls / sgcls); frames without detections at their stamp
            are skipped and counted (``unmatched``).

    Returns:
        :class:`BagReport` with the counts.

    Raises:
        BagError: unreadable / corrupt input, image topic missing or of another type,
            an output topic that already exists in the input, output not writable.
            No output is left behind.
    """
    from rosbags.rosbag2 import StoragePlugin, Writer

    src, dst = Path(src), Path(dst)
    check_paths(src, dst, overwrite=overwrite)
    storage = storage or input_storage(src)
    if storage not in STORAGES:
        raise BagError(f"storage must be one of {STORAGES}, got {storage!r}")
    typestore = make_typestore(distro)
    classes = rosbags_classes(typestore)
    report = BagReport(output=dst, storage=storage)

    reader, connections = open_bag(src, image_topic, [graph_topic, vocabulary_topic, debug_topic])
    try:
        total = _reading(src, "metadata", lambda: reader.message_count)
        loaded = None
        if detections is not None:
            loaded = _load_detections(src, reader, connections, typestore, detections)
        frames = _Frames(
            engine, typestore, classes, report, relation_threshold, debug_topic is not None,
            loaded,
        )  # fmt: skip
        with staged_outputs([bag_output(dst)], inputs=[src], overwrite=overwrite) as (staged,):
            plugin = StoragePlugin.MCAP if storage == "mcap" else StoragePlugin.SQLITE3
            writer = _writing(dst, lambda: Writer(staged, version=9, storage_plugin=plugin))
            _writing(dst, writer.open)
            try:
                _copy(src, reader, writer, connections, typestore, classes, frames, report,
                      image_topic=image_topic, graph_topic=graph_topic,
                      vocabulary_topic=vocabulary_topic, debug_topic=debug_topic,
                      total=total, progress=progress)  # fmt: skip
            except BaseException:
                with contextlib.suppress(Exception):
                    writer.abort()
                raise
            _writing(dst, writer.close)
    finally:
        _close(src, reader)
    return report
