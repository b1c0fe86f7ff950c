"""The small detector, fitted to the synthetic world.

Two stages, both cheap enough for a 2-core CPU:

1. **Calibration** of the random ResNet's frozen batch-norm statistics on synthetic
   frames (every ``FrozenBatchNorm2d`` of the body and of the layer4 box head gets the
   mean / variance of its own input, layer by layer, in one pass). A random ResNet
   with identity batch norms blows activations up by orders of magnitude from block to
   block; calibrated, every layer sees unit-scale inputs and its random filters keep
   the frames' spatial structure (what a detector needs).
2. **Training** of what sits on top -- RPN head, layer4 box head, box predictor -- on
   the rendered boxes and classes with torchvision's own Faster R-CNN losses. The
   calibrated C4 body stays as it is: training it costs most of the time and the
   heads alone learn the synthetic shapes.

The result is an ordinary ``FasterRCNN.state_dict()`` of the configured architecture:
the file format of a user's real detector weights (``--detector-weights``).
"""

from __future__ import annotations

import time

import torch
from torch import nn
from torchvision.models.detection import FasterRCNN
from torchvision.ops.misc import FrozenBatchNorm2d

from tr2_core.pretrain.frames import PretrainFrames
from tr2_core.pretrain.steps import freeze, take_step


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
    step = max(1, len(frames.images) // count)
    rows = list(range(0, len(frames.images), step))[:count]
    images = [_as_float(frames.images[i]) for i in rows]
    images_t, _ = detector.transform(images)
    calibrate_batch_norms(detector.backbone, lambda: detector.backbone(images_t.tensors))
    with torch.no_grad():
        feats = OrderedDict([("0", detector.backbone(images_t.tensors))])
    scaled = []
    for i, r in enumerate(rows):
        h, w = frames.images[r].shape[-2:]
        nh, nw = images_t.image_sizes[i]
        scale = torch.tensor([nw / w, nh / h, nw / w, nh / h])
        scaled.append(frames.boxes[r] * scale)
    pooled = detector.roi_heads.box_roi_pool(feats, scaled, images_t.image_sizes)
    calibrate_batch_norms(detector.roi_heads.box_head, lambda: detector.roi_heads.box_head(pooled))


def _sample_boxes(
    gt: torch.Tensor, size: tuple[int, int], count: int, gen: torch.Generator
) -> torch.Tensor:
    """``count`` training boxes of one frame: the GT boxes, jittered copies of them
    (positives and near misses) and random boxes (background); (count', 4)."""
    h, w = size
    jitter = gt.repeat(3, 1)
    wh = (jitter[:, 2:] - jitter[:, :2]).repeat(1, 2)
    jitter = jitter + wh * 0.25 * torch.randn(jitter.shape, generator=gen)
    n_rand = max(0, count - gt.shape[0] - jitter.shape[0])
    xy = torch.rand(n_rand, 2, generator=gen) * torch.tensor([w, h])
    side = torch.rand(n_rand, 2, generator=gen) * torch.tensor([w, h]) * 0.5 + 8
    boxes = torch.cat([gt, jitter, torch.cat([xy, xy + side], 1)])
    boxes[:, 0::2] = boxes[:, 0::2].clamp(0, w - 1)
    boxes[:, 1::2] = boxes[:, 1::2].clamp(0, h - 1)
    boxes[:, 2:] = torch.maximum(boxes[:, 2:], boxes[:, :2] + 4)
    return boxes


def train_detector(
    detector: FasterRCNN,
    frames: PretrainFrames,
    *,
    steps: int,
    batch: int = 4,
    lr: float = 1e-3,
    boxes_per_frame: int = 16,
    max_frames: int = 160,
    seed: int = 0,
) -> list[float]:
    """Calibrate (see the module docstring), then train the RPN head and the box
    predictor for ``steps`` steps each on features computed once: the calibrated C4 maps
    of at most ``max_frames`` frames (RPN: torchvision's objectness and box losses on
    ``batch`` frames a step) and the layer4 box-head features of ``boxes_per_frame``
    sampled boxes per frame (predictor: torchvision's Fast R-CNN loss against the GT box
    each sample overlaps, IoU >= 0.5, else background). Leaves the detector frozen, in
    eval mode.

    Returns:
        the predictor's loss of every step.
    """
    from collections import OrderedDict

    from torchvision.models.detection.image_list import ImageList
    from torchvision.models.detection.roi_heads import fastrcnn_loss
    from torchvision.ops import box_iou

    calibrate_detector(detector, frames)
    gen = torch.Generator().manual_seed(seed)
    rows = [i for i, b in enumerate(frames.boxes) if b.shape[0]]
    rows = rows[:: max(1, len(rows) // max_frames)][:max_frames]
    rpn, roi = detector.rpn, detector.roi_heads
    maps, sizes, targets, pooled, labels, regress = [], [], [], [], [], []
    with torch.no_grad():
        for start in range(0, len(rows), 16):
            chunk = rows[start : start + 16]
            images = [_as_float(frames.images[r]) for r in chunk]
            gts = [{"boxes": frames.boxes[r], "labels": frames.labels[r]} for r in chunk]
            images_t, gts = detector.transform(images, gts)
            feat = detector.backbone(images_t.tensors)
            for i, target in enumerate(gts):
                size = images_t.image_sizes[i]
                one = feat[i : i + 1, :, : (size[0] + 15) // 16, : (size[1] + 15) // 16]
                maps.append(one)
                sizes.append(size)
                targets.append(target)
                boxes = _sample_boxes(target["boxes"], size, boxes_per_frame, gen)
                iou, match = box_iou(boxes, target["boxes"]).max(dim=1)
                labels.append(torch.where(iou >= 0.5, target["labels"][match], 0))
                regress.append(roi.box_coder.encode_single(target["boxes"][match], boxes))
                pooled.append(roi.box_head(roi.box_roi_pool(OrderedDict([("0", one)]),
                                                             [boxes], [size])))  # fmt: skip
    pooled, labels, regress = torch.cat(pooled), torch.cat(labels), torch.cat(regress)
    trained = [rpn.head, roi.box_predictor]
    params = [p for m in trained for p in m.parameters()]
    for p in params:
        p.requires_grad_(True)
    optimizer = torch.optim.AdamW(params, lr=lr, weight_decay=1e-4)
    losses: list[float] = []
    rpn.train()
    t0 = time.perf_counter()
    for step in range(steps):
        pick = torch.randint(len(maps), (min(batch, len(maps)),), generator=gen).tolist()
        # one frame per RPN call: the maps differ in size (padding would add fake borders)
        rpn_loss = sum(
            sum(
                rpn(
                    ImageList(maps[i].new_zeros(1, 3, *sizes[i]), [sizes[i]]),
                    OrderedDict([("0", maps[i])]),
                    [targets[i]],
                )[1].values()
            )  # fmt: skip
            for i in pick
        ) / len(pick)
        sel = torch.randint(labels.shape[0], (256,), generator=gen)
        scores, deltas = roi.box_predictor(pooled[sel])
        box_targets = regress[sel].repeat(1, 1)
        cls_loss, box_loss = fastrcnn_loss(scores, deltas, [labels[sel]], [box_targets])
        loss = rpn_loss + cls_loss + box_loss
        take_step(optimizer, loss, losses, "detector", step, steps, t0)
    freeze(detector)
    return losses
