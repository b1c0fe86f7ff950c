"""Benchmark: reading Action Genome annotations at the release's full size.

Generates ``person_bbox.pkl`` / ``object_bbox_and_relationship.pkl`` with the
release's size and record layout (9,848 videos, ~234k frames, 2-3 objects per
frame, person records with keypoint arrays) from NumPy random draws, writes
them in the release layout, then times:

* raw unpickling of both files: stock ``pickle.load`` vs the allow-list
  :func:`~tr2_core.data.safe_pickle.safe_load`;
* cold ``load_split`` (no cache: unpickle + parse + build arrays), test and train;
* warm ``load_split('test')`` from the parsed-annotation cache.

Usage::

    .venv/bin/python bench/bench_load_annotations.py            # full size
    .venv/bin/python bench/bench_load_annotations.py --frames 20000
"""

from __future__ import annotations

import argparse
import gc
import os
import pickle
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from tr2_core.data.action_genome import load_split
from tr2_core.data.release_writer import write_class_files
from tr2_core.data.safe_pickle import safe_load
from tr2_core.vocab import ATTENTION, CONTACTING, OBJECT_CLASSES, SPATIAL

RELEASE_VIDEOS = 9_848
RELEASE_FRAMES = 234_253


def _video_names(n: int, rng: np.random.Generator) -> list[str]:
    alphabet = np.array(list("0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ"))
    ids = rng.choice(36**5, size=n, replace=False)
    digits = (ids[:, None] // 36 ** np.arange(4, -1, -1)) % 36
    return ["".join(row) + ".mp4" for row in alphabet[digits]]


def generate(frames: int, videos: int, seed: int = 0) -> tuple[dict, dict]:
    """(person_bbox, object_bbox_and_relationship) dicts with the release's layout.

    Frame counts per video vary (some videos have 1-2 frames), ~18 % of the
    videos are test videos, ~3 % of frames have no person box, ~10 % of object
    records are invisible; boxes are float tuples x y w h, some small.
    """
    rng = np.random.default_rng(seed)
    names = _video_names(videos, rng)
    # uneven lengths, some 1-2 frame videos; test videos are longer on average
    # (release: ~18 % of the videos, ~24 % of the frames are test)
    is_test = rng.random(videos) < 0.18
    weights = rng.gamma(2.0, size=videos) * np.where(is_test, 1.45, 1.0)
    per_video = rng.multinomial(frames - videos, weights / weights.sum()) + 1
    n = int(per_video.sum())

    frame_video = np.repeat(np.arange(videos), per_video)
    # increasing frame numbers inside each video
    steps = rng.integers(5, 60, size=n)
    starts = np.cumsum(per_video) - per_video
    numbers = np.cumsum(steps) - np.repeat(np.cumsum(steps)[starts] - steps[starts], per_video)
    keys = [
        f"{names[v]}/{num:06d}.png"
        for v, num in zip(frame_video.tolist(), numbers.tolist(), strict=True)
    ]

    has_person = rng.random(n) > 0.03
    pxy = rng.uniform(0, 200, size=(n, 2)).astype(np.float32)
    pbox = np.concatenate([pxy, pxy + rng.uniform(50, 250, size=(n, 2))], 1).astype(np.float32)
    keypoints = rng.random((n, 1, 17, 3), dtype=np.float32)
    logits = rng.random((n, 1, 17), dtype=np.float32)
    scores = rng.random((n, 1), dtype=np.float32)
    portrait = rng.random(videos) < 0.1
    empty_box = np.zeros((0, 4), np.float32)
    person: dict = {}
    for i, key in enumerate(keys):
        v = frame_video[i]
        size = (270, 480) if portrait[v] else (480, 270)
        if has_person[i]:
            person[key] = {
                "bbox": pbox[i : i + 1].copy(),
                "bbox_score": scores[i].copy(),
                "bbox_size": size,
                "bbox_mode": "xyxy",
                "keypoints": keypoints[i].copy(),
                "keypoints_logits": logits[i].copy(),
            }
        else:
            person[key] = {
                "bbox": empty_box.copy(),
                "bbox_score": np.zeros(0, np.float32),
                "bbox_size": size,
                "bbox_mode": "xyxy",
                "keypoints": np.zeros((0, 17, 3), np.float32),
                "keypoints_logits": np.zeros((0, 17), np.float32),
            }

    n_obj = rng.choice([1, 2, 3, 3, 4], size=n)
    m = int(n_obj.sum())
    classes = np.array(OBJECT_CLASSES[2:])[rng.integers(0, len(OBJECT_CLASSES) - 2, m)].tolist()
    visible = (rng.random(m) > 0.1).tolist()
    xy = rng.uniform(0, 300, size=(m, 2))
    wh = rng.uniform(8, 200, size=(m, 2))
    boxes = np.concatenate([xy, wh], 1).round(2).tolist()
    att = np.array(ATTENTION.predicates)[rng.integers(0, ATTENTION.size, m)].tolist()
    spa = np.array(SPATIAL.predicates)
    con = np.array(CONTACTING.predicates)
    n_spa = rng.choice([1, 1, 1, 2], size=m)
    n_con = rng.choice([1, 1, 2, 3], size=m)
    spa_idx = rng.integers(0, SPATIAL.size, size=(m, 2))
    con_idx = rng.integers(0, CONTACTING.size, size=(m, 3))
    spa_lists = [spa[r[:k]].tolist() for r, k in zip(spa_idx, n_spa.tolist(), strict=True)]
    con_lists = [con[r[:k]].tolist() for r, k in zip(con_idx, n_con.tolist(), strict=True)]
    objects: dict = {}
    j = 0
    for i, key in enumerate(keys):
        split = "test" if is_test[frame_video[i]] else "train"
        video, frame = key.split("/")
        stem = frame[:-4]
        records = []
        for _ in range(n_obj[i]):
            c = classes[j]
            vis = visible[j]
            records.append(
                {
                    "class": c,
                    "bbox": tuple(boxes[j]) if vis else None,
                    "attention_relationship": [att[j]] if vis else None,
                    "spatial_relationship": spa_lists[j] if vis else None,
                    "contacting_relationship": con_lists[j] if vis else None,
                    "metadata": {"tag": f"{video}/{c}/{stem}", "set": split},
                    "visible": vis,
                }
            )
            j += 1
        objects[key] = records
    return person, objects


def _timed(fn, repeat: int = 1) -> tuple[float, object]:
    best, out = float("inf"), None
    for _ in range(repeat):
        gc.collect()
        t = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - t)
    return best, out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--frames", type=int, default=RELEASE_FRAMES, help="annotated frames")
    ap.add_argument("--videos", type=int, default=0, help="videos (default: scaled to frames)")
    ap.add_argument("--protocol", type=int, default=3, help="pickle protocol of the files")
    ap.add_argument("--workdir", type=Path, default=None, help="keep the files here")
    ap.add_argument("--repeat", type=int, default=1, help="repetitions (best is reported)")
    args = ap.parse_args(argv)
    videos = args.videos or max(3, round(RELEASE_VIDEOS * args.frames / RELEASE_FRAMES))

    work = args.workdir or Path(tempfile.mkdtemp(prefix="tr2-bench-ag-"))
    root = work / "ag"
    ann = root / "annotations"
    ann.mkdir(parents=True, exist_ok=True)
    rows: list[tuple[str, str]] = []
    try:
        t_gen, (person, objects) = _timed(lambda: generate(args.frames, videos))
        write_class_files(ann)
        t0 = time.perf_counter()
        files = {"person_bbox.pkl": person, "object_bbox_and_relationship.pkl": objects}
        for name, obj in files.items():
            with open(ann / name, "wb") as f:
                pickle.dump(obj, f, protocol=args.protocol)
        t_write = time.perf_counter() - t0
        n_frames, n_objects = len(person), sum(map(len, objects.values()))
        del person, objects, files
        gc.collect()
        rows.append(("generate records (not timed below)", f"{t_gen:.2f} s"))
        rows.append(("write pickles", f"{t_write:.2f} s"))
        for name in ("person_bbox.pkl", "object_bbox_and_relationship.pkl"):
            size = (ann / name).stat().st_size / 2**20
            path = ann / name

            def plain(p: Path = path) -> object:
                with open(p, "rb") as f:
                    return pickle.load(f)  # trusted: we just wrote it (comparison only)

            t_plain, _ = _timed(plain, args.repeat)
            t_safe, _ = _timed(lambda p=path: safe_load(p), args.repeat)
            rows.append((f"{name} ({size:.0f} MiB): pickle.load", f"{t_plain:.2f} s"))
            rows.append((f"{name}: safe_load", f"{t_safe:.2f} s"))
        cache = work / "cache"
        for split in ("test", "train"):
            t_cold, s = _timed(
                lambda sp=split: load_split(root, sp, show_progress=False, cache=False),
                args.repeat,
            )
            rows.append(
                (
                    f"cold load_split('{split}') [{s.num_videos} videos, {s.num_frames} frames]",
                    f"{t_cold:.2f} s",
                )
            )
        t_first, _ = _timed(lambda: load_split(root, "test", show_progress=False, cache_dir=cache))
        rows.append(("load_split('test') first run, writes cache", f"{t_first:.2f} s"))
        t_warm, s = _timed(
            lambda: load_split(root, "test", show_progress=False, cache_dir=cache),
            max(3, args.repeat),
        )
        cache_mb = sum(p.stat().st_size for p in cache.iterdir()) / 2**20
        rows.append((f"warm load_split('test') from cache ({cache_mb:.1f} MiB)", f"{t_warm:.3f} s"))
    finally:
        if args.workdir is None:
            shutil.rmtree(work, ignore_errors=True)

    print(
        f"\nAction Genome annotation loading: {n_frames} frames, {videos} videos, "
        f"{n_objects} object records, pickle protocol {args.protocol}, "
        f"{os.cpu_count()} CPUs, Python {sys.version.split()[0]}, NumPy {np.__version__}"
    )
    width = max(len(r[0]) for r in rows)
    for label, value in rows:
        print(f"  {label:<{width}}  {value:>9}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
