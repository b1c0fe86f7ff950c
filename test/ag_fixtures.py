"""Tiny hand-built Action Genome releases for tests.

Records have exactly the fields and types of the real release
(``docs/action-genome.md``): person records with float32 xyxy boxes,
scores, keypoints, ``bbox_size`` and ``bbox_mode``; object records with the
slash class spelling, x y w h tuples, ``visible``, underscore relationship
lists and ``metadata``. :class:`ReleaseBuilder` collects frames and writes
them with :func:`tr2_core.data.release_writer.write_annotations`.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from tr2_core.data.release_writer import write_annotations


def frame_key(video: str, number: int) -> str:
    """``('001YG.mp4', 89)`` -> ``'001YG.mp4/000089.png'``."""
    return f"{video}/{number:06d}.png"


def person_record(
    boxes: Sequence[Sequence[float]] = ((10.0, 20.0, 110.0, 220.0),),
    size: tuple[int, int] = (480, 270),
) -> dict[str, Any]:
    """A ``person_bbox.pkl`` record; ``boxes=()`` gives a frame without a person box."""
    n = len(boxes)
    return {
        "bbox": np.array(boxes, dtype=np.float32).reshape(n, 4),
        "bbox_score": np.full(n, 0.98, dtype=np.float32),
        "bbox_size": tuple(size),
        "bbox_mode": "xyxy",
        "keypoints": np.zeros((n, 17, 3), dtype=np.float32),
        "keypoints_logits": np.zeros((n, 17), dtype=np.float32),
    }


def object_record(
    cls: str,
    bbox: tuple[float, float, float, float] | None = (50, 60, 40, 30),
    *,
    visible: bool = True,
    attention: Sequence[str] | None = ("looking_at",),
    spatial: Sequence[str] | None = ("in_front_of",),
    contacting: Sequence[str] | None = ("holding",),
    split: str = "test",
    key: str = "VIDEO.mp4/000001.png",
) -> dict[str, Any]:
    """An ``object_bbox_and_relationship.pkl`` record (x y w h box).

    An invisible object gets ``bbox`` and relationship lists None, as in the
    release, unless given explicitly.
    """
    video, _, frame = key.partition("/")
    if not visible:
        bbox = None
        attention = spatial = contacting = None
    return {
        "class": cls,
        "bbox": bbox,
        "visible": visible,
        "attention_relationship": None if attention is None else list(attention),
        "spatial_relationship": None if spatial is None else list(spatial),
        "contacting_relationship": None if contacting is None else list(contacting),
        "metadata": {"tag": f"{video}/{cls}/{frame.partition('.')[0]}", "set": split},
    }


class ReleaseBuilder:
    """Collects frames, then writes ``root/annotations/`` in the release layout."""

    def __init__(self) -> None:
        self.person: dict[str, dict[str, Any]] = {}
        self.objects: dict[str, list[dict[str, Any]]] = {}

    def frame(
        self,
        video: str,
        number: int,
        objects: Sequence[dict[str, Any]] | None = None,
        *,
        person: dict[str, Any] | None = None,
        split: str = "test",
    ) -> str:
        """Add one frame; ``objects`` are :func:`object_record` keyword dicts
        (``cls`` required) or full records; default one visible cup."""
        key = frame_key(video, number)
        specs = [{"cls": "cup/glass/bottle"}] if objects is None else objects
        records = []
        for spec in specs:
            if "metadata" in spec:  # already a full record
                records.append(dict(spec))
            else:
                records.append(object_record(**{"split": split, **spec, "key": key}))
        self.person[key] = person_record() if person is None else person
        self.objects[key] = records
        return key

    def video(
        self, video: str, numbers: Sequence[int], *, split: str = "test", **kwargs: Any
    ) -> list[str]:
        """Add frames ``numbers`` of ``video`` with the same ``frame`` options."""
        return [self.frame(video, n, split=split, **kwargs) for n in numbers]

    def write(self, root: Path) -> Path:
        """Write the release under ``root`` and return ``root``."""
        write_annotations(root, self.person, self.objects)
        return root


def small_release() -> tuple[ReleaseBuilder, str]:
    """A one-video release (frames 1-3 with a cup, frame 4 with a book) and the key of
    its last frame."""
    rb = ReleaseBuilder()
    rb.video("V.mp4", [1, 2, 3])
    key = rb.frame("V.mp4", 4, [{"cls": "book"}])
    return rb, key
