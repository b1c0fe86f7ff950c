"""The authors' trained TR² checkpoints -> tr2 relation-model state dicts.

A released checkpoint is ``{"state_dict": TR2.state_dict()}`` of the authors' ``TR2``
module (qncsn2016/TR2 ``lib/models/tr2_model.py``) for one task. Converting it is mostly
renaming, plus three changes of meaning:

* the message token's first Linear (``rff.diff_two_fc``) takes Concat(previous,
  current) where tr2's takes Concat(current, previous): its input halves swap;
* the box embedding's BatchNorm sees the authors' centre/size, whose width and height
  are ``x2 - x1 + 1`` (centre half a pixel further): tr2's running mean is theirs minus
  (0.5, 0.5, 1, 1);
* the text table (not part of their state dict; ``data/clip_sentence.npy``) goes into
  the text heads' buffer, and the object classifier's third input takes the detector's
  classification layer (from the detector file) into its frozen buffers.

A file holds one task's heads: ``a4 / s4 / c4`` (text heads, PredCls and SGCls) or
``a_rel_compress / ...`` (linear heads, SGDet); the config written for it uses that
kind for every task. Its ``clip.*`` weights are the frozen CLIP (converted by
:mod:`tr2_core.release.clip`). Every key is accounted for -- none missing, none unused,
every shape equal to the tr2 model's -- or the file is refused with one line naming it
and the key.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path

import torch

from tr2_core.config import apply_overrides, from_dict, to_dict
from tr2_core.errors import WeightsError
from tr2_core.models.model_config import ModelConfig, load_model_config
from tr2_core.models.relation_model import RelationModel
from tr2_core.release.clip import TR2_CLIP_PREFIX
from tr2_core.torch_files import load_weights_file

RELEASE_TASKS = ("predcls", "sgcls", "sgdet")
RELEASE_MODEL = "tr2-release"
"""The model config the converted checkpoints are built on."""

BOX_CENTRE_SIZE_SHIFT = (0.5, 0.5, 1.0, 1.0)
"""The authors' (cx, cy, w, h) minus tr2's, for the same box (their ``w = x2 - x1 + 1``)."""

FAMILY_HEADS = {"a": "attention", "s": "spatial", "c": "contacting"}

_RENAMES: tuple[tuple[str, str], ...] = (
    (r"object_classifier\.obj_embed\.", "object_classifier.class_embed."),
    (r"object_classifier\.pos_embed\.", "object_classifier.box_embed."),
    (r"object_classifier\.decoder_lin\.", "object_classifier.mlp."),
    (r"subj_fc\.", "representation.subject_proj."),
    (r"obj_fc\.", "representation.object_proj."),
    (r"obj_embed\.", "representation.subject_embed."),
    (r"obj_embed2\.", "representation.object_embed."),
    (r"rff\.encoder\.layers\.(\d+)\.", r"fusion.spatial.layers.\1."),
    (r"rff\.decoder\.layers\.(\d+)\.multihead2\.", r"fusion.temporal.layers.\1.attn."),
    (r"rff\.decoder\.layers\.(\d+)\.linear1\.", r"fusion.temporal.layers.\1.ffn.0."),
    (r"rff\.decoder\.layers\.(\d+)\.linear2\.", r"fusion.temporal.layers.\1.ffn.3."),
    (r"rff\.decoder\.layers\.(\d+)\.norm3\.", r"fusion.temporal.layers.\1.norm1."),
    (r"rff\.diff_two_fc\.", "fusion.message.fuse."),
    (r"rff\.att_fc1\.", "fusion.message.fc1."),
    (r"rff\.att_fc2\.", "fusion.message.fc2."),
    (r"([asc])4\.", r"heads.proj.\1."),
    (r"([asc])_rel_compress\.", r"heads.heads.\1."),
    (r"change_([asc])diff\.", r"guidance_proj.\1."),
)
"""Authors' key prefix (regex, anchored at the start) -> tr2's; the family letter
``a / s / c`` is spelt out afterwards."""


def tr2_key(key: str) -> str | None:
    """The tr2 relation-model key of an authors' key, or None when none maps to it."""
    for pattern, replacement in _RENAMES:
        match = re.match(pattern, key)
        if match:
            new = match.expand(replacement) + key[match.end() :]
            for letter, family in FAMILY_HEADS.items():
                for stem in ("heads.proj.", "heads.heads.", "guidance_proj."):
                    if new.startswith(f"{stem}{letter}."):
                        new = f"{stem}{family}." + new[len(stem) + 2 :]
            return new
    return None


def head_kind(state: dict[str, torch.Tensor]) -> str | None:
    """``text`` (a4 / s4 / c4), ``linear`` (a_rel_compress / ...) or None (neither / both)."""
    text = "a4.weight" in state
    linear = "a_rel_compress.weight" in state
    return None if text == linear else ("text" if text else "linear")


def release_model_config(task: str, base: str | Path | ModelConfig = RELEASE_MODEL) -> ModelConfig:
    """The model config of a converted ``task`` checkpoint: ``base`` (the release's
    choices) with the object classifier's third input on and the file's head kind for
    every task (text heads for PredCls / SGCls files, linear heads for SGDet)."""
    if task not in RELEASE_TASKS:
        raise ValueError(f"task must be one of {RELEASE_TASKS}, got {task!r}")
    kind = "linear" if task == "sgdet" else "text"
    overrides = (
        "object_classifier.class_distribution=true",
        f"heads.classifier={kind}",
        "heads.sgdet_classifier=null",
    )
    if isinstance(base, ModelConfig):
        data = apply_overrides(to_dict(base), overrides)
        return from_dict(ModelConfig, data, "release model config")
    return load_model_config(base, overrides)


def read_release_checkpoint(path: str | Path) -> dict[str, torch.Tensor]:
    """The ``state_dict`` of an authors' checkpoint (``torch.load(weights_only=True)``).

    Raises:
        WeightsError: unreadable, or not ``{"state_dict": {name: tensor}}``.
    """
    path = Path(path)
    data = load_weights_file(path, "TR² checkpoint")
    if not isinstance(data, dict) or not isinstance(data.get("state_dict"), dict):
        raise WeightsError(f"{path}: not an authors' TR² checkpoint (no 'state_dict' dict)")
    state = data["state_dict"]
    for key, value in state.items():
        if not isinstance(key, str) or not isinstance(value, torch.Tensor):
            raise WeightsError(f"{path}: state_dict entry {key!r:.60} is not a named tensor")
    return state


def _swap_message_halves(weight: torch.Tensor) -> torch.Tensor:
    """(d, 2d) Linear weight on Concat(previous, current) -> on Concat(current, previous)."""
    half = weight.shape[1] // 2
    return torch.cat([weight[:, half:], weight[:, :half]], dim=1)


def _shift_box_mean(mean: torch.Tensor) -> torch.Tensor:
    return mean - torch.tensor(BOX_CENTRE_SIZE_SHIFT, dtype=mean.dtype, device=mean.device)


VALUE_CHANGES: dict[str, Callable[[torch.Tensor], torch.Tensor]] = {
    "fusion.message.fuse.weight": _swap_message_halves,
    "object_classifier.box_embed.0.running_mean": _shift_box_mean,
}
"""tr2 keys whose values change meaning, not only name (see the module docstring)."""


def convert_release_relation(
    state: dict[str, torch.Tensor],
    source: str,
    task: str,
    config: ModelConfig,
    *,
    text_table: torch.Tensor | None,
    detector_cls: tuple[torch.Tensor, torch.Tensor] | None,
    value_changes: dict[str, Callable[[torch.Tensor], torch.Tensor]] | None = None,
) -> dict[str, torch.Tensor]:
    """An authors' TR² ``state_dict`` for ``task`` -> tr2's relation-model state dict for
    ``config`` (:func:`release_model_config`), float32, in tr2's key order.

    Args:
        state: the checkpoint's ``state_dict`` (its ``clip.*`` keys are the frozen CLIP,
            converted separately, and are not part of the result).
        source: the file, for messages.
        text_table: (37, 26, D) table for text heads (PredCls / SGCls files).
        detector_cls: the detector's classification layer (weight (37, entity_dim),
            bias (37,)) for the object classifier's third input.
        value_changes: tr2 key -> value transform (default :data:`VALUE_CHANGES`; tests
            drop one to show it is needed).
    Raises:
        WeightsError: one line naming ``source`` and the first key missing, unused or of
            another shape, or a head kind that is not ``task``'s.
    """
    if task not in RELEASE_TASKS:
        raise ValueError(f"task must be one of {RELEASE_TASKS}, got {task!r}")
    kind = head_kind(state)
    want_kind = "linear" if task == "sgdet" else "text"
    if kind != want_kind:
        found = {"text": "a4 (PredCls / SGCls)", "linear": "a_rel_compress (SGDet)"}.get(
            kind or "", "no single kind of"
        )
        raise WeightsError(f"{source}: holds {found} heads, not a {task} checkpoint")
    changes = VALUE_CHANGES if value_changes is None else value_changes
    with torch.device("meta"):
        reference = RelationModel(config).state_dict()
    converted: dict[str, torch.Tensor] = {}
    for key, value in state.items():
        if key.startswith(TR2_CLIP_PREFIX):
            continue
        new = tr2_key(key)
        if new is None or new not in reference:
            raise WeightsError(f"{source}: key {key} has no place in tr2's {task} model")
        value = value.detach()
        if value.is_floating_point():
            value = value.to(torch.float32)
        if new in changes:
            value = changes[new](value)
        if tuple(value.shape) != tuple(reference[new].shape):
            raise WeightsError(
                f"{source}: {key} has shape {tuple(value.shape)}, tr2's {new} needs "
                f"{tuple(reference[new].shape)}"
            )
        converted[new] = value.contiguous()
    if "heads.text_table" in reference:
        if text_table is None:
            raise WeightsError(f"{source}: a {task} checkpoint needs the text table")
        converted["heads.text_table"] = text_table.to(torch.float32)
        converted["heads.text_table_set"] = torch.ones((), dtype=torch.bool)
    if "object_classifier.detector_cls_weight" in reference:
        if detector_cls is None:
            raise WeightsError(
                f"{source}: the object classifier's class-distribution input needs the "
                "detector's classification layer (give the detector file)"
            )
        converted["object_classifier.detector_cls_weight"] = detector_cls[0].float()
        converted["object_classifier.detector_cls_bias"] = detector_cls[1].float()
    missing = [k for k in reference if k not in converted]
    if missing:
        raise WeightsError(
            f"{source}: no weights for tr2's {missing[0]} ({len(missing)} missing) in a "
            f"{task} checkpoint"
        )
    for key in ("heads.text_table", "object_classifier.detector_cls_weight"):
        if key in converted and tuple(converted[key].shape) != tuple(reference[key].shape):
            raise WeightsError(
                f"{source}: {key} has shape {tuple(converted[key].shape)}, "
                f"the model needs {tuple(reference[key].shape)}"
            )
    return {k: converted[k] for k in reference}


def read_detector_classifier(path: str | Path) -> tuple[torch.Tensor, torch.Tensor]:
    """``RCNN_cls_score`` (weight (37, 2048), bias (37,)) of the authors' detector file
    (jwyang faster-rcnn.pytorch: ``{"model": state_dict, ...}``), read with
    ``weights_only=True``."""
    path = Path(path)
    data = load_weights_file(path, "detector weights")
    model = data.get("model") if isinstance(data, dict) else None
    if not isinstance(model, dict):
        raise WeightsError(f"{path}: not a faster-rcnn.pytorch detector (no 'model' dict)")
    try:
        weight, bias = model["RCNN_cls_score.weight"], model["RCNN_cls_score.bias"]
    except KeyError as e:
        raise WeightsError(f"{path}: detector has no {e.args[0]}") from None
    if not isinstance(weight, torch.Tensor) or weight.ndim != 2 or weight.shape[0] != 37:
        raise WeightsError(f"{path}: RCNN_cls_score.weight is not a (37, C) tensor")
    if not isinstance(bias, torch.Tensor) or tuple(bias.shape) != (37,):
        raise WeightsError(f"{path}: RCNN_cls_score.bias is not a (37,) tensor")
    return weight.float(), bias.float()
