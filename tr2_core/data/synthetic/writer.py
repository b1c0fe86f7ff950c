"""Writing a synthetic dataset in the Action Genome release layout."""

from __future__ import annotations

import json
import os
import shutil
import time
from collections.abc import Iterator
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from tr2_core.data.release_writer import write_annotations
from tr2_core.data.synthetic.generator_config import META_FILE, SyntheticConfig, SyntheticSummary
from tr2_core.data.synthetic.meta import meta_path, read_meta
from tr2_core.data.synthetic.parallel import ordered_map, worker_count
from tr2_core.data.synthetic.video_generator import VideoOut, draw_frame, generate_video
from tr2_core.errors import ConfigError, DatasetError
from tr2_core.progress import bar_disabled

_ID_CHARS = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ"


def _video_ids(rng: np.random.Generator, n: int) -> list[str]:
    """``n`` distinct 5-character video ids (AG style)."""
    ids: set[str] = set()
    out: list[str] = []
    while len(out) < n:
        vid = "".join(_ID_CHARS[int(i)] for i in rng.integers(0, len(_ID_CHARS), size=5))
        if vid not in ids:
            ids.add(vid)
            out.append(vid)
    return out


def _clear_root(root: Path, overwrite: bool) -> None:
    """Refuse (or, with ``overwrite``, remove) an earlier dataset at ``root``;
    annotations this generator did not write are never removed."""
    ann = root / "annotations"
    if ann.exists() and any(ann.iterdir()):
        if not overwrite:
            raise ConfigError(f"{root}: already holds annotations/ (use overwrite / --force)")
        if not (ann / META_FILE).is_file():
            raise ConfigError(
                f"{root}: annotations/ was not written by the synthetic generator; "
                "refusing to replace it"
            )
        shutil.rmtree(ann)
        if (root / "frames").is_dir():
            shutil.rmtree(root / "frames")


def _ids_and_test_rows(cfg: SyntheticConfig) -> tuple[list[str], set[int]]:
    """Sorted video ids and the rows (indices into them) of the test split."""
    master = np.random.default_rng([cfg.seed, 0x7E2])
    ids = sorted(_video_ids(master, cfg.videos))
    n_test = int(round(cfg.test_fraction * cfg.videos))
    if 0.0 < cfg.test_fraction < 1.0 and cfg.videos >= 2:
        n_test = min(max(n_test, 1), cfg.videos - 1)
    test_rows = set(master.permutation(cfg.videos)[:n_test].tolist())
    return ids, test_rows


def _val_videos(cfg: SyntheticConfig, ids: list[str], test_rows: set[int]) -> list[str]:
    """The validation videos: a seeded subset of the training videos
    (``round(val_fraction * videos)``, at least one when the fraction is
    positive, never all training videos). Drawn from its own stream, so the
    train/test assignment does not depend on it."""
    train = [i for i in range(len(ids)) if i not in test_rows]
    n_val = int(round(cfg.val_fraction * cfg.videos))
    if cfg.val_fraction > 0.0:
        n_val = max(n_val, 1)
    n_val = min(n_val, len(train) - 1)
    if n_val <= 0:
        return []
    rng = np.random.default_rng([cfg.seed, 0x7A1])
    rows = rng.permutation(len(train))[:n_val]
    return sorted(f"{ids[train[int(r)]]}.mp4" for r in rows)


def validation_videos(root: str | os.PathLike[str]) -> list[str]:
    """Validation video ids (``"XXXXX.mp4"``) of the synthetic dataset at
    ``root``, read from ``annotations/synthetic_meta.json`` (empty for a
    dataset written before the split existed). Their records are in AG's
    ``'train'`` set: a loader trains on the train split minus these.

    Raises:
        DatasetError: ``root`` holds no synthetic meta file.
    """
    meta = read_meta(root)
    if meta is None:
        raise DatasetError(f"{meta_path(root)}: not found (not a synthetic dataset?)")
    return list(meta.get("val_videos", []))


def rendered_frames(v: VideoOut) -> Iterator[tuple[str, Image.Image]]:
    """Every frame of ``v`` as ``(key, image)``, drawn as the release shows it:
    occluders over the scene, then motion blur."""
    for t, key in enumerate(v.keys):
        yield key, v.images[t] if v.images is not None else draw_frame(v, t)[0]


def generate_and_write(
    job: tuple[SyntheticConfig, Path | None, int, str, str],
) -> tuple[VideoOut, int]:
    """Video ``index`` of ``cfg`` (named ``video``, in ``split``), its frames written
    under ``root`` unless it is None; returns it without its drawings (they stay in
    the process that drew them) and the number of images written."""
    cfg, root, index, video, split = job
    v = generate_video(cfg, index, video, split)
    written = 0 if root is None else _write_frames(root, v, cfg.png_compress_level)
    v.images = None
    return v, written


def frames_in_memory(job: tuple[SyntheticConfig, int, str]) -> tuple[VideoOut, list[np.ndarray]]:
    """Video ``index`` of ``cfg`` (named ``video``, a training video) and its frames
    (H, W, 3) uint8 as the release shows them, drawn in memory."""
    cfg, index, video = job
    v = generate_video(cfg, index, video, "train")
    frames = [np.array(im.convert("RGB")) for _, im in rendered_frames(v)]
    v.images = None
    return v, frames


def _write_frames(root: Path, v: VideoOut, compress_level: int) -> int:
    """Render and save every frame of ``v``; returns the number written."""
    (root / "frames" / v.video).mkdir(parents=True, exist_ok=True)
    for key, im in rendered_frames(v):
        im.save(root / "frames" / key, format="PNG", compress_level=compress_level)
    return len(v.keys)


def make_synthetic(
    out: str | os.PathLike[str],
    cfg: SyntheticConfig | None = None,
    *,
    progress: bool = True,
    overwrite: bool = False,
    workers: int | None = None,
) -> SyntheticSummary:
    """Generate a synthetic Action Genome dataset at ``out``.

    Writes ``out/frames/VIDEO.mp4/FRAME.png`` (unless ``cfg.images`` is
    False), ``out/annotations/`` in the exact release layout (via
    :func:`tr2_core.data.release_writer.write_annotations`) and
    ``out/annotations/synthetic_meta.json``.

    Args:
        out: the dataset root to create.
        cfg: generation parameters (default :class:`SyntheticConfig()`).
        progress: show a tqdm progress bar.
        overwrite: replace an earlier synthetic dataset at ``out``; a folder
            with annotations that this generator did not write is never
            replaced.
        workers: processes generating videos (None: every core, when there are
            enough videos; 1: this process). The dataset is the same for any number.

    Raises:
        ConfigError: ``out`` already holds annotations (and ``overwrite`` is
            False or they are not synthetic).
    """
    from tqdm import tqdm

    cfg = cfg or SyntheticConfig()
    root = Path(out)
    _clear_root(root, overwrite)
    t0 = time.perf_counter()
    ids, test_rows = _ids_and_test_rows(cfg)
    val = _val_videos(cfg, ids, test_rows)
    person: dict[str, dict[str, Any]] = {}
    objects: dict[str, list[dict[str, Any]]] = {}
    metas = []
    n_images = 0
    bar = tqdm(total=cfg.videos, desc="synthetic AG", unit="video", disable=bar_disabled(progress))
    jobs = [
        (cfg, root if cfg.images else None, index, f"{vid}.mp4",
         "test" if index in test_rows else "train")
        for index, vid in enumerate(ids)
    ]  # fmt: skip
    for v, written in ordered_map(generate_and_write, jobs, worker_count(cfg.videos, workers)):
        for t, key in enumerate(v.keys):
            person[key] = v.person[t]
            objects[key] = v.objects[t]
        n_images += written
        metas.append({**v.meta, "val": v.video in val})
        bar.update(1)
    bar.close()
    write_annotations(root, person, objects, list(person))
    degrees = [m["change_degree"] for m in metas if m["frames"] > 1]
    meta = {
        "generator": "tr2_core.data.synthetic",
        "format_version": 1,
        "seed": cfg.seed,
        "config": asdict(cfg),
        "val_videos": val,
        "videos": metas,
    }
    (root / "annotations" / META_FILE).write_text(json.dumps(meta, indent=1) + "\n")
    return SyntheticSummary(
        root=root,
        videos=cfg.videos,
        frames=len(person),
        train_videos=cfg.videos - len(test_rows),
        test_videos=len(test_rows),
        images=n_images,
        seconds=time.perf_counter() - t0,
        mean_change_degree=float(np.mean(degrees)) if degrees else 0.0,
        video_ids=tuple(f"{vid}.mp4" for vid in ids),
        val_videos=len(val),
    )
