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
``log_record``   the epoch's ``metrics.jsonl`` record as a JSON string (restores a
                 log line lost to a kill between the checkpoint and the log append)

``tr2 train`` names the weight files of ``config.run`` as they were given (used as
they are when loaded). A checkpoint ``tr2 import-release`` writes says
``paths_relative_to: checkpoint`` instead: its weight files are named relative to its
own folder (:func:`tr2_core.run.resolve_run_paths`).
"""

from __future__ import annotations

import json
import logging
import math
import os
import random
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np
import torch

from tr2_core.config import from_dict, to_dict
from tr2_core.errors import ConfigError, WeightsError, clip
from tr2_core.models import ModelConfig
from tr2_core.outputs import atomic_write, atomic_write_text
from tr2_core.run import run_spec_and_model_config
from tr2_core.run_spec import RunSpec
from tr2_core.train.recipe import TrainConfig

log = logging.getLogger("tr2.train")


def atomic_torch_save(obj: Any, path: str | Path) -> None:
    """``torch.save`` to a temporary file in the same folder, fsync, then rename over
    ``path``: a reader (or a crash) never sees a half-written file."""
    atomic_write(path, lambda f: torch.save(obj, f), fsync=True)


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


def train_config_from(config: dict[str, Any], path: str | Path = "checkpoint") -> TrainConfig:
    """The typed ``train`` section of a checkpoint's config.

    Raises:
        WeightsError: one line naming ``path`` and the key (missing section, unknown key,
            wrong type, bad value)."""
    if not isinstance(config, dict) or not isinstance(config.get("train"), dict):
        raise WeightsError(
            f"{path}: config.train: missing or not a dict; the checkpoint is refused"
        )
    try:
        return from_dict(TrainConfig, config["train"], "config.train")
    except ConfigError as e:
        raise WeightsError(f"{path}: {clip(str(e))}; the checkpoint is refused") from None


def configs_from_dict(
    config: dict[str, Any], path: str | Path = "checkpoint"
) -> tuple[RunSpec, ModelConfig, TrainConfig]:
    """Inverse of :func:`run_config_dict` (typed, validated; errors name ``path``)."""
    run, model_cfg, _ = run_spec_and_model_config(config)
    return run, model_cfg, train_config_from(config, path)


def checkpoint_state(
    relation: torch.nn.Module,
    optimisation: dict[str, Any],
    *,
    epoch: int,
    best: float,
    config: dict[str, Any],
    extractor_fingerprint: str,
    random_init: bool,
    log_record: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """The checkpoint dict (keys above) after ``epoch`` finished epochs; ``optimisation``
    holds the ``optimizer``, ``scheduler`` and ``scaler`` state dicts."""
    return {
        "log_record": json.dumps(log_record) if log_record is not None else None,
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
    rng: bool = True,
) -> tuple[int, float]:
    """Load a ``last.pt`` (its fields checked by :func:`tr2_core.run.load_checkpoint`)
    into the freshly built training state (relation model, optimizer, scheduler, grad
    scaler and, with ``rng``, the RNGs: else :func:`restore_rng` later) -> (finished
    epochs, best metric). The frozen extractor rebuilt from the saved config must be the
    one the run used."""
    absent = [k for k in ("optimizer", "scheduler", "scaler", "rng") if k not in ckpt]
    if absent:
        raise WeightsError(
            f"{path}: has no {', '.join(absent)} state: not a checkpoint tr2 train can resume"
        )
    if ckpt.get("extractor_fingerprint") != extractor_fingerprint:
        raise WeightsError(
            f"{path}: the frozen extractor rebuilt from the saved config has "
            "different weights than the run that wrote the checkpoint (other weight "
            "files or torch version?)"
        )
    parts: list[tuple[str, Any]] = [
        ("model weights", lambda: relation.load_state_dict(ckpt["model"])),
        ("optimizer state", lambda: optimizer.load_state_dict(ckpt["optimizer"])),
        ("scheduler state", lambda: scheduler.load_state_dict(ckpt["scheduler"])),
        ("grad scaler state", lambda: scaler.load_state_dict(ckpt["scaler"])),
    ]
    if rng:
        parts.append(("random generator state", lambda: set_rng_state(ckpt["rng"])))
    for what, load in parts:
        try:
            load()
        except Exception as e:  # torch raises RuntimeError/ValueError/KeyError/TypeError
            raise WeightsError(
                f"{path}: its {what} does not fit this run "
                f"({type(e).__name__}: {clip(str(e).strip())})"
            ) from None
    return int(ckpt["epoch"]), float(ckpt.get("best_metric", -math.inf))


def init_relation(relation: torch.nn.Module, ckpt: dict[str, Any], path: Path) -> None:
    """Start a new run's relation model from another checkpoint's weights (``tr2 train
    --init``: fine-tune, e.g. an online model from the authors' imported offline one).
    Every weight must be there with its shape, and nothing else: the two models must
    have the same widths (their fusion's mask and the frozen parts may differ).

    Raises:
        WeightsError: one line naming ``path`` and the first weight that does not fit.
    """
    own = relation.state_dict()
    given = ckpt["model"]
    missing = [k for k in own if k not in given]
    extra = [k for k in given if k not in own]
    shaped = [k for k in own if k in given and tuple(given[k].shape) != tuple(own[k].shape)]
    for keys, what in ((missing, "has no weight"), (extra, "has a weight this model lacks:"),
                       (shaped, "has another shape for")):  # fmt: skip
        if keys:
            raise WeightsError(
                f"{path}: {what} {keys[0]!r} ({len(keys)} such): --init needs a checkpoint "
                "of a model with the same widths"
            )
    relation.load_state_dict(given)


def restore_rng(ckpt: dict[str, Any], path: Path) -> None:
    """Set the python / numpy / torch generators to the checkpoint's states.

    Raises:
        WeightsError: states that do not fit (their form is checked at load)."""
    try:
        set_rng_state(ckpt["rng"])
    except Exception as e:  # noqa: BLE001 - torch / numpy / random raise various types
        raise WeightsError(
            f"{path}: its random generator state does not fit this run "
            f"({type(e).__name__}: {clip(str(e).strip())})"
        ) from None


RUN_FOLDER_KIND = "tr2-train-run"
"""Marker kind of a training run folder (:mod:`tr2_core.outputs`)."""


def append_log(path: Path, record: dict[str, Any]) -> None:
    """Append one epoch record to ``metrics.jsonl`` (one line; flushed to disk)."""
    with open(path, "a", encoding="utf-8") as f:
        f.write(json.dumps(record) + "\n")
        f.flush()
        os.fsync(f.fileno())


def _read_log(path: Path) -> tuple[list[dict[str, Any]], int]:
    """(the records of ``metrics.jsonl``, number of lines dropped): a partial or garbled
    line (a kill while it was written) is dropped with a warning naming file and line."""
    records, dropped = [], 0
    for number, line in enumerate(path.read_text(encoding="utf-8", errors="replace").split("\n")):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError:
            record = None
        if not isinstance(record, dict) or not isinstance(record.get("epoch", 0), int):
            log.warning("%s: line %d is partial or garbled; dropped", path, number + 1)
            dropped += 1
            continue
        records.append(record)
    return records, dropped


def reconcile_log(path: Path, epochs: int, last_record: str | None) -> None:
    """Make ``metrics.jsonl`` hold exactly the records of epochs 1..``epochs`` that it
    holds, once each, before a resumed run appends more: records of later epochs (a kill
    after the log line and before the checkpoint) and partial lines are dropped, and the
    checkpoint's own record of epoch ``epochs`` (``last_record``, JSON) is restored if the
    kill came after the checkpoint and before the log line. Rewritten atomically."""
    records, dropped = _read_log(path) if path.is_file() else ([], 0)
    kept: dict[int, dict[str, Any]] = {}
    for record in records:
        epoch = int(record.get("epoch", 0))
        if epoch <= epochs:
            kept[epoch] = record  # a duplicate of an epoch: the later line wins
    if epochs not in kept and last_record:
        kept[epochs] = json.loads(last_record)
        log.info("%s: restored the record of epoch %d from the checkpoint", path, epochs)
    ordered = [kept[e] for e in sorted(kept)]
    if dropped or ordered != records:
        atomic_write_text(path, "".join(json.dumps(r) + "\n" for r in ordered))
