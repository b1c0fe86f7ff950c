"""Distributed helpers: this process's place in a (possibly single-process) run and the
few collectives the loop needs. Everything is a no-op in a plain one-process run.

Under ``torchrun`` each rank trains on its share of the videos (and fills the feature
cache for its share); gradients are all-reduced by DistributedDataParallel, validation
predictions are gathered on rank 0, which evaluates, logs and saves.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field

import torch
import torch.distributed as dist
from torch.nn.parallel import DistributedDataParallel
from tqdm import tqdm

from tr2_core.progress import bar_disabled
from tr2_core.run import resolve_device
from tr2_core.train.predict import (
    concat_predictions,
    predictions_from_bytes,
    predictions_to_bytes,
)
from tr2_core.train.source import ClipSource
from tr2_core.types import Predictions

log = logging.getLogger("tr2.train")


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

    def close(self) -> None:
        """End the process group (when there is one)."""
        if self.enabled and dist.is_initialized():
            dist.destroy_process_group()

    def wrap(self, module: torch.nn.Module) -> torch.nn.Module:
        """``module`` under DistributedDataParallel when there are several ranks."""
        if not self.enabled:
            return module
        return DistributedDataParallel(
            module,
            device_ids=[self.device.index] if self.device.type == "cuda" else None,
            find_unused_parameters=True,  # e.g. the object classifier in PredCls
        )

    @property
    def comm_device(self) -> torch.device:
        """Where collective buffers live: the GPU under NCCL, else the CPU."""
        return self.device if dist.get_backend() == "nccl" else torch.device("cpu")


def setup_distributed(device: str = "auto") -> Dist:
    """Read torchrun's environment (``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK``) and start the
    process group (NCCL on CUDA, gloo on CPU); a plain ``tr2 train`` is rank 0 of 1."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    local = int(os.environ.get("LOCAL_RANK", "0"))
    dev = resolve_device(device, index=local if world > 1 else None)
    if dev.type == "cuda" and device in ("auto", "cuda"):
        torch.cuda.set_device(dev)
    if world > 1 and not dist.is_initialized():
        dist.init_process_group(backend="nccl" if dev.type == "cuda" else "gloo")
    return Dist(rank=rank, world_size=world, local_rank=local, device=dev)


def gather_predictions(preds: Predictions, d: Dist) -> Predictions | None:
    """All ranks' predictions on rank 0 (None elsewhere). Shipped as ``.npz`` bytes in a
    uint8 tensor: no pickle, works with gloo and NCCL."""
    if not d.enabled:
        return preds
    comm_device = d.comm_device
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
    t = torch.tensor([values[n] for n in names], dtype=torch.float64, device=d.comm_device)
    dist.all_reduce(t)
    return dict(zip(names, t.cpu().tolist(), strict=True))


def broadcast_float(value: float, d: Dist) -> float:
    """Rank 0's ``value`` on every rank."""
    if not d.enabled:
        return value
    t = torch.tensor([value], dtype=torch.float64, device=d.comm_device)
    dist.broadcast(t, src=0)
    return float(t.item())


def fill_cache(source: ClipSource, d: Dist, desc: str, progress: bool = True) -> None:
    """Compute the features of every uncached video (each rank a share), then wait."""
    if source.cache is None:
        return
    todo = [i for i in range(len(source)) if not source.cache.has(source.video(i))]
    mine = todo[d.rank :: d.world_size]
    if mine:
        log.info("feature cache %s: computing %d of %d videos", source.cache.dir, len(todo),
                 len(source))  # fmt: skip
    shown = bool(progress and d.master and mine)
    for i in tqdm(mine, desc=desc, unit="video", disable=bar_disabled(shown)):
        source.fill_cache(i)
    d.barrier()
