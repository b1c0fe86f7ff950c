"""User files as the world writes them, not only as tr2 writes them.

The Action Genome annotation pickles in every pickle protocol (0-5) and with NumPy 1.x's
and 2.x's module names for arrays (the release was written by NumPy 1.x, below protocol
5: arrays come through ``_reconstruct``); the small-box-filtered annotation file of the
baselines' SGCls / SGDet against tr2's 16-px rule; ``.npz`` files (predictions, text
tables, frequency tables, per-frame results) in every ``.npy`` format version, compressed
or not, Fortran-ordered and big-endian; checkpoints in every pickle protocol ``torch.save``
takes and in its legacy (pre-zip) format. The hostile cases stay refused on every protocol.
"""

from __future__ import annotations

import dataclasses
import io
import pickle
import pickletools
import shutil
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch

from tr2_core.cli import main
from tr2_core.data.action_genome import SMALL_BOX_MAX_EDGE, load_split
from tr2_core.data.release_writer import RELEASE_PICKLE_PROTOCOL, dump_release_pickle
from tr2_core.data.safe_pickle import MAX_UNBACKED_BYTES, CheckedArray, safe_loads
from tr2_core.data.synthetic import SyntheticConfig, make_synthetic
from tr2_core.errors import DatasetError, UnsafePickleError, WeightsError
from tr2_core.evaluation.predictions import load_predictions, save_predictions
from tr2_core.frequency_baseline import fit_frequency, load_frequency_table, save_frequency_table
from tr2_core.models.guidance import TextTable, load_text_table, save_text_table
from tr2_core.models.model_config import load_model_config
from tr2_core.run import build_run_model, load_checkpoint
from tr2_core.run_spec import RunSpec
from tr2_core.testing.eval_fixtures import random_predictions
from tr2_core.train.checkpoint import run_config_dict
from tr2_core.train.recipe import TrainConfig
from tr2_core.vocab import NUM_OBJECT_CLASSES, NUM_PREDICATES, OBJECT_CLASSES, PREDICATES

PROTOCOLS = list(range(pickle.HIGHEST_PROTOCOL + 1))
SPELLINGS = ["numpy.core", "numpy._core"]  # NumPy 1.x, NumPy 2.x
ANNOTATION_PICKLES = ("person_bbox.pkl", "object_bbox_and_relationship.pkl")


@pytest.fixture(scope="module")
def release(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small synthetic release with small boxes, frames without a person box and
    invisible objects (everything the loader's rules act on)."""
    root = tmp_path_factory.mktemp("release") / "ag"
    cfg = SyntheticConfig(
        videos=10, min_frames=3, max_frames=6, images=False, seed=5, small_box_rate=0.3
    )
    make_synthetic(root, cfg, progress=False)
    return root


def _plain_load(path: Path) -> object:
    # a file this test module wrote itself: trusted
    with open(path, "rb") as f:
        return pickle.load(f)


def _rewrite(src: Path, dst: Path, protocol: int, spelling: str) -> Path:
    """A copy of the release ``src`` whose two annotation pickles are written again."""
    shutil.copytree(src / "annotations", dst / "annotations")
    for name in ANNOTATION_PICKLES:
        data = _plain_load(src / "annotations" / name)
        with open(dst / "annotations" / name, "wb") as f:
            dump_release_pickle(data, f, protocol=protocol, numpy_spelling=spelling)
    return dst


def _split_arrays(root: Path, split: str, **options: bool) -> dict[str, np.ndarray]:
    parsed = load_split(root, split, cache=False, show_progress=False, **options)
    arrays = {f"gt.{f.name}": getattr(parsed.gt, f.name) for f in dataclasses.fields(parsed.gt)}
    for f in dataclasses.fields(parsed):
        value = getattr(parsed, f.name)
        if isinstance(value, np.ndarray):
            arrays[f.name] = value
    return arrays


def _assert_same_arrays(got: dict[str, np.ndarray], want: dict[str, np.ndarray]) -> None:
    assert got.keys() == want.keys()
    for name, value in got.items():
        # nothing the unpickler built leaks downstream: plain ndarrays only
        assert type(value) is np.ndarray, (name, type(value))
        assert value.dtype == want[name].dtype, name
        assert value.shape == want[name].shape, name
        assert value.tobytes() == want[name].tobytes(), name


def _global_names(data: bytes) -> set[str]:
    """The ``module name`` pairs a pickle names (GLOBAL and STACK_GLOBAL opcodes)."""
    names, strings = set(), []
    for op, arg, _ in pickletools.genops(data):
        if op.name == "GLOBAL":
            names.add(str(arg).replace(" ", "."))
        elif op.name.endswith("UNICODE"):
            strings.append(str(arg))
        elif op.name == "STACK_GLOBAL":
            names.add(f"{strings[-2]}.{strings[-1]}")
    return names


# --------------------------------------------------------------------------
# Annotation pickles


def test_default_writer_writes_as_the_release(release):
    """Protocol 3 and NumPy 1.x's module names, so the whole suite reads arrays through
    ``_reconstruct`` as it does for the real files."""
    data = (release / "annotations" / "person_bbox.pkl").read_bytes()
    assert RELEASE_PICKLE_PROTOCOL < 5
    assert data[:2] == bytes([pickle.PROTO[0], RELEASE_PICKLE_PROTOCOL])
    names = _global_names(data)
    assert "numpy.core.multiarray._reconstruct" in names
    assert not any(n.startswith("numpy._core") for n in names)


def test_safe_unpickler_builds_checked_arrays_below_protocol_5(release):
    """What the loader must accept: arrays of the ndarray subclass that checks its dtype."""
    person = safe_loads((release / "annotations" / "person_bbox.pkl").read_bytes())
    record = next(iter(person.values()))
    assert type(record["bbox"]) is CheckedArray


@pytest.mark.parametrize("spelling", SPELLINGS)
@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_every_protocol_parses_to_identical_splits_and_baseline(
    release, tmp_path, protocol, spelling
):
    root = _rewrite(release, tmp_path / "ag", protocol, spelling)
    for split in ("train", "test"):
        for small in (False, True):
            _assert_same_arrays(
                _split_arrays(root, split, filter_small_boxes=small),
                _split_arrays(release, split, filter_small_boxes=small),
            )
    outputs = {}
    for name, data in (("rewritten", root), ("release", release)):
        out = tmp_path / f"{name}.npz"
        assert main(["baseline", "--data", str(data), "--out", str(out)]) == 0
        with np.load(out, allow_pickle=False) as npz:
            outputs[name] = {k: npz[k] for k in npz.files}
    _assert_same_arrays(outputs["rewritten"], outputs["release"])


def _filtersmall(objects: dict) -> dict:
    """What the baselines' ``object_bbox_and_relationship_filtersmall.pkl`` holds: the
    visible objects whose box has a short edge of 16 px or less removed from each list."""

    def small(o: dict) -> bool:
        return bool(o["visible"]) and min(o["bbox"][2], o["bbox"][3]) <= SMALL_BOX_MAX_EDGE

    return {key: [o for o in objs if not small(o)] for key, objs in objects.items()}


@pytest.mark.parametrize("protocol", [2, RELEASE_PICKLE_PROTOCOL, 4])
def test_filtersmall_file_equals_the_16px_rule(release, tmp_path, protocol):
    objects = _plain_load(release / "annotations" / "object_bbox_and_relationship.pkl")
    filtered = _filtersmall(objects)
    removed = sum(map(len, objects.values())) - sum(map(len, filtered.values()))
    assert removed > 0  # the fixture has small boxes, or this test proves nothing
    root = tmp_path / "filtersmall"
    shutil.copytree(release / "annotations", root / "annotations")
    with open(root / "annotations" / "object_bbox_and_relationship.pkl", "wb") as f:
        dump_release_pickle(filtered, f, protocol=protocol)
    for split in ("train", "test"):
        _assert_same_arrays(
            _split_arrays(root, split, filter_small_boxes=False),
            _split_arrays(release, split, filter_small_boxes=True),
        )


# --------------------------------------------------------------------------
# The threat model holds on every protocol and spelling


class _Reduced:
    """Pickles as ``func(*args)`` (optionally followed by ``state``)."""

    def __init__(self, func: object, args: tuple, state: object = None) -> None:
        self.reduced = (func, args) if state is None else (func, args, state)

    def __reduce__(self):
        return self.reduced


def _forged_array(dtype_spec: str, dtype_state: tuple) -> _Reduced:
    """``_reconstruct`` + ``__setstate__`` whose dtype's pickled state lies about holding
    object pointers; the raw bytes would become pointers."""
    dtype = _Reduced(np.dtype, (dtype_spec, False, True), dtype_state)
    return _Reduced(_reconstruct, (np.ndarray, (0,), b"b"), (1, (2,), dtype, False, b"A" * 16))


_reconstruct = np.ndarray((0,)).__reduce_ex__(2)[0]  # NumPy's, whatever its module
_NO_REFS = (3, "|", None, None, None, -1, -1, 0)
_HOSTILE = {
    "os.system": (_Reduced(__import__("os").system, ("true",)), "system"),
    "builtins.eval": (_Reduced(eval, ("1",)), "builtins.eval"),
    "object dtype with cleared flags": (_forged_array("O8", _NO_REFS), "object"),
    "structured dtype hiding an object field": (
        _forged_array(
            "V8",
            (
                3,
                "|",
                None,
                ("a",),
                {"a": (_Reduced(np.dtype, ("O8", False, True), _NO_REFS), 0)},
                8,
                1,
                0,
            ),  # fmt: skip
        ),
        "object",
    ),
    "bytearray(2**31)": (_Reduced(bytearray, (2**31,)), f"at most {MAX_UNBACKED_BYTES:,}"),
    "array shape 2**31": (
        _Reduced(_reconstruct, (np.ndarray, (2**31,), b"b")),
        f"at most {MAX_UNBACKED_BYTES:,}",
    ),
}


@pytest.mark.parametrize("spelling", SPELLINGS)
@pytest.mark.parametrize("protocol", PROTOCOLS)
@pytest.mark.parametrize("case", list(_HOSTILE))
def test_hostile_pickles_refused_on_every_protocol(case, protocol, spelling):
    payload, refused = _HOSTILE[case]
    buffer = io.BytesIO()
    # hidden where real data has a float32 array
    dump_release_pickle(
        {"V.mp4/000001.png": {"bbox": payload}}, buffer, protocol=protocol, numpy_spelling=spelling
    )
    with pytest.raises(UnsafePickleError, match=refused):
        safe_loads(buffer.getvalue(), source="person_bbox.pkl")


# --------------------------------------------------------------------------
# .npz files users pass in


def _write_npz(path: Path, arrays: dict[str, np.ndarray], variant: str) -> None:
    """``arrays`` as an .npz the way another writer might lay it out."""
    compression = zipfile.ZIP_DEFLATED if "compressed" in variant else zipfile.ZIP_STORED
    version = {"v1": (1, 0), "v2": (2, 0), "v3": (3, 0)}.get(variant.split("-")[0])
    with zipfile.ZipFile(path, "w", compression=compression) as zf:
        for name, value in arrays.items():
            if "fortran" in variant and value.ndim >= 2:
                value = np.asfortranarray(value)
            if "bigendian" in variant and value.dtype.kind in "iufcU":
                value = value.astype(value.dtype.newbyteorder(">"))
            with zf.open(f"{name}.npy", "w") as member:
                np.lib.format.write_array(member, value, version=version, allow_pickle=False)


NPZ_VARIANTS = ["v1", "v2", "v3", "v1-compressed", "v2-fortran", "v1-bigendian"]
NPZ_VARIANTS += ["v3-compressed-fortran-bigendian"]


def _arrays_of(path: Path) -> dict[str, np.ndarray]:
    with np.load(path, allow_pickle=False) as npz:
        return {k: npz[k] for k in npz.files}


def _equal_fields(got: object, want: object) -> None:
    for f in dataclasses.fields(want):
        a, b = getattr(got, f.name), getattr(want, f.name)
        if isinstance(b, torch.Tensor):
            assert torch.equal(a, b), f.name
        elif isinstance(b, np.ndarray):
            assert type(a) is np.ndarray and a.dtype == b.dtype, (f.name, a.dtype, b.dtype)
            assert np.array_equal(a, b, equal_nan=a.dtype.kind == "f"), f.name
        else:
            assert a == b, f.name


@pytest.mark.parametrize("variant", NPZ_VARIANTS)
def test_predictions_npz_from_any_writer(release, tmp_path, variant):
    gt = load_split(release, "test", show_progress=False).gt
    reference = tmp_path / "tr2.npz"
    save_predictions(reference, random_predictions(gt, seed=3))
    other = tmp_path / f"{variant}.npz"
    _write_npz(other, _arrays_of(reference), variant)
    _equal_fields(load_predictions(other), load_predictions(reference))


@pytest.mark.parametrize("variant", NPZ_VARIANTS)
def test_text_table_npz_from_any_writer(tmp_path, variant):
    rng = np.random.default_rng(0)
    prompts = np.array([[f"a {o} {p}" for p in PREDICATES] for o in OBJECT_CLASSES])
    table = TextTable(
        table=torch.from_numpy(
            rng.standard_normal((NUM_OBJECT_CLASSES, NUM_PREDICATES, 8)).astype(np.float32)
        ),
        prompts=prompts,
        clip_model="ViT-B-32",
        clip_weights="w.pt",
        clip_weights_sha256="0" * 64,
        text_tower_sha256="1" * 64,
    )
    reference = tmp_path / "tr2.npz"
    save_text_table(reference, table)
    other = tmp_path / f"{variant}.npz"
    _write_npz(other, _arrays_of(reference), variant)
    got, want = load_text_table(other, expected_dim=8), load_text_table(reference, expected_dim=8)
    _equal_fields(got, want)


@pytest.mark.parametrize("variant", NPZ_VARIANTS)
def test_frequency_table_npz_from_any_writer(release, tmp_path, variant):
    reference = tmp_path / "tr2.npz"
    train = load_split(release, "train", show_progress=False)
    save_frequency_table(reference, fit_frequency(train))
    other = tmp_path / f"{variant}.npz"
    _write_npz(other, _arrays_of(reference), variant)
    _equal_fields(load_frequency_table(other), load_frequency_table(reference))


# --------------------------------------------------------------------------
# Checkpoints


@pytest.fixture(scope="module")
def trained_checkpoint() -> dict:
    """A ``tr2 train``-style checkpoint of a random-init tr2-small, as loaded."""
    run = RunSpec(data="", model="tr2-small", task="predcls", random_init=True)
    model_cfg, train_cfg = load_model_config("tr2-small"), TrainConfig()
    parts = build_run_model(run, model_cfg, train_cfg.seed, torch.device("cpu"), training=False)
    return {
        "config": run_config_dict(run, model_cfg, train_cfg),
        "model": parts.relation.state_dict(),
        "epoch": 3,
        "extractor_fingerprint": parts.extractor_fingerprint,
    }


@pytest.mark.parametrize("zip_format", [True, False], ids=["zip", "legacy"])
@pytest.mark.parametrize("protocol", [2, 3, 4, 5])
def test_checkpoint_from_any_torch_save(trained_checkpoint, tmp_path, zip_format, protocol):
    """``torch.save`` writes protocol 2 unless told otherwise (what the authors' checkpoints
    and tr2's use), in the zip format or, before torch 1.6, the legacy one: those load
    identically. torch's weights-only unpickler does not take protocols 4-5 (it has no
    FRAME opcode): such a file is refused with a WeightsError naming it, never unpickled
    freely."""
    path = tmp_path / "checkpoint.pt"
    torch.save(
        trained_checkpoint,
        path,
        pickle_protocol=protocol,
        _use_new_zipfile_serialization=zip_format,
    )
    if protocol >= 4:
        with pytest.raises(WeightsError, match=str(path)):
            load_checkpoint(path)
        return
    loaded = load_checkpoint(path)
    assert loaded["config"] == trained_checkpoint["config"] and loaded["epoch"] == 3
    assert loaded["model"].keys() == trained_checkpoint["model"].keys()
    for name, tensor in trained_checkpoint["model"].items():
        assert torch.equal(loaded["model"][name], tensor), name


def test_messages_show_unpickled_arrays_as_arrays(release, tmp_path):
    """A malformed array read below protocol 5 is quoted as the array it is, not as the
    unpickler's internal class."""
    root = tmp_path / "ag"
    shutil.copytree(release / "annotations", root / "annotations")
    person = _plain_load(release / "annotations" / "person_bbox.pkl")
    for record in person.values():
        record["bbox"] = np.zeros((len(record["bbox"]), 3), np.float32)  # 3 columns, not 4
    with open(root / "annotations" / "person_bbox.pkl", "wb") as f:
        dump_release_pickle(person, f)
    with pytest.raises(DatasetError, match=r"bbox array\(") as info:
        load_split(root, "test", cache=False, show_progress=False)
    assert "CheckedArray" not in str(info.value)
