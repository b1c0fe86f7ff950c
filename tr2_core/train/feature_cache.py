"""On-disk cache of the frozen extractor's outputs (:class:`VideoFeatures`), one
safetensors file per video.

The detector and CLIP image tower are frozen, so their per-frame and per-pair outputs
never change during training; computing them once turns an epoch from "run a ResNet
and a ViT over every frame and union crop" into "read a few arrays". The format is
safe to load (safetensors: raw tensors + a JSON header, no pickle).

Layout::

    CACHE_ROOT/<key>/manifest.json          what the key was computed from (readable)
    CACHE_ROOT/<key>/<VIDEO>.safetensors    one video's VideoFeatures

``<key>`` is a hash of everything the features depend on (:func:`cache_key`): the
extractor config, the extractor's weights (a hash of its state dict), the annotation
files (name, size, mtime), the task, the small-box option and the storage dtype. Any
change gives a new folder, so a stale cache is never read. Files are written to a
temporary name and renamed, so a killed process leaves no half-written entry.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Mapping
from dataclasses import fields
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import save_file

from tr2_core.cache_keys import cache_key
from tr2_core.errors import DatasetError
from tr2_core.types import VideoFeatures

CACHE_DTYPES: dict[str, torch.dtype] = {
    "float32": torch.float32,
    "bfloat16": torch.bfloat16,  # float32's range: a random ResNet-101's ~1e5 fits
    "float16": torch.float16,  # max 65504: overflows to inf on large activations
}

_FLOAT_FEATURES = ("entity_features", "union_features", "other_union_features")
_OPTIONAL_FIELDS = ("other_pair_subject", "other_pair_object", "other_union_features")
_EXTRA = "extra."
_TENSOR_FIELDS = tuple(f.name for f in fields(VideoFeatures) if f.name != "frame_keys")


def _safe_name(video: str) -> str:
    if not video or "/" in video or "\\" in video or video.startswith("."):
        raise DatasetError(f"video id {video!r} cannot name a cache file")
    return video


class FeatureCache:
    """One cache folder (one key). ``get`` / ``put`` whole videos.

    Args:
        root: the cache root (shared by all keys).
        parts: what the features depend on; hashed into the folder name and written
            to ``manifest.json``.
        dtype: storage dtype of the feature vectors (``entity_features``,
            ``union_features``); they are returned as float32. bfloat16 (default) keeps
            float32's range; float16 overflows above 65504 (a randomly initialised
            ResNet-101's pooled features reach ~1.6e5), which :meth:`put` refuses.
    """

    def __init__(
        self, root: str | Path, parts: Mapping[str, Any], dtype: torch.dtype = torch.bfloat16
    ) -> None:
        self.dtype = dtype
        self.parts = {**parts, "dtype": str(dtype)}
        self.key = cache_key(self.parts)
        self.dir = Path(root) / self.key
        self.dir.mkdir(parents=True, exist_ok=True)
        manifest = self.dir / "manifest.json"
        if not manifest.exists():
            _atomic_write_bytes(
                manifest, json.dumps(self.parts, indent=1, sort_keys=True, default=str).encode()
            )

    def path(self, video: str) -> Path:
        return self.dir / f"{_safe_name(video)}.safetensors"

    def has(self, video: str) -> bool:
        return self.path(video).is_file()

    def get(self, video: str) -> tuple[VideoFeatures, dict[str, torch.Tensor]] | None:
        """The cached features of ``video`` (on CPU, float32) and its extra tensors
        (e.g. ``entity_gt`` of SGDet training), or ``None`` if absent."""
        path = self.path(video)
        if not path.is_file():
            return None
        try:
            with safe_open(path, framework="pt") as f:
                tensors = {name: f.get_tensor(name) for name in f.keys()}  # noqa: SIM118
                frame_keys = json.loads(f.metadata()["frame_keys"])
            values = {
                name: tensors[name].float() if name in _FLOAT_FEATURES else tensors[name]
                for name in _TENSOR_FIELDS
                if name in tensors or name not in _OPTIONAL_FIELDS
            }
        except (SafetensorError, OSError, KeyError, ValueError, TypeError) as e:
            raise DatasetError(f"{path}: unreadable feature-cache entry ({e}); delete it") from None
        extras = {k[len(_EXTRA) :]: v for k, v in tensors.items() if k.startswith(_EXTRA)}
        return VideoFeatures(frame_keys=list(frame_keys), **values), extras

    def put(
        self,
        video: str,
        features: VideoFeatures,
        extras: Mapping[str, torch.Tensor] | None = None,
    ) -> None:
        """Store ``features`` (any device) and optional extra tensors atomically.

        Raises:
            DatasetError: a feature vector holds NaN / infinity, or overflows the storage
                dtype (named: the video, the field, the largest magnitude); nothing is
                written.
        """
        tensors = {}
        for name in _TENSOR_FIELDS:
            if getattr(features, name) is None:  # an optional field not extracted
                continue
            t = getattr(features, name).detach()
            if name in _FLOAT_FEATURES:
                stored = t.to(self.dtype)
                _check_finite(video, name, t, stored, self.dtype)
                t = stored
            tensors[name] = t.cpu().contiguous()
        for name, t in (extras or {}).items():
            tensors[_EXTRA + name] = t.detach().cpu().contiguous()
        path = self.path(video)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=self.dir)
        os.close(fd)
        try:
            save_file(tensors, tmp, metadata={"frame_keys": json.dumps(list(features.frame_keys))})
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise


def _check_finite(
    video: str, name: str, values: torch.Tensor, stored: torch.Tensor, dtype: torch.dtype
) -> None:
    """Raise :class:`DatasetError` unless ``stored`` (``values`` cast to ``dtype``) is all
    finite; one device sync per field, at cache-fill time only."""
    if bool(torch.isfinite(stored).all()):
        return
    if not bool(torch.isfinite(values).all()):
        raise DatasetError(
            f"video {video}: the extractor's {name} hold NaN or infinity; not cached"
        )
    largest = float(values.abs().max())
    raise DatasetError(
        f"video {video}: {name} reach {largest:.4g}, beyond the cache's {dtype} range "
        f"(max {torch.finfo(dtype).max:.4g}); not cached. Use cache_dtype: bfloat16 or float32"
    )


def _atomic_write_bytes(path: Path, data: bytes) -> None:
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    with os.fdopen(fd, "wb") as f:
        f.write(data)
    os.replace(tmp, path)
