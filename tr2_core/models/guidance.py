"""Cross-modality guidance inputs: prompts and the cached CLIP text-embedding table.

The table has shape (37 objects, 26 predicates, D) (D = 512 for ViT-B/32) and is
computed once by ``tr2 prompts`` with the frozen CLIP text tower, then stored as
an ``.npz`` (no pickle) with the CLIP model name and weights hashes. Row 0
(background) is all zeros: no relation has a background object.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from tr2_core.errors import WeightsError, clip
from tr2_core.models.model_config import GuidanceConfig
from tr2_core.npz import read_npz
from tr2_core.progress import bar_disabled
from tr2_core.vocab import (
    NUM_OBJECT_CLASSES,
    NUM_PREDICATES,
    OBJECT_CLASSES,
    PREDICATES,
    SPATIAL,
    readable,
)

TEXT_TABLE_VERSION = 1


class ChangeHead(nn.Linear):
    """TR²ᵇⁱⁿ's "did the relation change" classifier on a feature difference.

    ``symmetric`` (``guidance.change_head: abs``): a linear layer on ``|d|``, so the
    differences of A->B and B->A (``d`` and ``-d``) get the same logit; otherwise a
    linear layer on ``d`` (opposite logits for the two directions of one change).
    Parameters are those of the ``nn.Linear(dim, 1)`` it is.
    """

    def __init__(self, dim: int, kind: str = "abs") -> None:
        if kind not in ("abs", "linear"):
            raise ValueError(f"guidance.change_head must be 'abs' or 'linear', got {kind!r}")
        super().__init__(dim, 1)
        self.symmetric = kind == "abs"

    def forward(self, difference: torch.Tensor) -> torch.Tensor:
        """difference (P, dim) = v_t - v_{t-1} -> (P, 1) logit."""
        return super().forward(difference.abs() if self.symmetric else difference)


def prompt(object_index: int, predicate_index: int, cfg: GuidanceConfig | None = None) -> str:
    """Prompt for (object, predicate) with readable names, e.g. "a photo of a person
    looking at a cup or glass or bottle"; spatial predicates use ``cfg.spatial_prompt``
    ("a photo of a {object} {predicate} a person"). Background (0) gives ""."""
    cfg = cfg or GuidanceConfig()
    if object_index == 0:
        return ""
    template = cfg.spatial_prompt if SPATIAL.start <= predicate_index < SPATIAL.stop else cfg.prompt
    return template.format(
        object=readable(OBJECT_CLASSES[object_index]),
        predicate=readable(PREDICATES[predicate_index]),
    )


def prompt_grid(cfg: GuidanceConfig | None = None) -> np.ndarray:
    """(37, 26) str array of all prompts (row 0 empty)."""
    grid = np.empty((NUM_OBJECT_CLASSES, NUM_PREDICATES), dtype=object)
    for o in range(NUM_OBJECT_CLASSES):
        for p in range(NUM_PREDICATES):
            grid[o, p] = prompt(o, p, cfg)
    return grid.astype(str)


@dataclass
class TextTable:
    """CLIP text embeddings of all prompts.

    Attributes:
        table: (37, 26, D) float32 tensor (``encode_text`` output, not normalised; row 0
            zeros).
        prompts: (37, 26) str.
        clip_model: open_clip model name.
        clip_weights: the weights source given (file path or tag; "random-init" for tests).
        clip_weights_sha256: sha256 of the weights file ("" for a tag / random init).
        text_tower_sha256: sha256 over the text-tower state dict actually used.
    """

    table: torch.Tensor
    prompts: np.ndarray
    clip_model: str
    clip_weights: str
    clip_weights_sha256: str
    text_tower_sha256: str

    @property
    def dim(self) -> int:
        return int(self.table.shape[-1])


def file_sha256(path: str | Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def state_sha256(module: nn.Module, prefixes: tuple[str, ...] = ()) -> str:
    """sha256 over the (sorted) names and float32 bytes of a module's state dict,
    restricted to keys starting with one of ``prefixes`` (all when empty)."""
    h = hashlib.sha256()
    for key, value in sorted(module.state_dict().items()):
        if prefixes and not key.startswith(prefixes):
            continue
        h.update(key.encode())
        h.update(value.detach().cpu().float().contiguous().numpy().tobytes())
    return h.hexdigest()


TEXT_TOWER_PREFIXES = ("transformer.", "token_embedding.", "positional_embedding", "ln_final.",
                       "text_projection", "text.")  # fmt: skip


@torch.no_grad()
def encode_prompts(
    clip_model: nn.Module,
    tokenizer,
    prompts: list[str],
    batch_size: int = 128,
    progress: bool = True,
) -> torch.Tensor:
    """(len(prompts), D) float32 ``encode_text`` embeddings, in batches (tqdm bar)."""
    from tqdm import tqdm

    device = next(clip_model.parameters()).device
    out = []
    starts = range(0, len(prompts), batch_size)
    for s in tqdm(starts, desc="CLIP text", unit="batch", disable=bar_disabled(progress)):
        tokens = tokenizer(prompts[s : s + batch_size]).to(device)
        out.append(clip_model.encode_text(tokens).float().cpu())
    return torch.cat(out) if out else torch.zeros(0, 0)


def build_text_table(
    clip_model: nn.Module,
    tokenizer,
    cfg: GuidanceConfig | None = None,
    *,
    clip_name: str = "",
    clip_weights: str = "",
    batch_size: int = 128,
    progress: bool = True,
) -> TextTable:
    """Encode every (object 1..36, predicate) prompt once -> :class:`TextTable`."""
    grid = prompt_grid(cfg)
    flat = [str(p) for p in grid[1:].reshape(-1)]
    emb = encode_prompts(clip_model, tokenizer, flat, batch_size, progress)
    table = torch.zeros(NUM_OBJECT_CLASSES, NUM_PREDICATES, emb.shape[-1])
    table[1:] = emb.reshape(NUM_OBJECT_CLASSES - 1, NUM_PREDICATES, -1)
    weights_path = Path(clip_weights) if clip_weights else None
    return TextTable(
        table=table,
        prompts=grid,
        clip_model=clip_name,
        clip_weights=clip_weights,
        clip_weights_sha256=file_sha256(weights_path)
        if weights_path is not None and weights_path.is_file()
        else "",
        text_tower_sha256=state_sha256(clip_model, TEXT_TOWER_PREFIXES),
    )


def save_text_table(path: str | Path, table: TextTable) -> None:
    """Write ``table`` as an ``.npz`` of plain arrays (no pickle)."""
    np.savez(
        Path(path),
        version=np.int64(TEXT_TABLE_VERSION),
        table=table.table.detach().cpu().numpy().astype(np.float32),
        prompts=np.asarray(table.prompts, dtype=str),
        objects=np.asarray(OBJECT_CLASSES, dtype=str),
        predicates=np.asarray(PREDICATES, dtype=str),
        clip_model=np.asarray(table.clip_model, dtype=str),
        clip_weights=np.asarray(table.clip_weights, dtype=str),
        clip_weights_sha256=np.asarray(table.clip_weights_sha256, dtype=str),
        text_tower_sha256=np.asarray(table.text_tower_sha256, dtype=str),
    )


MAX_TABLE_INFLATION = 64
"""A prompt-table member may inflate at most this much (beyond its first MiB): a
float table compresses a few times, a zip bomb a thousand times."""


def _check_inflation(path: Path) -> None:
    """Bound every member of the ``.npz`` from its zip directory before inflating it
    (``zipfile`` never inflates past the size the directory states)."""
    import zipfile

    try:
        with zipfile.ZipFile(path) as zf:
            members = zf.infolist()
    except (zipfile.BadZipFile, OSError, ValueError, EOFError) as e:
        raise WeightsError(f"text table {path}: not a readable .npz ({type(e).__name__})") from None
    for info in members:
        if info.file_size > max(1 << 20, MAX_TABLE_INFLATION * info.compress_size):
            raise WeightsError(
                f"text table {path}: {info.filename!r} would inflate from "
                f"{info.compress_size:,} to {info.file_size:,} bytes: refused"
            )


def load_text_table(path: str | Path, expected_dim: int | None = None) -> TextTable:
    """Read a table written by :func:`save_text_table` (``allow_pickle=False``).

    Raises:
        WeightsError: missing file, wrong arrays / shape / vocabulary, or a width other
            than ``expected_dim``.
    """
    path = Path(path)
    if not path.is_file():
        raise WeightsError(f"text table not found: {path} (create it with `tr2 prompts`)")
    _check_inflation(path)
    try:
        arrays = read_npz(path)
    except Exception as e:  # noqa: BLE001
        reason = clip(" ".join(str(e).split()))  # one line
        raise WeightsError(
            f"text table {path}: not a readable .npz ({type(e).__name__}: {reason})"
        ) from None
    need = ("table", "prompts", "objects", "predicates", "clip_model", "clip_weights",
            "clip_weights_sha256", "text_tower_sha256")  # fmt: skip
    missing = [k for k in need if k not in arrays]
    if missing:
        raise WeightsError(f"text table {path}: missing array(s) {missing}")
    table = arrays["table"]
    if table.ndim != 3 or table.shape[:2] != (NUM_OBJECT_CLASSES, NUM_PREDICATES):
        raise WeightsError(
            f"text table {path}: 'table' has shape {table.shape}, expected (37, 26, D)"
        )
    if table.dtype.kind != "f" or not np.isfinite(table).all():
        raise WeightsError(f"text table {path}: 'table' is not finite floating point")
    forms = {"prompts": (NUM_OBJECT_CLASSES, NUM_PREDICATES), "objects": (NUM_OBJECT_CLASSES,),
             "predicates": (NUM_PREDICATES,), **{k: () for k in need[4:]}}  # fmt: skip
    for name, shape in forms.items():
        if arrays[name].dtype.kind != "U" or arrays[name].shape != shape:
            raise WeightsError(
                f"text table {path}: {name!r} is {arrays[name].dtype} {arrays[name].shape}, "
                f"expected strings of shape {shape}"
            )
    if tuple(arrays["objects"]) != OBJECT_CLASSES or tuple(arrays["predicates"]) != PREDICATES:
        raise WeightsError(f"text table {path}: object/predicate vocabulary differs from AG's")
    if expected_dim is not None and table.shape[-1] != expected_dim:
        raise WeightsError(
            f"text table {path}: width {table.shape[-1]} but the model expects {expected_dim} "
            "(representation.union_dim = CLIP embed_dim)"
        )
    return TextTable(
        table=torch.from_numpy(table.astype(np.float32)),
        prompts=arrays["prompts"],
        clip_model=str(arrays["clip_model"]),
        clip_weights=str(arrays["clip_weights"]),
        clip_weights_sha256=str(arrays["clip_weights_sha256"]),
        text_tower_sha256=str(arrays["text_tower_sha256"]),
    )
