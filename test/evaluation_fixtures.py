"""Hand-built evaluation frames for the evaluator's tests: a person with a cup and a
book at fixed boxes, GT frames from predicate names, and predictions from per-frame
boxes and pair scores."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from tr2_core.types import Predictions
from tr2_core.vocab import ATTENTION, CONTACTING, OBJECT_INDEX, PREDICATE_INDEX, SPATIAL

P = PREDICATE_INDEX
CUP = OBJECT_INDEX["cup/glass/bottle"]
BOOK = OBJECT_INDEX["book"]
PERSON_BOX = (10.0, 10.0, 109.0, 209.0)
CUP_BOX = (150.0, 50.0, 189.0, 89.0)
BOOK_BOX = (200.0, 120.0, 259.0, 169.0)


def gt_frame(key: str, objects: Sequence[tuple[int, tuple, Sequence[str]]]) -> dict:
    """One GT frame: person + objects ``(label, box, predicate names)``."""
    boxes = [PERSON_BOX] + [o[1] for o in objects]
    labels = [1] + [o[0] for o in objects]
    triplets = []
    for m, (_, _, names) in enumerate(objects, start=1):
        for name in names:
            p = P[name]
            spatial = SPATIAL.start <= p < SPATIAL.stop
            triplets.append((m, 0, p) if spatial else (0, m, p))
    return {"key": key, "boxes": boxes, "labels": labels, "triplets": triplets}


def scores(att=None, sp=None, ct=None) -> tuple[list[float], list[float], list[float]]:
    """Score vectors from {name: value} dicts (others 0)."""
    out = []
    for fam, given in ((ATTENTION, att), (SPATIAL, sp), (CONTACTING, ct)):
        vec = [0.0] * fam.size
        for name, v in (given or {}).items():
            vec[P[name] - fam.start] = v
        out.append(vec)
    return out[0], out[1], out[2]


def predictions(frames: Sequence[dict]) -> Predictions:
    """Frames: ``key``, ``boxes`` [(label, box, score)], ``pairs`` [(s, o, (att, sp, ct))]."""
    keys, bf, boxes, labels, bscores = [], [], [], [], []
    ps, po, att, sp, ct = [], [], [], [], []
    for f, frame in enumerate(frames):
        keys.append(frame["key"])
        base = len(boxes)
        for label, box, score in frame["boxes"]:
            bf.append(f)
            boxes.append(box)
            labels.append(label)
            bscores.append(score)
        for s, o, (a, b, c) in frame["pairs"]:
            ps.append(base + s)
            po.append(base + o)
            att.append(a)
            sp.append(b)
            ct.append(c)
    return Predictions(
        frame_keys=np.asarray(keys, dtype=str),
        box_frame=np.asarray(bf, dtype=np.int64),
        boxes=np.asarray(boxes, dtype=np.float32).reshape(-1, 4),
        box_labels=np.asarray(labels, dtype=np.int64),
        box_scores=np.asarray(bscores, dtype=np.float32),
        pair_subject=np.asarray(ps, dtype=np.int64),
        pair_object=np.asarray(po, dtype=np.int64),
        attention=np.asarray(att, dtype=np.float32).reshape(-1, 3),
        spatial=np.asarray(sp, dtype=np.float32).reshape(-1, 6),
        contacting=np.asarray(ct, dtype=np.float32).reshape(-1, 17),
    )
