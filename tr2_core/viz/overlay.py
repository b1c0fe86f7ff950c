"""Debug overlay: the scene graph drawn on its frame (NumPy + PIL, ROS-free).

Boxes are coloured by track id and labelled ``label #track score``; every
edge is an arrow from the person's box centre to the object's, labelled
with its best contacting predicates that hold and the attention answer (read
along the arrow) and its best spatial predicate spelled out object first
(``cup in_front_of person``, as Action Genome reads it), as
:func:`tr2_core.scene_graph.decode_scene_graph` decided them.
Only drawn while someone subscribes to the debug topic, so per-box drawing
calls are fine here.
"""

from __future__ import annotations

import math

import numpy as np

from tr2_core.scene_graph import decode_scene_graph
from tr2_core.types import SceneGraph, SceneGraphEdge, SceneGraphResult
from tr2_core.vocab import OBJECT_CLASSES, PREDICATES, SPATIAL, reading_order

PALETTE: tuple[tuple[int, int, int], ...] = (
    (230, 25, 75), (60, 180, 75), (255, 225, 25), (0, 130, 200), (245, 130, 48),
    (145, 30, 180), (70, 240, 240), (240, 50, 230), (210, 245, 60), (250, 190, 212),
    (0, 128, 128), (220, 190, 255), (170, 110, 40), (255, 250, 200), (128, 0, 0),
    (170, 255, 195),
)  # fmt: skip
"""Distinct colours, indexed by track id (or node index when untracked)."""


def edge_caption(
    edge: SceneGraphEdge, max_contacting: int = 2, names: tuple[str, str] = ("person", "object")
) -> str:
    """A short caption of one edge (drawn on the arrow from the person to the object):
    the best contacting predicates that hold (at most ``max_contacting``; the top one if
    none holds) and the attention answer, which read person -> object; then the best
    spatial one that holds, spelled out in Action Genome's object-first order with the
    entities' ``names`` (person, object), e.g. ``'holding | looking_at | cup
    in_front_of person'`` (the cup is in front of the person)."""
    contacting = [PREDICATES[i] for i in edge.contacting.holding[:max_contacting]]
    contacting = contacting or [PREDICATES[edge.contacting.top]]
    caption = f"{', '.join(contacting)} | {PREDICATES[edge.attention.top]}"
    for i in edge.spatial.holding[:1]:
        first, second = reading_order(SPATIAL.name, *names)
        caption += f" | {first} {PREDICATES[i]} {second}"
    return caption


def edge_captions(graph: SceneGraph, max_contacting: int = 2) -> list[str]:
    """:func:`edge_caption` of every edge of ``graph``, with the entities' labels."""
    label = lambda k: OBJECT_CLASSES[graph.nodes[k].label]  # noqa: E731
    return [
        edge_caption(edge, max_contacting, (label(edge.subject), label(edge.object)))
        for edge in graph.edges
    ]


def draw_scene_graph(
    image: np.ndarray, graph: SceneGraph | SceneGraphResult, *, relation_threshold: float = 0.5
) -> np.ndarray:
    """Draw ``graph`` on a copy of ``image``.

    Args:
        image: (H, W, 3) uint8 RGB frame (not modified).
        graph: the frame's decoded scene graph, or the engine's result, decoded
            here with ``relation_threshold`` (rows with non-finite values are
            left out rather than raising: drawing is for debugging).
        relation_threshold: score at which spatial/contacting predicates are
            shown (only used to decode a result).

    Returns:
        (H, W, 3) uint8 RGB.
    """
    from PIL import Image, ImageDraw, ImageFont

    if isinstance(graph, SceneGraphResult):
        graph = decode_scene_graph(graph, relation_threshold=relation_threshold, drop_invalid=True)
    canvas = Image.fromarray(np.ascontiguousarray(image, dtype=np.uint8), mode="RGB")
    draw = ImageDraw.Draw(canvas)
    height, width = image.shape[:2]
    line = max(2, min(height, width) // 240)
    try:  # scalable default font (Pillow >= 10.1 with FreeType)
        font = ImageFont.load_default(size=max(10, min(height, width) // 36))
    except TypeError:
        font = ImageFont.load_default()

    boxes = np.array([node.box for node in graph.nodes], np.float64).reshape(-1, 4)
    boxes[:, 0::2] = boxes[:, 0::2].clip(0, width - 1)
    boxes[:, 1::2] = boxes[:, 1::2].clip(0, height - 1)
    boxes[:, 2:] = np.maximum(boxes[:, 2:], boxes[:, :2])
    colours = [
        PALETTE[(node.track_id if node.track_id >= 0 else i) % len(PALETTE)]
        for i, node in enumerate(graph.nodes)
    ]
    centres = (boxes[:, :2] + boxes[:, 2:]) / 2

    for node, (x1, y1, x2, y2), colour in zip(graph.nodes, boxes.tolist(), colours, strict=True):
        draw.rectangle((x1, y1, x2, y2), outline=colour, width=line)
        track = f" #{node.track_id}" if node.track_id >= 0 else ""
        caption = f"{OBJECT_CLASSES[node.label]}{track} {node.score:.2f}"
        _text(draw, (x1, y1), caption, colour, font, above=True)

    for edge, caption in zip(graph.edges, edge_captions(graph), strict=True):
        start, end = centres[edge.subject].tolist(), centres[edge.object].tolist()
        _arrow(draw, start, end, colours[edge.object], line)
        middle = ((start[0] + end[0]) / 2, (start[1] + end[1]) / 2)
        _text(draw, middle, caption, colours[edge.object], font, above=False)
    return np.asarray(canvas, dtype=np.uint8).copy()


def _arrow(draw, start: list[float], end: list[float], colour, width: int) -> None:
    draw.line((*start, *end), fill=colour, width=width)
    dx, dy = end[0] - start[0], end[1] - start[1]
    length = math.hypot(dx, dy)
    if length < 1.0:
        return
    ux, uy = dx / length, dy / length
    head = min(6.0 * width, length / 2)
    back = (end[0] - ux * head, end[1] - uy * head)
    side = (-uy * head / 2, ux * head / 2)
    draw.polygon(
        [end, (back[0] + side[0], back[1] + side[1]), (back[0] - side[0], back[1] - side[1])],
        fill=colour,
    )


def _text(draw, xy: tuple[float, float], text: str, colour, font, *, above: bool) -> None:
    left, top, right, bottom = draw.textbbox((0, 0), text, font=font)
    w, h = right - left, bottom - top
    x = xy[0]
    y = xy[1] - h - 4 if above else xy[1]
    y = max(0.0, y)
    draw.rectangle((x, y, x + w + 4, y + h + 4), fill=colour)
    brightness = 0.299 * colour[0] + 0.587 * colour[1] + 0.114 * colour[2]
    ink = (0, 0, 0) if brightness > 140 else (255, 255, 255)
    draw.text((x + 2 - left, y + 2 - top), text, fill=ink, font=font)
