"""Reading a dataset's frame images (``AG_ROOT/frames/VIDEO/FRAME.png``) as tensors,
for training (:mod:`tr2_core.train.source`) and the synthetic pretraining
(:mod:`tr2_core.pretrain`)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from PIL import Image

from tr2_core.errors import DatasetError


def load_image(path: Path) -> torch.Tensor:
    """(3, H, W) uint8 RGB image; :class:`DatasetError` naming the file if unreadable."""
    try:
        with Image.open(path) as im:
            array = np.asarray(im.convert("RGB"))
    except (OSError, ValueError) as e:
        raise DatasetError(f"{path}: cannot read frame image ({e})") from None
    return torch.from_numpy(array.copy()).permute(2, 0, 1)
