"""Debug overlay: the scene graph drawn on its frame (NumPy + PIL, ROS-free).

Boxes are coloured by track id and labelled ``label #track score``; every
edge is an arrow from the subject's box centre to the object's, labelled
with its best contacting and spatial predicates that hold and the attention
answer.
Only drawn while someone subscribes to the debug topic, so per-box drawing
calls are fine here.
"""

from __future__ import annotations

import math

import numpy as np

from tr2_core.types import SceneGraphResult
from tr2_core.vocab import ATTENTION, CONTACTING, OBJECT_CLASSES, PREDICATES, SPATIAL

PALETTE: tuple[tuple[int, int, int], ...] = (
    (230, 25, 75), (60, 180, 75), (255, 225, 25), (0, 130, 200), (245, 130, 48),
    (145, 30, 180), (70, 240, 240), (240, 50, 230), (210, 245, 60), (250, 190, 212),
    (0, 128, 128), (220, 190, 255), (170, 110, 40), (255, 250, 200), (128, 0, 0),
    (170, 255, 195),
)  # fmt: skip
"""Distinct colours, indexed by track id (or node index when untracked)."""


def edge_captions(
    result: SceneGraphResult, relation_threshold: float = 0.5, max_contacting: int = 2
) -> list[str]:
    """One short caption per pair: the best contacting predicates that hold
    (at most ``max_contacting``; the top one if none holds), the best spatial
    one that holds, then the attention answer.

    Returns:
        P strings like ``'holding, in_front_of | looking_at'``.
    """
    contacting = np.asarray(result.contacting, dtype=np.float32)
    spatial = np.asarray(result.spatial, dtype=np.float32)
    attention_top = np.argmax(np.asarray(result.attention), axis=1) + ATTENTION.start
    contact_order = np.argsort(-contacting, axis=1, kind="stable")[:, :max_contacting]
    contact_on = np.take_along_axis(contacting, contact_order, axis=1) >= relation_threshold
    contact_on[:, 0] = True  # always show the top contacting predicate
    spatial_top = np.argmax(spatial, axis=1)
    spatial_on = spatial[np.arange(len(spatial)), spatial_top] >= relation_threshold
    captions = []
    for k in range(contacting.shape[0]):  # debug drawing only
        names = [PREDICATES[CONTACTING.start + i] for i in contact_order[k][contact_on[k]]]
        if spatial_on[k]:
            names.append(PREDICATES[SPATIAL.start + spatial_top[k]])
        captions.append(f"{', '.join(names)} | {PREDICATES[attention_top[k]]}")
    return captions


def draw_scene_graph(
    image: np.ndarray, result: SceneGraphResult, *, relation_threshold: float = 0.5
) -> np.ndarray:
    """Draw ``result`` on a copy of ``image``.

    Args:
        image: (H, W, 3) uint8 RGB frame (not modified).
        result: the frame's scene graph; rows with non-finite boxes are skipped.
        relation_threshold: score at which spatial/contacting predicates are shown.

    Returns:
        (H, W, 3) uint8 RGB.
    """
    from PIL import Image, ImageDraw, ImageFont

    canvas = Image.fromarray(np.ascontiguousarray(image, dtype=np.uint8), mode="RGB")
    draw = ImageDraw.Draw(canvas)
    height, width = image.shape[:2]
    line = max(2, min(height, width) // 240)
    try:  # scalable default font (Pillow >= 10.1 with FreeType)
        font = ImageFont.load_default(size=max(10, min(height, width) // 36))
    except TypeError:
        font = ImageFont.load_default()

    boxes = np.asarray(result.entity_boxes, dtype=np.float64).reshape(-1, 4)
    finite = np.isfinite(boxes).all(axis=1)
    boxes = np.where(finite[:, None], boxes, 0.0)
    boxes[:, 0::2] = boxes[:, 0::2].clip(0, width - 1)
    boxes[:, 1::2] = boxes[:, 1::2].clip(0, height - 1)
    boxes[:, 2:] = np.maximum(boxes[:, 2:], boxes[:, :2])
    tracks = np.asarray(result.entity_track).reshape(-1)
    keys = np.where(tracks >= 0, tracks, np.arange(tracks.size))
    colours = [PALETTE[int(k) % len(PALETTE)] for k in keys.tolist()]
    labels = np.asarray(result.entity_labels).reshape(-1).tolist()
    scores = np.asarray(result.entity_scores, dtype=np.float64).reshape(-1).tolist()
    centres = (boxes[:, :2] + boxes[:, 2:]) / 2

    for i, (x1, y1, x2, y2) in enumerate(boxes.tolist()):
        if not finite[i]:
            continue
        draw.rectangle((x1, y1, x2, y2), outline=colours[i], width=line)
        name = OBJECT_CLASSES[labels[i]] if 0 <= labels[i] < len(OBJECT_CLASSES) else "?"
        track = f" #{int(tracks[i])}" if tracks[i] >= 0 else ""
        _text(draw, (x1, y1), f"{name}{track} {scores[i]:.2f}", colours[i], font, above=True)

    captions = edge_captions(result, relation_threshold)
    subjects = np.asarray(result.pair_subject).reshape(-1).tolist()
    objects = np.asarray(result.pair_object).reshape(-1).tolist()
    for s, o, caption in zip(subjects, objects, captions, strict=True):
        if not (0 <= s < len(boxes) and 0 <= o < len(boxes) and finite[s] and finite[o]):
            continue
        start, end = centres[s].tolist(), centres[o].tolist()
        _arrow(draw, start, end, colours[o], line)
        middle = ((start[0] + end[0]) / 2, (start[1] + end[1]) / 2)
        _text(draw, middle, caption, colours[o], font, above=False)
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
