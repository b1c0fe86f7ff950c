"""The pretraining world: fresh videos of a synthetic dataset's own world, rendered in
memory, to fit the frozen parts on.

Why not the dataset's own training videos: a demo-size dataset has about a thousand
(person, object) pairs in its training videos, and a CLIP image tower fitted on them
learns those scenes rather than the relations (measured on the held-out validation
videos: contacting top-1 0.70 against 0.70 for the object-class prior). The generator
draws new scenes for free, so the frozen parts are fitted on many more of them -- as a
real detector and CLIP are pretrained on other data than Action Genome's. The world is
the dataset's own (its ``synthetic_meta.json`` configuration: frame size, object counts,
temporal effects) with another seed, so no video of the dataset, its validation videos
or its test split is seen. Frames are never written: rendering in memory skips PNG
encoding and decoding (about 2/3 of the cost).
"""

from __future__ import annotations

import json
from dataclasses import asdict, fields, replace
from pathlib import Path

import numpy as np
import torch

from tr2_core.data.synthetic.generator_config import META_FILE, SyntheticConfig
from tr2_core.data.synthetic.parallel import ordered_map, worker_count
from tr2_core.data.synthetic.writer import frames_in_memory
from tr2_core.errors import ConfigError
from tr2_core.pretrain.training_frames import PretrainFrames
from tr2_core.progress import bar_disabled
from tr2_core.vocab import ATTENTION, CONTACTING, OBJECT_INDEX, SPATIAL

WORLD_SEED_BASE = 1_000_003
"""World seed = this + 100 * the dataset's seed + the pretraining seed: far from the
seeds a user gives ``tr2 make-synthetic``, so the world's videos are new scenes."""


def world_config(
    data: str | Path, videos: int, seed: int = 0, frames: tuple[int, int] = (3, 6)
) -> SyntheticConfig:
    """The generator configuration of the dataset at ``data`` with ``videos`` short videos
    (``frames`` = min, max frames each: many scenes per frame rendered), another seed,
    every video a training video and no held-out ones.

    Raises:
        ConfigError: ``data`` has no ``annotations/synthetic_meta.json`` (not made by
            ``tr2 make-synthetic``).
    """
    meta_path = Path(data) / "annotations" / META_FILE
    if not meta_path.is_file():
        raise ConfigError(
            f"{meta_path}: not found; a pretraining world needs a dataset made by "
            "`tr2 make-synthetic` (use --world-videos 0 to fit on the dataset's own frames)"
        )
    try:
        config = json.loads(meta_path.read_text())["config"]
    except (ValueError, KeyError, TypeError) as e:
        raise ConfigError(f"{meta_path}: unreadable synthetic meta ({e})") from None
    known = {f.name for f in fields(SyntheticConfig)}
    base = SyntheticConfig(**{k: v for k, v in config.items() if k in known})
    return replace(
        base,
        videos=int(videos),
        seed=WORLD_SEED_BASE + 100 * int(base.seed) + int(seed),
        min_frames=int(frames[0]),
        max_frames=int(frames[1]),
        short_video_rate=0.0,
        test_fraction=0.0,
        val_fraction=0.0,
        images=False,
    )


def render_world(
    cfg: SyntheticConfig, progress: bool = False, workers: int | None = None
) -> PretrainFrames:
    """Generate and render every video of ``cfg`` in memory (``workers`` processes,
    None: every core); frames with a person box and pairs with a visible object become
    :class:`PretrainFrames` (the release's labels: what a loader of the written
    dataset would read)."""
    from tqdm import tqdm

    images, boxes, labels = [], [], []
    pair_frame, subjects, objects, classes, predicates = [], [], [], [], []
    jobs = [(cfg, index, f"W{index:06d}.mp4") for index in range(cfg.videos)]
    videos = ordered_map(frames_in_memory, jobs, worker_count(cfg.videos, workers))
    for v, drawn in tqdm(videos, total=cfg.videos, desc="pretraining world", unit="video",
                         disable=bar_disabled(progress)):  # fmt: skip
        for t, im in enumerate(drawn):
            person = np.asarray(v.person[t]["bbox"], dtype=np.float32).reshape(-1, 4)
            seen = [rec for rec in v.objects[t] if rec["bbox"] is not None]
            if person.shape[0] != 1 or not seen:
                continue  # no person box or no visible object: no pair (AG drops it)
            row = len(images)
            frame_boxes, frame_labels = [person[0]], [OBJECT_INDEX["person"]]
            for rec in seen:  # invisible objects have no box and no relation
                x, y, w, h = rec["bbox"]
                box = np.array([x, y, x + w, y + h], dtype=np.float32)
                frame_boxes.append(box)
                frame_labels.append(OBJECT_INDEX[rec["class"]])
                pair_frame.append(row)
                subjects.append(person[0])
                objects.append(box)
                classes.append(OBJECT_INDEX[rec["class"]])
                predicates.append(_multi_hot(rec))
            images.append(torch.from_numpy(im).permute(2, 0, 1))
            boxes.append(torch.from_numpy(np.stack(frame_boxes)))
            labels.append(torch.tensor(frame_labels, dtype=torch.int64))

    def stack(rows: list, shape: tuple[int, ...], dtype=np.float32) -> torch.Tensor:
        return torch.from_numpy(np.asarray(rows, dtype=dtype).reshape(-1, *shape))

    return PretrainFrames(
        images=images,
        boxes=boxes,
        labels=labels,
        pair_frame=stack(pair_frame, (), np.int64),
        pair_subject=stack(subjects, (4,)),
        pair_object=stack(objects, (4,)),
        pair_class=stack(classes, (), np.int64),
        pair_predicates=stack(predicates, (ATTENTION.size + SPATIAL.size + CONTACTING.size,)),
    )


def _multi_hot(record: dict) -> np.ndarray:
    """(26,) float32 over attention, spatial, contacting (the global predicate index)."""
    out = np.zeros(ATTENTION.size + SPATIAL.size + CONTACTING.size, np.float32)
    offset = 0
    for family, key in ((ATTENTION, "attention_relationship"),
                        (SPATIAL, "spatial_relationship"),
                        (CONTACTING, "contacting_relationship")):  # fmt: skip
        for name in record[key] or ():
            out[offset + family.predicates.index(name)] = 1.0
        offset += family.size
    return out


def world_description(cfg: SyntheticConfig) -> dict:
    """What the world's frames depend on (for the weights' cache key)."""
    return asdict(cfg)
