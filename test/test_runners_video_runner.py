"""``tr2 video``: image folders and video files to JSON lines (+ overlay) with the
tiny real engine; unreadable frames become error lines; outputs appear only when
complete; the JSON layout of a result; the shared engine options."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import pytest
from engine_fixtures import (
    TINY_ARGS,
    EmptyEngine,
    H,
    RecordingEngine,
    W,
    frames,
    tiny_engine,
    write_frames,
    write_mp4,
)

from tr2_core.cli import main
from tr2_core.errors import ConfigError
from tr2_core.outputs import MARKER, OutputExistsError, OutputPathError
from tr2_core.runners.engine_args import EngineRequest, add_engine_arguments
from tr2_core.runners.records import result_record
from tr2_core.runners.video_runner import VideoError, image_files, process_video, read_image
from tr2_core.stream.engine_options import EngineOptions
from tr2_core.types import SceneGraphResult
from tr2_core.vocab import ATTENTION, CONTACTING, FAMILIES, PREDICATES, SPATIAL


def read_lines(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def no_leftovers(*paths: Path) -> bool:
    return all(not p.exists() and not list(p.parent.glob(f".{p.name}*partial-*")) for p in paths)


def _check_lines(lines: list[dict], calls) -> None:
    """Every line holds the engine's result of its frame."""
    ok = [line for line in lines if "error" not in line]
    assert len(ok) == len(calls)
    for line, (_, stamp, r) in zip(ok, calls, strict=True):
        assert line["stamp_ns"] == stamp and line["image_size"] == [W, H]
        assert line["window_stamps_ns"] == r.window_stamps_ns.tolist()
        assert [e["track_id"] for e in line["entities"]] == r.entity_track.tolist()
        assert [e["label_id"] for e in line["entities"]] == r.entity_labels.tolist()
        np.testing.assert_allclose(
            np.reshape([e["box"] for e in line["entities"]], (-1, 4)), r.entity_boxes, atol=0.01
        )
        tracks = r.entity_track
        assert [(x["subject_track"], x["object_track"]) for x in line["relations"]] == list(
            zip(tracks[r.pair_subject].tolist(), tracks[r.pair_object].tolist(), strict=True)
        )
        for x, att in zip(line["relations"], r.attention, strict=True):
            assert x["attention"]["top_id"] == ATTENTION.start + int(att.argmax())


# --------------------------------------------------------------------------
# Image folders and video files with the real (tiny) engine.


def test_image_folder_to_jsonl_and_overlay_pngs(tmp_path):
    images = frames(3, seed=1)
    write_frames(tmp_path / "frames" / "VID.mp4", images)  # an AG-style folder name
    engine = RecordingEngine(tiny_engine(window=2))
    report = process_video(
        tmp_path / "frames" / "VID.mp4",
        engine,
        tmp_path / "out.jsonl",
        overlay=tmp_path / "overlay",
        fps=10,
        progress=False,
    )
    assert (report.frames, report.graphs, report.rejected) == (3, 3, 0)
    lines = read_lines(tmp_path / "out.jsonl")
    assert [line["frame"] for line in lines] == [0, 1, 2]
    assert [line["source"] for line in lines] == ["000001.png", "000002.png", "000003.png"]
    assert [line["stamp_ns"] for line in lines] == [0, 100_000_000, 200_000_000]
    for (image, _, _), rgb in zip(engine.calls, images, strict=True):
        np.testing.assert_array_equal(image, rgb)
    _check_lines(lines, engine.calls)
    assert [len(line["window_stamps_ns"]) for line in lines] == [1, 2, 2]
    assert sum(len(line["relations"]) for line in lines) > 0
    pngs = sorted((tmp_path / "overlay").glob("*.png"))
    assert [p.name for p in pngs] == ["000000.png", "000001.png", "000002.png"]
    assert {p.name for p in (tmp_path / "overlay").iterdir()} == {p.name for p in pngs} | {MARKER}
    from PIL import Image

    drawn = np.asarray(Image.open(pngs[0]))
    assert drawn.shape == (H, W, 3) and not np.array_equal(drawn, images[0])


def test_mp4_to_jsonl_and_overlay_mp4(tmp_path):
    av = pytest.importorskip("av", reason="PyAV not installed: video-file input/output untested")
    images = frames(4, seed=2)
    write_mp4(tmp_path / "clip.mp4", images, fps=10)
    engine = RecordingEngine(tiny_engine())
    report = process_video(
        tmp_path / "clip.mp4",
        engine,
        tmp_path / "clip.jsonl",
        overlay=tmp_path / "clip_sg.mp4",
        progress=False,
    )
    assert (report.frames, report.graphs, report.rejected, report.fps) == (4, 4, 0, 10.0)
    lines = read_lines(tmp_path / "clip.jsonl")
    assert [line["stamp_ns"] for line in lines] == [0, 100_000_000, 200_000_000, 300_000_000]
    assert all(line["source"] is None for line in lines)
    _check_lines(lines, engine.calls)
    # H.264 is lossy: the decoded frames are close to, not equal to, the originals.
    for (image, _, _), rgb in zip(engine.calls, images, strict=True):
        assert image.shape == rgb.shape
    with av.open(str(tmp_path / "clip_sg.mp4")) as container:
        out = [f.to_ndarray(format="rgb24") for f in container.decode(video=0)]
    assert len(out) == 4 and out[0].shape == (H, W, 3)


@pytest.fixture
def keep_torch_threads():
    """``--threads`` changes a process-wide torch setting: restore it for later tests."""
    import torch

    threads = torch.get_num_threads()
    yield
    torch.set_num_threads(threads)


def test_cli_end_to_end_with_random_init(tmp_path, capsys, keep_torch_threads):
    """The real option path: --model --random-init builds the engine (loud warning)."""
    import torch

    write_frames(tmp_path / "frames", frames(3, seed=3))
    overlay = tmp_path / "o.mp4"
    args = ["video", str(tmp_path / "frames"), "--jsonl", str(tmp_path / "o.jsonl")]
    try:
        import av  # noqa: F401

        args += ["--overlay", str(overlay)]
    except ImportError:
        overlay = None
    rc = main(args + TINY_ARGS)
    captured = capsys.readouterr()
    assert rc == 0, captured.err
    assert torch.get_num_threads() == 1  # --threads 1
    assert "UNTRAINED" in captured.err
    assert "3 scene graphs from 3 frames" in captured.out
    assert len(read_lines(tmp_path / "o.jsonl")) == 3
    assert overlay is None or overlay.stat().st_size > 0


def test_random_init_gives_the_same_output_every_run(tmp_path, keep_torch_threads):
    """--random-init draws from a fixed seed, not from wherever torch's generator is."""
    import torch

    write_frames(tmp_path / "frames", frames(2, seed=4))
    outputs = []
    for run in range(2):
        torch.rand(run + 1)  # the process's generator moves on between the runs
        out = tmp_path / f"run{run}.jsonl"
        assert main(["video", str(tmp_path / "frames"), "--jsonl", str(out)] + TINY_ARGS) == 0
        outputs.append(out.read_bytes())
    assert any(line["entities"] for line in read_lines(tmp_path / "run0.jsonl"))
    assert outputs[0] == outputs[1]


# --------------------------------------------------------------------------
# Bad inputs and outputs (a stand-in engine: fast).


def test_unreadable_images_become_error_lines(tmp_path, caplog):
    folder = tmp_path / "frames"
    write_frames(folder, frames(3))
    data = (folder / "000002.png").read_bytes()
    (folder / "000002.png").write_bytes(data[: len(data) // 3])  # truncated PNG
    (folder / "000004.png").write_bytes(b"")  # empty file
    (folder / "notes.txt").write_text("not a frame")
    engine = RecordingEngine(EmptyEngine())
    report = process_video(folder, engine, tmp_path / "o.jsonl", progress=False)
    assert (report.frames, report.graphs, report.rejected) == (4, 2, 2)
    lines = read_lines(tmp_path / "o.jsonl")
    assert [line["frame"] for line in lines] == [0, 1, 2, 3]
    assert "error" in lines[1] and "000002.png" in lines[1]["error"]
    assert "error" in lines[3] and "entities" not in lines[3]
    assert [c[1] for c in engine.calls] == [0, round(2e9 / 30)]  # stamps i / 30 fps
    assert "000002.png" in caplog.text


def test_damaged_videos_never_crash(tmp_path):
    pytest.importorskip("av", reason="PyAV not installed: video-file input untested")
    write_mp4(tmp_path / "a.mp4", frames(12, seed=4), fps=10)
    data = (tmp_path / "a.mp4").read_bytes()
    # Truncated MP4 (index at the end is gone): a clear error, no output.
    (tmp_path / "cut.mp4").write_bytes(data[: len(data) // 2])
    with pytest.raises(VideoError, match="cannot open video .*cut.mp4"):
        process_video(tmp_path / "cut.mp4", EmptyEngine(), tmp_path / "cut.jsonl", progress=False)
    assert no_leftovers(tmp_path / "cut.jsonl")
    # Garbage inside the stream: undecodable packets become error lines, the rest runs.
    garbled = bytearray(data)
    garbled[len(data) // 3 : len(data) // 3 + 400] = b"\xff" * 400
    (tmp_path / "bad.mp4").write_bytes(bytes(garbled))
    report = process_video(
        tmp_path / "bad.mp4", EmptyEngine(), tmp_path / "bad.jsonl", progress=False
    )
    lines = read_lines(tmp_path / "bad.jsonl")
    assert len(lines) == report.frames == report.graphs + report.rejected
    assert report.graphs >= 6
    assert sum("error" in line for line in lines) == report.rejected


def test_natural_order_of_frame_names(tmp_path):
    names = ["frame10.png", "frame2.jpg", "frame1.PNG", "000100.png", "000009.png"]
    write_frames(tmp_path, frames(len(names)), names)
    assert [p.name for p in image_files(tmp_path)] == [
        "000009.png", "000100.png", "frame1.PNG", "frame2.jpg", "frame10.png",
    ]  # fmt: skip


def test_bad_inputs_are_clear_errors(tmp_path):
    with pytest.raises(VideoError, match="does not exist"):
        process_video(tmp_path / "nope.mp4", EmptyEngine(), tmp_path / "o.jsonl")
    (tmp_path / "empty").mkdir()
    with pytest.raises(VideoError, match="holds no images"):
        process_video(tmp_path / "empty", EmptyEngine(), tmp_path / "o.jsonl")
    pytest.importorskip("av", reason="PyAV not installed: video-file errors untested")
    (tmp_path / "junk.mp4").write_bytes(b"\x00" * 1000)
    with pytest.raises(VideoError, match="cannot open video .*junk.mp4"):
        process_video(tmp_path / "junk.mp4", EmptyEngine(), tmp_path / "o.jsonl")
    assert no_leftovers(tmp_path / "o.jsonl")


def test_outputs_appear_only_when_complete(tmp_path):
    write_frames(tmp_path / "f", frames(3))
    jsonl, overlay = tmp_path / "o.jsonl", tmp_path / "ov"
    with pytest.raises(MemoryError, match="exploded"):  # not one frame's fault: no output
        process_video(tmp_path / "f", RecordingEngine(EmptyEngine(), fail_on=1, error=MemoryError),
                      jsonl, overlay=overlay, progress=False)  # fmt: skip
    assert no_leftovers(jsonl, overlay)
    jsonl.write_text("old\n")
    with pytest.raises(OutputExistsError, match="--overwrite"):
        process_video(tmp_path / "f", EmptyEngine(), jsonl, progress=False)
    with pytest.raises(VideoError, match="different paths"):
        process_video(tmp_path / "f", EmptyEngine(), jsonl, overlay=jsonl, progress=False)
    process_video(tmp_path / "f", EmptyEngine(), jsonl, overwrite=True, progress=False)
    assert len(read_lines(jsonl)) == 3


# --------------------------------------------------------------------------
# JSON layout and engine options.


def test_result_record_layout():
    rng = np.random.default_rng(0)
    att = np.array([[0.1, 0.7, 0.2], [0.5, 0.3, 0.2]], np.float32)
    spa = np.zeros((2, SPATIAL.size), np.float32)
    spa[0, [1, 3]] = [0.9, 0.6]
    con = np.full((2, CONTACTING.size), 0.1, np.float32)
    con[1, 4] = 0.8
    r = SceneGraphResult(
        stamp_ns=5_000_000_000,
        entity_track=np.array([7, 9, 11]),
        entity_labels=np.array([1, 11, 5]),
        entity_scores=np.array([0.9, 0.8, 0.7], np.float32),
        entity_boxes=rng.uniform(0, 50, (3, 4)).astype(np.float32),
        pair_subject=np.array([0, 0]),
        pair_object=np.array([1, 2]),
        attention=att,
        spatial=spa,
        contacting=con,
        window_stamps_ns=np.array([4_000_000_000, 5_000_000_000]),
    )
    rec = result_record(r, 12, image_size=(64, 48), source="x.png", relation_threshold=0.5)
    assert json.loads(json.dumps(rec, allow_nan=False)) == rec
    assert (rec["frame"], rec["stamp_ns"], rec["time_s"], rec["source"]) == (12, 5e9, 5.0, "x.png")
    assert [e["label"] for e in rec["entities"]] == ["person", "cup/glass/bottle", "book"]
    first, second = rec["relations"]
    assert (first["subject_track"], first["object_track"], second["object_track"]) == (7, 9, 11)
    assert first["attention"]["top"] == PREDICATES[ATTENTION.start + 1]
    assert first["attention"]["holding"] == [PREDICATES[ATTENTION.start + 1]]
    assert first["spatial"]["holding"] == [PREDICATES[SPATIAL.start + i] for i in (1, 3)]
    assert first["contacting"]["holding"] == []  # nothing reaches the threshold
    assert second["contacting"]["top_id"] == CONTACTING.start + 4
    assert second["contacting"]["holding"] == [PREDICATES[CONTACTING.start + 4]]
    for family in FAMILIES:
        assert list(first[family.name]["scores"]) == list(PREDICATES[family.slice])


RANDOM = ["--model", "tr2-small", "--random-init"]


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--model", "tr2-small"], "--random-init"),
        (["--checkpoint", "/no/such.pt"], "no such file"),
        ([*RANDOM, "--window", "0"], r"--window: 0 is outside \[1, 1024\]"),
        ([*RANDOM, "--clip-weights", "x"], "--checkpoint"),
        ([*RANDOM, "--max-gap", "0"], "--max-gap"),
        ([*RANDOM, "--threads", "-1"], "--threads"),
        ([*RANDOM, "--score-threshold", "1.5"], "--score-threshold"),
        ([*RANDOM, "--relation-threshold", "nan"], "--relation-threshold"),
        ([*RANDOM, "--device", "gpu"], "--device"),
    ],
)
def test_engine_flags_are_validated(argv, message):
    parser = argparse.ArgumentParser()
    add_engine_arguments(parser)
    with pytest.raises(ConfigError, match=message):
        EngineRequest.from_args(parser.parse_args(argv)).validate()


@pytest.mark.parametrize(
    "request_",
    [
        EngineRequest(),
        EngineRequest(EngineOptions(checkpoint="c.pt"), model="tr2"),
    ],
)
def test_engine_request_needs_exactly_one_model_source(request_):
    with pytest.raises(ConfigError, match="exactly one"):
        request_.validate()


def test_engine_flags_come_from_the_engine_options():
    parser = argparse.ArgumentParser()
    add_engine_arguments(parser)
    request = EngineRequest.from_args(parser.parse_args(RANDOM))
    assert request.options == EngineOptions()  # every flag defaults to the declaration
    args = parser.parse_args([*RANDOM, "--max-gap", "2.5", "--window", "3"])
    options = EngineRequest.from_args(args).options
    assert (options.max_gap_s, options.window) == (2.5, 3)


# --------------------------------------------------------------------------
# Hostile inputs.


def test_a_frame_the_engine_cannot_take_is_skipped_not_fatal(tmp_path):
    """A 1x600 frame the real engine cannot resize is rejected, counted and
    written as an error line; the other frames keep their graphs (the run neither
    raises nor discards them). Ctrl-C keeps the frames done so far."""
    folder = tmp_path / "f"
    write_frames(folder, frames(3))
    from PIL import Image

    Image.fromarray(np.zeros((1, 600, 3), np.uint8)).save(folder / "000002b.png")  # 3rd of 4
    engine = tiny_engine()
    report = process_video(folder, engine, tmp_path / "o.jsonl", overlay=tmp_path / "ov",
                           progress=False)  # fmt: skip
    lines = read_lines(tmp_path / "o.jsonl")
    assert (report.frames, report.graphs, report.rejected) == (4, 3, 1)
    assert "inference failed on this 1x600x3 frame" in lines[2]["error"]
    assert all("error" not in line for i, line in enumerate(lines) if i != 2)
    assert len(list((tmp_path / "ov").glob("*.png"))) == 3
    cut = process_video(folder, RecordingEngine(EmptyEngine(), fail_on=1, error=KeyboardInterrupt),
                        tmp_path / "cut.jsonl", progress=False)  # fmt: skip
    assert cut.interrupted and "interrupted" in cut.summary()
    assert len(read_lines(tmp_path / "cut.jsonl")) == 1


def test_overwrite_never_deletes_inputs_or_unrelated_folders(tmp_path):
    """None of these output paths may delete the input frames or an unrelated folder."""
    folder = tmp_path / "frames"
    write_frames(folder, frames(2))
    before = sorted(p.name for p in folder.iterdir())
    jsonl = tmp_path / "o.jsonl"
    with pytest.raises(OutputPathError, match="--overlay .* contains the input"):
        process_video(folder, EmptyEngine(), jsonl, overlay=tmp_path, overwrite=True,
                      progress=False)  # fmt: skip
    unrelated = tmp_path / "notes"
    unrelated.mkdir()
    (unrelated / "keep.txt").write_text("mine")
    with pytest.raises(OutputPathError, match="--jsonl .* is a folder"):
        process_video(folder, EmptyEngine(), unrelated, overwrite=True, progress=False)
    with pytest.raises(OutputPathError, match="tr2 did not write"):
        process_video(folder, EmptyEngine(), jsonl, overlay=unrelated, overwrite=True,
                      progress=False)  # fmt: skip
    assert (unrelated / "keep.txt").read_text() == "mine"
    assert sorted(p.name for p in folder.iterdir()) == before
    # its own overlay folder (marked) is replaced
    process_video(folder, EmptyEngine(), jsonl, overlay=tmp_path / "ov", progress=False)
    process_video(folder, EmptyEngine(), jsonl, overlay=tmp_path / "ov", overwrite=True,
                  progress=False)  # fmt: skip
    assert (tmp_path / "ov" / MARKER).read_text().strip() == "tr2-video-overlay-png"


def test_image_size_is_bounded_before_decoding(tmp_path, monkeypatch):
    """Class 5: main decoded a small PNG claiming 10000x10000 (4.7 GB in `tr2 video`).
    The size comes from the header; the bound is lowered here to keep the test small."""
    import tr2_core.runners.video_runner as video

    monkeypatch.setattr(video, "MAX_FRAME_PIXELS", 100 * 100)
    folder = tmp_path / "f"
    write_frames(folder, [np.zeros((101, 100, 3), np.uint8), frames(1)[0]])
    report = process_video(folder, EmptyEngine(), tmp_path / "o.jsonl", progress=False)
    line = read_lines(tmp_path / "o.jsonl")[0]
    assert "100x101 pixels, more than the 10,000" in line["error"]
    assert (report.graphs, report.rejected) == (1, 1)


def test_16_bit_images_are_scaled_not_white(tmp_path):
    """Class 6: main turned 16-bit greyscale frames all white (clipped to 255)."""
    from PIL import Image

    grey = np.array([[0, 257 * 100], [65535, 257 * 7]], np.uint16)
    Image.fromarray(grey).save(tmp_path / "g.png")
    rgb = read_image(tmp_path / "g.png")
    assert rgb.dtype == np.uint8 and rgb.shape == (2, 2, 3)
    np.testing.assert_array_equal(rgb[:, :, 0], [[0, 100], [255, 7]])


def test_truncated_video_with_intact_index_is_reported(tmp_path):
    """Class 6: a video whose index (moov up front) is intact but whose data stops early
    demuxes without error; main reported no truncation."""
    pytest.importorskip("av", reason="video files need PyAV")
    path = tmp_path / "cut.mp4"
    write_mp4(path, frames(20), options={"movflags": "faststart"})  # index first
    data = path.read_bytes()
    path.write_bytes(data[: len(data) * 6 // 10])
    report = process_video(path, EmptyEngine(), tmp_path / "o.jsonl", progress=False)
    assert report.frames < 20
    assert f"{20 - report.frames} of the 20 frames the container announces are missing" in (
        report.summary()
    )
