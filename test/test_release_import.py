"""``tr2 import-release`` end to end on files laid out as the authors publish them
(random weights, small widths): the converted checkpoints run under ``tr2 test`` on a
synthetic dataset and under ``tr2 video``; bad inputs leave nothing behind."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from engine_fixtures import frames, write_frames
from release_detector_fixtures import authors_model_state, write_authors_detector
from release_fixtures import (
    RELEASE_TR2_OVERRIDES,
    SMALL_CLIP,
    AuthorsTR2,
    authors_tr2,
    openai_clip,
    save_release_checkpoint,
    save_release_detector,
    write_openai_archive,
)

from tr2_core.cli import main
from tr2_core.data.synthetic import SyntheticConfig, make_synthetic
from tr2_core.models.entities import build_detector
from tr2_core.models.guidance import load_text_table
from tr2_core.models.model_config import load_model_config
from tr2_core.release.detector import read_release_detector

SETS = [a for o in (*RELEASE_TR2_OVERRIDES, "clip.overrides=" + json.dumps(SMALL_CLIP))
        for a in ("--set", o)]  # fmt: skip
"""The small widths of the test files (the real files need none of these)."""


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    folder = tmp_path_factory.mktemp("authors")
    clip = openai_clip(seed=0)
    archive = write_openai_archive(clip, folder / "ViT-B-32.pt")
    np.save(folder / "clip_sentence.npy",
            np.random.default_rng(0).normal(0, 0.3, (37, 26, 64)).astype(np.float16))  # fmt: skip
    save_release_detector(folder / "faster_rcnn_ag.pth")
    checkpoints = {}
    for i, task in enumerate(("predcls", "sgcls", "sgdet")):
        model: AuthorsTR2 = authors_tr2(task, seed=i)
        model.clip.load_state_dict(clip.state_dict())  # the same frozen CLIP
        checkpoints[task] = save_release_checkpoint(model, folder / f"{task}.tar")
    # the detector network in tr2's format, for tr2 test / tr2 video
    from tr2_core.models.model_config import load_model_config

    cfg = load_model_config("tr2-release", RELEASE_TR2_OVERRIDES)
    torch.manual_seed(0)
    torch.save(build_detector(cfg.detector).state_dict(), folder / "tr2_detector.pt")
    return {"archive": archive, "table": folder / "clip_sentence.npy",
            "detector": folder / "faster_rcnn_ag.pth", "tr2_detector": folder / "tr2_detector.pt",
            **checkpoints}  # fmt: skip


def _import(files, out, *extra) -> int:
    return main(["import-release", "--clip", str(files["archive"]), "--text-table",
                 str(files["table"]), "--detector", str(files["detector"]), "--out", str(out),
                 *SETS, *extra])  # fmt: skip


def test_import_then_tr2_test_and_tr2_video(files, tmp_path, capsys):
    out = tmp_path / "release"
    rc = _import(files, out, "--predcls", str(files["predcls"]), "--sgcls", str(files["sgcls"]),
                 "--sgdet", str(files["sgdet"]))  # fmt: skip
    assert rc == 0, capsys.readouterr().err
    names = sorted(p.name for p in out.iterdir())
    assert names == [".tr2-output", "import.json", "open_clip_ViT-B-32-quickgelu.pt",
                     "predcls.pt", "sgcls.pt", "sgdet.pt", "text_table.npz"]  # fmt: skip
    manifest = json.loads((out / "import.json").read_text())
    assert set(manifest["inputs"]) == {"clip", "text_table", "detector", "predcls", "sgcls",
                                       "sgdet"}  # fmt: skip
    table = load_text_table(out / "text_table.npz", expected_dim=64)
    assert torch.equal(table.table, torch.from_numpy(np.load(files["table"]).astype(np.float32)))
    ckpt = torch.load(out / "predcls.pt", weights_only=True)
    assert ckpt["config"]["model"]["clip"]["model_name"] == "ViT-B-32-quickgelu"
    assert ckpt["config"]["run"]["task"] == "predcls"

    data = tmp_path / "synthetic"
    make_synthetic(data, SyntheticConfig(videos=2, min_frames=3, max_frames=3, width=160,
                   height=90, seed=1, short_video_rate=0.0, no_person_rate=0.0),
                   progress=False)  # fmt: skip
    for task in ("predcls", "sgcls"):  # SGCls: the object classifier's three inputs
        test_out = tmp_path / f"test-{task}"
        rc = main(["test", "--checkpoint", str(out / f"{task}.pt"), "--data", str(data),
                   "--out", str(test_out), "--detector-weights", str(files["tr2_detector"]),
                   "--device", "cpu", "--no-progress", "--no-cache"])  # fmt: skip
        assert rc == 0, capsys.readouterr().err
        metrics = json.loads((test_out / "metrics.json").read_text())
        assert metrics["task"] == task and metrics["with"]["R@20"] >= 0.0

    write_frames(tmp_path / "frames", frames(2, seed=3))
    rc = main(["video", str(tmp_path / "frames"), "--jsonl", str(tmp_path / "o.jsonl"),
               "--checkpoint", str(out / "sgdet.pt"), "--detector-weights",
               str(files["tr2_detector"]), "--device", "cpu"])  # fmt: skip
    assert rc == 0, capsys.readouterr().err
    assert len((tmp_path / "o.jsonl").read_text().splitlines()) == 2


def test_a_bad_input_leaves_nothing_behind(files, tmp_path, capsys):
    bad = tmp_path / "clip_sentence.npy"
    np.save(bad, np.zeros((37, 26, 32), np.float16))
    out = tmp_path / "release"
    rc = main(["import-release", "--clip", str(files["archive"]), "--text-table", str(bad),
               "--out", str(out), *SETS])  # fmt: skip
    assert rc != 0
    assert "clip_sentence.npy: table has shape (37, 26, 32)" in capsys.readouterr().err
    assert not out.exists()
    assert [p.name for p in tmp_path.iterdir()] == ["clip_sentence.npy"]


def test_checkpoints_need_the_detector_and_a_matching_clip(files, tmp_path, capsys):
    out = tmp_path / "release"
    rc = main(["import-release", "--text-table", str(files["table"]), "--predcls",
               str(files["predcls"]), "--out", str(out), *SETS])  # fmt: skip
    assert rc != 0 and "need --detector" in capsys.readouterr().err
    other = write_openai_archive(openai_clip(seed=7), tmp_path / "other.pt")
    rc = main(["import-release", "--clip", str(other), "--text-table", str(files["table"]),
               "--detector", str(files["detector"]), "--predcls", str(files["predcls"]),
               "--out", str(out), *SETS])  # fmt: skip
    assert rc != 0 and "clip.* weights differ from the CLIP of" in capsys.readouterr().err
    assert not out.exists()


def test_a_nested_new_folder_and_overwrite(files, tmp_path, capsys):
    out = tmp_path / "a" / "b" / "release"
    args = ["import-release", "--text-table", str(files["table"]), "--out", str(out), *SETS]
    assert main(args) == 0
    assert sorted(p.name for p in out.iterdir()) == [".tr2-output", "import.json",
                                                     "text_table.npz"]  # fmt: skip
    assert main(args) != 0 and "--overwrite" in capsys.readouterr().err
    assert main([*args, "--overwrite"]) == 0


def test_an_output_never_replaces_an_input(files, tmp_path, capsys):
    rc = main(["import-release", "--text-table", str(files["table"]), "--out",
               str(files["table"].parent), *SETS])  # fmt: skip
    assert rc != 0 and "contains the input" in capsys.readouterr().err
    assert files["table"].is_file()


def test_the_authors_detector_network_is_converted(tmp_path, capsys):
    """With the release's own model config the whole faster_rcnn_ag.pth converts (its
    ResNet-101 layout, random values) into detector.pt, the state dict the checkpoints
    point at; the small-width configs above keep a torchvision stand-in and say so."""
    authors = write_authors_detector(tmp_path / "faster_rcnn_ag.pth", authors_model_state())
    out = tmp_path / "release"
    assert main(["import-release", "--detector", str(authors), "--out", str(out)]) == 0
    state = torch.load(out / "detector.pt", weights_only=True)
    want = read_release_detector(authors)
    assert state.keys() == want.keys()
    assert all(torch.equal(state[k], want[k]) for k in want)
    net = build_detector(load_model_config("tr2-release").detector)
    net.load_state_dict(state)  # strict: every key of the authors' network, nothing else


def test_a_stand_in_detector_is_not_converted_and_the_import_says_so(files, tmp_path, capsys):
    rc = _import(files, tmp_path / "release")
    assert rc == 0
    assert "detector network: not converted" in capsys.readouterr().out
    assert not (tmp_path / "release" / "detector.pt").exists()
