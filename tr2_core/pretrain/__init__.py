"""Frozen features that carry the synthetic scene: the small detector and the small
CLIP fitted to a synthetic dataset (:mod:`.detector_fit`, :mod:`.clip_fit`), saved in exactly
the formats real weights come in -- a torchvision ``FasterRCNN`` state dict and an
open_clip checkpoint -- so a run loads them through ``--detector-weights`` /
``--clip-weights`` like real weights.

Built on first use and cached under ``$TR2_CACHE_DIR/pretrained/<key>/`` (default
``~/.cache/tr2``), the key made like the feature cache's: the extractor config, the
dataset's annotation files, the budget and the seed. Never committed.

What they are fitted on: by default (``tr2 pretrain-synthetic``, ``tr2 demo``) a
pretraining world of fresh videos rendered from the dataset's own generator settings
(:mod:`.world`), never the dataset's videos; ``world_videos=0``: the dataset's training
videos minus its held-out validation videos.
"""

from __future__ import annotations

import json
import logging
import os
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import torch

from tr2_core.cache_keys import annotation_stats, cache_key
from tr2_core.config import to_dict
from tr2_core.models.entities import build_detector
from tr2_core.models.model_config import resolve_config
from tr2_core.models.pair_features import create_clip
from tr2_core.pretrain.clip_fit import train_clip
from tr2_core.pretrain.detector_fit import train_detector
from tr2_core.pretrain.steps import deterministic_kernels
from tr2_core.pretrain.training_frames import load_pretrain_frames
from tr2_core.pretrain.world import render_world, world_config

log = logging.getLogger(__name__)

PRETRAIN_VERSION = 7  # 7: deterministic kernels; 6: fused AdamWs, 600/300 RPN proposals


@dataclass(frozen=True)
class PretrainBudget:
    """How long each part trains and on what (defaults: about a minute on a 2-core CPU).

    ``world_videos``: short videos of the dataset's own world rendered in memory to fit
    on (:mod:`.world`); 0 fits on the dataset's training videos instead (any AG-format
    dataset, also a non-synthetic one)."""

    detector_steps: int = 100
    clip_steps: int = 600
    max_frames: int = 0
    world_videos: int = 1500
    seed: int = 0


@dataclass(frozen=True)
class PretrainedWeights:
    """The two weight files and what building them cost (0 when read from the cache)."""

    detector: Path
    clip: Path
    seconds: float
    cached: bool


def default_pretrained_dir() -> Path:
    root = os.environ.get("TR2_CACHE_DIR")
    return (Path(root).expanduser() if root else Path.home() / ".cache" / "tr2") / "pretrained"


def pretrained_weights(
    data: str | Path,
    model: str = "tr2-small",
    *,
    budget: PretrainBudget = PretrainBudget(),
    cache_dir: str | Path | None = None,
    overrides: Sequence[str] = (),
    device: str = "cpu",
) -> PretrainedWeights:
    """The synthetic-world detector and CLIP weight files of ``model`` for the dataset
    at ``data``: from the cache, or trained now and stored there atomically. Fitted on
    a pretraining world (``budget.world_videos`` > 0; keyed by the world, so datasets of
    one world share them) or on the dataset's training videos without the held-out
    validation videos (keyed by the dataset).

    ``overrides``: ``KEY=VALUE`` model config overrides (as ``tr2 train``'s ``model.``
    ones, without the prefix), e.g. ``detector.min_size=256``; the fits use the
    overridden config and the cache key holds it, so a run must pass the same overrides.
    ``device``: where the fits run (``cpu``, ``cuda``); a fit off the CPU is keyed apart
    (float reduction order differs), CPU keys are unchanged."""
    cfg = resolve_config(model, list(overrides))
    if budget.world_videos > 0:
        source = {"world": asdict(world_config(data, budget.world_videos, budget.seed))}
    else:
        source = {"annotations": annotation_stats(data), "data": str(Path(data).resolve())}
    key = cache_key({
        "pretrain_version": PRETRAIN_VERSION,
        "detector": to_dict(cfg.detector),
        "clip": cfg.clip.cache_parts(),
        "prompts": [cfg.guidance.prompt, cfg.guidance.spatial_prompt],
        **source,
        "budget": asdict(budget),
        **({"device": torch.device(device).type} if torch.device(device).type != "cpu" else {}),
    })  # fmt: skip
    folder = Path(cache_dir) if cache_dir else default_pretrained_dir()
    folder = folder / key
    detector_path, clip_path = folder / "detector.pt", folder / "clip.pt"
    if detector_path.is_file() and clip_path.is_file():
        return PretrainedWeights(detector_path, clip_path, 0.0, True)
    t0 = time.perf_counter()
    detector_state, clip_state, report = train_weights(data, cfg, budget, device=device)
    folder.mkdir(parents=True, exist_ok=True)
    for path, state in ((detector_path, detector_state), (clip_path, clip_state)):
        tmp = path.with_suffix(".tmp")
        torch.save(state, tmp)
        os.replace(tmp, path)
    seconds = time.perf_counter() - t0
    (folder / "pretrain.json").write_text(
        json.dumps(
            {
                "model": cfg.name,
                "data": str(data),
                "budget": asdict(budget),
                "overrides": list(overrides),
                "device": str(device),
                "seconds": round(seconds, 1),
                **report,
            },
            indent=1,
        )
        + "\n"  # fmt: skip
    )
    return PretrainedWeights(detector_path, clip_path, seconds, False)


def train_weights(
    data: str | Path, cfg, budget: PretrainBudget, device: str = "cpu"
) -> tuple[dict, dict, dict]:
    """Train both parts on ``device`` from a random init seeded by ``budget.seed``;
    returns their state dicts (on the CPU) and a report (first / last losses)."""
    torch.manual_seed(budget.seed)
    if budget.world_videos > 0:
        frames = render_world(world_config(data, budget.world_videos, budget.seed))
    else:
        frames = load_pretrain_frames(data)
    detector = build_detector(cfg.detector).to(device)
    with deterministic_kernels():  # the same weights from every run on one machine
        det_losses = train_detector(detector, frames, steps=budget.detector_steps,
                                    max_frames=budget.max_frames, seed=budget.seed)  # fmt: skip
        # seeded on its own: the CLIP's init and batches do not depend on the detector's fit
        torch.manual_seed(budget.seed)
        clip_model = create_clip(cfg.clip, random_init=True).to(device)
        clip_losses = train_clip(clip_model, frames, cfg, steps=budget.clip_steps, seed=budget.seed)
    report = {
        "frames": len(frames.images),
        "pairs": int(frames.pair_frame.shape[0]),
        "detector_loss": [det_losses[0], det_losses[-1]] if det_losses else [],
        "clip_loss": [clip_losses[0], clip_losses[-1]] if clip_losses else [],
    }
    return _on_cpu(detector.state_dict()), _on_cpu(clip_model.state_dict()), report


def _on_cpu(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    return {k: v.cpu() for k, v in state.items()}
