"""The training recipe: one flat, typed dataclass loaded from ``tr2_core/configs/train/*.yaml``.

The model architecture lives in ``tr2_core/configs/models/`` (see :mod:`tr2_core.models`); this
file holds only how it is trained. Unknown keys fail (:func:`tr2_core.config.from_dict`).
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import torch

from tr2_core.config import load_config
from tr2_core.errors import ConfigError


@dataclass
class TrainConfig:
    """How to train a relation model (defaults: the paper's recipe, ``tr2.yaml``, field
    for field -- tested).

    Paper / authors' code: AdamW lr 1e-5, weight decay 0.01, 15 epochs, gradient
    clipping 5, reduce-on-plateau on validation R@20 (factor 0.5, patience 1), one
    video per step. The loss weights (lambda of Eq. 3, guidance weight) are part of the
    model config (``loss.object_weight``, ``guidance.weight``).
    """

    epochs: int = 15
    lr: float = 1e-5
    weight_decay: float = 0.01
    betas: tuple[float, ...] = (0.9, 0.999)
    grad_clip: float = 5.0
    """Max global gradient norm; 0 disables clipping."""

    # reduce-on-plateau on a validation metric (mode "max")
    plateau_metric: str = "with/R@20"
    """``<constraint>/<metric>`` key into the evaluator's result dict."""
    plateau_factor: float = 0.5
    plateau_patience: int = 1
    plateau_threshold: float = 1e-4
    min_lr: float = 1e-6

    # data
    train_split: Literal["train", "test"] = "train"
    val_split: Literal["val", "train", "test"] = "val"
    """Where best.pt is selected (and the plateau scheduler reads its metric).
    ``val`` (default, honest): videos held out of the training split and not trained on
    -- a synthetic dataset's own ``val_videos`` (synthetic_meta.json), for Action Genome
    a fixed seeded ``val_fraction`` of the training videos. ``test``: the lineage's
    choice (AG has no validation split; the authors select on the test split), kept
    for comparability with published numbers; then all training videos are trained on."""
    val_fraction: float = 0.1
    """``val_split: val`` on data without its own validation list: this fraction of the
    training videos (at least one) is held out."""
    val_seed: int = 0
    """Seed of that held-out subset (fixed, independent of the training ``seed``)."""
    max_train_videos: int = 0
    """Use only the first N training videos (0: all) -- for demos and tests."""
    max_val_videos: int = 0
    max_clip_frames: int = 0
    """Training: a random window of at most this many consecutive frames per video
    (0: whole video). Evaluation: the video in consecutive chunks of this length."""
    shuffle: bool = True

    # numerics, reproducibility
    seed: int = 42
    amp: bool = False
    """Mixed precision with ``torch.autocast`` -- on CUDA only (CPU runs in float32).
    The authors train PredCls / SGCls in float32."""
    amp_dtype: Literal["bfloat16", "float16"] = "bfloat16"
    deterministic: bool = False
    """``torch.use_deterministic_algorithms`` (slower on CUDA)."""

    # frozen-feature cache
    feature_cache: bool = True
    """Compute detector/CLIP outputs once, store them on disk, train from them."""
    cache_dtype: Literal["float32", "bfloat16", "float16"] = "bfloat16"
    """Storage type of cached feature vectors. bfloat16 halves the disk size and keeps
    float32's range; float16 overflows above 65504 (a random ResNet-101's features
    reach ~1.6e5: the cause of a NaN at the first validation), which the cache refuses to store."""

    prefetch: int = -1
    """Cached training inputs read (and pinned, on CUDA) this many steps ahead in a
    background thread; 0: on the training thread; -1 (auto): 2 on CUDA, 0 on a CPU,
    where the reads would compete with training for the same cores (measured slower on
    2 shared cores). Results are unchanged either way."""

    eval_every: int = 1
    """Evaluate on the validation split every N epochs (and after the last)."""

    def validate(self) -> None:
        checks = {
            "epochs": self.epochs >= 1,
            "lr": self.lr > 0,
            "weight_decay": self.weight_decay >= 0,
            "betas": len(self.betas) == 2 and all(0 <= b < 1 for b in self.betas),
            "grad_clip": self.grad_clip >= 0,
            "plateau_factor": 0 < self.plateau_factor < 1,
            "plateau_patience": self.plateau_patience >= 0,
            "max_train_videos": self.max_train_videos >= 0,
            "max_val_videos": self.max_val_videos >= 0,
            "max_clip_frames": self.max_clip_frames >= 0,
            "eval_every": self.eval_every >= 1,
            "prefetch": self.prefetch >= -1,
            "val_fraction": 0 < self.val_fraction < 1,
        }
        bad = [k for k, ok in checks.items() if not ok]
        if bad:
            raise ConfigError(f"train config: bad value for {bad}")
        if "/" not in self.plateau_metric:
            raise ConfigError(
                f"train config: plateau_metric {self.plateau_metric!r} must look like 'with/R@20'"
            )


def load_train_config(name_or_path: str | Path, overrides: tuple[str, ...] = ()) -> TrainConfig:
    """``tr2_core/configs/train/<name>.yaml`` (or a path) with dotted ``key=value`` overrides."""
    return load_config(TrainConfig, name_or_path, subdir="train", overrides=overrides)


def autocast_factory(cfg: TrainConfig, device: torch.device) -> Callable[[], Any]:
    """``torch.autocast`` on CUDA when ``amp`` is on; a no-op elsewhere (CPU: float32)."""
    if not (cfg.amp and device.type == "cuda"):
        return contextlib.nullcontext
    dtype = torch.bfloat16 if cfg.amp_dtype == "bfloat16" else torch.float16
    return lambda: torch.autocast(device_type="cuda", dtype=dtype)
