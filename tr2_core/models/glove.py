"""GloVe initialisation of the class embeddings (authors: GloVe 6B, 200-d).

The user passes the standard text file (``glove.6B.200d.txt``: one word and its
numbers per line, space-separated) with ``--glove PATH``; without it the class
embeddings keep their random initialisation. Either way the choice is logged.
The file is read once, streaming, keeping only the words the class names need.
"""

from __future__ import annotations

import logging
import math
from pathlib import Path

import torch
from torch import nn

from tr2_core.errors import WeightsError
from tr2_core.vocab import OBJECT_CLASSES

log = logging.getLogger(__name__)


def class_words(name: str) -> tuple[str, ...]:
    """Words tried for a class name, in order (authors' rule): the part before the first
    ``/`` (``cup/glass/bottle`` -> ``cup``), then its longest space-separated word."""
    head = name.split("/")[0]
    longest = max(head.split(" "), key=len)
    return (head,) if longest == head else (head, longest)


def read_glove(path: str | Path, words: set[str], dim: int) -> dict[str, torch.Tensor]:
    """Vectors of ``words`` found in a GloVe text file, each (dim,) float32.

    Raises:
        WeightsError: missing file, or a needed word's line without ``dim`` numbers.
    """
    path = Path(path)
    if not path.is_file():
        raise WeightsError(f"GloVe file not found: {path} (e.g. glove.6B.200d.txt)")
    found: dict[str, torch.Tensor] = {}
    with open(path, encoding="utf-8", errors="replace") as f:
        for line_no, line in enumerate(f, start=1):
            word, _, rest = line.rstrip("\n").partition(" ")
            if word not in words or word in found:
                continue
            try:
                values = [float(v) for v in rest.split()]
            except ValueError:
                values = []
            if len(values) != dim:
                raise WeightsError(
                    f"GloVe file {path}, line {line_no} ({word!r}): expected {dim} numbers, "
                    f"got {len(values)} (representation.class_embed_dim must match the file)"
                )
            if not all(math.isfinite(v) for v in values):  # 'nan' and 'inf' parse as floats
                raise WeightsError(
                    f"GloVe file {path}, line {line_no} ({word!r}): holds NaN or infinite values"
                )
            found[word] = torch.tensor(values, dtype=torch.float32)
            if len(found) == len(words):
                break
    return found


def glove_class_vectors(
    path: str | Path, dim: int, generator: torch.Generator | None = None
) -> tuple[torch.Tensor, list[str]]:
    """(37, dim) class vectors from a GloVe file and the class names not found (those
    rows, e.g. ``__background__``, are N(0, 1) as in the authors' code)."""
    wanted = {w for name in OBJECT_CLASSES for w in class_words(name)}
    vectors = read_glove(path, wanted, dim)
    out = torch.randn(len(OBJECT_CLASSES), dim, generator=generator)
    missing = []
    for i, name in enumerate(OBJECT_CLASSES):
        hit = next((vectors[w] for w in class_words(name) if w in vectors), None)
        if hit is None:
            missing.append(name)
        else:
            out[i] = hit
    return out, missing


def init_class_embeddings(embeddings: list[nn.Embedding], glove_path: str | Path | None) -> str:
    """Initialise class embeddings from GloVe (all with the same vectors, as the authors)
    or leave them random; logs and returns what was done. Each is a (37, dim) table of
    all classes, or a (36, dim) table of the objects alone (background row dropped: the
    object classifier's class-distribution table, ``obj_classes[1:]`` in the authors'
    code)."""
    for emb in embeddings:
        if emb.num_embeddings not in (len(OBJECT_CLASSES), len(OBJECT_CLASSES) - 1):
            raise ValueError(f"a class embedding has {emb.num_embeddings} rows, not 37 or 36")
    if glove_path is None:
        message = "class embeddings: random init (no --glove file; the authors use GloVe-200)"
        log.info(message)
        return message
    dim = embeddings[0].embedding_dim
    vectors, missing = glove_class_vectors(glove_path, dim)
    with torch.no_grad():
        for emb in embeddings:
            if emb.embedding_dim != dim:
                raise ValueError(f"class embeddings of {emb.embedding_dim} and {dim} dimensions")
            emb.weight.copy_(vectors[len(OBJECT_CLASSES) - emb.num_embeddings :])
    message = (
        f"class embeddings: GloVe {dim}-d from {glove_path} "
        f"({len(OBJECT_CLASSES) - len(missing)}/{len(OBJECT_CLASSES)} classes; random: "
        f"{', '.join(missing) or 'none'})"
    )
    log.info(message)
    return message
