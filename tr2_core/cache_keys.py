"""Keys of on-disk caches: a stable hash of what a cached thing was computed from.

The feature cache (:mod:`tr2_core.train.feature_cache`) and the pretrained synthetic
weights (:mod:`tr2_core.pretrain`) name their folders by :func:`cache_key`, so any
change of what they depend on (configs, weights, the annotation files listed by
:func:`annotation_stats`) gives a new folder and a stale entry is never read.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from tr2_core.errors import DatasetError

CACHE_FORMAT_VERSION = 1


def annotation_stats(root: str | Path) -> list[list[Any]]:
    """``[name, size, mtime_ns]`` of every file in ``ROOT/annotations`` (sorted)."""
    ann = Path(root) / "annotations"
    if not ann.is_dir():
        raise DatasetError(f"{ann}: annotations folder not found")
    return [[p.name, p.stat().st_size, p.stat().st_mtime_ns] for p in sorted(ann.iterdir())]


def cache_key(parts: Mapping[str, Any]) -> str:
    """Stable hex key of a JSON-serialisable description (key order irrelevant)."""
    blob = json.dumps({"version": CACHE_FORMAT_VERSION, **parts}, sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:24]
