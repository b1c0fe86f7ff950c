"""One frame's scene graph as a JSON-ready dict (a line of ``tr2 video --jsonl``).

Line layout (all keys always present for a processed frame)::

    {"frame": 0, "stamp_ns": 0, "time_s": 0.0, "source": "000001.png",
     "image_size": [W, H], "window_stamps_ns": [...],
     "entities": [{"track_id": 3, "label_id": 1, "label": "person", "score": 0.97,
                   "box": [x1, y1, x2, y2]}, ...],
     "relations": [{"subject_track": 3, "object_track": 7,
                    "subject": 0, "object": 1,
                    "attention": {"top": "looking_at", "top_id": 0, "top_score": 0.8,
                                  "holding": ["looking_at"], "scores": {name: score, ...}},
                    "spatial": {...}, "contacting": {...}}, ...]}

``subject`` / ``object`` are rows into ``entities``; ``holding`` lists the
predicates that hold: the top one for single-label attention, every one scoring
at least the relation threshold for spatial and contacting (as in the
``tr2/msg/PredicateScores`` message). A frame that could not be processed has
``"error": reason`` instead of ``entities`` / ``relations``.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from tr2_core.types import SceneGraphResult
from tr2_core.vocab import FAMILIES, OBJECT_CLASSES, PREDICATES, Family

_DIGITS = 5


def _family_records(scores: np.ndarray, family: Family, threshold: float) -> list[dict[str, Any]]:
    """Per pair: top predicate, holding predicates and all scores of ``family``.

    Args:
        scores: (P, family.size) probabilities / sigmoid scores.
    """
    scores = np.asarray(scores, dtype=np.float64).round(_DIGITS)
    names = PREDICATES[family.slice]
    top = scores.argmax(axis=1) if scores.size else np.zeros(0, np.int64)
    holds = scores >= threshold
    if not family.multi_label:
        holds = np.zeros_like(holds)
        holds[np.arange(len(top)), top] = True
    return [
        {
            "top": names[t],
            "top_id": family.start + t,
            "top_score": row[t],
            "holding": [n for n, h in zip(names, hold, strict=True) if h],
            "scores": dict(zip(names, row, strict=True)),
        }
        for t, row, hold in zip(top.tolist(), scores.tolist(), holds.tolist(), strict=True)
    ]


def result_record(
    result: SceneGraphResult,
    frame: int,
    *,
    image_size: tuple[int, int],
    source: str | None = None,
    relation_threshold: float = 0.5,
) -> dict[str, Any]:
    """The JSON-ready dict of one frame (layout in the module docstring).

    Args:
        result: the engine's scene graph of the frame.
        frame: frame index in the input (0-based).
        image_size: (width, height) in pixels.
        source: file name of the frame (image folders), if any.
        relation_threshold: score at which spatial/contacting predicates hold.
    """
    tracks = np.asarray(result.entity_track).tolist()
    labels = np.asarray(result.entity_labels).tolist()
    scores = np.asarray(result.entity_scores, dtype=np.float64).round(_DIGITS).tolist()
    boxes = np.asarray(result.entity_boxes, dtype=np.float64).round(2).tolist()
    entities = [
        {"track_id": t, "label_id": lab, "label": OBJECT_CLASSES[lab], "score": s, "box": b}
        for t, lab, s, b in zip(tracks, labels, scores, boxes, strict=True)
    ]
    subj = np.asarray(result.pair_subject).tolist()
    obj = np.asarray(result.pair_object).tolist()
    per_family = [_family_records(getattr(result, f.name), f, relation_threshold) for f in FAMILIES]
    relations = [
        {
            "subject_track": tracks[s],
            "object_track": tracks[o],
            "subject": s,
            "object": o,
            **{f.name: recs[k] for f, recs in zip(FAMILIES, per_family, strict=True)},
        }
        for k, (s, o) in enumerate(zip(subj, obj, strict=True))
    ]
    return {
        **frame_header(frame, int(result.stamp_ns), source),
        "image_size": [int(image_size[0]), int(image_size[1])],
        "window_stamps_ns": np.asarray(result.window_stamps_ns).tolist(),
        "entities": entities,
        "relations": relations,
    }


def frame_header(frame: int, stamp_ns: int, source: str | None) -> dict[str, Any]:
    """The keys every line has: frame index, stamp (ns and s), source file."""
    return {"frame": frame, "stamp_ns": stamp_ns, "time_s": stamp_ns / 1e9, "source": source}


def error_record(frame: int, stamp_ns: int, source: str | None, reason: str) -> dict[str, Any]:
    """The line of a frame that could not be processed."""
    return {**frame_header(frame, stamp_ns, source), "error": reason}
