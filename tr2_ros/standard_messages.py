"""The node's outputs a perception stack already understands, next to SceneGraph,
built without rclpy from a decoded :class:`~tr2_core.types.SceneGraph`:

* :func:`detections_message`: the entities as ``vision_msgs/Detection2DArray``
  (class id = Action Genome class name, ``id`` = track id);
* :func:`markers_message`: ``visualization_msgs/MarkerArray`` for RViz: boxes,
  person -> object relation lines and their captions, in the image's frame with
  pixels scaled to metres (``x`` right, ``y`` down, ``z = 0``: a flat drawing);
* :func:`diagnostics_message`: ``diagnostic_msgs/DiagnosticArray`` for
  ``/diagnostics`` (rate, latency, drops, rejects, window fill, resets, device).

Classes come through a :class:`MessageFactory`: rclpy's generated classes on a robot
(:func:`rclpy_factory`), rosbags' in tests and offline tools
(:func:`rosbags_factory`, which fills the fields a message leaves out with their
defaults, as rclpy's constructors do).
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np

from tr2_core.types import SceneGraph
from tr2_core.viz.overlay import PALETTE, edge_captions
from tr2_core.vocab import OBJECT_CLASSES

MessageFactory = Callable[..., Any]
"""``factory("pkg/msg/Name", **fields) -> message``; fields left out take defaults."""

DIAGNOSTIC_NAME = "tr2: scene graph"


def rclpy_factory() -> MessageFactory:
    """rclpy's generated classes (imported by package on first use)."""

    def make(type_name: str, /, **fields: Any) -> Any:
        package, _, cls = type_name.split("/")
        return getattr(importlib.import_module(f"{package}.msg"), cls)(**fields)

    return make


def rosbags_factory(typestore: Any) -> MessageFactory:
    """rosbags' classes of ``typestore``; missing fields get their defaults."""
    from rosbags.typesys.base import Nodetype

    def default(desc: tuple) -> Any:
        kind, spec = desc
        if kind == Nodetype.NAME:
            return make(spec)
        if kind == Nodetype.BASE:
            base = spec[0]
            if base == "string":
                return ""
            if base == "bool":
                return False
            return 0.0 if base.startswith("float") else 0
        sub, length = spec
        if sub[0] == Nodetype.BASE and sub[1][0] != "string":
            dtype = {"bool": np.bool_, "float32": np.float32, "float64": np.float64}.get(
                sub[1][0], np.uint8 if sub[1][0] in ("byte", "char", "uint8") else np.int64
            )
            return np.zeros(length if kind == Nodetype.ARRAY else 0, dtype)
        return [default(sub) for _ in range(length if kind == Nodetype.ARRAY else 0)]

    def make(type_name: str, /, **fields: Any) -> Any:
        _, field_defs = typestore.fielddefs[type_name]
        values = {f: fields[f] if f in fields else default(desc) for f, desc in field_defs}
        unknown = set(fields) - set(values)
        if unknown:
            raise TypeError(f"{type_name} has no fields {sorted(unknown)}")
        return typestore.types[type_name](**values)

    return make


def _box(node: Any) -> tuple[float, float, float, float]:
    x1, y1, x2, y2 = (float(v) for v in np.asarray(node.box, np.float64))
    return x1, y1, x2, y2


def detections_message(graph: SceneGraph, header: Any, make: MessageFactory) -> Any:
    """The graph's entities as a ``vision_msgs/Detection2DArray`` (header copied from
    the image): one Detection2D per node, its hypothesis the Action Genome class name
    and score, ``id`` the track id ('' when untracked)."""
    detections = []
    for node in graph.nodes:
        x1, y1, x2, y2 = _box(node)
        hypothesis = make(
            "vision_msgs/msg/ObjectHypothesis",
            class_id=OBJECT_CLASSES[node.label],
            score=float(node.score),
        )
        center = make(
            "vision_msgs/msg/Pose2D",
            position=make("vision_msgs/msg/Point2D", x=(x1 + x2) / 2, y=(y1 + y2) / 2),
            theta=0.0,
        )
        detections.append(
            make(
                "vision_msgs/msg/Detection2D",
                header=header,
                results=[make("vision_msgs/msg/ObjectHypothesisWithPose", hypothesis=hypothesis)],
                bbox=make(
                    "vision_msgs/msg/BoundingBox2D", center=center, size_x=x2 - x1, size_y=y2 - y1
                ),
                id=str(node.track_id) if node.track_id >= 0 else "",
            )
        )
    return make("vision_msgs/msg/Detection2DArray", header=header, detections=detections)


def markers_message(
    graph: SceneGraph, header: Any, make: MessageFactory, *, metres_per_pixel: float = 0.001
) -> Any:
    """``visualization_msgs/MarkerArray`` of the graph for RViz, in the image's frame:
    a DELETEALL first (the previous frame's markers go), then per node its box (line
    strip) and caption (text), per edge a line from the person to the object and its
    caption (:func:`tr2_core.viz.overlay.edge_captions`: contacting and attention read
    person -> object, spatial spelled out object first). Pixels are scaled by
    ``metres_per_pixel`` onto the frame's ``z = 0`` plane (``x`` right, ``y`` down)."""
    s = float(metres_per_pixel)
    text_height = 12 * s

    def point(x: float, y: float) -> Any:
        return make("geometry_msgs/msg/Point", x=x * s, y=y * s, z=0.0)

    def colour(index: int) -> Any:
        r, g, b = PALETTE[index % len(PALETTE)]
        return make("std_msgs/msg/ColorRGBA", r=r / 255, g=g / 255, b=b / 255, a=1.0)

    marker_class = _marker_class(make)

    def marker(kind: str, marker_id: int, ns: str, **fields: Any) -> Any:
        marker_type = getattr(marker_class, kind)
        return make(
            "visualization_msgs/msg/Marker",
            header=header, ns=ns, id=marker_id, type=marker_type, action=0, **fields,
        )  # fmt: skip

    def pose_at(x: float, y: float) -> Any:
        return make(
            "geometry_msgs/msg/Pose",
            position=point(x, y),
            orientation=make("geometry_msgs/msg/Quaternion", x=0.0, y=0.0, z=0.0, w=1.0),
        )

    line = make("geometry_msgs/msg/Vector3", x=2 * s, y=0.0, z=0.0)
    text = make("geometry_msgs/msg/Vector3", x=0.0, y=0.0, z=text_height)
    clear = make(
        "visualization_msgs/msg/Marker", header=header, ns="tr2", id=0,
        action=marker_class.DELETEALL,
    )  # fmt: skip
    markers = [clear]
    centres = []
    for i, node in enumerate(graph.nodes):
        x1, y1, x2, y2 = _box(node)
        centres.append(((x1 + x2) / 2, (y1 + y2) / 2))
        c = colour(node.track_id if node.track_id >= 0 else i)
        corners = [point(x1, y1), point(x2, y1), point(x2, y2), point(x1, y2), point(x1, y1)]
        markers.append(
            marker("LINE_STRIP", i, "tr2/boxes", points=corners, scale=line, color=c,
                   pose=pose_at(0.0, 0.0))
        )  # fmt: skip
        track = f" #{node.track_id}" if node.track_id >= 0 else ""
        markers.append(
            marker("TEXT_VIEW_FACING", i, "tr2/labels", pose=pose_at(x1, y1 - 8), scale=text,
                   color=c, text=f"{OBJECT_CLASSES[node.label]}{track} {node.score:.2f}")
        )  # fmt: skip
    for k, (edge, caption) in enumerate(zip(graph.edges, edge_captions(graph), strict=True)):
        (px, py), (ox, oy) = centres[edge.subject], centres[edge.object]
        c = colour(graph.nodes[edge.object].track_id if graph.nodes[edge.object].track_id >= 0
                   else edge.object)  # fmt: skip
        markers.append(
            marker("LINE_LIST", k, "tr2/relations", points=[point(px, py), point(ox, oy)],
                   scale=line, color=c, pose=pose_at(0.0, 0.0))
        )  # fmt: skip
        markers.append(
            marker("TEXT_VIEW_FACING", k, "tr2/relation_labels",
                   pose=pose_at((px + ox) / 2, (py + oy) / 2), scale=text, color=c, text=caption)
        )  # fmt: skip
    return make("visualization_msgs/msg/MarkerArray", markers=markers)


def _marker_class(make: MessageFactory) -> Any:
    """The Marker class (for its type constants), from either kind of factory."""
    return type(make("visualization_msgs/msg/Marker"))


def diagnostics_message(
    stamp: Any,
    make: MessageFactory,
    values: Mapping[str, Any],
    *,
    level: str = "OK",
    message: str = "",
    hardware_id: str = "",
) -> Any:
    """``diagnostic_msgs/DiagnosticArray`` with one status named
    :data:`DIAGNOSTIC_NAME` (``level``: OK, WARN, ERROR or STALE; ``values`` become
    key/value pairs, floats with 3 decimals)."""

    def text(value: Any) -> str:
        return f"{value:.3f}" if isinstance(value, float) else str(value)

    status_class = type(make("diagnostic_msgs/msg/DiagnosticStatus"))
    status = make(
        "diagnostic_msgs/msg/DiagnosticStatus",
        level=getattr(status_class, level),
        name=DIAGNOSTIC_NAME,
        message=message,
        hardware_id=hardware_id,
        values=[
            make("diagnostic_msgs/msg/KeyValue", key=k, value=text(v)) for k, v in values.items()
        ],
    )
    header = make("std_msgs/msg/Header", stamp=stamp, frame_id="")
    return make("diagnostic_msgs/msg/DiagnosticArray", header=header, status=[status])
