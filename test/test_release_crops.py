"""Union crops as the authors' release makes them (``clip.crop_mode: release``): equal
to a plain reference of their code path (PIL crop at integer boxes, CLIP's own
preprocessing), and not what tr2's batched RoIAlign crops give."""

from __future__ import annotations

import numpy as np
import open_clip
import torch
from PIL import Image
from release_fixtures import SMALL_CLIP
from torchvision.transforms import (
    CenterCrop,
    Compose,
    InterpolationMode,
    Normalize,
    Resize,
    ToTensor,
)

from tr2_core.models.model_config import ClipConfig
from tr2_core.models.pair_features import UnionFeatureEncoder, stack_frames


def _encoder(mode: str) -> UnionFeatureEncoder:
    torch.manual_seed(0)
    model = open_clip.create_model("ViT-B-32-quickgelu", pretrained=None, **SMALL_CLIP).eval()
    return UnionFeatureEncoder(model, ClipConfig(model_name="ViT-B-32-quickgelu", crop_mode=mode))


def _authors_crops(
    images: list[np.ndarray], pair_frame, boxes, size: int, round_trip: bool = True
) -> torch.Tensor:
    """object_detector.py / tr2_model.py getUnionFeat: the union box in the detector's
    scaled coordinates (boxes * im_info[0, 2], float32; im_scale = 600 / shorter side),
    divided back and truncated (``.int()``); getImageInput: im[y1:y2, x1:x2] through
    clip.py _transform (Resize bicubic, CenterCrop, RGB, ToTensor, Normalize)."""
    height, width = images[0].shape[:2]
    im_info_scale = torch.tensor(float(600) / float(min(height, width)), dtype=torch.float32)
    union_box = boxes.float() * im_info_scale
    if round_trip:
        union_box = union_box / im_info_scale
    else:  # the box as given, for the test that the round trip matters
        union_box = boxes.float()
    process = Compose([
        Resize(size, interpolation=InterpolationMode.BICUBIC),
        CenterCrop(size),
        ToTensor(),
        Normalize((0.48145466, 0.4578275, 0.40821073), (0.26862954, 0.26130258, 0.27577711)),
    ])  # fmt: skip
    out = []
    for j, box in enumerate(union_box.int()):
        im = images[int(pair_frame[j])]
        out.append(process(Image.fromarray(im[box[1] : box[3], box[0] : box[2]])))
    return torch.stack(out)


def _scene():
    rng = np.random.default_rng(0)
    images = [rng.integers(0, 256, (90, 160, 3), dtype=np.uint8) for _ in range(2)]
    # 11 and 41 come back from the release's scaled coordinates (x 600 / 90) a hair
    # below themselves and lose a pixel; 50 does not
    boxes = torch.tensor([[10.7, 5.2, 90.9, 80.4], [50.0, 20.5, 159.0, 60.9],
                          [0.0, 11.0, 41.0, 89.9]])  # fmt: skip
    pair_frame = torch.tensor([0, 1, 1])
    frames = stack_frames([torch.from_numpy(im).permute(2, 0, 1) for im in images])
    return images, frames, pair_frame, boxes


def test_release_crops_equal_the_authors_code_path():
    images, frames, pair_frame, boxes = _scene()
    encoder = _encoder("release")
    got = encoder.crops(frames, pair_frame, boxes)
    want = _authors_crops(images, pair_frame, boxes, 64)
    assert torch.allclose(got, want, atol=1e-6)
    with torch.no_grad():
        assert torch.allclose(encoder(frames, pair_frame, boxes),
                              encoder.clip.encode_image(want), atol=1e-5)  # fmt: skip


def test_tr2s_batched_crops_are_not_the_authors():
    images, frames, pair_frame, boxes = _scene()
    want = _authors_crops(images, pair_frame, boxes, 64)
    got = _encoder("center_square").crops(frames, pair_frame, boxes)
    assert (got - want).abs().mean() > 0.01


def test_the_scaled_coordinates_round_trip_matters():
    images, frames, pair_frame, boxes = _scene()
    got = _encoder("release").crops(frames, pair_frame, boxes)
    plain = _authors_crops(images, pair_frame, boxes, 64, round_trip=False)
    assert torch.allclose(got[:2], plain[:2], atol=1e-6)
    assert (got[2] - plain[2]).abs().max() > 0.01
