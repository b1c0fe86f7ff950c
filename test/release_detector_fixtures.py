"""The authors' detector file as their code writes it, with random weights.

faster-rcnn.pytorch's ``trainval_net.py`` saves ``{"session", "epoch", "model",
"optimizer", "pooling_mode", "class_agnostic"}``; ``model`` is the ``state_dict()`` of
its ``resnet(classes, 101)`` network. Facts of that code the layout follows:

- ``_fasterRCNN.__init__`` registers ``RCNN_rpn`` before ``_init_modules`` registers
  ``RCNN_base``, ``RCNN_top``, ``RCNN_cls_score``, ``RCNN_bbox_pred`` (state-dict order);
- ``RCNN_base = Sequential(conv1, bn1, relu, maxpool, layer1, layer2, layer3)`` (indices
  0, 1, 4, 5, 6 hold weights), ``RCNN_top = Sequential(layer4)``;
- ResNet-101 bottleneck stages of 3, 4, 23, 3 blocks, widths 64, 128, 256, 512 (x4 out),
  a ``downsample`` (1x1 conv + batch norm) on each stage's first block;
- batch norms save weight, bias, running_mean, running_var, num_batches_tracked;
- ``_RPN``: ``RPN_Conv`` 1024 -> 512 3x3, ``RPN_cls_score`` 512 -> 2 x 12, ``RPN_bbox_pred``
  512 -> 4 x 12 (12 anchors: scales 4, 8, 16, 32 x ratios 0.5, 1, 2), all with biases;
- ``RCNN_cls_score`` Linear(2048, 37), ``RCNN_bbox_pred`` Linear(2048, 4 x 37).

The optimizer state is abbreviated (the real file holds a momentum buffer for every
trainable parameter); its structure is ``torch.optim.SGD.state_dict()``'s.
"""

from __future__ import annotations

import math
from collections import OrderedDict
from pathlib import Path

import torch

RESNET101_BLOCKS = (3, 4, 23, 3)
NUM_CLASSES = 37
NUM_ANCHORS = 12


def _bn(prefix: str, channels: int, g: torch.Generator, out: dict, gamma=(0.5, 1.5)) -> None:
    lo, hi = gamma
    out[prefix + "weight"] = lo + (hi - lo) * torch.rand(channels, generator=g)
    out[prefix + "bias"] = 0.1 * torch.randn(channels, generator=g)
    out[prefix + "running_mean"] = 0.1 * torch.randn(channels, generator=g)
    out[prefix + "running_var"] = 0.5 + 1.5 * torch.rand(channels, generator=g)
    out[prefix + "num_batches_tracked"] = torch.tensor(0)


def _conv(shape: tuple[int, ...], g: torch.Generator, gain: float = 1.0) -> torch.Tensor:
    fan_in = math.prod(shape[1:])
    return torch.randn(shape, generator=g) * (gain * math.sqrt(2.0 / fan_in))


def _stage(prefix: str, inplanes: int, planes: int, blocks: int, g, out: dict) -> int:
    for b in range(blocks):
        p = f"{prefix}{b}."
        cin = inplanes if b == 0 else planes * 4
        out[p + "conv1.weight"] = _conv((planes, cin, 1, 1), g)
        _bn(p + "bn1.", planes, g, out)
        out[p + "conv2.weight"] = _conv((planes, planes, 3, 3), g)
        _bn(p + "bn2.", planes, g, out)
        out[p + "conv3.weight"] = _conv((planes * 4, planes, 1, 1), g)
        # a small last gain keeps 33 random residual blocks from blowing up
        _bn(p + "bn3.", planes * 4, g, out, gamma=(0.05, 0.3))
        if b == 0:
            out[p + "downsample.0.weight"] = _conv((planes * 4, cin, 1, 1), g)
            _bn(p + "downsample.1.", planes * 4, g, out)
    return planes * 4


def authors_model_state(seed: int = 0, blocks=RESNET101_BLOCKS) -> OrderedDict:
    """``fasterRCNN.state_dict()`` of the authors' ResNet-101 detector, random values
    chosen so that a 64-px frame gives a few confident classes (person favoured)."""
    g = torch.Generator().manual_seed(seed)
    out: OrderedDict[str, torch.Tensor] = OrderedDict()
    out["RCNN_rpn.RPN_Conv.weight"] = _conv((512, 1024, 3, 3), g, gain=0.5)
    out["RCNN_rpn.RPN_Conv.bias"] = 0.1 * torch.randn(512, generator=g)
    out["RCNN_rpn.RPN_cls_score.weight"] = 0.2 * torch.randn(
        2 * NUM_ANCHORS, 512, 1, 1, generator=g
    )
    out["RCNN_rpn.RPN_cls_score.bias"] = torch.randn(2 * NUM_ANCHORS, generator=g)
    out["RCNN_rpn.RPN_bbox_pred.weight"] = 0.01 * torch.randn(
        4 * NUM_ANCHORS, 512, 1, 1, generator=g
    )
    out["RCNN_rpn.RPN_bbox_pred.bias"] = 0.1 * torch.randn(4 * NUM_ANCHORS, generator=g)
    out["RCNN_base.0.weight"] = _conv((64, 3, 7, 7), g, gain=0.02)
    _bn("RCNN_base.1.", 64, g, out)
    inplanes = 64
    for index, planes, count in zip((4, 5, 6), (64, 128, 256), blocks[:3], strict=True):
        inplanes = _stage(f"RCNN_base.{index}.", inplanes, planes, count, g, out)
    _stage("RCNN_top.0.", inplanes, 512, blocks[3], g, out)
    out["RCNN_cls_score.weight"] = 0.1 * torch.randn(NUM_CLASSES, 2048, generator=g)
    bias = torch.randn(NUM_CLASSES, generator=g)
    bias[1] += 1.0  # person
    out["RCNN_cls_score.bias"] = bias
    out["RCNN_bbox_pred.weight"] = 0.02 * torch.randn(4 * NUM_CLASSES, 2048, generator=g)
    out["RCNN_bbox_pred.bias"] = 0.5 * torch.randn(4 * NUM_CLASSES, generator=g)
    return out


def authors_checkpoint(model: OrderedDict) -> dict:
    """The dict ``trainval_net.py`` passes to ``save_checkpoint``."""
    names = ["RCNN_cls_score.weight", "RCNN_cls_score.bias"]
    return {
        "session": 1,
        "epoch": 7,
        "model": model,
        "optimizer": {
            "state": {
                i: {"momentum_buffer": torch.zeros_like(model[n])} for i, n in enumerate(names)
            },
            "param_groups": [
                {
                    "lr": 0.001,
                    "momentum": 0.9,
                    "dampening": 0,
                    "weight_decay": 0.0001,
                    "nesterov": False,
                    "params": [i],
                }
                for i in range(len(names))
            ],
        },
        "pooling_mode": "align",
        "class_agnostic": False,
    }


def write_authors_detector(path: Path, model: OrderedDict) -> Path:
    torch.save(authors_checkpoint(model), path)
    return path


# --------------------------------------------------------------------------- SGDet relabelling
CLEANED = (5, 8, 17)  # book, chair, food: their clean_class calls


def ref_nms(boxes, scores, threshold: float, margins: list | None = None) -> list[int]:
    """Their NMS kernel (GPU and CPU alike): +1 areas; a box goes when its IoU with a kept
    one is > threshold. ``margins`` collects |IoU - threshold| of every comparison made."""
    b = boxes.tolist() if hasattr(boxes, "tolist") else list(boxes)
    s = [float(v) for v in scores]
    order = sorted(range(len(s)), key=lambda i: -s[i])
    keep, dropped = [], set()
    for pos, i in enumerate(order):
        if i in dropped:
            continue
        keep.append(i)
        x1, y1, x2, y2 = b[i]
        area = (x2 - x1 + 1) * (y2 - y1 + 1)
        for j in order[pos + 1 :]:
            if j in dropped:
                continue
            u1, v1, u2, v2 = b[j]
            iw = max(0.0, min(x2, u2) - max(x1, u1) + 1)
            ih = max(0.0, min(y2, v2) - max(y1, v1) + 1)
            inter = iw * ih
            iou = inter / (area + (u2 - u1 + 1) * (v2 - v1 + 1) - inter)
            if margins is not None:
                margins.append(abs(iou - threshold))
            if iou > threshold:
                dropped.add(j)
    return keep


def argmax(values: list) -> int:
    return max(range(len(values)), key=lambda k: (values[k], -k))


def ref_relabel(frames, boxes, dists, num_frames, cleaned=CLEANED, nms=0.6, person="prob"):
    """Their ObjectClassifier.forward (sgdet, eval) as loops over plain lists. Returns
    per kept box (frame, box, label, score, source row)."""
    entries = [
        {"f": f, "box": b, "dist": d, "row": r, "label": argmax(d) + 1}
        for r, (f, b, d) in enumerate(zip(frames, boxes, dists, strict=True))
    ]
    for cls in cleaned:  # clean_class: per frame, the frame's boxes then its copies
        out = []
        for f in range(num_frames):
            mine = [e for e in entries if e["f"] == f]
            copies = []
            for e in mine:
                if e["label"] == cls:
                    d = list(e["dist"])
                    d[cls - 1] = 0.0
                    copies.append({**e, "dist": d, "label": argmax(d) + 1})
            out += mine + copies
        entries = out
    kept = []
    for f in range(num_frames):
        mine = [e for e in entries if e["f"] == f]
        for j in range(36):
            group = [e for e in mine if argmax(e["dist"]) == j]
            if not group:
                continue
            group.sort(key=lambda e: -e["dist"][j])
            keep = ref_nms([e["box"] for e in group], [e["dist"][j] for e in group], nms)
            kept += [group[k] for k in keep]
    result = []
    for f in range(num_frames):
        mine = [e for e in kept if e["f"] == f]
        if not mine:
            continue
        human = argmax([e["dist"][0] for e in mine])
        if person == "label":  # a broken variant: the first box labelled person
            human = next((k for k, e in enumerate(mine) if e["label"] == 1), 0)
        for k, e in enumerate(mine):
            rest = e["dist"][1:]
            label, score = argmax(rest) + 2, max(rest)
            if k == human:
                label, score = 1, e["dist"][0]
            result.append((f, e["box"], label, score, e["row"]))
    return result
