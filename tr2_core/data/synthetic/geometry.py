"""Drawn geometry shared by poses, layout, labels and rendering.

:class:`Stage` is what stays fixed in a video (frame size, floor line,
person scale, object sizes in pixels); :class:`FrameGeometry` is one frame's
drawn geometry in image pixels (y down).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from tr2_core.data.synthetic.state import SPECS

# Body proportions (person heights).
HEAD_R = 0.075
ARM_A = 0.17  # upper arm
ARM_B = 0.17  # forearm
REACH = 0.32  # comfortable hand distance from the shoulder
REF_HALF_W = 0.1  # half width of the reference (standing) person box


@dataclass
class FrameGeometry:
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


@dataclass(frozen=True)
class Stage:
    """The fixed frame of one video.

    Attributes:
        W, H: frame size in pixels.
        ay: y of the person's feet (anchor) in pixels.
        ph: person height in pixels.
        size_px: per object class, its (w, h) in pixels.
        min_edge: the shortest object edge in pixels.
        small: a distant scene (small boxes allowed).
    """

    W: int
    H: int
    ay: float
    ph: float
    size_px: dict[str, tuple[float, float]]
    min_edge: float
    small: bool

    @property
    def floor_top(self) -> float:
        """y of the floor's far edge."""
        return self.ay - 0.1 * self.ph


def make_stage(
    rng: np.random.Generator, size: tuple[int, int], classes: list[str], small: bool
) -> Stage:
    """Draw a video's stage (2 draws from ``rng``: anchor height, scale)."""
    W, H = size
    base = min(H, 1.5 * W)  # person height scale (portrait: taller)
    ay = float(H * rng.uniform(0.86, 0.94))
    scale = rng.uniform(0.28, 0.36) if small else rng.uniform(0.55, 0.72)
    ph = float(min(scale * base, ay - 0.03 * H))
    min_edge = 5.0 if small or 17 > 0.25 * min(W, H) else 17.0
    size_px: dict[str, tuple[float, float]] = {}
    for c in classes:
        w, h = (v * ph for v in SPECS[c].size)
        short = min(w, h)
        if short < min_edge:
            w, h = w * min_edge / short, h * min_edge / short
        size_px[c] = (w, h)
    return Stage(W, H, ay, ph, size_px, min_edge, small)
