"""OpenAI's CLIP (the TorchScript ``ViT-B-32.pt``, or the ``clip.*`` weights inside an
authors' TR² checkpoint) -> an open_clip state dict for ``ViT-B-32-quickgelu``.

OpenAI's CLIP uses QuickGELU (``x * sigmoid(1.702 x)``) in every MLP; open_clip's
``ViT-B-32`` uses exact GELU, so the same weights loaded there give other embeddings
(0.022 apart in ViT-B/32's). The key names of OpenAI's ``model.py`` and open_clip's
``CLIP`` are the same; the conversion drops the three integer attributes the archive
carries (``input_resolution``, ``context_length``, ``vocab_size``, as OpenAI's own
``build_model`` does), casts the fp16 weights to float32 and checks every key and shape
against the open_clip model it is for.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from tr2_core.errors import WeightsError
from tr2_core.release.torchscript import is_torchscript_archive, read_torchscript_tensors
from tr2_core.torch_files import load_weights_file

OPENAI_CLIP_MODEL = "ViT-B-32-quickgelu"
"""The open_clip model OpenAI's ViT-B/32 weights mean what they meant in."""

ARCHIVE_ATTRIBUTES = ("input_resolution", "context_length", "vocab_size")
"""Integer scalars OpenAI's archive stores beside the weights (no weights)."""

TR2_CLIP_PREFIX = "clip."
"""Prefix of the CLIP weights inside an authors' TR² checkpoint's ``state_dict``."""


def read_openai_clip(path: str | Path) -> dict[str, torch.Tensor]:
    """OpenAI-layout CLIP weights from ``path``: a TorchScript archive (read without
    running it, :func:`~tr2_core.release.torchscript.read_torchscript_tensors`), an
    authors' TR² checkpoint (its ``clip.*`` weights) or a plain OpenAI state dict
    (``torch.load(weights_only=True)``).

    Raises:
        WeightsError: unreadable, or none of those layouts (no ``visual.proj``).
    """
    path = Path(path)
    if not path.is_file():
        raise WeightsError(f"CLIP weights file not found: {path}")
    if is_torchscript_archive(path):
        state = read_torchscript_tensors(path)
    else:
        data = load_weights_file(path, "CLIP weights")
        if isinstance(data, dict) and isinstance(data.get("state_dict"), dict):
            inner = data["state_dict"]
            state = {
                k[len(TR2_CLIP_PREFIX) :]: v
                for k, v in inner.items()
                if isinstance(k, str) and k.startswith(TR2_CLIP_PREFIX)
            }
            if not state:
                raise WeightsError(f"{path}: a checkpoint without clip.* weights")
        elif isinstance(data, dict):
            state = data
        else:
            raise WeightsError(f"{path}: holds a {type(data).__name__}, not CLIP weights")
    if "visual.proj" not in state:
        raise WeightsError(
            f"{path}: not OpenAI ViT CLIP weights (no visual.proj among {len(state)} keys)"
        )
    return state


def open_clip_reference_state(
    model_name: str = OPENAI_CLIP_MODEL, overrides: dict[str, Any] | None = None
) -> dict[str, torch.Tensor]:
    """Keys and shapes (random values) of the open_clip model the weights are for."""
    import open_clip

    config = open_clip.get_model_config(model_name)
    if config is None or not config.get("quick_gelu", False):
        raise WeightsError(
            f"open_clip model {model_name!r} does not use QuickGELU; OpenAI's CLIP weights "
            f"need it (e.g. {OPENAI_CLIP_MODEL})"
        )
    model = open_clip.create_model(model_name, pretrained=None, device="meta", **(overrides or {}))
    return model.state_dict()


def convert_openai_clip(
    state: dict[str, torch.Tensor],
    source: str,
    *,
    model_name: str = OPENAI_CLIP_MODEL,
    overrides: dict[str, Any] | None = None,
) -> dict[str, torch.Tensor]:
    """OpenAI-layout CLIP weights -> a float32 open_clip state dict of ``model_name``
    (with ``overrides``, as ``clip.overrides`` in a model config), in open_clip's key
    order. Every key is accounted for: none missing, none unused, shapes equal.

    Raises:
        WeightsError: one line naming ``source`` and the first offending key.
    """
    reference = open_clip_reference_state(model_name, overrides)
    for key in ARCHIVE_ATTRIBUTES:
        value = state.get(key)
        if value is not None and (not isinstance(value, torch.Tensor) or value.numel() != 1):
            raise WeightsError(f"{source}: {key} should be an integer scalar")
    weights = {k: v for k, v in state.items() if k not in ARCHIVE_ATTRIBUTES}
    missing = [k for k in reference if k not in weights]
    if missing:
        raise WeightsError(
            f"{source}: CLIP weight {missing[0]} is missing ({len(missing)} missing) for "
            f"{model_name}"
        )
    unused = [k for k in weights if k not in reference]
    if unused:
        raise WeightsError(
            f"{source}: CLIP key {unused[0]} is not part of {model_name} ({len(unused)} unused)"
        )
    out: dict[str, torch.Tensor] = {}
    for key, want in reference.items():
        value = weights[key]
        if not isinstance(value, torch.Tensor) or not value.is_floating_point():
            raise WeightsError(f"{source}: CLIP weight {key} is not a floating-point tensor")
        if tuple(value.shape) != tuple(want.shape):
            raise WeightsError(
                f"{source}: CLIP weight {key} has shape {tuple(value.shape)}, "
                f"{model_name} needs {tuple(want.shape)}"
            )
        value = value.detach().to(torch.float32).contiguous()
        if not bool(torch.isfinite(value).all()):
            raise WeightsError(f"{source}: CLIP weight {key} holds NaN/inf values")
        out[key] = value
    return out
