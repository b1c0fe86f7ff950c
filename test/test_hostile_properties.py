"""Property-based tests of every reader of user files: annotation pickles, prediction
``.npz`` files, checkpoints, prompt (text) tables, image folders and videos, bags.

For each reader, generated well-formed inputs load and round-trip; generated
mutations (bytes flipped, cut or inserted; fields replaced by values of other types
and sizes) give either a result or one of the documented errors
(:class:`tr2_core.errors.Tr2Error` and its subclasses) in one line -- never another
exception, a hang (every example runs under an alarm) or a changed input file.

Example budgets are small and fixed (``settings`` below): together these tests take
well under a minute on two cores.
"""

from __future__ import annotations

import contextlib
import copy
import hashlib
import signal
import tempfile
from collections.abc import Callable, Iterator
from functools import cache
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from ag_fixtures import ReleaseBuilder
from engine_fixtures import EmptyEngine
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tr2_core.errors import Tr2Error
from tr2_core.vocab import OBJECT_CLASSES

ALARM_S = 20
"""A reader that takes longer than this on a file of a few KB hangs."""


def budget(examples: int) -> settings:
    return settings(
        max_examples=examples,
        deadline=None,
        database=None,
        derandomize=True,  # the same examples on every run: no flaky CI
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    )


@contextlib.contextmanager
def alarm(seconds: int = ALARM_S) -> Iterator[None]:
    """Fail (TimeoutError) instead of hanging."""

    def expire(signum: int, frame: Any) -> None:
        raise TimeoutError(f"reader still running after {seconds} s")

    previous = signal.signal(signal.SIGALRM, expire)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)


def _digest(paths: list[Path]) -> dict[str, str]:
    out = {}
    for root in paths:
        files = sorted(root.rglob("*")) if root.is_dir() else [root]
        for p in files:
            if p.is_file():
                out[str(p)] = hashlib.sha256(p.read_bytes()).hexdigest()
    return out


def outcome(read: Callable[[], Any], inputs: list[Path]) -> Any:
    """``read()``: its result, or the :class:`Tr2Error` it raised (one line); any other
    exception fails the test, and so does a changed input file."""
    before = _digest(inputs)
    try:
        with alarm():
            result = read()
    except Tr2Error as e:
        message = str(e)
        assert message and "\n" not in message and "Traceback" not in message, message
        result = e
    assert _digest(inputs) == before, "the reader changed its input"
    return result


# --------------------------------------------------------------------------- mutations
@st.composite
def byte_mutations(draw: st.DrawFn, data: bytes) -> bytes:
    """``data`` with one to three edits: a cut, a run of flipped bytes, an insertion."""
    out = bytearray(data)
    for _ in range(draw(st.integers(1, 3))):
        kind = draw(st.sampled_from(["cut", "flip", "insert", "zero"]))
        at = draw(st.integers(0, max(len(out) - 1, 0)))
        if kind == "cut":
            out = out[:at]
        elif kind == "flip":
            n = draw(st.integers(1, 16))
            for i in range(at, min(at + n, len(out))):
                out[i] ^= draw(st.integers(1, 255))
        elif kind == "insert":
            out[at:at] = draw(st.binary(min_size=1, max_size=64))
        else:
            n = draw(st.integers(1, 256))
            out[at : at + n] = bytes(len(out[at : at + n]))
    return bytes(out)


HOSTILE_VALUES = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=20),
    st.binary(max_size=20),
    st.lists(st.integers(-5, 5), max_size=5),
    st.dictionaries(st.text(max_size=5), st.integers(), max_size=3),
    st.sampled_from(
        [
            np.zeros(3, np.float32),
            np.zeros((2, 4), np.float64),
            np.array(["a", "b"]),
            np.uint64(2**64 - 1),
            np.float32("nan"),
            (1, 2, 3, 4),
            ["1", "2", "3", "4"],
        ]
    ),
)


def _scratch() -> tempfile.TemporaryDirectory:
    return tempfile.TemporaryDirectory(prefix="tr2-prop-")


# --------------------------------------------------------------------------- annotations
OBJECTS = [c for c in OBJECT_CLASSES[1:] if c != "person"]


@st.composite
def releases(draw: st.DrawFn) -> ReleaseBuilder:
    """A small well-formed release: 1-3 test videos of 3-5 frames, 1-3 objects each."""
    rb = ReleaseBuilder()
    for v in range(draw(st.integers(1, 3))):
        numbers = sorted(draw(st.sets(st.integers(1, 500), min_size=3, max_size=5)))
        for n in numbers:
            objects = [
                {
                    "cls": draw(st.sampled_from(OBJECTS)),
                    "bbox": (
                        float(draw(st.integers(0, 300))),
                        float(draw(st.integers(0, 200))),
                        float(draw(st.integers(17, 100))),
                        float(draw(st.integers(17, 60))),
                    ),
                }  # fmt: skip
                for _ in range(draw(st.integers(1, 3)))
            ]
            rb.frame(f"V{v}.mp4", n, objects)
    return rb


def _load(root: Path) -> Any:
    from tr2_core.data.action_genome import load_split

    return load_split(root, "test", show_progress=False, cache=False)


@budget(15)
@given(rb=releases())
def test_wellformed_annotations_load_and_round_trip(rb):
    with _scratch() as tmp:
        root = rb.write(Path(tmp) / "ag")
        split = outcome(lambda: _load(root), [root])
        assert not isinstance(split, Exception), split
        gt = split.gt
        assert sorted(gt.frame_keys.tolist()) == sorted(rb.objects)
        for i, key in enumerate(gt.frame_keys.tolist()):
            boxes = gt.boxes[gt.box_start[i] : gt.box_start[i + 1]]
            assert len(boxes) == 1 + len(rb.objects[key])  # the person, then the objects
            x, y, w, h = rb.objects[key][0]["bbox"]
            assert any(np.allclose(b, (x, y, x + w, y + h)) for b in boxes[1:])


def _set_field(rb: ReleaseBuilder, which: str, key: str, field: str, value: Any) -> None:
    record = rb.person[key] if which == "person" else rb.objects[key][0]
    record[field] = value


PERSON_FIELDS = ["bbox", "bbox_size", "bbox_score", "bbox_mode"]
OBJECT_FIELDS = [
    "class", "bbox", "visible", "attention_relationship", "spatial_relationship",
    "contacting_relationship", "metadata",
]  # fmt: skip


@budget(30)
@given(
    rb=releases(),
    which=st.sampled_from(["person", "object"]),
    field_index=st.integers(0, 6),
    value=HOSTILE_VALUES,
    data=st.data(),
)
def test_annotation_fields_of_any_type_give_a_documented_error(rb, which, field_index, value, data):
    fields = PERSON_FIELDS if which == "person" else OBJECT_FIELDS
    key = data.draw(st.sampled_from(sorted(rb.objects)))
    _set_field(rb, which, key, fields[field_index % len(fields)], value)
    with _scratch() as tmp:
        root = rb.write(Path(tmp) / "ag")
        outcome(lambda: _load(root), [root])


@budget(25)
@given(rb=releases(), file=st.sampled_from(["person_bbox.pkl", "object_bbox_and_relationship.pkl"]),
       data=st.data())  # fmt: skip
def test_annotation_pickle_bytes_mutated_give_a_documented_error(rb, file, data):
    with _scratch() as tmp:
        root = rb.write(Path(tmp) / "ag")
        path = root / "annotations" / file
        path.write_bytes(data.draw(byte_mutations(path.read_bytes())))
        outcome(lambda: _load(root), [root])


# --------------------------------------------------------------------------- predictions
@cache
def _ground_truth() -> Any:
    rb = ReleaseBuilder()
    rb.video("A.mp4", [1, 2, 3], objects=[{"cls": "book"}, {"cls": "cup/glass/bottle"}])
    rb.video("B.mp4", [4, 5, 6, 7])
    with _scratch() as tmp:
        return _load(rb.write(Path(tmp) / "ag")).gt


def _prediction_arrays(seed: int, detect: bool) -> dict[str, np.ndarray]:
    from tr2_core.testing.eval_fixtures import random_predictions

    preds = random_predictions(_ground_truth(), seed=seed, detect=detect)
    return {name: getattr(preds, name) for name in preds.__dataclass_fields__}


@budget(20)
@given(seed=st.integers(0, 2**31), detect=st.booleans())
def test_wellformed_predictions_round_trip(seed, detect):
    from tr2_core.evaluation.predictions import load_predictions, save_predictions
    from tr2_core.types import Predictions

    arrays = _prediction_arrays(seed, detect)
    with _scratch() as tmp:
        path = save_predictions(Path(tmp) / "p.npz", Predictions(**arrays))
        loaded = outcome(lambda: load_predictions(path), [path])
        for name, array in arrays.items():
            np.testing.assert_array_equal(getattr(loaded, name), array)


@budget(30)
@given(
    seed=st.integers(0, 2**31),
    name=st.sampled_from(sorted(_prediction_arrays(0, False))),
    replacement=st.one_of(
        HOSTILE_VALUES.map(np.asarray),
        st.tuples(
            st.sampled_from(["<f4", "<f8", "<i8", "<u8", "<i2", "|b1", "<U3", "<c8"]),
            st.lists(st.integers(0, 5), min_size=0, max_size=3),
        ).map(lambda spec: np.ones(spec[1], dtype=spec[0])),
    ),  # fmt: skip
)
def test_prediction_arrays_of_any_form_give_a_documented_error(seed, name, replacement):
    from tr2_core.evaluation.predictions import load_predictions

    arrays = _prediction_arrays(seed, False)
    arrays[name] = replacement
    with _scratch() as tmp:
        path = Path(tmp) / "p.npz"
        try:
            np.savez(path, **arrays)
        except (TypeError, ValueError):
            return  # numpy cannot write it: not a file a user can have
        outcome(lambda: load_predictions(path), [path])


@budget(30)
@given(seed=st.integers(0, 2**31), compressed=st.booleans(), data=st.data())
def test_prediction_npz_bytes_mutated_give_a_documented_error(seed, compressed, data):
    from tr2_core.evaluation.predictions import load_predictions

    with _scratch() as tmp:
        path = Path(tmp) / "p.npz"
        (np.savez_compressed if compressed else np.savez)(path, **_prediction_arrays(seed, True))
        path.write_bytes(data.draw(byte_mutations(path.read_bytes())))
        outcome(lambda: load_predictions(path), [path])


# --------------------------------------------------------------------------- checkpoints
@cache
def _checkpoint() -> dict[str, Any]:
    from tr2_core.models import create_relation_model, load_model_config
    from tr2_core.run_spec import RunSpec
    from tr2_core.train.checkpoint import checkpoint_state, run_config_dict
    from tr2_core.train.loop import Optimisation
    from tr2_core.train.recipe import load_train_config

    torch.manual_seed(0)
    model_cfg = load_model_config("tr2-small")
    train_cfg = load_train_config("small", ("epochs=2",))
    run = RunSpec(data="/nonexistent", model="tr2-small", random_init=True)
    relation = create_relation_model(model_cfg)
    opt = Optimisation.create(relation, train_cfg, torch.device("cpu"))
    return checkpoint_state(
        relation, opt.state(), epoch=1, best=0.5,
        config=run_config_dict(run, model_cfg, train_cfg), extractor_fingerprint="ab" * 16,
        random_init=True, log_record={"epoch": 1},
    )  # fmt: skip


def _paths(value: Any, prefix: tuple = ()) -> list[tuple]:
    """Every key path into the nested dicts of a checkpoint (tensors are leaves)."""
    out = [prefix] if prefix else []
    if isinstance(value, dict) and prefix[:1] != ("model",):
        for key, item in value.items():
            out += _paths(item, (*prefix, key))
    return out


CHECKPOINT_PATHS = [p for p in _paths(_checkpoint()) if p[0] not in ("optimizer", "scheduler")]


def _load_checkpoint(path: Path) -> Any:
    from tr2_core.run import load_checkpoint

    return load_checkpoint(path)


@budget(5)
@given(epoch=st.integers(0, 10**6), best=st.floats(-1e9, 1e9), init=st.booleans())
def test_wellformed_checkpoints_load_and_round_trip(epoch, best, init):
    import json

    ckpt = copy.copy(_checkpoint())
    ckpt.update(epoch=epoch, best_metric=best, random_init=init,
                log_record=json.dumps({"epoch": epoch}))  # fmt: skip
    with _scratch() as tmp:
        path = Path(tmp) / "last.pt"
        torch.save(ckpt, path)
        loaded = outcome(lambda: _load_checkpoint(path), [path])
        assert not isinstance(loaded, Exception), loaded
        assert (loaded["epoch"], loaded["best_metric"], loaded["random_init"]) == (
            epoch,
            best,
            init,
        )
        assert loaded["config"] == ckpt["config"]


@budget(20)
@given(where=st.sampled_from(CHECKPOINT_PATHS), value=HOSTILE_VALUES)
def test_checkpoint_fields_of_any_type_give_a_documented_error(where, value):
    ckpt = copy.deepcopy({k: v for k, v in _checkpoint().items() if k != "model"})
    ckpt["model"] = _checkpoint()["model"]  # tensors shared, not copied: only read
    node = ckpt
    for key in where[:-1]:
        node = node[key]
    node[where[-1]] = value
    with _scratch() as tmp:
        path = Path(tmp) / "last.pt"
        torch.save(ckpt, path)
        outcome(lambda: _load_checkpoint(path), [path])


@cache
def _checkpoint_bytes() -> bytes:
    with _scratch() as tmp:
        path = Path(tmp) / "c.pt"
        small = {k: v for k, v in _checkpoint().items() if k not in ("optimizer",)}
        torch.save(small, path)
        return path.read_bytes()


@budget(15)
@given(data=st.data())
def test_checkpoint_bytes_mutated_give_a_documented_error(data):
    with _scratch() as tmp:
        path = Path(tmp) / "last.pt"
        path.write_bytes(data.draw(byte_mutations(_checkpoint_bytes())))
        outcome(lambda: _load_checkpoint(path), [path])


# --------------------------------------------------------------------------- text tables
def _text_table(dim: int, seed: int) -> Any:
    from tr2_core.models.guidance import TextTable
    from tr2_core.vocab import NUM_OBJECT_CLASSES, NUM_PREDICATES

    table = torch.from_numpy(
        np.random.default_rng(seed).normal(size=(NUM_OBJECT_CLASSES, NUM_PREDICATES, dim))
    ).float()
    prompts = np.full((NUM_OBJECT_CLASSES, NUM_PREDICATES), "a photo", dtype=str)
    return TextTable(table, prompts, "ViT-B-32", "random-init", "", "0" * 64)


@budget(10)
@given(dim=st.integers(1, 64), seed=st.integers(0, 2**31))
def test_wellformed_text_tables_round_trip(dim, seed):
    from tr2_core.models.guidance import load_text_table, save_text_table

    table = _text_table(dim, seed)
    with _scratch() as tmp:
        path = Path(tmp) / "text_table.npz"
        save_text_table(path, table)
        loaded = outcome(lambda: load_text_table(path, expected_dim=dim), [path])
        assert torch.equal(loaded.table, table.table)
        assert (loaded.clip_model, loaded.clip_weights) == ("ViT-B-32", "random-init")


TABLE_ARRAYS = ["table", "prompts", "objects", "predicates", "clip_model", "clip_weights",
                "clip_weights_sha256", "text_tower_sha256"]  # fmt: skip


@budget(30)
@given(name=st.sampled_from(TABLE_ARRAYS), value=HOSTILE_VALUES.map(np.asarray), data=st.data())
def test_text_table_arrays_and_bytes_mutated_give_a_documented_error(name, value, data):
    from tr2_core.models.guidance import load_text_table, save_text_table

    with _scratch() as tmp:
        path = Path(tmp) / "text_table.npz"
        save_text_table(path, _text_table(8, 0))
        with np.load(path) as npz:
            arrays = {k: npz[k] for k in npz.files}
        arrays[name] = value
        try:
            np.savez(path, **arrays)
        except (TypeError, ValueError):
            return
        if data.draw(st.booleans()):
            path.write_bytes(data.draw(byte_mutations(path.read_bytes())))
        outcome(lambda: load_text_table(path, expected_dim=8), [path])


def test_text_table_zip_bomb_refused_before_inflating(tmp_path):
    """Before: np.load inflated every member whole (here 64 MiB of zeros from 64 KiB)."""
    import io
    import time
    import zipfile

    from tr2_core.errors import WeightsError
    from tr2_core.models.guidance import load_text_table

    path = tmp_path / "text_table.npz"
    header = io.BytesIO()
    np.lib.format.write_array_header_1_0(
        header, {"descr": "<f4", "fortran_order": False, "shape": (37, 26, 1 << 14)}
    )
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        with zf.open("table.npy", "w", force_zip64=True) as member:
            member.write(header.getvalue())
            for _ in range(37 * 26 * 4 * (1 << 14) // (1 << 20)):
                member.write(bytes(1 << 20))
    assert path.stat().st_size < 1 << 20
    t = time.perf_counter()
    with pytest.raises(WeightsError, match="'table.npy' would inflate from"):
        load_text_table(path)
    assert time.perf_counter() - t < 1.0


# --------------------------------------------------------------------------- image folders
@budget(10)
@given(
    sizes=st.lists(st.tuples(st.integers(1, 24), st.integers(1, 24)), min_size=1, max_size=4),
    seed=st.integers(0, 2**31),
)
def test_wellformed_image_folders_read_back_exactly(sizes, seed):
    from PIL import Image

    from tr2_core.runners.video_runner import open_source

    rng = np.random.default_rng(seed)
    images = [rng.integers(0, 256, (h, w, 3), dtype=np.uint8) for h, w in sizes]
    with _scratch() as tmp:
        folder = Path(tmp) / "frames"
        folder.mkdir()
        for i, rgb in enumerate(images):
            Image.fromarray(rgb).save(folder / f"{i + 1}.png")  # natural order: 1, 2, ... 10
        source = outcome(lambda: open_source(folder, fps=10), [folder])
        read = list(source)
        assert [f.index for f in read] == list(range(len(images)))
        for frame, rgb in zip(read, images, strict=True):
            np.testing.assert_array_equal(frame.image, rgb)


@cache
def _png(seed: int) -> bytes:
    import io

    from PIL import Image

    buf = io.BytesIO()
    rgb = np.random.default_rng(seed).integers(0, 256, (16, 20, 3), dtype=np.uint8)
    Image.fromarray(rgb).save(buf, format=["PNG", "JPEG", "BMP", "TIFF"][seed % 4])
    return buf.getvalue()


@budget(30)
@given(kind=st.integers(0, 3), data=st.data())
def test_mutated_images_cost_their_frame_only(kind, data):
    from tr2_core.runners.video_runner import open_source

    suffix = [".png", ".jpg", ".bmp", ".tif"][kind]
    with _scratch() as tmp:
        folder = Path(tmp) / "frames"
        folder.mkdir()
        (folder / f"1{suffix}").write_bytes(_png(kind))
        (folder / f"2{suffix}").write_bytes(data.draw(byte_mutations(_png(kind))))
        (folder / f"3{suffix}").write_bytes(_png(kind))

        def read() -> list:
            return list(open_source(folder))

        read_frames = outcome(read, [folder])
        assert len(read_frames) == 3 and read_frames[0].image is not None
        assert read_frames[2].image is not None
        bad = read_frames[1]
        assert (bad.image is None) == (bad.error is not None)
        if bad.error is not None:
            assert "\n" not in bad.error and "2" + suffix in bad.error


# --------------------------------------------------------------------------- videos
@cache
def _video(suffix: str) -> bytes:
    av = pytest.importorskip("av", reason="video files need PyAV")
    rng = np.random.default_rng(1)
    with _scratch() as tmp:
        path = Path(tmp) / f"v{suffix}"
        options = {"movflags": "faststart"} if suffix == ".mp4" else {}
        with av.open(str(path), mode="w", options=options) as out:
            stream = out.add_stream("libx264", rate=10)
            stream.height, stream.width, stream.pix_fmt = 32, 48, "yuv420p"
            for _ in range(12):
                rgb = rng.integers(0, 256, (32, 48, 3), dtype=np.uint8)
                out.mux(stream.encode(av.VideoFrame.from_ndarray(rgb, format="rgb24")))
            out.mux(stream.encode())
        return path.read_bytes()


@budget(25)
@given(suffix=st.sampled_from([".mp4", ".mkv"]), data=st.data())
def test_mutated_videos_give_lines_or_a_documented_error(suffix, data):
    from tr2_core.runners.video_runner import process_video

    with _scratch() as tmp:
        path = Path(tmp) / f"in{suffix}"
        path.write_bytes(data.draw(byte_mutations(_video(suffix))))
        jsonl = Path(tmp) / "out.jsonl"
        report = outcome(lambda: process_video(path, EmptyEngine(), jsonl, progress=False), [path])
        if not isinstance(report, Exception):
            lines = jsonl.read_text().splitlines()
            assert len(lines) == report.frames == report.graphs + report.rejected
        else:
            assert not jsonl.exists()


def test_wellformed_videos_read_every_frame(tmp_path):
    from tr2_core.runners.video_runner import process_video

    for suffix in (".mp4", ".mkv"):
        path = tmp_path / f"v{suffix}"
        path.write_bytes(_video(suffix))
        report = process_video(path, EmptyEngine(), tmp_path / f"{suffix}.jsonl", progress=False)
        assert (report.frames, report.graphs, report.truncated) == (12, 12, None)


# --------------------------------------------------------------------------- bags
def _bag(folder: Path, storage: str, images: list[np.ndarray]) -> Path:
    rosbag2 = pytest.importorskip("rosbags.rosbag2", reason="bags need rosbags")
    from tr2_ros.messages import make_typestore

    ts = make_typestore("humble")
    plugin = rosbag2.StoragePlugin.MCAP if storage == "mcap" else rosbag2.StoragePlugin.SQLITE3
    with rosbag2.Writer(folder, version=9, storage_plugin=plugin) as writer:
        conn = writer.add_connection("/cam", "sensor_msgs/msg/Image", typestore=ts)
        for k, rgb in enumerate(images):
            t = 10**9 + k * 10**8
            stamp = ts.types["builtin_interfaces/msg/Time"](sec=t // 10**9, nanosec=t % 10**9)
            header = ts.types["std_msgs/msg/Header"](stamp=stamp, frame_id="cam")
            h, w = rgb.shape[:2]
            msg = ts.types["sensor_msgs/msg/Image"](
                header=header, height=h, width=w, encoding="rgb8", is_bigendian=0, step=w * 3,
                data=rgb.reshape(-1),
            )  # fmt: skip
            writer.write(conn, t, ts.serialize_cdr(msg, "sensor_msgs/msg/Image"))
    return folder


def _process_bag(src: Path, dst: Path) -> Any:
    bag = pytest.importorskip("tr2_ros.bag", reason="tr2 bag needs the ROS 2 layer")
    return bag.process_bag(src, dst, EmptyEngine(), "/cam", progress=False)


@budget(6)
@given(
    storage=st.sampled_from(["sqlite3", "mcap"]),
    sizes=st.lists(st.tuples(st.integers(1, 16), st.integers(1, 16)), min_size=1, max_size=3),
)
def test_wellformed_bags_round_trip(storage, sizes):
    rng = np.random.default_rng(len(sizes))
    images = [rng.integers(0, 256, (h, w, 3), dtype=np.uint8) for h, w in sizes]
    with _scratch() as tmp:
        src = _bag(Path(tmp) / "in", storage, images)
        report = outcome(lambda: _process_bag(src, Path(tmp) / "out"), [src])
        assert not isinstance(report, Exception), report
        assert (report.frames, report.graphs, report.rejected) == (len(images), len(images), 0)


@cache
def _bag_files(storage: str) -> dict[str, bytes]:
    rng = np.random.default_rng(0)
    images = [rng.integers(0, 256, (8, 10, 3), dtype=np.uint8) for _ in range(3)]
    with _scratch() as tmp:
        folder = _bag(Path(tmp) / "b", storage, images)
        return {p.name: p.read_bytes() for p in folder.iterdir()}


@budget(24)
@given(storage=st.sampled_from(["sqlite3", "mcap"]), metadata=st.booleans(), data=st.data())
def test_mutated_bags_give_a_report_or_a_documented_error(storage, metadata, data):
    files = _bag_files(storage)
    target = "metadata.yaml" if metadata else next(n for n in files if n != "metadata.yaml")
    with _scratch() as tmp:
        src = Path(tmp) / "in"
        src.mkdir()
        for name, content in files.items():
            (src / name).write_bytes(content)
        (src / target).write_bytes(data.draw(byte_mutations(files[target])))
        dst = Path(tmp) / "out"
        report = outcome(lambda: _process_bag(src, dst), [src])
        if isinstance(report, Exception):
            assert not dst.exists()


# ----------------------------------------------------------- word vectors, class lists
WORDS = ["cup", "book", "phone", "table", "door", "bed", "light"]


@st.composite
def glove_tables(draw: st.DrawFn) -> tuple[int, dict[str, list[float]], str]:
    """(dim, vectors of some words, the GloVe text: those lines and other words')."""
    dim = draw(st.integers(1, 6))
    finite = st.floats(-100, 100, width=32, allow_subnormal=False)
    vectors = {w: draw(st.lists(finite, min_size=dim, max_size=dim))
               for w in draw(st.sets(st.sampled_from(WORDS), min_size=1))}  # fmt: skip
    others = draw(st.lists(st.from_regex(r"[a-z]{2,8}", fullmatch=True), max_size=4))
    lines = [f"{w} " + " ".join(repr(v) for v in vec) for w, vec in vectors.items()]
    lines += [f"{w}_x " + " ".join("0.5" for _ in range(dim)) for w in others]
    order = draw(st.permutations(lines))
    return dim, vectors, "\n".join(order) + "\n"


@budget(20)
@given(table=glove_tables())
def test_wellformed_glove_tables_read_back_exactly(table):
    from tr2_core.models.glove import read_glove

    dim, vectors, text = table
    with _scratch() as tmp:
        path = Path(tmp) / "glove.txt"
        path.write_text(text)
        found = outcome(lambda: read_glove(path, set(WORDS), dim), [path])
        assert set(found) == set(vectors)
        for word, vec in vectors.items():
            assert found[word].tolist() == pytest.approx(vec)


@budget(30)
@given(table=glove_tables(), data=st.data())
def test_mutated_glove_tables_give_finite_vectors_or_a_documented_error(table, data):
    from tr2_core.models.glove import read_glove

    dim, _, text = table
    with _scratch() as tmp:
        path = Path(tmp) / "glove.txt"
        path.write_bytes(data.draw(byte_mutations(text.encode())))
        found = outcome(lambda: read_glove(path, set(WORDS), dim), [path])
        if not isinstance(found, Exception):
            assert all(v.shape == (dim,) and bool(torch.isfinite(v).all()) for v in found.values())


def test_glove_values_that_are_not_finite_are_refused(tmp_path):
    """Before: 'nan' and 'inf' parse as floats and became class embeddings."""
    from tr2_core.errors import WeightsError
    from tr2_core.models.glove import read_glove

    path = tmp_path / "glove.txt"
    path.write_text("cup 0.1 nan\nbook inf 2\n")
    with pytest.raises(WeightsError, match=r"line 1 \('cup'\): holds NaN or infinite"):
        read_glove(path, {"cup"}, 2)


@budget(30)
@given(which=st.sampled_from(["object_classes.txt", "relationship_classes.txt"]), data=st.data())
def test_mutated_class_files_give_a_documented_error(which, data):
    from tr2_core.data.action_genome import check_class_files
    from tr2_core.data.release_writer import write_class_files

    with _scratch() as tmp:
        ann = Path(tmp)
        write_class_files(ann)
        assert outcome(lambda: check_class_files(ann), [ann]) is None  # as written: accepted
        path = ann / which
        path.write_bytes(data.draw(byte_mutations(path.read_bytes())))
        outcome(lambda: check_class_files(ann), [ann])
