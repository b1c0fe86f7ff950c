"""What a tr2 command may write, replace or delete: one rule for every command.

Rule: an output replaces only

* a file, when the output is a file, or
* a folder a tr2 command of the same kind wrote, recognised by its marker file
  :data:`MARKER` holding that kind (``rosbag2``, ``overlay-png``, ``train-run`` ...),

and never a path that equals, contains or lies inside one of the command's
inputs, nor any other folder. Anything else is refused with one clear error
before any work is done, and checked again just before the replacement.

Partial files: every temporary file or folder written here is named
``.NAME.tr2-partial-PID-XXXX`` beside its final path, so that one left by a
killed process (``kill -9``, power loss) is recognised and removed by
:func:`remove_stale_partials` once that process is gone.

Outputs that appear complete or not at all (:func:`staged_outputs`): a command
writes into a private partial folder beside each final path (same file system, so
the final :func:`os.replace` is a rename) and only a successful run moves the
results into place. On any error, Ctrl-C included, the partial folders are removed
and nothing exists at a final path that was not there before. What may be replaced
is checked at the start and again at the end.

This module sits with the errors at the bottom of the layers: it imports
nothing of tr2 but :mod:`tr2_core.errors`.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import tempfile
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from tr2_core.errors import Tr2Error

MARKER = ".tr2-output"
"""File inside every folder a tr2 command wrote; its text is the folder's kind."""
PARTIAL_TAG = ".tr2-partial-"
_PARTIAL_NAME = re.compile(r"^\..+" + re.escape(PARTIAL_TAG) + r"(\d+)-[A-Za-z0-9_]+$")


class OutputExistsError(Tr2Error):
    """The output path exists and overwriting was not asked for."""


class OutputPathError(Tr2Error):
    """An output path that must not be written: an input, a folder holding an input,
    a folder tr2 did not write, a folder where a file goes (or the reverse)."""


@dataclass(frozen=True)
class Output:
    """One output of a command.

    Attributes:
        path: where it goes.
        flag: how the user named it (``--jsonl``, ``OUT``), for messages.
        folder_kind: None for a file; for a folder, the kind its :data:`MARKER` holds.
    """

    path: Path
    flag: str
    folder_kind: str | None = None

    @classmethod
    def file(cls, path: str | os.PathLike[str], flag: str) -> Output:
        return cls(Path(path), flag)

    @classmethod
    def folder(cls, path: str | os.PathLike[str], flag: str, kind: str) -> Output:
        return cls(Path(path), flag, kind)


def folder_kind(folder: Path) -> str | None:
    """The kind in ``folder``'s marker, or None when it has none (or is no folder)."""
    try:
        return (folder / MARKER).read_text(encoding="utf-8").strip()
    except (OSError, UnicodeDecodeError):
        return None


def mark_folder(folder: Path, kind: str) -> None:
    """Write the marker that lets a later run of the same kind replace ``folder``."""
    (folder / MARKER).write_text(kind + "\n", encoding="utf-8")


def _has_entries(folder: Path) -> bool:
    """Whether ``folder`` holds anything but partial files (an empty folder is no loss)."""
    return any(not _PARTIAL_NAME.match(p.name) for p in folder.iterdir())


def _resolved(path: Path) -> Path:
    return Path(os.path.abspath(path)).resolve()


def _check_inputs(out: Output, inputs: Iterable[str | os.PathLike[str] | None]) -> None:
    target = _resolved(out.path)
    for given in inputs:
        if given is None:
            continue
        source = _resolved(Path(given))
        if source == target:
            raise OutputPathError(
                f"{out.flag} {out.path} is the input {given}; choose another path"
            )
        if target in source.parents:
            raise OutputPathError(
                f"{out.flag} {out.path} contains the input {given}; choose another path"
            )
        if source in target.parents:
            raise OutputPathError(
                f"{out.flag} {out.path} lies inside the input {given}; an output must be "
                "outside the input"
            )


def check_output(
    out: Output,
    *,
    inputs: Iterable[str | os.PathLike[str] | None] = (),
    overwrite: bool = False,
) -> None:
    """Refuse an output that the rule of this module forbids (before any work).

    Raises:
        OutputPathError: the output is or holds or lies inside an input; a folder
            where a file goes or the reverse; an existing folder without this
            kind's marker (only its own kind of folder is ever replaced).
        OutputExistsError: it exists and ``overwrite`` is off.
    """
    _check_inputs(out, inputs)
    path = out.path
    if not (path.exists() or path.is_symlink()):
        return
    if out.folder_kind is None:
        if path.is_dir():
            raise OutputPathError(
                f"{out.flag} {path}: is a folder; give the path of a file to write"
            )
    elif not path.is_dir():
        raise OutputPathError(f"{out.flag} {path}: is a file; this output is a folder")
    if not overwrite:
        raise OutputExistsError(f"{out.flag} {path} exists; remove it or pass --overwrite")
    if out.folder_kind is not None and folder_kind(path) != out.folder_kind and _has_entries(path):
        raise OutputPathError(
            f"{out.flag} {path}: refusing to replace a folder that tr2 did not write as a "
            f"{out.folder_kind} (no {MARKER} marker of that kind in it); remove it yourself "
            "or choose another path"
        )


def check_outputs(
    outs: Sequence[Output],
    *,
    inputs: Iterable[str | os.PathLike[str] | None] = (),
    overwrite: bool = False,
) -> None:
    """:func:`check_output` for each, and no output equal to or inside another."""
    inputs = list(inputs)
    for out in outs:
        check_output(out, inputs=inputs, overwrite=overwrite)
    for i, out in enumerate(outs):
        for other in outs[i + 1 :]:
            a, b = _resolved(out.path), _resolved(other.path)
            if a == b or a in b.parents or b in a.parents:
                raise OutputPathError(
                    f"{out.flag} {out.path} and {other.flag} {other.path} overlap; "
                    "give each output its own path"
                )


def check_output_files(
    named: dict[str, str | os.PathLike[str] | None],
    *,
    inputs: Iterable[str | os.PathLike[str] | None] = (),
) -> None:
    """Check the file outputs of a command that replaces them as it goes (``tr2 eval
    --json``, ``tr2 baseline --out``, ``tr2 plot --out``): flag -> path (None: not
    asked for). Refuses folders, inputs and paths inside inputs (see :func:`check_output`)."""
    outs = [Output.file(path, flag) for flag, path in named.items() if path is not None]
    check_outputs(outs, inputs=inputs, overwrite=True)


def replace_with(out: Output, staged: Path, *, inputs: Iterable[Any] = (), overwrite: bool) -> None:
    """Move the finished ``staged`` file/folder to ``out.path``, replacing what is there
    only if :func:`check_output` still allows it (checked again now: the path may have
    changed while the command ran)."""
    check_output(out, inputs=inputs, overwrite=overwrite)
    if out.folder_kind is not None:
        mark_folder(staged, out.folder_kind)
    path = out.path
    if path.is_dir() and not path.is_symlink():
        # rename the old folder aside first: a crash leaves a partial, never a mix
        aside = Path(tempfile.mkdtemp(prefix=partial_prefix(path), dir=path.parent))
        os.replace(path, aside / "old")
        os.replace(staged, path)
        shutil.rmtree(aside, ignore_errors=True)
        return
    os.replace(staged, path)


def prepare_folder(
    path: str | os.PathLike[str],
    flag: str,
    kind: str,
    *,
    inputs: Iterable[str | os.PathLike[str] | None] = (),
    adopt: bool = False,
) -> Path:
    """Create (or reuse) a folder a command writes files into without replacing it
    (a training run, a test folder): a missing or empty folder, or one marked with
    ``kind`` (with ``adopt``, any folder: e.g. resuming a run written before markers
    existed). Its marker is written; stale partial files in it are removed.

    Raises:
        OutputPathError: a file, an input, or a non-empty folder of another kind.
    """
    out = Output.folder(path, flag, kind)
    _check_inputs(out, inputs)
    folder = out.path
    if folder.exists() and not folder.is_dir():
        raise OutputPathError(f"{flag} {folder}: is a file; this output is a folder")
    if folder.is_dir():
        found = folder_kind(folder)
        if found != kind and not adopt and _has_entries(folder):
            what = f"a {found} folder" if found else "a folder tr2 did not write"
            raise OutputPathError(
                f"{flag} {folder}: is {what}, not empty; choose an empty or new folder"
            )
    folder.mkdir(parents=True, exist_ok=True)
    mark_folder(folder, kind)
    remove_stale_partials(folder)
    return folder


# --------------------------------------------------------------------------- partial files
def partial_prefix(path: Path) -> str:
    """Name prefix of this process's temporary files for ``path``."""
    return f".{path.name}{PARTIAL_TAG}{os.getpid()}-"


def _alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # exists, owned by someone else
        return True
    return True


def remove_stale_partials(folder: str | os.PathLike[str]) -> list[Path]:
    """Remove partial files/folders in ``folder`` left by processes that are gone
    (named by :func:`partial_prefix`); returns what was removed. A partial of a
    running process (another writer) is left alone."""
    removed = []
    with contextlib.suppress(OSError):
        for entry in Path(folder).iterdir():
            match = _PARTIAL_NAME.match(entry.name)
            if match is None or _alive(int(match.group(1))):
                continue
            if entry.is_dir() and not entry.is_symlink():
                shutil.rmtree(entry, ignore_errors=True)
            else:
                entry.unlink(missing_ok=True)
            removed.append(entry)
    return removed


def atomic_write(
    path: str | os.PathLike[str], write: Callable[[IO[bytes]], None], *, fsync: bool = False
) -> Path:
    """Write a file through ``write(binary file)`` into a partial file beside ``path``,
    then rename it over ``path``: a reader (or a crash) never sees half a file, and a
    killed writer's partial is reclaimed by :func:`remove_stale_partials`. The parent
    folder is created when missing. ``fsync``: flush to disk before the rename."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_partials(path.parent)
    fd, tmp = tempfile.mkstemp(prefix=partial_prefix(path), dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
            if fsync:
                f.flush()
                os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def atomic_write_text(path: str | os.PathLike[str], text: str) -> Path:
    """:func:`atomic_write` of a UTF-8 text."""
    return atomic_write(path, lambda f: f.write(text.encode("utf-8")))


@contextmanager
def partial_folder(beside: Path) -> Iterator[Path]:
    """A fresh partial folder beside ``beside`` (removed on exit)."""
    remove_stale_partials(beside.parent)
    stage = Path(tempfile.mkdtemp(prefix=partial_prefix(beside), dir=beside.parent))
    try:
        yield stage
    finally:
        shutil.rmtree(stage, ignore_errors=True)


# --------------------------------------------------------------------------- staged outputs
def _as_output(item: Output | str | os.PathLike[str]) -> Output:
    return item if isinstance(item, Output) else Output.file(item, "output")


def check_staged_outputs(
    outs: Output | Sequence[Output],
    *,
    inputs: Sequence[str | os.PathLike[str] | None] = (),
    overwrite: bool,
) -> None:
    """Fail early (before any work) on outputs of :func:`staged_outputs` that the rule
    of this module forbids (:func:`check_outputs`), or one whose folder does not exist.

    Raises:
        OutputExistsError: it exists and ``overwrite`` is off.
        OutputPathError: it is / holds / lies in an input, or is an unrelated folder.
    """
    outs = [outs] if isinstance(outs, Output) else list(outs)
    check_outputs(outs, inputs=inputs, overwrite=overwrite)
    for out in outs:
        if not out.path.parent.is_dir():
            raise Tr2Error(f"{out.flag} {out.path}: the folder {out.path.parent} does not exist")


@contextmanager
def staged_outputs(
    finals: Sequence[Output | str | os.PathLike[str]],
    *,
    inputs: Sequence[str | os.PathLike[str] | None] = (),
    overwrite: bool = False,
    optional: Sequence[Output] = (),
) -> Iterator[list[Path]]:
    """Stage several outputs and publish them together.

    Yields one path per output: ``PARTIAL/<final name>``, where ``PARTIAL`` is a
    fresh hidden folder beside that output (:func:`partial_folder`). The caller
    creates what the output says (a file, or a folder) at those paths. On normal
    exit each staged path replaces its final path (:func:`replace_with`: folders get
    their kind's marker); on any exception every staged path is removed and the
    exception propagates.

    Args:
        finals: the outputs (a bare path is a file output), each in an existing folder.
        inputs: the command's inputs (never replaced, never inside an output).
        overwrite: replace outputs that exist (only once the run succeeded).
        optional: outputs of ``finals`` the caller may leave unwritten (nothing to
            put in them): they are then not published, and what exists stays.

    Raises:
        OutputExistsError: an output exists and ``overwrite`` is off.
        OutputPathError: an output the rule of this module forbids.
    """
    outs = [_as_output(p) for p in finals]
    check_staged_outputs(outs, inputs=inputs, overwrite=overwrite)
    with ExitStack() as stack:
        stages = [stack.enter_context(partial_folder(out.path)) for out in outs]
        staged = [stage / out.path.name for stage, out in zip(stages, outs, strict=True)]
        yield staged
        kept = [
            (p, o) for p, o in zip(staged, outs, strict=True) if p.exists() or o not in optional
        ]
        for path, out in kept:
            if not path.exists():
                raise Tr2Error(f"internal error: nothing was written for {out.path}")
            if out.folder_kind is not None and not path.is_dir():
                raise Tr2Error(f"internal error: {out.path} was staged as a file, not a folder")
        for path, out in kept:
            replace_with(out, path, inputs=inputs, overwrite=overwrite)
