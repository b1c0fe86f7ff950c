"""Golden fingerprint of the synthetic generator: the same seed gives the same
dataset as the generator had when it was one module (commit e3af353, before
the package split and before the temporal options, which default to off).

The digest covers the decoded content (record values, array dtypes/shapes/bytes,
PNG pixels, the per-video meta keys of that version), not the pickle or zlib
bytes, so that it does not depend on the pickle protocol or the zlib build.
If the generator is changed on purpose, regenerate the digest with
``python test/test_synthetic_golden.py`` and say so in the commit.
"""

from __future__ import annotations

import hashlib
import json
import sys
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from tr2_core.data.safe_pickle import safe_load
from tr2_core.data.synthetic import META_FILE, SyntheticConfig, make_synthetic

GOLDEN_CFG = SyntheticConfig(
    videos=10,
    min_frames=3,
    max_frames=7,
    width=160,
    height=96,
    seed=4,
    change_rate=(0.3, 0.9),
    static_fraction=0.2,
    no_person_rate=0.1,
    invisible_rate=0.1,
    short_video_rate=0.1,
    small_box_rate=0.2,
    portrait_rate=0.2,
    person_box="joints",  # the one-module generator's boxes (around every joint)
)
GOLDEN_DIGEST = "9aa1561f4492d43d19e3ceff75f849091e12510229915e58dda072745a95b38f"
META_KEYS_V1 = (
    "video", "split", "frames", "size", "objects", "change_rate", "static", "change_degree",
    "changed_frames", "events", "short", "small", "portrait", "no_person_frames",
    "invisible_objects",
)  # fmt: skip
"""Per-video meta keys of the one-module generator (later versions may add keys)."""


def _feed(h: Any, value: Any) -> None:
    """Hash ``value`` canonically (dicts in key order, arrays by dtype, shape, bytes)."""
    if isinstance(value, np.ndarray):
        h.update(f"nd{value.dtype.str}{value.shape}".encode())
        h.update(np.ascontiguousarray(value).tobytes())
    elif isinstance(value, dict):
        h.update(b"{")
        for k in sorted(value, key=str):
            _feed(h, k)
            _feed(h, value[k])
        h.update(b"}")
    elif isinstance(value, (list, tuple)):
        h.update(b"[" if isinstance(value, list) else b"(")
        for v in value:
            _feed(h, v)
        h.update(b"]")
    else:
        h.update(f"{type(value).__name__}:{value!r};".encode())


def dataset_digest(root: Path) -> str:
    """sha256 over the annotations, the class files, the pixels and the
    version-1 meta of the synthetic dataset at ``root``."""
    ann = root / "annotations"
    h = hashlib.sha256()
    keys = (ann / "frame_list.txt").read_text().splitlines()
    _feed(h, keys)
    for name in ("object_classes.txt", "relationship_classes.txt"):
        _feed(h, (ann / name).read_text())
    person = safe_load(ann / "person_bbox.pkl")
    objects = safe_load(ann / "object_bbox_and_relationship.pkl")
    for key in keys:
        _feed(h, person[key])
        _feed(h, objects[key])
        frame = root / "frames" / key
        if frame.is_file():
            _feed(h, np.asarray(Image.open(frame).convert("RGB")))
    meta = json.loads((ann / META_FILE).read_text())
    _feed(h, [meta["seed"], meta["generator"], meta["format_version"]])
    _feed(h, [{k: v[k] for k in META_KEYS_V1} for v in meta["videos"]])
    return h.hexdigest()


def test_same_seed_same_dataset_as_the_one_module_generator(tmp_path: Path) -> None:
    make_synthetic(tmp_path / "ag", GOLDEN_CFG, progress=False)
    assert dataset_digest(tmp_path / "ag") == GOLDEN_DIGEST


if __name__ == "__main__":  # regenerate the digest (only for an intended change)
    out = Path(sys.argv[1] if len(sys.argv) > 1 else "/tmp/synthetic_golden")
    make_synthetic(out, GOLDEN_CFG, progress=False, overwrite=True)
    print(dataset_digest(out))
