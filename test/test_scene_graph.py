"""The scene-graph stage: scores in, decoded graph out; the one place that
decides validity and which predicates hold, shared by the message, the JSONL
record and the overlay."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from ros_fixtures import classes, header, make_result

from tr2_core.runners.records import graph_record
from tr2_core.scene_graph import InvalidSceneGraph, decode_scene_graph, keep_valid
from tr2_core.viz.overlay import edge_captions
from tr2_core.vocab import ATTENTION, CONTACTING, FAMILIES, OBJECT_CLASSES, PREDICATES, SPATIAL
from tr2_ros.conversions import scene_graph_message


def test_holding_predicates_best_first_threshold_inclusive():
    base = make_result(3, seed=4)
    spatial = np.zeros_like(base.spatial)
    spatial[0, [1, 4]] = [0.6, 0.9]
    spatial[0, 2] = 0.4999
    contacting = np.full_like(base.contacting, 0.1)
    contacting[0, 7] = 0.5  # exactly at the threshold: holds
    attention = np.array([[0.2, 0.5, 0.3], [0.6, 0.3, 0.1]], np.float32)
    result = dataclasses.replace(base, spatial=spatial, contacting=contacting, attention=attention)
    graph = decode_scene_graph(result, relation_threshold=0.5)
    edge = graph.edges[0]
    assert edge.spatial.holding == (SPATIAL.start + 4, SPATIAL.start + 1)
    assert edge.spatial.top == SPATIAL.start + 4 and edge.spatial.top_score == pytest.approx(0.9)
    assert edge.contacting.holding == (CONTACTING.start + 7,)
    assert edge.attention.holding == (ATTENTION.start + 1,) == (edge.attention.top,)
    assert graph.edges[1].attention.top == ATTENTION.start
    np.testing.assert_array_equal(edge.spatial.scores, spatial[0])
    assert [(e.subject, e.object) for e in graph.edges] == [(0, 1), (0, 2)]
    assert [n.track_id for n in graph.nodes] == result.entity_track.tolist()
    assert graph.rejected == 0 and graph.stamp_ns == result.stamp_ns
    nothing = decode_scene_graph(result, relation_threshold=1.0)
    assert nothing.edges[0].spatial.holding == () and nothing.edges[0].contacting.holding == ()


def test_keep_valid_drops_rows_and_renumbers_pairs():
    result = make_result(4, seed=2)
    boxes = result.entity_boxes.copy()
    boxes[1] = np.nan
    scores = result.entity_scores.copy()
    scores[3] = 0.05
    contacting = result.contacting.copy()
    result = dataclasses.replace(result, entity_boxes=boxes, entity_scores=scores)
    kept, rejected = keep_valid(result, score_threshold=0.1)
    # entities 1 (NaN box) and 3 (below 0.1) go; pairs (0,1) and (0,3) with them
    assert rejected == 4
    assert kept.entity_track.tolist() == [100, 102]
    assert (kept.pair_subject.tolist(), kept.pair_object.tolist()) == ([0], [1])
    np.testing.assert_array_equal(kept.contacting, contacting[[1]])
    same, none = keep_valid(make_result(4, seed=2))
    assert none == 0 and same.entity_track.tolist() == [100, 101, 102, 103]


def test_non_finite_values_raise_or_are_dropped_for_drawing():
    result = make_result(4, seed=0)
    attention = result.attention.copy()
    attention[2] = np.nan
    result = dataclasses.replace(result, attention=attention)
    with pytest.raises(InvalidSceneGraph, match=r"attention has 3 NaN/inf values in rows \[2\]"):
        decode_scene_graph(result)
    graph = decode_scene_graph(result, drop_invalid=True)
    assert len(graph.edges) == 2 and graph.rejected == 1
    broken = dataclasses.replace(result, pair_object=np.array([1, 2, 9]))
    with pytest.raises(InvalidSceneGraph, match="pair_object points outside"):
        decode_scene_graph(broken, drop_invalid=True)  # malformed is never dropped


def test_message_record_and_overlay_show_the_same_decision():
    graph = decode_scene_graph(make_result(5, seed=7), relation_threshold=0.3)
    msg = scene_graph_message(graph, header(), classes(), image_width=64, image_height=48)
    record = graph_record(graph, 0, image_size=(64, 48))
    captions = edge_captions(graph)
    for edge, msg_edge, rec_edge, caption in zip(
        graph.edges, msg.edges, record["relations"], captions, strict=True
    ):
        for family in FAMILIES:
            holding = [PREDICATES[i] for i in getattr(edge, family.name).holding]
            assert getattr(msg_edge, family.name).predicates == holding
            assert rec_edge[family.name]["holding"] == holding
        assert f" | {PREDICATES[edge.attention.top]}" in caption
        assert caption.startswith(PREDICATES[edge.contacting.top])
        if edge.spatial.holding:  # spatial read object first: "<object> <predicate> person"
            obj = OBJECT_CLASSES[graph.nodes[edge.object].label]
            assert caption.endswith(f" | {obj} {PREDICATES[edge.spatial.holding[0]]} person")
        for i in edge.spatial.holding:
            spatial = [rec_edge["object_track"], PREDICATES[i], rec_edge["subject_track"]]
            assert spatial in rec_edge["triplets"]
        for i in edge.contacting.holding:
            contacting = [rec_edge["subject_track"], PREDICATES[i], rec_edge["object_track"]]
            assert contacting in rec_edge["triplets"]
