"""Debug overlay: shape/dtype kept, input untouched, boxes and arrows drawn
where they belong, captions name the holding predicates."""

from __future__ import annotations

import dataclasses

import numpy as np
from ros_fixtures import make_result

from tr2_core.scene_graph import decode_scene_graph
from tr2_core.types import SceneGraphResult
from tr2_core.viz.overlay import PALETTE, draw_scene_graph, edge_captions
from tr2_core.vocab import CONTACTING, OBJECT_CLASSES, SPATIAL


def _two_boxes() -> SceneGraphResult:
    base = make_result(2, 1)
    contacting = np.zeros_like(base.contacting)
    contacting[0, CONTACTING.predicates.index("holding")] = 0.9
    return dataclasses.replace(
        base,
        entity_track=np.array([0, 3]),
        entity_boxes=np.array([[10, 10, 60, 90], [120, 40, 180, 100]], np.float32),
        contacting=contacting,
        spatial=np.zeros_like(base.spatial),
        attention=np.array([[0.8, 0.1, 0.1]], np.float32),
    )


def test_shape_dtype_and_input_untouched():
    image = np.full((120, 200, 3), 40, np.uint8)
    before = image.copy()
    out = draw_scene_graph(image, _two_boxes())
    assert out.shape == image.shape and out.dtype == np.uint8
    np.testing.assert_array_equal(image, before)
    assert out.flags.writeable


def test_boxes_are_drawn_on_their_outline_in_track_colour():
    image = np.zeros((120, 200, 3), np.uint8)
    out = draw_scene_graph(image, _two_boxes())
    # left edge of box 1 (track 3), below its label and away from the arrow
    assert tuple(out[95, 120]) == PALETTE[3]
    assert tuple(out[80, 10]) == PALETTE[0]  # left edge of box 0 (track 0)
    # the inside of box 1, away from edges, arrow and caption, stays untouched
    assert (out[95, 170] == 0).all()
    # far outside every box nothing is drawn
    assert (out[115, 195] == 0).all()


def test_relation_arrow_between_box_centres():
    image = np.zeros((120, 200, 3), np.uint8)
    out = draw_scene_graph(image, _two_boxes())
    start, end = np.array([35.0, 50.0]), np.array([150.0, 70.0])  # box centres (x, y)
    on_line = [start + t * (end - start) for t in (0.1, 0.2, 0.8, 0.9)]
    for x, y in on_line:
        assert out[int(round(y)), int(round(x))].any(), (x, y)


def test_captions_name_holding_predicates():
    result = _two_boxes()
    assert edge_captions(decode_scene_graph(result)) == ["holding | looking_at"]
    spatial = np.zeros_like(result.spatial)
    spatial[0, SPATIAL.predicates.index("in_front_of")] = 0.7
    contacting = np.zeros_like(result.contacting)
    contacting[0, 0] = 0.2  # nothing holds: the top contacting predicate is shown
    result = dataclasses.replace(result, spatial=spatial, contacting=contacting)
    captions = edge_captions(decode_scene_graph(result))
    cup = OBJECT_CLASSES[int(result.entity_labels[1])]
    # spatial spelled out object first, as Action Genome reads it
    assert captions == [f"{CONTACTING.predicates[0]} | looking_at | {cup} in_front_of person"]


def test_nan_and_out_of_image_boxes_do_not_crash():
    result = make_result(4, seed=1, width=64, height=48)
    boxes = result.entity_boxes.copy()
    boxes[1] = np.nan
    boxes[2] = [-50, -50, 500, 500]
    result = dataclasses.replace(result, entity_boxes=boxes)
    out = draw_scene_graph(np.zeros((48, 64, 3), np.uint8), result)
    assert out.shape == (48, 64, 3) and out.any()


def test_empty_graph_leaves_the_image_unchanged():
    image = np.random.default_rng(0).integers(0, 256, (30, 40, 3), dtype=np.uint8)
    empty = dataclasses.replace(
        make_result(1, 0),
        entity_track=np.zeros(0, np.int64),
        entity_labels=np.zeros(0, np.int64),
        entity_scores=np.zeros(0, np.float32),
        entity_boxes=np.zeros((0, 4), np.float32),
    )
    np.testing.assert_array_equal(draw_scene_graph(image, empty), image)
