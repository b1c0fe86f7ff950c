"""Tensors of a TorchScript archive, read without running any of its code.

OpenAI publishes CLIP as a TorchScript archive (``torch.jit.save``): a zip holding
``<name>/data.pkl`` (the module tree, pickled), ``<name>/data/<key>`` (raw tensor
storages) and ``<name>/code/`` (TorchScript source). ``torch.jit.load`` compiles and
runs that code, and ``torch.load(weights_only=True)`` refuses the archive, so neither is
fit for a file from the internet. This reader unpickles ``data.pkl`` with an allow-list
that admits only tensor rebuilding, ``OrderedDict`` and the typed storage classes; every
``__torch__.*`` class becomes an inert record of its attributes. Tensors are built here
from the storage bytes (size, stride and offset checked against the storage), so no
function named by the file is ever called.
"""

from __future__ import annotations

import io
import pickle
import zipfile
from collections import OrderedDict
from pathlib import Path
from typing import Any

import torch

from tr2_core.errors import WeightsError

STORAGE_DTYPES: dict[str, torch.dtype] = {
    "HalfStorage": torch.float16,
    "FloatStorage": torch.float32,
    "DoubleStorage": torch.float64,
    "BFloat16Storage": torch.bfloat16,
    "LongStorage": torch.int64,
    "IntStorage": torch.int32,
    "ShortStorage": torch.int16,
    "CharStorage": torch.int8,
    "ByteStorage": torch.uint8,
    "BoolStorage": torch.bool,
}
"""``torch.<Name>Storage`` globals a TorchScript ``data.pkl`` may name -> dtype."""


class ScriptObject:
    """An inert stand-in for a pickled ``__torch__.*`` object: its attributes only."""

    qualified_name = "__torch__"

    def __init__(self, *args: Any) -> None:
        self.attributes: dict[str, Any] = {}

    def __setstate__(self, state: Any) -> None:
        if not isinstance(state, dict):
            raise pickle.UnpicklingError(
                f"{self.qualified_name} has a custom state ({type(state).__name__}), "
                "not an attribute dict"
            )
        self.attributes = dict(state)


class _StorageRef:
    """A persistent storage reference: (dtype, key in ``data/``, element count)."""

    def __init__(self, dtype: torch.dtype, key: str, numel: int) -> None:
        self.dtype, self.key, self.numel = dtype, key, numel


class _TensorRecord:
    """``_rebuild_tensor_v2`` arguments, kept until the storages are read."""

    def __init__(self, storage: Any, offset: Any, size: Any, stride: Any, *rest: Any) -> None:
        if not isinstance(storage, _StorageRef):
            raise pickle.UnpicklingError("a tensor without a storage reference")
        for name, value in (("size", size), ("stride", stride)):
            if not isinstance(value, tuple) or not all(isinstance(v, int) for v in value):
                raise pickle.UnpicklingError(f"tensor {name} {value!r} is not a tuple of ints")
        if not isinstance(offset, int) or len(size) != len(stride):
            raise pickle.UnpicklingError("tensor offset / size / stride do not agree")
        self.storage, self.offset, self.size, self.stride = storage, offset, size, stride


def _rebuild_parameter(data: Any, requires_grad: Any = False, hooks: Any = None) -> Any:
    return data


class _ArchiveUnpickler(pickle.Unpickler):
    """Allow-list unpickler of a TorchScript ``data.pkl`` (see the module docstring)."""

    def __init__(self, file: io.BytesIO, source: str) -> None:
        super().__init__(file)
        self.source = source

    def find_class(self, module: str, name: str) -> Any:
        if module == "__torch__" or module.startswith("__torch__."):
            return type(name, (ScriptObject,), {"qualified_name": f"{module}.{name}"})
        if module == "torch._utils" and name == "_rebuild_tensor_v2":
            return _TensorRecord
        if module == "torch._utils" and name == "_rebuild_parameter":
            return _rebuild_parameter
        if module == "collections" and name == "OrderedDict":
            return OrderedDict
        if module == "torch" and name in STORAGE_DTYPES:
            return STORAGE_DTYPES[name]
        raise WeightsError(
            f"{self.source}: data.pkl names {module}.{name}, which a TorchScript weights "
            "archive has no need for; refused (the file is not read further)"
        )

    def persistent_load(self, pid: Any) -> Any:
        if (
            not isinstance(pid, tuple)
            or len(pid) != 5
            or pid[0] != "storage"
            or not isinstance(pid[1], torch.dtype)
            or not isinstance(pid[2], str)
            or not isinstance(pid[4], int)
        ):
            raise pickle.UnpicklingError(f"unknown persistent id {pid!r:.80}")
        return _StorageRef(pid[1], pid[2], pid[4])


def is_torchscript_archive(path: str | Path) -> bool:
    """Whether ``path`` is a zip with ``<name>/data.pkl`` and ``<name>/code/``
    (``torch.jit.save``), as opposed to a ``torch.save`` file."""
    try:
        with zipfile.ZipFile(path) as archive:
            names = archive.namelist()
    except (zipfile.BadZipFile, OSError):
        return False
    return any(n.endswith("/data.pkl") for n in names) and any("/code/" in n for n in names)


def _named_tensors(obj: Any, prefix: str, out: dict[str, _TensorRecord], depth: int) -> None:
    if depth > 64:
        raise pickle.UnpicklingError("module tree deeper than 64 levels")
    for name, value in obj.attributes.items():
        if not isinstance(name, str):
            raise pickle.UnpicklingError(f"attribute name {name!r:.40} is not a string")
        if isinstance(value, _TensorRecord):
            out[prefix + name] = value
        elif isinstance(value, ScriptObject):
            _named_tensors(value, f"{prefix}{name}.", out, depth + 1)


def read_torchscript_tensors(path: str | Path) -> dict[str, torch.Tensor]:
    """The named tensors (parameters, buffers and tensor attributes) of a TorchScript
    archive, keyed as ``module.state_dict()`` keys them, in file order; CPU tensors of the
    stored dtypes. Nothing in the archive is executed.

    Raises:
        WeightsError: not a TorchScript archive, a global outside the allow-list, a
            storage that is missing or shorter than a tensor needs, big-endian data.
    """
    path = Path(path)
    source = str(path)
    if not path.is_file():
        raise WeightsError(f"TorchScript archive not found: {path}")
    try:
        archive = zipfile.ZipFile(path)
    except (zipfile.BadZipFile, OSError) as e:
        raise WeightsError(f"{path}: not a TorchScript archive (not a zip file: {e})") from None
    with archive:
        names = set(archive.namelist())
        pickles = sorted(n for n in names if n.count("/") == 1 and n.endswith("/data.pkl"))
        if len(pickles) != 1:
            raise WeightsError(f"{path}: not a TorchScript archive (no single <name>/data.pkl)")
        root = pickles[0].split("/")[0]
        order = f"{root}/byteorder"
        if order in names and archive.read(order).strip() not in (b"little", b""):
            raise WeightsError(f"{path}: big-endian tensor data is not supported")
        try:
            top = _ArchiveUnpickler(io.BytesIO(archive.read(pickles[0])), source).load()
        except WeightsError:
            raise
        except Exception as e:  # noqa: BLE001 - any malformed pickle is a weights error
            raise WeightsError(f"{path}: data.pkl cannot be read ({e})") from None
        if not isinstance(top, ScriptObject):
            raise WeightsError(f"{path}: data.pkl holds a {type(top).__name__}, not a module")
        records: dict[str, _TensorRecord] = {}
        try:
            _named_tensors(top, "", records, 0)
        except pickle.UnpicklingError as e:
            raise WeightsError(f"{path}: data.pkl: {e}") from None
        storages: dict[str, torch.Tensor] = {}
        tensors: dict[str, torch.Tensor] = {}
        for name, record in records.items():
            ref = record.storage
            flat = storages.get(ref.key)
            if flat is None:
                flat = _read_storage(archive, f"{root}/data/{ref.key}", ref, source)
                storages[ref.key] = flat
            tensors[name] = _view(flat, record, name, source)
    return tensors


def _read_storage(
    archive: zipfile.ZipFile, member: str, ref: _StorageRef, source: str
) -> torch.Tensor:
    """The flat (numel,) tensor of one storage file."""
    itemsize = torch.empty((), dtype=ref.dtype).element_size()
    try:
        raw = archive.read(member)
    except KeyError:
        raise WeightsError(f"{source}: storage {member} is missing") from None
    if len(raw) != ref.numel * itemsize:
        raise WeightsError(
            f"{source}: storage {member} holds {len(raw)} bytes, expected {ref.numel} x {itemsize}"
        )
    if not raw:
        return torch.empty(0, dtype=ref.dtype)
    return torch.frombuffer(bytearray(raw), dtype=ref.dtype)


def _view(flat: torch.Tensor, record: _TensorRecord, name: str, source: str) -> torch.Tensor:
    """The tensor ``record`` describes on ``flat``, bounds checked, as its own copy."""
    size, stride, offset = record.size, record.stride, record.offset
    if any(s < 0 for s in size) or any(s < 0 for s in stride) or offset < 0:
        raise WeightsError(f"{source}: tensor {name} has a negative size, stride or offset")
    last = offset + sum((n - 1) * s for n, s in zip(size, stride, strict=True)) if all(size) else -1
    if last >= flat.numel():
        raise WeightsError(
            f"{source}: tensor {name} {size} reaches element {last} of a storage of {flat.numel()}"
        )
    if not all(size):
        return torch.empty(size, dtype=flat.dtype)
    return flat.as_strided(size, stride, offset).clone()
