"""The temporal-effects breakdown: recall on the synthetic world's occluded,
motion-blurred and halfway frames vs. the clean ones, read from
``synthetic_meta.json`` and carried by ``tr2 eval``'s metrics file."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from evaluation_fixtures import (
    BOOK,
    BOOK_BOX,
    CUP,
    CUP_BOX,
    PERSON_BOX,
    gt_frame,
    predictions,
    scores,
)

from tr2_core.cli import main
from tr2_core.data.action_genome import load_split
from tr2_core.data.synthetic import META_FILE, make_synthetic, temporal_config
from tr2_core.data.synthetic.meta import TEMPORAL_EFFECTS, temporal_effect_frames
from tr2_core.errors import DatasetError
from tr2_core.evaluation.breakdown import CLEAN, temporal_effects_breakdown
from tr2_core.evaluation.predictions import save_predictions
from tr2_core.evaluation.recall import evaluate_detailed
from tr2_core.evaluation.report import format_report
from tr2_core.frequency_baseline import fit_frequency, predict_frequency
from tr2_core.testing.eval_fixtures import ground_truth_from_frames

GROUPS = [*TEMPORAL_EFFECTS, CLEAN]


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small temporal world, annotations only (6 videos of 8-12 frames)."""
    root = tmp_path_factory.mktemp("effects") / "synth"
    cfg = temporal_config(videos=6, min_frames=8, max_frames=12, seed=3, images=False,
                          short_video_rate=0.0, static_fraction=0.0)  # fmt: skip
    make_synthetic(root, cfg, progress=False)
    return root


def _meta(root: Path) -> dict:
    return json.loads((root / "annotations" / META_FILE).read_text())


def test_groups_are_the_meta_lists(world: Path) -> None:
    videos = _meta(world)["videos"]
    groups = temporal_effect_frames(world)
    assert set(groups) == set(TEMPORAL_EFFECTS)
    assert groups["occluded"] == {o["frame"] for v in videos for o in v["occluded_frames"]}
    assert groups["blurred"] == {k for v in videos for k in v["blurred_frames"]}
    assert groups["halfway"] == {h["frame"] for v in videos for h in v["halfway_frames"]}
    assert all(groups.values()), "the preset rates should draw every effect in 6 videos"


def test_no_groups_without_effects_and_clear_error_on_a_bad_meta(tmp_path: Path) -> None:
    assert temporal_effect_frames(tmp_path) == {}  # no meta file: real AG
    plain = tmp_path / "plain"
    make_synthetic(plain, temporal_config(videos=3, images=False, occlusion_rate=0.0,
                                          motion_blur_rate=0.0, ambiguous_pose_rate=0.0,
                                          direction_rate=0.0), progress=False)  # fmt: skip
    assert temporal_effect_frames(plain) == {}
    meta = plain / "annotations" / META_FILE
    meta.write_text(json.dumps({"videos": [{"video": "X.mp4", "blurred_frames": 3}]}))
    with pytest.raises(DatasetError, match=r"synthetic_meta.json: video X.mp4"):
        temporal_effect_frames(plain)
    meta.write_text("{not json")
    with pytest.raises(DatasetError, match="synthetic_meta.json"):
        temporal_effect_frames(plain)


def test_breakdown_by_hand_perfect_on_blurred_frames_only() -> None:
    keys = [f"a.mp4/00000{i}.png" for i in (1, 2, 3, 4)]
    cup = [(CUP, CUP_BOX, ["looking_at", "in_front_of", "holding"])]
    book = [(BOOK, BOOK_BOX, ["looking_at"])]
    gt = ground_truth_from_frames([gt_frame(k, cup) for k in keys[:3]] + [gt_frame(keys[3], book)])
    right = scores({"looking_at": 0.95}, {"in_front_of": 0.95}, {"holding": 0.95})  # semi: > 0.9
    wrong = scores({"not_looking_at": 0.9}, {"above": 0.9}, {"touching": 0.9})
    blurred = {keys[1], keys[2]}
    objects = [(CUP, CUP_BOX, 1.0)] * 3 + [(BOOK, BOOK_BOX, 1.0)]
    preds = predictions([
        {"key": k, "boxes": [(1, PERSON_BOX, 1.0), obj],
         "pairs": [(0, 1, right if k in blurred else wrong)]}
        for k, obj in zip(keys, objects, strict=True)
    ])  # fmt: skip
    result = evaluate_detailed(gt, preds, task="predcls")
    # occluded overlaps blurred (f3); a key outside the GT is ignored; halfway is empty.
    effects = {"occluded": {keys[2], "b.mp4/000001.png"}, "blurred": blurred, "halfway": set()}
    out = temporal_effects_breakdown(result, effects)
    assert list(out) == GROUPS
    assert [(out[g]["triplets"], out[g]["frames"]) for g in GROUPS] == [
        (3, 1),
        (6, 2),
        (0, 0),
        (4, 2),
    ]
    for setting in ("with", "semi", "no", "top6"):
        assert out["blurred"][setting]["R@10"] == 1.0
        assert out["occluded"][setting]["mR@20"] == 1.0
    assert out["clean"]["with"]["R@20"] == 0.0  # f1 and f4 are all wrong
    assert out["halfway"]["with"]["R@10"] is None
    with pytest.raises(ValueError, match="clean"):
        temporal_effects_breakdown(result, {CLEAN: set()})


def _eval(root: Path, preds: Path, out: Path) -> dict:
    rc = main(["eval", "--data", str(root), "--predictions", str(preds), "--task", "predcls",
               "--json", str(out)])  # fmt: skip
    assert rc == 0
    return json.loads(out.read_text())


def test_tr2_eval_writes_temporal_effects_on_synthetic_data_only(
    world: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    monkeypatch.setenv("TR2_CACHE_DIR", str(tmp_path / "cache"))
    test_split = load_split(world, "test")
    preds = tmp_path / "baseline.npz"
    save_predictions(
        preds, predict_frequency(fit_frequency(load_split(world, "train")), test_split)
    )
    metrics = _eval(world, preds, tmp_path / "metrics.json")
    effects = metrics["temporal_effects"]
    assert list(effects) == GROUPS
    in_split = set(test_split.gt.frame_keys.tolist())
    groups = temporal_effect_frames(world)
    for name in TEMPORAL_EFFECTS:
        assert effects[name]["frames"] <= len(groups[name] & in_split)
        assert set(effects[name]) >= {"triplets", "frames", "with", "semi", "no", "top6"}
    assert effects["clean"]["triplets"] > 0 and effects["clean"]["with"]["R@10"] is not None
    printed = capsys.readouterr().out
    assert "Temporal effects of the synthetic world (With)" in printed
    assert printed.index("Temporal effects") > printed.index("Time-variant relations")
    assert format_report(metrics).endswith(printed.split("Temporal effects", 1)[1].split(
        "\n\nmetrics written")[0])  # fmt: skip

    (world / "annotations" / META_FILE).rename(tmp_path / "meta.json")  # now AG-like
    try:
        assert "temporal_effects" not in _eval(world, preds, tmp_path / "real.json")
    finally:
        (tmp_path / "meta.json").rename(world / "annotations" / META_FILE)
