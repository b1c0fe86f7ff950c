"""The small CLIP, fitted to the synthetic world: both towers trained so that a
union crop's image embedding carries the relations that hold in it and scores high
against their prompts ("a photo of a person sitting on a bed") and low against the
others (:func:`train_clip` says why an auxiliary relation probe trains alongside).

The contrastive loss is a sigmoid one (per image-prompt pair a binary term, as in
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

from tr2_core.models.guidance import prompt_grid
from tr2_core.models.model_config import ModelConfig
from tr2_core.models.pair_features import UnionFeatureEncoder, stack_frames
from tr2_core.models.pairs import union_boxes
from tr2_core.pretrain.steps import freeze, take_step
from tr2_core.pretrain.training_frames import PretrainFrames


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
    text_every: int = 4,
    lr: float = 2e-3,
    seed: int = 0,
) -> list[float]:
    """Train ``clip_model`` (open_clip) on its device for ``steps`` steps of ``batch``
    random pairs.

    Every step: the auxiliary relation probe's loss (a linear layer over the normalised
    image embedding plus an object-class embedding, multi-label BCE over the 26
    predicates; discarded afterwards). Every ``text_every``-th step also the sigmoid
    contrastive loss of both towers, on pairs of ``classes_per_step`` random object
    classes (drawn in proportion to their pairs). Why both: the contrastive loss alone
    costs a text-tower pass per step and, at a CPU budget, left the image embedding
    close to the class prior (held-out contacting top-1 0.72 against 0.70); the probe
    makes the image tower learn the relations in a few hundred cheap steps (0.79-0.88,
    see docs/faithfulness.md), the contrastive steps keep the prompts' text embeddings
    (the guidance table) aligned with it. Leaves the model frozen in eval mode.

    Returns:
        the loss of every step.
    """
    import open_clip

    device = next(clip_model.parameters()).device
    encoder = UnionFeatureEncoder(clip_model, config.clip)
    crops = union_crops(encoder, frames)  # on the CPU: a batch moves to the device per step
    tokenizer = open_clip.get_tokenizer(config.clip.model_name)
    grid = prompt_grid(config.guidance)  # (37, 26)
    tokens = tokenizer([str(p) for p in grid.reshape(-1)]).view(grid.shape[0], grid.shape[1], -1)
    tokens = tokens.to(device)
    for p in clip_model.parameters():
        p.requires_grad_(True)
    dim = int(clip_model.visual.output_dim)
    probe = nn.Linear(dim, grid.shape[1]).to(device)
    class_embedding = nn.Embedding(grid.shape[0], dim).to(device)
    scale = nn.Parameter(torch.tensor(2.3, device=device))  # log(10), SigLIP's start
    bias = nn.Parameter(torch.tensor(-2.0, device=device))
    trained = [*clip_model.parameters(), *probe.parameters(), *class_embedding.parameters()]
    # fused: one kernel for all parameters (a sixth of a step's time on a CPU otherwise)
    optimizer = torch.optim.AdamW([*trained, scale, bias], lr=lr, weight_decay=1e-4, fused=True)
    gen = torch.Generator().manual_seed(seed)
    losses: list[float] = []
    clip_model.train()
    t0 = time.perf_counter()
    for step in range(steps):
        contrastive = step % max(1, text_every) == 0
        if contrastive:
            pick = _pairs_of_few_classes(frames.pair_class, batch, classes_per_step, gen)
        else:
            pick = torch.randint(frames.pair_class.shape[0], (batch,), generator=gen)
        pair_class = frames.pair_class[pick].to(device)
        image = F.normalize(clip_model.encode_image(crops[pick].to(device)), dim=-1)  # (B, D)
        target = frames.pair_predicates[pick].to(device)  # (B, 26)
        # x8: unit-norm embeddings give the linear probe too small logits to start with
        probe_logits = probe(image * 8.0 + class_embedding(pair_class))
        loss = F.binary_cross_entropy_with_logits(probe_logits, target)
        if contrastive:
            classes, inverse = torch.unique(pair_class, return_inverse=True)
            text = clip_model.encode_text(tokens[classes].flatten(0, 1))
            text = F.normalize(text, dim=-1).view(classes.shape[0], grid.shape[1], -1)
            logits = torch.einsum("bd,bpd->bp", image, text[inverse]) * scale.exp() + bias
            loss = loss + F.binary_cross_entropy_with_logits(logits, target)
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
