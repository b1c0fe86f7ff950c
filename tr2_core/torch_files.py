"""The one way tr2 reads a torch file it did not write: weights only, one-line refusals.

Checkpoints, detector and CLIP weights and the authors' published files all come
through :func:`load_weights_file`: ``torch.load(weights_only=True)`` (no code in the
file runs), and a refusal is one line naming the file and why, never torch's advice to
load it with ``weights_only=False``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from tr2_core.errors import WeightsError, torch_load_failure

__all__ = ["load_weights_file"]


def load_weights_file(
    path: str | Path, what: str, *, map_location: str | torch.device = "cpu", mmap: bool = False
) -> Any:
    """The contents of the torch file at ``path`` (tensors and plain values only).

    Args:
        path: the file.
        what: what the file should be, for messages (``"checkpoint"``, ``"detector
            weights"``...).
        map_location, mmap: as :func:`torch.load`.

    Raises:
        WeightsError: ``"{what} not found: {path}"``, or ``"{what} {path}: refused:
            {reason}"`` (corrupt, truncated, or needing Python objects to load).
    """
    path = Path(path)
    if not path.is_file():
        raise WeightsError(f"{what} not found: {path}")
    try:
        return torch.load(path, map_location=map_location, weights_only=True, mmap=mmap)
    except Exception as e:  # noqa: BLE001 - corrupt data or unsafe globals surface as many types
        raise WeightsError(f"{what} {path}: refused: {torch_load_failure(e)}") from None
