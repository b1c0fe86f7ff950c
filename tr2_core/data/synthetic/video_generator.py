"""One synthetic video: its plan, the timeline of states and geometry, and
its release records (``person_bbox.pkl`` / ``object_bbox_and_relationship.pkl``
entries) with the per-video ground truth about change.

Every draw comes from the video's own generator
``default_rng([seed, index, 0x5A6])`` in a fixed order, so a video depends
only on the seed and its index.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
from PIL import Image, ImageChops

from tr2_core.data.synthetic.generator_config import SyntheticConfig
from tr2_core.data.synthetic.geometry import FrameGeometry, Stage, make_stage
from tr2_core.data.synthetic.labels import FrameLabels, frame_labels, relation_changes
from tr2_core.data.synthetic.layout import place
from tr2_core.data.synthetic.poses import keypoints
from tr2_core.data.synthetic.render import Appearance, make_appearance, render_layers
from tr2_core.data.synthetic.state import (
    POSTURE_CLASSES,
    SceneState,
    initial_state,
    propose_event,
)
from tr2_core.data.synthetic.temporal import (
    Occlusion,
    add_halfway_poses,
    blur_length,
    draw_occluder,
    motion_blur,
    plan_blur,
    plan_occlusions,
)
from tr2_core.vocab import ATTENTION, CONTACTING, OBJECT_CLASSES, SPATIAL

_CONTACT_ORDER = {name: i for i, name in enumerate(CONTACTING.predicates)}
_JITTER_SD = 0.06  # slot jitter of untouched objects per frame
_EVENT_TRIES = 30  # proposals per event frame before giving up


@dataclass
class VideoPlan:
    """Per-video choices drawn first: frame, length, change rate, objects."""

    size: tuple[int, int]  # (width, height)
    portrait: bool
    short: bool
    small: bool
    n_frames: int
    static: bool
    rate: float
    classes: list[str]


@dataclass
class Timeline:
    """Per frame (in time order): the state, its geometry, its labels and
    whether an event (a relation change) happened at that frame."""

    states: list[SceneState]
    geoms: list[FrameGeometry]
    labels: list[FrameLabels]
    events: list[bool]


@dataclass
class VideoOut:
    """A generated video: its release records, meta entry and what
    rendering needs (stage, appearance, per-frame geometry and visibility)."""

    video: str
    split: str
    size: tuple[int, int]
    keys: list[str]
    person: list[dict[str, Any]]
    objects: list[list[dict[str, Any]]]
    meta: dict[str, Any]
    stage: Stage
    look: Appearance
    geoms: list[FrameGeometry]
    visible: list[np.ndarray]
    occlusions: list[Occlusion]
    blurred: list[int]
    images: list[Image.Image] | None = None
    """The drawn frames when generating needed them (visible person boxes), else None:
    drawn on demand (:func:`draw_frame`)."""


def _choose_classes(rng: np.random.Generator, k: int) -> list[str]:
    """``k`` distinct object classes, at most one to sit or lie on."""
    names = list(OBJECT_CLASSES[2:])
    out: list[str] = []
    while len(out) < k:
        c = names[int(rng.integers(len(names)))]
        if c in out or (c in POSTURE_CLASSES and any(x in POSTURE_CLASSES for x in out)):
            continue
        out.append(c)
    return out


def _plan(cfg: SyntheticConfig, rng: np.random.Generator) -> VideoPlan:
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
    return VideoPlan(size, portrait, short, small, n_frames, static, rate, classes)


def _first_frame(
    rng: np.random.Generator, plan: VideoPlan, video: str
) -> tuple[Stage, Appearance, SceneState, FrameGeometry]:
    """Stage, appearance and a drawable first state (a crowded scene is
    retried with one object: ``plan.classes`` is shortened in place)."""
    stage = make_stage(rng, plan.size, plan.classes, plan.small)
    look = make_appearance(rng, stage)
    W = plan.size[0]
    for attempt in range(200):
        st = initial_state(rng, plan.classes)
        g = place(stage, st, np.zeros((len(plan.classes), 2)), float(rng.uniform(0.3, 0.7) * W))
        if g is not None:
            return stage, look, st, g
        if attempt == 100 and len(plan.classes) > 1:  # crowded: fewer objects
            plan.classes = plan.classes[:1]
            stage = make_stage(rng, plan.size, plan.classes, plan.small)
            look = make_appearance(rng, stage)
    raise RuntimeError(f"synthetic: no feasible scene for video {video} ({plan.classes})")


def _simulate(
    cfg: SyntheticConfig,
    rng: np.random.Generator,
    plan: VideoPlan,
    stage: Stage,
    st: SceneState,
    g: FrameGeometry,
) -> Timeline:
    """Run the video's frames from the first state.

    Exactly ``round(rate * (F - 1))`` event frames (stochastic rounding) at
    random positions, so that the measured degree of change tracks ``rate``;
    an event is kept only if it changes a label. Between events the scene
    drifts and untouched objects jitter; a jittered layout that would change
    a label is replaced by the previous frame's geometry.
    """
    n_frames, W, k = plan.n_frames, plan.size[0], len(plan.classes)
    labels = frame_labels(st, g)
    line = Timeline([st], [g], [labels], [False])
    n_events = int(math.floor(plan.rate * max(n_frames - 1, 0) + rng.uniform()))
    event_frames = np.zeros(n_frames, dtype=bool)
    if n_events:
        event_frames[1 + rng.permutation(n_frames - 1)[:n_events]] = True
    for t in range(1, n_frames):
        ax_wish = g.ax + float(rng.normal(0.0, cfg.motion * W))
        jit = rng.normal(0.0, _JITTER_SD, size=(k, 2))
        new_g, new_st, new_labels, event = None, st, labels, False
        if event_frames[t]:
            for _try in range(_EVENT_TRIES):
                cand = propose_event(rng, st)
                if cand is None:
                    continue
                cg = place(stage, cand, jit, ax_wish)
                if cg is None:
                    continue
                cl = frame_labels(cand, cg)
                if cl != labels:
                    new_g, new_st, new_labels, event = cg, cand, cl, True
                    break
        if new_g is None:
            cg = place(stage, st, jit, ax_wish)
            if cg is not None and frame_labels(st, cg) == labels:
                new_g = cg
            else:
                new_g = g  # same geometry as the previous frame
        g, st, labels = new_g, new_st, new_labels
        line.geoms.append(g)
        line.states.append(st)
        line.labels.append(labels)
        line.events.append(event)
    return line


def _frame_keys(rng: np.random.Generator, video: str, n_frames: int) -> list[str]:
    """Frame keys with increasing, non-contiguous numbers (AG's sampled
    key frames)."""
    steps = rng.integers(6, 45, size=n_frames)
    numbers = int(rng.integers(1, 60)) + np.concatenate([[0], np.cumsum(steps[1:])])
    return [f"{video}/{int(num):06d}.png" for num in numbers]


def _person_record(
    rng: np.random.Generator, g: FrameGeometry, size: tuple[int, int], has_person: bool
) -> dict[str, Any]:
    """The frame's ``person_bbox.pkl`` entry (0 rows: a detector miss)."""
    if not has_person:
        return {
            "bbox": np.zeros((0, 4), dtype=np.float32),
            "bbox_score": np.zeros((0,), dtype=np.float32),
            "bbox_size": (int(size[0]), int(size[1])),
            "bbox_mode": "xyxy",
            "keypoints": np.zeros((0, 17, 3), dtype=np.float32),
            "keypoints_logits": np.zeros((0, 17), dtype=np.float32),
        }
    kp, logits = keypoints(g)
    return {
        "bbox": g.person_box.astype(np.float32).reshape(1, 4),
        "bbox_score": np.array([rng.uniform(0.8, 1.0)], dtype=np.float32),
        "bbox_size": (int(size[0]), int(size[1])),
        "bbox_mode": "xyxy",
        "keypoints": kp[None],
        "keypoints_logits": logits[None],
    }


def _object_records(
    key: str,
    split: str,
    st: SceneState,
    g: FrameGeometry,
    labels: FrameLabels,
    visible: np.ndarray,
) -> list[dict[str, Any]]:
    """The frame's ``object_bbox_and_relationship.pkl`` entry (invisible
    objects: box and relations None)."""
    video, frame = key.split("/")
    recs = []
    for i, o in enumerate(st.objs):
        meta = {"tag": f"{video}/{o.cls}/{frame[:-4]}", "set": split}
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
        att, spat, contact = labels[i]
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
    return recs


def draw_frame(
    v: VideoOut, t: int, *, without_person: bool = False
) -> tuple[Image.Image, Image.Image | None]:
    """Frame ``t`` of ``v`` as the release shows it -- occluders over the scene, then
    motion blur -- and, with ``without_person``, the same frame without the person."""
    classes = [o["class"] for o in v.objects[t]]
    layers = render_layers(
        v.stage, v.look, v.geoms[t], classes, v.visible[t], without_person=without_person
    )
    out = []
    for im in layers:
        if im is not None:
            for occ in v.occlusions:
                if occ.frame == t:
                    draw_occluder(im, occ)
            if t in v.blurred:
                im = motion_blur(im, blur_length(v.stage))
        out.append(im)
    return out[0], out[1]


VISIBLE_LEVEL = 24
"""A pixel shows the person when drawing the person changed one of its channels by
more than this (of 255): faint motion-blur tails do not count."""


def visible_person_box(
    frame: Image.Image, without_person: Image.Image, around: np.ndarray, margin: float
) -> np.ndarray | None:
    """(4,) ``x1 y1 x2 y2`` box of the pixels where ``frame`` and ``without_person``
    differ (by more than :data:`VISIBLE_LEVEL`), searched inside the box ``around``
    grown by ``margin`` pixels (the person's joints box and the blur's reach); None
    when nothing of the person is visible."""
    W, H = frame.size
    x1, y1 = (max(0, int(np.floor(v - margin))) for v in around[:2])
    x2, y2 = int(min(W, np.ceil(around[2] + margin))), int(min(H, np.ceil(around[3] + margin)))
    if x2 <= x1 or y2 <= y1:
        return None
    region = (x1, y1, x2, y2)
    diff = np.asarray(ImageChops.difference(frame.crop(region), without_person.crop(region)))
    seen = diff.max(axis=-1) > VISIBLE_LEVEL
    rows, cols = np.flatnonzero(seen.any(axis=1)), np.flatnonzero(seen.any(axis=0))
    if rows.size == 0:
        return None
    return np.array(
        [x1 + cols[0], y1 + rows[0], x1 + cols[-1] + 1, y1 + rows[-1] + 1], dtype=np.float32
    )


def _see_the_person(v: VideoOut) -> None:
    """Draw every frame of ``v`` (kept in ``v.images``) and replace each person box by
    the box of what the frame shows of the person (:func:`visible_person_box`); a
    person drawn wholly hidden keeps the joints box."""
    images = []
    margin = blur_length(v.stage) + 2.0
    for t, rec in enumerate(v.person):
        frame, bare = draw_frame(v, t, without_person=rec["bbox"].shape[0] > 0)
        images.append(frame)
        if bare is None:
            continue
        box = visible_person_box(frame, bare, rec["bbox"][0], margin)
        if box is not None:
            rec["bbox"] = box.reshape(1, 4)
    v.images = images


def generate_video(cfg: SyntheticConfig, index: int, video: str, split: str) -> VideoOut:
    """Generate video number ``index`` (named ``video``, in ``split``)."""
    rng = np.random.default_rng([cfg.seed, index, 0x5A6])
    plan = _plan(cfg, rng)
    stage, look, st, g = _first_frame(rng, plan, video)
    line = _simulate(cfg, rng, plan, stage, st, g)
    halfway = add_halfway_poses(cfg, index, stage, line.states, line.geoms, line.labels)
    keys = _frame_keys(rng, video, plan.n_frames)
    person_recs, object_recs, visibles = [], [], []
    n_noperson = n_invisible = 0
    for t, key in enumerate(keys):
        has_person = not (rng.uniform() < cfg.no_person_rate)
        n_noperson += int(not has_person)
        person_recs.append(_person_record(rng, line.geoms[t], plan.size, has_person))
        visible = rng.uniform(size=len(plan.classes)) >= cfg.invisible_rate
        n_invisible += int((~visible).sum())
        visibles.append(visible)
        object_recs.append(
            _object_records(key, split, line.states[t], line.geoms[t], line.labels[t], visible)
        )
    changed = relation_changes(object_recs)
    occlusions = plan_occlusions(cfg, index, stage, plan.classes, line.geoms, line.labels, visibles)
    blurred = plan_blur(cfg, index, plan.n_frames)
    meta = {
        "video": video,
        "split": split,
        "frames": plan.n_frames,
        "size": list(plan.size),
        "objects": plan.classes,
        "change_rate": plan.rate,
        "static": plan.static,
        "change_degree": float(changed.mean()) if changed.size else 0.0,
        "changed_frames": [keys[t + 1] for t in np.flatnonzero(changed)],
        "events": int(sum(line.events)),
        "short": plan.short,
        "small": plan.small,
        "portrait": plan.portrait,
        "no_person_frames": n_noperson,
        "invisible_objects": n_invisible,
        "halfway_frames": [{"frame": keys[t], "labels": m} for t, m in sorted(halfway.items())],
        "occluded_frames": [
            {
                "frame": keys[o.frame],
                "episode": o.episode,
                "target": o.target,
                "box": [round(v, 2) for v in o.box],
            }
            for o in occlusions
        ],
        "blurred_frames": [keys[t] for t in blurred],
    }
    out = VideoOut(
        video, split, plan.size, keys, person_recs, object_recs, meta, stage, look, line.geoms,
        visibles, occlusions, blurred,
    )  # fmt: skip
    if cfg.person_box == "visible":
        _see_the_person(out)
    return out
