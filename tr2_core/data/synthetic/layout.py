"""From a symbolic :class:`~.state.SceneState` to one frame's drawn geometry.

:func:`place` poses the body (:mod:`.poses`), ties held/worn/sat-on objects
to it, puts untouched objects into their slots around a reference standing
box, shifts the whole scene towards the wished horizontal anchor (the drift)
and rejects frames where something leaves the image or is mostly covered.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from tr2_core.data.synthetic.geometry import HEAD_R, REACH, REF_HALF_W, FrameGeometry, Stage
from tr2_core.data.synthetic.labels import VERT_FRAC
from tr2_core.data.synthetic.poses import Pose, body_pose, person_box, torso_polygon
from tr2_core.data.synthetic.state import SPECS, ObjectState, SceneState


@dataclass
class _Tied:
    """Objects placed relative to the body, in local units (y up)."""

    kinds: list[tuple[str, Any]]  # per object: (kind, extra drawing data)
    front: np.ndarray  # (K,) bool, drawn over the person
    local: dict[int, tuple[float, float, float, float]] = field(default_factory=dict)  # cx cy w h
    overlays: list[tuple[int, str, Any]] = field(default_factory=list)


def _reach_placement(
    tied: _Tied, i: int, o: ObjectState, w: float, h: float, sc: np.ndarray, pose: Pose
) -> np.ndarray | None:
    """A hand reaching for an object where it stands (touch, lean, holding a
    broom or twisting a knob): sets the object's local box and returns the
    hand target (None: out of the arm's reach)."""
    c, d = o.contact, pose.d
    mount = SPECS[o.cls].mount
    if mount == "floor":
        reach = REACH + 0.01 if c == "lean" else REACH
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
        tied.local[i] = (edge + d * w / 2, h / 2, w, h)
        tied.front[i] = o.front if c == "touch" else c == "hold"
    elif mount == "knob":
        dy = sc[1] - 0.5
        dx = max(math.sqrt(max(REACH**2 - dy**2, 0.0)), 0.05)
        hand = np.array([sc[0] + d * dx, 0.5])
        if c == "twist":
            tied.local[i] = (hand[0], 0.5, w, h)
            tied.overlays.append((i, "twist", None))
        else:
            tied.local[i] = (hand[0] + d * (w / 2 - 0.01), 0.5, w, h)
        tied.front[i] = False
    else:  # free or wall object brought within reach
        dyy = -0.22 + 0.14 * o.uv
        hand = sc + np.array([d * 0.24, dyy])
        tied.local[i] = (hand[0] + d * (w / 2 - 0.01), hand[1], w, h)
        tied.front[i] = mount == "free" and o.front
    return hand


def _body_placement(
    tied: _Tied, i: int, o: ObjectState, w: float, h: float, sc: np.ndarray, pose: Pose
) -> None:
    """An object held, carried, eaten from, worn, sat or lain on: its local
    box (or drawing kind) and the arms that hold it."""
    c, d, j = o.contact, pose.d, pose.joints
    front_arm, back_arm = pose.front_arm, pose.back_arm
    if c == "hold":
        hand = sc + np.array([d * 0.19, -0.26])
        tied.local[i] = (hand[0], hand[1], w, h)
        pose.reach(front_arm, hand)
    elif c == "hold2":
        cc = sc + np.array([d * 0.17, -0.2])
        off = min(w / 2, 0.08)
        tied.local[i] = (cc[0], cc[1], w, h)
        pose.reach(front_arm, cc + np.array([d * off, 0.0]))
        pose.reach(back_arm, cc - np.array([d * off, 0.0]))
    elif c == "carry":
        cc = sc + np.array([d * (0.05 + w / 2), -0.18])
        tied.local[i] = (cc[0], cc[1], w, h)
        pose.reach(front_arm, np.array([sc[0] + d * min(0.05 + w * 0.9, 0.26), cc[1]]))
        pose.reach(back_arm, np.array([sc[0] + d * 0.08, cc[1] - 0.9 * min(h / 2, 0.1)]))
    elif c in ("drink", "eat"):
        cc = j["head"] + np.array([d * (HEAD_R + w / 2), -0.035])
        tied.local[i] = (cc[0], cc[1], w, h)
        pose.reach(front_arm, cc + np.array([0.0, -h * 0.3]))
    elif c == "write":
        cc = sc + np.array([d * 0.18, -0.26])
        tied.local[i] = (cc[0], cc[1], w, h)
        pose.reach(back_arm, cc - np.array([d * w * 0.4, 0.0]))
        pen = cc + np.array([d * 0.02, h * 0.1])
        pose.reach(front_arm, pen)
        tied.overlays.append((i, "pen", front_arm))
    elif c == "wipe":
        hand = sc + np.array([d * 0.32, -0.05])
        tied.local[i] = (hand[0] + d * w * 0.25, hand[1], w, h)
        pose.reach(front_arm, hand)
    elif c == "twist":  # medicine: both hands on it, cap turned
        cc = sc + np.array([d * 0.18, -0.2])
        tied.local[i] = (cc[0], cc[1], w, h)
        pose.reach(front_arm, cc + np.array([0.0, 0.4 * h]))
        pose.reach(back_arm, cc - np.array([0.0, 0.4 * h]))
        tied.overlays.append((i, "twist", None))
    elif c == "wear":
        tied.kinds[i] = ("shoes" if o.cls == "shoe" else "shirt", None)
    elif c == "back":
        cc = sc + np.array([-d * (0.05 + w / 2 - 0.01), -0.12])
        tied.local[i] = (cc[0], cc[1], w, h)
        tied.front[i] = False
    elif c == "cover":
        tied.kinds[i] = ("cover", None)
    elif c == "sit":
        hip = 0.5 * (j["l_hip"] + j["r_hip"])
        cx = hip[0] - d * (0.04 if o.cls == "chair" else w * 0.25)
        tied.local[i] = (cx, h / 2, w, h)
        tied.front[i] = False
    elif c == "lie":
        hip = 0.5 * (j["l_hip"] + j["r_hip"])
        tied.local[i] = (hip[0] + (o.uh - 0.5) * 0.2, h / 2, w, h)
        tied.front[i] = False


def _tie_objects(stage: Stage, st: SceneState, pose: Pose) -> _Tied | None:
    """Place every object in contact with the body (bending the arms of
    ``pose`` in place); None if a hand cannot reach its object."""
    n = len(st.objs)
    tied = _Tied(kinds=[("shape", None)] * n, front=np.zeros(n, dtype=bool))
    sc = 0.5 * (pose.joints["l_sh"] + pose.joints["r_sh"])
    for i, o in enumerate(st.objs):
        w, h = (v / stage.ph for v in stage.size_px[o.cls])
        mount = SPECS[o.cls].mount
        c = o.contact
        if c in ("none", "stand") or (c in ("sit", "lie") and o.cls == "floor"):
            continue
        tied.front[i] = True
        if c in ("touch", "lean") or (c in ("hold", "twist") and mount in ("floor", "knob")):
            hand = _reach_placement(tied, i, o, w, h, sc, pose)
            if hand is None:
                return None
            pose.reach(pose.front_arm, hand)
        else:
            _body_placement(tied, i, o, w, h, sc, pose)
    return tied


def free_box(
    stage: Stage, o: ObjectState, jit: np.ndarray, ref: np.ndarray, w: float, h: float
) -> np.ndarray | None:
    """Box (4,) of an object that nobody touches, from its slot relative to
    the reference (standing) person box ``ref``; None if infeasible."""
    H = stage.H
    uv = float(np.clip(o.uv + jit[0], 0.0, 1.0))
    uh = float(np.clip(o.uh + jit[1], 0.0, 1.0))
    rx1, ry1, rx2, ry2 = ref
    hr, wr = ry2 - ry1, rx2 - rx1
    m = 0.06 * hr
    mount = SPECS[o.cls].mount
    if mount == "floor":
        cy = stage.ay + uv * 0.04 * stage.ph - h / 2
    elif mount == "knob":
        cy = stage.ay - 0.5 * stage.ph
    else:
        if o.v == "above":
            lo, hi = h / 2, ry1 + VERT_FRAC * hr - m
        elif o.v == "beneath":
            lo, hi = max(ry2 - VERT_FRAC * hr + m, h / 2), H - h / 2
        else:
            lo, hi = (
                max(ry1 + VERT_FRAC * hr + m, h / 2),
                min(ry2 - VERT_FRAC * hr - m, H - h / 2),
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


def _object_boxes(
    stage: Stage,
    st: SceneState,
    tied: _Tied,
    J: dict[str, np.ndarray],
    pose: Pose,
    jitter: np.ndarray,
    ax: float,
    lw: float,
) -> np.ndarray | None:
    """Image boxes (K, 4) of all objects (fills the drawing data of worn
    objects into ``tied.kinds``); None if a free object has no room."""
    ph, ay, d, prof = stage.ph, stage.ay, pose.d, pose.prof
    boxes = np.zeros((len(st.objs), 4))
    ref = np.array([ax - REF_HALF_W * ph, ay - ph, ax + REF_HALF_W * ph, ay])
    kinds, front = tied.kinds, tied.front
    for i, o in enumerate(st.objs):
        w_px, h_px = stage.size_px[o.cls]
        kind = kinds[i][0]
        if i in tied.local:
            cx, cy, w, h = tied.local[i]
            c_img = np.array([ax + cx * ph, ay - cy * ph])
            boxes[i] = [
                c_img[0] - w * ph / 2, c_img[1] - h * ph / 2,
                c_img[0] + w * ph / 2, c_img[1] + h * ph / 2,
            ]  # fmt: skip
        elif kind == "shirt":
            poly = torso_polygon(J, prof, lw, grow=0.012 * ph)
            kinds[i] = ("shirt", poly)
            boxes[i] = [*poly.min(0), *poly.max(0)]
            front[i] = True
        elif kind == "shoes":
            sw = 0.09 * ph
            sh = max(0.05 * ph, stage.min_edge)
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
        elif SPECS[o.cls].mount == "band":
            boxes[i] = [0.0, stage.floor_top, float(stage.W), float(stage.H)]
            kinds[i] = ("band", None)
            front[i] = False
        else:
            b = free_box(stage, o, jitter[i], ref, w_px, h_px)
            if b is None:
                return None
            boxes[i] = b
            front[i] = o.front if SPECS[o.cls].mount in ("free", "floor") else False
    return boxes


def layout(stage: Stage, st: SceneState, jitter: np.ndarray, ax: float) -> FrameGeometry | None:
    """Unclipped geometry of ``st`` with the feet centre at x = ``ax``.

    Args:
        stage: the video's frame.
        st: the symbolic state.
        jitter: (K, 2) offsets of untouched objects inside their slots.
        ax: x of the person's feet centre in pixels.

    Returns:
        The geometry, or None when the state cannot be drawn here.
    """
    pose = body_pose(st)
    tied = _tie_objects(stage, st, pose)
    if tied is None:
        return None
    ph, ay = stage.ph, stage.ay
    J = {k: np.array([ax + p[0] * ph, ay - p[1] * ph]) for k, p in pose.joints.items()}
    head_r = HEAD_R * ph
    lw = max(2.0, 0.045 * ph)
    pbox = person_box(J, head_r, lw, pose.facing, pose.d, ph)
    boxes = _object_boxes(stage, st, tied, J, pose, jitter, ax, lw)
    if boxes is None:
        return None
    return FrameGeometry(
        joints=J,
        near_left=pose.near_left,
        facing=pose.facing,
        d=pose.d,
        head=J["head"],
        head_r=head_r,
        lw=lw,
        person_box=pbox,
        obj_boxes=boxes,
        obj_front=tied.front,
        obj_kind=tied.kinds,
        overlays=tied.overlays,
        ax=ax,
    )


def place(stage: Stage, st: SceneState, jitter: np.ndarray, ax_wish: float) -> FrameGeometry | None:
    """Geometry of ``st`` with the anchor as close to ``ax_wish`` as the
    frame allows (everything kept inside the image when possible); boxes
    clipped and rounded as recorded. None when ``st`` cannot be drawn."""
    g = layout(stage, st, jitter, 0.0)
    if g is None:
        return None
    xs = np.concatenate([g.obj_boxes[:, [0, 2]].ravel(), g.person_box[[0, 2]]])
    band = [k for k, (kind, _) in enumerate(g.obj_kind) if kind == "band"]
    if band:
        keep = np.ones(len(g.obj_kind), dtype=bool)
        keep[band] = False
        xs = np.concatenate([g.obj_boxes[keep][:, [0, 2]].ravel(), g.person_box[[0, 2]]])
    lo, hi = -float(xs.min()), stage.W - float(xs.max())
    ax = float(np.clip(ax_wish, lo, hi)) if lo <= hi else 0.5 * (lo + hi)
    return _finish(stage, layout(stage, st, jitter, ax))


def _finish(stage: Stage, g: FrameGeometry | None) -> FrameGeometry | None:
    """Clip and round the boxes as they are recorded; None if a box
    collapses or an object is mostly covered."""
    if g is None:
        return None
    lim = np.array([stage.W, stage.H, stage.W, stage.H], dtype=np.float64)
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
    if _hidden(g):
        return None
    return g


def draw_order(g: FrameGeometry) -> np.ndarray:
    """Object rows in drawing order: objects behind the person, then
    those in front; larger ones first inside each layer."""
    b = g.obj_boxes
    area = (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])
    return np.lexsort((-area, g.obj_front))


def _hidden(g: FrameGeometry) -> bool:
    """Whether some object would be mostly (> 70 % of its box) covered by
    one thing drawn after it (another object, or the torso for objects
    behind the person): such a frame is not used."""
    order = draw_order(g)
    b = g.obj_boxes[order]
    torso = torso_polygon(g.joints, g.facing in (-1, 1), g.lw)
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
