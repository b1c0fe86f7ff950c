"""Progress bars: shown for long work on a terminal, quiet in logs."""

from __future__ import annotations


def bar_disabled(progress: bool) -> bool | None:
    """tqdm's ``disable`` for a bar the caller wants (``progress``) or not.

    ``None`` lets tqdm hide a wanted bar when its stream (stderr) is not a terminal,
    so a log file or CI output never fills with bar frames."""
    return None if progress else True
