"""Allow-list unpickling: malicious payloads are refused without running,
NumPy data round-trips under every protocol and both NumPy module spellings."""

from __future__ import annotations

import os
import pickle
import subprocess
import sys
from collections import OrderedDict
from pathlib import Path

import numpy as np
import pytest

from tr2_core.data.safe_pickle import ALLOWED_GLOBALS, safe_load, safe_loads
from tr2_core.errors import DatasetError, UnsafePickleError


class _System:
    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


class _Eval:
    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (eval, (f"open({str(self.marker)!r}, 'w').close()",))


class _Popen:
    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (subprocess.Popen, (["touch", str(self.marker)],))


def _system_name() -> str:
    return f"{os.system.__module__}.system'"  # 'posix.system' on Linux


@pytest.mark.parametrize(
    ("payload_cls", "refused"),
    [(_System, _system_name()), (_Eval, "builtins.eval"), (_Popen, ".Popen'")],
)
@pytest.mark.parametrize("protocol", [0, 2, 5])
def test_malicious_payload_refused_and_not_run(tmp_path, payload_cls, refused, protocol):
    marker = tmp_path / "pwned"
    # the payload hides inside ordinary-looking annotation data
    data = {"0A8CF.mp4/000001.png": [{"class": "cup/glass/bottle", "x": payload_cls(marker)}]}
    path = tmp_path / "object_bbox_and_relationship.pkl"
    path.write_bytes(pickle.dumps(data, protocol=protocol))

    # sanity: the plain unpickler would run it (proves the payload is live)
    if payload_cls is _System:
        live = tmp_path / "live"
        pickle.loads(pickle.dumps(_System(live), protocol=protocol))
        assert live.exists()

    with pytest.raises(UnsafePickleError) as info:
        safe_load(path)
    message = str(info.value)
    assert str(path) in message
    assert refused in message
    assert not marker.exists()


def test_py2_builtin_spelling_refused(tmp_path):
    marker = tmp_path / "pwned"
    # protocol-0 pickle written by Python 2: __builtin__.eval("...")
    payload = f"c__builtin__\neval\n(V__import__('os').system('touch {marker}')\ntR.".encode()
    with pytest.raises(UnsafePickleError, match=r"__builtin__\.eval"):
        safe_loads(payload, source="evil.pkl")
    assert not marker.exists()


def test_numpy_non_allowlisted_function_refused():
    # numpy.load could read arbitrary files / pickles: not on the list
    payload = b"cnumpy\nload\n(V/etc/passwd\ntR."
    with pytest.raises(UnsafePickleError, match=r"numpy\.load"):
        safe_loads(payload, source="x.pkl")


def test_range_not_needed_for_data_and_refused():
    with pytest.raises(UnsafePickleError, match=r"builtins\.range"):
        safe_loads(pickle.dumps(range(3), protocol=4))


def test_codecs_encode_only_with_safe_codec():
    ok = b"c_codecs\nencode\n(Vab\nVlatin1\ntR."
    assert safe_loads(ok) == b"ab"
    bad = b"c_codecs\nencode\n(Vab\nVrot13\ntR."
    with pytest.raises(UnsafePickleError, match="rot13"):
        safe_loads(bad, source="y.pkl")


def test_persistent_id_refused():
    payload = b"\x80\x02X\x03\x00\x00\x00abcQ."  # BINPERSID
    with pytest.raises(UnsafePickleError, match="persistent"):
        safe_loads(payload, source="z.pkl")


_ARRAYS = {
    "f32": np.arange(12, dtype=np.float32).reshape(3, 4) / 7,
    "f64": np.linspace(-1, 1, 5),
    "f16": np.array([1.5, -2.25], dtype=np.float16),
    "i64": np.array([-(2**62), 0, 2**62], dtype=np.int64),
    "i32": np.arange(6, dtype=np.int32).reshape(2, 3),
    "u8": np.array([0, 255, 7], dtype=np.uint8),
    "bool": np.array([True, False, True]),
    "c128": np.array([1 + 2j, -3j]),
    "unicode": np.array(["closet/cabinet", "cup"]),
    "bytes": np.array([b"ab", b"c"]),
    "empty": np.zeros((0, 4), dtype=np.float32),
    "fortran": np.asfortranarray(np.arange(6, dtype=np.float64).reshape(2, 3)),
    "big_endian": np.array([1, 2, 3], dtype=">i4"),
    "structured": np.array([(1, 2.5)], dtype=[("a", "<i2"), ("b", "<f8")]),
    "keypoints": np.random.default_rng(0).random((1, 17, 3)).astype(np.float32),
    "zero_d": np.array(3.5),
}


@pytest.mark.parametrize("protocol", [0, 2, 3, 4, 5])
def test_numpy_round_trip(protocol):
    data = {
        "arrays": _ARRAYS,
        "scalars": [np.float32(1.25), np.int64(-3), np.bool_(True)],
        "containers": (
            {1, 2},
            frozenset({"a"}),
            OrderedDict(a=1),
            bytearray(b"xy"),
            slice(1, 5, 2),
            1 + 1j,
            b"raw",
            None,
        ),
    }
    raw = pickle.dumps(data, protocol=protocol)
    out = safe_loads(raw)
    trusted = pickle.loads(raw)  # what the stock unpickler gives (we wrote the data)
    for name, ref in _ARRAYS.items():
        got = out["arrays"][name]
        assert isinstance(got, np.ndarray), name
        # NumPy itself reads '>i4' back as native int32 under protocols < 5
        assert got.dtype == trusted["arrays"][name].dtype, name
        assert got.dtype.newbyteorder("=") == ref.dtype.newbyteorder("="), name
        assert got.shape == ref.shape, name
        np.testing.assert_array_equal(got, ref, err_msg=name)
    assert [type(s) for s in out["scalars"]] == [np.float32, np.int64, np.bool_]
    assert out["scalars"][0] == np.float32(1.25)
    assert out["containers"] == data["containers"]


@pytest.mark.parametrize("spelling", [b"numpy.core.multiarray", b"numpy._core.multiarray"])
def test_both_numpy_module_spellings_map_to_installed_numpy(spelling):
    # NumPy 1.x writes 'numpy.core.multiarray', NumPy 2.x 'numpy._core.multiarray':
    # either must load under whichever NumPy is installed (1.26 on a stock Jazzy
    # robot). The protocol-0 text form makes the module name easy to rewrite.
    data = pickle.dumps({"bbox": np.array([[1.0, 2.0, 3.0, 4.0]], np.float32)}, protocol=0)
    written = b"numpy._core.multiarray" if b"numpy._core.multiarray" in data else (
        b"numpy.core.multiarray"
    )  # fmt: skip
    assert written in data
    out = safe_loads(data.replace(written, spelling))
    np.testing.assert_array_equal(out["bbox"], [[1, 2, 3, 4]])
    assert out["bbox"].dtype == np.float32


def test_python2_numpy_pickle():
    # np.arange(3, dtype='<i4') pickled by Python 2.7 / NumPy 1.x (protocol 2):
    # py2 'str' data (SHORT_BINSTRING) must be read as latin-1.
    data = (
        b"\x80\x02cnumpy.core.multiarray\n_reconstruct\nq\x00cnumpy\nndarray\nq\x01K\x00\x85q"
        b"\x02U\x01bq\x03\x87q\x04Rq\x05(K\x01K\x03\x85q\x06cnumpy\ndtype\nq\x07U\x02i4q\x08K"
        b"\x00K\x01\x87q\tRq\n(K\x03U\x01<q\x0bNNNJ\xff\xff\xff\xffJ\xff\xff\xff\xffK\x00tq\x0c"
        b"b\x89U\x0c\x00\x00\x00\x00\x01\x00\x00\x00\x02\x00\x00\x00q\rtq\x0eb."
    )
    out = safe_loads(data)
    assert out.dtype == np.int32
    np.testing.assert_array_equal(out, [0, 1, 2])


@pytest.mark.parametrize("protocol", [2, 5])
def test_truncated_file_names_the_file(tmp_path, protocol):
    path = tmp_path / "person_bbox.pkl"
    data = pickle.dumps({f"v.mp4/{i:06d}.png": np.zeros((1, 4)) for i in range(50)}, protocol)
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(DatasetError, match="person_bbox.pkl.*truncated") as info:
        safe_load(path)
    assert not isinstance(info.value, UnsafePickleError)


def test_garbage_file_is_dataset_error(tmp_path):
    path = tmp_path / "object_bbox_and_relationship.pkl"
    path.write_bytes(b"this is not a pickle at all")
    with pytest.raises(DatasetError, match="object_bbox_and_relationship.pkl"):
        safe_load(path)


def test_missing_file(tmp_path):
    with pytest.raises(DatasetError, match="nope.pkl.*not found"):
        safe_load(tmp_path / "nope.pkl")


def test_progress_callback_counts_all_bytes(tmp_path):
    path = tmp_path / "a.pkl"
    path.write_bytes(pickle.dumps(list(range(100_000)), protocol=2))
    seen = []
    assert safe_load(path, progress=seen.append) == list(range(100_000))
    assert sum(seen) == path.stat().st_size


def test_allow_list_is_small():
    # a guard against someone widening the list with a callable that can run code
    assert not any(
        g.split(".")[-1] in {"eval", "exec", "getattr", "system", "Popen", "__import__", "load"}
        for g in ALLOWED_GLOBALS
    )


def test_subprocess_sanity():
    # the payload classes above are importable only in this test module; make
    # sure a separate interpreter also refuses (no state leaks from pytest).
    code = (
        "import pickle,os;from tr2_core.data.safe_pickle import safe_loads\n"
        "class P:\n def __reduce__(self): return (os.getcwd, ())\n"
        "try:\n safe_loads(pickle.dumps(P()), source='s')\n"
        "except Exception as e: print(type(e).__name__)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "UnsafePickleError"


@pytest.mark.parametrize(
    "put",
    [b"r" + (1 << 28).to_bytes(4, "little"), b"p268435456\n"],  # LONG_BINPUT, PUT
    ids=["LONG_BINPUT", "PUT"],
)
def test_memo_index_bomb_is_refused_without_allocating(tmp_path, put):
    """A 10-byte pickle naming memo index 2**28 would make the C unpickler allocate and
    clear 4 GiB; it fails at once with a clear error, limits restored afterwards."""
    import resource

    before = resource.getrlimit(resource.RLIMIT_AS)
    data = b"\x80\x02N" + put + b"."
    with pytest.raises(DatasetError, match="out of memory while unpickling.*memo index"):
        safe_loads(data, source="bomb.pkl")
    path = tmp_path / "bomb.pkl"
    path.write_bytes(data)
    with pytest.raises(DatasetError, match=r"bomb\.pkl: out of memory"):
        safe_load(path)
    assert resource.getrlimit(resource.RLIMIT_AS) == before
    # an ordinary pickle with memo entries still loads under the same cap
    shared = [1, 2]
    assert safe_loads(pickle.dumps({"a": shared, "b": shared}, protocol=2)) == {
        "a": [1, 2],
        "b": [1, 2],
    }
