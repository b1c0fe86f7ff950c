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
                    "spatial": {...}, "contacting": {...},
                    "triplets": [[3, "looking_at", 7], [7, "in_front_of", 3],
                                 [3, "holding", 7]]}, ...]}

``subject`` / ``object`` are rows into ``entities`` (the pair: the person, the
object); ``triplets`` lists the predicates that hold as ``[first track, predicate,
second track]`` in Action Genome's reading order: ``<person, predicate, object>`` for
attention and contacting, ``<object, predicate, person>`` for spatial (the cup is in
front of the person; ``tr2/msg/SceneGraphEdge`` documents the same). ``holding`` lists the
predicates that hold, best first, as decided by
:func:`tr2_core.scene_graph.decode_scene_graph`: the top one for single-label
attention, every one scoring at least the relation threshold for spatial and
contacting (as in the ``tr2/msg/PredicateScores`` message). A frame that could
not be processed has ``"error": reason`` instead of ``entities`` /
``relations``.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from tr2_core.scene_graph import decode_scene_graph
from tr2_core.types import PredicateScores, SceneGraph, SceneGraphResult
from tr2_core.vocab import FAMILIES, OBJECT_CLASSES, PREDICATES, reading_order

_DIGITS = 5


def _rounded(value: float) -> float:
    return float(np.round(np.float64(value), _DIGITS))  # as the arrays: np.round, not round()


def _family_record(answer: PredicateScores) -> dict[str, Any]:
    """Top predicate, holding predicates (best first) and all scores of one family."""
    scores = np.asarray(answer.scores, dtype=np.float64).round(_DIGITS).tolist()
    names = PREDICATES[answer.first_predicate_id : answer.first_predicate_id + len(scores)]
    return {
        "top": PREDICATES[answer.top],
        "top_id": answer.top,
        "top_score": _rounded(answer.top_score),
        "holding": [PREDICATES[i] for i in answer.holding],
        "scores": dict(zip(names, scores, strict=True)),
    }


def graph_record(
    graph: SceneGraph, frame: int, *, image_size: tuple[int, int], source: str | None = None
) -> dict[str, Any]:
    """The JSON-ready dict of one frame's decoded graph (layout in the module docstring).

    Args:
        graph: the frame's decoded scene graph.
        frame: frame index in the input (0-based).
        image_size: (width, height) in pixels.
        source: file name of the frame (image folders), if any.
    """
    entities = [
        {
            "track_id": node.track_id,
            "label_id": node.label,
            "label": OBJECT_CLASSES[node.label],
            "score": _rounded(node.score),
            "box": np.asarray(node.box, dtype=np.float64).round(2).tolist(),
        }
        for node in graph.nodes
    ]
    relations = []
    for edge in graph.edges:
        person, obj = graph.nodes[edge.subject].track_id, graph.nodes[edge.object].track_id
        triplets = [
            [first, PREDICATES[i], second]
            for f in FAMILIES
            for first, second in [reading_order(f.name, person, obj)]
            for i in getattr(edge, f.name).holding
        ]
        relations.append(
            {
                "subject_track": person,
                "object_track": obj,
                "subject": edge.subject,
                "object": edge.object,
                **{f.name: _family_record(getattr(edge, f.name)) for f in FAMILIES},
                "triplets": triplets,
            }
        )
    return {
        **frame_header(frame, graph.stamp_ns, source),
        "image_size": [int(image_size[0]), int(image_size[1])],
        "window_stamps_ns": graph.window_stamps_ns.tolist(),
        "entities": entities,
        "relations": relations,
    }


def result_record(
    result: SceneGraphResult,
    frame: int,
    *,
    image_size: tuple[int, int],
    source: str | None = None,
    relation_threshold: float = 0.5,
) -> dict[str, Any]:
    """:func:`graph_record` of the result decoded with ``relation_threshold``.

    Raises:
        InvalidSceneGraph: the result is malformed.
    """
    graph = decode_scene_graph(result, relation_threshold=relation_threshold)
    return graph_record(graph, frame, image_size=image_size, source=source)


def frame_header(frame: int, stamp_ns: int, source: str | None) -> dict[str, Any]:
    """The keys every line has: frame index, stamp (ns and s), source file."""
    return {"frame": frame, "stamp_ns": stamp_ns, "time_s": stamp_ns / 1e9, "source": source}


def error_record(frame: int, stamp_ns: int, source: str | None, reason: str) -> dict[str, Any]:
    """The line of a frame that could not be processed."""
    return {**frame_header(frame, stamp_ns, source), "error": reason}
