"""The small detector, fitted to the synthetic world.

Two stages, both cheap enough for a 2-core CPU:

1. **Calibration** of the random ResNet's frozen batch-norm statistics on synthetic
   frames (every ``FrozenBatchNorm2d`` of the body and of the layer4 box head gets the
   mean / variance of its own input, layer by layer, in one pass). A random ResNet
   with identity batch norms blows activations up by orders of magnitude from block to
   block; calibrated, every layer sees unit-scale inputs and its random filters keep
   the frames' spatial structure (what a detector needs).
2. **Training** end to end from there -- layer2, layer3, the RPN and the layer4 box
   head with its predictor -- on the rendered boxes and classes with torchvision's own
   Faster R-CNN losses, batch norms learning batch statistics meanwhile (frozen again
   afterwards). Heads alone on the calibrated random body do not separate the classes:
   a linear predictor on its layer4 features reaches 56 % held-out box accuracy (person
   56 %), and the detector found the person (IoU >= 0.5) in 3 % of test frames
   (bench/detector_check.py). Trained end to end the RPN learns fast (the person is in
   its top-10 proposals in 88 % of test frames after 200 steps); the box head is the
   slow part (its layer4 runs once per RoI), hence few RoIs per frame, pooled at the
   configured size (tr2-small: 4x4, its project's choice) -- the head trained on 4x4
   pools and run on 7x7 ones found the person in 13 % of test frames, run on 4x4 in 30 %.

The result is an ordinary ``FasterRCNN.state_dict()`` of the configured architecture:
the file format of a user's real detector weights (``--detector-weights``).
"""

from __future__ import annotations

import time

import torch
from torch import nn
from torchvision.models.detection import FasterRCNN
from torchvision.ops.misc import FrozenBatchNorm2d

from tr2_core.pretrain.steps import freeze, take_step
from tr2_core.pretrain.training_frames import PretrainFrames


def _as_float(image: torch.Tensor) -> torch.Tensor:
    return image.float() / 255.0


@torch.no_grad()
def calibrate_batch_norms(module: nn.Module, run: callable) -> int:
    """Set every ``FrozenBatchNorm2d`` under ``module`` to the per-channel mean and
    variance of its input while ``run()`` forwards a batch (weight 1, bias 0: unit
    outputs). A pre-hook fixes each layer before it runs, so later layers see the
    already-calibrated earlier ones. Returns the number of layers set."""
    handles = []

    def hook(bn: FrozenBatchNorm2d, inputs: tuple[torch.Tensor]) -> None:
        x = inputs[0]
        bn.running_mean.copy_(x.mean(dim=(0, 2, 3)))
        bn.running_var.copy_(x.var(dim=(0, 2, 3)) + 1e-3)
        bn.weight.fill_(1.0)
        bn.bias.zero_()

    norms = [m for m in module.modules() if isinstance(m, FrozenBatchNorm2d)]
    for bn in norms:
        handles.append(bn.register_forward_pre_hook(hook))
    try:
        run()
    finally:
        for h in handles:
            h.remove()
    return len(norms)


def calibrate_detector(detector: FasterRCNN, frames: PretrainFrames, count: int = 32) -> None:
    """Calibrate the body on ``count`` frames, then the layer4 box head on RoI-pooled GT
    boxes of the same frames (see the module docstring)."""
    from collections import OrderedDict

    detector.eval()
    device = next(detector.parameters()).device
    step = max(1, len(frames.images) // count)
    rows = list(range(0, len(frames.images), step))[:count]
    images = [_as_float(frames.images[i]).to(device) for i in rows]
    images_t, _ = detector.transform(images)
    calibrate_batch_norms(detector.backbone, lambda: detector.backbone(images_t.tensors))
    with torch.no_grad():
        feats = OrderedDict([("0", detector.backbone(images_t.tensors))])
    scaled = []
    for i, r in enumerate(rows):
        h, w = frames.images[r].shape[-2:]
        nh, nw = images_t.image_sizes[i]
        scale = torch.tensor([nw / w, nh / h, nw / w, nh / h])
        scaled.append((frames.boxes[r] * scale).to(device))
    pooled = detector.roi_heads.box_roi_pool(feats, scaled, images_t.image_sizes)
    calibrate_batch_norms(detector.roi_heads.box_head, lambda: detector.roi_heads.box_head(pooled))


def _flip_frame(image: torch.Tensor, boxes: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Mirror a frame (3, H, W) and its boxes (n, 4) ``x1 y1 x2 y2`` left-right."""
    width = image.shape[-1]
    return image.flip(-1), torch.stack(
        [width - boxes[:, 2], boxes[:, 1], width - boxes[:, 0], boxes[:, 3]], dim=1
    )


def _swap_norms(module: nn.Module, to_batch_norm: bool) -> None:
    """Replace every ``FrozenBatchNorm2d`` under ``module`` by a learning
    ``nn.BatchNorm2d`` with the same statistics and affine (``to_batch_norm``), or back
    (keeping what it learned): training from a random init needs batch statistics,
    while the saved state dict must keep torchvision's frozen layout."""
    old_kind = FrozenBatchNorm2d if to_batch_norm else nn.BatchNorm2d
    for parent in list(module.modules()):
        for name, child in list(parent.named_children()):
            if not isinstance(child, old_kind):
                continue
            count = child.weight.shape[0]
            new = (
                nn.BatchNorm2d(count, eps=child.eps)
                if to_batch_norm
                else FrozenBatchNorm2d(count, eps=child.eps)
            )
            with torch.no_grad():
                for key in ("weight", "bias", "running_mean", "running_var"):
                    getattr(new, key).copy_(getattr(child, key))
            setattr(parent, name, new.to(child.weight.device))


def train_detector(
    detector: FasterRCNN,
    frames: PretrainFrames,
    *,
    steps: int,
    batch: int = 2,
    lr: float = 2e-3,
    rois_per_frame: int = 16,
    max_frames: int = 0,
    trained: tuple[str, ...] = ("backbone.layer2", "backbone.layer3", "roi_heads", "rpn"),
    rpn_proposals: tuple[int, int] = (600, 300),
    seed: int = 0,
) -> list[float]:
    """Calibrate (see the module docstring), then train the parameters under the
    ``trained`` name prefixes end to end, on the detector's device, with torchvision's own
    Faster R-CNN losses (RPN objectness and boxes, Fast R-CNN classes and boxes) for
    ``steps`` AdamW steps of ``batch`` frames, randomly mirrored, drawn from the frames
    with boxes (at most ``max_frames`` of them, an even stride; 0: all). The learning
    rate warms up over the first tenth of the steps and decays to zero (one cycle).

    ``rois_per_frame`` sampled proposals (half of them positives when there are
    enough) go through the layer4 box head per frame instead of torchvision's 512:
    the head runs once per RoI and dominates the step's cost on a CPU. They are pooled
    at the configured RoIAlign size, the one SGDet uses: a head trained on smaller
    pools and run on the configured ones loses the person (bench/detector_check.py).
    The RPN keeps ``rpn_proposals`` = (before, after NMS) proposals per frame while it
    trains (torchvision's 2,000 / 2,000 spend 7 % of a step in NMS for RoIs nobody
    samples). Leaves the detector frozen, in eval mode, with its sampler and RPN as they
    were.

    Returns:
        the summed loss of every step.
    """
    calibrate_detector(detector, frames)
    device = next(detector.parameters()).device
    gen = torch.Generator().manual_seed(seed)
    rows = [i for i, b in enumerate(frames.boxes) if b.shape[0]]
    if max_frames > 0:
        rows = rows[:: max(1, len(rows) // max_frames)][:max_frames]
    parts = [m for n, m in detector.named_modules() if n in trained]
    for part in parts:
        _swap_norms(part, to_batch_norm=True)
    params = [p for n, p in detector.named_parameters() if n.startswith(trained)]
    for p in params:
        p.requires_grad_(True)
    # fused: one kernel for all parameters (a third of the optimizer's time on a CPU)
    optimizer = torch.optim.AdamW(params, lr=lr, weight_decay=1e-4, fused=True)
    schedule = torch.optim.lr_scheduler.OneCycleLR(
        optimizer, max_lr=lr, total_steps=max(steps, 1), pct_start=0.1
    )
    sampler = detector.roi_heads.fg_bg_sampler
    saved = sampler.batch_size_per_image, sampler.positive_fraction
    sampler.batch_size_per_image, sampler.positive_fraction = rois_per_frame, 0.5
    rpn = detector.rpn
    saved_rpn = rpn._pre_nms_top_n["training"], rpn._post_nms_top_n["training"]
    rpn._pre_nms_top_n["training"], rpn._post_nms_top_n["training"] = rpn_proposals
    losses: list[float] = []
    detector.train()
    t0 = time.perf_counter()
    try:
        for step in range(steps):
            images, targets = [], []
            for i in torch.randint(len(rows), (batch,), generator=gen).tolist():
                image, boxes = _as_float(frames.images[rows[i]]), frames.boxes[rows[i]]
                if bool(torch.rand((), generator=gen) < 0.5):
                    image, boxes = _flip_frame(image, boxes)
                images.append(image.to(device))
                labels = frames.labels[rows[i]].to(device)
                targets.append({"boxes": boxes.to(device), "labels": labels})
            loss = sum(detector(images, targets).values())
            take_step(optimizer, loss, losses, "detector", step, steps, t0)
            schedule.step()
    finally:
        sampler.batch_size_per_image, sampler.positive_fraction = saved
        rpn._pre_nms_top_n["training"], rpn._post_nms_top_n["training"] = saved_rpn
        for part in parts:
            _swap_norms(part, to_batch_norm=False)
        freeze(detector)
    return losses
