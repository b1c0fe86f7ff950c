"""Synthetic Action Genome: rendered videos in the exact release layout.

Real Action Genome cannot be downloaded here, so tests, demos and benchmarks
use data that is *exactly* in AG's format (``frames/VIDEO.mp4/FRAME.png``,
both pickles, the glued class files, ``frame_list.txt``) and on which learning
is possible: every relation label is **derived from the geometry that is
drawn**, and relations **change over time** at a per-video controllable rate.

Scene model (one subject per video, like AG):

* a person figure (head with a visible face direction, torso, arms, legs)
  standing, walking sideways (the whole scene drifts), sitting, lying or
  leaning, and 1-3 objects of AG classes, each class drawn with its own
  colour, shape and inner mark (:func:`class_style`);
* **attention** follows the face: a profile face (eye and nose on one side)
  looks at objects whose centre lies on that side beyond the head radius; a
  frontal face looks at nothing (``not_looking_at``); a head seen from behind
  is ``unsure`` (:func:`attention_relations`; the floor, which spans the
  frame, is never looked at);
* **spatial** relations are a function of the object box, the person box and
  the drawing order (:func:`spatial_relations`): objects drawn over the
  person are ``in_front_of``, objects the person occludes are ``behind``,
  partial horizontal overlap adds ``on_the_side_of`` (multi-label);
* **contacting** relations come from a per-class state machine whose states
  are drawn as poses: the hand on the object's edge (``touching``), the
  object in the hand (``holding``), hugged at the chest (``carrying``), at the
  mouth (``drinking_from``/``eating``), shirt/shoes on the body
  (``wearing``), the figure on a chair/sofa/bed/the floor (``sitting_on``,
  ``lying_on``, ``standing_on``), tilted with a hand on furniture
  (``leaning_on``) and so on (:data:`CONTACT_LABELS`).

Time: every video gets a *change rate* ``r`` (0 for a controllable fraction
of static videos, like the top 30 % of AG in the TR² paper's Fig. 5). A video
of ``F`` frames gets ``r (F - 1)`` event frames (stochastically rounded) at
random positions; at an event frame the person turns, an object moves (above
/ beneath / in front / behind / beside), or a contact state advances
(approach, touch, pick up, carry, drink, put down, sit, lie ...), and the
event is kept only if it changes at least one relation label (up to 30
proposals). Frames without an event keep every label but the scene still
moves (the whole scene drifts, untouched objects jitter; a jittered layout
that would change a label is replaced by the previous frame's), so
appearance changes without relation changes are present too. The measured
proportion of frames whose relations changed (:func:`change_degree`) thus
tracks ``r`` (it is lower only where an object is invisible around an
event).

Edge cases of the real data appear at controllable rates: frames without a
person box (``bbox`` with 0 rows), invisible objects (``bbox`` and relations
``None``), videos of 1-2 frames (dropped by the benchmark rules), small boxes
(short edge <= 16 px), portrait frames.

Beside the release files, ``annotations/synthetic_meta.json`` records the
seed, the configuration and per-video ground truth about change (rate,
measured degree, changed frames).
"""

from __future__ import annotations

import colorsys
import copy
import json
import math
import os
import shutil
import time
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageDraw

from tr2_core.data.release_writer import write_annotations
from tr2_core.errors import ConfigError
from tr2_core.vocab import ATTENTION, CONTACTING, OBJECT_CLASSES, OBJECT_INDEX, SPATIAL

META_FILE = "synthetic_meta.json"
"""Extra file written beside the release files in ``annotations/``."""

# --------------------------------------------------------------------------
# Configuration


@dataclass(frozen=True)
class SyntheticConfig:
    """Parameters of :func:`make_synthetic` (all validated on construction).

    Attributes:
        videos: number of videos.
        min_frames, max_frames: annotated frames per video (uniform), before
            the short-video edge case.
        width, height: landscape frame size in pixels (AG: 480 x 270).
        test_fraction: fraction of videos in the ``'test'`` split.
        seed: everything (ids, scenes, pixels) is a function of the seed.
        change_rate: (low, high) range of the per-video proportion of frames
            that change a relation; each non-static video draws its rate
            uniformly from it.
        static_fraction: fraction of videos with rate 0 (no relation change).
        min_objects, max_objects: annotated objects per video.
        motion: standard deviation of the scene drift per frame, as a
            fraction of the frame width (appearance change without relation
            change).
        no_person_rate: per frame, probability that the person box is
            missing (detector miss: ``bbox`` with 0 rows).
        invisible_rate: per object and frame, probability that the object is
            not visible (``bbox``/relations ``None``, not drawn).
        short_video_rate: per video, probability of only 1-2 frames.
        small_box_rate: per video, probability of a distant scene whose
            small objects have boxes with short edge <= 16 px (elsewhere
            objects are drawn with short edge >= 17 px).
        portrait_rate: per video, probability of a portrait frame
            (``height`` x ``width``).
        images: write the PNG frames (False: annotations only).
        png_compress_level: zlib level of the PNG files (1 = fast).
    """

    videos: int = 200
    min_frames: int = 8
    max_frames: int = 32
    width: int = 480
    height: int = 270
    test_fraction: float = 0.25
    seed: int = 0
    change_rate: tuple[float, float] = (0.05, 0.5)
    static_fraction: float = 0.3
    min_objects: int = 1
    max_objects: int = 3
    motion: float = 0.02
    no_person_rate: float = 0.02
    invisible_rate: float = 0.03
    short_video_rate: float = 0.04
    small_box_rate: float = 0.04
    portrait_rate: float = 0.05
    images: bool = True
    png_compress_level: int = 1

    def __post_init__(self) -> None:
        def need(ok: bool, name: str, what: str) -> None:
            if not ok:
                raise ConfigError(f"synthetic: {name}={getattr(self, name)!r}: {what}")

        need(isinstance(self.videos, int) and self.videos >= 1, "videos", "must be >= 1")
        need(self.min_frames >= 1, "min_frames", "must be >= 1")
        need(self.max_frames >= self.min_frames, "max_frames", "must be >= min_frames")
        need(self.width >= 64, "width", "must be >= 64 pixels")
        need(self.height >= 48, "height", "must be >= 48 pixels")
        lo_hi = tuple(self.change_rate)
        need(
            len(lo_hi) == 2 and 0.0 <= lo_hi[0] <= lo_hi[1] <= 1.0,
            "change_rate",
            "must be (low, high) with 0 <= low <= high <= 1",
        )
        object.__setattr__(self, "change_rate", (float(lo_hi[0]), float(lo_hi[1])))
        need(1 <= self.min_objects <= self.max_objects, "min_objects", "1 <= min <= max")
        need(self.max_objects <= 3, "max_objects", "at most 3 objects per video")
        for name in (
            "test_fraction", "static_fraction", "no_person_rate", "invisible_rate",
            "short_video_rate", "small_box_rate", "portrait_rate",
        ):  # fmt: skip
            need(0.0 <= getattr(self, name) <= 1.0, name, "must be in [0, 1]")
        need(0.0 <= self.motion <= 0.5, "motion", "must be in [0, 0.5]")
        need(0 <= self.png_compress_level <= 9, "png_compress_level", "must be in 0..9")


@dataclass(frozen=True)
class SyntheticSummary:
    """What :func:`make_synthetic` wrote."""

    root: Path
    videos: int
    frames: int
    train_videos: int
    test_videos: int
    images: int
    seconds: float
    mean_change_degree: float = 0.0
    video_ids: tuple[str, ...] = field(default=(), repr=False)


# --------------------------------------------------------------------------
# Vocabulary of the scene model

CONTACT_LABELS: dict[str, tuple[str, ...]] = {
    "none": ("not_contacting",),
    "touch": ("touching",),
    "hold": ("holding",),
    "hold2": ("holding", "touching"),  # both hands on it
    "carry": ("carrying", "holding"),
    "drink": ("drinking_from", "holding"),
    "eat": ("eating", "holding"),
    "write": ("holding", "writing_on"),
    "wipe": ("holding", "wiping"),
    "twist": ("holding", "twisting"),
    "wear": ("wearing",),
    "back": ("have_it_on_the_back",),
    "cover": ("covered_by",),
    "sit": ("sitting_on",),
    "lie": ("lying_on",),
    "stand": ("standing_on",),
    "lean": ("leaning_on", "touching"),
}
"""Contact state of the person-object pair -> its contacting labels. Each
state is drawn as a distinct pose / object placement."""

_HAND_STATES = frozenset(
    {"touch", "hold", "hold2", "carry", "drink", "eat", "write", "wipe", "twist", "lean"}
)

# Facing of the head (attention): profile to image-left/right, front, back.
FACING_LEFT, FACING_RIGHT, FACING_FRONT, FACING_BACK = -1, 1, 0, 2

_PORTABLE = "none-touch touch-hold hold-hold2"


@dataclass(frozen=True)
class _ClassSpec:
    size: tuple[float, float]  # (w, h) in person heights
    mount: str  # free | floor | wall | high | knob | band
    edges: str  # contact-state graph, "a-b c-d"


_SPECS: dict[str, _ClassSpec] = {
    "bag": _ClassSpec((0.22, 0.22), "free", _PORTABLE + " hold-carry hold-back"),
    "bed": _ClassSpec((1.0, 0.32), "floor", "none-touch touch-sit sit-lie"),
    "blanket": _ClassSpec((0.4, 0.3), "free", _PORTABLE + " hold-carry hold-cover"),
    "book": _ClassSpec((0.13, 0.17), "free", _PORTABLE + " hold-write"),
    "box": _ClassSpec((0.25, 0.22), "free", _PORTABLE + " hold-carry"),
    "broom": _ClassSpec((0.08, 0.6), "floor", "none-touch touch-hold"),
    "chair": _ClassSpec((0.3, 0.55), "floor", "none-touch touch-sit"),
    "closet/cabinet": _ClassSpec((0.5, 0.95), "floor", "none-touch touch-lean"),
    "clothes": _ClassSpec((0.3, 0.3), "free", _PORTABLE + " hold-carry hold-wear"),
    "cup/glass/bottle": _ClassSpec((0.07, 0.12), "free", _PORTABLE + " hold-drink"),
    "dish": _ClassSpec((0.18, 0.06), "free", _PORTABLE + " hold-carry"),
    "door": _ClassSpec((0.45, 1.1), "floor", "none-touch touch-lean"),
    "doorknob": _ClassSpec((0.05, 0.05), "knob", "none-touch touch-twist"),
    "doorway": _ClassSpec((0.6, 1.2), "floor", ""),
    "floor": _ClassSpec((1.0, 0.1), "band", "stand-sit sit-lie"),
    "food": _ClassSpec((0.14, 0.1), "free", _PORTABLE + " hold-eat"),
    "groceries": _ClassSpec((0.26, 0.26), "free", _PORTABLE + " hold-carry"),
    "laptop": _ClassSpec((0.25, 0.17), "free", _PORTABLE + " hold-carry"),
    "light": _ClassSpec((0.18, 0.1), "high", ""),
    "medicine": _ClassSpec((0.06, 0.1), "free", _PORTABLE + " hold-twist"),
    "mirror": _ClassSpec((0.3, 0.45), "wall", "none-touch"),
    "paper/notebook": _ClassSpec((0.16, 0.2), "free", _PORTABLE + " hold-write"),
    "phone/camera": _ClassSpec((0.06, 0.11), "free", _PORTABLE),
    "picture": _ClassSpec((0.3, 0.25), "wall", "none-touch"),
    "pillow": _ClassSpec((0.28, 0.18), "free", _PORTABLE + " hold-carry"),
    "refrigerator": _ClassSpec((0.5, 1.05), "floor", "none-touch touch-lean"),
    "sandwich": _ClassSpec((0.12, 0.08), "free", _PORTABLE + " hold-eat"),
    "shelf": _ClassSpec((0.55, 0.12), "wall", "none-touch"),
    "shoe": _ClassSpec((0.14, 0.07), "free", _PORTABLE + " hold-wear"),
    "sofa/couch": _ClassSpec((0.9, 0.42), "floor", "none-touch touch-sit sit-lie"),
    "table": _ClassSpec((0.6, 0.48), "floor", "none-touch touch-lean"),
    "television": _ClassSpec((0.4, 0.28), "wall", "none-touch"),
    "towel": _ClassSpec((0.16, 0.28), "free", _PORTABLE + " hold-wipe"),
    "vacuum": _ClassSpec((0.2, 0.5), "floor", "none-touch touch-hold"),
    "window": _ClassSpec((0.45, 0.45), "wall", "none-touch"),
}
assert set(_SPECS) == set(OBJECT_CLASSES[2:]), "every AG object class needs a spec"

_GRAPH: dict[str, dict[str, tuple[str, ...]]] = {}
for _name, _spec in _SPECS.items():
    _adj: dict[str, list[str]] = {}
    for _edge in _spec.edges.split():
        _a, _b = _edge.split("-")
        _adj.setdefault(_a, []).append(_b)
        _adj.setdefault(_b, []).append(_a)
    _GRAPH[_name] = {k: tuple(v) for k, v in _adj.items()}

_POSTURE_CLASSES = frozenset({"floor", "chair", "sofa/couch", "bed"})
_SIT_HEIGHT = {"chair": 0.26, "sofa/couch": 0.24, "bed": 0.32, "floor": 0.0}
_LIE_HEIGHT = {"bed": 0.32, "sofa/couch": 0.26, "floor": 0.0}

# Body proportions (person heights).
_HEAD_R = 0.075
_ARM_A = 0.17  # upper arm
_ARM_B = 0.17  # forearm
_REACH = 0.32  # comfortable hand distance from the shoulder
_REF_HALF_W = 0.1  # half width of the reference (standing) person box

# Spatial rule thresholds (fractions of the person box height / overlap).
_VERT_FRAC = 0.1
_DEPTH_MIN_OVERLAP = 0.3
_SIDE_MAX_OVERLAP = 0.7

_SPATIAL_COL = {name: i for i, name in enumerate(SPATIAL.predicates)}
_ATT_LOOKING = ATTENTION.predicates.index("looking_at")
_ATT_NOT = ATTENTION.predicates.index("not_looking_at")
_ATT_UNSURE = ATTENTION.predicates.index("unsure")
_CONTACT_ORDER = {name: i for i, name in enumerate(CONTACTING.predicates)}


# --------------------------------------------------------------------------
# Relation rules (vectorised over the objects of a frame)


def spatial_relations(
    object_boxes: np.ndarray, person_box: np.ndarray, object_in_front: np.ndarray
) -> np.ndarray:
    """Spatial labels of objects relative to the person, from the geometry.

    Rules (``hp`` = person box height, ``hov`` = horizontal overlap divided
    by the narrower of the two widths):

    * ``above``: object centre higher than ``y1 + 0.1 hp``; ``beneath``:
      lower than ``y2 - 0.1 hp``;
    * ``in_front_of`` / ``behind``: neither above nor beneath, the boxes
      intersect and ``hov >= 0.3``; the drawing order decides which (objects
      drawn over the person are in front);
    * ``on_the_side_of``: ``hov < 0.7``;
    * ``in``: behind and the object box contains the person box.

    At least one label is always set.

    Args:
        object_boxes: (K, 4) ``x1 y1 x2 y2`` pixels.
        person_box: (4,) ``x1 y1 x2 y2``.
        object_in_front: (K,) bool, object drawn over the person.

    Returns:
        (K, 6) bool in :data:`tr2_core.vocab.SPATIAL` order.
    """
    ob = np.asarray(object_boxes, dtype=np.float64).reshape(-1, 4)
    px1, py1, px2, py2 = (float(v) for v in np.asarray(person_box, dtype=np.float64))
    hp = max(py2 - py1, 1e-6)
    pw = max(px2 - px1, 1e-6)
    cy = 0.5 * (ob[:, 1] + ob[:, 3])
    above = cy < py1 + _VERT_FRAC * hp
    beneath = cy > py2 - _VERT_FRAC * hp
    ovx = np.clip(np.minimum(ob[:, 2], px2) - np.maximum(ob[:, 0], px1), 0.0, None)
    ovy = np.clip(np.minimum(ob[:, 3], py2) - np.maximum(ob[:, 1], py1), 0.0, None)
    hov = ovx / np.minimum(np.maximum(ob[:, 2] - ob[:, 0], 1e-6), pw)
    depth = ~(above | beneath) & (ovx > 0) & (ovy > 0) & (hov >= _DEPTH_MIN_OVERLAP)
    front = np.asarray(object_in_front, dtype=bool).reshape(-1)
    behind = depth & ~front
    contains = (ob[:, 0] <= px1) & (ob[:, 1] <= py1) & (ob[:, 2] >= px2) & (ob[:, 3] >= py2)
    out = np.zeros((ob.shape[0], SPATIAL.size), dtype=bool)
    out[:, _SPATIAL_COL["above"]] = above
    out[:, _SPATIAL_COL["beneath"]] = beneath
    out[:, _SPATIAL_COL["in_front_of"]] = depth & front
    out[:, _SPATIAL_COL["behind"]] = behind
    out[:, _SPATIAL_COL["on_the_side_of"]] = hov < _SIDE_MAX_OVERLAP
    out[:, _SPATIAL_COL["in"]] = behind & contains
    return out


def attention_relations(
    object_boxes: np.ndarray, head_x: float, head_radius: float, facing: int
) -> np.ndarray:
    """Attention label of each object from the face direction.

    A profile face (``facing`` -1 = image left, +1 = image right) looks at an
    object whose centre lies on its side by more than the head radius; a
    frontal face (0) looks at nothing; a head seen from behind (2) is unsure.

    Args:
        object_boxes: (K, 4) ``x1 y1 x2 y2``.
        head_x, head_radius: head centre x and radius in pixels.
        facing: one of ``FACING_LEFT, FACING_RIGHT, FACING_FRONT, FACING_BACK``.

    Returns:
        (K,) int64 index into :data:`tr2_core.vocab.ATTENTION` predicates.
    """
    ob = np.asarray(object_boxes, dtype=np.float64).reshape(-1, 4)
    k = ob.shape[0]
    if facing == FACING_BACK:
        return np.full(k, _ATT_UNSURE, dtype=np.int64)
    if facing == FACING_FRONT:
        return np.full(k, _ATT_NOT, dtype=np.int64)
    dx = 0.5 * (ob[:, 0] + ob[:, 2]) - head_x
    return np.where(dx * facing > head_radius, _ATT_LOOKING, _ATT_NOT).astype(np.int64)


def relation_changes(object_records: Sequence[Sequence[Mapping[str, Any]]]) -> np.ndarray:
    """Which frames of a video changed a relation w.r.t. the previous frame.

    Objects are matched by class; an object counts only where it is visible
    in both frames. Labels are compared as sets per family.

    Args:
        object_records: per frame (in time order), the frame's object records
            as in ``object_bbox_and_relationship.pkl``.

    Returns:
        (F - 1,) bool; entry ``t`` is frame ``t + 1`` vs frame ``t``.
    """

    def labels(records: Sequence[Mapping[str, Any]]) -> dict[str, tuple[frozenset, ...]]:
        return {
            r["class"]: tuple(
                frozenset(r[f] or ())
                for f in (
                    "attention_relationship",
                    "spatial_relationship",
                    "contacting_relationship",
                )
            )
            for r in records
            if r.get("visible")
        }

    per_frame = [labels(r) for r in object_records]
    out = np.zeros(max(len(per_frame) - 1, 0), dtype=bool)
    for t in range(1, len(per_frame)):
        prev, cur = per_frame[t - 1], per_frame[t]
        out[t - 1] = any(cur[c] != prev[c] for c in cur.keys() & prev.keys())
    return out


def change_degree(object_records: Sequence[Sequence[Mapping[str, Any]]]) -> float:
    """Proportion of frame transitions of a video whose relations changed
    (0.0 for a video of one frame); the TR² paper's "degree of change"."""
    changes = relation_changes(object_records)
    return float(changes.mean()) if changes.size else 0.0


# --------------------------------------------------------------------------
# Class appearance


_SHAPES = ("rect", "ellipse", "rounded", "triangle", "diamond", "hexagon")
_MARKS = ("none", "dot", "bar", "border")


def class_style(cls: str) -> tuple[tuple[int, int, int], str, str]:
    """Deterministic appearance of an AG object class: (RGB colour, shape,
    inner mark). Shape is ``index % 6`` and mark ``index // 6 % 4``, so no two
    classes share shape and mark; hues are spread by the golden ratio."""
    i = OBJECT_INDEX[cls]
    hue = (i * 0.618033988749895) % 1.0
    sat = 0.65 + 0.3 * ((i * 7) % 4) / 3.0
    val = 0.95 - 0.25 * ((i * 5) % 3) / 2.0
    r, g, b = colorsys.hsv_to_rgb(hue, sat, val)
    return (int(r * 255), int(g * 255), int(b * 255)), _SHAPES[i % 6], _MARKS[(i // 6) % 4]


def _shade(c: tuple[int, int, int], f: float) -> tuple[int, int, int]:
    return (int(c[0] * f), int(c[1] * f), int(c[2] * f))


def _draw_shape(dr: ImageDraw.ImageDraw, box: Sequence[float], cls: str) -> None:
    colour, shape, mark = class_style(cls)
    x1, y1, x2, y2 = (float(v) for v in box)
    w, h = x2 - x1, y2 - y1
    dark = _shade(colour, 0.55)
    if shape == "rect":
        dr.rectangle((x1, y1, x2, y2), fill=colour, outline=dark)
    elif shape == "ellipse":
        dr.ellipse((x1, y1, x2, y2), fill=colour, outline=dark)
    elif shape == "rounded":
        dr.rounded_rectangle(
            (x1, y1, x2, y2), radius=max(1.0, 0.25 * min(w, h)), fill=colour, outline=dark
        )
    else:
        if shape == "triangle":
            pts = [(x1 + w / 2, y1), (x2, y2), (x1, y2)]
        elif shape == "diamond":
            pts = [(x1 + w / 2, y1), (x2, y1 + h / 2), (x1 + w / 2, y2), (x1, y1 + h / 2)]
        else:  # hexagon
            q = 0.25 * w
            pts = [
                (x1 + q, y1), (x2 - q, y1), (x2, y1 + h / 2),
                (x2 - q, y2), (x1 + q, y2), (x1, y1 + h / 2),
            ]  # fmt: skip
        dr.polygon(pts, fill=colour, outline=dark)
    cx, cy = x1 + w / 2, y1 + h / 2
    if mark == "dot":
        r = 0.18 * min(w, h)
        dr.ellipse((cx - r, cy - r, cx + r, cy + r), fill=(250, 250, 250))
    elif mark == "bar":
        dr.rectangle((cx - 0.3 * w, cy - 0.08 * h, cx + 0.3 * w, cy + 0.08 * h), fill=dark)
    elif mark == "border":
        dr.rectangle(
            (cx - 0.22 * w, cy - 0.22 * h, cx + 0.22 * w, cy + 0.22 * h),
            outline=(20, 20, 20),
            width=max(1, int(0.06 * min(w, h))),
        )


# --------------------------------------------------------------------------
# Scene state


@dataclass
class _Obj:
    cls: str
    contact: str
    v: str = "level"  # above | level | beneath (free/wall objects)
    h: str = "far"  # far | near | over
    side: int = 1  # -1 left of the person, +1 right
    front: bool = False  # drawn over the person
    uv: float = 0.5  # placement inside the slot's feasible range
    uh: float = 0.5


@dataclass
class _State:
    facing: int
    objs: list[_Obj]


def _posture(st: _State) -> tuple[str, _Obj | None]:
    for o in st.objs:
        if o.contact in ("sit", "lie"):
            return o.contact, o
    for o in st.objs:
        if o.contact == "lean":
            return "lean", o
    return "stand", None


def _feasible(st: _State) -> bool:
    hand = [o for o in st.objs if o.contact in _HAND_STATES]
    if len(hand) > 1:
        return False
    postures = [o for o in st.objs if o.contact in ("sit", "lie")]
    if len(postures) > 1:
        return False
    posture = postures[0].contact if postures else "stand"
    if posture != "stand":
        if any(o.contact in ("lean", "carry") for o in st.objs):
            return False
        if posture == "lie" and (hand or any(o.contact == "back" for o in st.objs)):
            return False
        if any(_SPECS[o.cls].mount != "free" for o in hand):
            return False  # seated: only hand-held things
        if st.facing not in (FACING_LEFT, FACING_RIGHT):
            return False
    if hand and st.facing not in (FACING_LEFT, FACING_RIGHT):
        return False
    return True


# --------------------------------------------------------------------------
# Geometry


def _rot(p: np.ndarray, ang: float, pivot: np.ndarray) -> np.ndarray:
    c, s = math.cos(ang), math.sin(ang)
    q = p - pivot
    return pivot + np.stack([c * q[..., 0] - s * q[..., 1], s * q[..., 0] + c * q[..., 1]], -1)


def _ik(shoulder: np.ndarray, target: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Elbow and wrist (y-up units) of a two-link arm reaching ``target``;
    the elbow bends downwards. Unreachable targets are approached."""
    v = target - shoulder
    dist = float(np.hypot(*v))
    if dist < 1e-6:
        v, dist = np.array([0.0, -1.0]), 1e-6
    u = v / dist
    dc = min(max(dist, abs(_ARM_A - _ARM_B) + 1e-3), _ARM_A + _ARM_B - 1e-4)
    wrist = shoulder + u * dc
    cos_a = (_ARM_A**2 + dc**2 - _ARM_B**2) / (2 * _ARM_A * dc)
    a = math.acos(max(-1.0, min(1.0, cos_a)))
    e1 = shoulder + _ARM_A * _rot(u, a, np.zeros(2))
    e2 = shoulder + _ARM_A * _rot(u, -a, np.zeros(2))
    return (e1 if e1[1] < e2[1] else e2), wrist


@dataclass
class _Geom:
    """One frame's drawn geometry (image pixels, y down)."""

    joints: dict[str, np.ndarray]
    near_left: bool  # the person's left side is the near (camera) side
    facing: int  # effective facing used for attention and the face drawing
    d: int  # profile direction used for the drawing (+1 / -1)
    head: np.ndarray  # (2,)
    head_r: float
    lw: float
    person_box: np.ndarray  # (4,) xyxy, clipped
    obj_boxes: np.ndarray  # (K, 4) xyxy, clipped, rounded
    obj_front: np.ndarray  # (K,) bool
    obj_kind: list[tuple[str, Any]]  # per object: (kind, extra drawing data)
    overlays: list[tuple[int, str, Any]]  # (object row, kind, data)
    ax: float


_KP_NAMES = (
    "nose", "l_eye", "r_eye", "l_ear", "r_ear", "l_sh", "r_sh", "l_el", "r_el",
    "l_wr", "r_wr", "l_hip", "r_hip", "l_knee", "r_knee", "l_ank", "r_ank",
)  # fmt: skip
"""COCO keypoint order of ``keypoints``."""


class _VideoScene:
    """Scene model, event sampler and renderer of one video."""

    def __init__(
        self,
        rng: np.random.Generator,
        cfg: SyntheticConfig,
        size: tuple[int, int],
        classes: list[str],
        small: bool,
    ) -> None:
        self.rng = rng
        self.cfg = cfg
        self.W, self.H = size
        self.small = small
        base = min(self.H, 1.5 * self.W)  # person height scale (portrait: taller)
        self.ay = float(self.H * rng.uniform(0.86, 0.94))
        scale = rng.uniform(0.28, 0.36) if small else rng.uniform(0.55, 0.72)
        self.ph = float(min(scale * base, self.ay - 0.03 * self.H))
        min_edge = 5.0 if small or 17 > 0.25 * min(self.W, self.H) else 17.0
        self.size_px: dict[str, tuple[float, float]] = {}
        for c in classes:
            w, h = (v * self.ph for v in _SPECS[c].size)
            short = min(w, h)
            if short < min_edge:
                w, h = w * min_edge / short, h * min_edge / short
            self.size_px[c] = (w, h)
        self.min_edge = min_edge
        self.classes = classes
        # Colours of the person and the room.
        skins = ((236, 200, 170), (198, 150, 110), (141, 95, 65), (90, 60, 45))
        self.skin = skins[int(rng.integers(len(skins)))]
        self.shirt = self._muted(rng, 0.12, 0.35, 0.65)
        self.pants = self._muted(rng, 0.1, 0.2, 0.4)
        self.hair = self._muted(rng, 0.3, 0.08, 0.25)
        self.background = self._background(rng)

    # -- appearance -------------------------------------------------------
    @staticmethod
    def _muted(rng: np.random.Generator, s_max: float, v_lo: float, v_hi: float) -> tuple:
        r, g, b = colorsys.hsv_to_rgb(rng.uniform(), rng.uniform(0, s_max), rng.uniform(v_lo, v_hi))
        return (int(r * 255), int(g * 255), int(b * 255))

    def _background(self, rng: np.random.Generator) -> Image.Image:
        wall = self._muted(rng, 0.15, 0.72, 0.92)
        floor = self._muted(rng, 0.15, 0.45, 0.62)
        im = Image.new("RGB", (self.W, self.H), wall)
        dr = ImageDraw.Draw(im)
        fy = self.floor_top
        dr.rectangle((0, fy, self.W, self.H), fill=floor)
        dr.line((0, fy, self.W, fy), fill=_shade(floor, 0.7), width=max(1, self.H // 90))
        for _ in range(int(rng.integers(0, 4))):  # unannotated decor, desaturated
            w, h = rng.uniform(0.05, 0.2) * self.W, rng.uniform(0.05, 0.25) * self.H
            x, y = rng.uniform(0, self.W - w), rng.uniform(0, max(fy - h, 1))
            c = self._muted(rng, 0.12, 0.5, 0.85)
            if rng.uniform() < 0.5:
                dr.rectangle((x, y, x + w, y + h), outline=_shade(c, 0.7), fill=c)
            else:
                dr.ellipse((x, y, x + w, y + h), outline=_shade(c, 0.7), fill=c)
        return im

    @property
    def floor_top(self) -> float:
        return self.ay - 0.1 * self.ph

    # -- state sampling ----------------------------------------------------
    def _random_slot(self, o: _Obj, side: int | None = None) -> None:
        rng = self.rng
        mount = _SPECS[o.cls].mount
        if mount == "free":
            o.v = ("above", "level", "beneath")[int(rng.choice(3, p=[0.2, 0.5, 0.3]))]
        elif mount == "wall":
            o.v = "above" if rng.uniform() < 0.4 else "level"
        elif mount == "high":
            o.v = "above"
        o.h = ("far", "near", "over")[int(rng.choice(3, p=[0.45, 0.35, 0.2]))]
        o.side = int(side) if side is not None else int(rng.choice([-1, 1]))
        o.front = mount in ("free", "floor") and bool(rng.uniform() < 0.5)
        o.uv, o.uh = float(rng.uniform(0.15, 0.85)), float(rng.uniform(0.15, 0.85))

    def initial_state(self) -> _State:
        rng = self.rng
        facing = int(rng.choice([-1, 1, 0, 2], p=[0.4, 0.4, 0.15, 0.05]))
        objs = []
        for c in self.classes:
            o = _Obj(c, "stand" if c == "floor" else "none")
            self._random_slot(o)
            objs.append(o)
        st = _State(facing, objs)
        for _ in range(int(rng.integers(0, 4))):  # start some videos mid-action
            nxt = self._contact_event(st)
            if nxt is not None:
                st = nxt
        return st

    def _contact_event(self, st: _State) -> _State | None:
        rng = self.rng
        cands = [i for i, o in enumerate(st.objs) if _GRAPH[o.cls].get(o.contact)]
        if not cands:
            return None
        i = cands[int(rng.integers(len(cands)))]
        new = copy.deepcopy(st)
        o = new.objs[i]
        nbrs = _GRAPH[o.cls][o.contact]
        old, o.contact = o.contact, nbrs[int(rng.integers(len(nbrs)))]
        if (o.contact in _HAND_STATES or o.contact == "sit") and new.facing not in (-1, 1):
            new.facing = int(rng.choice([-1, 1]))
        if o.contact == "none" and old != "none":  # let go: it stays near the hand
            self._random_slot(o, side=new.facing if new.facing in (-1, 1) else None)
            if o.h == "over":
                o.h = "near"
            if o.v == "above":
                o.v = "level"
        return new if _feasible(new) else None

    def _move_event(self, st: _State) -> _State | None:
        rng = self.rng
        cands = [
            i
            for i, o in enumerate(st.objs)
            if o.contact == "none" and _SPECS[o.cls].mount != "band"
        ]
        if not cands:
            return None
        new = copy.deepcopy(st)
        o = new.objs[cands[int(rng.integers(len(cands)))]]
        mount = _SPECS[o.cls].mount
        what = int(rng.integers(4))
        if what == 0 and mount in ("free", "wall"):
            opts = ("above", "level", "beneath") if mount == "free" else ("above", "level")
            o.v = str(rng.choice([v for v in opts if v != o.v]))
        elif what == 1:
            o.h = str(rng.choice([h for h in ("far", "near", "over") if h != o.h]))
        elif what == 2:
            o.side = -o.side
        elif mount in ("free", "floor"):
            o.front = not o.front
        else:
            o.h = str(rng.choice([h for h in ("far", "near", "over") if h != o.h]))
        o.uv, o.uh = float(rng.uniform(0.15, 0.85)), float(rng.uniform(0.15, 0.85))
        return new

    def _turn_event(self, st: _State) -> _State | None:
        rng = self.rng
        posture, _ = _posture(st)
        if posture == "lie":
            return None
        hand = [o for o in st.objs if o.contact in _HAND_STATES]
        new = copy.deepcopy(st)
        if posture == "sit" or hand:
            if any(_SPECS[o.cls].mount != "free" for o in hand):
                return None  # hand on fixed furniture: keep facing it
            new.facing = -st.facing
        else:
            opts = [f for f in (-1, 1, 0, 2) if f != st.facing]
            p = np.array([0.45 if f in (-1, 1) else (0.3 if f == 0 else 0.1) for f in opts])
            new.facing = int(rng.choice(opts, p=p / p.sum()))
        return new if _feasible(new) else None

    def propose_event(self, st: _State) -> _State | None:
        kind = int(self.rng.choice(3, p=[0.5, 0.3, 0.2]))
        if kind == 0:
            return self._contact_event(st)
        if kind == 1:
            return self._move_event(st)
        return self._turn_event(st)

    # -- layout ------------------------------------------------------------
    def place(self, st: _State, jitter: np.ndarray, ax_wish: float) -> _Geom | None:
        """Geometry of ``st`` with the anchor as close to ``ax_wish`` as the
        frame allows (everything kept inside the image when possible)."""
        g = self._layout(st, jitter, 0.0)
        if g is None:
            return None
        xs = np.concatenate([g.obj_boxes[:, [0, 2]].ravel(), g.person_box[[0, 2]]])
        band = [k for k, (kind, _) in enumerate(g.obj_kind) if kind == "band"]
        if band:
            keep = np.ones(len(g.obj_kind), dtype=bool)
            keep[band] = False
            xs = np.concatenate([g.obj_boxes[keep][:, [0, 2]].ravel(), g.person_box[[0, 2]]])
        lo, hi = -float(xs.min()), self.W - float(xs.max())
        ax = float(np.clip(ax_wish, lo, hi)) if lo <= hi else 0.5 * (lo + hi)
        return self._finish(self._layout(st, jitter, ax))

    def _finish(self, g: _Geom | None) -> _Geom | None:
        if g is None:
            return None
        lim = np.array([self.W, self.H, self.W, self.H], dtype=np.float64)
        boxes = np.clip(g.obj_boxes, 0.0, lim)
        boxes = np.round(boxes, 2)
        wh = boxes[:, 2:] - boxes[:, :2]
        if (wh < 2.0).any():
            return None
        g.obj_boxes = boxes
        pb = np.clip(g.person_box, 0.0, lim)
        g.person_box = pb.astype(np.float32).astype(np.float64)  # as recorded
        if (g.person_box[2:] - g.person_box[:2] < 2.0).any():
            return None
        if self._hidden(g):
            return None
        return g

    @staticmethod
    def _draw_order(g: _Geom) -> np.ndarray:
        """Object rows in drawing order: objects behind the person, then
        those in front; larger ones first inside each layer."""
        b = g.obj_boxes
        area = (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])
        return np.lexsort((-area, g.obj_front))

    def _hidden(self, g: _Geom) -> bool:
        """Whether some object would be mostly (> 70 % of its box) covered by
        one thing drawn after it (another object, or the torso for objects
        behind the person): such a frame is not used."""
        order = self._draw_order(g)
        b = g.obj_boxes[order]
        torso = self._torso(g.joints, g.facing in (-1, 1), g.lw)
        torso_box = np.array([*torso.min(0), *torso.max(0)])
        later = np.concatenate([b, torso_box[None]])  # (K + 1, 4)
        x1 = np.maximum(b[:, None, 0], later[None, :, 0])
        y1 = np.maximum(b[:, None, 1], later[None, :, 1])
        x2 = np.minimum(b[:, None, 2], later[None, :, 2])
        y2 = np.minimum(b[:, None, 3], later[None, :, 3])
        inter = np.clip(x2 - x1, 0, None) * np.clip(y2 - y1, 0, None)
        area = np.maximum((b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1]), 1e-6)
        k = b.shape[0]
        drawn_after = np.triu(np.ones((k, k), dtype=bool), 1)  # [i, j]: j drawn after i
        torso_after = ~g.obj_front[order]
        after = np.concatenate([drawn_after, torso_after[:, None]], axis=1)
        band = np.array([g.obj_kind[i][0] == "band" for i in order])
        after[band] = False
        return bool(((inter / area[:, None] > 0.7) & after).any())

    def _layout(self, st: _State, jitter: np.ndarray, ax: float) -> _Geom | None:
        ph, ay = self.ph, self.ay
        posture, post_obj = _posture(st)
        f = st.facing
        d = f if f in (-1, 1) else 1
        eff = FACING_FRONT if posture == "lie" else f
        prof = eff in (-1, 1)
        near_left = True if eff != FACING_BACK else False
        # ---- skeleton in local units (feet centre at 0, y up)
        lat_s, lat_h = (0.02, 0.02) if prof else (0.1, 0.065)
        left = -1.0 if eff == FACING_BACK else 1.0  # image-x sign of the person's left side
        if prof:
            left = float(d)  # the near (left) arm is the one on the facing side
        j: dict[str, np.ndarray] = {}

        def put(name: str, x: float, y: float) -> None:
            j[name] = np.array([x, y], dtype=np.float64)

        if posture == "sit":
            s = _SIT_HEIGHT[post_obj.cls] if post_obj is not None else 0.0
            hip_y, sh_y = s + 0.04, s + 0.34
            for side, sg in (("l", left), ("r", -left)):
                put(f"{side}_hip", sg * lat_h, hip_y)
                put(f"{side}_sh", sg * lat_s, sh_y)
                if s > 0.1:
                    put(f"{side}_knee", d * 0.19 + sg * 0.01, s + 0.04)
                    put(f"{side}_ank", d * 0.19 + sg * 0.01, 0.03)
                else:
                    put(f"{side}_knee", d * 0.16 + sg * 0.01, 0.18)
                    put(f"{side}_ank", d * 0.3 + sg * 0.01, 0.03)
            put("head", 0.0, sh_y + 0.115)
        else:
            for side, sg in (("l", left), ("r", -left)):
                put(f"{side}_hip", sg * lat_h, 0.5)
                put(f"{side}_sh", sg * lat_s, 0.8)
                put(f"{side}_knee", sg * lat_h, 0.27)
                put(f"{side}_ank", sg * lat_h, 0.03)
            put("head", 0.0, 0.915)
        for side, sg in (("l", left), ("r", -left)):
            out = 0.0 if prof else sg * 0.03
            j[f"{side}_el"] = j[f"{side}_sh"] + np.array([out, -0.17])
            j[f"{side}_wr"] = j[f"{side}_el"] + np.array([out + (d * 0.03 if prof else 0.0), -0.15])
        if posture == "lean":
            ang = -d * math.radians(10)
            for k in j:
                j[k] = _rot(j[k], ang, np.zeros(2))
        elif posture == "lie":
            surf = _LIE_HEIGHT[post_obj.cls] if post_obj is not None else 0.0
            pivot = 0.5 * (j["l_hip"] + j["r_hip"])
            for k in j:
                j[k] = _rot(j[k], d * math.pi / 2, pivot)
            low = min(v[1] for v in j.values())
            shift = np.array([-pivot[0], surf + 0.03 - low])
            for k in j:
                j[k] = j[k] + shift
        sc = 0.5 * (j["l_sh"] + j["r_sh"])
        hc = j["head"]
        front_arm = "l" if (left * d > 0) else "r"  # arm on the facing side
        back_arm = "r" if front_arm == "l" else "l"

        def arm(which: str, target: np.ndarray) -> None:
            j[f"{which}_el"], j[f"{which}_wr"] = _ik(j[f"{which}_sh"], target)

        # ---- objects tied to the body (local units), free ones later
        n = len(st.objs)
        local: dict[int, tuple[float, float, float, float]] = {}  # cx, cy, w, h
        kinds: list[tuple[str, Any]] = [("shape", None)] * n
        overlays: list[tuple[int, str, Any]] = []
        front = np.zeros(n, dtype=bool)
        for i, o in enumerate(st.objs):
            w, h = (v / ph for v in self.size_px[o.cls])
            mount = _SPECS[o.cls].mount
            c = o.contact
            if c in ("none", "stand") or (c in ("sit", "lie") and o.cls == "floor"):
                continue
            front[i] = True
            if c in ("touch", "lean") or (c in ("hold", "twist") and mount in ("floor", "knob")):
                if mount == "floor":
                    reach = _REACH + 0.01 if c == "lean" else _REACH
                    top = h
                    if c == "hold":
                        yt = h - 0.02
                    elif c == "lean":
                        yt = min(max(sc[1] - 0.05, 0.02), top - 0.01)
                    else:
                        yt = min(max(sc[1] - 0.2, 0.02), top - 0.01)
                    yt = max(yt, sc[1] - 0.97 * reach)  # within reach
                    if yt > top - 0.005:
                        return None  # too low to reach from here
                    dy = sc[1] - yt
                    if abs(dy) >= reach:
                        return None  # out of the arm's reach (above or below)
                    dx = max(math.sqrt(reach**2 - dy**2), 0.05)
                    edge = sc[0] + d * dx
                    hand = np.array([edge + d * 0.01, yt])
                    local[i] = (edge + d * w / 2, h / 2, w, h)
                    front[i] = o.front if c == "touch" else c == "hold"
                elif mount == "knob":
                    dy = sc[1] - 0.5
                    dx = max(math.sqrt(max(_REACH**2 - dy**2, 0.0)), 0.05)
                    if c == "twist":
                        hand = np.array([sc[0] + d * dx, 0.5])
                        local[i] = (hand[0], 0.5, w, h)
                        overlays.append((i, "twist", None))
                    else:
                        hand = np.array([sc[0] + d * dx, 0.5])
                        local[i] = (hand[0] + d * (w / 2 - 0.01), 0.5, w, h)
                    front[i] = False
                else:  # free or wall object brought within reach
                    dyy = -0.22 + 0.14 * o.uv
                    hand = sc + np.array([d * 0.24, dyy])
                    local[i] = (hand[0] + d * (w / 2 - 0.01), hand[1], w, h)
                    front[i] = mount == "free" and o.front
                arm(front_arm, hand)
            elif c == "hold":
                hand = sc + np.array([d * 0.19, -0.26])
                local[i] = (hand[0], hand[1], w, h)
                arm(front_arm, hand)
            elif c == "hold2":
                cc = sc + np.array([d * 0.17, -0.2])
                off = min(w / 2, 0.08)
                local[i] = (cc[0], cc[1], w, h)
                arm(front_arm, cc + np.array([d * off, 0.0]))
                arm(back_arm, cc - np.array([d * off, 0.0]))
            elif c == "carry":
                cc = sc + np.array([d * (0.05 + w / 2), -0.18])
                local[i] = (cc[0], cc[1], w, h)
                arm(front_arm, np.array([sc[0] + d * min(0.05 + w * 0.9, 0.26), cc[1]]))
                arm(back_arm, np.array([sc[0] + d * 0.08, cc[1] - 0.9 * min(h / 2, 0.1)]))
            elif c in ("drink", "eat"):
                cc = hc + np.array([d * (_HEAD_R + w / 2), -0.035])
                local[i] = (cc[0], cc[1], w, h)
                arm(front_arm, cc + np.array([0.0, -h * 0.3]))
            elif c == "write":
                cc = sc + np.array([d * 0.18, -0.26])
                local[i] = (cc[0], cc[1], w, h)
                arm(back_arm, cc - np.array([d * w * 0.4, 0.0]))
                pen = cc + np.array([d * 0.02, h * 0.1])
                arm(front_arm, pen)
                overlays.append((i, "pen", front_arm))
            elif c == "wipe":
                hand = sc + np.array([d * 0.32, -0.05])
                local[i] = (hand[0] + d * w * 0.25, hand[1], w, h)
                arm(front_arm, hand)
            elif c == "twist":  # medicine: both hands on it, cap turned
                cc = sc + np.array([d * 0.18, -0.2])
                local[i] = (cc[0], cc[1], w, h)
                arm(front_arm, cc + np.array([0.0, 0.4 * h]))
                arm(back_arm, cc - np.array([0.0, 0.4 * h]))
                overlays.append((i, "twist", None))
            elif c == "wear" and o.cls == "shoe":
                kinds[i] = ("shoes", None)
            elif c == "wear":
                kinds[i] = ("shirt", None)
            elif c == "back":
                cc = sc + np.array([-d * (0.05 + w / 2 - 0.01), -0.12])
                local[i] = (cc[0], cc[1], w, h)
                front[i] = False
            elif c == "cover":
                kinds[i] = ("cover", None)
            elif c == "sit":
                hip = 0.5 * (j["l_hip"] + j["r_hip"])
                cx = hip[0] - d * (0.04 if o.cls == "chair" else w * 0.25)
                local[i] = (cx, h / 2, w, h)
                front[i] = False
            elif c == "lie":
                hip = 0.5 * (j["l_hip"] + j["r_hip"])
                local[i] = (hip[0] + (o.uh - 0.5) * 0.2, h / 2, w, h)
                front[i] = False

        # ---- to image coordinates
        def img(p: np.ndarray) -> np.ndarray:
            return np.array([ax + p[0] * ph, ay - p[1] * ph])

        J = {k: img(v) for k, v in j.items()}
        head_r = _HEAD_R * ph
        lw = max(2.0, 0.045 * ph)
        pts = [J[k] for k in J]
        rads = [lw / 2] * len(pts)
        pts.append(J["head"])
        rads.append(head_r)
        if eff in (-1, 1):
            pts.append(J["head"] + np.array([d * 1.25 * head_r, 0.15 * head_r]))
            rads.append(0.0)
        for s_ in ("l", "r"):  # feet
            pts.append(J[f"{s_}_ank"] + np.array([d * 0.05 * ph if prof else 0.0, 0.0]))
            rads.append(lw / 2)
        P = np.array(pts)
        R = np.array(rads)
        person_box = np.array(
            [(P[:, 0] - R).min(), (P[:, 1] - R).min(), (P[:, 0] + R).max(), (P[:, 1] + R).max()]
        )

        boxes = np.zeros((n, 4))
        ref = np.array([ax - _REF_HALF_W * ph, ay - ph, ax + _REF_HALF_W * ph, ay])
        for i, o in enumerate(st.objs):
            w_px, h_px = self.size_px[o.cls]
            kind = kinds[i][0]
            if i in local:
                cx, cy, w, h = local[i]
                c_img = img(np.array([cx, cy]))
                boxes[i] = [
                    c_img[0] - w * ph / 2, c_img[1] - h * ph / 2,
                    c_img[0] + w * ph / 2, c_img[1] + h * ph / 2,
                ]  # fmt: skip
            elif kind == "shirt":
                poly = self._torso(J, prof, lw, grow=0.012 * ph)
                kinds[i] = ("shirt", poly)
                boxes[i] = [*poly.min(0), *poly.max(0)]
                front[i] = True
            elif kind == "shoes":
                sw = 0.09 * ph
                sh = max(0.05 * ph, self.min_edge)
                feet = []
                for s_ in ("l", "r"):
                    a = J[f"{s_}_ank"] + np.array([d * 0.025 * ph if prof else 0.0, 0.0])
                    feet.append([a[0] - sw / 2, a[1] - sh / 2, a[0] + sw / 2, a[1] + sh / 2])
                fb = np.array(feet)
                kinds[i] = ("shoes", fb)
                boxes[i] = [*fb[:, :2].min(0), *fb[:, 2:].max(0)]
                front[i] = True
            elif kind == "cover":
                lower = np.array([J[k] for k in ("l_hip", "r_hip", "l_knee", "r_knee")])
                g = 0.06 * ph
                boxes[i] = [*(lower.min(0) - g), *(lower.max(0) + g)]
                front[i] = True
            elif _SPECS[o.cls].mount == "band":
                boxes[i] = [0.0, self.floor_top, float(self.W), float(self.H)]
                kinds[i] = ("band", None)
                front[i] = False
            else:
                b = self._free_box(o, jitter[i], ref, w_px, h_px)
                if b is None:
                    return None
                boxes[i] = b
                front[i] = o.front if _SPECS[o.cls].mount in ("free", "floor") else False
        return _Geom(
            joints=J,
            near_left=near_left,
            facing=eff,
            d=d,
            head=J["head"],
            head_r=head_r,
            lw=lw,
            person_box=person_box,
            obj_boxes=boxes,
            obj_front=front,
            obj_kind=kinds,
            overlays=overlays,
            ax=ax,
        )

    @staticmethod
    def _torso(J: Mapping[str, np.ndarray], prof: bool, lw: float, grow: float = 0.0) -> np.ndarray:
        sh = 0.5 * (J["l_sh"] + J["r_sh"])
        hip = 0.5 * (J["l_hip"] + J["r_hip"])
        axis = sh - hip
        axis = axis / max(float(np.hypot(*axis)), 1e-6)
        perp = np.array([-axis[1], axis[0]])
        ph_units = float(np.hypot(*(sh - hip))) / 0.3
        ws = (0.055 if prof else 0.1) * ph_units + grow
        wh = (0.05 if prof else 0.075) * ph_units + grow
        top = sh + axis * (lw / 2 + grow)
        return np.array([top + perp * ws, top - perp * ws, hip - perp * wh, hip + perp * wh])

    def _free_box(
        self, o: _Obj, jit: np.ndarray, ref: np.ndarray, w: float, h: float
    ) -> np.ndarray | None:
        """Box of an object that nobody touches, from its slot relative to
        the reference (standing) person box ``ref``; None if infeasible."""
        H = self.H
        uv = float(np.clip(o.uv + jit[0], 0.0, 1.0))
        uh = float(np.clip(o.uh + jit[1], 0.0, 1.0))
        rx1, ry1, rx2, ry2 = ref
        hr, wr = ry2 - ry1, rx2 - rx1
        m = 0.06 * hr
        mount = _SPECS[o.cls].mount
        if mount == "floor":
            cy = self.ay + uv * 0.04 * self.ph - h / 2
        elif mount == "knob":
            cy = self.ay - 0.5 * self.ph
        else:
            if o.v == "above":
                lo, hi = h / 2, ry1 + _VERT_FRAC * hr - m
            elif o.v == "beneath":
                lo, hi = max(ry2 - _VERT_FRAC * hr + m, h / 2), H - h / 2
            else:
                lo, hi = (
                    max(ry1 + _VERT_FRAC * hr + m, h / 2),
                    min(ry2 - _VERT_FRAC * hr - m, H - h / 2),
                )
            if hi < lo:
                return None
            cy = lo + uv * (hi - lo)
        if o.h == "far":
            g = (0.04 + 0.26 * uh) * hr
            cx = rx2 + g + w / 2 if o.side > 0 else rx1 - g - w / 2
        elif o.h == "near":
            ov = min(w, wr) * (0.38 + 0.24 * uh)
            cx = rx2 - ov + w / 2 if o.side > 0 else rx1 + ov - w / 2
        else:
            cx = rx1 + w / 2 + uh * (wr - w) if w <= wr else rx2 - w / 2 + uh * (w - wr)
        return np.array([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2])

    # -- labels ------------------------------------------------------------
    def labels(self, st: _State, g: _Geom) -> tuple:
        """Per object: (attention index, spatial tuple, contact state)."""
        spat = spatial_relations(g.obj_boxes, g.person_box, g.obj_front)
        # The floor spans the frame: never looked at (judged at the head itself).
        band = np.array([kind == "band" for kind, _ in g.obj_kind], dtype=bool)
        head = np.array([g.head[0], g.head[1], g.head[0], g.head[1]])
        att_boxes = np.where(band[:, None], head[None, :], g.obj_boxes)
        att = attention_relations(att_boxes, float(g.head[0]), g.head_r, g.facing)
        return tuple(
            (int(att[i]), tuple(np.flatnonzero(spat[i]).tolist()), CONTACT_LABELS[o.contact])
            for i, o in enumerate(st.objs)
        )

    # -- rendering ---------------------------------------------------------
    def render(self, g: _Geom, classes: Sequence[str], visible: np.ndarray) -> Image.Image:
        im = self.background.copy()
        dr = ImageDraw.Draw(im)
        order = self._draw_order(g)
        for i in order:
            if visible[i] and not g.obj_front[i]:
                self._draw_object(dr, g, int(i), classes[i])
        self._draw_person(dr, g)
        for i in order:
            if visible[i] and g.obj_front[i]:
                self._draw_object(dr, g, int(i), classes[i])
        for i, kind, data in g.overlays:
            if not visible[i]:
                continue
            x1, y1, x2, y2 = g.obj_boxes[i]
            if kind == "pen":
                wr = g.joints[f"{data}_wr"]
                dr.line(
                    (wr[0], wr[1], wr[0] + g.d * 0.05 * self.ph, wr[1] - 0.06 * self.ph),
                    fill=(15, 15, 15),
                    width=max(1, int(g.lw / 2)),
                )
            else:  # twist marker: a slanted bar across the object's top
                dr.line(
                    (x1, y1 + 0.35 * (y2 - y1), x2, y1),
                    fill=(10, 10, 10),
                    width=max(1, int(g.lw / 2)),
                )
        return im

    def _draw_object(self, dr: ImageDraw.ImageDraw, g: _Geom, i: int, cls: str) -> None:
        kind, data = g.obj_kind[i]
        box = g.obj_boxes[i]
        colour, _, _ = class_style(cls)
        if kind == "band":
            dr.rectangle(tuple(box), fill=colour)
            step = max(4, int(0.08 * self.H))
            for x in range(0, self.W, step):
                dr.line((x, box[1], x - step, box[3]), fill=_shade(colour, 0.7), width=1)
        elif kind == "shoes":
            for fb in data:
                dr.ellipse(tuple(fb), fill=colour, outline=_shade(colour, 0.5))
        elif kind == "shirt":
            dr.polygon([tuple(p) for p in data], fill=colour, outline=_shade(colour, 0.5))
            r = 0.2 * min(box[2] - box[0], box[3] - box[1])
            cx, cy = 0.5 * (box[0] + box[2]), 0.5 * (box[1] + box[3])
            _, _, mark = class_style(cls)
            if mark != "none":
                dr.ellipse((cx - r, cy - r, cx + r, cy + r), fill=_shade(colour, 0.6))
        else:
            _draw_shape(dr, box, cls)

    def _draw_person(self, dr: ImageDraw.ImageDraw, g: _Geom) -> None:
        J = g.joints
        lw = int(round(g.lw))
        prof = g.facing in (-1, 1)
        near = "l" if g.near_left else "r"
        far = "r" if near == "l" else "l"

        def limb(a: str, b: str, colour: tuple) -> None:
            pa, pb = J[a], J[b]
            dr.line((pa[0], pa[1], pb[0], pb[1]), fill=colour, width=lw)
            for p in (pa, pb):
                dr.ellipse(
                    (p[0] - lw / 2, p[1] - lw / 2, p[0] + lw / 2, p[1] + lw / 2), fill=colour
                )

        def leg(s_: str, f: float) -> None:
            limb(f"{s_}_hip", f"{s_}_knee", _shade(self.pants, f))
            limb(f"{s_}_knee", f"{s_}_ank", _shade(self.pants, f))
            a = J[f"{s_}_ank"]
            toe = a + np.array([g.d * 0.05 * self.ph if prof else 0.0, 0.0])
            dr.line((a[0], a[1], toe[0], toe[1]), fill=(40, 35, 30), width=lw)

        def arm(s_: str, f: float) -> None:
            limb(f"{s_}_sh", f"{s_}_el", _shade(self.shirt, f))
            limb(f"{s_}_el", f"{s_}_wr", _shade(self.skin, f))
            w = J[f"{s_}_wr"]
            r = 0.6 * g.lw
            dr.ellipse((w[0] - r, w[1] - r, w[0] + r, w[1] + r), fill=_shade(self.skin, f))

        shade_far = 0.75 if prof else 1.0
        leg(far, shade_far)
        if prof:
            arm(far, shade_far)
        leg(near, 1.0)
        torso = self._torso(J, prof, g.lw)
        dr.polygon([tuple(p) for p in torso], fill=self.shirt, outline=_shade(self.shirt, 0.6))
        if not prof:
            arm(far, 1.0)
        arm(near, 1.0)
        # head and face
        hx, hy = g.head
        r = g.head_r
        dr.ellipse((hx - r, hy - r, hx + r, hy + r), fill=self.skin, outline=_shade(self.skin, 0.7))
        if g.facing == FACING_BACK:
            dr.ellipse((hx - r, hy - r, hx + r, hy + r), fill=self.hair)
            return
        dr.chord((hx - r, hy - r, hx + r, hy + r), 180, 360, fill=self.hair)
        e = max(1.0, 0.14 * r)
        if prof:
            d = g.d
            nose = [
                (hx + d * 0.85 * r, hy - 0.05 * r),
                (hx + d * 1.25 * r, hy + 0.15 * r),
                (hx + d * 0.85 * r, hy + 0.3 * r),
            ]
            dr.polygon(nose, fill=self.skin, outline=_shade(self.skin, 0.6))
            ex, ey = hx + d * 0.45 * r, hy + 0.1 * r
            dr.ellipse((ex - e, ey - e, ex + e, ey + e), fill=(20, 20, 20))
        else:
            for sx in (-0.35, 0.35):
                ex, ey = hx + sx * r, hy + 0.1 * r
                dr.ellipse((ex - e, ey - e, ex + e, ey + e), fill=(20, 20, 20))
            dr.line(
                (hx - 0.25 * r, hy + 0.5 * r, hx + 0.25 * r, hy + 0.5 * r),
                fill=(120, 40, 40),
                width=max(1, int(e)),
            )

    def keypoints(self, g: _Geom) -> tuple[np.ndarray, np.ndarray]:
        """COCO keypoints (17, 3) ``x, y, score`` and logits (17,) of the figure."""
        J = g.joints
        r = g.head_r
        hx, hy = g.head
        prof = g.facing in (-1, 1)
        kp = np.zeros((17, 3), dtype=np.float32)
        lr = {"l": 1.0, "r": -1.0}
        near = "l" if g.near_left else "r"
        for k, name in enumerate(_KP_NAMES):
            if name == "nose":
                if prof:
                    x, y, s = hx + g.d * 1.2 * r, hy + 0.15 * r, 0.95
                else:
                    x, y, s = hx, hy + 0.25 * r, (0.05 if g.facing == FACING_BACK else 0.95)
            elif name.endswith("_eye") or name.endswith("_ear"):
                side = name[0]
                if prof:
                    if name.endswith("_eye"):
                        x, y = hx + g.d * 0.45 * r, hy + 0.1 * r
                    else:
                        x, y = hx - g.d * 0.2 * r, hy
                    s = 0.9 if side == near else 0.3
                else:
                    sg = lr[side] * (1.0 if g.near_left else -1.0)
                    x = hx + sg * (0.35 if name.endswith("_eye") else 1.0) * r
                    y = hy + (0.1 * r if name.endswith("_eye") else 0.0)
                    s = 0.05 if (g.facing == FACING_BACK and name.endswith("_eye")) else 0.9
            else:
                x, y = J[name]
                s = 0.95 if (not prof or name[0] == near) else 0.6
            kp[k] = (x, y, s)
        logits = np.log(kp[:, 2] / (1.0 - kp[:, 2] + 1e-6)).astype(np.float32)
        return kp, logits


# --------------------------------------------------------------------------
# Video generation

_ID_CHARS = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ"


@dataclass
class _VideoOut:
    video: str
    split: str
    size: tuple[int, int]
    keys: list[str]
    person: list[dict[str, Any]]
    objects: list[list[dict[str, Any]]]
    meta: dict[str, Any]
    scene: _VideoScene
    geoms: list[_Geom]
    visible: list[np.ndarray]


def _choose_classes(rng: np.random.Generator, k: int) -> list[str]:
    names = list(OBJECT_CLASSES[2:])
    out: list[str] = []
    while len(out) < k:
        c = names[int(rng.integers(len(names)))]
        if c in out or (c in _POSTURE_CLASSES and any(x in _POSTURE_CLASSES for x in out)):
            continue
        out.append(c)
    return out


def _generate_video(cfg: SyntheticConfig, index: int, video: str, split: str) -> _VideoOut:
    rng = np.random.default_rng([cfg.seed, index, 0x5A6])
    portrait = bool(rng.uniform() < cfg.portrait_rate)
    size = (cfg.height, cfg.width) if portrait else (cfg.width, cfg.height)
    short = bool(rng.uniform() < cfg.short_video_rate)
    small = bool(rng.uniform() < cfg.small_box_rate)
    n_frames = (
        int(rng.integers(1, 3)) if short else int(rng.integers(cfg.min_frames, cfg.max_frames + 1))
    )
    static = bool(rng.uniform() < cfg.static_fraction)
    rate = 0.0 if static else float(rng.uniform(*cfg.change_rate))
    k = int(rng.integers(cfg.min_objects, cfg.max_objects + 1))
    classes = _choose_classes(rng, k)
    scene = _VideoScene(rng, cfg, size, classes, small)
    W = size[0]

    st, g = None, None
    for _attempt in range(200):
        st = scene.initial_state()
        g = scene.place(st, np.zeros((len(classes), 2)), float(rng.uniform(0.3, 0.7) * W))
        if g is not None:
            break
        if _attempt == 100 and len(classes) > 1:  # crowded: fewer objects
            classes = classes[:1]
            scene = _VideoScene(rng, cfg, size, classes, small)
    if g is None or st is None:
        raise RuntimeError(f"synthetic: no feasible scene for video {video} ({classes})")
    labels = scene.labels(st, g)
    geoms, states, label_seq = [g], [st], [labels]
    events = [False]
    jit_sd = 0.06
    # Exactly round(rate * (F - 1)) event frames (stochastic rounding), at
    # random positions, so that the measured degree of change tracks ``rate``.
    n_events = int(math.floor(rate * max(n_frames - 1, 0) + rng.uniform()))
    event_frames = np.zeros(n_frames, dtype=bool)
    if n_events:
        event_frames[1 + rng.permutation(n_frames - 1)[:n_events]] = True
    for _t in range(1, n_frames):
        ax_wish = g.ax + float(rng.normal(0.0, cfg.motion * W))
        jit = rng.normal(0.0, jit_sd, size=(len(classes), 2))
        new_g, new_st, new_labels, event = None, st, labels, False
        if event_frames[_t]:
            for _try in range(30):
                cand = scene.propose_event(st)
                if cand is None:
                    continue
                cg = scene.place(cand, jit, ax_wish)
                if cg is None:
                    continue
                cl = scene.labels(cand, cg)
                if cl != labels:
                    new_g, new_st, new_labels, event = cg, cand, cl, True
                    break
        if new_g is None:
            cg = scene.place(st, jit, ax_wish)
            if cg is not None and scene.labels(st, cg) == labels:
                new_g = cg
            else:
                new_g = g  # same geometry as the previous frame
        g, st, labels = new_g, new_st, new_labels
        geoms.append(g)
        states.append(st)
        label_seq.append(labels)
        events.append(event)

    # Frame numbers: increasing, non-contiguous (AG's sampled key frames).
    steps = rng.integers(6, 45, size=n_frames)
    numbers = int(rng.integers(1, 60)) + np.concatenate([[0], np.cumsum(steps[1:])])
    keys = [f"{video}/{int(num):06d}.png" for num in numbers]
    person_recs, object_recs, visibles = [], [], []
    n_noperson = n_invisible = 0
    for t, key in enumerate(keys):
        g, st = geoms[t], states[t]
        frame_num = key.split("/")[1][:-4]
        has_person = not (rng.uniform() < cfg.no_person_rate)
        if has_person:
            kp, logits = scene.keypoints(g)
            person_recs.append(
                {
                    "bbox": g.person_box.astype(np.float32).reshape(1, 4),
                    "bbox_score": np.array([rng.uniform(0.8, 1.0)], dtype=np.float32),
                    "bbox_size": (int(size[0]), int(size[1])),
                    "bbox_mode": "xyxy",
                    "keypoints": kp[None],
                    "keypoints_logits": logits[None],
                }
            )
        else:
            n_noperson += 1
            person_recs.append(
                {
                    "bbox": np.zeros((0, 4), dtype=np.float32),
                    "bbox_score": np.zeros((0,), dtype=np.float32),
                    "bbox_size": (int(size[0]), int(size[1])),
                    "bbox_mode": "xyxy",
                    "keypoints": np.zeros((0, 17, 3), dtype=np.float32),
                    "keypoints_logits": np.zeros((0, 17), dtype=np.float32),
                }
            )
        visible = rng.uniform(size=len(classes)) >= cfg.invisible_rate
        n_invisible += int((~visible).sum())
        visibles.append(visible)
        recs = []
        for i, o in enumerate(st.objs):
            meta = {"tag": f"{video}/{o.cls}/{frame_num}", "set": split}
            if not visible[i]:
                recs.append(
                    {
                        "class": o.cls,
                        "bbox": None,
                        "attention_relationship": None,
                        "spatial_relationship": None,
                        "contacting_relationship": None,
                        "metadata": meta,
                        "visible": False,
                    }
                )
                continue
            att, spat, contact = label_seq[t][i]
            x1, y1, x2, y2 = (float(v) for v in g.obj_boxes[i])
            recs.append(
                {
                    "class": o.cls,
                    "bbox": (x1, y1, round(x2 - x1, 2), round(y2 - y1, 2)),
                    "attention_relationship": [ATTENTION.predicates[att]],
                    "spatial_relationship": [SPATIAL.predicates[s] for s in spat],
                    "contacting_relationship": sorted(contact, key=_CONTACT_ORDER.__getitem__),
                    "metadata": meta,
                    "visible": True,
                }
            )
        object_recs.append(recs)

    changed = relation_changes(object_recs)
    meta = {
        "video": video,
        "split": split,
        "frames": n_frames,
        "size": list(size),
        "objects": classes,
        "change_rate": rate,
        "static": static,
        "change_degree": float(changed.mean()) if changed.size else 0.0,
        "changed_frames": [keys[t + 1] for t in np.flatnonzero(changed)],
        "events": int(sum(events)),
        "short": short,
        "small": small,
        "portrait": portrait,
        "no_person_frames": n_noperson,
        "invisible_objects": n_invisible,
    }
    return _VideoOut(
        video, split, size, keys, person_recs, object_recs, meta, scene, geoms, visibles
    )


def _video_ids(rng: np.random.Generator, n: int) -> list[str]:
    ids: set[str] = set()
    out: list[str] = []
    while len(out) < n:
        vid = "".join(_ID_CHARS[int(i)] for i in rng.integers(0, len(_ID_CHARS), size=5))
        if vid not in ids:
            ids.add(vid)
            out.append(vid)
    return out


def make_synthetic(
    out: str | os.PathLike[str],
    cfg: SyntheticConfig | None = None,
    *,
    progress: bool = True,
    overwrite: bool = False,
) -> SyntheticSummary:
    """Generate a synthetic Action Genome dataset at ``out``.

    Writes ``out/frames/VIDEO.mp4/FRAME.png`` (unless ``cfg.images`` is
    False), ``out/annotations/`` in the exact release layout (via
    :func:`tr2_core.data.release_writer.write_annotations`) and
    ``out/annotations/synthetic_meta.json``.

    Args:
        out: the dataset root to create.
        cfg: generation parameters (default :class:`SyntheticConfig()`).
        progress: show a tqdm progress bar.
        overwrite: replace an earlier synthetic dataset at ``out``; a folder
            with annotations that this generator did not write is never
            replaced.

    Raises:
        ConfigError: ``out`` already holds annotations (and ``overwrite`` is
            False or they are not synthetic).
    """
    from tqdm import tqdm

    cfg = cfg or SyntheticConfig()
    root = Path(out)
    ann = root / "annotations"
    if ann.exists() and any(ann.iterdir()):
        if not overwrite:
            raise ConfigError(f"{root}: already holds annotations/ (use overwrite / --force)")
        if not (ann / META_FILE).is_file():
            raise ConfigError(
                f"{root}: annotations/ was not written by the synthetic generator; "
                "refusing to replace it"
            )
        shutil.rmtree(ann)
        if (root / "frames").is_dir():
            shutil.rmtree(root / "frames")
    t0 = time.perf_counter()
    master = np.random.default_rng([cfg.seed, 0x7E2])
    ids = sorted(_video_ids(master, cfg.videos))
    n_test = int(round(cfg.test_fraction * cfg.videos))
    if 0.0 < cfg.test_fraction < 1.0 and cfg.videos >= 2:
        n_test = min(max(n_test, 1), cfg.videos - 1)
    test_rows = set(master.permutation(cfg.videos)[:n_test].tolist())

    person: dict[str, dict[str, Any]] = {}
    objects: dict[str, list[dict[str, Any]]] = {}
    metas = []
    n_images = 0
    bar = tqdm(total=cfg.videos, desc="synthetic AG", unit="video", disable=not progress)
    for index, vid in enumerate(ids):
        video = f"{vid}.mp4"
        v = _generate_video(cfg, index, video, "test" if index in test_rows else "train")
        for t, key in enumerate(v.keys):
            person[key] = v.person[t]
            objects[key] = v.objects[t]
        if cfg.images:
            folder = root / "frames" / video
            folder.mkdir(parents=True, exist_ok=True)
            for t, key in enumerate(v.keys):
                im = v.scene.render(v.geoms[t], [o["class"] for o in v.objects[t]], v.visible[t])
                im.save(root / "frames" / key, format="PNG", compress_level=cfg.png_compress_level)
                n_images += 1
        metas.append(v.meta)
        bar.update(1)
    bar.close()
    write_annotations(root, person, objects, list(person))
    degrees = [m["change_degree"] for m in metas if m["frames"] > 1]
    meta = {
        "generator": "tr2_core.data.synthetic",
        "format_version": 1,
        "seed": cfg.seed,
        "config": asdict(cfg),
        "videos": metas,
    }
    (ann / META_FILE).write_text(json.dumps(meta, indent=1) + "\n")
    return SyntheticSummary(
        root=root,
        videos=cfg.videos,
        frames=len(person),
        train_videos=cfg.videos - len(test_rows),
        test_videos=len(test_rows),
        images=n_images,
        seconds=time.perf_counter() - t0,
        mean_change_degree=float(np.mean(degrees)) if degrees else 0.0,
        video_ids=tuple(f"{vid}.mp4" for vid in ids),
    )
