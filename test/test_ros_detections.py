"""Entities from the robot's detector, without rclpy: vision_msgs/Detection2DArray
(rosbags' classes of the fixture package) -> class map -> boxes and labels -> the
pipeline and the real streaming engine (small random-init config)."""

from __future__ import annotations

import math
import threading
import time

import numpy as np
import pytest
from ros_fixtures import (
    VISION_MSGS,
    FakeEngine,
    classes,
    detection_array,
    image_msg,
    random_rgb,
    vision_typestore,
)

from tr2_core.errors import ConfigError
from tr2_core.vocab import OBJECT_INDEX
from tr2_ros.detections import ClassMap, DetectionBuffer, entities_from_detections
from tr2_ros.params import NodeParams
from tr2_ros.pipeline import ScenePipeline

CUP, CHAIR, PERSON = OBJECT_INDEX["cup/glass/bottle"], OBJECT_INDEX["chair"], OBJECT_INDEX["person"]

# RIHS01 hashes of vision_msgs 4.1.1 (ROS 2 Jazzy), computed from the upstream .msg
# files: the fixture package must produce the same types as the real one.
VISION_HASHES = {
    "Detection2DArray": "RIHS01_214274120007f4a683866481336b70310268cfa107aebe9d594a6acf75bda968",
    "Detection2D": "RIHS01_0d12b69df5c593b3455b7346fac8205437a7d4bcb09b9e0e0b2dde787ded38ea",
    "BoundingBox2D": "RIHS01_008eacbb0cf8f26e83795547bed013eec3675485ef386ec056d80eaaf1c1ce2f",
}


def test_fixture_vision_msgs_has_the_real_type_hashes():
    store = vision_typestore()
    for name, expected in VISION_HASHES.items():
        assert store.hash_rihs01(f"vision_msgs/msg/{name}") == expected, name
    assert (VISION_MSGS / "package.xml").read_text().count("<name>vision_msgs</name>") == 1


def _coco_map(tmp_path, text="person: person\ncup: cup/glass/bottle\n41: cup/glass/bottle\n"):
    path = tmp_path / "map.yaml"
    path.write_text(text + "dog: null\n")
    return ClassMap.load(path)


def test_class_map_file(tmp_path):
    class_map = _coco_map(tmp_path)
    assert class_map.lookup("cup") == CUP and class_map.lookup(41) == CUP
    assert class_map.lookup("41") == CUP and class_map.lookup("dog") is None
    assert class_map.lookup("giraffe") is None and class_map.source.endswith("map.yaml")
    default = ClassMap.action_genome()
    assert default.lookup("cup/glass/bottle") == CUP and default.lookup("cup") is None
    assert len(default.classes) == 36


def test_shipped_coco_class_map_names_only_action_genome_classes():
    from pathlib import Path

    path = Path(__file__).resolve().parent.parent / "config" / "class_map_coco.yaml"
    class_map = ClassMap.load(path)
    assert class_map.lookup("person") == PERSON and class_map.lookup("cup") == CUP
    assert class_map.lookup("dining table") == OBJECT_INDEX["table"]


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("cup: mug\n", "class 'cup' maps to 'mug', which is not one of Action Genome's 36"),
        ("cup: __background__\n", "'__background__', which is not one"),
        ("- cup\n", "expected a mapping"),
        ("cup: null\n", "every class is dropped"),
        ("cup: [1\n", "cannot read"),
    ],
)
def test_bad_class_maps_name_the_file_and_class(tmp_path, text, reason):
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError, match="class map .*bad.yaml") as err:
        ClassMap.load(path)
    assert reason in str(err.value)


def test_entities_person_first_unmapped_and_invalid_counted(tmp_path):
    msg = detection_array(
        detections=[
            ("cup", 0.8, (10, 20, 30, 60)),
            ("dog", 0.9, (0, 0, 5, 5)),  # mapped to null: dropped
            ("person", 0.95, (40, 10, 90, 110)),
            ([("giraffe", 0.7), ("cup", 0.2)], (1, 1, 2, 2)),  # best class unmapped
            ([], (1, 1, 2, 2)),  # no hypothesis
            ("cup", 0.5, (5, 5, 5, 9)),  # empty box
        ]
    )
    given = entities_from_detections(msg, _coco_map(tmp_path))
    assert given.labels.tolist() == [PERSON, CUP]
    np.testing.assert_allclose(given.boxes, [[40, 10, 90, 110], [10, 20, 30, 60]])
    np.testing.assert_allclose(given.scores, [0.95, 0.8])
    assert (given.unmapped, given.invalid) == (2, 2)
    assert given.boxes.dtype == np.float32 and given.labels.dtype == np.int64


def test_rotated_boxes_become_their_bounds():
    msg = detection_array(detections=[("person", 1.0, (0, 0, 40, 20))], theta=math.pi / 2)
    given = entities_from_detections(msg, ClassMap.action_genome())
    np.testing.assert_allclose(given.boxes, [[10, -10, 30, 30]], atol=1e-5)


def test_buffer_matches_exactly_or_within_the_tolerance():
    exact = DetectionBuffer()
    for sec in (1, 2, 3):
        exact.put(detection_array((sec, 0)))
    assert exact.match(2 * 10**9).header.stamp.sec == 2
    assert exact.match(2 * 10**9 + 1) is None  # no wait: a later message already came
    near = DetectionBuffer(tolerance_ns=30_000_000)
    near.put(detection_array((2, 0)))
    near.put(detection_array((2, 25_000_000)))
    assert near.match(2 * 10**9 + 20_000_000).header.stamp.nanosec == 25_000_000
    assert near.match(2 * 10**9 + 60_000_000, timeout=0.0) is None


def test_buffer_waits_for_detections_published_after_their_image():
    buffer = DetectionBuffer()
    later = threading.Timer(0.2, lambda: buffer.put(detection_array((5, 0))))
    later.start()
    start = time.monotonic()
    assert buffer.match(5 * 10**9, timeout=5.0) is not None
    assert time.monotonic() - start < 4.0
    later.join()
    start = time.monotonic()
    assert buffer.match(6 * 10**9, timeout=0.3) is None  # bounded wait
    assert 0.25 < time.monotonic() - start < 3.0


def _pipeline(engine, **params):
    warnings: list[str] = []
    graphs: list = []
    pipeline = ScenePipeline(
        engine,
        classes(),
        NodeParams(**{"mode": "predcls", "detections_wait_s": 0.0, **params}),
        publish_graph=graphs.append,
        warn=warnings.append,
        error=warnings.append,
    )
    return pipeline, graphs, warnings


def test_pipeline_gives_the_detections_to_the_engine():
    engine = FakeEngine()
    pipeline, graphs, warnings = _pipeline(engine)
    pipeline.on_detections(
        detection_array((7, 0), [("chair", 0.6, (1, 2, 11, 12)), ("person", 0.9, (3, 3, 9, 9))])
    )
    assert pipeline.process(image_msg(random_rgb(20, 20), stamp=(7, 0))) is not None
    given = engine.inputs[0]
    assert given["labels"].tolist() == [PERSON, CHAIR]
    np.testing.assert_allclose(given["boxes"], [[3, 3, 9, 9], [1, 2, 11, 12]])
    np.testing.assert_allclose(given["scores"], [0.9, 0.6])
    # an image without detections is skipped and counted, with its reason
    assert pipeline.process(image_msg(random_rgb(20, 20), stamp=(8, 0))) is None
    assert pipeline.stats().unmatched == 1 and len(graphs) == 1
    assert "no detections for frame (stamp 8.000000000" in warnings[0]


def test_sgdet_pipeline_ignores_detections():
    engine = FakeEngine()
    pipeline, _, _ = _pipeline(engine, mode="sgdet")
    pipeline.on_detections(detection_array((7, 0), [("person", 0.9, (3, 3, 9, 9))]))
    pipeline.process(image_msg(random_rgb(20, 20), stamp=(7, 0)))
    assert "boxes" not in engine.inputs[0]


@pytest.fixture(scope="module")
def model():
    import torch

    from tr2_core.run import build_model

    torch.manual_seed(0)
    return build_model("tr2-small", random_init=True)


@pytest.mark.parametrize("rate_hz", [1.0, 0.5])
def test_a_slow_camera_with_detections_keeps_ids_and_fills_the_window(model, rate_hz):
    """Detection2DArray in -> SceneGraph out with those boxes; a static scene at 1 Hz and
    0.5 Hz keeps its track ids and the window fills to W (default max_gap_s)."""
    from tr2_core.stream.engine import StreamingEngine

    engine = StreamingEngine(model.extractor, model.relation, window=3, mode="predcls")
    pipeline, graphs, warnings = _pipeline(engine)
    boxes = [("person", 0.9, (10, 10, 60, 90)), ("cup", 0.7, (70, 30, 100, 60))]
    class_map = ClassMap({"person": PERSON, "cup": CUP}, "test")
    pipeline.class_map = class_map
    period = int(1e9 / rate_hz)
    for t in range(5):
        sec, nanosec = divmod(10**9 + t * period, 10**9)
        pipeline.on_detections(detection_array((sec, nanosec), boxes))
        pipeline.on_image(image_msg(random_rgb(96, 128, seed=t), stamp=(sec, nanosec)))
        assert pipeline.step(timeout=0)
    assert warnings == [] and len(graphs) == 5
    assert [len(g.window_stamps) for g in graphs] == [1, 2, 3, 3, 3]
    tracks = [[int(n.track_id) for n in g.nodes] for g in graphs]
    assert all(t == tracks[0] for t in tracks) and len(set(tracks[0])) == 2
    last = graphs[-1]
    assert [n.label for n in last.nodes] == ["person", "cup/glass/bottle"]
    np.testing.assert_allclose(
        [list(n.box_xyxy) for n in last.nodes], [[10, 10, 60, 90], [70, 30, 100, 60]]
    )
    np.testing.assert_allclose([n.score for n in last.nodes], [0.9, 0.7], rtol=1e-6)
    assert len(last.edges) == 1


def test_sgcls_takes_the_boxes_and_the_models_labels(model):
    from tr2_core.stream.engine import StreamingEngine

    # score_threshold 0: in sgcls the scores are the (random-init) classifier's
    engine = StreamingEngine(model.extractor, model.relation, mode="sgcls", score_threshold=0.0)
    pipeline, graphs, warnings = _pipeline(engine, mode="sgcls")
    boxes = [("person", 0.9, (10, 10, 60, 90)), ("cup/glass/bottle", 0.7, (70, 30, 100, 60))]
    pipeline.on_detections(detection_array((3, 0), boxes))
    pipeline.process(image_msg(random_rgb(96, 128), stamp=(3, 0)))
    assert warnings == [] and len(graphs) == 1
    nodes = graphs[0].nodes
    np.testing.assert_allclose([list(n.box_xyxy) for n in nodes], [b[2] for b in boxes])
    assert len(graphs[0].edges) == 1  # the detector's person is the pair's subject
    assert all(n.label in OBJECT_INDEX for n in nodes)  # the object classifier's answer
