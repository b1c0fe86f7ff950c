"""The planner side: a ``tr2/msg/SceneGraph`` as plain Python triplets.

ROS-free (works on the message's fields, so on rclpy's messages, rosbags'
messages and anything shaped like them)::

    from tr2_ros.triplets import scene_graph_triplets

    def on_graph(msg):
        for family, triplets in scene_graph_triplets(msg, threshold=0.5).items():
            for t in triplets:
                print(family, *t)  # subject, track, predicate, object, track, score

Spatial triplets read ``<object, predicate, person>`` (``cup in_front_of person``), as
Action Genome defines them and ``SceneGraphEdge.msg`` documents; attention and
contacting ``<person, predicate, object>``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, NamedTuple

from tr2_core.vocab import FAMILIES, PREDICATES, reading_order

FAMILY_NAMES: tuple[str, ...] = tuple(f.name for f in FAMILIES)
"""Predicate families in message order: attention, spatial, contacting."""


class Triplet(NamedTuple):
    """<subject, predicate, object> with the entities' stable track ids and the score,
    in Action Genome's reading order (as ``SceneGraphEdge.msg`` documents it): attention
    and contacting read <person, predicate, object> (``person holding cup``), spatial
    reads <object, predicate, person> (``cup in_front_of person``: where the object is
    relative to the person). So ``subject`` is the edge's object node for spatial
    triplets (:data:`tr2_core.vocab.OBJECT_FIRST_FAMILIES`).

    A plain tuple: ``(subject, subject_track, predicate, object, object_track, score)``.
    Track ids are ``SceneGraphNode.track_id`` (-1 where no tracker follows the entity).
    """

    subject: str
    subject_track: int
    predicate: str
    object: str
    object_track: int
    score: float


def scene_graph_triplets(
    msg: Any,
    *,
    threshold: float | Mapping[str, float] = 0.5,
    families: Sequence[str] = FAMILY_NAMES,
    predicates: Sequence[str] = PREDICATES,
) -> dict[str, list[Triplet]]:
    """Triplets of one SceneGraph message per predicate family, best first.

    Args:
        msg: a ``tr2/msg/SceneGraph`` (nodes, edges with attention / spatial /
            contacting ``PredicateScores``).
        threshold: a predicate is kept when its score is at least this; one
            value for every family or one per family name (missing: 0.5).
            Attention scores are softmax probabilities, spatial and contacting
            independent sigmoids.
        families: which families to return (keys of the result, in this order).
        predicates: predicate names by global index (``Vocabulary.predicates``;
            default: Action Genome's).

    Returns:
        family name -> triplets sorted by descending score (empty lists included).

    Raises:
        ValueError: an unknown family name, or an edge pointing outside the nodes.
    """
    unknown = [f for f in families if f not in FAMILY_NAMES]
    if unknown:
        raise ValueError(f"unknown predicate families {unknown}; known: {list(FAMILY_NAMES)}")
    nodes = list(msg.nodes)
    out: dict[str, list[Triplet]] = {family: [] for family in families}
    for k, edge in enumerate(msg.edges):
        s, o = int(edge.subject_id), int(edge.object_id)
        if not (0 <= s < len(nodes) and 0 <= o < len(nodes)):
            raise ValueError(
                f"edge {k} points at nodes ({s}, {o}) but the message has {len(nodes)} nodes"
            )
        for family in families:
            subject, obj = reading_order(family, nodes[s], nodes[o])
            scores = getattr(edge, family)
            cut = threshold.get(family, 0.5) if isinstance(threshold, Mapping) else threshold
            first = int(scores.first_predicate_id)
            for i, score in enumerate(scores.scores):
                if float(score) >= cut:
                    out[family].append(
                        Triplet(
                            str(subject.label), int(subject.track_id), predicates[first + i],
                            str(obj.label), int(obj.track_id), float(score),
                        )
                    )  # fmt: skip
    for triplets in out.values():
        triplets.sort(key=lambda t: -t.score)
    return out


def format_frame(msg: Any, triplets: Mapping[str, list[Triplet]]) -> str:
    """Lines ``tr2_listen`` prints for one frame: a header line, then one per triplet."""
    stamp = msg.header.stamp
    count = sum(len(v) for v in triplets.values())
    lines = [
        f"frame {int(stamp.sec)}.{int(stamp.nanosec):09d} '{msg.header.frame_id}':"
        f" {len(msg.nodes)} nodes, {len(msg.edges)} edges, {count} triplets"
        f" (dropped {int(msg.dropped_frames)}, rejected {int(msg.rejected_frames)})"
    ]
    for family, family_triplets in triplets.items():
        lines += [
            f"  {family:<10} {t.subject}#{t.subject_track} {t.predicate}"
            f" {t.object}#{t.object_track} {t.score:.2f}"
            for t in family_triplets
        ]
    return "\n".join(lines)
