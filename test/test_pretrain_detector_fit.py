"""The synthetic-world detector training (tr2_core.pretrain.detector_fit): a few steps on
tiny frames keep torchvision's state-dict format and train what they say."""

from __future__ import annotations

import math

import torch
from torchvision.ops.misc import FrozenBatchNorm2d

from tr2_core.models.entities import build_detector
from tr2_core.models.model_config import resolve_config
from tr2_core.pretrain.detector_fit import _flip_frame, train_detector
from tr2_core.pretrain.training_frames import PretrainFrames


def _tiny_frames(count: int = 3) -> PretrainFrames:
    gen = torch.Generator().manual_seed(0)
    images = [torch.randint(0, 255, (3, 72, 128), generator=gen, dtype=torch.uint8)
              for _ in range(count)]  # fmt: skip
    boxes = [torch.tensor([[40.0, 8.0, 60.0, 66.0], [70.0, 30.0, 100.0, 60.0]])] * count
    labels = [torch.tensor([1, 5])] * count
    empty = torch.zeros(0, 4)
    return PretrainFrames(images, boxes, labels, torch.zeros(0, dtype=torch.long), empty, empty,
                          torch.zeros(0, dtype=torch.long), torch.zeros(0, 26))  # fmt: skip


def test_train_detector_keeps_the_format_and_trains_the_named_parts():
    torch.manual_seed(0)
    detector = build_detector(resolve_config("tr2-small").detector)
    fresh = {k: v.clone() for k, v in detector.state_dict().items()}
    sampler = detector.roi_heads.fg_bg_sampler
    before = sampler.batch_size_per_image, detector.roi_heads.box_roi_pool
    losses = train_detector(detector, _tiny_frames(2), steps=2, batch=1, rois_per_frame=4)
    assert len(losses) == 2 and all(math.isfinite(x) for x in losses)
    state = detector.state_dict()
    # the file a user's real weights come in: same keys and shapes, frozen norms back
    assert {k: v.shape for k, v in state.items()} == {k: v.shape for k, v in fresh.items()}
    assert all(isinstance(m, FrozenBatchNorm2d) for m in detector.modules()
               if "BatchNorm" in type(m).__name__)  # fmt: skip
    assert (sampler.batch_size_per_image, detector.roi_heads.box_roi_pool) == before
    assert not detector.training and not any(p.requires_grad for p in detector.parameters())
    changed = {k for k in state if not torch.equal(state[k], fresh[k])}
    assert any(k.startswith("backbone.layer3.") and k.endswith("conv1.weight") for k in changed)
    assert "rpn.head.cls_logits.weight" in changed
    assert "backbone.conv1.weight" not in changed  # not in `trained`


def test_flip_frame_mirrors_boxes_with_the_image():
    image = torch.zeros(3, 10, 20, dtype=torch.uint8)
    image[:, 2:5, 1:4] = 255
    flipped, boxes = _flip_frame(image, torch.tensor([[1.0, 2.0, 4.0, 5.0]]))
    assert torch.equal(boxes, torch.tensor([[16.0, 2.0, 19.0, 5.0]]))
    assert bool((flipped[:, 2:5, 16:19] == 255).all()) and int(flipped.sum()) == int(image.sum())


def test_the_box_head_trains_on_rois_pooled_at_the_configured_size():
    # a head trained on smaller pools than SGDet runs it on loses the person
    # (bench/detector_check.py): training must pool like the configured detector
    torch.manual_seed(0)
    cfg = resolve_config("tr2-small", ["detector.roi_output_size=5"]).detector
    detector = build_detector(cfg)
    seen: list[tuple[int, int]] = []
    hook = detector.roi_heads.box_head.register_forward_pre_hook(
        lambda _, inputs: seen.append(tuple(inputs[0].shape[-2:]))
    )
    train_detector(detector, _tiny_frames(2), steps=1, batch=1, rois_per_frame=4)
    hook.remove()
    training = seen[1:]  # the first call calibrates the head on GT boxes
    assert training and set(training) == {(cfg.roi_output_size, cfg.roi_output_size)}


def test_small_detector_has_an_anchor_for_a_standing_and_a_lying_person():
    # the synthetic person at the small detector's input scale: about 13 x 78 px standing
    from torchvision.ops import box_iou

    cfg = resolve_config("tr2-small").detector
    shapes = torch.tensor(
        [[s / r**0.5, s * r**0.5] for s in cfg.anchor_sizes for r in cfg.aspect_ratios]
    )  # (w, h): torchvision's aspect ratio is h / w
    anchors = torch.cat([-shapes / 2, shapes / 2], dim=1)
    people = torch.tensor([[-6.5, -39.0, 6.5, 39.0], [-39.0, -6.5, 39.0, 6.5]])
    assert bool((box_iou(people, anchors).max(dim=1).values >= 0.5).all())
