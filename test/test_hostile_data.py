"""Hostile and careless inputs on the data side: annotation pickles,
the annotation loader, predictions files and ``tr2 eval``. Each group's comment says
what an unguarded reader would do with such input."""

from __future__ import annotations

import io
import pickle
import struct
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import numpy as np
import pytest
from ag_fixtures import ReleaseBuilder, small_release

from tr2_core.cli import main
from tr2_core.data.action_genome import load_split
from tr2_core.data.safe_pickle import MAX_UNBACKED_BYTES, check_dtype, safe_loads
from tr2_core.errors import DatasetError, PredictionsError, UnsafePickleError
from tr2_core.evaluation.predictions import (
    check_frame_coverage,
    load_predictions,
    save_predictions,
)
from tr2_core.testing.eval_fixtures import random_predictions

REPO = Path(__file__).resolve().parents[1]
_NO_REFS = (3, "|", None, None, None, -1, -1, 0)  # dtype state whose flags claim "no objects"


@pytest.fixture(autouse=True)
def _private_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("TR2_CACHE_DIR", str(tmp_path / "cache"))


# --------------------------------------------------------------------------
# memory-unsafe allow-list (unguarded: SIGSEGV in the subprocess)


class _Dtype:
    """Pickles as numpy.dtype(spec) followed by a forged __setstate__."""

    def __init__(self, spec: str, state: tuple) -> None:
        self.spec, self.state = spec, state

    def __reduce__(self):
        return (np.dtype, (self.spec, False, True), self.state)


class _RawArray:
    """Pickles as _reconstruct + __setstate__ with ``data`` as the raw buffer."""

    def __init__(self, dtype: object, data: bytes) -> None:
        self.dtype, self.data = dtype, data

    def __reduce__(self):
        from numpy._core.multiarray import _reconstruct

        return (_reconstruct, (np.ndarray, (0,), b"b"), (1, (2,), self.dtype, False, self.data))


_FORGED = {
    "object dtype, flags cleared": _Dtype("O8", _NO_REFS),
    "structured dtype hiding an object field": _Dtype(
        "V8", (3, "|", None, ("a",), {"a": (_Dtype("O8", _NO_REFS), 0)}, 8, 1, 0)
    ),
    "structured dtype with a non-dtype field": _Dtype(
        "V8", (3, "|", None, ("a",), {"a": ("O", 0)}, 8, 1, 0)
    ),
    "structured dtype from a string spec": _Dtype("O8,i4", (3, "|", None, None, None, -1, -1, 0)),
}


@pytest.mark.parametrize("forged", list(_FORGED))
def test_forged_object_arrays_never_leave_the_unpickler(tmp_path, forged):
    # the payload sits where the real data has a float32 array; tr2 eval runs
    # in a subprocess so that a segfault fails this test instead of pytest
    rb, key = small_release()
    rb.person[key]["bbox"] = _RawArray(_FORGED[forged], b"\x41" * 16)
    root = rb.write(tmp_path / "ag")
    preds = tmp_path / "p.npz"
    preds.write_bytes(b"unused: the annotations fail first")
    code = (
        "import sys; from tr2_core.cli import main; "
        f"sys.exit(main(['eval', '--data', {str(root)!r}, '--predictions', {str(preds)!r}, "
        "'--task', 'predcls']))"
    )
    env = {"TR2_CACHE_DIR": str(tmp_path / "c"), "PYTHONPATH": str(REPO), "PATH": "/usr/bin"}
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, env=env
    )
    assert done.returncode == 2, (done.returncode, done.stderr[-2000:])
    assert "person_bbox.pkl" in done.stderr and "refused" in done.stderr
    assert "Traceback" not in done.stderr


def test_check_dtype_judges_structure_not_flags():
    forged = np.dtype("O8", copy=True)
    forged.__setstate__(_NO_REFS)  # NumPy now believes it holds no references
    with pytest.raises(Exception, match="object"):
        check_dtype(forged)
    assert check_dtype(np.dtype([("a", "<i2"), ("b", "<f8", (2,))])) is not None


# --------------------------------------------------------------------------
# resource bombs (unguarded: allocations of GBs, hangs, huge messages)


@pytest.mark.parametrize(
    "payload",
    [
        b"\x80\x02c__builtin__\nbytearray\n\x8a\x05\x00\x00\x00\x80\x00\x85R.",  # bytearray(2**31)
        b"\x80\x02c__builtin__\nbytes\n\x8a\x05\x00\x00\x00\x80\x00\x85R.",  # bytes(2**31)
        # multiarray._reconstruct(ndarray, (2**31,), b'b'): 2 GB not in the file
        b"\x80\x02cnumpy.core.multiarray\n_reconstruct\ncnumpy\nndarray\n"
        b"\x8a\x05\x00\x00\x00\x80\x00\x85C\x01b\x87R.",
    ],
    ids=["bytearray(n)", "bytes(n)", "_reconstruct shape"],
)
def test_unbacked_allocations_refused(payload):
    with pytest.raises(UnsafePickleError, match=f"at most {MAX_UNBACKED_BYTES:,}"):
        safe_loads(payload, source="bomb.pkl")


def test_str_of_a_container_refused():
    # str() of a list of repeated references would expand without bound
    payload = b"\x80\x02c__builtin__\nstr\n]\x85R."
    with pytest.raises(UnsafePickleError, match="str"):
        safe_loads(payload, source="s.pkl")


def _nested_ops(levels: int, width: int) -> bytes:
    """Opcodes of a list nesting one list ``width`` times, ``levels`` deep
    (``width ** levels`` leaves from a few hundred bytes)."""
    ops = b"(G?\xf0\x00\x00\x00\x00\x00\x00l\x94"  # [1.0], memo 0
    for level in range(levels):
        ops += b"(" + (b"h" + bytes([level])) * width + b"l\x94"  # memo level + 1
    return ops


@pytest.mark.parametrize(
    "opcodes",
    [
        pytest.param(None, id="repeated references (40**6 leaves)"),
        pytest.param(b"]" * 100_001 + b"a" * 100_000, id="100000-deep nesting"),
    ],
)
@pytest.mark.parametrize("field", ["bbox", "contacting"])
def test_loader_bounded_on_expanding_records(tmp_path, opcodes, field):
    # unguarded, np.array / the error message walk every leaf (minutes, GBs) or
    # recurse; run in a subprocess with a deadline so that a hang fails
    rb, key = small_release()
    rb.objects[key][0]["bbox" if field == "bbox" else "contacting_relationship"] = "SENTINEL"
    root = rb.write(tmp_path / "ag")
    # the value is unpickled by safe_loads from a few hundred bytes, then put
    # in place of the sentinel as the loader reads the file
    memo_safe = _nested_ops(6, 40) if opcodes is None else opcodes
    value_path = tmp_path / "value.pkl"
    value_path.write_bytes(b"\x80\x02" + memo_safe + b".")
    code = (
        "import pickle, sys, time; sys.path.insert(0, 'test')\n"
        "from tr2_core.data import action_genome as ag\n"
        "from tr2_core.data.safe_pickle import safe_loads\n"
        f"value = safe_loads(open({str(value_path)!r}, 'rb').read())\n"
        "real = ag._load_pickle\n"
        "def patched(path, show):\n"
        "    data = real(path, show)\n"
        "    if path.name.startswith('object'):\n"
        f"        data[{key!r}][0][{('bbox' if field == 'bbox' else 'contacting_relationship')!r}]"
        " = value\n"
        "    return data\n"
        "ag._load_pickle = patched\n"
        "t = time.perf_counter()\n"
        "try:\n"
        f"    ag.load_split({str(root)!r}, 'test', show_progress=False, cache=False)\n"
        "except ag.DatasetError as e:\n"
        "    print(len(str(e)), round(time.perf_counter() - t, 2)); print(e)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, cwd=REPO
    )
    assert done.returncode == 0, done.stderr[-1500:]
    length, seconds = done.stdout.split("\n")[0].split()
    assert int(length) < 500 and float(seconds) < 5, done.stdout[:500]
    assert key in done.stdout


def _bomb_npz(path: Path, nbytes: int) -> None:
    """An .npz whose 'boxes' inflates to ``nbytes`` of zeros (the rest valid)."""
    header = io.BytesIO()
    np.lib.format.write_array_header_1_0(
        header, {"descr": "<f4", "fortran_order": False, "shape": (nbytes // 16, 4)}
    )
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        with zf.open("boxes.npy", "w", force_zip64=True) as member:
            member.write(header.getvalue())
            chunk = bytes(1 << 20)
            for _ in range(nbytes // len(chunk)):
                member.write(chunk)


def test_predictions_zip_bomb_refused_before_inflating(tmp_path):
    path = tmp_path / "bomb.npz"
    _bomb_npz(path, 256 << 20)
    assert path.stat().st_size < 2 << 20
    t = time.perf_counter()
    with pytest.raises(PredictionsError, match="boxes.*would inflate"):
        load_predictions(path)
    assert time.perf_counter() - t < 1.0


# --------------------------------------------------------------------------
# silent wrong results (unguarded: accepted, scores silently change)


@pytest.mark.parametrize(
    "box",
    [(np.nan, 20, 110, 220), (10, 20, np.inf, 220), (110, 20, 10, 220), (10, 220, 110, 20)],
    ids=["nan", "inf", "x2<x1", "y2<y1"],
)
def test_bad_person_box_rejected_naming_file_and_frame(tmp_path, box):
    rb, key = small_release()
    rb.person[key]["bbox"] = np.array([box], np.float32)
    with pytest.raises(DatasetError, match="person box must be finite") as info:
        load_split(rb.write(tmp_path / "ag"), "test", show_progress=False)
    assert "person_bbox.pkl" in str(info.value) and key in str(info.value)


def test_object_box_overflowing_float32_rejected(tmp_path):
    rb, key = small_release()
    rb.objects[key][0]["bbox"] = (3.0e38, 2.0, 1.0e38, 4.0)  # finite, x + w is not in float32
    with pytest.raises(DatasetError, match="fit float32") as info:
        load_split(rb.write(tmp_path / "ag"), "test", show_progress=False)
    assert "object_bbox_and_relationship.pkl" in str(info.value) and key in str(info.value)


def test_baseline_blames_the_annotations_not_its_output(tmp_path, capsys):
    rb, key = small_release()
    rb.video("T.mp4", [1, 2, 3], split="train")
    rb.person[key]["bbox"] = np.array([(np.nan, 0, 1, 1)], np.float32)
    root = rb.write(tmp_path / "ag")
    out = tmp_path / "freq.npz"
    assert main(["baseline", "--data", str(root), "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert "person_bbox.pkl" in err and str(out) not in err


def test_missing_frames_are_refused_naming_count_and_first_key(tmp_path, capsys):
    rb, _ = small_release()
    root = rb.write(tmp_path / "ag")
    gt = load_split(root, "test", show_progress=False).gt
    preds = random_predictions(gt, seed=3)
    keep = preds.box_frame != 0
    # drop frame 0 (and its boxes and pairs) from the predictions
    remap = np.cumsum(keep) - 1
    pair_keep = keep[preds.pair_subject]
    partial = type(preds)(
        frame_keys=preds.frame_keys[1:],
        box_frame=preds.box_frame[keep] - 1,
        boxes=preds.boxes[keep],
        box_labels=preds.box_labels[keep],
        box_scores=preds.box_scores[keep],
        pair_subject=remap[preds.pair_subject[pair_keep]],
        pair_object=remap[preds.pair_object[pair_keep]],
        attention=preds.attention[pair_keep],
        spatial=preds.spatial[pair_keep],
        contacting=preds.contacting[pair_keep],
    )
    path = save_predictions(tmp_path / "partial.npz", partial)
    with pytest.raises(PredictionsError, match=r"partial.npz: .*1 of 4 .*'V.mp4/000001.png'"):
        check_frame_coverage(gt.frame_keys, partial, str(path))
    with pytest.warns(UserWarning, match=r"1 of 4 ground-truth frames .*'V.mp4/000001.png'"):
        assert check_frame_coverage(gt.frame_keys, partial, str(path), strict=False) == 1
    argv = ["eval", "--data", str(root), "--predictions", str(path), "--task", "predcls"]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert "partial.npz" in err and "first missing: 'V.mp4/000001.png'" in err
    assert main([*argv, "--partial"]) == 0
    err = capsys.readouterr().err
    assert "tr2 eval: warning:" in err and "V.mp4/000001.png" in err


# --------------------------------------------------------------------------
# tracebacks instead of messages (unguarded: ValueError / AssertionError /
# OverflowError / TypeError, or silently accepted)


def _set_object(field, value):
    return lambda rb, key: rb.objects[key][0].__setitem__(field, value)


def _set_person(field, value):
    return lambda rb, key: rb.person[key].__setitem__(field, value)


def _rekey(new_key):
    def apply(rb, key):
        rb.person[new_key] = rb.person.pop(key)
        rb.objects[new_key] = rb.objects.pop(key)

    return apply


_MALFORMED = {
    "visible is an array": (_set_object("visible", np.array([True, False])), "visible"),
    "visible is a string": (_set_object("visible", "yes"), "visible"),
    "relationships are a string": (_set_object("spatial_relationship", "in_front_of"), "list"),
    "relationships are an array": (
        _set_object("spatial_relationship", np.array(["in_front_of"])),
        "list",
    ),
    "bbox holds strings": (_set_object("bbox", ("1", "2", "a", "4")), "x y w h"),
    "bbox holds numeric strings": (_set_object("bbox", ("1", "2", "3", "4")), "x y w h"),
    "bbox holds a huge int": (_set_object("bbox", (1, 2, 10**400, 4)), "does not fit"),
    "bbox_size holds strings": (_set_person("bbox_size", ("480", "x")), "bbox_size"),
    "bbox_size holds a huge int": (_set_person("bbox_size", (10**30, 5)), "does not fit"),
    "person bbox is structured": (
        _set_person("bbox", np.zeros(1, dtype=[("a", "f4", (4,))])),
        r"\(N, 4\) array",
    ),
    "object record is a structured scalar": (
        lambda rb, key: rb.objects[key].__setitem__(0, np.zeros(1, dtype=[("c", "U9")])[0]),
        "malformed object record",
    ),
    "set is an array": (
        lambda rb, key: rb.objects[key][0]["metadata"].__setitem__("set", np.array(["test"])),
        "metadata",
    ),
    "frame key with superscript digits": (_rekey("V.mp4/\u00b2\u00b3.png"), "not of the form"),
    "frame key with Arabic-Indic digits": (_rekey("V.mp4/\u0660\u0665.png"), "not of the form"),
    "frame key is an int": (_rekey(5), "not a string"),
}


@pytest.mark.parametrize("case", list(_MALFORMED))
def test_malformed_records_give_one_line(tmp_path, case):
    mutate, match = _MALFORMED[case]
    rb, key = small_release()
    mutate(rb, key)
    root = tmp_path / "ag"
    rb.write(root) if case != "frame key is an int" else _write_raw(rb, root)
    with pytest.raises(DatasetError, match=match) as info:
        load_split(root, "test", show_progress=False)
    message = str(info.value)
    assert ".pkl" in message and "\n" not in message and len(message) < 400


def _write_raw(rb: ReleaseBuilder, root: Path) -> None:
    """The release with keys the writer cannot sort (non-str keys)."""
    good = ReleaseBuilder()
    good.video("V.mp4", [1])
    good.write(root)
    for name, value in (
        ("person_bbox.pkl", rb.person),
        ("object_bbox_and_relationship.pkl", rb.objects),
    ):
        (root / "annotations" / name).write_bytes(pickle.dumps(value, protocol=2))


def test_npy_and_folder_given_as_predictions(tmp_path, capsys):
    rb, _ = small_release()
    root = rb.write(tmp_path / "ag")
    npy = tmp_path / "preds.npy"
    np.save(npy, np.zeros(3))
    for given, match in ((npy, "a .npy holds one array"), (tmp_path, "a folder")):
        argv = ["eval", "--data", str(root), "--predictions", str(given), "--task", "predcls"]
        assert main(argv) == 2
        err = capsys.readouterr().err
        assert match in err and "Traceback" not in err


@pytest.mark.parametrize("flag", ["--json", "--per-frame"])
def test_folder_given_for_an_output_file(tmp_path, capsys, flag):
    rb, _ = small_release()
    root = rb.write(tmp_path / "ag")
    gt = load_split(root, "test", show_progress=False).gt
    preds = save_predictions(tmp_path / "p.npz", random_predictions(gt, seed=1))
    folder = tmp_path / "out"
    folder.mkdir()
    argv = ["eval", "--data", str(root), "--predictions", str(preds), "--task", "predcls"]
    assert main([*argv, flag, str(folder)]) == 2
    err = capsys.readouterr().err
    assert f"{flag} {folder}: is a folder" in err


def test_bad_pickle_message_is_short():
    # a corrupt file whose exception text is huge still gives a short line
    payload = b"\x80\x02c__builtin__\nint\nX" + struct.pack("<I", 200_000) + b"9" * 200_000
    payload += b"\x85R."
    with pytest.raises(DatasetError) as info:
        safe_loads(payload, source="long.pkl")
    assert len(str(info.value)) < 500
