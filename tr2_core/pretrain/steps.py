"""What the detector's and the CLIP's pretraining loops share: one logged optimizer step
and freezing the trained module."""

from __future__ import annotations

import logging
import time

import torch
from torch import nn

log = logging.getLogger(__name__)


def take_step(
    optimizer: torch.optim.Optimizer,
    loss: torch.Tensor,
    losses: list[float],
    what: str,
    step: int,
    steps: int,
    started: float,
) -> None:
    """Backpropagate the scalar ``loss``, step ``optimizer``, append the loss to
    ``losses`` and log it every 50 steps and at the last (``started``: the loop's
    ``time.perf_counter()``)."""
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    optimizer.step()
    losses.append(float(loss.detach()))
    if step % 50 == 0 or step == steps - 1:
        elapsed = time.perf_counter() - started
        log.info("%s step %d/%d loss %.4f (%.0f s)", what, step + 1, steps, losses[-1], elapsed)


def freeze(module: nn.Module) -> None:
    """Eval mode, no gradients: the module is a frozen part from now on."""
    module.eval()
    for p in module.parameters():
        p.requires_grad_(False)
