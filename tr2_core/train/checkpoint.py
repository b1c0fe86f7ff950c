"""Checkpoints: written atomically, read with ``weights_only=True``, resumable exactly.

A checkpoint is a plain dict of tensors, numbers, strings, lists and dicts (nothing
that needs pickled classes), so ``torch.load(..., weights_only=True)`` reads it:

``model``        state dict of the trainable relation model
``optimizer``    optimizer state dict
``scheduler``    reduce-on-plateau state dict
``scaler``       AMP grad-scaler state dict (empty when unused)
``epoch``        number of finished epochs
``best_metric``  best validation metric so far (``-inf`` before the first evaluation)
``config``       the run configuration as a plain dict (model, train, run sections)
``rng``          python / numpy / torch (and CUDA) generator states
"""

from __future__ import annotations

import os
import random
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import torch

from tr2_core.errors import WeightsError


def atomic_torch_save(obj: Any, path: str | Path) -> None:
    """``torch.save`` to a temporary file in the same folder, fsync, then rename over
    ``path``: a reader (or a crash) never sees a half-written file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            torch.save(obj, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def load_checkpoint(path: str | Path, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Read a checkpoint safely (``weights_only=True``); raises :class:`WeightsError`
    naming the file when it is missing or not a tr2 checkpoint."""
    path = Path(path)
    if not path.is_file():
        raise WeightsError(f"checkpoint not found: {path}")
    try:
        ckpt = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as e:  # corrupt file, or one that needs unsafe globals
        raise WeightsError(f"{path}: cannot be read as a tr2 checkpoint ({e})") from None
    missing = [
        k for k in ("model", "config", "epoch") if not isinstance(ckpt, dict) or k not in ckpt
    ]
    if missing:
        raise WeightsError(f"{path}: not a tr2 checkpoint (missing {missing})")
    return ckpt


def get_rng_state() -> dict[str, Any]:
    """States of the python, numpy (legacy global) and torch generators, as tensors
    and plain values only (loadable with ``weights_only=True``)."""
    py_version, py_state, py_gauss = random.getstate()
    np_name, np_keys, np_pos, np_has_gauss, np_gauss = np.random.get_state()  # noqa: NPY002 (legacy global state)
    state: dict[str, Any] = {
        "python": [py_version, torch.tensor(py_state, dtype=torch.int64), py_gauss],
        "numpy": [
            np_name,
            torch.from_numpy(np_keys.astype(np.int64)),
            int(np_pos),
            int(np_has_gauss),
            float(np_gauss),
        ],
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    """Inverse of :func:`get_rng_state`."""
    py_version, py_state, py_gauss = state["python"]
    random.setstate((py_version, tuple(int(x) for x in py_state.tolist()), py_gauss))
    np_name, np_keys, np_pos, np_has_gauss, np_gauss = state["numpy"]
    np.random.set_state(  # noqa: NPY002
        (np_name, np_keys.numpy().astype(np.uint32), np_pos, np_has_gauss, np_gauss)
    )
    torch.set_rng_state(state["torch"].cpu())
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all([s.cpu() for s in state["cuda"]])
