"""Outputs that appear complete or not at all.

A tool writes into a private staging folder beside the final path (same file
system, so the final :func:`os.replace` is a rename) and only a successful run
moves the result into place. On any error, Ctrl-C included, the staging
folder is removed and nothing exists at the final path that was not there
before.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

from tr2_core.errors import Tr2Error


class OutputExistsError(Tr2Error):
    """The output path exists and overwriting was not asked for."""


def check_output(path: Path, *, overwrite: bool) -> None:
    """Fail early (before any work) when ``path`` exists and ``overwrite`` is off.

    Raises:
        OutputExistsError: naming the path.
    """
    if path.exists() and not overwrite:
        raise OutputExistsError(f"{path} exists; remove it or pass --overwrite")
    if not path.parent.is_dir():
        raise Tr2Error(f"{path}: the folder {path.parent} does not exist")


@contextmanager
def staged_outputs(finals: Sequence[Path], *, overwrite: bool = False) -> Iterator[list[Path]]:
    """Stage several outputs and publish them together.

    Yields one path per final path: ``STAGE/<final name>``, where ``STAGE`` is a
    fresh hidden folder beside the first output. The caller creates whatever it
    likes at those paths (a file or a folder). On normal exit each staged path is
    renamed to its final path (an existing one is replaced when ``overwrite``);
    on any exception every staged path is removed and the exception propagates.

    Args:
        finals: the output paths (files or folders), each in an existing folder.
        overwrite: replace outputs that exist (only once the run succeeded).

    Raises:
        OutputExistsError: an output exists and ``overwrite`` is off.
    """
    finals = [Path(p) for p in finals]
    for path in finals:
        check_output(path, overwrite=overwrite)
    stages = [
        Path(tempfile.mkdtemp(prefix=f".{path.name}.partial-", dir=path.parent)) for path in finals
    ]
    try:
        yield [stage / path.name for stage, path in zip(stages, finals, strict=True)]
        for stage, path in zip(stages, finals, strict=True):
            staged = stage / path.name
            if not staged.exists():
                raise Tr2Error(f"internal error: nothing was written for {path}")
        for stage, path in zip(stages, finals, strict=True):
            if path.exists():  # overwrite (checked above): replace only now
                if path.is_dir() and not path.is_symlink():
                    shutil.rmtree(path)
                else:
                    path.unlink()
            os.replace(stage / path.name, path)
    finally:
        for stage in stages:
            shutil.rmtree(stage, ignore_errors=True)
