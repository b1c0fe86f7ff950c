"""``tr2 bag``: round trip on small generated bags (sqlite3 and MCAP, Image and
CompressedImage) with the tiny real engine; malformed frames skipped and counted;
corrupt bags are clear errors that leave no output behind."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from bag_fixtures import (
    COMPRESSED_T,
    DT,
    IMAGE_T,
    T0,
    TOPIC,
    TS,
    compressed_image,
    raw_image,
    read_bag,
    write_bag,
)
from engine_fixtures import EmptyEngine, H, RecordingEngine, W, frames, png_bytes, tiny_engine
from rosbags.rosbag2 import Reader, Writer

from tr2_core.cli import main
from tr2_core.outputs import OutputExistsError, OutputPathError
from tr2_core.vocab import OBJECT_CLASSES
from tr2_ros.bag import BagError, process_bag
from tr2_ros.conversions import decode_compressed_image, decode_image, stamp_to_ns


def no_leftovers(dst: Path) -> bool:
    return not dst.exists() and not list(dst.parent.glob(f".{dst.name}*partial-*"))


def empty_engine(**kwargs) -> EmptyEngine:
    """A stand-in engine that checks every frame is decoded to the bag's (H, W)."""
    return EmptyEngine(shape=(H, W, 3), **kwargs)


# --------------------------------------------------------------------------
# Round trip with the real (tiny) engine.


@pytest.mark.parametrize(
    ("storage", "msgtype", "real"),
    [
        ("sqlite3", IMAGE_T, True),
        ("mcap", COMPRESSED_T, True),
        ("mcap", IMAGE_T, False),
        ("sqlite3", COMPRESSED_T, False),
    ],
)
def test_round_trip(tmp_path, storage, msgtype, real):
    """Originals copied byte for byte; one SceneGraph per frame at its bag time with
    the image's header, holding the engine's result for exactly that frame."""
    images = frames(3)
    msgs = [
        raw_image(k, rgb) if msgtype == IMAGE_T else compressed_image(k, png_bytes(rgb))
        for k, rgb in enumerate(images)
    ]
    src, dst = tmp_path / "in", tmp_path / "out"
    write_bag(src, storage, msgtype, msgs)
    debug = "/scene_graph/debug_image" if real else None
    engine = RecordingEngine(tiny_engine() if real else empty_engine())
    report = process_bag(src, dst, engine, TOPIC, debug_topic=debug, progress=False)
    assert (report.frames, report.graphs, report.rejected, report.failed) == (3, 3, 0, 0)
    assert report.storage == storage
    assert list(dst.glob("*.mcap" if storage == "mcap" else "*.db3"))

    before, after = read_bag(src), read_bag(dst)
    ours = {"/scene_graph", "/scene_graph/vocabulary"} | ({debug} if debug else set())
    assert set(after) == set(before) | ours
    for topic in before:  # originals copied byte for byte, same bag times
        assert after[topic] == before[topic]
    graphs = after["/scene_graph"]
    assert [t for t, _ in graphs] == [t for t, _ in before[TOPIC]]
    edges = 0
    for k, ((_, raw), (image, stamp, r)) in enumerate(zip(graphs, engine.calls, strict=True)):
        np.testing.assert_array_equal(image, images[k])  # decoded exactly
        assert stamp == T0 + k * DT  # the header stamp, not the bag time
        g = TS.deserialize_cdr(raw, "tr2/msg/SceneGraph")
        assert stamp_to_ns(g.header.stamp) == stamp and g.header.frame_id == "cam"
        assert (g.image_width, g.image_height) == (W, H)
        assert [stamp_to_ns(s) for s in g.window_stamps] == r.window_stamps_ns.tolist()
        assert [n.track_id for n in g.nodes] == r.entity_track.tolist()
        assert [n.label_id for n in g.nodes] == r.entity_labels.tolist()
        np.testing.assert_allclose(
            np.reshape([n.box_xyxy for n in g.nodes], (-1, 4)), r.entity_boxes, atol=1e-4
        )
        assert [(e.subject_id, e.object_id) for e in g.edges] == list(
            zip(r.pair_subject.tolist(), r.pair_object.tolist(), strict=True)
        )
        np.testing.assert_allclose(
            np.reshape([e.contacting.scores for e in g.edges], (-1, 17)), r.contacting, atol=1e-6
        )
        edges += len(g.edges)
    if real:
        assert [len(r.window_stamps_ns) for _, _, r in engine.calls] == [1, 2, 3]
        assert edges > 0, "the tiny engine should find person-object pairs (see engine_fixtures)"
    (vocab,) = after["/scene_graph/vocabulary"]
    assert TS.deserialize_cdr(vocab[1], "tr2/msg/Vocabulary").object_classes == list(OBJECT_CLASSES)
    assert vocab[0] == before[TOPIC][0][0]
    if debug:
        assert [t for t, _ in after[debug]] == [t for t, _ in before[TOPIC]]
        img = TS.deserialize_cdr(after[debug][0][1], IMAGE_T)
        assert (img.height, img.width, img.encoding) == (H, W, "rgb8")
        assert stamp_to_ns(img.header.stamp) == T0
        assert not np.array_equal(decode_image(img), images[0])  # something was drawn
    with Reader(dst) as r:  # the vocabulary is latched like the node's
        (conn,) = [c for c in r.connections if c.topic == "/scene_graph/vocabulary"]
        assert conn.ext.offered_qos_profiles[0].durability.name == "TRANSIENT_LOCAL"


def test_storage_conversion_and_bare_file_input(tmp_path):
    src = tmp_path / "in"
    write_bag(src, "mcap", IMAGE_T, [raw_image(k, rgb) for k, rgb in enumerate(frames(2))])
    (mcap_file,) = src.glob("*.mcap")
    report = process_bag(mcap_file, tmp_path / "out", empty_engine(), TOPIC, storage="sqlite3",
                         progress=False)  # fmt: skip
    assert report.graphs == 2 and list((tmp_path / "out").glob("*.db3"))
    assert read_bag(tmp_path / "out")[TOPIC] == read_bag(src)[TOPIC]


def _strip_definitions(bag: Path) -> None:
    """Make ``bag`` (sqlite3) look like a Humble-era bag: no message definitions and
    no type hashes."""
    import sqlite3

    import yaml

    (db,) = bag.glob("*.db3")
    con = sqlite3.connect(db)
    con.execute("delete from message_definitions")
    con.execute("update topics set type_description_hash = ''")
    con.commit()
    con.close()
    meta = yaml.safe_load((bag / "metadata.yaml").read_text())
    for topic in meta["rosbag2_bagfile_information"]["topics_with_message_count"]:
        topic["topic_metadata"]["type_description_hash"] = ""
    (bag / "metadata.yaml").write_text(yaml.safe_dump(meta))


def test_bag_without_definitions(tmp_path, caplog):
    """Standard types get their definition from the distro's typestore; a custom type
    with no definition cannot be copied: dropped, logged and reported."""
    from rosbags.typesys import Stores, get_types_from_msg, get_typestore

    custom = get_typestore(Stores.ROS2_HUMBLE)
    custom.register(get_types_from_msg("int32 x", "my_pkg/msg/Foo"))
    src, dst = tmp_path / "in", tmp_path / "out"
    with Writer(src, version=8) as w:
        image = w.add_connection(TOPIC, IMAGE_T, typestore=TS)
        foo = w.add_connection("/foo", "my_pkg/msg/Foo", typestore=custom)
        for k, rgb in enumerate(frames(2)):
            w.write(image, T0 + k * DT, TS.serialize_cdr(raw_image(k, rgb), IMAGE_T))
            msg = custom.types["my_pkg/msg/Foo"](x=k)
            w.write(foo, T0 + k * DT, custom.serialize_cdr(msg, "my_pkg/msg/Foo"))
    _strip_definitions(src)
    with Reader(src) as r:
        assert all(not c.msgdef.data and not c.digest for c in r.connections)
    report = process_bag(src, dst, empty_engine(), TOPIC, progress=False)
    assert report.graphs == 2 and report.dropped_topics == ["/foo"]
    assert "my_pkg/msg/Foo" in caplog.text
    with Reader(dst) as r:
        (conn,) = [c for c in r.connections if c.topic == TOPIC]
        assert conn.digest == TS.hash_rihs01(IMAGE_T) and "uint32 height" in conn.msgdef.data
    assert read_bag(dst)[TOPIC] == read_bag(src)[TOPIC]
    assert "/foo" not in read_bag(dst)


# --------------------------------------------------------------------------
# Malformed frames: skipped, logged, counted; never a crash.


def test_malformed_raw_frames_are_skipped_and_counted(tmp_path, caplog):
    ok = frames(2)
    good = raw_image(0, ok[0])
    msgs = [
        good,
        raw_image(1, ok[0], encoding="16UC1"),  # unsupported encoding
        raw_image(2, ok[0], data=ok[0].reshape(-1)[:100]),  # truncated data
        b"\x00\x01\x00\x00\x07",  # not a CDR Image at all
        raw_image(4, ok[1]),
    ]
    src, dst = tmp_path / "in", tmp_path / "out"
    write_bag(src, "sqlite3", IMAGE_T, msgs)
    engine = empty_engine()
    report = process_bag(src, dst, engine, TOPIC, progress=False)
    assert (report.frames, report.graphs, report.rejected, report.failed) == (5, 2, 3, 0)
    assert engine.stamps == [T0, T0 + 4 * DT]
    assert read_bag(dst)[TOPIC] == read_bag(src)[TOPIC]  # every original still copied
    reasons = " ".join(report.skip_reasons)
    assert "16UC1" in reasons and "truncated" in reasons and "deserialise" in reasons
    assert "16UC1" in caplog.text
    last = TS.deserialize_cdr(read_bag(dst)["/scene_graph"][-1][1], "tr2/msg/SceneGraph")
    assert last.rejected_frames == 3


def test_truncated_compressed_frame_is_skipped(tmp_path):
    rgb = frames(1)[0]
    payload = png_bytes(rgb)
    msgs = [
        compressed_image(0, payload),
        compressed_image(1, payload[: len(payload) // 2]),
        compressed_image(2, b"", fmt="jpeg"),
        compressed_image(3, payload),
    ]
    src, dst = tmp_path / "in", tmp_path / "out"
    write_bag(src, "mcap", COMPRESSED_T, msgs)
    report = process_bag(src, dst, empty_engine(), TOPIC, progress=False)
    assert (report.graphs, report.rejected) == (2, 2)
    assert len(read_bag(dst)["/scene_graph"]) == 2
    # The decoder the tool uses agrees that the first frame is the PNG's pixels.
    g = TS.deserialize_cdr(read_bag(src)[TOPIC][0][1], COMPRESSED_T)
    np.testing.assert_array_equal(decode_compressed_image(g), rgb)


# --------------------------------------------------------------------------
# Corrupt / wrong inputs: clear errors, nothing left behind.


def _corrupt(path: Path, how: str) -> None:
    if how == "metadata":
        (path / "metadata.yaml").write_text("rosbag2_bagfile_information: [unclosed\n")
    elif how == "db3-garbage":
        (db,) = path.glob("*.db3")
        db.write_bytes(b"this is not an sqlite database" * 100)
    elif how == "mcap-truncated":
        (f,) = path.glob("*.mcap")
        data = f.read_bytes()
        f.write_bytes(data[: len(data) // 2])
    elif how == "missing-file":
        for f in list(path.glob("*.db3")):
            f.unlink()
    elif how == "no-metadata":
        (path / "metadata.yaml").unlink()


@pytest.mark.parametrize(
    ("storage", "how"),
    [
        ("sqlite3", "metadata"),
        ("sqlite3", "db3-garbage"),
        ("mcap", "mcap-truncated"),
        ("sqlite3", "missing-file"),
        ("mcap", "no-metadata"),
    ],
)
def test_corrupt_bag_is_a_clear_error_and_leaves_no_output(tmp_path, storage, how):
    src, dst = tmp_path / "in", tmp_path / "out"
    write_bag(src, storage, IMAGE_T, [raw_image(k, rgb) for k, rgb in enumerate(frames(3))])
    _corrupt(src, how)
    with pytest.raises(BagError, match="cannot read bag .*in"):
        process_bag(src, dst, empty_engine(), TOPIC, progress=False)
    assert no_leftovers(dst)


def test_failure_mid_run_removes_the_partial_output(tmp_path):
    """An error that is not one frame's (here: out of memory) leaves no partial bag."""
    src, dst = tmp_path / "in", tmp_path / "out"
    write_bag(src, "sqlite3", IMAGE_T, [raw_image(k, rgb) for k, rgb in enumerate(frames(3))])
    with pytest.raises(MemoryError, match="exploded"):
        process_bag(
            src,
            dst,
            empty_engine(fail_on=(1,), error=MemoryError),
            TOPIC,
            progress=False,
        )
    assert no_leftovers(dst)


def test_a_frame_the_engine_cannot_take_is_skipped_not_fatal(tmp_path):
    """One bad frame costs that frame only (the run neither raises nor discards the
    bag). A Ctrl-C keeps the messages copied so far."""
    src, dst = tmp_path / "in", tmp_path / "out"
    write_bag(src, "sqlite3", IMAGE_T, [raw_image(k, rgb) for k, rgb in enumerate(frames(3))])
    report = process_bag(src, dst, empty_engine(fail_on=(1,)), TOPIC, progress=False)
    assert (report.frames, report.graphs, report.failed) == (3, 2, 1)
    assert "inference failed" in report.summary() and "engine exploded" in report.summary()
    assert (dst / "metadata.yaml").is_file()
    interrupted = process_bag(src, tmp_path / "cut", empty_engine(fail_on=(1,),
                              error=KeyboardInterrupt), TOPIC, progress=False)  # fmt: skip
    assert interrupted.interrupted and interrupted.graphs == 1
    assert "interrupted" in interrupted.summary() and (tmp_path / "cut" / "metadata.yaml").is_file()


def test_topic_errors_and_existing_output(tmp_path):
    src = tmp_path / "in"
    write_bag(src, "sqlite3", IMAGE_T, [raw_image(0, frames(1)[0])])
    with pytest.raises(BagError, match=r"no topic '/nope'.*\['/camera/image'\]"):
        process_bag(src, tmp_path / "a", empty_engine(), "/nope", progress=False)
    with pytest.raises(BagError, match="carries.*std_msgs/msg/String"):
        process_bag(src, tmp_path / "a", empty_engine(), "/chatter", progress=False)
    with pytest.raises(BagError, match="already has topic"):
        process_bag(src, tmp_path / "a", empty_engine(), TOPIC, graph_topic="/chatter",
                    progress=False)  # fmt: skip
    with pytest.raises(OutputPathError, match="outside the input"):
        process_bag(src, src / "inside", empty_engine(), TOPIC, progress=False)
    assert no_leftovers(tmp_path / "a")
    (tmp_path / "a").mkdir()
    with pytest.raises(OutputExistsError, match="--overwrite"):
        process_bag(src, tmp_path / "a", empty_engine(), TOPIC, progress=False)
    report = process_bag(src, tmp_path / "a", empty_engine(), TOPIC, overwrite=True, progress=False)
    assert report.graphs == 1 and (tmp_path / "a" / "metadata.yaml").is_file()


# --------------------------------------------------------------------------
# The command.


def test_cli_corrupt_bag_fails_before_building_a_model(tmp_path, capsys, monkeypatch):
    import tr2_ros.bag_command as bag_command

    def no_build(options):
        raise AssertionError("the model must not be built for an unreadable bag")

    monkeypatch.setattr(bag_command, "build_engine", no_build)
    src, dst = tmp_path / "in", tmp_path / "out"
    write_bag(src, "sqlite3", IMAGE_T, [raw_image(0, frames(1)[0])])
    _corrupt(src, "db3-garbage")
    rc = main(["bag", str(src), str(dst), "--image-topic", TOPIC, "--model", "tr2-small",
               "--random-init"])  # fmt: skip
    assert rc == 2
    assert "tr2 bag: error: cannot read bag" in capsys.readouterr().err
    assert no_leftovers(dst)
    rc = main(["bag", str(src), str(dst), "--image-topic", TOPIC, "--model", "tr2-small"])
    assert rc == 2 and "--random-init" in capsys.readouterr().err


def test_cli_writes_graphs_and_debug_image(tmp_path, capsys, monkeypatch):
    import tr2_ros.bag_command as bag_command

    seen = []

    def fake_build(options, *modes):
        seen.append(options)
        return empty_engine()

    monkeypatch.setattr(bag_command, "build_engine", fake_build)
    src, dst = tmp_path / "in", tmp_path / "out"
    write_bag(src, "sqlite3", IMAGE_T, [raw_image(k, rgb) for k, rgb in enumerate(frames(2))])
    rc = main(["bag", str(src), str(dst), "--image-topic", TOPIC, "--model", "tr2-small",
               "--random-init", "--window", "3", "--debug-image", "--storage", "mcap",
               "--no-progress"])  # fmt: skip
    assert rc == 0
    assert (seen[0].options.window, seen[0].model, seen[0].random_init) == (3, "tr2-small", True)
    out = read_bag(dst)
    assert len(out["/scene_graph"]) == 2 and len(out["/scene_graph/debug_image"]) == 2
    assert list(dst.glob("*.mcap"))
    assert "2 scene graphs from 2 frames" in capsys.readouterr().out


def test_overwrite_never_deletes_the_input_or_unrelated_folders(tmp_path):
    """An output path must never delete the input bag or the files beside it."""
    src = tmp_path / "bags" / "in"
    write_bag(src, "sqlite3", IMAGE_T, [raw_image(0, frames(1)[0])])
    (tmp_path / "bags" / "notes.txt").write_text("mine")
    with pytest.raises(OutputPathError, match="OUT .* contains the input"):
        process_bag(
            src,
            tmp_path / "bags",
            empty_engine(),
            TOPIC,
            overwrite=True,
            progress=False,
        )
    other = tmp_path / "other"
    other.mkdir()
    (other / "keep.txt").write_text("mine")
    with pytest.raises(OutputPathError, match="tr2 did not write"):
        process_bag(src, other, empty_engine(), TOPIC, overwrite=True, progress=False)
    assert (tmp_path / "bags" / "notes.txt").read_text() == "mine"
    assert (other / "keep.txt").read_text() == "mine" and (src / "metadata.yaml").is_file()
    assert main(["bag", str(src), str(tmp_path / "bags"), "--image-topic", TOPIC,
                 "--overwrite", "--model", "tr2-small", "--random-init"]) == 2  # fmt: skip
    assert (src / "metadata.yaml").is_file()
    process_bag(src, tmp_path / "out", empty_engine(), TOPIC, progress=False)
    process_bag(src, tmp_path / "out", empty_engine(), TOPIC, overwrite=True, progress=False)
