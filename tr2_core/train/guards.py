"""Non-finite losses caught where they arise, without a device sync per step.

Each step's loss finiteness is recorded on the device (one tiny kernel, no sync);
:meth:`NonFiniteGuard.check` looks at the record at the loop's existing sync points
(every few steps and at the end of the epoch) and raises :class:`NonFiniteLossError`
naming the first bad step and its video. The loop raises before it writes a
checkpoint, so ``last.pt`` / ``best.pt`` stay those of the last good epoch.
"""

from __future__ import annotations

import torch

from tr2_core.errors import Tr2Error
from tr2_core.train.distributed import Dist, reduce_sums


class NonFiniteLossError(Tr2Error):
    """Training produced a NaN or infinite loss; the last good checkpoint is kept."""


class NonFiniteGuard:
    """Record per-step loss finiteness on the device; raise on :meth:`check`.

    Args:
        epoch: 0-based epoch (reported 1-based).
        rank: this process's rank (reported when > 0 processes disagree).
    """

    def __init__(self, epoch: int, rank: int = 0) -> None:
        self.epoch = epoch
        self.rank = rank
        self._flags: list[torch.Tensor] = []  # () bool per unchecked step, on device
        self._videos: list[tuple[int, str]] = []  # (step, video) of unchecked steps

    def record(
        self, step: int, video: str, loss: torch.Tensor, terms: dict[str, torch.Tensor]
    ) -> None:
        """Remember whether ``loss`` (and each term) is finite at ``step`` (no sync)."""
        finite = torch.isfinite(loss.detach()).all()
        for value in terms.values():
            finite = finite & torch.isfinite(value.detach()).all()
        self._flags.append(finite)
        self._videos.append((step, video))

    def bad_step(self) -> tuple[int, str] | None:
        """(step, video) of the first non-finite step since the last check, or None;
        one device sync; clears the record."""
        if not self._flags:
            return None
        flags = torch.stack(self._flags).cpu()
        steps, self._flags, self._videos = self._videos, [], []
        if bool(flags.all()):
            return None
        return steps[int((~flags).nonzero()[0])]

    def check(self, d: Dist | None = None) -> None:
        """Raise :class:`NonFiniteLossError` if a recorded step was non-finite. Under DDP
        (``d`` enabled) the ranks agree by an all-reduce, so every rank stops together
        (call on all ranks at the same steps).
        """
        found = self.bad_step()
        others = False
        if d is not None and d.enabled:
            others = reduce_sums({"bad": float(found is not None)}, d)["bad"] > 0
        if found is not None:
            step, video = found
            raise NonFiniteLossError(
                f"non-finite loss at epoch {self.epoch + 1}, step {step} (video {video}, rank "
                f"{self.rank}); training stopped, the last good checkpoint is kept"
            )
        if others:
            raise NonFiniteLossError(
                f"non-finite loss on another rank in epoch {self.epoch + 1}; training stopped, "
                "the last good checkpoint is kept"
            )
