"""Action Genome vocabularies: object classes, predicates and predicate families.

Index order is part of the benchmark (see ``docs/action-genome.md``):
object index 0 is the background, 1 is ``person``; predicates use one global
0..25 index split into three families. Code refers to families through
:data:`FAMILIES` (named slices), never through literal ``[:3]`` / ``[3:9]``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TypeVar

OBJECT_CLASSES: tuple[str, ...] = (
    "__background__",
    "person", "bag", "bed", "blanket", "book", "box", "broom", "chair",
    "closet/cabinet", "clothes", "cup/glass/bottle", "dish", "door", "doorknob",
    "doorway", "floor", "food", "groceries", "laptop", "light", "medicine",
    "mirror", "paper/notebook", "phone/camera", "picture", "pillow",
    "refrigerator", "sandwich", "shelf", "shoe", "sofa/couch", "table",
    "television", "towel", "vacuum", "window",
)  # fmt: skip
"""Object classes in AG order; index 0 is the background."""

PERSON: int = 1
"""Object index of ``person``: the subject of every AG relation."""

NUM_OBJECT_CLASSES: int = len(OBJECT_CLASSES)  # 37, background included

PREDICATES: tuple[str, ...] = (
    # attention 0..2
    "looking_at", "not_looking_at", "unsure",
    # spatial 3..8
    "above", "beneath", "in_front_of", "behind", "on_the_side_of", "in",
    # contacting 9..25
    "carrying", "covered_by", "drinking_from", "eating", "have_it_on_the_back",
    "holding", "leaning_on", "lying_on", "not_contacting", "other_relationship",
    "sitting_on", "standing_on", "touching", "twisting", "wearing", "wiping",
    "writing_on",
)  # fmt: skip
"""Predicates in AG order (underscore spelling, global index 0..25)."""

NUM_PREDICATES: int = len(PREDICATES)  # 26


@dataclass(frozen=True)
class Family:
    """One predicate family: a contiguous block of the global predicate index."""

    name: str
    start: int
    stop: int
    multi_label: bool
    """Attention is single-label (softmax); spatial and contacting are multi-label."""

    @property
    def slice(self) -> slice:
        return slice(self.start, self.stop)

    @property
    def size(self) -> int:
        return self.stop - self.start

    @property
    def predicates(self) -> tuple[str, ...]:
        return PREDICATES[self.start : self.stop]


ATTENTION = Family("attention", 0, 3, multi_label=False)
SPATIAL = Family("spatial", 3, 9, multi_label=True)
CONTACTING = Family("contacting", 9, 26, multi_label=True)
FAMILIES: tuple[Family, ...] = (ATTENTION, SPATIAL, CONTACTING)
"""The three families in the order the evaluator builds its rows."""

FAMILY_BY_NAME: dict[str, Family] = {f.name: f for f in FAMILIES}

T = TypeVar("T")

OBJECT_FIRST_FAMILIES: frozenset[str] = frozenset({SPATIAL.name})
"""Families whose triplets read ``<object, predicate, person>``: Action Genome's spatial
relations say where the object is relative to the person (``<cup, in_front_of,
person>``; its evaluation builds them on the reversed pair), attention and contacting
read ``<person, predicate, object>``."""


def reading_order(family: str, person: T, obj: T) -> tuple[T, T]:
    """(first, second) of a ``<first, predicate, second>`` triplet of ``family`` for the
    pair (person, object), as Action Genome reads it (:data:`OBJECT_FIRST_FAMILIES`)."""
    return (obj, person) if family in OBJECT_FIRST_FAMILIES else (person, obj)


# The release's .txt files glue multi-word names; map them back by index.
_GLUED = str.maketrans("", "", "/_ ")


def glued(name: str) -> str:
    """The spelling used in ``object_classes.txt`` / ``relationship_classes.txt``."""
    return name.translate(_GLUED)


OBJECT_INDEX: dict[str, int] = {name: i for i, name in enumerate(OBJECT_CLASSES)}
PREDICATE_INDEX: dict[str, int] = {name: i for i, name in enumerate(PREDICATES)}


def family_of(predicate: int) -> Family:
    """The family that global predicate index ``predicate`` belongs to."""
    for family in FAMILIES:
        if family.start <= predicate < family.stop:
            return family
    raise ValueError(f"predicate index {predicate} is outside 0..{NUM_PREDICATES - 1}")


def readable(name: str) -> str:
    """Human form for prompts and plots: ``in_front_of`` -> ``in front of``,
    ``closet/cabinet`` -> ``closet or cabinet``."""
    return name.replace("_", " ").replace("/", " or ")
