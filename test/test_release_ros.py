"""The released SGDet model on a robot's data: ``tr2 import-release`` on files laid out
as the authors publish them (random weights, the small widths of test_release_import),
then ``tr2 bag`` over a rosbag2 and the ROS node under rclpy, both on the imported
checkpoint. A torchvision ResNet-18 detector stands in for the authors' (its classes
biased so every proposal is a person, a cup or a book: graphs have nodes and edges);
the scene graphs written are checked against the imported model run directly."""

from __future__ import annotations

import json
import time

import numpy as np
import pytest
import torch
from bag_fixtures import IMAGE_T, T0, TOPIC, TS, raw_image, read_bag, write_bag
from engine_fixtures import frames
from release_fixtures import (
    RELEASE_TR2_OVERRIDES,
    SMALL_CLIP,
    authors_tr2,
    openai_clip,
    save_release_checkpoint,
    save_release_detector,
    write_openai_archive,
)
from ros_fixtures import image_at, ros_isolation_env, stamp_ns_of, unique_domain_id

from tr2_core.cli import main
from tr2_core.models.entities import build_detector
from tr2_core.models.model_config import load_model_config
from tr2_core.run import load_trained
from tr2_core.stream.engine import StreamingEngine
from tr2_core.stream.engine_options import EngineOptions
from tr2_core.vocab import OBJECT_INDEX

SMALL_FRAMES = ("detector.min_size=48", "detector.max_size=64")
"""The detector's input size for the 48x64 test frames (saved in the checkpoints)."""


@pytest.fixture(scope="module")
def release(tmp_path_factory):
    """(the imported SGDet checkpoint, the stand-in detector's weights)."""
    folder = tmp_path_factory.mktemp("authors")
    clip = openai_clip(seed=0)
    archive = write_openai_archive(clip, folder / "ViT-B-32.pt")
    save_release_detector(folder / "faster_rcnn_ag.pth")
    model = authors_tr2("sgdet", seed=2)
    model.clip.load_state_dict(clip.state_dict())
    sgdet = save_release_checkpoint(model, folder / "sgdet.tar")
    overrides = (*RELEASE_TR2_OVERRIDES, *SMALL_FRAMES, "clip.overrides=" + json.dumps(SMALL_CLIP))
    out = folder / "release"
    sets = [a for o in overrides for a in ("--set", o)]
    assert main(["import-release", "--clip", str(archive), "--detector",
                 str(folder / "faster_rcnn_ag.pth"), "--sgdet", str(sgdet), "--out", str(out),
                 *sets]) == 0  # fmt: skip
    torch.manual_seed(0)
    detector = build_detector(load_model_config("tr2-release", overrides).detector)
    cls = detector.roi_heads.box_predictor.cls_score
    with torch.no_grad():
        cls.weight.zero_()
        cls.bias.fill_(-20.0)
        for name, logit in {"person": 2.0, "cup/glass/bottle": 3.0, "book": 3.0}.items():
            cls.bias[OBJECT_INDEX[name]] = logit
    torch.save(detector.state_dict(), folder / "stand_in_detector.pt")
    return out / "sgdet.pt", folder / "stand_in_detector.pt"


@pytest.fixture(scope="module")
def direct(release):
    """What the imported model gives for a list of frames (1 per 100 ms from T0), run
    here without ROS: a fresh engine over the checkpoint loaded once."""
    checkpoint, detector = release
    trained = load_trained(checkpoint, announce=False, detector_weights=str(detector))
    options = EngineOptions(detector_weights=str(detector), device="cpu")

    def run(images):
        engine = StreamingEngine(trained.model.extractor, trained.model.relation, options)
        return [engine.process(rgb, T0 + k * 100_000_000) for k, rgb in enumerate(images)]

    return run


def test_tr2_bag_runs_the_imported_sgdet_checkpoint(release, direct, tmp_path, capsys):
    checkpoint, detector = release
    images = frames(3, seed=5)
    src, dst = tmp_path / "in", tmp_path / "out"
    write_bag(src, "sqlite3", IMAGE_T, [raw_image(k, rgb) for k, rgb in enumerate(images)])
    rc = main(["bag", str(src), str(dst), "--image-topic", TOPIC, "--checkpoint",
               str(checkpoint), "--detector-weights", str(detector), "--device", "cpu",
               "--no-progress"])  # fmt: skip
    assert rc == 0, capsys.readouterr().err
    out = read_bag(dst)["/scene_graph"]
    graphs = [TS.deserialize_cdr(raw, "tr2/msg/SceneGraph") for _, raw in out]
    assert len(graphs) == 3
    want = direct(images)
    assert sum(len(g.edges) for g in graphs) > 0
    for g, r in zip(graphs, want, strict=True):
        assert [n.label_id for n in g.nodes] == r.entity_labels.tolist()
        assert [(e.subject_id, e.object_id) for e in g.edges] == list(
            zip(r.pair_subject.tolist(), r.pair_object.tolist(), strict=True)
        )
        np.testing.assert_allclose(
            np.reshape([e.contacting.scores for e in g.edges], (-1, 17)), r.contacting, atol=1e-5
        )


def test_the_node_publishes_scene_graphs_of_the_imported_sgdet_checkpoint(
    release, direct, monkeypatch
):
    rclpy = pytest.importorskip(
        "rclpy", reason="rclpy not available: needs a sourced ROS 2 (Humble or later) environment"
    )
    pytest.importorskip("tr2.msg", reason="tr2 messages not built: scripts/setup_ros.sh")
    from rclpy.executors import SingleThreadedExecutor
    from rclpy.node import Node
    from rclpy.parameter import Parameter
    from rclpy.qos import qos_profile_sensor_data
    from sensor_msgs.msg import Image
    from tr2.msg import SceneGraph

    from tr2_ros.node import Tr2Node, _qos

    checkpoint, detector = release
    for key, value in ros_isolation_env(unique_domain_id()).items():
        monkeypatch.setenv(key, value)  # loopback only, a domain of its own
    rclpy.init()
    try:
        tr2 = Tr2Node(parameter_overrides=[
            Parameter("checkpoint", value=str(checkpoint)),
            Parameter("detector_weights", value=str(detector)),
            Parameter("device", value="cpu"),
        ])  # fmt: skip
        tr2.activate()  # loads the imported checkpoint (the real engine)
        peer = Node("tr2_release_test_peer")
        graphs: list = []
        peer.create_subscription(SceneGraph, "scene_graph", graphs.append, _qos(10))
        camera = peer.create_publisher(Image, "image", qos_profile_sensor_data)
        executor = SingleThreadedExecutor()
        executor.add_node(tr2.node)
        executor.add_node(peer)
        stamp = 40 * 10**9 + 7
        image = image_at(stamp, encoding="rgb8", height=48, width=64, seed=5)
        deadline = time.monotonic() + 60.0
        next_publish = 0.0
        while not graphs and time.monotonic() < deadline:
            # a camera's pace, not a busy loop: the node's worker needs the interpreter too
            if time.monotonic() >= next_publish:
                camera.publish(image)
                next_publish = time.monotonic() + 0.2
            executor.spin_once(timeout_sec=0.05)
        executor.shutdown()
        tr2.destroy()
        peer.destroy_node()
    finally:
        rclpy.try_shutdown()
    assert graphs, "no SceneGraph from the node within 60 s"
    graph = graphs[0]
    assert stamp_ns_of(graph) == stamp
    rgb = np.frombuffer(bytes(image.data), np.uint8).reshape(48, 64, 3)
    (want,) = direct([rgb])
    assert len(graph.nodes) > 0 and len(graph.edges) > 0
    assert [n.label_id for n in graph.nodes] == want.entity_labels.tolist()
    np.testing.assert_allclose(
        np.reshape([e.contacting.scores for e in graph.edges], (-1, 17)), want.contacting, atol=1e-5
    )
