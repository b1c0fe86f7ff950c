"""Pair features: what a pair is to the relation model. The union box's crop of the frame
through the frozen CLIP image tower (all crops of a clip cut and resized in one batched
RoIAlign call, or one at a time as the release; encoded in batches of
``clip.crop_batch_size``), and the relation representation: subject and object entity
features, class embeddings, the union feature [and box geometry masks].
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn
from torchvision.ops import roi_align

from tr2_core.errors import WeightsError
from tr2_core.models.model_config import ClipConfig, ModelConfig
from tr2_core.models.pairs import union_boxes
from tr2_core.types import VideoFeatures
from tr2_core.vocab import NUM_OBJECT_CLASSES


def create_clip(
    cfg: ClipConfig, *, random_init: bool = False, pretrained: str | None = None
) -> nn.Module:
    """Build the frozen open_clip model of ``cfg`` (eval mode, no gradients).

    Args:
        cfg: the ``clip`` section of the model config.
        random_init: build the same architecture with random weights (tests / synthetic
            demo); the caller announces it (:func:`tr2_core.run.announce_random_init`).
        pretrained: checkpoint file or open_clip tag; overrides ``cfg.pretrained``.
    Raises:
        WeightsError: no weights given (and not ``random_init``), a missing file, a tag that
            cannot be resolved offline, or a checkpoint that does not match the architecture.
    """
    import open_clip

    source = pretrained if pretrained is not None else cfg.pretrained
    overrides = dict(cfg.overrides)
    if random_init:
        model = open_clip.create_model(
            cfg.model_name, pretrained=None, precision=cfg.precision, **overrides
        )
    else:
        if not source:
            raise WeightsError(
                f"no CLIP weights for {cfg.model_name}: set clip.pretrained (a local checkpoint "
                "file or an open_clip tag) or pass --clip-weights; use --random-init only for "
                "tests and the synthetic demo"
            )
        looks_like_path = any(sep in source for sep in ("/", "\\")) or Path(source).suffix
        if looks_like_path and not Path(source).is_file():
            raise WeightsError(f"CLIP weights file not found: {source}")
        try:
            model = open_clip.create_model(
                cfg.model_name,
                pretrained=source,
                weights_only=True,
                precision=cfg.precision,
                **overrides,
            )
        except Exception as e:  # noqa: BLE001 - any load failure is a weights error
            raise WeightsError(
                f"cannot load CLIP {cfg.model_name} weights from {source!r}: {e}. A tag must "
                "be in the local open_clip cache (no network); a file must be an open_clip "
                "state dict of this architecture"
            ) from None
    model.eval()
    for p in model.parameters():
        p.requires_grad_(False)
    return model


RELEASE_SHORT_SIDE = 600
"""The release's detector input: the frame scaled so that its shorter side is 600 px
(faster-rcnn.pytorch ``blob.py``, no cap on the longer side); its union boxes pass through
those scaled coordinates before they are cut (``crop_mode: release``)."""


def release_crop_corners(boxes: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """(P, 4) union boxes in original pixels -> (P, 4) int32 corners as the release cuts
    them: through its detector's scaled coordinates and back in float32
    (``union_box / im_info[0, 2]``), then truncated (``.int()``). An integer coordinate
    can come back a hair below itself and lose a pixel, as in the release."""
    scale = torch.tensor(RELEASE_SHORT_SIDE / min(height, width), dtype=torch.float32)
    return ((boxes.detach().float().cpu() * scale) / scale).int()


def square_crop_boxes(boxes: torch.Tensor) -> torch.Tensor:
    """Centre square of side ``min(w, h)`` inside each box (P, 4): what CLIP's
    resize-shorter-side + centre-crop keeps of the box."""
    centre = (boxes[:, :2] + boxes[:, 2:]) / 2
    half = (boxes[:, 2:] - boxes[:, :2]).min(dim=1, keepdim=True).values / 2
    return torch.cat([centre - half, centre + half], dim=1)


def stack_frames(images: list[torch.Tensor]) -> torch.Tensor:
    """List of (3, H_i, W_i) uint8 or float [0, 1] images -> (T, 3, H, W) float32 zero-padded."""
    height = max(int(im.shape[-2]) for im in images)
    width = max(int(im.shape[-1]) for im in images)
    batch = torch.zeros(len(images), 3, height, width, device=images[0].device)
    for i, im in enumerate(images):  # per frame (not per relation)
        im = im.float() / 255.0 if im.dtype == torch.uint8 else im.float()
        batch[i, :, : im.shape[-2], : im.shape[-1]] = im
    return batch


class UnionFeatureEncoder(nn.Module):
    """Frozen CLIP image tower over union-box crops.

    ``forward(frames, pair_frame, boxes) -> (P, D)`` where ``frames`` is (T, 3, H, W) float
    in [0, 1] (see :func:`stack_frames`), ``pair_frame`` (P,) the frame row of each union
    box and ``boxes`` (P, 4) the union boxes ``x1 y1 x2 y2`` in original pixels.
    """

    def __init__(self, clip_model: nn.Module, cfg: ClipConfig) -> None:
        super().__init__()
        self.clip = clip_model
        self.cfg = cfg
        visual = clip_model.visual
        size = visual.image_size
        self.image_size = (size, size) if isinstance(size, int) else tuple(size)
        pre = getattr(visual, "preprocess_cfg", {}) or {}
        from open_clip import OPENAI_DATASET_MEAN, OPENAI_DATASET_STD

        mean = pre.get("mean", OPENAI_DATASET_MEAN)
        std = pre.get("std", OPENAI_DATASET_STD)
        self.register_buffer("mean", torch.tensor(mean).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(std).view(1, 3, 1, 1), persistent=False)

    @property
    def out_dim(self) -> int:
        return int(self.clip.visual.output_dim)

    def crops(
        self, frames: torch.Tensor, pair_frame: torch.Tensor, boxes: torch.Tensor
    ) -> torch.Tensor:
        """All crops in one call: (P, 3, S, S) CLIP-normalised."""
        if self.cfg.crop_mode == "release":
            return self.release_crops(frames, pair_frame, boxes)
        height, width = frames.shape[-2:]
        boxes = boxes.to(frames.dtype).clone()
        boxes[:, 0::2] = boxes[:, 0::2].clamp(0, width)
        boxes[:, 1::2] = boxes[:, 1::2].clamp(0, height)
        boxes[:, 2:] = torch.maximum(boxes[:, 2:], boxes[:, :2] + 1.0)
        if self.cfg.crop_mode == "center_square":
            boxes = square_crop_boxes(boxes)
        rois = torch.cat([pair_frame.to(frames.dtype)[:, None], boxes], dim=1)
        crops = roi_align(
            frames,
            rois,
            output_size=self.image_size,
            spatial_scale=1.0,
            sampling_ratio=self.cfg.crop_sampling_ratio,
            aligned=True,
        )
        return (crops - self.mean) / self.std

    def release_crops(
        self, frames: torch.Tensor, pair_frame: torch.Tensor, boxes: torch.Tensor
    ) -> torch.Tensor:
        """The authors' union crops (``crop_mode: release``): per pair, the 8-bit frame
        ``im[y1:y2, x1:x2]`` at the box truncated to integers, as a PIL image through
        CLIP's preprocessing (shorter side resized to S, bicubic; centre crop S x S; scaled
        to [0, 1]; normalised) -> (P, 3, S, S). Frames given as floats are taken back to 8
        bits (exact for frames that were 8-bit); the boxes pass through the release's
        scaled coordinates (:func:`release_crop_corners`, the frames' padded size taken as
        the frame size: one size per video, as AG's)."""
        from PIL import Image
        from torchvision.transforms import InterpolationMode
        from torchvision.transforms import functional as TF

        size = self.image_size[0]
        images = (frames.detach().float().clamp(0, 1) * 255).round().to(torch.uint8)
        images = images.permute(0, 2, 3, 1).cpu().numpy()  # (T, H, W, 3)
        corners = release_crop_corners(boxes, *frames.shape[-2:]).tolist()
        out = []
        for row, (x1, y1, x2, y2) in zip(pair_frame.tolist(), corners, strict=True):
            height, width = images[row].shape[:2]
            x1, y1 = min(max(x1, 0), width - 1), min(max(y1, 0), height - 1)
            x2, y2 = max(min(x2, width), x1 + 1), max(min(y2, height), y1 + 1)
            crop = Image.fromarray(images[row][y1:y2, x1:x2])
            crop = TF.resize(crop, size, interpolation=InterpolationMode.BICUBIC)
            out.append(TF.to_tensor(TF.center_crop(crop, size)))
        crops = torch.stack(out).to(frames.device)
        return (crops - self.mean) / self.std

    @torch.no_grad()
    def forward(
        self, frames: torch.Tensor, pair_frame: torch.Tensor, boxes: torch.Tensor
    ) -> torch.Tensor:
        if boxes.shape[0] == 0:
            return frames.new_zeros(0, self.out_dim)
        crops = self.crops(frames, pair_frame, boxes)
        if self.cfg.precision != "fp32":  # the image tower's own dtype (fp16 weights)
            crops = crops.to(self.clip.visual.conv1.weight.dtype)
        chunk = max(1, self.cfg.crop_batch_size)
        out = [self.clip.encode_image(part) for part in torch.split(crops, chunk)]
        return torch.cat(out, dim=0).float()


# --------------------------------------------------------------------------- representation
def box_masks(subject: torch.Tensor, obj: torch.Tensor, size: int) -> torch.Tensor:
    """STTran-style two-channel masks: (P, 2, size, size) float, 1 where a cell centre of a
    size x size grid laid over the union box lies inside the subject (channel 0) / object
    (channel 1) box."""
    union = union_boxes(subject, obj)
    steps = (torch.arange(size, device=subject.device, dtype=subject.dtype) + 0.5) / size
    wh = (union[:, 2:] - union[:, :2]).clamp(min=1e-6)
    xs = union[:, None, 0] + steps[None] * wh[:, None, 0]  # (P, S)
    ys = union[:, None, 1] + steps[None] * wh[:, None, 1]
    out = []
    for box in (subject, obj):
        in_x = (xs >= box[:, None, 0]) & (xs <= box[:, None, 2])
        in_y = (ys >= box[:, None, 1]) & (ys <= box[:, None, 3])
        out.append(in_y[:, :, None] & in_x[:, None, :])
    return torch.stack(out, dim=1).to(subject.dtype)


class GeometryBranch(nn.Module):
    """Optional box-geometry branch, STTran's mask branch: two-channel union-box masks ->
    two strided convolutions -> the (128, S/4, S/4) map flattened -> linear -> vector.

    Flattened as STTran's ``vr_fc`` does, not averaged: the predicates of the spatial
    family and most contacting ones are thresholds on where the boxes sit in the union
    (overlap share, centre heights), and a global average pool keeps only a
    translation-invariant summary of the map (with it, tr2-small reached With R@10 75.8 /
    75.9 on the demo's data, seeds 0 / 1; flattened 81.0 / 79.3;
    docs/experiments/synthetic-world.md).
    Widths 64 / 128 are the project's choice (STTran: 128 / 256 with batch norms and a
    max pool; off in the paper-size model).
    """

    def __init__(self, mask_size: int, out_dim: int) -> None:
        super().__init__()
        self.mask_size = mask_size
        cells = (mask_size + 3) // 4  # two stride-2 convolutions with "same" padding
        self.net = nn.Sequential(
            nn.Conv2d(2, 64, kernel_size=5, stride=2, padding=2),
            nn.ReLU(),
            nn.Conv2d(64, 128, kernel_size=3, stride=2, padding=1),
            nn.ReLU(),
            nn.Flatten(),
            nn.Linear(128 * cells * cells, out_dim),
        )

    def forward(self, subject_boxes: torch.Tensor, object_boxes: torch.Tensor) -> torch.Tensor:
        """(P, 4), (P, 4) -> (P, out_dim)."""
        return self.net(box_masks(subject_boxes, object_boxes, self.mask_size))


class RelationRepresentation(nn.Module):
    """Pair representation (P, d_model): Concat(union 512, W_s subject 2048->512,
    W_o object 2048->512, E_s[subject label] 200, E_o[object label] 200[, geometry])."""

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        rep = config.representation
        self.subject_proj = nn.Linear(rep.entity_dim, rep.entity_proj_dim)
        self.object_proj = nn.Linear(rep.entity_dim, rep.entity_proj_dim)
        self.subject_embed = nn.Embedding(NUM_OBJECT_CLASSES, rep.class_embed_dim)
        self.object_embed = nn.Embedding(NUM_OBJECT_CLASSES, rep.class_embed_dim)
        self.geometry = (
            GeometryBranch(rep.geometry_mask_size, rep.geometry_dim) if rep.geometry else None
        )

    def forward(self, features: VideoFeatures, labels: torch.Tensor) -> torch.Tensor:
        s, o = features.pair_subject, features.pair_object
        parts = [
            features.union_features,
            self.subject_proj(features.entity_features[s]),
            self.object_proj(features.entity_features[o]),
            self.subject_embed(labels[s]),
            self.object_embed(labels[o]),
        ]
        if self.geometry is not None:
            parts.append(self.geometry(features.entity_boxes[s], features.entity_boxes[o]))
        return torch.cat(parts, dim=1)
