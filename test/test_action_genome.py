"""Action Genome loader: the benchmark's frame rules, the evaluator's GT form,
pair labels, class files, error messages and the parsed-annotation cache."""

from __future__ import annotations

import os
import pickle
import random
from pathlib import Path

import numpy as np
import pytest
from ag_fixtures import ReleaseBuilder, frame_key, object_record, person_record

from tr2_core.data import action_genome as ag
from tr2_core.data.action_genome import (
    ActionGenomeSplit,
    check_class_files,
    frame_number,
    load_split,
)
from tr2_core.errors import ConfigError, DatasetError, UnsafePickleError
from tr2_core.vocab import (
    ATTENTION,
    CONTACTING,
    OBJECT_CLASSES,
    OBJECT_INDEX,
    PREDICATE_INDEX,
    PREDICATES,
    SPATIAL,
    glued,
)


@pytest.fixture(autouse=True)
def _private_cache(tmp_path, monkeypatch):
    # never touch the user's ~/.cache from tests
    monkeypatch.setenv("TR2_CACHE_DIR", str(tmp_path / "cache"))


def load(root: Path, split: str = "test", **kwargs) -> ActionGenomeSplit:
    kwargs.setdefault("show_progress", False)
    kwargs.setdefault("cache", False)
    return load_split(root, split, **kwargs)


def frame_boxes(s: ActionGenomeSplit, f: int) -> tuple[np.ndarray, np.ndarray]:
    b0, b1 = s.gt.box_start[f], s.gt.box_start[f + 1]
    return s.gt.boxes[b0:b1], s.gt.box_labels[b0:b1]


def frame_triplets(s: ActionGenomeSplit, f: int) -> list[tuple[int, int, int]]:
    """(subject, object, predicate) with box rows relative to the frame."""
    b0 = s.gt.box_start[f]
    m = s.gt.triplet_frame == f
    return [
        (int(a - b0), int(b - b0), int(p))
        for a, b, p in zip(
            s.gt.triplet_subject[m], s.gt.triplet_object[m], s.gt.triplet_predicate[m], strict=True
        )
    ]


# --------------------------------------------------------------------------
# basic form


def test_gt_form_of_one_video(tmp_path):
    rb = ReleaseBuilder()
    cup = {
        "cls": "cup/glass/bottle",
        "bbox": (50, 60, 40, 30),
        "attention": ["looking_at"],
        "spatial": ["in_front_of", "on_the_side_of"],
        "contacting": ["holding", "touching"],
    }
    table = {
        "cls": "table",
        "bbox": (0.5, 100.25, 300, 150),
        "attention": ["not_looking_at"],
        "spatial": ["beneath"],
        "contacting": ["not_contacting"],
    }
    hidden = {"cls": "door", "visible": False}
    # inserted out of order: frames are ordered by frame number
    rb.frame("001YG.mp4", 300, [cup])
    rb.frame(
        "001YG.mp4", 89, [cup, hidden, table], person=person_record([(1, 2, 3, 4)], (270, 480))
    )
    rb.frame("001YG.mp4", 1000, [hidden, table])
    s = load(rb.write(tmp_path))

    gt = s.gt
    assert gt.videos.tolist() == ["001YG.mp4"]
    assert gt.video_start.tolist() == [0, 3]
    assert gt.frame_keys.tolist() == [
        "001YG.mp4/000089.png",
        "001YG.mp4/000300.png",
        "001YG.mp4/001000.png",
    ]
    assert s.frame_numbers.tolist() == [89, 300, 1000]
    assert gt.frame_video.tolist() == [0, 0, 0]
    assert gt.frame_size.tolist() == [[270, 480], [480, 270], [480, 270]]
    assert gt.box_start.tolist() == [0, 3, 5, 7]
    assert gt.box_frame.tolist() == [0, 0, 0, 1, 1, 2, 2]

    boxes, labels = frame_boxes(s, 0)
    assert labels.tolist() == [1, OBJECT_INDEX["cup/glass/bottle"], OBJECT_INDEX["table"]]
    np.testing.assert_array_equal(
        boxes, [[1, 2, 3, 4], [50, 60, 90, 90], [0.5, 100.25, 300.5, 250.25]]
    )
    assert gt.boxes.dtype == np.float32

    P = PREDICATE_INDEX
    assert frame_triplets(s, 0) == [
        (0, 1, P["looking_at"]),
        (1, 0, P["in_front_of"]),  # spatial: object is the subject
        (1, 0, P["on_the_side_of"]),
        (0, 1, P["holding"]),
        (0, 1, P["touching"]),
        (0, 2, P["not_looking_at"]),
        (2, 0, P["beneath"]),
        (0, 2, P["not_contacting"]),
    ]
    assert frame_triplets(s, 2) == [
        (0, 1, P["not_looking_at"]),
        (1, 0, P["beneath"]),
        (0, 1, P["not_contacting"]),
    ]

    # one pair per object box, in box order
    assert s.num_pairs == 4
    assert s.pair_frame.tolist() == [0, 0, 1, 2]
    assert s.pair_subject.tolist() == [0, 0, 3, 5]
    assert s.pair_object.tolist() == [1, 2, 4, 6]
    assert s.pair_attention.tolist() == [0, 1, 0, 1]
    assert s.pair_attention.dtype == np.int64
    assert s.pair_spatial.dtype == np.bool_ and s.pair_spatial.shape == (4, SPATIAL.size)
    assert s.pair_contacting.shape == (4, CONTACTING.size)
    spatial_names = [set(np.array(SPATIAL.predicates)[row]) for row in s.pair_spatial]
    assert spatial_names[0] == {"in_front_of", "on_the_side_of"}
    assert spatial_names[1] == {"beneath"}
    contact_names = [set(np.array(CONTACTING.predicates)[row]) for row in s.pair_contacting]
    assert contact_names[0] == {"holding", "touching"}
    assert contact_names[3] == {"not_contacting"}
    assert s.frame_has_person.all()


def test_frame_image_path_and_number(tmp_path):
    rb = ReleaseBuilder()
    rb.video("0A8CF.mp4", [3, 4, 5])
    s = load(rb.write(tmp_path))
    key = "0A8CF.mp4/000089.png"
    assert s.frame_image_path(key) == tmp_path / "frames" / "0A8CF.mp4" / "000089.png"
    assert s.frame_number(key) == 89 == frame_number(key)
    with pytest.raises(DatasetError, match="not of the form"):
        frame_number("no_slash.png")


def test_empty_attention_list_gives_minus_one(tmp_path):
    rb = ReleaseBuilder()
    rb.video("V.mp4", [1, 2, 3], objects=[{"cls": "book", "attention": []}])
    s = load(rb.write(tmp_path))
    assert s.pair_attention.tolist() == [-1, -1, -1]
    assert not np.isin(s.gt.triplet_predicate, np.arange(ATTENTION.start, ATTENTION.stop)).any()


def test_duplicate_names_kept_as_in_lineage(tmp_path):
    rb = ReleaseBuilder()
    rb.video("V.mp4", [1, 2, 3], objects=[{"cls": "book", "spatial": ["in", "in"]}])
    s = load(rb.write(tmp_path))
    assert frame_triplets(s, 0).count((1, 0, PREDICATE_INDEX["in"])) == 2
    assert s.pair_spatial[0].sum() == 1


# --------------------------------------------------------------------------
# frame / video selection rules


def test_split_from_first_object_metadata(tmp_path):
    rb = ReleaseBuilder()
    rb.video("A.mp4", [1, 2, 3], split="train")
    rb.video("B.mp4", [1, 2, 3], split="test")
    # a mixed frame: the first object decides
    key = frame_key("B.mp4", 4)
    rb.person[key] = person_record()
    rb.objects[key] = [
        object_record("book", split="train", key=key),
        object_record("cup/glass/bottle", split="test", key=key),
    ]
    root = rb.write(tmp_path)
    train, test = load(root, "train"), load(root, "test")
    assert train.gt.videos.tolist() == ["A.mp4"]
    assert test.gt.videos.tolist() == ["B.mp4"]
    assert key not in test.gt.frame_keys.tolist()


def test_frames_without_person_box(tmp_path):
    rb = ReleaseBuilder()
    rb.video("V.mp4", [1, 2, 3, 4])
    rb.frame("V.mp4", 5, person=person_record(boxes=()))
    root = rb.write(tmp_path)
    s = load(root)
    assert s.frame_numbers.tolist() == [1, 2, 3, 4]

    kept = load(root, filter_nonperson_box_frame=False)
    assert kept.frame_numbers.tolist() == [1, 2, 3, 4, 5]
    assert kept.frame_has_person.tolist() == [True] * 4 + [False]
    boxes, labels = frame_boxes(kept, 4)
    assert labels[0] == 1 and np.isnan(boxes[0]).all()
    assert np.isfinite(boxes[1]).all()


def test_empty_release_and_empty_split(tmp_path):
    empty = ReleaseBuilder().write(tmp_path / "empty")
    s = load(empty)
    assert s.num_frames == 0 and s.num_videos == 0 and s.num_pairs == 0
    assert s.gt.box_start.tolist() == [0] and s.gt.video_start.tolist() == [0]
    assert s.gt.boxes.shape == (0, 4) and s.pair_spatial.shape == (0, SPATIAL.size)
    rb = ReleaseBuilder()
    rb.video("V.mp4", [1, 2, 3], split="train")
    assert load(rb.write(tmp_path / "train_only"), "test").num_frames == 0


def test_first_person_box_used(tmp_path):
    rb = ReleaseBuilder()
    two = person_record([(5, 6, 7, 8), (100, 100, 200, 200)])
    rb.video("V.mp4", [1, 2, 3], person=two)
    s = load(rb.write(tmp_path))
    np.testing.assert_array_equal(s.gt.boxes[s.gt.box_start[:-1]], [[5, 6, 7, 8]] * 3)


def test_invisible_objects_and_invalid_frames(tmp_path):
    rb = ReleaseBuilder()
    hidden = {"cls": "door", "visible": False}
    rb.video("V.mp4", [1, 2, 3], objects=[hidden, {"cls": "book"}, hidden])
    rb.frame("V.mp4", 4, [hidden, hidden])  # no visible object: not valid
    rb.frame("V.mp4", 5, [])  # empty object list: no split, skipped
    s = load(rb.write(tmp_path))
    assert s.frame_numbers.tolist() == [1, 2, 3]
    assert s.gt.box_labels.tolist() == [1, OBJECT_INDEX["book"]] * 3


def test_short_videos_dropped(tmp_path):
    rb = ReleaseBuilder()
    rb.video("one.mp4", [1])
    rb.video("two.mp4", [1, 2])
    rb.video("three.mp4", [1, 2, 3])
    # four annotated frames, but two lose their person box -> 2 frames -> dropped
    rb.video("shrinks.mp4", [1, 2])
    rb.video("shrinks.mp4", [3, 4], person=person_record(boxes=()))
    # three frames but one has no visible object -> dropped
    rb.video("invalid.mp4", [1, 2])
    rb.frame("invalid.mp4", 3, [{"cls": "bed", "visible": False}])
    s = load(rb.write(tmp_path))
    assert s.gt.videos.tolist() == ["three.mp4"]
    assert s.num_frames == 3


def test_videos_ordered_by_name_frames_by_number(tmp_path):
    rb = ReleaseBuilder()
    rb.video("ZZZ.mp4", [30, 2, 100])
    rb.video("AAA.mp4", [9, 10, 8, 11])
    s = load(rb.write(tmp_path))
    assert s.gt.videos.tolist() == ["AAA.mp4", "ZZZ.mp4"]
    assert s.gt.video_start.tolist() == [0, 4, 7]
    assert s.frame_numbers.tolist() == [8, 9, 10, 11, 2, 30, 100]
    assert s.gt.frame_video.tolist() == [0, 0, 0, 0, 1, 1, 1]


def test_small_box_filter(tmp_path):
    rb = ReleaseBuilder()
    small = {"cls": "phone/camera", "bbox": (10, 10, 16, 40)}  # short edge 16: small
    edge = {"cls": "book", "bbox": (10, 10, 40, 17)}  # short edge 17: kept
    rb.video("V.mp4", [1, 2, 3], objects=[small, edge])
    rb.frame("V.mp4", 4, [small])  # becomes invalid under the filter
    rb.video("W.mp4", [1, 2], objects=[edge])
    rb.frame("W.mp4", 3, [small])  # W shrinks to 2 frames under the filter
    root = rb.write(tmp_path)

    plain = load(root)
    assert plain.gt.videos.tolist() == ["V.mp4", "W.mp4"]
    assert plain.num_frames == 7

    f = load(root, filter_small_boxes=True)
    assert f.gt.videos.tolist() == ["V.mp4"]
    assert f.frame_numbers.tolist() == [1, 2, 3]
    assert f.gt.box_labels.tolist() == [1, OBJECT_INDEX["book"]] * 3
    assert f.num_pairs == 3
    assert set(f.gt.triplet_object.tolist()) | set(f.gt.triplet_subject.tolist()) <= set(range(6))


# --------------------------------------------------------------------------
# reference implementation (a transcription of the baselines' per-frame loop)


def reference(person, objects, split, small, nonperson):
    videos: dict[str, list[str]] = {}
    for key, objs in person.items():
        objs = objects[key]
        if small:
            objs = [o for o in objs if not (o["visible"] and min(o["bbox"][2], o["bbox"][3]) <= 16)]
        if objects[key] and objects[key][0]["metadata"]["set"] == split:
            if any(o["visible"] for o in objs):
                videos.setdefault(key.split("/")[0], []).append(key)
    out = {}
    for video, keys in videos.items():
        frames = []
        for key in keys:
            has_person = person[key]["bbox"].shape[0] > 0
            if nonperson and not has_person:
                continue
            pbox = person[key]["bbox"][0] if has_person else np.full(4, np.nan)
            boxes, labels, trip = [list(pbox)], [1], []
            objs = objects[key]
            for o in objs:
                if not o["visible"] or (small and min(o["bbox"][2], o["bbox"][3]) <= 16):
                    continue
                x, y, w, h = o["bbox"]
                m = len(boxes)
                boxes.append([x, y, x + w, y + h])
                labels.append(OBJECT_INDEX[o["class"]])
                trip += [(0, m, PREDICATE_INDEX[r]) for r in o["attention_relationship"]]
                trip += [(m, 0, PREDICATE_INDEX[r]) for r in o["spatial_relationship"]]
                trip += [(0, m, PREDICATE_INDEX[r]) for r in o["contacting_relationship"]]
            frames.append((frame_number(key), key, boxes, labels, trip))
        if len(frames) > 2:
            out[video] = sorted(frames)
    return dict(sorted(out.items()))


def random_release(rng: random.Random):
    rb = ReleaseBuilder()
    classes = list(OBJECT_CLASSES[2:])
    for v in range(rng.randint(3, 12)):
        video = f"{rng.randint(0, 99999):05X}{v}.mp4"
        split = rng.choice(["train", "test"])
        for number in rng.sample(range(1, 2000), rng.randint(1, 7)):
            objs = []
            for _ in range(rng.randint(0, 4)):
                visible = rng.random() < 0.8
                objs.append(
                    {
                        "cls": rng.choice(classes),
                        "visible": visible,
                        "bbox": (
                            rng.uniform(0, 400),
                            rng.uniform(0, 200),
                            rng.choice([rng.uniform(1, 30), float(rng.randint(10, 20))]),
                            rng.uniform(1, 200),
                        ),
                        "attention": rng.sample(ATTENTION.predicates, rng.choice([1, 1, 1, 0])),
                        "spatial": rng.sample(SPATIAL.predicates, rng.randint(0, 2)),
                        "contacting": rng.sample(CONTACTING.predicates, rng.randint(0, 3)),
                    }
                )
            n_person = rng.choice([1, 1, 1, 1, 0, 2])
            boxes = [
                (rng.uniform(0, 100), rng.uniform(0, 100), rng.uniform(150, 400), 260.0)
                for _ in range(n_person)
            ]
            rb.frame(video, number, objs, person=person_record(boxes), split=split)
    return rb


@pytest.mark.parametrize("seed", range(6))
def test_matches_reference_loop(tmp_path, seed):
    rng = random.Random(seed)
    rb = random_release(rng)
    root = rb.write(tmp_path / "ag")
    for split in ("train", "test"):
        for small in (False, True):
            for nonperson in (True, False):
                s = load(
                    root, split, filter_small_boxes=small, filter_nonperson_box_frame=nonperson
                )
                ref = reference(rb.person, rb.objects, split, small, nonperson)
                assert s.gt.videos.tolist() == list(ref)
                flat = [fr for frames in ref.values() for fr in frames]
                assert s.gt.frame_keys.tolist() == [fr[1] for fr in flat]
                for f, (_, _, boxes, labels, trip) in enumerate(flat):
                    got_boxes, got_labels = frame_boxes(s, f)
                    np.testing.assert_allclose(got_boxes, np.array(boxes, np.float32))
                    assert got_labels.tolist() == labels
                    assert frame_triplets(s, f) == trip
                # pair labels agree with the triplets
                for p in range(s.num_pairs):
                    f, o = s.pair_frame[p], s.pair_object[p]
                    trip = frame_triplets(s, f)
                    m = int(o - s.gt.box_start[f])
                    assert s.pair_subject[p] == s.gt.box_start[f]
                    att = [t[2] for t in trip if t[:2] == (0, m) and t[2] < SPATIAL.start]
                    assert s.pair_attention[p] == (att[0] if att else -1)
                    spa = {t[2] - SPATIAL.start for t in trip if t[:2] == (m, 0)}
                    assert set(np.flatnonzero(s.pair_spatial[p])) == spa
                    con = {
                        t[2] - CONTACTING.start
                        for t in trip
                        if t[:2] == (0, m) and t[2] >= CONTACTING.start
                    }
                    assert set(np.flatnonzero(s.pair_contacting[p])) == con


def test_key_parsing_fallback_for_older_numpy(tmp_path, monkeypatch):
    rb = random_release(random.Random(3))
    root = rb.write(tmp_path)
    fast = load(root, "train")
    monkeypatch.setattr(np, "strings", object(), raising=False)  # NumPy 1.x has none
    slow = load(root, "train")
    np.testing.assert_array_equal(fast.gt.frame_keys, slow.gt.frame_keys)
    np.testing.assert_array_equal(fast.frame_numbers, slow.frame_numbers)
    np.testing.assert_array_equal(fast.gt.videos, slow.gt.videos)


# --------------------------------------------------------------------------
# class files


def write_default(tmp_path: Path) -> Path:
    rb = ReleaseBuilder()
    rb.video("V.mp4", [1, 2, 3])
    return rb.write(tmp_path)


def test_class_files_trailing_space_and_spelling(tmp_path):
    root = write_default(tmp_path)
    ann = root / "annotations"
    lines = (ann / "object_classes.txt").read_text().splitlines()
    assert lines[8] == "closetcabinet"
    lines[8] = "closetcabinet "  # the known copy with a trailing space
    lines[10] = "cup/glass/bottle"  # slash spelling is the same name
    (ann / "object_classes.txt").write_text("\r\n".join(lines) + "\r\n\n")
    check_class_files(ann)
    assert load(root).num_frames == 3


def test_class_file_mismatch_names_file_and_line(tmp_path):
    root = write_default(tmp_path)
    ann = root / "annotations"
    lines = [glued(p) for p in PREDICATES]
    lines[5], lines[6] = lines[6], lines[5]
    (ann / "relationship_classes.txt").write_text("\n".join(lines))
    with pytest.raises(
        DatasetError, match=r"relationship_classes.txt, line 6: expected 'infrontof'"
    ):
        load(root)


def test_class_file_wrong_count(tmp_path):
    root = write_default(tmp_path)
    ann = root / "annotations"
    lines = (ann / "object_classes.txt").read_text().splitlines()
    (ann / "object_classes.txt").write_text("\n".join(lines[:-1]))
    with pytest.raises(
        DatasetError, match=r"object_classes.txt: expected 36 class names, found 35"
    ):
        load(root)


# --------------------------------------------------------------------------
# errors


@pytest.mark.parametrize("name", ag.ANNOTATION_FILES)
def test_missing_file_named(tmp_path, name):
    root = write_default(tmp_path)
    (root / "annotations" / name).unlink()
    with pytest.raises(DatasetError, match=f"missing annotation file.*{name}"):
        load(root)


def test_bad_split_name(tmp_path):
    with pytest.raises(ConfigError, match="split"):
        load(write_default(tmp_path), "val")


def test_truncated_pickle(tmp_path):
    root = write_default(tmp_path)
    path = root / "annotations" / "person_bbox.pkl"
    data = path.read_bytes()
    path.write_bytes(data[: len(data) - 40])
    with pytest.raises(DatasetError, match="person_bbox.pkl.*truncated"):
        load(root)


def test_malicious_annotation_refused(tmp_path):
    root = write_default(tmp_path)
    marker = tmp_path / "pwned"

    class Evil:
        def __reduce__(self):
            return (os.system, (f"touch {marker}",))

    path = root / "annotations" / "object_bbox_and_relationship.pkl"
    path.write_bytes(pickle.dumps({"V.mp4/000001.png": [Evil()]}))
    with pytest.raises(UnsafePickleError, match="object_bbox_and_relationship.pkl"):
        load(root)
    assert not marker.exists()


def _error_for(tmp_path, obj: dict, match: str) -> None:
    rb = ReleaseBuilder()
    rb.video("V.mp4", [1, 2, 3])
    key = rb.frame("V.mp4", 4, [{"cls": "book"}, obj])
    with pytest.raises(DatasetError, match=match) as info:
        load(rb.write(tmp_path))
    assert key in str(info.value)
    assert "object_bbox_and_relationship.pkl" in str(info.value)


@pytest.mark.parametrize(
    ("obj", "match"),
    [
        ({"cls": "book", "bbox": (1, 2, 0, 5)}, "w and h must be finite and > 0"),
        ({"cls": "book", "bbox": (1, 2, 5, -1)}, "w and h must be finite and > 0"),
        ({"cls": "book", "bbox": (1, 2, float("nan"), 3)}, "finite"),
        ({"cls": "book", "bbox": None}, "has bbox None"),
        ({"cls": "book", "bbox": (1, 2, 3)}, "expected x y w h"),
        ({"cls": "spoon"}, "unknown object class 'spoon'"),
        ({"cls": "closetcabinet"}, "unknown object class 'closetcabinet'"),
        ({"cls": "__background__"}, "unknown object class"),
        ({"cls": "book", "contacting": ["holding", "juggling"]}, "contacting predicate 'juggling'"),
        ({"cls": "book", "spatial": ["infrontof"]}, "unknown spatial predicate 'infrontof'"),
        ({"cls": "book", "attention": ["holding"]}, "unknown attention predicate 'holding'"),
        ({"cls": "book", "spatial": None}, "spatial_relationship None"),
        ({"cls": "book", "attention": None}, "attention_relationship None"),
        ({"cls": "book", "contacting": None}, "contacting_relationship None"),
    ],
)
def test_bad_visible_object(tmp_path, obj, match):
    _error_for(tmp_path, obj, match)


def test_record_missing_field(tmp_path):
    rb = ReleaseBuilder()
    rb.video("V.mp4", [1, 2, 3])
    key = rb.frame("V.mp4", 4)
    del rb.objects[key][0]["visible"]
    with pytest.raises(DatasetError, match=f"frame '{key}': malformed object record"):
        load(rb.write(tmp_path))


def test_visible_record_missing_class(tmp_path):
    rb = ReleaseBuilder()
    rb.video("V.mp4", [1, 2, 3])
    key = rb.frame("V.mp4", 4, [{"cls": "book"}, {"cls": "bed"}])
    del rb.objects[key][1]["class"]
    with pytest.raises(DatasetError, match=f"frame '{key}': malformed object record: no 'class'"):
        load(rb.write(tmp_path))


def test_person_bbox_wrong_shape(tmp_path):
    rb = ReleaseBuilder()
    rb.video("V.mp4", [1, 2, 3])
    key = rb.frame("V.mp4", 4)
    rb.person[key]["bbox"] = np.array([1.0, 2.0, 3.0, 4.0, 5.0], np.float32)
    with pytest.raises(
        DatasetError, match=f"frame '{key}': person record has bbox .*expected an \\(N, 4\\) array"
    ):
        load(rb.write(tmp_path))


def test_pickle_of_wrong_type(tmp_path):
    root = write_default(tmp_path)
    (root / "annotations" / "person_bbox.pkl").write_bytes(pickle.dumps([1, 2]))
    with pytest.raises(DatasetError, match="person_bbox.pkl: expected a dict"):
        load(root)


def test_person_record_missing_field(tmp_path):
    rb = ReleaseBuilder()
    rb.video("V.mp4", [1, 2, 3])
    key = rb.frame("V.mp4", 4)
    del rb.person[key]["bbox_size"]
    with pytest.raises(DatasetError, match=f"person_bbox.pkl: frame '{key}': malformed person"):
        load(rb.write(tmp_path))


def test_bad_objects_outside_processed_frames_ignored(tmp_path):
    # the baselines never convert objects of frames they skip (no person box,
    # other split): neither do we
    rb = ReleaseBuilder()
    rb.video("V.mp4", [1, 2, 3])
    rb.frame("V.mp4", 4, [{"cls": "spoon"}], person=person_record(boxes=()))
    rb.frame("T.mp4", 1, [{"cls": "book", "bbox": (0, 0, 0, 0)}], split="train")
    assert load(rb.write(tmp_path)).num_frames == 3


@pytest.mark.parametrize("side", ["person", "objects"])
def test_key_in_one_pickle_only(tmp_path, side):
    rb = ReleaseBuilder()
    rb.video("V.mp4", [1, 2, 3])
    key = rb.frame("V.mp4", 4)
    del getattr(rb, "objects" if side == "person" else "person")[key]
    with pytest.raises(DatasetError, match="not in") as info:
        load(rb.write(tmp_path))
    msg = str(info.value)
    present = "person_bbox.pkl" if side == "person" else "object_bbox_and_relationship.pkl"
    assert key in msg
    assert msg.index(present) < msg.index("not in")


def test_malformed_frame_key(tmp_path):
    rb = ReleaseBuilder()
    rb.video("V.mp4", [1, 2, 3])
    rb.person["V.mp4-frame7.png"] = person_record()
    rb.objects["V.mp4-frame7.png"] = [object_record("book", key="V.mp4/x.png")]
    with pytest.raises(DatasetError, match="'V.mp4-frame7.png' is not of the form"):
        load(rb.write(tmp_path))


# --------------------------------------------------------------------------
# cache


def _same(a: ActionGenomeSplit, b: ActionGenomeSplit) -> None:
    for name in ag._GT_FIELDS:
        x, y = getattr(a.gt, name), getattr(b.gt, name)
        assert x.dtype == y.dtype, name
        np.testing.assert_array_equal(x, y, err_msg=name)
    for name in ag._SPLIT_ARRAYS:
        x, y = getattr(a, name), getattr(b, name)
        assert x.dtype == y.dtype, name
        np.testing.assert_array_equal(x, y, err_msg=name)


def _count_parses(monkeypatch) -> list[int]:
    calls = []
    real = ag._parse

    def counting(*args, **kwargs):
        calls.append(1)
        return real(*args, **kwargs)

    monkeypatch.setattr(ag, "_parse", counting)
    return calls


def test_cache_hit_and_content(tmp_path, monkeypatch):
    rb = random_release(random.Random(7))
    root = rb.write(tmp_path / "ag")
    cache_dir = tmp_path / "c"
    calls = _count_parses(monkeypatch)
    fresh = load(root, "train", cache=False)
    first = load(root, "train", cache=True, cache_dir=cache_dir)
    second = load(root, "train", cache=True, cache_dir=cache_dir)
    assert len(calls) == 2  # the cache=False load and the first cached load
    _same(fresh, first)
    _same(fresh, second)
    files = list(cache_dir.iterdir())
    assert len(files) == 1 and files[0].suffix == ".npz"
    with np.load(files[0], allow_pickle=False) as npz:  # no object arrays inside
        assert all(npz[k].dtype != object for k in npz.files)


def test_cache_invalidated_by_file_change_and_options(tmp_path, monkeypatch):
    rb = ReleaseBuilder()
    rb.video("V.mp4", [1, 2, 3])
    root = rb.write(tmp_path / "ag")
    calls = _count_parses(monkeypatch)
    assert load(root, cache=True).num_frames == 3
    assert load(root, cache=True).num_frames == 3
    assert len(calls) == 1
    # options are part of the key
    load(root, cache=True, filter_small_boxes=True)
    assert len(calls) == 2
    load(root, cache=True, filter_small_boxes=True)
    assert len(calls) == 2
    # changed annotations: rebuilt, and the entry is overwritten, not added
    n_entries = len(list((tmp_path / "cache" / "annotations").iterdir()))
    rb.video("V.mp4", [4, 5])
    rb.write(root)
    ann = root / "annotations" / "object_bbox_and_relationship.pkl"
    st = ann.stat()
    os.utime(ann, ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))  # coarse-mtime filesystems
    assert load(root, cache=True).num_frames == 5
    assert len(calls) == 3
    assert len(list((tmp_path / "cache" / "annotations").iterdir())) == n_entries


def test_corrupt_cache_rebuilt(tmp_path, monkeypatch):
    root = write_default(tmp_path / "ag")
    calls = _count_parses(monkeypatch)
    good = load(root, cache=True)
    (entry,) = (tmp_path / "cache" / "annotations").iterdir()
    entry.write_bytes(entry.read_bytes()[:100])
    again = load(root, cache=True)
    assert len(calls) == 2
    _same(good, again)
    assert load(root, cache=True).num_frames == 3
    assert len(calls) == 2  # the rebuilt entry is valid again


def test_cache_disabled_writes_nothing(tmp_path):
    root = write_default(tmp_path / "ag")
    load(root, cache=False)
    assert not (tmp_path / "cache").exists()


def test_default_cache_dir(monkeypatch, tmp_path):
    monkeypatch.setenv("TR2_CACHE_DIR", str(tmp_path / "x"))
    assert ag.default_cache_dir() == tmp_path / "x" / "annotations"
    monkeypatch.delenv("TR2_CACHE_DIR")
    monkeypatch.delenv("XDG_CACHE_HOME", raising=False)
    assert ag.default_cache_dir() == Path.home() / ".cache" / "tr2" / "annotations"


def test_unwritable_cache_only_warns(tmp_path):
    root = write_default(tmp_path / "ag")
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    with pytest.warns(UserWarning, match="could not write annotation cache"):
        s = load(root, cache=True, cache_dir=blocker / "sub")
    assert s.num_frames == 3


def test_progress_bars_do_not_change_result(tmp_path, capsys):
    root = write_default(tmp_path / "ag")
    a = load(root, show_progress=True)
    b = load(root, show_progress=False)
    _same(a, b)


def test_key_parsing_fallback_names_the_file(monkeypatch):
    from tr2_core.data.action_genome import _split_frame_keys
    from tr2_core.errors import DatasetError

    monkeypatch.setattr(np, "strings", object(), raising=False)  # NumPy 1.x has none
    with pytest.raises(DatasetError, match=r"^x\.pkl: frame key 'V\.mp4/²³\.png' is not"):
        _split_frame_keys(np.array(["V.mp4/1.png", "V.mp4/²³.png"]), Path("x.pkl"))
