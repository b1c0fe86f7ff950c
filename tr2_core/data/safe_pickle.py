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

Names are not enough: allowed NumPy callables can be fed a dtype whose pickled
state lies (an object dtype whose flags claim "no references", a structured
dtype hiding an object field), and an array built with it turns raw bytes of
the file into object pointers (a segfault on first use). So every allowed
callable that builds a dtype, array or scalar is wrapped, and what it builds
is checked *after construction*, by structure, never by the flags it claims
(:func:`check_dtype`): no object dtype at any nesting, field offsets inside
the item. Arrays are built as :class:`CheckedArray` (an ``ndarray`` subclass
whose ``__setstate__`` checks the dtype before NumPy copies any bytes).

The memo table is not a call: the process's address space is capped while it
unpickles (:func:`address_space_bounded`), so a PUT opcode naming a huge memo index
fails with a clear error instead of claiming tens of GiB.

The same wrappers bound what one call may allocate beyond the bytes of the
file (:data:`MAX_UNBACKED_BYTES`): an array shape, ``bytes(n)``,
``bytearray(n)``; ``str()`` only decodes text (``str(container)`` would
expand repeated references without bound). What the loader does with the
records it gets is bounded by its own field checks
(:mod:`tr2_core.data.action_genome`).

Python 2 pickles are read with ``encoding='latin1'``, the setting NumPy
documents for Python 2 array pickles; Python 3 pickles are unaffected by it.
"""

from __future__ import annotations

import _codecs
import builtins
import collections
import contextlib
import functools
import gc
import importlib
import io
import os
import pickle
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np

from tr2_core.errors import DatasetError, Tr2Error, UnsafePickleError, clip

__all__ = [
    "safe_load",
    "safe_loads",
    "SafeUnpickler",
    "ALLOWED_GLOBALS",
    "MAX_UNBACKED_BYTES",
    "CheckedArray",
    "check_dtype",
    "gc_paused",
]

MAX_UNBACKED_BYTES = 1 << 20
"""Most memory (bytes) one allowed call may allocate that is not read from the
file (pickles written by NumPy and Python ask for none)."""

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


def _check_unbacked(count: Any, itemsize: int, what: str) -> None:
    """Refuse a request for more than :data:`MAX_UNBACKED_BYTES` of fresh memory."""
    if count == (0,):
        return  # what NumPy's own pickles ask for
    dims = count if isinstance(count, tuple) else (count,)
    if not all(type(d) is int and d >= 0 for d in dims):
        raise _RefusedCall(f"{what} with size {clip(repr(count), 80)}")
    total = itemsize
    for d in dims:
        total *= d
    if total > MAX_UNBACKED_BYTES:
        raise _RefusedCall(
            f"{what} asking for {total:,} bytes not stored in the file "
            f"(at most {MAX_UNBACKED_BYTES:,})"
        )


def check_dtype(dtype: Any, *, _depth: int = 0) -> np.dtype:
    """``dtype`` if it is a plain-data dtype, judged by structure, not flags.

    Refused (:class:`UnsafePickleError` once wrapped by the unpickler): object
    dtypes at any nesting (fields, subarrays), fields that are not dtypes or
    lie outside the item, nesting deeper than 32.
    """
    if not isinstance(dtype, np.dtype):
        raise _RefusedCall(f"a dtype field holding {type(dtype).__name__}, not a dtype")
    if dtype.fields is None and dtype.subdtype is None and dtype.kind != "O":
        return dtype  # the common case, first: an unstructured plain-data dtype
    if _depth > 32:
        raise _RefusedCall("a dtype nested more than 32 levels")
    if dtype.kind == "O" or dtype.type is np.object_:
        raise _RefusedCall(f"dtype {clip(str(dtype), 80)}: object dtypes hold pointers")
    if dtype.subdtype is not None:
        base, shape = dtype.subdtype
        check_dtype(base, _depth=_depth + 1)
        count = int(np.prod(shape, dtype=np.int64))
        if base.itemsize * count != dtype.itemsize:
            raise _RefusedCall(f"dtype {clip(str(dtype), 80)}: subarray size mismatch")
    for spec in (dtype.fields or {}).values():
        if not isinstance(spec, tuple) or len(spec) < 2 or type(spec[1]) is not int:
            raise _RefusedCall("a structured dtype with a malformed field")
        field, offset = spec[0], spec[1]
        check_dtype(field, _depth=_depth + 1)
        if offset < 0 or offset + field.itemsize > dtype.itemsize:
            raise _RefusedCall("a structured dtype with a field outside its item")
    return dtype


def _dtype(obj: Any, align: Any = False, copy: Any = False) -> np.dtype:
    """``numpy.dtype`` as pickles call it; the result is checked as built."""
    return check_dtype(np.dtype(obj, bool(align), bool(copy)))


class CheckedArray(np.ndarray):
    """What ``numpy.ndarray`` resolves to in annotation pickles: an ndarray
    whose construction and ``__setstate__`` check the dtype (by structure) and
    the memory asked for before NumPy reads any byte of the state."""

    def __new__(cls, shape: Any, dtype: Any = float, *args: Any, **kwargs: Any) -> CheckedArray:
        dt = check_dtype(np.dtype(dtype))
        if args or kwargs:  # a buffer would be reinterpreted: not something data needs
            raise _RefusedCall("numpy.ndarray called with a buffer")
        _check_unbacked(shape, dt.itemsize, "numpy.ndarray")
        return super().__new__(cls, shape, dt)

    def __setstate__(self, state: Any) -> None:
        # NumPy's layout: ([version,] shape, dtype, is_fortran, data)
        if type(state) is not tuple or len(state) not in (4, 5):
            raise _RefusedCall("an array state that is not NumPy's")
        check_dtype(state[-3])
        super().__setstate__(state)

    def __reduce__(self) -> Any:
        # pickles as a plain ndarray (this class is an unpickling detail)
        return np.asarray(self).__reduce__()


def _reconstruct(subtype: Any, shape: Any, dtype: Any) -> CheckedArray:
    """``multiarray._reconstruct`` building a :class:`CheckedArray`."""
    if subtype is not CheckedArray:
        raise _RefusedCall("multiarray._reconstruct of a class other than numpy.ndarray")
    dt = check_dtype(np.dtype(dtype))
    _check_unbacked(shape, dt.itemsize, "multiarray._reconstruct")
    return _numpy_core_module("multiarray")._reconstruct(CheckedArray, shape, dt)


def _scalar(dtype: Any, *args: Any) -> Any:
    """``multiarray.scalar`` for plain-data dtypes only."""
    return _numpy_core_module("multiarray").scalar(check_dtype(dtype), *args)


def _frombuffer(buffer: Any, dtype: Any, shape: Any, order: Any) -> np.ndarray:
    """``numeric._frombuffer`` (protocol 5) for plain-data dtypes only."""
    dt = check_dtype(np.dtype(dtype))
    return _numpy_core_module("numeric")._frombuffer(buffer, dt, shape, order)


def _sized(kind: type) -> Callable[..., Any]:
    """``bytes`` / ``bytearray`` refusing ``kind(n)`` beyond :data:`MAX_UNBACKED_BYTES`."""

    def build(*args: Any) -> Any:
        if args and isinstance(args[0], int):
            _check_unbacked(args[0], 1, f"{kind.__name__}(n)")
        return kind(*args)

    return build


def _text(*args: Any) -> str:
    """``str`` decoding text only: ``str(container)`` would expand repeated
    references into an unbounded repr."""
    if args and not isinstance(args[0], (str, bytes, bytearray)):
        raise _RefusedCall(f"str() of a {type(args[0]).__name__}")
    return str(*args)


# Allowed globals that are wrapped (checked) rather than resolved as they are.
_GUARDED: dict[str, Callable[..., Any]] = {
    "builtins.bytes": _sized(bytes),
    "builtins.bytearray": _sized(bytearray),
    "builtins.str": _text,
    "numpy.dtype": _dtype,
    "numpy.ndarray": CheckedArray,
    "numpy._core.multiarray._reconstruct": _reconstruct,
    "numpy._core.multiarray.scalar": _scalar,
    "numpy._core.numeric._frombuffer": _frombuffer,
}


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


@functools.cache
def _numpy_core_module(submodule: str) -> Any:
    """``numpy._core.<submodule>`` on NumPy 2, ``numpy.core.<submodule>`` on 1.x."""
    try:
        return importlib.import_module(f"numpy._core.{submodule}")
    except ImportError:  # NumPy 1.x
        return importlib.import_module(f"numpy.core.{submodule}")


def _resolve(canonical: str) -> Any:
    if canonical in _GUARDED:
        return _GUARDED[canonical]
    if canonical == "_codecs.encode":
        return _codecs_encode
    if canonical == "collections.OrderedDict":
        return collections.OrderedDict
    module, _, name = canonical.rpartition(".")
    assert module == "builtins", canonical  # every NumPy global is guarded
    return getattr(builtins, name)


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


MEMO_BUDGET_BASE = 1 << 30
"""Address space (bytes) an unpickle may grow by, on top of :data:`MEMO_BUDGET_PER_BYTE`
per byte of the pickle (see :func:`address_space_bounded`)."""
MEMO_BUDGET_PER_BYTE = 64
"""Address space an unpickle may grow by per byte of the pickle: Python objects of
plain data take a few to a few tens of times the bytes that encode them."""


@contextlib.contextmanager
def address_space_bounded(extra: int) -> Iterator[None]:
    """Cap this process's address space at its current size + ``extra`` bytes (Linux;
    elsewhere a no-op), restored on exit; a tighter existing limit stays.

    Why: the C unpickler grows its memo table to twice the largest index a ``PUT`` /
    ``LONG_BINPUT`` opcode names and clears it, so an 8-byte pickle naming index 2**30
    makes it allocate and write 16 GiB -- no allow-list sees that, it is not a call.
    Under the cap the allocation fails at once (MemoryError) and nothing is written.
    """
    try:
        import resource

        with open("/proc/self/statm", "rb") as statm:
            current = int(statm.read().split()[0]) * os.sysconf("SC_PAGE_SIZE")
        soft, hard = resource.getrlimit(resource.RLIMIT_AS)
    except (ImportError, OSError, ValueError, IndexError):
        yield
        return
    cap = current + extra
    if hard != resource.RLIM_INFINITY:
        cap = min(cap, hard)
    if soft != resource.RLIM_INFINITY and soft <= cap:
        yield
        return
    resource.setrlimit(resource.RLIMIT_AS, (cap, hard))
    try:
        yield
    finally:
        resource.setrlimit(resource.RLIMIT_AS, (soft, hard))


def _load_from(file: BinaryIO, source: str, size: int) -> object:
    budget = MEMO_BUDGET_BASE + MEMO_BUDGET_PER_BYTE * size
    try:
        with gc_paused(), address_space_bounded(budget):
            return SafeUnpickler(file, source=source).load()
    except Tr2Error:
        raise
    except _RefusedCall as exc:
        msg = f"{source}: refused {exc}: not allowed in annotation pickles"
        raise UnsafePickleError(msg) from exc
    except MemoryError as exc:
        raise DatasetError(
            f"{source}: out of memory while unpickling: a pickle of {size:,} bytes may grow "
            f"the process by {budget / 2**30:.1f} GiB at most (corrupt or crafted file, e.g. "
            f"a huge memo index; {clip(str(exc)) or 'MemoryError'})"
        ) from exc
    except RecursionError as exc:
        raise DatasetError(f"{source}: cannot unpickle, nesting too deep") from exc
    except Exception as exc:  # truncated / corrupt data surfaces as many types
        kind = "truncated" if isinstance(exc, EOFError) else "corrupt"
        raise DatasetError(
            f"{source}: cannot unpickle, the file is {kind} ({type(exc).__name__}: "
            f"{clip(str(exc))})"
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
    return _load_from(io.BytesIO(data), source, len(data))


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
        return _load_from(file, str(path), os.fstat(raw.fileno()).st_size)


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
