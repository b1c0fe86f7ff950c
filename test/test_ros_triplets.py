"""The planner-side helper: SceneGraph message -> plain Python triplets per
family, thresholded (ROS-free: rosbags' message classes)."""

from __future__ import annotations

import numpy as np
import pytest
from ros_fixtures import classes, header, make_result

from tr2_core.vocab import CONTACTING, PREDICATES, SPATIAL
from tr2_ros.conversions import build_scene_graph
from tr2_ros.triplets import FAMILY_NAMES, Triplet, format_frame, scene_graph_triplets


def _graph(result=None):
    result = make_result(3) if result is None else result
    return build_scene_graph(result, header(), classes(), image_width=64, image_height=48)


def _hand_made_result():
    """Person (track 100) with a cup (label 8, track 101): known scores."""
    result = make_result(2)
    result.attention[:] = [[0.7, 0.2, 0.1]]
    result.spatial[:] = 0.0
    result.spatial[0, 2] = 0.9  # in_front_of
    result.contacting[:] = 0.1
    result.contacting[0, 5] = 0.8  # holding
    result.contacting[0, 13] = 0.6
    result.entity_labels[1] = 8
    return result


def test_triplets_hold_labels_tracks_predicates_and_scores():
    graph = _graph(_hand_made_result())
    triplets = scene_graph_triplets(graph, threshold=0.5)
    assert list(triplets) == list(FAMILY_NAMES)
    person, obj = graph.nodes[0].label, graph.nodes[1].label
    assert triplets["attention"] == [
        Triplet(person, 100, "looking_at", obj, 101, pytest.approx(0.7))
    ]
    assert triplets["spatial"] == [  # object first: the chair is in front of the person
        Triplet(obj, 101, PREDICATES[SPATIAL.start + 2], person, 100, pytest.approx(0.9))
    ]
    contacting = triplets["contacting"]
    assert [t.predicate for t in contacting] == [
        PREDICATES[CONTACTING.start + 5],
        PREDICATES[CONTACTING.start + 13],
    ]  # best first
    subject, subject_track, predicate, object_, object_track, score = contacting[0]  # plain tuple
    assert (subject, subject_track, object_, object_track) == ("person", 100, obj, 101)
    assert score == pytest.approx(0.8) and predicate == "holding"


def test_thresholds_per_family_and_family_selection():
    graph = _graph(_hand_made_result())
    triplets = scene_graph_triplets(
        graph, threshold={"contacting": 0.7, "spatial": 0.95}, families=("spatial", "contacting")
    )
    assert list(triplets) == ["spatial", "contacting"]
    assert triplets["spatial"] == []
    assert [t.predicate for t in triplets["contacting"]] == ["holding"]
    everything = scene_graph_triplets(graph, threshold=0.0)
    assert [len(v) for v in everything.values()] == [3, 6, 17]


def test_every_edge_of_a_random_graph_counts():
    graph = _graph(make_result(5, seed=3))
    triplets = scene_graph_triplets(graph, threshold=0.0)
    assert len(triplets["contacting"]) == 4 * 17
    scores = [t.score for t in triplets["contacting"]]
    assert scores == sorted(scores, reverse=True)
    assert {t.object_track for t in triplets["contacting"]} == {101, 102, 103, 104}
    assert {t.subject_track for t in triplets["spatial"]} == {101, 102, 103, 104}  # object first
    assert {t.object_track for t in triplets["spatial"]} == {100}


def test_bad_input_is_named():
    graph = _graph()
    with pytest.raises(ValueError, match="unknown predicate families"):
        scene_graph_triplets(graph, families=("touching",))
    graph.edges[0].object_id = 99
    with pytest.raises(ValueError, match="edge 0 points at nodes"):
        scene_graph_triplets(graph)


def test_format_frame_prints_one_line_per_triplet():
    graph = _graph(_hand_made_result())
    text = format_frame(graph, scene_graph_triplets(graph, threshold=0.5))
    lines = text.splitlines()
    assert lines[0].startswith("frame 12.000000345 'camera': 2 nodes, 1 edges, 4 triplets")
    assert "contacting person#100 holding" in " ".join(lines[1:]).replace("  ", " ")
    assert np.isclose(float(lines[-1].split()[-1]), 0.6)


def test_spatial_direction_matches_the_scene():
    """A scene whose true direction is known: a cup held above the person's head and a
    floor beneath their feet (the spatial labels the synthetic world derives from the
    geometry, Action Genome's rules). The planner must read <cup, above, person> and
    <floor, beneath, person>, never <person, above, cup>."""
    from tr2_core.data.synthetic.labels import spatial_relations
    from tr2_core.vocab import OBJECT_INDEX

    person = np.array([100, 100, 160, 300], np.float32)
    objects = np.array([[115, 20, 145, 60], [60, 290, 220, 330]], np.float32)  # cup, floor
    truth = spatial_relations(objects, person, np.array([False, False]))
    result = make_result(3)
    result.entity_boxes[:] = np.concatenate([person[None], objects])
    result.entity_labels[:] = [1, OBJECT_INDEX["cup/glass/bottle"], OBJECT_INDEX["floor"]]
    result.spatial[:] = truth.astype(np.float32)
    graph = _graph(result)
    spatial = scene_graph_triplets(graph, threshold=0.5)["spatial"]
    assert {(t.subject, t.predicate, t.object) for t in spatial} >= {
        ("cup/glass/bottle", "above", "person"),
        ("floor", "beneath", "person"),
    }
    centre_y = {int(n.track_id): (n.box_xyxy[1] + n.box_xyxy[3]) / 2 for n in graph.nodes}
    for t in spatial:  # the image agrees with each reading: "first is above second" ...
        assert t.object == "person"
        first, second = centre_y[t.subject_track], centre_y[t.object_track]
        if t.predicate in ("above", "beneath"):
            assert (first < second) == (t.predicate == "above"), t
    text = format_frame(graph, {"spatial": spatial})
    assert "cup/glass/bottle#101 above person#100" in text
