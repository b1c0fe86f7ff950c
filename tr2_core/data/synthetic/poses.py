"""The person figure: skeleton per posture and facing, arm reach, torso,
person box and COCO keypoints.

Local units are person heights with the feet centre at the origin and y up;
:mod:`.layout` maps them to image pixels.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

from tr2_core.data.synthetic.geometry import ARM_A, ARM_B, FrameGeometry
from tr2_core.data.synthetic.state import (
    FACING_BACK,
    FACING_FRONT,
    LIE_HEIGHT,
    SIT_HEIGHT,
    SceneState,
    body_posture,
)

KP_NAMES = (
    "nose", "l_eye", "r_eye", "l_ear", "r_ear", "l_sh", "r_sh", "l_el", "r_el",
    "l_wr", "r_wr", "l_hip", "r_hip", "l_knee", "r_knee", "l_ank", "r_ank",
)  # fmt: skip
"""COCO keypoint order of :func:`keypoints`."""


def rotate(p: np.ndarray, ang: float, pivot: np.ndarray) -> np.ndarray:
    """Rotate points ``p`` (..., 2) by ``ang`` radians about ``pivot`` (2,)."""
    c, s = math.cos(ang), math.sin(ang)
    q = p - pivot
    return pivot + np.stack([c * q[..., 0] - s * q[..., 1], s * q[..., 0] + c * q[..., 1]], -1)


def arm_ik(shoulder: np.ndarray, target: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Elbow and wrist (y-up units) of a two-link arm reaching ``target``;
    the elbow bends downwards. Unreachable targets are approached."""
    v = target - shoulder
    dist = float(np.hypot(*v))
    if dist < 1e-6:
        v, dist = np.array([0.0, -1.0]), 1e-6
    u = v / dist
    dc = min(max(dist, abs(ARM_A - ARM_B) + 1e-3), ARM_A + ARM_B - 1e-4)
    wrist = shoulder + u * dc
    cos_a = (ARM_A**2 + dc**2 - ARM_B**2) / (2 * ARM_A * dc)
    a = math.acos(max(-1.0, min(1.0, cos_a)))
    e1 = shoulder + ARM_A * rotate(u, a, np.zeros(2))
    e2 = shoulder + ARM_A * rotate(u, -a, np.zeros(2))
    return (e1 if e1[1] < e2[1] else e2), wrist


@dataclass
class Pose:
    """The skeleton of one frame in local units (y up).

    Attributes:
        joints: joint name -> (2,) position (``head`` and the COCO body joints).
        posture: ``stand | sit | lie | lean``.
        d: profile direction used for the drawing (+1 / -1).
        facing: effective facing (lying bodies face the camera).
        prof: a profile view.
        near_left: the person's left side is the near (camera) side.
        left: image-x sign of the person's left side.
    """

    joints: dict[str, np.ndarray]
    posture: str
    d: int
    facing: int
    prof: bool
    near_left: bool
    left: float

    @property
    def front_arm(self) -> str:
        """The arm on the facing side (``"l"`` or ``"r"``)."""
        return "l" if (self.left * self.d > 0) else "r"

    @property
    def back_arm(self) -> str:
        return "r" if self.front_arm == "l" else "l"

    def reach(self, which: str, target: np.ndarray) -> None:
        """Bend arm ``which`` so that its wrist reaches ``target`` (in place)."""
        self.joints[f"{which}_el"], self.joints[f"{which}_wr"] = arm_ik(
            self.joints[f"{which}_sh"], target
        )


def body_pose(st: SceneState) -> Pose:
    """The skeleton of ``st`` (arms hanging; :meth:`Pose.reach` bends them)."""
    posture, post_obj = body_posture(st)
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
        s = SIT_HEIGHT[post_obj.cls] if post_obj is not None else 0.0
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
            j[k] = rotate(j[k], ang, np.zeros(2))
    elif posture == "lie":
        surf = LIE_HEIGHT[post_obj.cls] if post_obj is not None else 0.0
        pivot = 0.5 * (j["l_hip"] + j["r_hip"])
        for k in j:
            j[k] = rotate(j[k], d * math.pi / 2, pivot)
        low = min(v[1] for v in j.values())
        shift = np.array([-pivot[0], surf + 0.03 - low])
        for k in j:
            j[k] = j[k] + shift
    return Pose(j, posture, d, eff, prof, near_left, left)


def torso_polygon(
    J: Mapping[str, np.ndarray], prof: bool, lw: float, grow: float = 0.0
) -> np.ndarray:
    """The torso quadrilateral (4, 2) from shoulders to hips, ``grow`` pixels
    wider all round (a shirt)."""
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


def person_box(
    J: Mapping[str, np.ndarray], head_r: float, lw: float, facing: int, d: int, ph: float
) -> np.ndarray:
    """The person's box (4,) ``x1 y1 x2 y2`` around the joints (image
    pixels), the head, the nose of a profile face and the feet."""
    prof = facing in (-1, 1)
    pts = [J[k] for k in J]
    rads = [lw / 2] * len(pts)
    pts.append(J["head"])
    rads.append(head_r)
    if prof:
        pts.append(J["head"] + np.array([d * 1.25 * head_r, 0.15 * head_r]))
        rads.append(0.0)
    for s_ in ("l", "r"):  # feet
        pts.append(J[f"{s_}_ank"] + np.array([d * 0.05 * ph if prof else 0.0, 0.0]))
        rads.append(lw / 2)
    P = np.array(pts)
    R = np.array(rads)
    return np.array(
        [(P[:, 0] - R).min(), (P[:, 1] - R).min(), (P[:, 0] + R).max(), (P[:, 1] + R).max()]
    )


def keypoints(g: FrameGeometry) -> tuple[np.ndarray, np.ndarray]:
    """COCO keypoints (17, 3) ``x, y, score`` and logits (17,) of the figure."""
    J = g.joints
    r = g.head_r
    hx, hy = g.head
    prof = g.facing in (-1, 1)
    kp = np.zeros((17, 3), dtype=np.float32)
    lr = {"l": 1.0, "r": -1.0}
    near = "l" if g.near_left else "r"
    for k, name in enumerate(KP_NAMES):
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
