"""Write annotations in the exact layout of the Action Genome release.

Used by the synthetic generator and by tests that need small datasets in the
real format. The reader lives in :mod:`tr2_core.data.action_genome`.
"""

from __future__ import annotations

import os
import pickle
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from tr2_core.vocab import OBJECT_CLASSES, PREDICATES, glued


def write_class_files(annotations_dir: Path) -> None:
    """``object_classes.txt`` (36 lines) and ``relationship_classes.txt`` (26
    lines) with the release's glued spellings."""
    annotations_dir.mkdir(parents=True, exist_ok=True)
    objects = "\n".join(glued(n) for n in OBJECT_CLASSES[1:]) + "\n"
    predicates = "\n".join(glued(n) for n in PREDICATES) + "\n"
    (annotations_dir / "object_classes.txt").write_text(objects)
    (annotations_dir / "relationship_classes.txt").write_text(predicates)


def _atomic_pickle(obj: Any, path: Path) -> None:
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "wb") as f:
        pickle.dump(obj, f, protocol=pickle.HIGHEST_PROTOCOL)
    os.replace(tmp, path)


def write_annotations(
    root: Path,
    person_bbox: Mapping[str, Mapping[str, Any]],
    object_bbox_and_relationship: Mapping[str, Sequence[Mapping[str, Any]]],
    frame_list: Sequence[str] | None = None,
) -> Path:
    """Write ``root/annotations/`` as the release has it.

    Args:
        root: the AG root folder (``frames/`` lives beside ``annotations/``).
        person_bbox: frame_key -> person record (``bbox`` xyxy float32 (N, 4),
            ``bbox_score``, ``bbox_size`` (w, h), ``bbox_mode``, keypoints).
        object_bbox_and_relationship: frame_key -> list of object records
            (``class`` slash spelling, ``bbox`` xywh or None, ``visible``,
            three relationship lists or None, ``metadata``).
        frame_list: keys for ``frame_list.txt``; defaults to ``person_bbox``'s.

    Returns:
        The annotations folder.
    """
    ann = Path(root) / "annotations"
    write_class_files(ann)
    _atomic_pickle(dict(person_bbox), ann / "person_bbox.pkl")
    _atomic_pickle(dict(object_bbox_and_relationship), ann / "object_bbox_and_relationship.pkl")
    keys = list(person_bbox) if frame_list is None else list(frame_list)
    (ann / "frame_list.txt").write_text("".join(k + "\n" for k in keys))
    return ann
