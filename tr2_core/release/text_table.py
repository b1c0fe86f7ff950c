"""The authors' text table ``data/clip_sentence.npy`` -> tr2's ``text_table.npz``.

The release's table is a float16 (37, 26, 512) array: OpenAI CLIP ViT-B/32's
``encode_text`` of one prompt per (object class, predicate), row 0 included (prompts
about ``__background__``; no relation has a background object, so no output reads it).
It is read with ``allow_pickle=False``, its shape and dtype checked, and its values kept
exactly (float16 -> float32 is exact); the prompts the authors encoded (their
``data/gene_clip_sentence.py``) are recorded beside it.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from tr2_core.errors import WeightsError
from tr2_core.models.guidance import TextTable
from tr2_core.release.clip import OPENAI_CLIP_MODEL
from tr2_core.vocab import NUM_OBJECT_CLASSES, NUM_PREDICATES, OBJECT_CLASSES, PREDICATES, SPATIAL

RELEASE_TABLE_DIM = 512
"""Width of the release's table (OpenAI ViT-B/32's embedding)."""

RELEASE_TABLE_DTYPES = (np.dtype("<f2"), np.dtype("<f4"))
"""The release stores float16; float32 (a re-saved copy) is accepted too."""

_OBJECT_NAMES = {9: "closet or cabinet", 11: "cup or glass or bottle", 23: "notebook or paper",
                 24: "phone or camera", 31: "sofa or couch"}  # fmt: skip
_PREDICATE_NAMES = {0: "looking at", 1: "not looking at", 5: "in front of", 7: "on the side of",
                    10: "covered by", 11: "drinking from", 13: "having it on the back",
                    15: "leaning on", 16: "lying on", 17: "not contacting", 18: "and",
                    19: "sitting on", 20: "standing on", 25: "writing on"}  # fmt: skip
_ON_THE_BACK = 13


def release_prompt_grid() -> np.ndarray:
    """(37, 26) str: the prompts the authors encoded into ``clip_sentence.npy``."""
    grid = np.empty((NUM_OBJECT_CLASSES, NUM_PREDICATES), dtype=object)
    for o, object_name in enumerate(OBJECT_CLASSES):
        obj = _OBJECT_NAMES.get(o, object_name)
        for p, predicate_name in enumerate(PREDICATES):
            rel = _PREDICATE_NAMES.get(p, predicate_name)
            if SPATIAL.start <= p < SPATIAL.stop:
                grid[o, p] = f"a photo of a {obj} {rel} a person"
            elif p == _ON_THE_BACK:
                grid[o, p] = f"a photo of a person having a {obj} on the back"
            else:
                grid[o, p] = f"a photo of a person {rel} a {obj}"
    return grid.astype(str)


def read_release_text_table(path: str | Path, dim: int = RELEASE_TABLE_DIM) -> TextTable:
    """The authors' ``clip_sentence.npy`` as a :class:`TextTable` (float32, values
    exact, the authors' prompts, CLIP model ``ViT-B-32-quickgelu``). ``dim``: the
    table's width (512 for the release; a smaller CLIP's in tests).

    Raises:
        WeightsError: one line naming the file: missing, not a plain ``.npy`` (pickled
            objects are never loaded), shape other than (37, 26, dim), another dtype, or
            NaN/inf values.
    """
    path = Path(path)
    if not path.is_file():
        raise WeightsError(f"text table not found: {path}")
    try:
        array = np.load(path, allow_pickle=False)
    except Exception as e:  # noqa: BLE001 - pickled objects, truncation, not .npy
        raise WeightsError(f"{path}: not a plain .npy array ({e})") from None
    if not isinstance(array, np.ndarray):
        raise WeightsError(f"{path}: holds an archive of arrays, not the (37, 26, 512) table")
    want = (NUM_OBJECT_CLASSES, NUM_PREDICATES, dim)
    if array.shape != want:
        raise WeightsError(f"{path}: table has shape {array.shape}, expected {want}")
    if array.dtype.newbyteorder("<") not in RELEASE_TABLE_DTYPES:
        raise WeightsError(f"{path}: table has dtype {array.dtype}, expected float16")
    table = torch.from_numpy(array.astype(np.float32))
    if not bool(torch.isfinite(table).all()):
        raise WeightsError(f"{path}: table holds NaN/inf values")
    return TextTable(
        table=table,
        prompts=release_prompt_grid(),
        clip_model=OPENAI_CLIP_MODEL,
        clip_weights=f"OpenAI ViT-B/32 (the release's {path.name})",
        clip_weights_sha256="",
        text_tower_sha256="",
    )
