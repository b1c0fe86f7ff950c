"""Drawing a frame: the room, the objects in their class styles, the person.

Every AG object class has its own colour, shape and inner mark
(:func:`class_style`); the person's and the room's colours are drawn once per
video (:func:`make_appearance`).
"""

from __future__ import annotations

import colorsys
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageDraw

from tr2_core.data.synthetic.geometry import FrameGeometry, Stage
from tr2_core.data.synthetic.layout import draw_order
from tr2_core.data.synthetic.poses import torso_polygon
from tr2_core.data.synthetic.state import FACING_BACK
from tr2_core.vocab import OBJECT_INDEX

RGB = tuple[int, int, int]

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


def shade(c: tuple[int, int, int], f: float) -> tuple[int, int, int]:
    return (int(c[0] * f), int(c[1] * f), int(c[2] * f))


def _draw_shape(dr: ImageDraw.ImageDraw, box: Sequence[float], cls: str) -> None:
    colour, shape, mark = class_style(cls)
    x1, y1, x2, y2 = (float(v) for v in box)
    w, h = x2 - x1, y2 - y1
    dark = shade(colour, 0.55)
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


@dataclass(frozen=True)
class Appearance:
    """Colours of one video: the person's skin, shirt, trousers and hair,
    and the room (wall, floor, unannotated decor) as a background image."""

    skin: RGB
    shirt: RGB
    pants: RGB
    hair: RGB
    background: Image.Image


def _muted(rng: np.random.Generator, s_max: float, v_lo: float, v_hi: float) -> RGB:
    r, g, b = colorsys.hsv_to_rgb(rng.uniform(), rng.uniform(0, s_max), rng.uniform(v_lo, v_hi))
    return (int(r * 255), int(g * 255), int(b * 255))


def _background(rng: np.random.Generator, stage: Stage) -> Image.Image:
    W, H = stage.W, stage.H
    wall = _muted(rng, 0.15, 0.72, 0.92)
    floor = _muted(rng, 0.15, 0.45, 0.62)
    im = Image.new("RGB", (W, H), wall)
    dr = ImageDraw.Draw(im)
    fy = stage.floor_top
    dr.rectangle((0, fy, W, H), fill=floor)
    dr.line((0, fy, W, fy), fill=shade(floor, 0.7), width=max(1, H // 90))
    for _ in range(int(rng.integers(0, 4))):  # unannotated decor, desaturated
        w, h = rng.uniform(0.05, 0.2) * W, rng.uniform(0.05, 0.25) * H
        x, y = rng.uniform(0, W - w), rng.uniform(0, max(fy - h, 1))
        c = _muted(rng, 0.12, 0.5, 0.85)
        if rng.uniform() < 0.5:
            dr.rectangle((x, y, x + w, y + h), outline=shade(c, 0.7), fill=c)
        else:
            dr.ellipse((x, y, x + w, y + h), outline=shade(c, 0.7), fill=c)
    return im


def make_appearance(rng: np.random.Generator, stage: Stage) -> Appearance:
    """Draw a video's colours and background (in this order from ``rng``)."""
    skins = ((236, 200, 170), (198, 150, 110), (141, 95, 65), (90, 60, 45))
    skin = skins[int(rng.integers(len(skins)))]
    shirt = _muted(rng, 0.12, 0.35, 0.65)
    pants = _muted(rng, 0.1, 0.2, 0.4)
    hair = _muted(rng, 0.3, 0.08, 0.25)
    return Appearance(skin, shirt, pants, hair, _background(rng, stage))


def render(
    stage: Stage,
    look: Appearance,
    g: FrameGeometry,
    classes: Sequence[str],
    visible: np.ndarray,
) -> Image.Image:
    """The RGB frame of ``g``: objects behind the person, the person, objects
    in front, then hand-held details (pen, twist marker); invisible objects
    (``visible`` (K,) bool False) are not drawn."""
    return render_layers(stage, look, g, classes, visible, without_person=False)[0]


def render_layers(
    stage: Stage,
    look: Appearance,
    g: FrameGeometry,
    classes: Sequence[str],
    visible: np.ndarray,
    *,
    without_person: bool = True,
) -> tuple[Image.Image, Image.Image | None]:
    """:func:`render`'s frame and, with ``without_person``, the same frame without
    the person (objects in front and details drawn on both): where they differ is
    what a camera sees of the person. One pass: the person-less frame is a copy
    taken before the person is drawn."""
    im = look.background.copy()
    dr = ImageDraw.Draw(im)
    order = draw_order(g)
    for i in order:
        if visible[i] and not g.obj_front[i]:
            _draw_object(dr, stage, g, int(i), classes[i])
    bare = im.copy() if without_person else None
    _draw_person(dr, stage, look, g)
    for target in (im, bare) if bare is not None else (im,):
        _draw_front(ImageDraw.Draw(target), stage, g, classes, visible, order)
    return im, bare


def _draw_front(
    dr: ImageDraw.ImageDraw,
    stage: Stage,
    g: FrameGeometry,
    classes: Sequence[str],
    visible: np.ndarray,
    order: Sequence[int],
) -> None:
    """Objects in front of the person, then the hand-held details."""
    for i in order:
        if visible[i] and g.obj_front[i]:
            _draw_object(dr, stage, g, int(i), classes[i])
    for i, kind, data in g.overlays:
        if not visible[i]:
            continue
        x1, y1, x2, y2 = g.obj_boxes[i]
        if kind == "pen":
            wr = g.joints[f"{data}_wr"]
            dr.line(
                (wr[0], wr[1], wr[0] + g.d * 0.05 * stage.ph, wr[1] - 0.06 * stage.ph),
                fill=(15, 15, 15),
                width=max(1, int(g.lw / 2)),
            )
        else:  # twist marker: a slanted bar across the object's top
            dr.line(
                (x1, y1 + 0.35 * (y2 - y1), x2, y1),
                fill=(10, 10, 10),
                width=max(1, int(g.lw / 2)),
            )


def _draw_object(dr: ImageDraw.ImageDraw, stage: Stage, g: FrameGeometry, i: int, cls: str) -> None:
    kind, data = g.obj_kind[i]
    box = g.obj_boxes[i]
    colour, _, _ = class_style(cls)
    if kind == "band":
        dr.rectangle(tuple(box), fill=colour)
        step = max(4, int(0.08 * stage.H))
        for x in range(0, stage.W, step):
            dr.line((x, box[1], x - step, box[3]), fill=shade(colour, 0.7), width=1)
    elif kind == "shoes":
        for fb in data:
            dr.ellipse(tuple(fb), fill=colour, outline=shade(colour, 0.5))
    elif kind == "shirt":
        dr.polygon([tuple(p) for p in data], fill=colour, outline=shade(colour, 0.5))
        r = 0.2 * min(box[2] - box[0], box[3] - box[1])
        cx, cy = 0.5 * (box[0] + box[2]), 0.5 * (box[1] + box[3])
        _, _, mark = class_style(cls)
        if mark != "none":
            dr.ellipse((cx - r, cy - r, cx + r, cy + r), fill=shade(colour, 0.6))
    else:
        _draw_shape(dr, box, cls)


def _draw_person(dr: ImageDraw.ImageDraw, stage: Stage, look: Appearance, g: FrameGeometry) -> None:
    J = g.joints
    lw = int(round(g.lw))
    prof = g.facing in (-1, 1)
    near = "l" if g.near_left else "r"
    far = "r" if near == "l" else "l"

    def limb(a: str, b: str, colour: tuple) -> None:
        pa, pb = J[a], J[b]
        dr.line((pa[0], pa[1], pb[0], pb[1]), fill=colour, width=lw)
        for p in (pa, pb):
            dr.ellipse((p[0] - lw / 2, p[1] - lw / 2, p[0] + lw / 2, p[1] + lw / 2), fill=colour)

    def leg(s_: str, f: float) -> None:
        limb(f"{s_}_hip", f"{s_}_knee", shade(look.pants, f))
        limb(f"{s_}_knee", f"{s_}_ank", shade(look.pants, f))
        a = J[f"{s_}_ank"]
        toe = a + np.array([g.d * 0.05 * stage.ph if prof else 0.0, 0.0])
        dr.line((a[0], a[1], toe[0], toe[1]), fill=(40, 35, 30), width=lw)

    def arm(s_: str, f: float) -> None:
        limb(f"{s_}_sh", f"{s_}_el", shade(look.shirt, f))
        limb(f"{s_}_el", f"{s_}_wr", shade(look.skin, f))
        w = J[f"{s_}_wr"]
        r = 0.6 * g.lw
        dr.ellipse((w[0] - r, w[1] - r, w[0] + r, w[1] + r), fill=shade(look.skin, f))

    shade_far = 0.75 if prof else 1.0
    leg(far, shade_far)
    if prof:
        arm(far, shade_far)
    leg(near, 1.0)
    torso = torso_polygon(J, prof, g.lw)
    dr.polygon([tuple(p) for p in torso], fill=look.shirt, outline=shade(look.shirt, 0.6))
    if not prof:
        arm(far, 1.0)
    arm(near, 1.0)
    # head and face
    hx, hy = g.head
    r = g.head_r
    dr.ellipse((hx - r, hy - r, hx + r, hy + r), fill=look.skin, outline=shade(look.skin, 0.7))
    if g.facing == FACING_BACK:
        dr.ellipse((hx - r, hy - r, hx + r, hy + r), fill=look.hair)
        return
    dr.chord((hx - r, hy - r, hx + r, hy + r), 180, 360, fill=look.hair)
    e = max(1.0, 0.14 * r)
    if prof:
        d = g.d
        nose = [
            (hx + d * 0.85 * r, hy - 0.05 * r),
            (hx + d * 1.25 * r, hy + 0.15 * r),
            (hx + d * 0.85 * r, hy + 0.3 * r),
        ]
        dr.polygon(nose, fill=look.skin, outline=shade(look.skin, 0.6))
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
