"""Checkpoints: written atomically, read with ``weights_only=True``
(:func:`tr2_core.run.load_checkpoint`, which the streaming engine uses too), resumable
exactly.

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
``extractor_fingerprint``  identity of the frozen extractor's weights
``random_init``  whether the frozen parts were random
"""

from __future__ import annotations

import json
import logging
import os
import random
import tempfile
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np
import torch

from tr2_core.config import from_dict, to_dict
from tr2_core.errors import WeightsError
from tr2_core.models import ModelConfig
from tr2_core.run import RunSpec, run_spec_and_model_config
from tr2_core.train.config import TrainConfig

log = logging.getLogger("tr2.train")


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


# --------------------------------------------------------------------------- configuration
def run_config_dict(run: RunSpec, model_cfg: ModelConfig, train_cfg: TrainConfig) -> dict[str, Any]:
    """The plain-dict configuration stored in checkpoints and ``config.json``."""
    return {"run": asdict(run), "model": to_dict(model_cfg), "train": to_dict(train_cfg)}


def train_config_from(config: dict[str, Any]) -> TrainConfig:
    """The typed ``train`` section of a checkpoint's config."""
    if "train" not in config:
        raise WeightsError("checkpoint config has no 'train' section")
    return from_dict(TrainConfig, config["train"], "checkpoint config.train")


def configs_from_dict(config: dict[str, Any]) -> tuple[RunSpec, ModelConfig, TrainConfig]:
    """Inverse of :func:`run_config_dict` (typed, validated)."""
    run, model_cfg, _ = run_spec_and_model_config(config)
    return run, model_cfg, train_config_from(config)


def checkpoint_state(
    relation: torch.nn.Module,
    optimisation: dict[str, Any],
    *,
    epoch: int,
    best: float,
    config: dict[str, Any],
    extractor_fingerprint: str,
    random_init: bool,
) -> dict[str, Any]:
    """The checkpoint dict (keys above) after ``epoch`` finished epochs; ``optimisation``
    holds the ``optimizer``, ``scheduler`` and ``scaler`` state dicts."""
    return {
        "model": relation.state_dict(),
        **optimisation,
        "epoch": epoch,
        "best_metric": best,
        "config": config,
        "extractor_fingerprint": extractor_fingerprint,
        "random_init": random_init,
        "rng": get_rng_state(),
    }


# --------------------------------------------------------------------------- resume
def restore_training(
    ckpt: dict[str, Any],
    path: Path,
    *,
    extractor_fingerprint: str,
    relation: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    scheduler: Any,
    scaler: Any,
) -> tuple[int, float]:
    """Load a ``last.pt`` into the freshly built training state (relation model,
    optimizer, scheduler, grad scaler, RNGs) -> (finished epochs, best metric). The frozen
    extractor rebuilt from the saved config must be the one the run used."""
    if ckpt.get("extractor_fingerprint") != extractor_fingerprint:
        raise WeightsError(
            f"{path}: the frozen extractor rebuilt from the saved config has "
            "different weights than the run that wrote the checkpoint (other weight "
            "files or torch version?)"
        )
    relation.load_state_dict(ckpt["model"])
    optimizer.load_state_dict(ckpt["optimizer"])
    scheduler.load_state_dict(ckpt["scheduler"])
    scaler.load_state_dict(ckpt["scaler"])
    set_rng_state(ckpt["rng"])
    return int(ckpt["epoch"]), float(ckpt["best_metric"])


def truncate_log(path: Path, epochs: int) -> None:
    """Keep only records of epochs <= ``epochs`` (a run killed between writing the log
    line and the checkpoint re-runs that epoch)."""
    if not path.is_file():
        return
    lines = [ln for ln in path.read_text().splitlines() if ln.strip()]
    keep = [ln for ln in lines if json.loads(ln).get("epoch", 0) <= epochs]
    if len(keep) != len(lines):
        path.write_text("".join(ln + "\n" for ln in keep))
