"""Outputs that appear complete or not at all.

A tool writes into a private partial folder beside the final path (same file
system, so the final :func:`os.replace` is a rename) and only a successful run
moves the result into place. On any error, Ctrl-C included, the partial
folder is removed and nothing exists at the final path that was not there
before; one left by a killed process is reclaimed by the next run
(:func:`tr2_core.outputs.remove_stale_partials`). What may be replaced is
decided by :mod:`tr2_core.outputs`, at the start and again at the end.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from contextlib import ExitStack, contextmanager
from pathlib import Path

from tr2_core.errors import Tr2Error
from tr2_core.outputs import (
    Output,
    OutputExistsError,
    OutputPathError,
    check_outputs,
    partial_folder,
    replace_with,
)

__all__ = ["Output", "OutputExistsError", "OutputPathError", "check_output", "staged_outputs"]


def _as_output(item: Output | str | os.PathLike[str]) -> Output:
    return item if isinstance(item, Output) else Output.file(item, "output")


def check_output(
    outs: Output | Sequence[Output],
    *,
    inputs: Sequence[str | os.PathLike[str] | None] = (),
    overwrite: bool,
) -> None:
    """Fail early (before any work) on an output :mod:`tr2_core.outputs` forbids, or
    one whose folder does not exist.

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
    fresh hidden folder beside that output. The caller creates what the output
    says (a file, or a folder) at those paths. On normal exit each staged path
    replaces its final path (:func:`tr2_core.outputs.replace_with`: folders get
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
        OutputPathError: an output the rules of :mod:`tr2_core.outputs` forbid.
    """
    outs = [_as_output(p) for p in finals]
    check_output(outs, inputs=inputs, overwrite=overwrite)
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
