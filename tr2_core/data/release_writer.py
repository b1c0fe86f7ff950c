"""Write annotations in the exact layout of the Action Genome release.

Used by the synthetic generator and by tests that need small datasets in the
real format. The reader lives in :mod:`tr2_core.data.action_genome`.

The pickles are written as the release's were, not as a modern default would
write them: pickle protocol :data:`RELEASE_PICKLE_PROTOCOL` (3, what
``pickle.dump`` wrote by default on Python 3.0-3.7, when the release and its
lineage's tools were made) and NumPy 1.x's module names for array and scalar
reconstruction (``numpy.core.multiarray._reconstruct``), whatever NumPy is
installed. Below protocol 5 every array goes through ``_reconstruct`` and its
``__setstate__``, so files written here take the same path through the safe
unpickler as the real ones (protocol 5 takes another: ``_frombuffer``).
:func:`dump_release_pickle` writes any protocol 0-5 in either NumPy spelling,
for tests that cover them all.
"""

from __future__ import annotations

import os
import pickle
import types
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import IO, Any, Literal

import numpy as np

from tr2_core.vocab import OBJECT_CLASSES, PREDICATES, glued

RELEASE_PICKLE_PROTOCOL = 3
"""Pickle protocol of the annotation files written here (see the module docstring)."""

NumpySpelling = Literal["numpy.core", "numpy._core"]
"""Module prefix that array pickles name: NumPy 1.x wrote ``numpy.core``, 2.x ``numpy._core``."""


def _numpy_reducers() -> dict[int, tuple[str, str]]:
    """id -> (module suffix, name) of the NumPy callables that array and scalar
    pickles name, as installed (``numpy._core`` on NumPy 2, ``numpy.core`` on 1.x)."""
    array = np.zeros(1, np.float32)
    found: dict[int, tuple[str, str]] = {}
    for reduced in (array.__reduce_ex__(2), array.__reduce_ex__(5), np.float32(1).__reduce__()):
        func = reduced[0]
        module = func.__module__ or ""
        for prefix in ("numpy._core.", "numpy.core."):
            if module.startswith(prefix):
                found[id(func)] = (module[len(prefix) :], func.__name__)
    return found


class _ReleasePickler(pickle._Pickler):  # the Python pickler: its save_global can be overridden
    """A pickler naming NumPy's reconstruction callables under a chosen module prefix."""

    def __init__(self, file: IO[bytes], protocol: int, numpy_spelling: NumpySpelling) -> None:
        super().__init__(file, protocol=protocol)
        self._numpy_names = {
            key: (f"{numpy_spelling}.{suffix}", name)
            for key, (suffix, name) in _numpy_reducers().items()
        }

    def save_global(self, obj: Any, name: str | None = None) -> None:
        spelled = self._numpy_names.get(id(obj))
        if spelled is None:
            super().save_global(obj, name)
            return
        module, qualname = spelled
        if self.proto >= 4:
            self.save(module)
            self.save(qualname)
            self.write(pickle.STACK_GLOBAL)
        else:
            self.write(pickle.GLOBAL + f"{module}\n{qualname}\n".encode("ascii"))
        self.memoize(obj)

    def memoize(self, obj: Any) -> None:
        # Protocol 5 writes in-band buffers through save_bytes without looking in the memo
        # first, so an empty buffer (the b"" singleton) can come round twice.
        if id(obj) not in self.memo:
            super().memoize(obj)

    # The base class dispatches Python functions (``_frombuffer``) to its own save_global.
    dispatch = dict(pickle._Pickler.dispatch)
    dispatch[types.FunctionType] = save_global


def dump_release_pickle(
    obj: Any,
    file: IO[bytes],
    *,
    protocol: int = RELEASE_PICKLE_PROTOCOL,
    numpy_spelling: NumpySpelling = "numpy.core",
) -> None:
    """Pickle ``obj`` (plain data and NumPy arrays) as the release's tools did.

    Args:
        obj: the data (dicts, lists, tuples, str, numbers, None, arrays, NumPy scalars).
        file: binary file to write to.
        protocol: pickle protocol, 0-5.
        numpy_spelling: the module prefix array pickles name (``"numpy.core"``: NumPy 1.x,
            which wrote the release; ``"numpy._core"``: NumPy 2.x).
    """
    if not 0 <= protocol <= pickle.HIGHEST_PROTOCOL:
        raise ValueError(f"pickle protocol must be 0-{pickle.HIGHEST_PROTOCOL}, got {protocol}")
    _ReleasePickler(file, protocol, numpy_spelling).dump(obj)


def write_class_files(annotations_dir: Path) -> None:
    """``object_classes.txt`` (36 lines) and ``relationship_classes.txt`` (26
    lines) with the release's glued spellings."""
    annotations_dir.mkdir(parents=True, exist_ok=True)
    objects = "\n".join(glued(n) for n in OBJECT_CLASSES[1:]) + "\n"
    predicates = "\n".join(glued(n) for n in PREDICATES) + "\n"
    (annotations_dir / "object_classes.txt").write_text(objects)
    (annotations_dir / "relationship_classes.txt").write_text(predicates)


def _atomic_pickle(obj: Any, path: Path) -> None:
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "wb") as f:
        dump_release_pickle(obj, f)
    os.replace(tmp, path)


def write_annotations(
    root: Path,
    person_bbox: Mapping[str, Mapping[str, Any]],
    object_bbox_and_relationship: Mapping[str, Sequence[Mapping[str, Any]]],
    frame_list: Sequence[str] | None = None,
) -> Path:
    """Write ``root/annotations/`` as the release has it.

    Args:
        root: the AG root folder (``frames/`` lives beside ``annotations/``).
        person_bbox: frame_key -> person record (``bbox`` xyxy float32 (N, 4),
            ``bbox_score``, ``bbox_size`` (w, h), ``bbox_mode``, keypoints).
        object_bbox_and_relationship: frame_key -> list of object records
            (``class`` slash spelling, ``bbox`` xywh or None, ``visible``,
            three relationship lists or None, ``metadata``).
        frame_list: keys for ``frame_list.txt``; defaults to ``person_bbox``'s.

    Returns:
        The annotations folder.
    """
    ann = Path(root) / "annotations"
    write_class_files(ann)
    _atomic_pickle(dict(person_bbox), ann / "person_bbox.pkl")
    _atomic_pickle(dict(object_bbox_and_relationship), ann / "object_bbox_and_relationship.pkl")
    keys = list(person_bbox) if frame_list is None else list(frame_list)
    (ann / "frame_list.txt").write_text("".join(k + "\n" for k in keys))
    return ann
