"""The run builder: model config + weights (or a ``tr2 train`` checkpoint) -> the frozen
extractor, the relation model and the text table, on one resolved device.

Everything that assembles a whole model goes through here: training, ``tr2 test``,
``tr2 cache-features``, the streaming engine, the benches and ``--random-init`` demos.
It sits above :mod:`tr2_core.models` (the modules) and below :mod:`tr2_core.train` and
:mod:`tr2_core.stream`, which both use it and never each other.

Random weights never go unnoticed: a random-init build says so once, loudly
(:func:`announce_random_init`); without ``random_init`` missing weights raise
:class:`~tr2_core.errors.WeightsError`.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, TextIO

import torch

from tr2_core.checkpoint_schema import MODEL_LIMITS, check_checkpoint
from tr2_core.config import apply_overrides, from_dict
from tr2_core.errors import ConfigError, WeightsError
from tr2_core.models import (
    FeatureExtractor,
    ModelConfig,
    RelationModel,
    TextTable,
    build_text_table,
    create_extractor,
    create_relation_model,
    load_text_table,
    resolve_config,
    save_text_table,
)
from tr2_core.models.glove import init_class_embeddings
from tr2_core.run_spec import (
    CHECKPOINT_RELATIVE,
    RELATIVE_RUN_PATHS,
    RunSpec,
    checkpoint_relative_path,
)
from tr2_core.torch_files import load_weights_file

log = logging.getLogger("tr2.run")

TaskMode = Literal["predcls", "sgcls", "sgdet"]


# --------------------------------------------------------------------------- announcements
def random_init_banner(*, relation_trained: bool = True) -> str:
    """The loud text that marks randomly initialised frozen parts (and, with
    ``relation_trained=False``, an untrained relation model)."""
    lines = ["RANDOM INIT: the frozen detector and CLIP are RANDOMLY INITIALISED."]
    if not relation_trained:
        lines.append(
            "The relation model is UNTRAINED too: the scene graphs written are meaningless "
            "(demo / test only); use --checkpoint for real output."
        )
    lines.append(
        "Fine for tests and the synthetic demo; numbers from this run are NOT TR² results."
    )
    bar = "!" * 78
    return "\n".join(["", bar, *(f"!! {line}" for line in lines), bar])


def announce_random_init(*, relation_trained: bool = True, stream: TextIO | None = None) -> None:
    """Say once, loudly, that the frozen parts are random: a warning on the ``tr2`` log,
    or printed to ``stream`` (a command that shows no log, e.g. ``sys.stderr``)."""
    banner = random_init_banner(relation_trained=relation_trained)
    if stream is None:
        log.warning(banner)
    else:
        print(banner, file=stream)


# --------------------------------------------------------------------------- device
def resolve_device(
    device: str | torch.device = "auto", *, index: int | None = None
) -> torch.device:
    """``auto`` -> CUDA when available, else CPU; a bare ``cuda`` gets ``index`` (default:
    the current CUDA device). Raises :class:`ConfigError` for a CUDA device without CUDA
    or a name torch does not know."""
    if isinstance(device, torch.device):
        return device
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise ConfigError(f"--device {device}: CUDA is not available on this machine")
    if device == "cuda":
        return torch.device("cuda", torch.cuda.current_device() if index is None else index)
    try:
        return torch.device(device)
    except RuntimeError:
        raise ConfigError(f"--device must be auto, cpu, cuda or cuda:N, got {device!r}") from None


# --------------------------------------------------------------------------- built parts
def module_fingerprint(module: torch.nn.Module) -> str:
    """Hash of a module's state dict (names, shapes, dtypes, values): the identity of
    its weights, whether they came from a file or a seeded random initialisation."""
    h = hashlib.blake2b(digest_size=16)
    for name, tensor in sorted(module.state_dict().items()):
        t = tensor.detach().cpu().contiguous()
        h.update(f"{name}|{tuple(t.shape)}|{t.dtype}|".encode())
        h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    return h.hexdigest()


@dataclass
class FrozenExtractor:
    """The frozen detector + CLIP and the fingerprint of their weights (the feature cache
    and checkpoints key on it)."""

    extractor: FeatureExtractor
    fingerprint: str


@dataclass
class RunModel:
    """A whole model: frozen extractor, relation model and (when training needs one) the
    (37, 26, D) prompt table on the model's device."""

    config: ModelConfig
    frozen: FrozenExtractor
    relation: RelationModel
    text_table: torch.Tensor | None = None
    built_text_table: TextTable | None = None
    """The prompt table when this build made it from the extractor's CLIP (not read)."""

    @property
    def extractor(self) -> FeatureExtractor:
        return self.frozen.extractor

    @property
    def extractor_fingerprint(self) -> str:
        return self.frozen.fingerprint


def needs_text_table(model_cfg: ModelConfig) -> bool:
    """Training this config needs the prompt table (guidance or text heads)."""
    return model_cfg.guidance.mode in ("full", "no_tdiff") or model_cfg.heads.uses_text


def build_frozen_extractor(
    model_cfg: ModelConfig,
    *,
    random_init: bool = False,
    detector_weights: str | Path | None = None,
    clip_weights: str | None = None,
    seed: int | None = None,
    device: str | torch.device = "cpu",
) -> FrozenExtractor:
    """The frozen extractor and its fingerprint. With ``seed``, random-init weights are
    drawn after ``torch.manual_seed(seed)``, so a run config always rebuilds the same
    ones (on the same torch version). Announces nothing (the callers below do)."""
    if seed is not None:
        torch.manual_seed(seed)
    extractor = create_extractor(
        model_cfg,
        random_init=random_init,
        detector_weights=detector_weights,
        clip_weights=clip_weights,
        device=device,
    )
    return FrozenExtractor(extractor, module_fingerprint(extractor))


def build_run_extractor(
    run: RunSpec, model_cfg: ModelConfig, seed: int, device: str | torch.device
) -> FrozenExtractor:
    """The frozen extractor alone, as the run ``run`` (seeded with ``seed``) builds it:
    what computing features (``tr2 cache-features``) needs. Announces nothing."""
    return build_frozen_extractor(
        model_cfg,
        random_init=run.random_init,
        detector_weights=run.detector_weights,
        clip_weights=run.clip_weights,
        seed=seed,
        device=device,
    )


def _with_relation(
    frozen: FrozenExtractor,
    model_cfg: ModelConfig,
    table: TextTable | torch.Tensor | None,
    *,
    seed: int | None,
    weights: str | Path | None,
    device: torch.device,
) -> RunModel:
    """Add the relation model (drawn after ``torch.manual_seed(seed + 1)``) to ``frozen``."""
    if seed is not None:
        torch.manual_seed(seed + 1)
    relation = create_relation_model(model_cfg, text_table=table, weights=weights, device=device)
    tensor = table.table if isinstance(table, TextTable) else table
    return RunModel(model_cfg, frozen, relation, None if tensor is None else tensor.to(device))


def build_model(
    config: ModelConfig | str | Path,
    *,
    overrides: tuple[str, ...] | list[str] = (),
    random_init: bool = False,
    detector_weights: str | Path | None = None,
    clip_weights: str | None = None,
    text_table: TextTable | torch.Tensor | str | Path | None = None,
    relation_weights: str | Path | None = None,
    seed: int | None = None,
    device: str | torch.device = "cpu",
    announce: bool = True,
) -> RunModel:
    """The whole model of ``config`` (a ModelConfig, a name in ``tr2_core/configs/models/``
    or a YAML path, with dotted ``overrides``) from weight files, or random (``random_init``,
    announced unless ``announce=False``). ``text_table`` (a :class:`TextTable`, tensor or
    ``.npz`` path) goes into text heads; ``relation_weights`` is a relation state dict."""
    cfg = resolve_config(config, overrides)
    dev = resolve_device(device)
    if random_init and announce:
        announce_random_init()
    if isinstance(text_table, (str, Path)):
        text_table = load_text_table(text_table, expected_dim=cfg.representation.union_dim)
    frozen = build_frozen_extractor(
        cfg,
        random_init=random_init,
        detector_weights=detector_weights,
        clip_weights=clip_weights,
        seed=seed,
        device=dev,
    )
    return _with_relation(frozen, cfg, text_table, seed=seed, weights=relation_weights, device=dev)


def build_run_model(
    run: RunSpec,
    model_cfg: ModelConfig,
    seed: int,
    device: torch.device,
    *,
    training: bool = True,
    out_dir: Path | None = None,
    text_table_out: bool = False,
    announce: bool = True,
) -> RunModel:
    """The model a run describes: frozen extractor (seed ``seed``), text table and
    relation model (seed ``seed + 1``).

    Training with guidance or text heads needs the prompt table: loaded from
    ``run.text_table``, or built from the extractor's own CLIP text tower and (with
    ``text_table_out``) written to ``out_dir/text_table.npz``. For inference
    (``training=False``) no table is loaded: text heads get theirs from the checkpoint.
    Training initialises the class embeddings from ``run.glove`` (random without it).
    """
    if run.random_init and announce:
        announce_random_init()
    frozen = build_run_extractor(run, model_cfg, seed, device)
    table = None
    if training and needs_text_table(model_cfg):
        if run.text_table:
            table = load_text_table(run.text_table, expected_dim=model_cfg.representation.union_dim)
        else:
            table = build_run_text_table(frozen.extractor, model_cfg, run)
    built = _with_relation(frozen, model_cfg, table, seed=seed, weights=None, device=device)
    if isinstance(table, TextTable) and not run.text_table:
        built.built_text_table = table
        if text_table_out and out_dir is not None:
            save_built_text_table(built, out_dir)
    if training:
        fill_detector_classifier(built)
        rep = built.relation.representation
        tables = [rep.subject_embed, rep.object_embed]
        if built.relation.object_classifier.class_embed is not None:
            tables.append(built.relation.object_classifier.class_embed)
        init_class_embeddings(tables, run.glove)
    return built


def detector_classifier(extractor: FeatureExtractor) -> torch.nn.Linear:
    """The frozen detector's classification layer (``roi_heads.box_predictor.cls_score``,
    Linear entity_dim -> classes), in tr2's torchvision detector and in the authors'."""
    return extractor.detector.roi_heads.box_predictor.cls_score


def fill_detector_classifier(model: RunModel) -> bool:
    """Copy the frozen detector's classification layer into the object classifier's
    ``detector_cls_weight`` / ``detector_cls_bias`` buffers (its third input,
    ``object_classifier.class_distribution``), as a new model starts; False when the
    config has no third input. A trained or imported checkpoint loads its own saved
    copy over these (see :func:`load_trained`).

    Raises:
        ConfigError: the detector's layer is not (37, representation.entity_dim)."""
    classifier = model.relation.object_classifier
    if classifier.class_embed is None:
        return False
    layer = detector_classifier(model.extractor)
    want = tuple(classifier.detector_cls_weight.shape)
    if tuple(layer.weight.shape) != want:
        raise ConfigError(
            f"object_classifier.class_distribution: the detector's classification layer "
            f"(roi_heads.box_predictor.cls_score) is {tuple(layer.weight.shape)}, the object "
            f"classifier needs {want} (37 classes x representation.entity_dim)"
        )
    with torch.no_grad():
        classifier.detector_cls_weight.copy_(layer.weight)
        classifier.detector_cls_bias.copy_(layer.bias)
    return True


def detector_classifier_differs(model: RunModel) -> bool:
    """Whether the object classifier's saved copy of the detector's classification layer
    differs from the layer of the detector built now (False without the third input)."""
    classifier = model.relation.object_classifier
    if classifier.class_embed is None:
        return False
    layer = detector_classifier(model.extractor)
    saved = classifier.detector_cls_weight
    return tuple(layer.weight.shape) != tuple(saved.shape) or not (
        torch.equal(layer.weight.to(saved), saved)
        and torch.equal(layer.bias.to(saved), classifier.detector_cls_bias)
    )


def save_built_text_table(model: RunModel, out_dir: Path) -> None:
    """Write the prompt table ``model``'s build made to ``out_dir/text_table.npz``."""
    if model.built_text_table is not None:
        path = out_dir / "text_table.npz"
        save_text_table(path, model.built_text_table)
        log.info("built the CLIP prompt table from the extractor's CLIP: %s", path)


def build_run_text_table(
    extractor: FeatureExtractor, model_cfg: ModelConfig, run: RunSpec
) -> TextTable:
    """The (37, 26, D) prompt table from the extractor's own (frozen) CLIP text tower."""
    import open_clip

    return build_text_table(
        extractor.union.clip,
        open_clip.get_tokenizer(model_cfg.clip.model_name),
        model_cfg.guidance,
        clip_name=model_cfg.clip.model_name,
        clip_weights="random-init" if run.random_init else (run.clip_weights or ""),
        progress=False,
    )


# --------------------------------------------------------------------------- checkpoints
def load_checkpoint(
    path: str | Path, map_location: str | torch.device = "cpu", *, mmap: bool = False
) -> dict[str, Any]:
    """Read a ``tr2 train`` checkpoint safely (``weights_only=True``) and check every
    field against its schema (:func:`tr2_core.checkpoint_schema.check_checkpoint`:
    types, ranges, sizes bounded before anything is built). The one gate of every reader
    (``tr2 test``, resume, the streaming engine, ``tr2 video`` / ``bag``, the ROS node).

    Raises:
        WeightsError: one line naming the file and, for a bad field, the field: a
            missing file, one that is not a checkpoint or needs code to load, a field
            of the wrong type, out of range or too large.
    """
    path = Path(path)
    ckpt = load_weights_file(path, "checkpoint", map_location=map_location, mmap=mmap)
    check_checkpoint(ckpt, path)
    return ckpt


def run_spec_and_model_config(config: dict[str, Any]) -> tuple[RunSpec, ModelConfig, int]:
    """The ``run`` and ``model`` sections of a checkpoint's config (typed, validated) and
    the training seed the model was initialised with."""
    try:
        run = from_dict(RunSpec, config["run"], "checkpoint config.run")
        model_cfg = from_dict(ModelConfig, config["model"], "checkpoint config.model")
        seed = int(config["train"]["seed"])
    except KeyError as e:
        raise WeightsError(f"checkpoint config has no {e} section") from None
    return run, model_cfg, seed


def resolve_run_paths(
    run: RunSpec,
    ckpt: dict[str, Any],
    checkpoint: str | Path,
    overrides: dict[str, Any] | None = None,
) -> RunSpec:
    """``run`` with its weight paths resolved as the checkpoint ``ckpt`` (read from
    ``checkpoint``) means them: against the checkpoint's folder when it says
    ``paths_relative_to: checkpoint``, else unchanged (``tr2 train`` checkpoints name
    the files as they were given). A field given in ``overrides`` (not None: the
    command line's ``--detector-weights`` ...) is left for the caller to replace.

    Raises:
        WeightsError: a path that leaves the checkpoint's folder, or a file missing
            beside the checkpoint (naming the field and the option that replaces it)."""
    if ckpt.get("paths_relative_to") != CHECKPOINT_RELATIVE:
        return run
    overrides = overrides or {}
    for field in RELATIVE_RUN_PATHS:
        value = getattr(run, field)
        if not value:
            continue
        path = checkpoint_relative_path(value, checkpoint, field)
        if overrides.get(field) is None and field != "text_table" and not path.is_file():
            option = "--" + field.replace("_", "-")
            raise WeightsError(
                f"{checkpoint}: config.run.{field}: {value} is not beside the checkpoint "
                f"(its paths are relative to its folder: move the folder whole, or pass "
                f"{option})"
            )
        setattr(run, field, str(path))
    return run


@dataclass
class TrainedModel:
    """A trained run rebuilt from its checkpoint (:func:`load_trained`)."""

    run: RunSpec
    model: RunModel
    checkpoint: dict[str, Any]
    """The checkpoint as read (``config``, ``epoch``, ... see :mod:`tr2_core.train.checkpoint`)."""


INFERENCE_OVERRIDES = (
    "detector.score_thresh",
    "detector.nms_thresh",
    "detector.detections_per_image",
)
"""Model config keys a trained model may be run with changed (:func:`load_trained`):
the detector's inference settings, which no weight depends on."""


def check_override_sizes(model: dict[str, Any], overrides: Sequence[str]) -> None:
    """Bound the sizes a ``KEY=VALUE`` override sets, as a checkpoint's own are bounded
    (:data:`tr2_core.checkpoint_schema.MODEL_LIMITS`).

    Raises:
        ConfigError: naming the override and the allowed range."""
    for item in overrides:
        key = item.partition("=")[0]
        section, _, name = key.partition(".")
        value = model.get(section, {}).get(name) if isinstance(model.get(section), dict) else None
        limit = MODEL_LIMITS.get(key)
        if limit is not None and isinstance(value, int) and not 0 <= value <= limit:
            raise ConfigError(f"model override {item!r}: {key} must be in [0, {limit}]")


def load_trained(
    checkpoint: str | Path,
    device: str | torch.device = "cpu",
    *,
    announce: bool = True,
    model_overrides: Sequence[str] = (),
    loaded: dict[str, Any] | None = None,
    **run_overrides: Any,
) -> TrainedModel:
    """Rebuild a trained model from a checkpoint: configs from the checkpoint (``run``
    fields may be overridden when not None, e.g. ``data`` or weight paths; model config
    keys of :data:`INFERENCE_OVERRIDES` by ``KEY=VALUE`` items), extractor checked
    against the fingerprint the run recorded, relation weights loaded strictly, eval
    mode. ``loaded``: the checkpoint as :func:`load_checkpoint` already read it.

    Raises:
        WeightsError: the checkpoint is refused (:func:`load_checkpoint`) or does not
            fit the frozen parts built now.
        ConfigError: a model override names another key or a bad value."""
    ckpt = load_checkpoint(checkpoint, map_location="cpu") if loaded is None else loaded
    config = ckpt["config"]
    if model_overrides:
        for item in model_overrides:
            key = item.partition("=")[0]
            if key not in INFERENCE_OVERRIDES:
                raise ConfigError(
                    f"model override {item!r}: a trained model runs with its own config "
                    f"except {', '.join(INFERENCE_OVERRIDES)}"
                )
        config = {**config, "model": apply_overrides(config.get("model", {}), model_overrides)}
        check_override_sizes(config["model"], model_overrides)
    run, model_cfg, seed = run_spec_and_model_config(config)
    run = resolve_run_paths(run, ckpt, checkpoint, run_overrides)
    for key, value in run_overrides.items():
        if value is not None:
            setattr(run, key, value)
    model = build_run_model(
        run, model_cfg, seed, resolve_device(device), training=False, announce=announce
    )
    recorded = ckpt.get("extractor_fingerprint")
    if recorded is not None and recorded != model.extractor_fingerprint:
        raise WeightsError(
            f"{checkpoint}: the frozen detector/CLIP built now (weights "
            f"{run.detector_weights or '-'} / {run.clip_weights or '-'}"
            f"{', random init' if run.random_init else ''}) differ from the ones the model "
            "was trained with; pass the same --detector-weights / --clip-weights"
        )
    try:
        model.relation.load_state_dict(ckpt["model"])
    except RuntimeError as e:
        raise WeightsError(f"{checkpoint}: relation weights do not fit the config ({e})") from None
    if detector_classifier_differs(model):
        # the saved copy is the model's: kept, as trained (or imported), never replaced
        log.warning(
            "%s: the object classifier's copy of the detector's classification layer differs "
            "from the layer of the detector built now (%s); it keeps its own saved copy",
            checkpoint, run.detector_weights or "random init",
        )  # fmt: skip
    model.relation.eval()
    return TrainedModel(run, model, ckpt)
