"""What every picture shares: output paths (the suffix picks PNG or SVG), a
pyplot-free figure, atomic saving, and the colours of families and runs.

Figures are built with :class:`matplotlib.figure.Figure` (no pyplot, no global
backend switch, safe in threads): ``.png`` (Agg, 150 dpi by default) or
``.svg`` (text kept as text, no date, stable ids).
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from tr2_core.errors import ConfigError
from tr2_core.outputs import atomic_write

if TYPE_CHECKING:
    from matplotlib.figure import Figure

__all__ = [
    "OUTPUT_SUFFIXES",
    "DEFAULT_DPI",
    "FAMILY_COLOURS",
    "RUN_COLOURS",
    "RUN_MARKERS",
    "check_output_path",
    "new_figure",
    "save_figure",
    "percent",
    "run_labels",
]

OUTPUT_SUFFIXES: tuple[str, ...] = (".png", ".svg")
DEFAULT_DPI: int = 150

FAMILY_COLOURS: dict[str, str] = {
    "attention": "#4C72B0",
    "spatial": "#55A868",
    "contacting": "#DD8452",
}
"""One colour per predicate family, shared by every picture."""

RUN_COLOURS: tuple[str, ...] = (
    "#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b", "#e377c2", "#17becf",
)  # fmt: skip
"""Colours of runs A, B, C... (distinct from the family colours' role)."""

RUN_MARKERS: tuple[str, ...] = ("o", "s", "^", "D", "v", "P", "X", "*")


def check_output_path(out: str | os.PathLike[str]) -> Path:
    """The output path, checked to end in ``.png`` or ``.svg``.

    Raises:
        ConfigError: another suffix.
    """
    path = Path(out)
    if path.suffix.lower() not in OUTPUT_SUFFIXES:
        raise ConfigError(
            f"{path}: output must end in {' or '.join(OUTPUT_SUFFIXES)} (the suffix picks the "
            "format)"
        )
    return path


def new_figure(width: float, height: float) -> Figure:
    """A pyplot-free figure with constrained layout (no overlapping labels)."""
    from matplotlib.figure import Figure

    return Figure(figsize=(width, height), layout="constrained")


def save_figure(fig: Figure, out: str | os.PathLike[str], dpi: int = DEFAULT_DPI) -> Path:
    """Write ``fig`` as PNG or SVG (by suffix), atomically; parents are created.

    Returns:
        The path written.
    """
    import matplotlib

    path = check_output_path(out)
    fmt = path.suffix.lower()[1:]
    metadata = {"Date": None} if fmt == "svg" else None  # reproducible SVG
    # SVG keeps its text as text (searchable, editable), with stable ids.
    rc = {"svg.fonttype": "none", "svg.hashsalt": "tr2"}
    with matplotlib.rc_context(rc):
        return atomic_write(
            path,
            lambda f: fig.savefig(f, format=fmt, dpi=dpi, metadata=metadata, facecolor="white"),
        )


def percent(value: float | None) -> float:
    """A fraction as percent; NaN for None (drawn as a gap)."""
    return math.nan if value is None else 100.0 * float(value)


def run_labels(names: Sequence[str], labels: Sequence[str] | None, what: str) -> list[str]:
    """``labels`` when given (one per run), else ``names``.

    Raises:
        ConfigError: a label count that does not match the runs.
    """
    if labels is None:
        return list(names)
    if len(labels) != len(names):
        raise ConfigError(f"got {len(labels)} label(s) for {len(names)} {what}")
    return [str(v) for v in labels]
