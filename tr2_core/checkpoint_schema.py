"""The schema of a ``tr2 train`` checkpoint, checked before anything is built from it.

:func:`tr2_core.run.load_checkpoint` reads a checkpoint with ``weights_only=True`` (no
code runs) and hands it to :func:`check_checkpoint`, the one gate every reader passes
(``tr2 test``, ``tr2 train --resume``, ``tr2 video``, ``tr2 bag``, the ROS node, all
through :func:`tr2_core.run.load_trained` or ``load_checkpoint``). A refusal is one
line: ``PATH: FIELD: what is wrong``.

What is checked, field by field (the keys are described in
:mod:`tr2_core.train.checkpoint`):

``model``        a dict name -> tensor, every floating value finite; its names and
                 shapes exactly those of the relation model ``config.model`` describes
                 (built on the ``meta`` device: no memory), so a checkpoint can only
                 make tr2 allocate what the file itself holds
``config``       ``run``, ``model`` and ``train`` sections, each a dict; ``run`` and
                 ``model`` typed and validated as the configs they are; every size of
                 the model bounded (:data:`MODEL_LIMITS`, anchor lists, CLIP overrides,
                 :data:`MAX_PARAMETERS`)
                 before anything is built; ``train.seed`` an integer (the whole
                 ``train`` section is typed by :mod:`tr2_core.train.checkpoint`)
``epoch``        an integer in [0, :data:`MAX_EPOCH`]
``best_metric``  a number, not NaN or +inf (-inf: nothing evaluated yet)
``optimizer``, ``scheduler``, ``scaler``  dicts (their contents are checked by
                 torch when a resumed run loads them)
``rng``          the generator states of :func:`tr2_core.train.checkpoint.get_rng_state`
                 with their exact shapes and ranges
``extractor_fingerprint``  a short hex string (or absent)
``random_init``  a bool (or absent)
``log_record``   absent, None, or a JSON object (at most :data:`MAX_LOG_RECORD_CHARS`)
                 whose ``epoch`` is the checkpoint's

Keys tr2 does not use are ignored.
"""

from __future__ import annotations

import functools
import json
import math
import re
from pathlib import Path
from typing import Any

import torch

from tr2_core.config import from_dict, to_dict
from tr2_core.errors import ConfigError, WeightsError, clip, describe
from tr2_core.models import ModelConfig, create_relation_model

MAX_EPOCH = 1_000_000
MAX_LOG_RECORD_CHARS = 1 << 20
MAX_PARAMETERS = 2_000_000_000
"""Most parameters (frozen CLIP + relation model) a checkpoint's config may describe:
8 GB as float32, four times the paper model."""
MAX_OVERRIDE_INT = 1 << 16
"""Largest integer in ``clip.overrides`` (widths, layers, sizes of the CLIP towers)."""

MODEL_LIMITS: dict[str, int] = {
    "detector.min_size": 8192,
    "detector.max_size": 8192,
    "detector.rpn_pre_nms_top_n": 100_000,
    "detector.rpn_post_nms_top_n": 100_000,
    "detector.roi_output_size": 64,
    "detector.roi_sampling_ratio": 64,
    "detector.detections_per_image": 10_000,
    "detector.frames_per_batch": 4096,
    "clip.crop_sampling_ratio": 64,
    "clip.crop_batch_size": 1 << 16,
    "representation.entity_dim": 1 << 16,
    "representation.union_dim": 1 << 16,
    "representation.entity_proj_dim": 1 << 16,
    "representation.class_embed_dim": 1 << 16,
    "representation.geometry_mask_size": 1024,
    "representation.geometry_dim": 1 << 16,
    "fusion.spatial_layers": 256,
    "fusion.temporal_layers": 256,
    "fusion.heads": 1024,
    "fusion.ffn_dim": 1 << 18,
    "fusion.temporal_window": 1 << 20,
    "object_classifier.hidden_dim": 1 << 18,
}
"""Upper bounds of the model config's sizes in a checkpoint (dotted key -> largest
value); every one of them is also at least 0 (sizes) or 1 (see :data:`_POSITIVE`)."""

_POSITIVE = {
    "detector.min_size", "detector.max_size", "detector.roi_output_size",
    "detector.detections_per_image", "detector.frames_per_batch", "clip.crop_batch_size",
    "representation.union_dim", "representation.entity_proj_dim",
    "representation.class_embed_dim", "fusion.heads", "fusion.ffn_dim",
    "object_classifier.hidden_dim",
}  # fmt: skip
_FINGERPRINT = re.compile(r"[0-9a-f]{1,128}")


def refuse(path: str | Path, field: str, reason: str) -> WeightsError:
    """The one-line refusal of a checkpoint field."""
    return WeightsError(f"{path}: {field}: {reason}; the checkpoint is refused")


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


# --------------------------------------------------------------------------- the gate
def check_checkpoint(ckpt: Any, path: str | Path) -> None:
    """Check every field tr2 reads from a checkpoint (module docstring), in an order
    where each check allocates nothing the previous ones did not bound.

    Raises:
        WeightsError: one line naming the file, the field and what is wrong.
    """
    if not isinstance(ckpt, dict):
        raise WeightsError(f"{path}: not a tr2 checkpoint (a {type(ckpt).__name__}, not a dict)")
    missing = [k for k in ("model", "config", "epoch") if k not in ckpt]
    if missing:
        raise WeightsError(f"{path}: not a tr2 checkpoint (missing {missing})")
    _check_scalars(ckpt, path)
    check_state_dict(ckpt["model"], path)  # tensors, finite (already in memory)
    model_cfg = check_config(ckpt["config"], path)
    check_state_dict(ckpt["model"], path, model_cfg, finite=False)  # names and shapes
    for key in ("optimizer", "scheduler", "scaler"):
        if key in ckpt and not isinstance(ckpt[key], dict):
            raise refuse(path, key, f"a {type(ckpt[key]).__name__}, not a state dict")
    if "rng" in ckpt:
        check_rng_state(ckpt["rng"], path)


def _check_scalars(ckpt: dict[str, Any], path: str | Path) -> None:
    epoch = ckpt["epoch"]
    if not _is_int(epoch):
        raise refuse(path, "epoch", f"{describe(epoch)} is not an integer")
    if not 0 <= epoch <= MAX_EPOCH:
        raise refuse(path, "epoch", f"{epoch} is not in [0, {MAX_EPOCH}]")
    best = ckpt.get("best_metric", -math.inf)
    if not _is_number(best) or math.isnan(best) or best == math.inf:
        raise refuse(path, "best_metric", f"{describe(best)} is not a number or -inf")
    if not isinstance(ckpt.get("random_init", False), bool):
        raise refuse(path, "random_init", f"{describe(ckpt['random_init'])} is not true/false")
    fingerprint = ckpt.get("extractor_fingerprint")
    if fingerprint is not None and not (
        isinstance(fingerprint, str) and _FINGERPRINT.fullmatch(fingerprint)
    ):
        raise refuse(path, "extractor_fingerprint", f"{describe(fingerprint)} is not a hex digest")
    record = ckpt.get("log_record")
    if record is not None:
        if not isinstance(record, str) or len(record) > MAX_LOG_RECORD_CHARS:
            raise refuse(path, "log_record", "not a JSON string of at most 1 MiB")
        try:
            parsed = json.loads(record)
        except ValueError:
            parsed = None
        if not isinstance(parsed, dict) or parsed.get("epoch") != epoch:
            raise refuse(path, "log_record", f"not the JSON record of epoch {epoch}")


# --------------------------------------------------------------------------- config
def check_config(config: Any, path: str | Path) -> Any:
    """The ``config`` field -> its typed, size-checked ModelConfig.

    Raises:
        WeightsError: a section missing or of the wrong type, a bad value, a size
            beyond :data:`MODEL_LIMITS` or :data:`MAX_PARAMETERS`.
    """
    from tr2_core.run import RunSpec  # deferred: run.py imports this module (a cycle)

    if not isinstance(config, dict):
        raise refuse(path, "config", f"a {type(config).__name__}, not a dict")
    for section in ("run", "model", "train"):
        if not isinstance(config.get(section), dict):
            found = "missing" if section not in config else type(config[section]).__name__
            raise refuse(path, f"config.{section}", f"{found}, not a dict")
    seed = config["train"].get("seed")
    if not _is_int(seed) or not 0 <= seed < 2**63:
        raise refuse(path, "config.train.seed", f"{describe(seed)} is not an integer >= 0")
    _check_model_sizes(config["model"], path)
    try:
        from_dict(RunSpec, config["run"], "config.run")
        model_cfg = from_dict(ModelConfig, config["model"], "config.model")
    except ConfigError as e:
        raise WeightsError(f"{path}: {clip(str(e))}; the checkpoint is refused") from None
    _check_parameter_count(model_cfg, path)
    return model_cfg


def _check_model_sizes(model: dict[str, Any], path: str | Path) -> None:
    """Bound every size in the raw ``model`` section before it is typed or built."""
    for dotted, limit in MODEL_LIMITS.items():
        section, _, key = dotted.partition(".")
        part = model.get(section)
        if not isinstance(part, dict) or key not in part:
            continue  # absent: the default; typed later
        value = part[key]
        low = 1 if dotted in _POSITIVE else 0
        if _is_int(value) and not low <= value <= limit:
            raise refuse(path, f"config.model.{dotted}", f"{value} is not in [{low}, {limit}]")
    detector = model.get("detector")
    for key in ("anchor_sizes", "aspect_ratios"):
        values = detector.get(key) if isinstance(detector, dict) else None
        if isinstance(values, (list, tuple)) and not (
            0 < len(values) <= 32
            and all(_is_number(v) and 0 < v <= MODEL_LIMITS["detector.max_size"] for v in values)
        ):
            raise refuse(path, f"config.model.detector.{key}", "not 1 to 32 numbers in (0, 8192]")
    overrides = (
        model.get("clip", {}).get("overrides") if isinstance(model.get("clip"), dict) else None
    )
    if overrides is not None:
        _check_overrides(overrides, path, "config.model.clip.overrides", depth=0)


def _check_overrides(value: Any, path: str | Path, where: str, depth: int) -> None:
    if depth > 3:
        raise refuse(path, where, "nested more than 3 levels")
    if isinstance(value, dict):
        if len(value) > 64:
            raise refuse(path, where, f"{len(value)} entries (at most 64)")
        for k, v in value.items():
            _check_overrides(v, path, f"{where}.{k}", depth + 1)
    elif isinstance(value, (list, tuple)):
        if len(value) > 64:
            raise refuse(path, where, f"{len(value)} items (at most 64)")
        for i, v in enumerate(value):
            _check_overrides(v, path, f"{where}[{i}]", depth + 1)
    elif _is_number(value):
        if not (math.isfinite(value) and abs(value) <= MAX_OVERRIDE_INT):
            raise refuse(path, where, f"{describe(value)} is not in [-{MAX_OVERRIDE_INT}, "
                         f"{MAX_OVERRIDE_INT}]")  # fmt: skip
    elif isinstance(value, str) and len(value) > 256:
        raise refuse(path, where, "a string of more than 256 characters")


def meta_relation_state(model_cfg: Any) -> dict[str, torch.Size]:
    """Names and shapes of the relation model's state dict for ``model_cfg``, built on
    the ``meta`` device (no memory, no weights); the last few configs are remembered."""
    return dict(_meta_relation_state(json.dumps(to_dict(model_cfg), sort_keys=True)))


@functools.lru_cache(maxsize=8)
def _meta_relation_state(config_json: str) -> tuple[tuple[str, torch.Size], ...]:
    model_cfg = from_dict(ModelConfig, json.loads(config_json))
    with torch.device("meta"):
        relation = create_relation_model(model_cfg, device="meta")
    return tuple((name, t.shape) for name, t in relation.state_dict().items())


def _clip_parameters(model_cfg: Any) -> int:
    """Parameters of the frozen CLIP of ``model_cfg``, counted on the ``meta`` device."""
    return _clip_parameter_count(
        model_cfg.clip.model_name, json.dumps(model_cfg.clip.overrides, sort_keys=True)
    )


@functools.lru_cache(maxsize=8)
def _clip_parameter_count(model_name: str, overrides_json: str) -> int:
    import logging

    import open_clip

    quiet = logging.getLogger()
    level = quiet.level
    quiet.setLevel(logging.ERROR)  # open_clip warns about the (intended) random init
    try:
        with torch.device("meta"):
            model = open_clip.create_model(
                model_name, pretrained=None, device="meta", **json.loads(overrides_json)
            )
    finally:
        quiet.setLevel(level)
    return sum(t.numel() for t in model.state_dict().values())


def _check_parameter_count(model_cfg: Any, path: str | Path) -> None:
    try:
        relation = sum(math.prod(s) for s in meta_relation_state(model_cfg).values())
        frozen = _clip_parameters(model_cfg)
    except (ConfigError, WeightsError) as e:
        raise WeightsError(
            f"{path}: config.model: {clip(str(e))}; the checkpoint is refused"
        ) from None
    except Exception as e:  # open_clip / torch reject a combination of sizes
        raise refuse(path, "config.model", f"cannot be built ({type(e).__name__}: "
                     f"{clip(str(e).splitlines()[0] if str(e) else '')})") from None  # fmt: skip
    if relation + frozen > MAX_PARAMETERS:
        raise refuse(
            path, "config.model",
            f"describes {relation + frozen:,} parameters (at most {MAX_PARAMETERS:,})",
        )  # fmt: skip


# --------------------------------------------------------------------------- weights
def check_state_dict(
    state: Any, path: str | Path, model_cfg: Any = None, *, finite: bool = True
) -> None:
    """The ``model`` field: tensors, finite, and (with ``model_cfg``) exactly the names
    and shapes of that config's relation model.

    Raises:
        WeightsError: naming the file and the first offending weight.
    """
    if not isinstance(state, dict):
        raise WeightsError(f"{path}: 'model' is a {type(state).__name__}, not a state dict")
    for name, tensor in state.items():
        if not isinstance(name, str) or not isinstance(tensor, torch.Tensor):
            raise refuse(path, f"model[{describe(name)}]", "not a named tensor")
        if finite and tensor.is_floating_point():
            bad = int((~torch.isfinite(tensor)).sum())
            if bad:
                raise WeightsError(
                    f"{path}: weight {name} {tuple(tensor.shape)} has {bad} NaN/inf values; "
                    "the checkpoint is unusable"
                )
    if model_cfg is None:
        return
    expected = meta_relation_state(model_cfg)
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    if missing or unexpected:
        raise refuse(
            path, "model",
            f"does not fit config.model ({len(missing)} weights missing, e.g. "
            f"{describe(missing[:2])}; {len(unexpected)} unexpected, e.g. "
            f"{describe(unexpected[:2])})",
        )  # fmt: skip
    for name, shape in expected.items():
        if state[name].shape != shape:
            raise refuse(
                path, f"model[{name!r}]",
                f"shape {tuple(state[name].shape)}, but config.model gives {tuple(shape)}",
            )  # fmt: skip


# --------------------------------------------------------------------------- rng
def check_rng_state(rng: Any, path: str | Path) -> None:
    """The ``rng`` field: python, numpy and torch (and CUDA) generator states of the
    exact form :func:`tr2_core.train.checkpoint.get_rng_state` writes.

    Raises:
        WeightsError: naming the generator and what is wrong.
    """

    def fail(field: str, reason: str) -> WeightsError:
        return refuse(path, f"rng.{field}", reason)

    def words(t: Any, n: int, field: str) -> None:
        if not (isinstance(t, torch.Tensor) and t.dtype == torch.int64 and t.shape == (n,)):
            raise fail(field, f"not an int64 tensor of {n} values")
        if bool(((t < 0) | (t >= 2**32)).any()):
            raise fail(field, "values outside [0, 2**32)")

    if not isinstance(rng, dict):
        raise refuse(path, "rng", f"a {type(rng).__name__}, not a dict")
    py = rng.get("python")
    if not (isinstance(py, (list, tuple)) and len(py) == 3 and py[0] == 3):
        raise fail("python", "not [3, state, gauss]")
    words(py[1], 625, "python")
    if not 0 <= int(py[1][-1]) <= 624:
        raise fail("python", "position outside [0, 624]")
    if py[2] is not None and not _is_number(py[2]):
        raise fail("python", "gauss is not a number")
    np_state = rng.get("numpy")
    if not (isinstance(np_state, (list, tuple)) and len(np_state) == 5):
        raise fail("numpy", "not [name, keys, pos, has_gauss, gauss]")
    name, keys, pos, has_gauss, gauss = np_state
    if name != "MT19937":
        raise fail("numpy", f"generator {describe(name)} is not MT19937")
    words(keys, 624, "numpy")
    if not (_is_int(pos) and 0 <= pos <= 624) or has_gauss not in (0, 1) or not _is_number(gauss):
        raise fail("numpy", "position, has_gauss or gauss out of range")
    for field, states in (("torch", [rng.get("torch")]), ("cuda", rng.get("cuda", []))):
        if not isinstance(states, (list, tuple)):
            raise fail(field, "not a list of states")
        for state in states:
            if not (isinstance(state, torch.Tensor) and state.dtype == torch.uint8
                    and state.dim() == 1 and 0 < state.numel() <= 1 << 16):  # fmt: skip
                raise fail(field, "not a uint8 generator state")
