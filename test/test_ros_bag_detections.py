"""``tr2 bag`` with entities from the robot's detector: images and
vision_msgs/Detection2DArray in a generated bag (sqlite3 and MCAP; the detections
written after their image, as a detector publishes), the tiny real engine in
predcls; frames without detections and detections of unmapped classes counted."""

from __future__ import annotations

import numpy as np
import pytest
from bag_fixtures import IMAGE_T, T0, TOPIC, TS, raw_image, read_bag
from engine_fixtures import frames, tiny_model
from ros_fixtures import detection_array, vision_typestore
from rosbags.rosbag2 import StoragePlugin, Writer

from tr2_core.cli import main
from tr2_core.stream.engine import StreamingEngine
from tr2_ros.bag import BagError, Detections, process_bag
from tr2_ros.detections import ClassMap

DETECTIONS = "/detections"
DT = 1_000_000_000  # 1 Hz: Action Genome-spaced
BOXES = [
    ("person", 0.9, (5, 4, 30, 44)),
    ("cup", 0.8, (36, 10, 60, 30)),
    ("dog", 0.7, (1, 1, 9, 9)),
]


def write_bag(path, storage: str, n: int, *, missing: tuple[int, ...] = ()):
    """``n`` images at 1 Hz on TOPIC; each image's detections 20 ms later (none for
    the frames in ``missing``)."""
    vision = vision_typestore()
    plugin = StoragePlugin.MCAP if storage == "mcap" else StoragePlugin.SQLITE3
    with Writer(path, version=9, storage_plugin=plugin) as w:
        images = w.add_connection(TOPIC, IMAGE_T, typestore=TS)
        detections = w.add_connection(
            DETECTIONS, "vision_msgs/msg/Detection2DArray", typestore=vision
        )
        for k, rgb in enumerate(frames(n)):
            stamp = T0 + k * DT
            msg = raw_image(0, rgb)
            msg.header.stamp.sec, msg.header.stamp.nanosec = divmod(stamp, 10**9)
            w.write(images, stamp + 5_000_000, TS.serialize_cdr(msg, IMAGE_T))
            if k not in missing:
                found = detection_array(divmod(stamp, 10**9), BOXES)
                raw = vision.serialize_cdr(found, "vision_msgs/msg/Detection2DArray")
                w.write(detections, stamp + 20_000_000, raw)


@pytest.fixture
def class_map(tmp_path):
    path = tmp_path / "coco.yaml"
    path.write_text("person: person\ncup: cup/glass/bottle\n")
    return ClassMap.load(path)


@pytest.mark.parametrize("storage", ["sqlite3", "mcap"])
def test_bag_takes_the_detectors_entities(tmp_path, storage, class_map):
    src, dst = tmp_path / "in", tmp_path / "out"
    write_bag(src, storage, 5, missing=(3,))
    model = tiny_model()
    engine = StreamingEngine(model.extractor, model.relation, window=3, mode="predcls")
    report = process_bag(
        src, dst, engine, TOPIC, progress=False,
        detections=Detections(DETECTIONS, class_map),
    )  # fmt: skip
    assert (report.graphs, report.unmatched, report.unmapped) == (4, 1, 4)
    assert "1 without detections; 4 detections of unmapped classes dropped" in report.summary()
    out = read_bag(dst)
    assert len(out[DETECTIONS]) == 4  # copied as they were
    graphs = [TS.deserialize_cdr(raw, "tr2/msg/SceneGraph") for _, raw in out["/scene_graph"]]
    assert [len(g.window_stamps) for g in graphs] == [1, 2, 3, 3]  # 2 s gap at the hole: kept
    for g in graphs:
        assert [n.label for n in g.nodes] == ["person", "cup/glass/bottle"]
        np.testing.assert_allclose([n.box_xyxy for n in g.nodes], [BOXES[0][2], BOXES[1][2]])
        np.testing.assert_allclose([n.score for n in g.nodes], [0.9, 0.8], rtol=1e-6)
    tracks = {tuple(int(n.track_id) for n in g.nodes) for g in graphs}
    assert len(tracks) == 1  # static scene at 1 Hz: the same ids throughout


def test_bag_detections_topic_errors(tmp_path, class_map):
    src = tmp_path / "in"
    write_bag(src, "sqlite3", 1)
    engine = StreamingEngine(tiny_model().extractor, tiny_model().relation, mode="predcls")
    with pytest.raises(BagError, match="no topic '/dets'; its vision_msgs/msg/Detection2DArray"):
        process_bag(src, tmp_path / "o", engine, TOPIC, detections=Detections("/dets", class_map))
    with pytest.raises(BagError, match="carries .*sensor_msgs/msg/Image"):
        process_bag(src, tmp_path / "o", engine, TOPIC, detections=Detections(TOPIC, class_map))


def test_cli_predcls_from_a_detections_topic(tmp_path, capsys):
    src, dst = tmp_path / "in", tmp_path / "out"
    write_bag(src, "mcap", 2)
    class_map = tmp_path / "map.yaml"
    class_map.write_text("person: person\ncup: cup/glass/bottle\n")
    args = ["bag", str(src), str(dst), "--image-topic", TOPIC, "--model", "tr2-small",
            "--random-init", "--no-progress", "--mode", "predcls",
            "--detections-topic", DETECTIONS, "--class-map", str(class_map)]  # fmt: skip
    assert main(args) == 0
    assert "2 scene graphs from 2 frames" in capsys.readouterr().out
    rc = main(["bag", str(src), str(tmp_path / "o2"), "--image-topic", TOPIC, "--model",
               "tr2-small", "--random-init", "--mode", "predcls"])  # fmt: skip
    assert rc != 0 and not (tmp_path / "o2").exists()
    assert "--mode predcls / sgcls take the entities from --detections-topic" in (
        capsys.readouterr().err
    )
