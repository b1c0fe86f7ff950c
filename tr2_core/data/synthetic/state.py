"""Scene state of one synthetic video and its random transitions.

The state is symbolic: the person's facing and, per object, its contact
state with the person (:data:`CONTACT_LABELS`) and its slot relative to the
person (above / level / beneath, far / near / over, side, drawn in front).
:mod:`.layout` turns a state into drawn geometry; :mod:`.labels` reads the
relations off that geometry. Events (:func:`propose_event`) advance a contact
state along the per-class graph (:data:`SPECS`), move an untouched object or
turn the person; :func:`feasible` rejects states the body cannot show.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass

import numpy as np

from tr2_core.vocab import OBJECT_CLASSES

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

HAND_STATES = frozenset(
    {"touch", "hold", "hold2", "carry", "drink", "eat", "write", "wipe", "twist", "lean"}
)

# Facing of the head (attention): profile to image-left/right, front, back.
FACING_LEFT, FACING_RIGHT, FACING_FRONT, FACING_BACK = -1, 1, 0, 2

PORTABLE = "none-touch touch-hold hold-hold2"


@dataclass(frozen=True)
class ClassSpec:
    size: tuple[float, float]  # (w, h) in person heights
    mount: str  # free | floor | wall | high | knob | band
    edges: str  # contact-state graph, "a-b c-d"


SPECS: dict[str, ClassSpec] = {
    "bag": ClassSpec((0.22, 0.22), "free", PORTABLE + " hold-carry hold-back"),
    "bed": ClassSpec((1.0, 0.32), "floor", "none-touch touch-sit sit-lie"),
    "blanket": ClassSpec((0.4, 0.3), "free", PORTABLE + " hold-carry hold-cover"),
    "book": ClassSpec((0.13, 0.17), "free", PORTABLE + " hold-write"),
    "box": ClassSpec((0.25, 0.22), "free", PORTABLE + " hold-carry"),
    "broom": ClassSpec((0.08, 0.6), "floor", "none-touch touch-hold"),
    "chair": ClassSpec((0.3, 0.55), "floor", "none-touch touch-sit"),
    "closet/cabinet": ClassSpec((0.5, 0.95), "floor", "none-touch touch-lean"),
    "clothes": ClassSpec((0.3, 0.3), "free", PORTABLE + " hold-carry hold-wear"),
    "cup/glass/bottle": ClassSpec((0.07, 0.12), "free", PORTABLE + " hold-drink"),
    "dish": ClassSpec((0.18, 0.06), "free", PORTABLE + " hold-carry"),
    "door": ClassSpec((0.45, 1.1), "floor", "none-touch touch-lean"),
    "doorknob": ClassSpec((0.05, 0.05), "knob", "none-touch touch-twist"),
    "doorway": ClassSpec((0.6, 1.2), "floor", ""),
    "floor": ClassSpec((1.0, 0.1), "band", "stand-sit sit-lie"),
    "food": ClassSpec((0.14, 0.1), "free", PORTABLE + " hold-eat"),
    "groceries": ClassSpec((0.26, 0.26), "free", PORTABLE + " hold-carry"),
    "laptop": ClassSpec((0.25, 0.17), "free", PORTABLE + " hold-carry"),
    "light": ClassSpec((0.18, 0.1), "high", ""),
    "medicine": ClassSpec((0.06, 0.1), "free", PORTABLE + " hold-twist"),
    "mirror": ClassSpec((0.3, 0.45), "wall", "none-touch"),
    "paper/notebook": ClassSpec((0.16, 0.2), "free", PORTABLE + " hold-write"),
    "phone/camera": ClassSpec((0.06, 0.11), "free", PORTABLE),
    "picture": ClassSpec((0.3, 0.25), "wall", "none-touch"),
    "pillow": ClassSpec((0.28, 0.18), "free", PORTABLE + " hold-carry"),
    "refrigerator": ClassSpec((0.5, 1.05), "floor", "none-touch touch-lean"),
    "sandwich": ClassSpec((0.12, 0.08), "free", PORTABLE + " hold-eat"),
    "shelf": ClassSpec((0.55, 0.12), "wall", "none-touch"),
    "shoe": ClassSpec((0.14, 0.07), "free", PORTABLE + " hold-wear"),
    "sofa/couch": ClassSpec((0.9, 0.42), "floor", "none-touch touch-sit sit-lie"),
    "table": ClassSpec((0.6, 0.48), "floor", "none-touch touch-lean"),
    "television": ClassSpec((0.4, 0.28), "wall", "none-touch"),
    "towel": ClassSpec((0.16, 0.28), "free", PORTABLE + " hold-wipe"),
    "vacuum": ClassSpec((0.2, 0.5), "floor", "none-touch touch-hold"),
    "window": ClassSpec((0.45, 0.45), "wall", "none-touch"),
}
assert set(SPECS) == set(OBJECT_CLASSES[2:]), "every AG object class needs a spec"

GRAPH: dict[str, dict[str, tuple[str, ...]]] = {}
for _name, _spec in SPECS.items():
    _adj: dict[str, list[str]] = {}
    for _edge in _spec.edges.split():
        _a, _b = _edge.split("-")
        _adj.setdefault(_a, []).append(_b)
        _adj.setdefault(_b, []).append(_a)
    GRAPH[_name] = {k: tuple(v) for k, v in _adj.items()}

POSTURE_CLASSES = frozenset({"floor", "chair", "sofa/couch", "bed"})
SIT_HEIGHT = {"chair": 0.26, "sofa/couch": 0.24, "bed": 0.32, "floor": 0.0}
LIE_HEIGHT = {"bed": 0.32, "sofa/couch": 0.26, "floor": 0.0}


@dataclass
class ObjectState:
    """Symbolic state of one object relative to the person."""

    cls: str
    contact: str
    v: str = "level"  # above | level | beneath (free/wall objects)
    h: str = "far"  # far | near | over
    side: int = 1  # -1 left of the person, +1 right
    front: bool = False  # drawn over the person
    uv: float = 0.5  # placement inside the slot's feasible range
    uh: float = 0.5


@dataclass
class SceneState:
    """Symbolic state of one frame: the person's facing and every object."""

    facing: int
    objs: list[ObjectState]


def body_posture(st: SceneState) -> tuple[str, ObjectState | None]:
    """The body's posture (``stand | sit | lie | lean``) and the object it
    sits/lies/leans on (None when standing)."""
    for o in st.objs:
        if o.contact in ("sit", "lie"):
            return o.contact, o
    for o in st.objs:
        if o.contact == "lean":
            return "lean", o
    return "stand", None


def feasible(st: SceneState) -> bool:
    """Whether the body can show ``st`` (one hand-held thing, one posture,
    a profile face when the hands or the seat are used, ...)."""
    hand = [o for o in st.objs if o.contact in HAND_STATES]
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
        if any(SPECS[o.cls].mount != "free" for o in hand):
            return False  # seated: only hand-held things
        if st.facing not in (FACING_LEFT, FACING_RIGHT):
            return False
    if hand and st.facing not in (FACING_LEFT, FACING_RIGHT):
        return False
    return True


# --------------------------------------------------------------------------
# Transitions (every draw comes from the video's generator, in a fixed order)


def random_slot(rng: np.random.Generator, o: ObjectState, side: int | None = None) -> None:
    """Place ``o`` in a random slot allowed by its mount (in place)."""
    mount = SPECS[o.cls].mount
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


def initial_state(rng: np.random.Generator, classes: list[str]) -> SceneState:
    """A random first state; some videos start mid-action."""
    facing = int(rng.choice([-1, 1, 0, 2], p=[0.4, 0.4, 0.15, 0.05]))
    objs = []
    for c in classes:
        o = ObjectState(c, "stand" if c == "floor" else "none")
        random_slot(rng, o)
        objs.append(o)
    st = SceneState(facing, objs)
    for _ in range(int(rng.integers(0, 4))):  # start some videos mid-action
        nxt = contact_event(rng, st)
        if nxt is not None:
            st = nxt
    return st


def contact_event(rng: np.random.Generator, st: SceneState) -> SceneState | None:
    """Advance one object's contact state along its class graph."""
    cands = [i for i, o in enumerate(st.objs) if GRAPH[o.cls].get(o.contact)]
    if not cands:
        return None
    i = cands[int(rng.integers(len(cands)))]
    new = copy.deepcopy(st)
    o = new.objs[i]
    nbrs = GRAPH[o.cls][o.contact]
    old, o.contact = o.contact, nbrs[int(rng.integers(len(nbrs)))]
    if (o.contact in HAND_STATES or o.contact == "sit") and new.facing not in (-1, 1):
        new.facing = int(rng.choice([-1, 1]))
    if o.contact == "none" and old != "none":  # let go: it stays near the hand
        random_slot(rng, o, side=new.facing if new.facing in (-1, 1) else None)
        if o.h == "over":
            o.h = "near"
        if o.v == "above":
            o.v = "level"
    return new if feasible(new) else None


def move_event(rng: np.random.Generator, st: SceneState) -> SceneState | None:
    """Move one untouched object to another slot."""
    cands = [
        i for i, o in enumerate(st.objs) if o.contact == "none" and SPECS[o.cls].mount != "band"
    ]
    if not cands:
        return None
    new = copy.deepcopy(st)
    o = new.objs[cands[int(rng.integers(len(cands)))]]
    mount = SPECS[o.cls].mount
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


def turn_event(rng: np.random.Generator, st: SceneState) -> SceneState | None:
    """Turn the person (only between the profiles while a hand or the seat
    is used; never while lying)."""
    posture, _ = body_posture(st)
    if posture == "lie":
        return None
    hand = [o for o in st.objs if o.contact in HAND_STATES]
    new = copy.deepcopy(st)
    if posture == "sit" or hand:
        if any(SPECS[o.cls].mount != "free" for o in hand):
            return None  # hand on fixed furniture: keep facing it
        new.facing = -st.facing
    else:
        opts = [f for f in (-1, 1, 0, 2) if f != st.facing]
        p = np.array([0.45 if f in (-1, 1) else (0.3 if f == 0 else 0.1) for f in opts])
        new.facing = int(rng.choice(opts, p=p / p.sum()))
    return new if feasible(new) else None


def propose_event(rng: np.random.Generator, st: SceneState) -> SceneState | None:
    """A random event (contact 50 %, move 30 %, turn 20 %); None when the
    drawn kind is impossible in ``st``."""
    kind = int(rng.choice(3, p=[0.5, 0.3, 0.2]))
    if kind == 0:
        return contact_event(rng, st)
    if kind == 1:
        return move_event(rng, st)
    return turn_event(rng, st)
