"""The checkpoints ``tr2 import-release`` writes load as the files they came with and
only so: the converted files are named relative to the checkpoint's folder (the folder
moves whole), and the frozen extractor's fingerprint is recorded (other detector / CLIP
weights are refused). The authors' detector here is their network at ResNet-50 depth
(random values, their key layout) so that ``detector.pt`` is converted and small."""

from __future__ import annotations

import copy
import json
import shutil

import pytest
import torch
from release_detector_fixtures import authors_model_state, write_authors_detector
from release_fixtures import _TORCHVISION_DETECTOR as STAND_IN
from release_fixtures import (
    RELEASE_TR2_OVERRIDES,
    RELEASE_WIDTHS,
    SMALL_CLIP,
    AuthorsTR2,
    save_release_checkpoint,
)

from tr2_core.cli import main
from tr2_core.errors import WeightsError
from tr2_core.run import load_checkpoint, load_trained, module_fingerprint

RESNET50_BLOCKS = (3, 4, 6, 3)
OVERRIDES = (
    *(o for o in RELEASE_TR2_OVERRIDES if o not in STAND_IN and "backbone" not in o),
    "detector.backbone=resnet50",
    "representation.entity_dim=2048",
    "clip.overrides=" + json.dumps(SMALL_CLIP),
)
"""tr2-release with the authors' detector at ResNet-50 depth and the test files' widths."""


@pytest.fixture(scope="module")
def imported(tmp_path_factory):
    """(folder written by tr2 import-release, the authors' files)."""
    authors = tmp_path_factory.mktemp("authors")
    detector = write_authors_detector(
        authors / "faster_rcnn_ag.pth", authors_model_state(seed=1, blocks=RESNET50_BLOCKS)
    )
    torch.manual_seed(0)
    tr2 = AuthorsTR2("sgdet", {**RELEASE_WIDTHS, "entity": 2048}).eval()
    with torch.no_grad():
        for p in tr2.clip.parameters():
            p.copy_(p.half().float())
    sgdet = save_release_checkpoint(tr2, authors / "sgdet.tar")
    out = tmp_path_factory.mktemp("import") / "release"
    sets = [a for o in OVERRIDES for a in ("--set", o)]
    rc = main(["import-release", "--detector", str(detector), "--sgdet", str(sgdet),
               "--out", str(out), *sets])  # fmt: skip
    assert rc == 0
    return out, authors


def test_the_checkpoint_names_its_files_relative_to_itself_and_records_the_extractor(imported):
    out, _ = imported
    ckpt = load_checkpoint(out / "sgdet.pt")
    run = ckpt["config"]["run"]
    assert ckpt["paths_relative_to"] == "checkpoint"
    assert run["detector_weights"] == "detector.pt"
    assert run["clip_weights"] == "open_clip_ViT-B-32-quickgelu.pt"
    # the fingerprint is that of the extractor loading builds from these files
    trained = load_trained(out / "sgdet.pt", announce=False)
    assert ckpt["extractor_fingerprint"] == module_fingerprint(trained.model.extractor)
    assert trained.run.detector_weights == str((out / "detector.pt").absolute())


def test_the_folder_moves_whole_and_other_weights_are_refused(imported, tmp_path, caplog):
    out, authors = imported
    moved = tmp_path / "elsewhere" / "release"
    shutil.copytree(out, moved)
    trained = load_trained(moved / "sgdet.pt", announce=False)
    assert trained.run.detector_weights == str(moved / "detector.pt")
    assert trained.run.clip_weights == str(moved / "open_clip_ViT-B-32-quickgelu.pt")
    # its saved copy of the detector's classification layer is that detector's layer
    classifier = trained.model.relation.object_classifier
    layer = trained.model.extractor.detector.roi_heads.box_predictor.cls_score
    assert torch.equal(classifier.detector_cls_weight, layer.weight)
    assert "differs from the layer" not in caplog.text

    # an explicit --detector-weights wins over the checkpoint's, and is checked
    state = torch.load(moved / "detector.pt", weights_only=True)
    state["roi_heads.box_predictor.cls_score.bias"] += 0.5
    torch.save(state, tmp_path / "other.pt")
    with pytest.raises(WeightsError, match="differ from the ones the model was trained with"):
        load_trained(moved / "sgdet.pt", announce=False, detector_weights=tmp_path / "other.pt")

    # the checkpoint alone, without its folder: a clear error naming the field
    (tmp_path / "alone").mkdir()
    shutil.copy(moved / "sgdet.pt", tmp_path / "alone" / "sgdet.pt")
    with pytest.raises(WeightsError, match=r"config\.run\.(clip|detector)_weights: .* is not "
                       "beside the checkpoint"):  # fmt: skip
        load_trained(tmp_path / "alone" / "sgdet.pt", announce=False)


def test_absolute_paths_keep_working_and_relative_ones_cannot_leave_the_folder(imported, tmp_path):
    out, _ = imported
    ckpt = torch.load(out / "sgdet.pt", weights_only=True)
    # as tr2 train writes them: no paths_relative_to, the files as given (absolute)
    plain = {k: copy.deepcopy(v) for k, v in ckpt.items() if k != "paths_relative_to"}
    run = plain["config"]["run"]
    for field in ("clip_weights", "detector_weights", "text_table"):
        if run[field]:
            run[field] = str((out / run[field]).absolute())
    torch.save(plain, tmp_path / "absolute.pt")
    trained = load_trained(tmp_path / "absolute.pt", announce=False)
    assert trained.run.detector_weights == str((out / "detector.pt").absolute())

    for bad in ("../release/detector.pt", str((out / "detector.pt").absolute())):
        escaping = copy.deepcopy(ckpt["config"])
        escaping["run"]["detector_weights"] = bad
        torch.save({**ckpt, "config": escaping}, out.parent / "escaping.pt")
        with pytest.raises(WeightsError, match=r"config\.run\.detector_weights: .* not a path "
                           "inside the checkpoint's folder"):  # fmt: skip
            load_checkpoint(out.parent / "escaping.pt")
    torch.save({**ckpt, "paths_relative_to": "cwd"}, tmp_path / "odd.pt")
    with pytest.raises(WeightsError, match="paths_relative_to: 'cwd' is not 'checkpoint'"):
        load_checkpoint(tmp_path / "odd.pt")
