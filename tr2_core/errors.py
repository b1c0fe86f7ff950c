"""User-facing errors. Every message names what was wrong and where
(file, frame key, array, parameter), so the CLI prints it as is."""

from __future__ import annotations

import numpy as np


class Tr2Error(Exception):
    """Base class: the ``tr2`` command prints these without a traceback."""


class DatasetError(Tr2Error):
    """Malformed or missing Action Genome data (names the file and frame key)."""


class UnsafePickleError(DatasetError):
    """A pickle tried to load a global outside the allow-list."""


class PredictionsError(Tr2Error):
    """A predictions ``.npz`` file violates the layout of docs/evaluation.md."""


class ConfigError(Tr2Error):
    """Unknown key, wrong type or bad value in a configuration."""


class WeightsError(Tr2Error):
    """Missing or mismatched pretrained weights / checkpoint."""


MESSAGE_VALUE_CHARS = 80
"""At most this many characters of a value quoted in an error message."""


def describe(value: object, limit: int = MESSAGE_VALUE_CHARS) -> str:
    """A bounded ``repr`` of ``value`` for error messages.

    Safe on hostile data: a list nesting the same list a million times or a
    100,000-deep nesting costs a few dozen items, never the full expansion
    (``reprlib`` stops at a fixed depth and item count).
    """
    import reprlib

    if isinstance(value, np.ndarray):  # a subclass (the safe unpickler's) reads as an array
        value = value.view(np.ndarray)
    shortener = reprlib.Repr()
    shortener.maxlevel = 3
    shortener.maxstring = shortener.maxother = shortener.maxlong = limit
    try:
        text = shortener.repr(value)
    except Exception:  # a repr that fails on malformed data must not hide the real error
        text = f"<{type(value).__name__}>"
    return clip(text, limit)


def clip(text: str, limit: int = 4 * MESSAGE_VALUE_CHARS) -> str:
    """``text`` cut to at most ``limit`` characters (``...`` marks a cut)."""
    return text if len(text) <= limit else text[: max(limit - 3, 0)] + "..."


def torch_load_failure(error: Exception) -> str:
    """Why ``torch.load(weights_only=True)`` failed, in one line, without torch's advice
    to load the file with ``weights_only=False`` (which would run its code)."""
    import re

    text = str(error)
    named = re.search(r"GLOBAL ([\w.]+)", text)
    if named:
        return (
            f"it needs the Python object {named.group(1)!r} to load, and tr2 reads only "
            "tensors and plain values from a weights file (no code is run from it)"
        )
    lines = [
        line.strip() for line in text.splitlines()
        if line.strip() and "weights_only" not in line and "torch.load" not in line
    ]  # fmt: skip
    first = lines[0].split(". ")[0] if lines else type(error).__name__
    return f"not a readable torch file ({type(error).__name__}: {clip(first)})"
