"""User-facing errors. Every message names what was wrong and where
(file, frame key, array, parameter), so the CLI prints it as is."""

from __future__ import annotations


class Tr2Error(Exception):
    """Base class: the ``tr2`` command prints these without a traceback."""


class DatasetError(Tr2Error):
    """Malformed or missing Action Genome data (names the file and frame key)."""


class UnsafePickleError(DatasetError):
    """A pickle tried to load a global outside the allow-list."""


class PredictionsError(Tr2Error):
    """A predictions ``.npz`` file violates the contract of evaluation.md."""


class ConfigError(Tr2Error):
    """Unknown key, wrong type or bad value in a configuration."""


class WeightsError(Tr2Error):
    """Missing or mismatched pretrained weights / checkpoint."""
