"""``tr2 import-release``: the authors' files -> a folder of tr2's own.

Output folder (kind ``release-import``):

* ``open_clip_<model>.pt`` -- the open_clip state dict of OpenAI's CLIP;
* ``text_table.npz`` -- the release's text table in tr2's format;
* ``detector.pt`` -- the detector state dict, when the detector network converts;
* ``predcls.pt`` / ``sgcls.pt`` / ``sgdet.pt`` -- complete tr2 checkpoints (config +
  relation weights) whose run names the files above relative to the folder
  (``paths_relative_to: checkpoint``, resolved against the checkpoint's own folder when
  loaded: the folder may be moved or copied whole), with the fingerprint of the frozen
  extractor those files build (``extractor_fingerprint``: loading with other detector
  or CLIP weights is refused), when the detector network was converted;
* ``import.json`` -- what came from where (file names and sha256).

Everything is converted and checked in memory first, written into a partial folder
beside the output, and moved into place only when all of it succeeded: a refused
input leaves nothing behind, and no output path may be or hold an input.
"""

from __future__ import annotations

import json
import logging
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch

from tr2_core.config import from_dict, to_dict
from tr2_core.errors import WeightsError
from tr2_core.models.guidance import file_sha256, save_text_table
from tr2_core.models.model_config import ModelConfig, load_model_config
from tr2_core.outputs import Output, check_output, partial_folder, replace_with
from tr2_core.release.clip import TR2_CLIP_PREFIX, convert_openai_clip, read_openai_clip
from tr2_core.release.detector import read_release_detector
from tr2_core.release.text_table import read_release_text_table
from tr2_core.release.tr2_checkpoints import (
    RELEASE_MODEL,
    RELEASE_TASKS,
    convert_release_relation,
    read_detector_classifier,
    read_release_checkpoint,
    release_model_config,
)
from tr2_core.run import build_frozen_extractor
from tr2_core.run_spec import CHECKPOINT_RELATIVE, RunSpec
from tr2_core.train.recipe import TrainConfig

log = logging.getLogger(__name__)

OUTPUT_KIND = "release-import"
TEXT_TABLE_FILE = "text_table.npz"
DETECTOR_FILE = "detector.pt"
MANIFEST_FILE = "import.json"


@dataclass
class ReleaseInputs:
    """The authors' files given to ``tr2 import-release`` (None: not given)."""

    clip: Path | None = None
    text_table: Path | None = None
    detector: Path | None = None
    checkpoints: dict[str, Path] = field(default_factory=dict)
    """task -> the authors' checkpoint of that task."""

    def paths(self) -> list[Path]:
        given = [self.clip, self.text_table, self.detector, *self.checkpoints.values()]
        return [p for p in given if p is not None]


def clip_file_name(model_name: str) -> str:
    return f"open_clip_{model_name}.pt"


def _same_clip(
    reference: dict[str, torch.Tensor], other: dict[str, torch.Tensor], source: str, given: str
) -> None:
    for key, value in reference.items():
        if not torch.equal(value, other[key]):
            raise WeightsError(
                f"{source}: its clip.* weights differ from the CLIP of {given} (first at "
                f"{key}); give the CLIP the checkpoint was trained with"
            )


def convert_detector_network(path: Path, config: ModelConfig) -> dict[str, torch.Tensor] | None:
    """The detector network's tr2 state dict from the authors' ``faster_rcnn_ag.pth``, for
    a model config whose detector is the authors' (``detector.architecture: release``, as
    in ``tr2-release``); None for any other detector, whose weights these are not."""
    if config.detector.architecture != "release":
        log.info(
            "detector network: not converted (the model config's detector is %r, not the "
            "authors'); only its class scores feed the object classifier",
            config.detector.architecture,
        )
        return None
    return read_release_detector(path, config.detector)


def import_release(
    inputs: ReleaseInputs,
    out: Path,
    *,
    model: str | Path = RELEASE_MODEL,
    overrides: tuple[str, ...] = (),
    overwrite: bool = False,
) -> dict[str, Path]:
    """Convert ``inputs`` into the folder ``out`` (see the module docstring); returns
    what was written (name -> path).

    Raises:
        WeightsError: an input is not what it claims to be (one line naming the file and
            the key or field).
        OutputPathError / OutputExistsError: ``out`` may not be written.
    """
    target = Output.folder(out, "--out", OUTPUT_KIND)
    check_output(target, inputs=inputs.paths(), overwrite=overwrite)
    for task in inputs.checkpoints:
        if task not in RELEASE_TASKS:
            raise ValueError(f"unknown task {task!r}")
    if inputs.checkpoints and inputs.detector is None:
        raise WeightsError(
            "the TR² checkpoints need --detector: their object classifier's third input is "
            "the detector's class distribution (its RCNN_cls_score layer)"
        )
    if inputs.checkpoints and inputs.text_table is None and set(inputs.checkpoints) - {"sgdet"}:
        raise WeightsError("PredCls / SGCls checkpoints need --text-table (their text heads)")
    base = load_model_config(model, overrides)
    final = Path(out).absolute()

    # --- convert and check everything in memory
    clip_source = inputs.clip or next(iter(inputs.checkpoints.values()), None)
    clip_state = None
    if clip_source is not None:
        clip_state = convert_openai_clip(
            read_openai_clip(clip_source),
            str(clip_source),
            model_name=base.clip.model_name,
            overrides=base.clip.overrides,
        )
    table = None
    if inputs.text_table is not None:
        table = read_release_text_table(inputs.text_table, dim=base.representation.union_dim)
    detector_cls = read_detector_classifier(inputs.detector) if inputs.detector else None
    detector_state = convert_detector_network(inputs.detector, base) if inputs.detector else None

    clip_path = final / clip_file_name(base.clip.model_name) if clip_state else None
    table_path = final / TEXT_TABLE_FILE if table is not None else None
    detector_path = final / DETECTOR_FILE if detector_state is not None else None
    checkpoints: dict[str, dict] = {}
    for task, path in inputs.checkpoints.items():
        state = read_release_checkpoint(path)
        if clip_state is not None and path != clip_source:
            own = {
                k[len(TR2_CLIP_PREFIX) :]: v
                for k, v in state.items()
                if k.startswith(TR2_CLIP_PREFIX)
            }
            own = convert_openai_clip(
                own, str(path), model_name=base.clip.model_name, overrides=base.clip.overrides
            )
            _same_clip(clip_state, own, str(path), str(clip_source))
        config = release_model_config(task, base)
        weights = convert_release_relation(
            state,
            str(path),
            task,
            config,
            text_table=table.table if table is not None else None,
            detector_cls=detector_cls,
        )
        checkpoints[task] = _tr2_checkpoint(
            weights, config, task, model, clip_path, detector_path, table_path, path
        )
    if checkpoints and detector_path is None:
        log.info(
            "checkpoints: no extractor fingerprint recorded (the detector network was not "
            "converted); tr2 test / video take any --detector-weights with them"
        )

    # --- write into a partial folder, then move it into place
    written: dict[str, Path] = {}
    manifest = {"inputs": {}, "outputs": {}}
    for name, path in (("clip", inputs.clip), ("text_table", inputs.text_table),
                       ("detector", inputs.detector), *inputs.checkpoints.items()):  # fmt: skip
        if path is not None:
            manifest["inputs"][name] = {"file": Path(path).name, "sha256": file_sha256(path)}
    final.parent.mkdir(parents=True, exist_ok=True)
    with partial_folder(final) as stage:
        if clip_state is not None and clip_path is not None:
            torch.save(clip_state, stage / clip_path.name)
            written["clip"] = clip_path
        if table is not None and table_path is not None:
            save_text_table(stage / table_path.name, table)
            written["text_table"] = table_path
        if detector_state is not None and detector_path is not None:
            torch.save(detector_state, stage / detector_path.name)
            written["detector"] = detector_path
        fingerprints: dict[str, str] = {}
        for task, ckpt in checkpoints.items():
            if detector_path is not None and clip_path is not None:
                ckpt["extractor_fingerprint"] = _extractor_fingerprint(
                    ckpt["config"]["model"], stage, fingerprints
                )
            torch.save(ckpt, stage / f"{task}.pt")
            written[task] = final / f"{task}.pt"
        for name, path in written.items():
            manifest["outputs"][name] = {
                "file": path.name,
                "sha256": file_sha256(stage / path.name),
            }
        (stage / MANIFEST_FILE).write_text(json.dumps(manifest, indent=2) + "\n")
        replace_with(target, stage, inputs=inputs.paths(), overwrite=overwrite)
    return written


def _extractor_fingerprint(model: dict, folder: Path, known: dict[str, str]) -> str:
    """The fingerprint of the frozen extractor a checkpoint of model config ``model``
    (a plain dict) builds from the converted files in ``folder``: built by the same
    function as loading it (``tr2_core.run.load_trained``), so it is the same hash.
    ``known`` remembers it per detector / CLIP / representation config (all the
    extractor is built from; the tasks differ only in their heads)."""
    key = json.dumps({k: model[k] for k in ("detector", "clip", "representation")}, sort_keys=True)
    if key not in known:
        config = from_dict(ModelConfig, model, "release model config")
        known[key] = build_frozen_extractor(
            config,
            detector_weights=folder / DETECTOR_FILE,
            clip_weights=str(folder / clip_file_name(config.clip.model_name)),
        ).fingerprint
    return known[key]


def _tr2_checkpoint(
    weights: dict[str, torch.Tensor],
    config: ModelConfig,
    task: str,
    model: str | Path,
    clip_path: Path | None,
    detector_path: Path | None,
    table_path: Path | None,
    source: Path,
) -> dict:
    """A checkpoint ``tr2 test`` / ``tr2 video`` / ``tr2 bag`` / the node load as they
    are (``tr2_core.run.load_trained``): relation weights, the run and model configs;
    the run names the converted files by their names in the output folder."""
    run = RunSpec(
        data="",
        model=str(model),
        task=task,  # type: ignore[arg-type]
        clip_weights=clip_path.name if clip_path else None,
        detector_weights=detector_path.name if detector_path else None,
        text_table=table_path.name if table_path else None,
    )
    return {
        "paths_relative_to": CHECKPOINT_RELATIVE,
        "model": weights,
        "config": {"run": asdict(run), "model": to_dict(config), "train": to_dict(TrainConfig())},
        "epoch": 0,
        "random_init": False,
        "release_source": source.name,
    }
