"""The small CLIP, fitted to the synthetic world: both towers trained so that a
union crop's image embedding scores high against the prompts of the relations that
hold in it ("a photo of a person sitting on a bed") and low against the others.

The loss is a sigmoid contrastive one (per image-prompt pair a binary term, as in
SigLIP) over the 26 relation prompts of the pair's object class, because several
relations hold at once (multi-label). A pair meets only its own class's prompts, so a
step draws its pairs from a few object classes (``classes_per_step``) and encodes only
their prompts: the text tower, not the crops, is the cost of a step (26 prompts of 77
tokens per class). Both towers learn: the image tower gives the
union features, the text tower the guidance prompts' table. The result is an
ordinary open_clip ``state_dict()`` of the configured architecture: the file format
of a user's real CLIP checkpoint (``--clip-weights``).
"""

from __future__ import annotations

import time

import torch
import torch.nn.functional as F
from torch import nn

from tr2_core.models.config import ModelConfig
from tr2_core.models.detector import union_boxes
from tr2_core.models.guidance import prompt_grid
from tr2_core.models.union import UnionFeatureEncoder, stack_frames
from tr2_core.pretrain.frames import PretrainFrames
from tr2_core.pretrain.steps import freeze, take_step


@torch.no_grad()
def union_crops(encoder: UnionFeatureEncoder, frames: PretrainFrames) -> torch.Tensor:
    """(P, 3, S, S) CLIP-normalised union crops of every pair (cut frame batch by frame
    batch, exactly as the extractor cuts them)."""
    out = []
    rows = torch.arange(len(frames.images))
    union = union_boxes(frames.pair_subject, frames.pair_object)
    for chunk in torch.split(rows, 64):
        stacked = stack_frames([frames.images[int(i)] for i in chunk])
        sel = (frames.pair_frame >= chunk[0]) & (frames.pair_frame <= chunk[-1])
        out.append(encoder.crops(stacked, frames.pair_frame[sel] - chunk[0], union[sel]))
    return torch.cat(out) if out else torch.zeros(0, 3, *encoder.image_size)


def train_clip(
    clip_model: nn.Module,
    frames: PretrainFrames,
    config: ModelConfig,
    *,
    steps: int,
    batch: int = 128,
    classes_per_step: int = 4,
    lr: float = 2e-3,
    seed: int = 0,
) -> list[float]:
    """Train both towers of ``clip_model`` (open_clip) for ``steps`` steps of ``batch``
    random pairs of ``classes_per_step`` random object classes (drawn in proportion to
    their pairs). Leaves it frozen in eval mode.

    Returns:
        the loss of every step.
    """
    import open_clip

    encoder = UnionFeatureEncoder(clip_model, config.clip)
    crops = union_crops(encoder, frames)
    tokenizer = open_clip.get_tokenizer(config.clip.model_name)
    grid = prompt_grid(config.guidance)  # (37, 26)
    tokens = tokenizer([str(p) for p in grid.reshape(-1)]).view(grid.shape[0], grid.shape[1], -1)
    for p in clip_model.parameters():
        p.requires_grad_(True)
    scale = nn.Parameter(torch.tensor(2.3))  # log(10), SigLIP's start
    bias = nn.Parameter(torch.tensor(-2.0))
    optimizer = torch.optim.AdamW([*clip_model.parameters(), scale, bias], lr=lr,
                                  weight_decay=1e-4)  # fmt: skip
    gen = torch.Generator().manual_seed(seed)
    losses: list[float] = []
    clip_model.train()
    t0 = time.perf_counter()
    for step in range(steps):
        pick = _pairs_of_few_classes(frames.pair_class, batch, classes_per_step, gen)
        classes, inverse = torch.unique(frames.pair_class[pick], return_inverse=True)
        image = F.normalize(clip_model.encode_image(crops[pick]), dim=-1)  # (B, D)
        text = clip_model.encode_text(tokens[classes].flatten(0, 1))
        text = F.normalize(text, dim=-1).view(classes.shape[0], grid.shape[1], -1)  # (C, 26, D)
        logits = torch.einsum("bd,bpd->bp", image, text[inverse]) * scale.exp() + bias
        loss = F.binary_cross_entropy_with_logits(logits, frames.pair_predicates[pick])
        take_step(optimizer, loss, losses, "CLIP", step, steps, t0)
    freeze(clip_model)
    return losses


def _pairs_of_few_classes(
    pair_class: torch.Tensor, batch: int, classes: int, gen: torch.Generator
) -> torch.Tensor:
    """(B,) random pair rows, B <= ``batch``, all of at most ``classes`` object classes;
    a class is drawn with the chance that a random pair has it."""
    seeds = pair_class[torch.randint(pair_class.shape[0], (classes,), generator=gen)]
    rows = torch.nonzero(torch.isin(pair_class, seeds)).squeeze(1)
    return rows[torch.randint(rows.shape[0], (min(batch, rows.shape[0]),), generator=gen)]
