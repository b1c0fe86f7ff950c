"""Reading ``annotations/synthetic_meta.json``: what the generator recorded
beside the release files (seed, configuration, validation videos, and per
video the change and temporal-effect frames).

Evaluation takes the frame groups returned here as plain ``{name: keys}``
(it never reads the meta file itself).
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from tr2_core.data.synthetic.generator_config import META_FILE
from tr2_core.errors import DatasetError

__all__ = ["TEMPORAL_EFFECTS", "meta_path", "read_meta", "temporal_effect_frames"]

TEMPORAL_EFFECTS: tuple[str, ...] = ("occluded", "blurred", "halfway")
"""Names of the temporal-effect frame groups, in report order."""


def meta_path(root: str | os.PathLike[str]) -> Path:
    """``root/annotations/synthetic_meta.json`` (whether or not it exists)."""
    return Path(root) / "annotations" / META_FILE


def read_meta(root: str | os.PathLike[str]) -> dict[str, Any] | None:
    """The parsed meta file of the dataset at ``root``; ``None`` when it has none
    (real Action Genome).

    Raises:
        DatasetError: the file exists but is not a JSON object.
    """
    path = meta_path(root)
    if not path.is_file():
        return None
    try:
        meta = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise DatasetError(f"{path}: not a readable JSON file ({e})") from None
    if not isinstance(meta, dict):
        raise DatasetError(f"{path}: expected a JSON object, got {type(meta).__name__}")
    return meta


def temporal_effect_frames(root: str | os.PathLike[str]) -> dict[str, set[str]]:
    """Frame keys (``'VIDEO.mp4/000123.png'``, as ``GroundTruth.frame_keys``) of
    each temporal effect the generator drew, over all videos of the dataset.

    Returns:
        ``{'occluded': keys of frames inside an occlusion episode, 'blurred':
        motion-blurred frames, 'halfway': frames with a pose between two
        predicates}``; ``{}`` when ``root`` has no meta file or the meta lists
        no effect at all (real data, or a world generated without them).

    Raises:
        DatasetError: the meta file is unreadable or a video's lists are malformed
            (the message names the file and the video).
    """
    meta = read_meta(root)
    if meta is None:
        return {}
    groups: dict[str, set[str]] = {name: set() for name in TEMPORAL_EFFECTS}
    for index, video in enumerate(meta.get("videos", [])):
        try:
            groups["occluded"].update(str(o["frame"]) for o in video.get("occluded_frames", []))
            groups["blurred"].update(str(key) for key in video.get("blurred_frames", []))
            groups["halfway"].update(str(h["frame"]) for h in video.get("halfway_frames", []))
        except (AttributeError, KeyError, TypeError) as e:
            name = video.get("video", index) if isinstance(video, dict) else index
            raise DatasetError(
                f"{meta_path(root)}: video {name}: malformed temporal-effect lists ({e!r})"
            ) from None
    return groups if any(groups.values()) else {}
