"""The training loop: one loop for CPU, CUDA, AMP and DistributedDataParallel.

Run by ``tr2 train`` (one process) or ``torchrun --nproc_per_node N tr2 train ...``
(DDP: see :mod:`tr2_core.train.distributed`).

Per epoch: train over the videos (one video -- or a window of at most
``max_clip_frames`` frames -- per step), evaluate on the validation split with the
project's evaluator (:mod:`tr2_core.train.validation`), step reduce-on-plateau on the
validation metric, write ``best.pt`` (when the metric improved) and ``last.pt``
atomically, then append one line to ``metrics.jsonl`` (:mod:`tr2_core.train.checkpoint`). A
killed run resumed with ``--resume`` continues from the last finished epoch,
bit-for-bit on CPU.

Run folder::

    RUN_DIR/last.pt, best.pt     checkpoints (see checkpoint.py)
    RUN_DIR/metrics.jsonl        one JSON record per finished epoch
    RUN_DIR/config.json          the run configuration (also inside every checkpoint)
    RUN_DIR/text_table.npz       CLIP prompt embeddings, when built by the run
"""

from __future__ import annotations

import json
import logging
import math
import random
import time
from collections import defaultdict
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm import tqdm

from tr2_core.checkpoint_schema import check_state_dict
from tr2_core.models import ModelConfig, alpha_from_counts, compute_losses
from tr2_core.outputs import atomic_write_text, prepare_folder
from tr2_core.progress import bar_disabled
from tr2_core.run import RunModel, build_run_model, load_checkpoint, save_built_text_table
from tr2_core.run_spec import RunSpec
from tr2_core.train.checkpoint import (
    RUN_FOLDER_KIND,
    append_log,
    atomic_torch_save,
    checkpoint_state,
    configs_from_dict,
    init_relation,
    reconcile_log,
    restore_rng,
    restore_training,
    run_config_dict,
)
from tr2_core.train.dataset import ActionGenomeVideos, frame_window, shard_indices
from tr2_core.train.distributed import Dist, fill_cache, reduce_sums, setup_distributed
from tr2_core.train.guards import NonFiniteGuard
from tr2_core.train.prefetch import pin, prefetched
from tr2_core.train.recipe import TrainConfig, autocast_factory
from tr2_core.train.source import ClipSource, make_source, move_features, move_targets
from tr2_core.train.validation import metric_value, validate

log = logging.getLogger("tr2.train")


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)  # noqa: NPY002 (third-party code may use it)
    torch.manual_seed(seed)


def class_alpha(videos: ActionGenomeVideos) -> dict[str, torch.Tensor]:
    """Per-class focal weights from the frequencies of the labels of the videos the run
    trains on (authors' formula); held-out validation videos do not count."""
    pairs = videos.pair_rows()
    return {
        "spatial": alpha_from_counts(videos.pair_spatial[pairs].sum(axis=0)),
        "contacting": alpha_from_counts(videos.pair_contacting[pairs].sum(axis=0)),
    }


@dataclass
class Optimisation:
    """Optimizer, reduce-on-plateau scheduler and AMP grad scaler of a run."""

    params: list[torch.nn.Parameter]
    optimizer: torch.optim.AdamW
    scheduler: torch.optim.lr_scheduler.ReduceLROnPlateau
    scaler: torch.amp.GradScaler

    @classmethod
    def create(
        cls, relation: torch.nn.Module, cfg: TrainConfig, device: torch.device
    ) -> Optimisation:
        params = [p for p in relation.parameters() if p.requires_grad]
        optimizer = torch.optim.AdamW(
            params, lr=cfg.lr, weight_decay=cfg.weight_decay, betas=cfg.betas,
            foreach=True,  # one kernel per op over all parameters (CPU default is a Python loop)
        )  # fmt: skip
        scheduler = torch.optim.lr_scheduler.ReduceLROnPlateau(
            optimizer, mode="max", factor=cfg.plateau_factor, patience=cfg.plateau_patience,
            threshold=cfg.plateau_threshold, threshold_mode="abs", min_lr=cfg.min_lr,
        )  # fmt: skip
        scaler = torch.amp.GradScaler(
            "cuda", enabled=cfg.amp and device.type == "cuda" and cfg.amp_dtype == "float16"
        )
        return cls(params, optimizer, scheduler, scaler)

    def step(self, loss: torch.Tensor, grad_clip: float) -> None:
        """One backward pass and optimizer step (scaled under float16 AMP)."""
        self.optimizer.zero_grad(set_to_none=True)
        self.scaler.scale(loss).backward()
        if grad_clip > 0:
            self.scaler.unscale_(self.optimizer)
            torch.nn.utils.clip_grad_norm_(self.params, grad_clip)
        self.scaler.step(self.optimizer)
        self.scaler.update()

    def state(self) -> dict[str, Any]:
        return {
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            "scaler": self.scaler.state_dict(),
        }


@dataclass
class Sources:
    """The run's data: training and validation clips, validation ground truth, focal
    class weights."""

    train: ClipSource
    val: ClipSource
    val_gt: Any
    alpha: dict[str, torch.Tensor]


def build_sources(
    run: RunSpec, cfg: TrainConfig, model: RunModel, d: Dist, progress: bool
) -> Sources:
    """Both splits as clip sources, their feature caches filled."""
    train_src, _ = make_source(
        run, cfg, cfg.train_split, model.frozen, d.device,
        training=True, max_videos=cfg.max_train_videos, use_cache=cfg.feature_cache,
    )  # fmt: skip
    val_src, _ = make_source(
        run, cfg, cfg.val_split, model.frozen, d.device,
        training=False, max_videos=cfg.max_val_videos, use_cache=cfg.feature_cache,
    )  # fmt: skip
    alpha = {k: v.to(d.device) for k, v in class_alpha(train_src.videos).items()}
    fill_cache(train_src, d, "cache train features", progress)
    fill_cache(val_src, d, "cache val features", progress)
    return Sources(train_src, val_src, val_src.videos.selected_gt(), alpha)


def train_epoch(
    model: torch.nn.Module,
    rm: RunModel,
    data: Sources,
    opt: Optimisation,
    run: RunSpec,
    cfg: TrainConfig,
    d: Dist,
    epoch: int,
    progress: bool,
) -> dict[str, float]:
    """One pass over this rank's share of the training videos -> loss sums and counts
    over all ranks (``loss``, each loss term, ``_frames``, ``_steps``) and this rank's
    ``_time_s`` / ``_cpu_s``."""
    model.train()
    src = data.train
    order = shard_indices(len(src), d.rank, d.world_size, shuffle=cfg.shuffle,
                          seed=cfg.seed + epoch)  # fmt: skip
    window_rng = np.random.default_rng([cfg.seed, epoch, d.rank])
    autocast = autocast_factory(cfg, d.device)
    sums: dict[str, Any] = defaultdict(float)
    guard = NonFiniteGuard(epoch, d.rank)
    frames, steps = 0, 0
    t0, cpu0 = time.perf_counter(), time.process_time()
    bar = tqdm(order, desc=f"epoch {epoch + 1}/{cfg.epochs}", unit="video",
               disable=bar_disabled(progress and d.master), dynamic_ncols=True)  # fmt: skip
    pinned = d.device.type == "cuda"

    def load(index: int) -> tuple[int, Any, Any]:  # runs ahead in the prefetch thread
        start, stop = frame_window(src.num_frames(index), cfg.max_clip_frames, window_rng)
        features, targets = src.get(index, start, stop)
        if pinned:  # pinned host memory: the copies below do not block
            features, targets = pin(features), pin(targets)
        return index, move_features(features, d.device), move_targets(targets, d.device)

    depth = cfg.prefetch if cfg.prefetch >= 0 else (2 if pinned else 0)
    depth = depth if src.cache is not None else 0  # extraction stays on this thread
    for index, features, targets in prefetched(bar, load, depth):
        with autocast():
            output = model(features, targets, mode=run.task)
            losses = compute_losses(output, features, targets, rm.text_table, rm.config,
                                    class_alpha=data.alpha, task=run.task)  # fmt: skip
            loss = sum(losses.values())
        guard.record(steps + 1, src.video(index), loss, losses)  # on device: no sync
        opt.step(loss, cfg.grad_clip)
        for name, value in {**losses, "loss": loss}.items():  # on device: no sync here
            sums[name] = sums[name] + value.detach().float()
        frames += len(features.frame_keys)
        steps += 1
        if steps % 10 == 1 or steps == len(order):  # one device sync per 10 steps
            guard.check(d)  # before any checkpoint: a bad epoch is never saved
            bar.set_postfix(loss=f"{float(sums['loss']) / steps:.4f}",
                            fps=f"{frames / (time.perf_counter() - t0):.1f}")  # fmt: skip
    elapsed, cpu = time.perf_counter() - t0, time.process_time() - cpu0
    totals = reduce_sums({**{k: float(v) for k, v in sums.items()}, "_frames": frames,
                          "_steps": steps}, d)  # fmt: skip
    return {**totals, "_time_s": elapsed, "_cpu_s": cpu}


def epoch_record(
    epoch: int,
    totals: dict[str, float],
    metrics: dict | None,
    val_time: float,
    best: float,
    lr: float,
    run: RunSpec,
    cfg: TrainConfig,
    d: Dist,
) -> dict[str, Any]:
    """The ``metrics.jsonl`` line of a finished epoch."""
    totals = dict(totals)
    n_steps = max(totals.pop("_steps"), 1.0)
    n_frames = totals.pop("_frames")
    train_time, train_cpu = totals.pop("_time_s"), totals.pop("_cpu_s")
    return {
        "epoch": epoch + 1,
        "lr": lr,
        "loss": totals["loss"] / n_steps,
        "losses": {k: v / n_steps for k, v in sorted(totals.items()) if k != "loss"},
        "train_frames": int(n_frames),
        "train_time_s": train_time,
        "train_frames_per_s": n_frames / max(train_time, 1e-9),
        "train_cpu_s": train_cpu,  # rank 0's process CPU time, all threads
        "val_time_s": val_time,
        "val": metrics,
        "plateau_metric": cfg.plateau_metric,
        "best_metric": best if math.isfinite(best) else None,
        "task": run.task,
        "random_init": run.random_init,
        "world_size": d.world_size,
        "feature_cache": cfg.feature_cache,
    }


def log_epoch(record: dict[str, Any], cfg: TrainConfig) -> None:
    """One log line per finished epoch."""
    metrics = record["val"]
    shown = "-" if metrics is None else f"{metric_value(metrics, cfg.plateau_metric):.4f}"
    log.info(
        "epoch %d/%d  loss %.4f  val %s %s  lr %.2e  %.1f frames/s%s",
        record["epoch"], cfg.epochs, record["loss"], cfg.plateau_metric, shown, record["lr"],
        record["train_frames_per_s"], "  [RANDOM INIT]" if record["random_init"] else "",
    )  # fmt: skip


def _start(
    out: Path,
    run: RunSpec | None,
    model_cfg: ModelConfig | None,
    train_cfg: TrainConfig | None,
    resume: bool,
    epochs: int | None,
) -> tuple[RunSpec, ModelConfig, TrainConfig, dict[str, Any] | None]:
    """The run's configs: given, or read from ``out/last.pt`` with ``resume``
    (``epochs`` may extend it) -> (run, model_cfg, train_cfg, checkpoint or None)."""
    ckpt = None
    if resume:
        ckpt = load_checkpoint(out / "last.pt", map_location="cpu")  # every field checked
        run, model_cfg, train_cfg = configs_from_dict(ckpt["config"], out / "last.pt")
    elif run is None or model_cfg is None or train_cfg is None:
        raise ValueError("a new run needs run, model_cfg and train_cfg")
    if epochs is not None:
        train_cfg.epochs = epochs
        train_cfg.validate()
    return run, model_cfg, train_cfg, ckpt


def train(
    out_dir: str | Path,
    run: RunSpec | None = None,
    model_cfg: ModelConfig | None = None,
    train_cfg: TrainConfig | None = None,
    *,
    resume: bool = False,
    epochs: int | None = None,
    device: str = "auto",
    progress: bool = True,
    init: str | Path | None = None,
) -> dict[str, Any]:
    """Train a new run into ``out_dir`` (``run``, ``model_cfg``, ``train_cfg`` given), or
    with ``resume`` continue the run there from ``last.pt`` (configs read from the
    checkpoint; ``epochs`` may extend it). ``init``: a new run's relation model starts
    from that checkpoint's weights (fine-tuning; checked before the run folder is made).
    Returns the last epoch's log record (rank 0;
    ``{}`` on other ranks or when there was nothing left to do). See the module docstring
    for the run folder.

    The whole loop (set up, resume, epochs of train / validate / checkpoint) reads top
    to bottom in one place; every step is a call into the module that owns it."""
    out = Path(out_dir)
    d = setup_distributed(device)
    run, model_cfg, cfg, ckpt = _start(out, run, model_cfg, train_cfg, resume, epochs)
    if init is not None and resume:
        raise ValueError("--init starts a new run; a resumed run has its own weights")
    init_ckpt = None
    if init is not None:  # refused before the run folder is made
        init_ckpt = load_checkpoint(init, map_location="cpu")
        check_state_dict(init_ckpt["model"], init, model_cfg, finite=False)
    if d.master and not resume:  # a run folder, never an unrelated one
        prepare_folder(out, "--out", RUN_FOLDER_KIND)
    d.barrier()
    if cfg.deterministic:
        torch.use_deterministic_algorithms(True)
    seed_everything(cfg.seed)

    # a prompt table the run built itself lives in the run folder (found again on resume)
    built_table = out / "text_table.npz"
    build_from = run
    if resume and not run.text_table and built_table.is_file():
        build_from = replace(run, text_table=str(built_table))
    rm = build_run_model(build_from, model_cfg, cfg.seed, d.device, out_dir=out,
                         text_table_out=d.master and not resume, announce=d.master)  # fmt: skip
    if init_ckpt is not None:
        init_relation(rm.relation, init_ckpt, Path(init))
        if d.master:
            log.info("relation model initialised from %s", init)
    opt = Optimisation.create(rm.relation, cfg, d.device)
    start_epoch, best = 0, -math.inf
    if ckpt is not None:  # accepted or refused before anything in the run folder changes
        start_epoch, best = restore_training(
            ckpt, out / "last.pt", extractor_fingerprint=rm.extractor_fingerprint,
            relation=rm.relation, optimizer=opt.optimizer, scheduler=opt.scheduler,
            scaler=opt.scaler, rng=False,
        )  # fmt: skip
        if d.master:  # partials of killed saves go; a table built again is kept
            prepare_folder(out, "--out", RUN_FOLDER_KIND, adopt=True)
            save_built_text_table(rm, out)
        d.barrier()
    config = run_config_dict(run, model_cfg, cfg)
    if d.master:
        atomic_write_text(out / "config.json", json.dumps(config, indent=1))
    data = build_sources(run, cfg, rm, d, progress)
    if ckpt is not None:
        restore_rng(ckpt, out / "last.pt")  # after the sources: as the saved run was here
        if d.master:
            log.info("resuming %s from the end of epoch %d", out / "last.pt", start_epoch)
            reconcile_log(out / "metrics.jsonl", start_epoch, ckpt.get("log_record"))
    model = d.wrap(rm.relation)

    record: dict[str, Any] = {}
    for epoch in range(start_epoch, cfg.epochs):
        totals = train_epoch(model, rm, data, opt, run, cfg, d, epoch, progress)

        # validate (all ranks predict their share; rank 0 evaluates)
        metrics, improved, t1 = None, False, time.perf_counter()
        if (epoch + 1) % cfg.eval_every == 0 or epoch + 1 == cfg.epochs:
            metrics, value = validate(
                rm.relation, data.val, data.val_gt, d, task=run.task, metric=cfg.plateau_metric,
                max_clip_frames=cfg.max_clip_frames, autocast=autocast_factory(cfg, d.device),
                progress=progress,
            )  # fmt: skip
            opt.scheduler.step(value)
            improved, best = value > best, max(best, value)
        val_time = time.perf_counter() - t1

        # log and checkpoint (rank 0)
        if d.master:
            lr = opt.optimizer.param_groups[0]["lr"]
            record = epoch_record(epoch, totals, metrics, val_time, best, lr, run, cfg, d)
            log_epoch(record, cfg)
            state = checkpoint_state(
                rm.relation, opt.state(), epoch=epoch + 1, best=best, config=config,
                extractor_fingerprint=rm.extractor_fingerprint, random_init=run.random_init,
                log_record=record,
            )  # fmt: skip
            # best.pt, then last.pt, then the log line: a kill between any two is undone
            # on resume (the epoch re-runs identically; reconcile_log fixes the log).
            if improved:
                atomic_torch_save(state, out / "best.pt")
            atomic_torch_save(state, out / "last.pt")
            append_log(out / "metrics.jsonl", record)
        d.barrier()

    if start_epoch >= cfg.epochs and d.master:
        log.info("%s: already trained for %d epochs; nothing to do", out, start_epoch)
    d.close()
    return record
