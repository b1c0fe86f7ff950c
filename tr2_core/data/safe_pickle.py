"""Allow-list unpickling for the Action Genome annotation pickles.

Unpickling runs whatever callables a pickle names, so an untrusted file can run
arbitrary code (``os.system``, ``builtins.eval``, ``subprocess.Popen``...).
:func:`safe_load` uses a :class:`pickle.Unpickler` whose ``find_class`` only
resolves the globals that plain data needs:

* builtin value types and containers (``set``, ``frozenset``, ``list``,
  ``dict``, ``tuple``, ``str``, ``bytes``, ``bytearray``, ``int``, ``float``,
  ``complex``, ``bool``, ``slice``) and ``collections.OrderedDict``
  (the Python 2 module name ``__builtin__`` is accepted for ``builtins``);
* ``_codecs.encode`` restricted to the latin-1 / ASCII / UTF-8 codecs
  (protocol 0-2 pickles written by Python 3 store ``bytes`` that way);
* NumPy arrays, scalars and dtypes: ``numpy.ndarray``, ``numpy.dtype``,
  ``multiarray._reconstruct``, ``multiarray.scalar`` and
  ``numeric._frombuffer`` (protocol 5), under either module spelling
  ``numpy.core.*`` (NumPy 1.x, which wrote the AG release) or
  ``numpy._core.*`` (NumPy 2.x); both map onto the installed NumPy.

Anything else raises :class:`~tr2_core.errors.UnsafePickleError` naming the
file and the refused global (``module.name``) *before* it is imported or
called. A truncated or corrupt file raises
:class:`~tr2_core.errors.DatasetError` naming the file.

The allow-list stops code execution, not resource exhaustion: a crafted file
can still ask for a huge array; that surfaces as a ``DatasetError``
(``MemoryError``) or as the memory limit of the process.

Python 2 pickles are read with ``encoding='latin1'``, the setting NumPy
documents for Python 2 array pickles; Python 3 pickles are unaffected by it.
"""

from __future__ import annotations

import _codecs
import builtins
import collections
import contextlib
import gc
import importlib
import io
import os
import pickle
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, BinaryIO

from tr2_core.errors import DatasetError, Tr2Error, UnsafePickleError

__all__ = ["safe_load", "safe_loads", "SafeUnpickler", "ALLOWED_GLOBALS", "gc_paused"]

_SAFE_CODECS = frozenset({"latin1", "latin-1", "latin_1", "iso-8859-1", "iso8859-1", "ascii"})
_SAFE_CODECS |= {"utf-8", "utf8", "utf_8"}


class _RefusedCall(Exception):
    """An allowed callable was called with arguments outside its allow-list."""


def _codecs_encode(obj: Any, encoding: str = "utf-8", errors: str = "strict") -> bytes:
    """``_codecs.encode`` limited to text -> bytes with harmless codecs."""
    if not isinstance(obj, str) or not isinstance(encoding, str):
        raise _RefusedCall("_codecs.encode called with non-text arguments")
    if encoding.lower() not in _SAFE_CODECS:
        raise _RefusedCall(f"_codecs.encode with codec {encoding!r}")
    return _codecs.encode(obj, encoding, errors)


_BUILTIN_NAMES = (
    "set", "frozenset", "list", "dict", "tuple", "str", "bytes", "bytearray",
    "int", "float", "complex", "bool", "slice",
)  # fmt: skip

# Canonical "module.name" -> how to resolve it. NumPy entries are resolved
# lazily against the installed NumPy (numpy._core on 2.x, numpy.core on 1.x).
ALLOWED_GLOBALS: frozenset[str] = frozenset(
    [f"builtins.{n}" for n in _BUILTIN_NAMES]
    + [
        "collections.OrderedDict",
        "_codecs.encode",
        "numpy.ndarray",
        "numpy.dtype",
        "numpy._core.multiarray._reconstruct",
        "numpy._core.multiarray.scalar",
        "numpy._core.numeric._frombuffer",
    ]
)
"""Every global a pickle may name, in canonical spelling (see module docstring)."""

_MODULE_ALIASES = {"__builtin__": "builtins", "exceptions": "builtins"}
# Python 2 names that protocol 0-2 pickles use for Python 3 builtins.
_PY2_BUILTINS = {"unicode": "str", "long": "int"}


def _canonical(module: str, name: str) -> str:
    module = _MODULE_ALIASES.get(module, module)
    if module == "builtins":
        name = _PY2_BUILTINS.get(name, name)
    if module == "numpy.core" or module.startswith("numpy.core."):
        module = "numpy._core" + module[len("numpy.core") :]
    return f"{module}.{name}"


def _numpy_core_module(submodule: str) -> Any:
    """``numpy._core.<submodule>`` on NumPy 2, ``numpy.core.<submodule>`` on 1.x."""
    try:
        return importlib.import_module(f"numpy._core.{submodule}")
    except ImportError:  # NumPy 1.x
        return importlib.import_module(f"numpy.core.{submodule}")


def _resolve(canonical: str) -> Any:
    if canonical == "_codecs.encode":
        return _codecs_encode
    if canonical == "collections.OrderedDict":
        return collections.OrderedDict
    module, _, name = canonical.rpartition(".")
    if module == "builtins":
        return getattr(builtins, name)
    import numpy as np

    if module == "numpy":
        return getattr(np, name)
    return getattr(_numpy_core_module(module.rpartition(".")[2]), name)


class SafeUnpickler(pickle.Unpickler):
    """A :class:`pickle.Unpickler` that refuses every global outside
    :data:`ALLOWED_GLOBALS` with :class:`UnsafePickleError`.

    Args:
        file: binary file object to read from.
        source: name used in error messages (the file path).
    """

    def __init__(self, file: BinaryIO, *, source: str) -> None:
        super().__init__(file, encoding="latin1")
        self.source = source
        self._cache: dict[tuple[str, str], Any] = {}

    def find_class(self, module: str, name: str) -> Any:
        key = (module, name)
        found = self._cache.get(key)
        if found is not None:
            return found
        canonical = _canonical(module, name)
        if canonical not in ALLOWED_GLOBALS:
            spelled = f"{module}.{name}"
            also = "" if canonical == spelled else f" (= {canonical})"
            raise UnsafePickleError(
                f"{self.source}: refused to load global '{spelled}'{also}: only builtin "
                "containers and NumPy arrays are allowed in annotation pickles (the file is "
                "corrupt or was crafted to run code; it was not executed)"
            )
        found = self._cache[key] = _resolve(canonical)
        return found

    def persistent_load(self, pid: Any) -> Any:
        raise UnsafePickleError(
            f"{self.source}: refused persistent id {pid!r}: not allowed in annotation pickles"
        )


@contextlib.contextmanager
def gc_paused() -> Iterator[None]:
    """Pause the cyclic garbage collector (restored on exit).

    Building millions of small containers (as unpickling the AG files does)
    triggers the collector over and over although none of them can be freed:
    pausing it makes unpickling the release ~2.5x faster.
    """
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def _load_from(file: BinaryIO, source: str) -> object:
    try:
        with gc_paused():
            return SafeUnpickler(file, source=source).load()
    except Tr2Error:
        raise
    except _RefusedCall as exc:
        msg = f"{source}: refused {exc}: not allowed in annotation pickles"
        raise UnsafePickleError(msg) from exc
    except MemoryError as exc:
        raise DatasetError(f"{source}: out of memory while unpickling ({exc})") from exc
    except Exception as exc:  # truncated / corrupt data surfaces as many types
        kind = "truncated" if isinstance(exc, EOFError) else "corrupt"
        raise DatasetError(
            f"{source}: cannot unpickle, the file is {kind} ({type(exc).__name__}: {exc})"
        ) from exc


def safe_loads(data: bytes | bytearray | memoryview, *, source: str = "<bytes>") -> object:
    """Unpickle ``data`` with the allow-list.

    Args:
        data: the pickle bytes.
        source: name used in error messages.

    Raises:
        UnsafePickleError: the pickle names a global outside the allow-list.
        DatasetError: truncated or corrupt data.
    """
    return _load_from(io.BytesIO(data), source)


def safe_load(
    path: str | os.PathLike[str],
    *,
    progress: Callable[[int], object] | None = None,
) -> object:
    """Unpickle the file at ``path`` with the allow-list.

    Args:
        path: the pickle file.
        progress: optional callback receiving the number of bytes read since
            the previous call (e.g. ``tqdm.update``).

    Raises:
        DatasetError: the file is missing, unreadable, truncated or corrupt.
        UnsafePickleError: the pickle names a global outside the allow-list.
    """
    path = Path(path)
    try:
        raw = open(path, "rb")  # noqa: SIM115 - closed below
    except FileNotFoundError as exc:
        raise DatasetError(f"{path}: file not found") from exc
    except OSError as exc:
        raise DatasetError(f"{path}: cannot open ({exc.strerror})") from exc
    with raw:
        file: BinaryIO = raw if progress is None else _ProgressReader(raw, progress)  # type: ignore[assignment]
        return _load_from(file, str(path))


class _ProgressReader:
    """Delegates to a buffered binary file and reports bytes consumed.

    Provides ``peek`` so that the C unpickler prefetches large blocks instead
    of calling ``read`` once per opcode.
    """

    def __init__(self, raw: io.BufferedReader, progress: Callable[[int], object]) -> None:
        self._raw = raw
        self._progress = progress

    def read(self, n: int = -1) -> bytes:
        data = self._raw.read(n)
        self._progress(len(data))
        return data

    def readinto(self, buffer: Any) -> int:
        n = self._raw.readinto(buffer)
        self._progress(n)
        return n

    def readline(self, size: int = -1) -> bytes:
        data = self._raw.readline(size)
        self._progress(len(data))
        return data

    def peek(self, n: int = 0) -> bytes:
        return self._raw.peek(n)
