"""Relations that need time: halfway poses, occlusions and motion blur.

Each effect has its own random stream (``default_rng([seed, video index,
tag])``), separate from the video's main stream, so that switching one on
changes nothing else: at rate 0 the dataset is exactly the one without it,
and with only occlusion or blur on, the annotations stay byte-identical
(only pixels change).

* **Halfway poses** (:func:`add_halfway_poses`): for a contact change at
  frame ``t + 1`` (same facing before and after), frame ``t`` is redrawn
  halfway between the two geometries (joints, boxes and worn-object shapes
  averaged; the blend is symmetric, so picking up and putting down pass
  through the same pose). Its spatial and attention labels are re-derived
  from the drawn geometry; its contacting labels are those of the state in
  force (``"in_force"``, :attr:`SyntheticConfig.ambiguous_pose_rate`) or of
  the state it is heading to (``"heading"``,
  :attr:`SyntheticConfig.direction_rate`: only the motion over the previous
  frames tells the direction).
* **Occlusion** (:func:`plan_occlusions`): episodes of 2-4 frames in which a
  flat grey panel (never a class colour) covers one visible object's box,
  grown by a margin, or the person's two hands; an episode is kept only
  while the covered relation continues (the object's labels, or every
  contacting label for the hands, constant across it). Records are unchanged.
* **Motion blur** (:func:`plan_blur`, :func:`motion_blur`): a horizontal box
  blur over the whole frame.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageDraw

from tr2_core.data.synthetic.generator_config import SyntheticConfig
from tr2_core.data.synthetic.geometry import FrameGeometry, Stage
from tr2_core.data.synthetic.labels import FrameLabels, frame_labels
from tr2_core.data.synthetic.poses import person_box
from tr2_core.data.synthetic.state import SceneState

_HALFWAY_STREAM, _OCCLUSION_STREAM, _BLUR_STREAM = 0xA4, 0x0CC, 0xB1
OCCLUSION_FRAMES = (2, 4)
"""Shortest and longest occlusion episode, in frames."""
BLUR_FRACTION = 0.04
"""Length of the motion-blur kernel as a fraction of the frame width."""


def _stream(cfg: SyntheticConfig, index: int, tag: int) -> np.random.Generator:
    return np.random.default_rng([cfg.seed, index, tag])


# --------------------------------------------------------------------------
# Halfway poses


def blend_geometry(
    a: FrameGeometry, b: FrameGeometry, stage: Stage, alpha: float = 0.5
) -> FrameGeometry:
    """The drawn geometry ``alpha`` of the way from ``a`` to ``b``.

    Joints, boxes and the drawing data of worn objects are interpolated; an
    object is drawn in front of the person if it is in either; only
    overlays present in both are kept. At ``alpha = 0.5`` the result does not
    depend on the order of ``a`` and ``b``. The person box is recomputed
    from the blended joints and recorded like :func:`.layout.place` does.
    """

    def mix(x: np.ndarray, y: np.ndarray) -> np.ndarray:
        return (1.0 - alpha) * x + alpha * y

    joints = {k: mix(a.joints[k], b.joints[k]) for k in a.joints}
    kinds = []
    for (kind, da), (_, db) in zip(a.obj_kind, b.obj_kind, strict=True):
        kinds.append((kind, mix(da, db) if isinstance(da, np.ndarray) else da))
    lim = np.array([stage.W, stage.H, stage.W, stage.H], dtype=np.float64)
    pbox = person_box(joints, a.head_r, a.lw, a.facing, a.d, stage.ph)
    return FrameGeometry(
        joints=joints,
        near_left=a.near_left,
        facing=a.facing,
        d=a.d,
        head=joints["head"],
        head_r=a.head_r,
        lw=a.lw,
        person_box=np.clip(pbox, 0.0, lim).astype(np.float32).astype(np.float64),
        obj_boxes=np.round(np.clip(mix(a.obj_boxes, b.obj_boxes), 0.0, lim), 2),
        obj_front=a.obj_front | b.obj_front,
        obj_kind=kinds,
        overlays=[ov for ov in a.overlays if ov in b.overlays],
        ax=float(mix(np.float64(a.ax), np.float64(b.ax))),
    )


def _contact_changes(before: SceneState, after: SceneState) -> bool:
    return any(x.contact != y.contact for x, y in zip(before.objs, after.objs, strict=True))


def _blendable(a: FrameGeometry, b: FrameGeometry) -> bool:
    """Same view of the body and the same drawing kind for every object."""
    same_kinds = all(ka == kb for (ka, _), (kb, _) in zip(a.obj_kind, b.obj_kind, strict=True))
    return a.facing == b.facing and a.d == b.d and a.near_left == b.near_left and same_kinds


def add_halfway_poses(
    cfg: SyntheticConfig,
    index: int,
    stage: Stage,
    states: list[SceneState],
    geoms: list[FrameGeometry],
    labels: list[FrameLabels],
) -> dict[int, str]:
    """Redraw frames before contact changes as halfway poses (in place).

    Args:
        cfg: the rates (:attr:`~SyntheticConfig.ambiguous_pose_rate`,
            :attr:`~SyntheticConfig.direction_rate`).
        index: the video's index (seeds this effect's stream).
        stage: the video's frame.
        states, geoms, labels: per frame; ``geoms`` and ``labels`` are
            replaced at the chosen frames.

    Returns:
        Frame index -> ``"in_force"`` or ``"heading"`` (how it is labelled).
    """
    if cfg.ambiguous_pose_rate == 0.0 and cfg.direction_rate == 0.0:
        return {}
    rng = _stream(cfg, index, _HALFWAY_STREAM)
    drawn = list(geoms)  # blend the geometry as simulated, not earlier blends
    chosen: dict[int, str] = {}
    for t in range(len(states) - 1):
        if not _contact_changes(states[t], states[t + 1]) or not _blendable(drawn[t], drawn[t + 1]):
            continue
        u = float(rng.uniform())
        if u < cfg.direction_rate:
            mode, st = "heading", states[t + 1]
        elif u < cfg.direction_rate + cfg.ambiguous_pose_rate:
            mode, st = "in_force", states[t]
        else:
            continue
        g = blend_geometry(drawn[t], drawn[t + 1], stage)
        geoms[t] = g
        labels[t] = frame_labels(st, g)
        chosen[t] = mode
    return chosen


# --------------------------------------------------------------------------
# Occlusion


@dataclass(frozen=True)
class Occlusion:
    """One occluded frame: what is covered and the panel drawn over it."""

    frame: int
    episode: int  # episodes of a video numbered from 0
    target: str  # "hands" or the covered object's class
    box: tuple[float, float, float, float]  # panel, x1 y1 x2 y2 pixels
    colour: tuple[int, int, int]


def _panel(box: np.ndarray, margin: float, stage: Stage) -> tuple[float, float, float, float]:
    x1, y1, x2, y2 = (float(v) for v in box)
    return (
        max(0.0, x1 - margin), max(0.0, y1 - margin),
        min(float(stage.W), x2 + margin), min(float(stage.H), y2 + margin),
    )  # fmt: skip


def _target_box(g: FrameGeometry, target: int, stage: Stage) -> tuple[float, ...]:
    """Panel over object row ``target``, or over both wrists (``-1``)."""
    if target < 0:
        wrists = np.stack([g.joints["l_wr"], g.joints["r_wr"]])
        box = np.concatenate([wrists.min(0), wrists.max(0)])
        return _panel(box, 0.6 * g.lw + 0.04 * stage.ph, stage)
    b = g.obj_boxes[target]
    margin = max(3.0, 0.1 * float(min(b[2] - b[0], b[3] - b[1])))
    return _panel(b, margin, stage)


def _relation_continues(
    target: int, frames: range, labels: list[FrameLabels], visible: list[np.ndarray]
) -> bool:
    first = frames[0]
    if target < 0:  # the hands: every contact continues
        return all(
            [lab[2] for lab in labels[t]] == [lab[2] for lab in labels[first]] for t in frames
        )
    return all(labels[t][target] == labels[first][target] and visible[t][target] for t in frames)


def plan_occlusions(
    cfg: SyntheticConfig,
    index: int,
    stage: Stage,
    classes: list[str],
    geoms: list[FrameGeometry],
    labels: list[FrameLabels],
    visible: list[np.ndarray],
) -> list[Occlusion]:
    """Occlusion episodes of a video (:attr:`SyntheticConfig.occlusion_rate`
    per frame), each over one object (never the floor band) or the hands,
    kept only while the covered relation continues."""
    if cfg.occlusion_rate == 0.0:
        return []
    rng = _stream(cfg, index, _OCCLUSION_STREAM)
    grey = int(rng.integers(70, 180))
    colour = (grey, grey, grey)  # unsaturated: never an object class colour
    targets = [-1] + [i for i, kind in enumerate(geoms[0].obj_kind) if kind[0] != "band"]
    out: list[Occlusion] = []
    t, n = 0, len(geoms)
    while t < n:
        if rng.uniform() >= cfg.occlusion_rate:
            t += 1
            continue
        length = int(rng.integers(OCCLUSION_FRAMES[0], OCCLUSION_FRAMES[1] + 1))
        target = targets[int(rng.integers(len(targets)))]
        frames = range(t, min(t + length, n))
        if len(frames) >= OCCLUSION_FRAMES[0] and _relation_continues(
            target, frames, labels, visible
        ):
            name = "hands" if target < 0 else classes[target]
            episode = out[-1].episode + 1 if out else 0
            for f in frames:
                box = _target_box(geoms[f], target, stage)
                out.append(Occlusion(f, episode, name, box, colour))
            t = frames[-1] + 1
        else:
            t += 1
    return out


def draw_occluder(im: Image.Image, occ: Occlusion) -> None:
    """Draw the panel of ``occ`` over ``im`` (in place)."""
    ImageDraw.Draw(im).rectangle(occ.box, fill=occ.colour)


# --------------------------------------------------------------------------
# Motion blur


def plan_blur(cfg: SyntheticConfig, index: int, n_frames: int) -> list[int]:
    """Frames of a video rendered with motion blur
    (:attr:`SyntheticConfig.motion_blur_rate` per frame)."""
    if cfg.motion_blur_rate == 0.0:
        return []
    rng = _stream(cfg, index, _BLUR_STREAM)
    return np.flatnonzero(rng.uniform(size=n_frames) < cfg.motion_blur_rate).tolist()


def motion_blur(im: Image.Image, length: int) -> Image.Image:
    """Horizontal box blur of ``length`` pixels (edges replicated)."""
    a = np.asarray(im, dtype=np.float64)  # (H, W, 3)
    left = length // 2
    padded = np.pad(a, ((0, 0), (left, length - 1 - left), (0, 0)), mode="edge")
    csum = np.concatenate([np.zeros_like(padded[:, :1]), np.cumsum(padded, axis=1)], axis=1)
    out = (csum[:, length:] - csum[:, :-length]) / length
    return Image.fromarray(np.clip(np.rint(out), 0, 255).astype(np.uint8), "RGB")


def blur_length(stage: Stage) -> int:
    """Kernel length of :func:`motion_blur` for a frame of ``stage``."""
    return max(3, int(round(BLUR_FRACTION * stage.W)))
