"""tr2_core/data/images.py: a frame image as a (3, H, W) uint8 RGB tensor, or one line
naming the file."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from tr2_core.data.images import load_image
from tr2_core.errors import DatasetError


def test_frames_come_back_as_rgb_channels_first(tmp_path):
    rgb = np.random.default_rng(0).integers(0, 256, (5, 7, 3), dtype=np.uint8)
    Image.fromarray(rgb).save(tmp_path / "f.png")
    Image.fromarray(rgb[..., 0]).save(tmp_path / "grey.png")
    image = load_image(tmp_path / "f.png")
    assert image.dtype == torch.uint8 and image.shape == (3, 5, 7)
    np.testing.assert_array_equal(image.permute(1, 2, 0).numpy(), rgb)
    grey = load_image(tmp_path / "grey.png")
    assert grey.shape == (3, 5, 7) and torch.equal(grey[0], grey[2])


def test_an_unreadable_frame_is_named(tmp_path):
    Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(tmp_path / "f.png")
    data = (tmp_path / "f.png").read_bytes()
    (tmp_path / "cut.png").write_bytes(data[: len(data) // 2])
    for name in ("cut.png", "missing.png"):
        with pytest.raises(DatasetError, match=f"{name}: cannot read frame image"):
            load_image(tmp_path / name)
