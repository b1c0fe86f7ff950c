"""Features and targets of video clips: from the feature cache, or from the extractor.

:class:`ClipSource` is the one place where a video becomes model input. With a
:class:`~tr2_core.train.feature_cache.FeatureCache` it reads the whole video's frozen
features from disk (computing and storing them on first use) and cuts the requested
frame window; without one it decodes the window's frames and runs the extractor.
Either way the same :class:`VideoFeatures` / :class:`VideoTargets` come out.
:func:`make_source` builds one for a split of a run (with its feature cache).
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch

from tr2_core.cache_keys import annotation_stats
from tr2_core.config import to_dict
from tr2_core.data.action_genome import load_split
from tr2_core.data.images import load_image
from tr2_core.data.synthetic import META_FILE
from tr2_core.data.synthetic.writer import validation_videos
from tr2_core.errors import DatasetError
from tr2_core.run import FrozenExtractor
from tr2_core.run_spec import RunSpec
from tr2_core.train.dataset import ActionGenomeVideos, VideoClip, slice_features, slice_targets
from tr2_core.train.feature_cache import CACHE_DTYPES, FeatureCache
from tr2_core.train.recipe import TrainConfig, autocast_factory
from tr2_core.train.sgdet_assignment import extract_sgdet_training
from tr2_core.types import VideoFeatures, VideoTargets

log = logging.getLogger(__name__)


def per_frame(values: torch.Tensor, frame: torch.Tensor, num_frames: int) -> list[torch.Tensor]:
    """Rows sorted by frame -> one tensor per frame (T lists, possibly empty)."""
    counts = torch.bincount(frame, minlength=num_frames).tolist()
    return list(torch.split(values, counts))


def sgdet_targets(
    clip: VideoClip, features: VideoFeatures, entity_gt: torch.Tensor
) -> VideoTargets:
    """Targets of SGDet training features (detections assigned to GT, plus missed GT;
    their pairs are the GT relations, so every pair gets its GT pair's labels).

    Args:
        clip: the GT clip the features were extracted from.
        features: N entities / P pairs from ``extract_sgdet_training``.
        entity_gt: (N,) int64 row into the clip's GT entities, -1 = background.
    Returns:
        entity labels (GT label or 0), and for every pair the labels of the GT pair whose
        object is the pair's object's GT box and whose subject is its subject's GT box
        (attention -1 and empty multi-hots when there is none).
    """
    gt = clip.targets
    matched = entity_gt >= 0
    entity_labels = torch.where(
        matched, clip.entity_labels[entity_gt.clamp(min=0)], torch.zeros_like(entity_gt)
    )
    # GT entity row -> GT pair index with that object (-1 for the person / no pair)
    pair_of_object = torch.full((clip.entity_labels.shape[0],), -1, dtype=torch.long)
    pair_of_object[clip.pair_object] = torch.arange(clip.pair_object.shape[0])
    obj_gt = entity_gt[features.pair_object]
    subj_gt = entity_gt[features.pair_subject]
    gt_pair = torch.where(obj_gt >= 0, pair_of_object[obj_gt.clamp(min=0)], -1)
    ok = gt_pair >= 0
    ok &= torch.where(ok, clip.pair_subject[gt_pair.clamp(min=0)] == subj_gt, False)
    idx = gt_pair.clamp(min=0)
    return VideoTargets(
        entity_labels=entity_labels,
        pair_attention=torch.where(ok, gt.pair_attention[idx], -1),
        pair_spatial=gt.pair_spatial[idx] * ok[:, None],
        pair_contacting=gt.pair_contacting[idx] * ok[:, None],
    )


class ClipSource:
    """Model inputs of one split's videos.

    Args:
        videos: the split's video index.
        extractor: the frozen :class:`~tr2_core.models.FeatureExtractor`.
        task: ``predcls`` / ``sgcls`` (GT boxes in) or ``sgdet`` (detections).
        sgdet_assign: SGDet training features (detections assigned to GT + missed GT),
            which come with targets; otherwise SGDet features have no targets.
        other_pairs: PredCls / SGCls: also the union features of the entity pairs that
            are not pairs (the release's SGCls re-pairing at inference).
        cache: a feature cache, or None to extract every time.
        autocast: context factory wrapped around the extractor (AMP on CUDA).
    """

    def __init__(
        self,
        videos: ActionGenomeVideos,
        extractor: Any,
        task: str,
        *,
        sgdet_assign: bool = False,
        other_pairs: bool = False,
        cache: FeatureCache | None = None,
        autocast: Callable[[], contextlib.AbstractContextManager] = contextlib.nullcontext,
    ) -> None:
        self.videos = videos
        self.extractor = extractor
        self.task = task
        self.sgdet_assign = sgdet_assign
        self.other_pairs = other_pairs
        self.cache = cache
        self.autocast = autocast

    def __len__(self) -> int:
        return len(self.videos)

    def video(self, index: int) -> str:
        return self.videos.videos[index]

    def num_frames(self, index: int) -> int:
        return self.videos.num_frames(index)

    # -- extraction -------------------------------------------------------------
    def extract(self, clip: VideoClip) -> tuple[VideoFeatures, dict[str, torch.Tensor]]:
        """Run the extractor on a clip (frames decoded here). Returns the features (on
        the extractor's device) and extras (``entity_gt`` for SGDet training)."""
        images = [load_image(p) for p in clip.image_paths]
        t = clip.num_frames
        with torch.no_grad(), self.autocast():
            if self.task == "sgdet":
                if not self.sgdet_assign:
                    return self.extractor.extract(images, frame_keys=clip.frame_keys), {}
                features, entity_gt = extract_sgdet_training(
                    self.extractor,
                    images,
                    per_frame(clip.entity_boxes, clip.entity_frame, t),
                    per_frame(clip.entity_labels, clip.entity_frame, t),
                    frame_keys=clip.frame_keys,
                )
                return features, {"entity_gt": entity_gt}
            features = self.extractor.extract(
                images,
                per_frame(clip.entity_boxes, clip.entity_frame, t),
                per_frame(clip.entity_labels, clip.entity_frame, t),
                frame_keys=clip.frame_keys,
                with_other_pairs=self.other_pairs,
            )
        same = features.pair_subject.shape == clip.pair_subject.shape and bool(
            torch.equal(features.pair_subject.cpu(), clip.pair_subject)
            and torch.equal(features.pair_object.cpu(), clip.pair_object)
        )
        if not same:
            raise DatasetError(
                f"video {clip.video}: the extractor's pairs differ from the annotation's "
                "(person, object) pairs; is there a frame with two person boxes?"
            )
        return features, {}

    def targets(
        self, clip: VideoClip, features: VideoFeatures, extras: dict[str, torch.Tensor]
    ) -> VideoTargets | None:
        if self.task != "sgdet":
            return clip.targets
        if "entity_gt" in extras:
            return sgdet_targets(clip, features, extras["entity_gt"].cpu())
        return None

    def fill_cache(self, index: int) -> bool:
        """Compute and store video ``index`` if it is not cached; True if computed."""
        assert self.cache is not None
        video = self.video(index)
        if self.cache.has(video):
            return False
        features, extras = self.extract(self.videos.clip(index))
        self.cache.put(video, features, extras)
        return True

    # -- access -------------------------------------------------------------------
    def get(
        self, index: int, start: int = 0, stop: int | None = None
    ) -> tuple[VideoFeatures, VideoTargets | None]:
        """Features and targets of frames ``[start, stop)`` of video ``index``.

        From the cache: the whole video is read (computed first if missing) and cut.
        Without a cache only the window's frames are decoded and extracted.
        """
        stop = self.num_frames(index) if stop is None else stop
        if self.cache is None:
            clip = self.videos.clip(index, start, stop)
            features, extras = self.extract(clip)
            return features, self.targets(clip, features, extras)
        clip = self.videos.clip(index)
        cached = self.cache.get(self.video(index))
        if cached is None:
            features, extras = self.extract(clip)
            self.cache.put(self.video(index), features, extras)
            features = _to_cpu(features)
            extras = {k: v.cpu() for k, v in extras.items()}
        else:
            features, extras = cached
        if features.frame_keys != clip.frame_keys:
            raise DatasetError(
                f"{self.cache.path(self.video(index))}: cached frames differ from the "
                "annotation's; delete the cache folder"
            )
        targets = self.targets(clip, features, extras)
        sliced = slice_features(features, start, stop)
        if targets is not None:
            targets = slice_targets(targets, features, start, stop)
        return sliced, targets


def _to_cpu(features: VideoFeatures) -> VideoFeatures:
    return move_features(features, torch.device("cpu"))


def move_features(features: VideoFeatures, device: torch.device | str) -> VideoFeatures:
    """A copy of ``features`` with every tensor on ``device``."""
    values = {
        k: (v.to(device, non_blocking=True) if isinstance(v, torch.Tensor) else v)
        for k, v in vars(features).items()
    }
    return VideoFeatures(**values)


def move_targets(targets: VideoTargets, device: torch.device | str) -> VideoTargets:
    """A copy of ``targets`` with every tensor on ``device``."""
    return VideoTargets(**{k: v.to(device, non_blocking=True) for k, v in vars(targets).items()})


# --------------------------------------------------------------------------- construction
def default_feature_cache_dir() -> Path:
    root = os.environ.get("TR2_CACHE_DIR")
    return (Path(root).expanduser() if root else Path.home() / ".cache" / "tr2") / "features"


def held_out_rows(split: Any, data_root: str | Path, cfg: TrainConfig) -> list[int]:
    """Rows (into ``split.gt.videos``) of the training videos held out for validation.

    A synthetic dataset lists its own (``val_videos`` of synthetic_meta.json); other data
    (Action Genome), and a synthetic split whose listed ones were all filtered out on
    loading (small boxes), hold out a fixed seeded subset: ``round(val_fraction *
    videos)``, at least one, never all, drawn with ``val_seed`` (independent of the
    training seed).
    """
    videos = [str(v) for v in split.gt.videos]
    if (Path(data_root) / "annotations" / META_FILE).is_file():
        listed = set(validation_videos(data_root))
        rows = [i for i, v in enumerate(videos) if v in listed]
        if rows:
            return rows
        if listed:  # an empty validation set would leave nothing to select best.pt on
            log.warning("%s: none of the listed validation videos is in the loaded split; "
                        "holding out a seeded subset instead", data_root)  # fmt: skip
    n = len(videos)
    n_val = min(max(1, int(round(cfg.val_fraction * n))), n - 1)
    if n_val <= 0:
        raise DatasetError(f"{data_root}: {n} training video(s), too few to hold any out")
    rng = np.random.default_rng([cfg.val_seed, 0x7A1])
    return sorted(int(r) for r in rng.permutation(n)[:n_val])


def split_rows(
    split_name: str, split: Any, data_root: str | Path, cfg: TrainConfig
) -> list[int] | None:
    """The video rows of the AG split that ``split_name`` uses (None: all of them).

    ``val``: the held-out training videos (:func:`held_out_rows`); ``train`` while
    ``cfg.val_split`` is ``val``: the training videos without them; otherwise all.
    """
    if split_name == "val" or (split_name == "train" and cfg.val_split == "val"):
        held = held_out_rows(split, data_root, cfg)
        if split_name == "val":
            return held
        out = set(held)
        return [i for i in range(split.gt.num_videos) if i not in out]
    return None


def ag_split_of(split_name: str) -> str:
    """The AG release split a split name reads: ``val`` videos are training videos."""
    return "train" if split_name == "val" else split_name


def make_source(
    run: RunSpec,
    train_cfg: TrainConfig,
    split_name: str,
    frozen: FrozenExtractor,
    device: torch.device,
    *,
    training: bool,
    max_videos: int,
    use_cache: bool,
) -> tuple[ClipSource, Any]:
    """Load a split (``train``, ``test`` or ``val``: see :func:`split_rows`) and wrap it
    as a :class:`ClipSource` over the frozen extractor (with the feature cache keyed by
    the extractor config and weights, the annotations, the AG split, the entities and the
    small-box option, when ``use_cache``).

    Returns:
        (source, the loaded split).
    """
    ag_split = ag_split_of(split_name)
    split = load_split(
        run.data, ag_split, filter_small_boxes=run.small_boxes_filtered, show_progress=False
    )
    rows = split_rows(split_name, split, run.data, train_cfg)
    videos = ActionGenomeVideos(split, max_videos=max_videos, rows=rows)
    sgdet_assign = run.task == "sgdet" and training
    # the release's SGCls re-pairs at inference: it needs every entity pair's union
    other_pairs = (
        run.task == "sgcls"
        and not training
        and frozen.extractor.config.object_classifier.sgcls_pairs == "classifier"
    )
    # the extraction runs the detector with its frozen batch norms folded into the
    # convolutions: same features to float rounding, a pass over every activation fewer
    frozen.extractor.fold_batchnorm()
    cache = None
    if use_cache:
        dtype = CACHE_DTYPES[train_cfg.cache_dtype]
        # the release's relabelling changes which boxes are entities
        relabel = frozen.extractor.config.object_classifier.sgdet_labels == "release"
        detected_entities = "detected+release-relabel" if relabel else "detected"
        annotated = "annotated+other-pairs" if other_pairs else "annotated"
        cache_key = {
            "extractor_config": {
                "detector": to_dict(frozen.extractor.config.detector),
                "clip": frozen.extractor.config.clip.cache_parts(),
            },
            "extractor_weights": frozen.fingerprint,
            "annotations": annotation_stats(run.data),
            "data": str(Path(run.data).resolve()),
            # per-video entries: the held-out videos share the training split's
            "split": ag_split,
            # PredCls and SGCls extract the same features (GT boxes): they share entries
            # SGDet training: assigned labels and GT-relation pairs (extract_sgdet_training)
            "entities": ("assigned+missed-gt" if sgdet_assign else detected_entities)
            if run.task == "sgdet"
            else annotated,
            "filter_small_boxes": run.small_boxes_filtered,
        }
        root = Path(run.cache_dir) if run.cache_dir else default_feature_cache_dir()
        cache = FeatureCache(root, cache_key, dtype=dtype)
    source = ClipSource(
        videos,
        frozen.extractor,
        run.task,
        sgdet_assign=sgdet_assign,
        other_pairs=other_pairs,
        cache=cache,
        autocast=autocast_factory(train_cfg, device),
    )
    return source, split
