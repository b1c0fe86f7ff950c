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
