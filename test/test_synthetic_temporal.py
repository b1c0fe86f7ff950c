"""Relations that need time in the synthetic generator: occlusion, motion
blur, halfway poses (labelled as in force or as heading), the validation
split, and the --temporal preset. Each effect is compared with the same seed
generated without it."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from tr2_core.cli import main
from tr2_core.data.safe_pickle import safe_load
from tr2_core.data.synthetic import (
    META_FILE,
    TEMPORAL_PRESET,
    SyntheticConfig,
    make_synthetic,
    temporal_config,
    validation_videos,
)
from tr2_core.data.synthetic.temporal import blend_geometry
from tr2_core.errors import ConfigError, DatasetError

BASE = SyntheticConfig(
    videos=12, min_frames=6, max_frames=10, width=160, height=96, seed=21,
    change_rate=(0.5, 0.9), static_fraction=0.0, no_person_rate=0.0, invisible_rate=0.0,
    short_video_rate=0.0, small_box_rate=0.0, portrait_rate=0.0,
)  # fmt: skip
ANNOTATIONS = ("person_bbox.pkl", "object_bbox_and_relationship.pkl", "frame_list.txt")
TEMPORAL_KEYS = ("occlusion_rate", "motion_blur_rate", "ambiguous_pose_rate", "direction_rate")


def _meta(root: Path) -> dict:
    return json.loads((root / "annotations" / META_FILE).read_text())


def _objects(root: Path) -> dict:
    return safe_load(root / "annotations" / "object_bbox_and_relationship.pkl")


def _pixels(root: Path, key: str) -> np.ndarray:
    return np.asarray(Image.open(root / "frames" / key).convert("RGB")).astype(np.int16)


@pytest.fixture(scope="module")
def base(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("temporal") / "base"
    make_synthetic(root, BASE, progress=False)
    return root


@pytest.fixture(scope="module")
def occluded_blurred(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("temporal") / "occ"
    cfg = dataclasses.replace(BASE, occlusion_rate=0.3, motion_blur_rate=0.25)
    make_synthetic(root, cfg, progress=False)
    return root


def _halfway(tmp_path: Path, **rates: float) -> Path:
    root = tmp_path / "_".join(rates)
    make_synthetic(root, dataclasses.replace(BASE, images=False, **rates), progress=False)
    return root


def test_defaults_are_off_and_rates_are_recorded(base: Path) -> None:
    meta = _meta(base)
    assert all(meta["config"][k] == 0.0 for k in TEMPORAL_KEYS)
    for v in meta["videos"]:
        assert v["halfway_frames"] == v["occluded_frames"] == v["blurred_frames"] == []
    cfg = temporal_config(videos=3)
    assert {k: getattr(cfg, k) for k in TEMPORAL_KEYS} == TEMPORAL_PRESET
    assert all(v > 0 for v in TEMPORAL_PRESET.values())


def test_occlusion_and_blur_change_pixels_only(base: Path, occluded_blurred: Path) -> None:
    for name in ANNOTATIONS:  # GT unchanged: the relation continues under the occluder
        assert (occluded_blurred / "annotations" / name).read_bytes() == (
            base / "annotations" / name
        ).read_bytes(), name
    meta = _meta(occluded_blurred)
    assert meta["config"]["occlusion_rate"] == 0.3 and meta["config"]["motion_blur_rate"] == 0.25
    touched = set()
    for v in meta["videos"]:
        touched |= {o["frame"] for o in v["occluded_frames"]} | set(v["blurred_frames"])
    keys = (base / "annotations" / "frame_list.txt").read_text().splitlines()
    assert touched and set(keys) - touched
    for key in keys:
        same = np.array_equal(_pixels(base, key), _pixels(occluded_blurred, key))
        assert same == (key not in touched), key


def test_occluder_covers_the_box_while_the_relation_continues(occluded_blurred: Path) -> None:
    meta, objects = _meta(occluded_blurred), _objects(occluded_blurred)
    person = safe_load(occluded_blurred / "annotations" / "person_bbox.pkl")
    checked = {"hands": 0, "object": 0}
    for v in meta["videos"]:
        blurred = set(v["blurred_frames"])
        for occ in v["occluded_frames"]:
            key = occ["frame"]
            x1, y1, x2, y2 = occ["box"]
            if occ["target"] == "hands":
                kp = person[key]["keypoints"][0]
                inside = [kp[9, :2], kp[10, :2]]  # wrists (COCO order)
                checked["hands"] += 1
            else:
                rec = next(r for r in objects[key] if r["class"] == occ["target"])
                bx, by, bw, bh = rec["bbox"]
                inside = [(bx, by), (bx + bw, by + bh)]
                checked["object"] += 1
                if key not in blurred:  # every pixel of the object's box is the panel
                    im = _pixels(occluded_blurred, key)
                    patch = im[int(np.ceil(by)) : int(by + bh), int(np.ceil(bx)) : int(bx + bw)]
                    assert patch.size and (patch == patch[0, 0]).all(), key
                    assert len(set(patch[0, 0].tolist())) == 1  # grey, never a class colour
            for px, py in inside:
                assert x1 <= px <= x2 and y1 <= py <= y2, (key, occ)
    assert checked["hands"] and checked["object"]


def test_episodes_keep_relations_constant(occluded_blurred: Path) -> None:
    """Inside an episode (2-4 consecutive frames) the covered relation
    continues: the object's labels, or every contact for the hands."""
    meta, objects = _meta(occluded_blurred), _objects(occluded_blurred)
    keys = (occluded_blurred / "annotations" / "frame_list.txt").read_text().splitlines()
    order = {k: i for i, k in enumerate(keys)}
    n = 0
    for v in meta["videos"]:
        episodes: dict[int, list] = {}
        for o in v["occluded_frames"]:
            episodes.setdefault(o["episode"], []).append(o)
        for occs in episodes.values():
            frames = [order[o["frame"]] for o in occs]
            assert 2 <= len(frames) <= 4 and frames == list(range(frames[0], frames[-1] + 1))
            target = occs[0]["target"]
            assert all(o["target"] == target for o in occs)
            fams = ("contacting",) if target == "hands" else ("attention", "spatial", "contacting")
            seen = {
                (r["class"], *(str(r[f"{f}_relationship"]) for f in fams))
                for t in frames
                for r in objects[keys[t]]
                if target in ("hands", r["class"])
            }
            covered = {c for c, *_ in seen}  # one label tuple per covered object
            assert len(seen) == len(covered), (occs[0]["frame"], target, seen)
            n += 1
    assert n > 0


def test_blurred_frames_are_smoother(base: Path, occluded_blurred: Path) -> None:
    meta = _meta(occluded_blurred)
    occluded = {o["frame"] for v in meta["videos"] for o in v["occluded_frames"]}
    n = 0
    for key in (k for v in meta["videos"] for k in v["blurred_frames"]):
        if key in occluded:
            continue
        sharp, soft = _pixels(base, key), _pixels(occluded_blurred, key)
        assert np.abs(np.diff(soft, axis=1)).sum() < 0.8 * np.abs(np.diff(sharp, axis=1)).sum()
        n += 1
    assert n > 0


def _contacts(objects: dict, key: str) -> list:
    return [r["contacting_relationship"] for r in objects[key]]


@pytest.mark.parametrize(("rate", "mode", "step"), [("ambiguous_pose_rate", "in_force", 0),
                                                    ("direction_rate", "heading", 1)])  # fmt: skip
def test_halfway_poses(base: Path, tmp_path: Path, rate: str, mode: str, step: int) -> None:
    """Frames before a contact change show the halfway pose; contacting GT is
    the relation in force (step 0) or the one it is heading to (step 1)."""
    root = _halfway(tmp_path, **{rate: 1.0})
    meta, objects, ref = _meta(root), _objects(root), _objects(base)
    keys = (base / "annotations" / "frame_list.txt").read_text().splitlines()
    halfway = {h["frame"]: h["labels"] for v in meta["videos"] for h in v["halfway_frames"]}
    assert halfway and set(halfway.values()) == {mode}
    for i, key in enumerate(keys):
        if key not in halfway:
            assert objects[key] == ref[key], key  # every other frame as without the option
            continue
        nxt = keys[i + 1]
        assert _contacts(ref, key) != _contacts(ref, nxt)  # a contact change follows
        assert _contacts(objects, key) == _contacts(ref, [key, nxt][step])
        for r, a, b in zip(objects[key], ref[key], ref[nxt], strict=True):
            mid = (np.array(a["bbox"][:2]) + np.array(b["bbox"][:2])) / 2
            assert np.allclose(r["bbox"][:2], mid, atol=0.02), key  # drawn halfway


def test_halfway_pose_is_the_same_in_both_directions(tmp_path: Path) -> None:
    from tr2_core.data.synthetic.video_generator import generate_video

    v = generate_video(dataclasses.replace(BASE, change_rate=(0.9, 0.9)), 0, "V.mp4", "train")
    a, b = v.geoms[0], v.geoms[1]
    ab, ba = blend_geometry(a, b, v.stage), blend_geometry(b, a, v.stage)
    assert np.array_equal(ab.obj_boxes, ba.obj_boxes)
    assert np.array_equal(ab.person_box, ba.person_box)
    assert all(np.array_equal(ab.joints[k], ba.joints[k]) for k in ab.joints)


def test_validation_split(base: Path, tmp_path: Path) -> None:
    meta, objects = _meta(base), _objects(base)
    val = validation_videos(base)
    assert val == meta["val_videos"] and len(val) == round(BASE.val_fraction * BASE.videos)
    split = {k.split("/")[0]: recs[0]["metadata"]["set"] for k, recs in objects.items()}
    assert all(split[v] == "train" for v in val)  # held out of AG's train set
    assert [v["video"] for v in meta["videos"] if v["val"]] == val
    again = tmp_path / "again"
    make_synthetic(again, dataclasses.replace(BASE, images=False, val_fraction=0.4), progress=False)
    more = validation_videos(again)
    assert len(more) > len(val) and all(split[v] == "train" for v in more)
    none = tmp_path / "none"
    make_synthetic(none, dataclasses.replace(BASE, images=False, val_fraction=0.0), progress=False)
    assert validation_videos(none) == []
    with pytest.raises(DatasetError, match="not found"):
        validation_videos(tmp_path / "nowhere")


def test_config_validation_of_the_rates() -> None:
    with pytest.raises(ConfigError, match="ambiguous_pose_rate"):
        SyntheticConfig(ambiguous_pose_rate=0.6, direction_rate=0.6)
    with pytest.raises(ConfigError, match="occlusion_rate"):
        SyntheticConfig(occlusion_rate=1.5)


def test_cli_temporal_preset(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "cli"
    args = ["make-synthetic", str(out), "--videos", "4", "--frames", "3", "4", "--no-images",
            "--quiet", "--temporal", "--motion-blur-rate", "0.5"]  # fmt: skip
    assert main(args) == 0
    assert "validation" in capsys.readouterr().out
    config = _meta(out)["config"]
    assert config["motion_blur_rate"] == 0.5  # an explicit flag wins over the preset
    for k in ("occlusion_rate", "ambiguous_pose_rate", "direction_rate"):
        assert config[k] == TEMPORAL_PRESET[k]
