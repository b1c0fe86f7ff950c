"""Training material for the synthetic pretraining: the frames, GT boxes and
relation labels of a synthetic dataset's training videos (held-out validation
videos and the test split excluded), read once into memory."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from tr2_core.data.action_genome import load_split
from tr2_core.data.images import load_image
from tr2_core.data.synthetic.writer import validation_videos
from tr2_core.vocab import ATTENTION, CONTACTING, SPATIAL


@dataclass
class PretrainFrames:
    """``F`` training frames with their boxes and pairs.

    Attributes:
        images: F tensors (3, H, W) uint8.
        boxes: F tensors (n_f, 4) float32 ``x1 y1 x2 y2`` (person first).
        labels: F tensors (n_f,) int64 AG object indices.
        pair_frame: (P,) int64 frame row of each (person, object) pair.
        pair_subject: (P, 4) float32 person box; pair_object: (P, 4) object box.
        pair_class: (P,) int64 object class.
        pair_predicates: (P, 26) float32 multi-hot over the global predicate index
            (attention, spatial, contacting).
    """

    images: list[torch.Tensor]
    boxes: list[torch.Tensor]
    labels: list[torch.Tensor]
    pair_frame: torch.Tensor
    pair_subject: torch.Tensor
    pair_object: torch.Tensor
    pair_class: torch.Tensor
    pair_predicates: torch.Tensor


def load_pretrain_frames(root: str | Path, max_frames: int = 0) -> PretrainFrames:
    """Frames of the training videos of the synthetic dataset at ``root`` minus its
    ``val_videos`` (so model selection stays honest), at most ``max_frames`` (0: all,
    else an even stride over them)."""
    split = load_split(root, "train", show_progress=False)
    gt = split.gt
    held = set(validation_videos(root))
    frames = np.flatnonzero([str(gt.videos[v]) not in held for v in gt.frame_video])
    if max_frames > 0 and frames.size > max_frames:
        frames = frames[np.linspace(0, frames.size - 1, max_frames).round().astype(int)]
    keep = np.zeros(gt.num_frames, dtype=bool)
    keep[frames] = True
    row_of = np.full(gt.num_frames, -1, dtype=np.int64)
    row_of[frames] = np.arange(frames.size)
    images, boxes, labels = [], [], []
    for f in frames:
        images.append(load_image(split.frame_image_path(str(gt.frame_keys[f]))))
        b0, b1 = int(gt.box_start[f]), int(gt.box_start[f + 1])
        box = torch.from_numpy(gt.boxes[b0:b1].astype(np.float32))
        ok = torch.isfinite(box).all(1) & (box[:, 2] > box[:, 0] + 1) & (box[:, 3] > box[:, 1] + 1)
        boxes.append(box[ok])
        labels.append(torch.from_numpy(gt.box_labels[b0:b1].astype(np.int64))[ok])
    pairs = np.flatnonzero(keep[split.pair_frame])
    pairs = pairs[np.isfinite(gt.boxes[split.pair_subject[pairs]]).all(1)]
    attention = np.asarray(split.pair_attention)[pairs]
    multi = np.zeros((pairs.size, ATTENTION.size + SPATIAL.size + CONTACTING.size), np.float32)
    has = attention >= 0
    multi[np.flatnonzero(has), attention[has]] = 1.0
    multi[:, ATTENTION.size : ATTENTION.size + SPATIAL.size] = split.pair_spatial[pairs]
    multi[:, ATTENTION.size + SPATIAL.size :] = split.pair_contacting[pairs]
    return PretrainFrames(
        images=images,
        boxes=boxes,
        labels=labels,
        pair_frame=torch.from_numpy(row_of[split.pair_frame[pairs]]),
        pair_subject=torch.from_numpy(gt.boxes[split.pair_subject[pairs]].astype(np.float32)),
        pair_object=torch.from_numpy(gt.boxes[split.pair_object[pairs]].astype(np.float32)),
        pair_class=torch.from_numpy(gt.box_labels[split.pair_object[pairs]].astype(np.int64)),
        pair_predicates=torch.from_numpy(multi),
    )
