"""The training loop: one loop for CPU, CUDA, AMP and DistributedDataParallel.

Run by ``tr2 train`` (one process) or ``torchrun --nproc_per_node N tr2 train ...``
(DDP: each rank trains on its share of the videos, gradients are all-reduced, validation
predictions are gathered on rank 0, which evaluates, logs and saves).

Per epoch: train over the videos (one video -- or a window of at most
``max_clip_frames`` frames -- per step), evaluate on the validation split with the
project's evaluator, step reduce-on-plateau on the validation metric, append one line to
``metrics.jsonl``, write ``last.pt`` (and ``best.pt`` when the metric improved)
atomically. A killed run resumed with ``--resume`` continues from the last finished
epoch, bit-for-bit on CPU.

Run folder::

    RUN_DIR/last.pt, best.pt     checkpoints (see checkpoint.py)
    RUN_DIR/metrics.jsonl        one JSON record per finished epoch
    RUN_DIR/config.json          the run configuration (also inside every checkpoint)
    RUN_DIR/text_table.npz       CLIP prompt embeddings, when built by the run
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import os
import random
import time
from collections import defaultdict
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
import torch.distributed as dist
from torch.nn.parallel import DistributedDataParallel
from tqdm import tqdm

from tr2_core.config import from_dict, to_dict
from tr2_core.errors import ConfigError, WeightsError
from tr2_core.train.checkpoint import (
    atomic_torch_save,
    get_rng_state,
    load_checkpoint,
    set_rng_state,
)
from tr2_core.train.config import TrainConfig
from tr2_core.train.dataset import ActionGenomeVideos, frame_window, shard_indices
from tr2_core.train.feature_cache import FeatureCache, annotation_stats, module_fingerprint
from tr2_core.train.predict import (
    concat_predictions,
    predict,
    predictions_from_bytes,
    predictions_to_bytes,
)
from tr2_core.train.source import ClipSource, move_features, move_targets
from tr2_core.types import GroundTruth, Predictions

log = logging.getLogger("tr2.train")

TaskMode = Literal["predcls", "sgcls", "sgdet"]

RANDOM_INIT_BANNER = (
    "\n" + "!" * 78 + "\n"
    "!! RANDOM INIT: the frozen detector and CLIP are RANDOMLY INITIALISED.\n"
    "!! Fine for tests and the synthetic demo; numbers from this run are NOT TR² results.\n"
    + "!"
    * 78
)


@dataclass
class RunSpec:
    """What a run is built from besides the model and training configs; saved (as a plain
    dict, with both configs) in every checkpoint."""

    data: str
    """AG root folder (``annotations/``, ``frames/``)."""
    model: str = "tr2"
    """Model config name or path the run started from (the resolved config is saved)."""
    task: TaskMode = "predcls"
    random_init: bool = False
    clip_weights: str | None = None
    detector_weights: str | None = None
    text_table: str | None = None
    glove: str | None = None
    """GloVe text file (e.g. glove.6B.200d.txt) initialising the class embeddings."""
    filter_small_boxes: bool | None = None
    """Drop objects with a short edge <= 16 px; default: on for SGCls / SGDet, as the
    baselines."""
    cache_dir: str | None = None
    """Feature-cache root; default ``$TR2_CACHE_DIR/features`` or ``~/.cache/tr2/features``."""

    @property
    def small_boxes_filtered(self) -> bool:
        if self.filter_small_boxes is None:
            return self.task != "predcls"
        return self.filter_small_boxes


def default_feature_cache_dir() -> Path:
    root = os.environ.get("TR2_CACHE_DIR")
    return (Path(root).expanduser() if root else Path.home() / ".cache" / "tr2") / "features"


# --------------------------------------------------------------------------- distributed
@dataclass
class Dist:
    """This process's place in a (possibly single-process) run."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    device: torch.device = field(default_factory=lambda: torch.device("cpu"))

    @property
    def enabled(self) -> bool:
        return self.world_size > 1

    @property
    def master(self) -> bool:
        return self.rank == 0

    def barrier(self) -> None:
        if self.enabled:
            dist.barrier()


def setup_distributed(device: str = "auto") -> Dist:
    """Read torchrun's environment (``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK``) and start the
    process group (NCCL on CUDA, gloo on CPU); a plain ``tr2 train`` is rank 0 of 1."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    local = int(os.environ.get("LOCAL_RANK", "0"))
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise ConfigError(f"--device {device}: CUDA is not available on this machine")
    if device == "cuda":
        dev = torch.device("cuda", local if world > 1 else torch.cuda.current_device())
        torch.cuda.set_device(dev)
    else:
        dev = torch.device(device)
    if world > 1 and not dist.is_initialized():
        dist.init_process_group(backend="nccl" if dev.type == "cuda" else "gloo")
    return Dist(rank=rank, world_size=world, local_rank=local, device=dev)


def gather_predictions(preds: Predictions, d: Dist) -> Predictions | None:
    """All ranks' predictions on rank 0 (None elsewhere). Shipped as ``.npz`` bytes in a
    uint8 tensor: no pickle, works with gloo and NCCL."""
    if not d.enabled:
        return preds
    comm_device = d.device if dist.get_backend() == "nccl" else torch.device("cpu")
    data = torch.frombuffer(bytearray(predictions_to_bytes(preds)), dtype=torch.uint8)
    size = torch.tensor([data.numel()], device=comm_device)
    sizes = [torch.zeros_like(size) for _ in range(d.world_size)]
    dist.all_gather(sizes, size)
    longest = int(max(s.item() for s in sizes))
    padded = torch.zeros(longest, dtype=torch.uint8, device=comm_device)
    padded[: data.numel()] = data.to(comm_device)
    bufs = [torch.zeros_like(padded) for _ in range(d.world_size)]
    dist.all_gather(bufs, padded)
    if not d.master:
        return None
    parts = [
        predictions_from_bytes(b[: int(s.item())].cpu().numpy().tobytes())
        for b, s in zip(bufs, sizes, strict=True)
    ]
    return concat_predictions(parts)


def reduce_sums(values: dict[str, float], d: Dist) -> dict[str, float]:
    """Sum of each named value over all ranks (every rank gets the result)."""
    if not d.enabled:
        return dict(values)
    names = sorted(values)
    comm_device = d.device if dist.get_backend() == "nccl" else torch.device("cpu")
    t = torch.tensor([values[n] for n in names], dtype=torch.float64, device=comm_device)
    dist.all_reduce(t)
    return dict(zip(names, t.cpu().tolist(), strict=True))


def broadcast_float(value: float, d: Dist) -> float:
    if not d.enabled:
        return value
    comm_device = d.device if dist.get_backend() == "nccl" else torch.device("cpu")
    t = torch.tensor([value], dtype=torch.float64, device=comm_device)
    dist.broadcast(t, src=0)
    return float(t.item())


# --------------------------------------------------------------------------- helpers
def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)  # noqa: NPY002 (third-party code may use it)
    torch.manual_seed(seed)


def autocast_factory(cfg: TrainConfig, device: torch.device) -> Callable[[], Any]:
    """``torch.autocast`` on CUDA when ``amp`` is on; a no-op elsewhere (CPU: float32)."""
    if not (cfg.amp and device.type == "cuda"):
        return contextlib.nullcontext
    dtype = torch.bfloat16 if cfg.amp_dtype == "bfloat16" else torch.float16
    return lambda: torch.autocast(device_type="cuda", dtype=dtype)


def metric_value(metrics: dict, key: str) -> float:
    """``"with/R@20"`` -> ``metrics["with"]["R@20"]``."""
    node: Any = metrics
    for part in key.split("/"):
        if not isinstance(node, dict) or part not in node:
            raise ConfigError(f"plateau_metric {key!r}: no such value in the evaluator's result")
        node = node[part]
    return float(node)


def gt_first_videos(gt: GroundTruth, num_videos: int) -> GroundTruth:
    """The ground truth of the first ``num_videos`` videos (a CSR prefix)."""
    if num_videos >= gt.num_videos:
        return gt
    f = int(gt.video_start[num_videos])
    b = int(gt.box_start[f])
    t = gt.triplet_frame < f
    return GroundTruth(
        videos=gt.videos[:num_videos],
        video_start=gt.video_start[: num_videos + 1],
        frame_keys=gt.frame_keys[:f],
        frame_video=gt.frame_video[:f],
        frame_size=gt.frame_size[:f],
        box_start=gt.box_start[: f + 1],
        box_frame=gt.box_frame[:b],
        boxes=gt.boxes[:b],
        box_labels=gt.box_labels[:b],
        triplet_frame=gt.triplet_frame[t],
        triplet_subject=gt.triplet_subject[t],
        triplet_object=gt.triplet_object[t],
        triplet_predicate=gt.triplet_predicate[t],
    )


def run_config_dict(run: RunSpec, model_cfg: Any, train_cfg: TrainConfig) -> dict[str, Any]:
    """The plain-dict configuration stored in checkpoints and ``config.json``."""
    return {"run": asdict(run), "model": to_dict(model_cfg), "train": to_dict(train_cfg)}


def configs_from_dict(config: dict[str, Any]) -> tuple[RunSpec, Any, TrainConfig]:
    """Inverse of :func:`run_config_dict` (typed, validated)."""
    from tr2_core.models import ModelConfig

    try:
        return (
            from_dict(RunSpec, config["run"], "checkpoint config.run"),
            from_dict(ModelConfig, config["model"], "checkpoint config.model"),
            from_dict(TrainConfig, config["train"], "checkpoint config.train"),
        )
    except KeyError as e:
        raise WeightsError(f"checkpoint config has no {e} section") from None


# --------------------------------------------------------------------------- model parts
@dataclass
class Parts:
    """Everything built from a run configuration."""

    extractor: Any
    relation: torch.nn.Module
    text_table: torch.Tensor | None
    extractor_fingerprint: str


def needs_text_table(model_cfg: Any) -> bool:
    return model_cfg.guidance.mode in ("full", "no_tdiff") or model_cfg.heads.uses_text


def build_extractor(
    run: RunSpec, model_cfg: Any, seed: int, device: torch.device
) -> tuple[Any, str]:
    """The frozen extractor and the fingerprint of its weights. Random-init weights are
    drawn after ``torch.manual_seed(seed)``, so a run config always rebuilds the same ones
    (on the same torch version)."""
    from tr2_core.models import create_extractor

    torch.manual_seed(seed)
    extractor = create_extractor(
        model_cfg,
        random_init=run.random_init,
        detector_weights=run.detector_weights,
        clip_weights=run.clip_weights,
        device=device,
    )
    return extractor, module_fingerprint(extractor)


def build_parts(
    run: RunSpec,
    model_cfg: Any,
    seed: int,
    device: torch.device,
    *,
    training: bool = True,
    out_dir: Path | None = None,
    text_table_out: bool = False,
) -> Parts:
    """Extractor (:func:`build_extractor`), text table and relation model (seeded init).

    Training with guidance or text heads needs the prompt table: loaded from
    ``run.text_table``, or built from the extractor's own CLIP text tower and (with
    ``text_table_out``) written to ``out_dir/text_table.npz``. For inference
    (``training=False``) no table is loaded: text heads get theirs from the checkpoint.
    """
    from tr2_core.models import create_relation_model, load_text_table

    extractor, fingerprint = build_extractor(run, model_cfg, seed, device)
    table = None
    if training and needs_text_table(model_cfg):
        if run.text_table:
            table = load_text_table(run.text_table, expected_dim=model_cfg.representation.union_dim)
        else:
            table = build_run_text_table(extractor, model_cfg, run)
            if text_table_out and out_dir is not None:
                from tr2_core.models import save_text_table

                path = out_dir / "text_table.npz"
                save_text_table(path, table)
                log.info("built the CLIP prompt table from the extractor's CLIP: %s", path)
    torch.manual_seed(seed + 1)
    relation = create_relation_model(model_cfg, text_table=table, device=device)
    if training:
        from tr2_core.models.glove import init_class_embeddings

        rep = relation.representation
        init_class_embeddings([rep.subject_embed, rep.object_embed], run.glove)
    return Parts(
        extractor=extractor,
        relation=relation,
        text_table=None if table is None else table.table.to(device),
        extractor_fingerprint=fingerprint,
    )


def load_trained(
    checkpoint: str | Path, device: torch.device, **run_overrides: Any
) -> tuple[RunSpec, Any, TrainConfig, Parts, dict[str, Any]]:
    """Rebuild a trained model from a checkpoint: configs from the checkpoint (``run``
    fields may be overridden, e.g. ``data`` or weight paths), extractor checked against
    the fingerprint the run recorded, relation weights loaded strictly.

    Returns:
        (run, model_cfg, train_cfg, parts, checkpoint dict).
    """
    ckpt = load_checkpoint(checkpoint, map_location="cpu")
    run, model_cfg, train_cfg = configs_from_dict(ckpt["config"])
    for key, value in run_overrides.items():
        if value is not None:
            setattr(run, key, value)
    parts = build_parts(run, model_cfg, train_cfg.seed, device, training=False)
    recorded = ckpt.get("extractor_fingerprint")
    if recorded is not None and recorded != parts.extractor_fingerprint:
        raise WeightsError(
            f"{checkpoint}: the frozen detector/CLIP built now (weights "
            f"{run.detector_weights or '-'} / {run.clip_weights or '-'}"
            f"{', random init' if run.random_init else ''}) differ from the ones the model "
            "was trained with; pass the same --detector-weights / --clip-weights"
        )
    try:
        parts.relation.load_state_dict(ckpt["model"])
    except RuntimeError as e:
        raise WeightsError(f"{checkpoint}: relation weights do not fit the config ({e})") from None
    parts.relation.eval()
    return run, model_cfg, train_cfg, parts, ckpt


def build_run_text_table(extractor: Any, model_cfg: Any, run: RunSpec) -> Any:
    """The (37, 26, D) prompt table from the extractor's own (frozen) CLIP text tower."""
    import open_clip

    from tr2_core.models import build_text_table

    return build_text_table(
        extractor.union.clip,
        open_clip.get_tokenizer(model_cfg.clip.model_name),
        model_cfg.guidance,
        clip_name=model_cfg.clip.model_name,
        clip_weights="random-init" if run.random_init else (run.clip_weights or ""),
        progress=False,
    )


def make_source(
    run: RunSpec,
    train_cfg: TrainConfig,
    split_name: str,
    parts: Parts,
    device: torch.device,
    *,
    training: bool,
    max_videos: int,
    use_cache: bool,
) -> tuple[ClipSource, Any]:
    """Load a split and wrap it as a :class:`ClipSource` (feature cache per config)."""
    from tr2_core.data.action_genome import load_split

    split = load_split(
        run.data, split_name, filter_small_boxes=run.small_boxes_filtered, show_progress=False
    )
    videos = ActionGenomeVideos(split, max_videos=max_videos)
    sgdet_assign = run.task == "sgdet" and training
    cache = None
    if use_cache:
        dtype = torch.float16 if train_cfg.cache_dtype == "float16" else torch.float32
        parts_key = {
            "extractor_config": {
                "detector": to_dict(parts.extractor.config.detector),
                "clip": to_dict(parts.extractor.config.clip),
            },
            "extractor_weights": parts.extractor_fingerprint,
            "annotations": annotation_stats(run.data),
            "data": str(Path(run.data).resolve()),
            "split": split_name,
            # PredCls and SGCls extract the same features (GT boxes): they share entries
            "entities": ("detected+gt" if sgdet_assign else "detected")
            if run.task == "sgdet"
            else "annotated",
            "filter_small_boxes": run.small_boxes_filtered,
        }
        root = Path(run.cache_dir) if run.cache_dir else default_feature_cache_dir()
        cache = FeatureCache(root, parts_key, dtype=dtype)
    source = ClipSource(
        videos,
        parts.extractor,
        run.task,
        sgdet_assign=sgdet_assign,
        cache=cache,
        autocast=autocast_factory(train_cfg, device),
    )
    return source, split


def fill_cache(source: ClipSource, d: Dist, desc: str, progress: bool = True) -> None:
    """Compute the features of every uncached video (each rank a share), then wait."""
    if source.cache is None:
        return
    todo = [i for i in range(len(source)) if not source.cache.has(source.video(i))]
    mine = todo[d.rank :: d.world_size]
    if mine:
        log.info("feature cache %s: computing %d of %d videos", source.cache.dir, len(todo),
                 len(source))  # fmt: skip
    for i in tqdm(mine, desc=desc, unit="video", disable=not (progress and d.master and mine)):
        source.fill_cache(i)
    d.barrier()


def class_alpha(split: Any) -> dict[str, torch.Tensor]:
    """Per-class focal weights from the training labels' frequencies (authors' formula)."""
    from tr2_core.models import alpha_from_counts

    return {
        "spatial": alpha_from_counts(np.asarray(split.pair_spatial).sum(axis=0)),
        "contacting": alpha_from_counts(np.asarray(split.pair_contacting).sum(axis=0)),
    }


# --------------------------------------------------------------------------- the loop
def train(
    out_dir: str | Path,
    run: RunSpec | None = None,
    model_cfg: Any = None,
    train_cfg: TrainConfig | None = None,
    *,
    resume: bool = False,
    epochs: int | None = None,
    device: str = "auto",
    progress: bool = True,
) -> dict[str, Any]:
    """Train a new run into ``out_dir`` (``run``, ``model_cfg``, ``train_cfg`` given), or
    with ``resume`` continue the run there from ``last.pt`` (configs read from the
    checkpoint; ``epochs`` may extend it). Returns the last epoch's log record (rank 0;
    ``{}`` on other ranks or when there was nothing left to do). See the module docstring
    for the run folder."""
    from tr2_core.evaluation.recall import evaluate
    from tr2_core.models import compute_losses

    out = Path(out_dir)
    d = setup_distributed(device)
    ckpt = None
    if resume:
        ckpt = load_checkpoint(out / "last.pt", map_location="cpu")
        run, model_cfg, train_cfg = configs_from_dict(ckpt["config"])
    elif run is None or model_cfg is None or train_cfg is None:
        raise ValueError("a new run needs run, model_cfg and train_cfg")
    if epochs is not None:
        train_cfg.epochs = epochs
        train_cfg.validate()
    if d.master:
        out.mkdir(parents=True, exist_ok=True)
    d.barrier()
    if train_cfg.deterministic:
        torch.use_deterministic_algorithms(True)
    seed_everything(train_cfg.seed)
    if run.random_init and d.master:
        log.warning(RANDOM_INIT_BANNER)

    # a prompt table the run built itself lives in the run folder (found again on resume)
    built_table = out / "text_table.npz"
    build_from = run
    if resume and not run.text_table and built_table.is_file():
        build_from = replace(run, text_table=str(built_table))
    parts = build_parts(build_from, model_cfg, train_cfg.seed, d.device, out_dir=out,
                        text_table_out=d.master)  # fmt: skip
    config = run_config_dict(run, model_cfg, train_cfg)
    if d.master:
        (out / "config.json").write_text(json.dumps(config, indent=1))

    use_cache = train_cfg.feature_cache
    train_src, train_split = make_source(
        run, train_cfg, train_cfg.train_split, parts, d.device,
        training=True, max_videos=train_cfg.max_train_videos, use_cache=use_cache,
    )  # fmt: skip
    val_src, val_split = make_source(
        run, train_cfg, train_cfg.val_split, parts, d.device,
        training=False, max_videos=train_cfg.max_val_videos, use_cache=use_cache,
    )  # fmt: skip
    val_gt = gt_first_videos(val_split.gt, len(val_src))
    alpha = {k: v.to(d.device) for k, v in class_alpha(train_split).items()}
    fill_cache(train_src, d, "cache train features", progress)
    fill_cache(val_src, d, "cache val features", progress)

    relation = parts.relation
    params = [p for p in relation.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(
        params,
        lr=train_cfg.lr,
        weight_decay=train_cfg.weight_decay,
        betas=train_cfg.betas,
        foreach=True,  # one kernel per op over all parameters (CPU default is a Python loop)
    )
    scheduler = torch.optim.lr_scheduler.ReduceLROnPlateau(
        optimizer,
        mode="max",
        factor=train_cfg.plateau_factor,
        patience=train_cfg.plateau_patience,
        threshold=train_cfg.plateau_threshold,
        threshold_mode="abs",
        min_lr=train_cfg.min_lr,
    )
    autocast = autocast_factory(train_cfg, d.device)
    scaler = torch.amp.GradScaler(
        "cuda",
        enabled=train_cfg.amp and d.device.type == "cuda" and train_cfg.amp_dtype == "float16",
    )
    start_epoch, best = 0, -math.inf
    if ckpt is not None:
        if ckpt.get("extractor_fingerprint") != parts.extractor_fingerprint:
            raise WeightsError(
                f"{out / 'last.pt'}: the frozen extractor rebuilt from the saved config has "
                "different weights than the run that wrote the checkpoint (other weight "
                "files or torch version?)"
            )
        relation.load_state_dict(ckpt["model"])
        optimizer.load_state_dict(ckpt["optimizer"])
        scheduler.load_state_dict(ckpt["scheduler"])
        scaler.load_state_dict(ckpt["scaler"])
        start_epoch, best = int(ckpt["epoch"]), float(ckpt["best_metric"])
        set_rng_state(ckpt["rng"])
        if d.master:
            log.info("resuming %s from the end of epoch %d", out / "last.pt", start_epoch)
            _truncate_log(out / "metrics.jsonl", start_epoch)
    model: torch.nn.Module = relation
    if d.enabled:
        model = DistributedDataParallel(
            relation,
            device_ids=[d.device.index] if d.device.type == "cuda" else None,
            find_unused_parameters=True,  # e.g. the object classifier in PredCls
        )

    record: dict[str, Any] = {}
    for epoch in range(start_epoch, train_cfg.epochs):
        # ---- train one epoch
        model.train()
        order = shard_indices(
            len(train_src), d.rank, d.world_size,
            shuffle=train_cfg.shuffle, seed=train_cfg.seed + epoch,
        )  # fmt: skip
        window_rng = np.random.default_rng([train_cfg.seed, epoch, d.rank])
        sums: dict[str, Any] = defaultdict(float)
        frames, steps = 0, 0
        t0, cpu0 = time.perf_counter(), time.process_time()
        bar = tqdm(order, desc=f"epoch {epoch + 1}/{train_cfg.epochs}", unit="video",
                   disable=not (progress and d.master), dynamic_ncols=True)  # fmt: skip
        for index in bar:
            start, stop = frame_window(
                train_src.num_frames(index), train_cfg.max_clip_frames, window_rng
            )
            features, targets = train_src.get(index, start, stop)
            features = move_features(features, d.device)
            targets = move_targets(targets, d.device)
            with autocast():
                output = model(features, targets, mode=run.task)
                losses = compute_losses(output, features, targets, parts.text_table, model_cfg,
                                        class_alpha=alpha, task=run.task)  # fmt: skip
                loss = sum(losses.values())
            optimizer.zero_grad(set_to_none=True)
            scaler.scale(loss).backward()
            if train_cfg.grad_clip > 0:
                scaler.unscale_(optimizer)
                torch.nn.utils.clip_grad_norm_(params, train_cfg.grad_clip)
            scaler.step(optimizer)
            scaler.update()
            for name, value in {**losses, "loss": loss}.items():  # on device: no sync here
                sums[name] = sums[name] + value.detach().float()
            frames += len(features.frame_keys)
            steps += 1
            if steps % 10 == 1 or steps == len(order):  # one device sync per 10 steps
                elapsed = time.perf_counter() - t0
                bar.set_postfix(loss=f"{float(sums['loss']) / steps:.4f}",
                                fps=f"{frames / elapsed:.1f}")  # fmt: skip
        train_time = time.perf_counter() - t0
        train_cpu = time.process_time() - cpu0  # this process's CPU seconds, all threads
        sums_f = {k: float(v) for k, v in sums.items()}
        totals = reduce_sums({**sums_f, "_frames": frames, "_steps": steps}, d)
        n_steps = max(totals.pop("_steps"), 1.0)
        n_frames = totals.pop("_frames")

        # ---- validate (all ranks predict their share; rank 0 evaluates)
        metrics = None
        t1 = time.perf_counter()
        last = epoch + 1 == train_cfg.epochs
        if (epoch + 1) % train_cfg.eval_every == 0 or last:
            val_order = shard_indices(len(val_src), d.rank, d.world_size, shuffle=False,
                                      seed=0, pad=False)  # fmt: skip
            preds = predict(
                relation, val_src, val_order, task=run.task, device=d.device,
                max_clip_frames=train_cfg.max_clip_frames, autocast=autocast,
                progress=progress and d.master, desc="validate",
            )  # fmt: skip
            preds = gather_predictions(preds, d)
            value = math.nan
            if d.master:
                metrics = evaluate(val_gt, preds, task=run.task, breakdowns=False)
                value = metric_value(metrics, train_cfg.plateau_metric)
            value = broadcast_float(value, d)
            scheduler.step(value)
            improved = value > best
            best = max(best, value)
        else:
            improved = False
        val_time = time.perf_counter() - t1

        # ---- log and checkpoint (rank 0)
        if d.master:
            record = {
                "epoch": epoch + 1,
                "lr": optimizer.param_groups[0]["lr"],
                "loss": totals["loss"] / n_steps,
                "losses": {k: v / n_steps for k, v in sorted(totals.items()) if k != "loss"},
                "train_frames": int(n_frames),
                "train_time_s": train_time,
                "train_frames_per_s": n_frames / max(train_time, 1e-9),
                "train_cpu_s": train_cpu,  # rank 0's process CPU time, all threads
                "val_time_s": val_time,
                "val": metrics,
                "plateau_metric": train_cfg.plateau_metric,
                "best_metric": best if math.isfinite(best) else None,
                "task": run.task,
                "random_init": run.random_init,
                "world_size": d.world_size,
                "feature_cache": use_cache,
            }
            with open(out / "metrics.jsonl", "a") as f:
                f.write(json.dumps(record) + "\n")
            shown = (
                "-" if metrics is None else f"{metric_value(metrics, train_cfg.plateau_metric):.4f}"
            )
            log.info(
                "epoch %d/%d  loss %.4f  val %s %s  lr %.2e  %.1f frames/s%s",
                epoch + 1, train_cfg.epochs, record["loss"], train_cfg.plateau_metric, shown,
                record["lr"], record["train_frames_per_s"],
                "  [RANDOM INIT]" if run.random_init else "",
            )  # fmt: skip
            state = {
                "model": relation.state_dict(),
                "optimizer": optimizer.state_dict(),
                "scheduler": scheduler.state_dict(),
                "scaler": scaler.state_dict(),
                "epoch": epoch + 1,
                "best_metric": best,
                "config": config,
                "extractor_fingerprint": parts.extractor_fingerprint,
                "random_init": run.random_init,
                "rng": get_rng_state(),
            }
            atomic_torch_save(state, out / "last.pt")
            if improved:
                atomic_torch_save(state, out / "best.pt")
        d.barrier()

    if start_epoch >= train_cfg.epochs and d.master:
        log.info("%s: already trained for %d epochs; nothing to do", out, start_epoch)
    if d.enabled:
        dist.destroy_process_group()
    return record


def _truncate_log(path: Path, epochs: int) -> None:
    """Keep only records of epochs <= ``epochs`` (a run killed between writing the log
    line and the checkpoint re-runs that epoch)."""
    if not path.is_file():
        return
    lines = [ln for ln in path.read_text().splitlines() if ln.strip()]
    keep = [ln for ln in lines if json.loads(ln).get("epoch", 0) <= epochs]
    if len(keep) != len(lines):
        path.write_text("".join(ln + "\n" for ln in keep))
