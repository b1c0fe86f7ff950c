"""Parameters of the synthetic generator and the summary of what it wrote."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from tr2_core.errors import ConfigError

META_FILE = "synthetic_meta.json"
"""Extra file written beside the release files in ``annotations/``."""


@dataclass(frozen=True)
class SyntheticConfig:
    """Parameters of :func:`~tr2_core.data.synthetic.make_synthetic` (validated
    on construction).

    Attributes:
        videos: number of videos.
        min_frames, max_frames: annotated frames per video (uniform), before
            the short-video edge case.
        width, height: landscape frame size in pixels (AG: 480 x 270).
        test_fraction: fraction of videos in the ``'test'`` split.
        seed: everything (ids, scenes, pixels) is a function of the seed.
        change_rate: (low, high) range of the per-video proportion of frames
            that change a relation; each non-static video draws its rate
            uniformly from it.
        static_fraction: fraction of videos with rate 0 (no relation change).
        min_objects, max_objects: annotated objects per video.
        motion: standard deviation of the scene drift per frame, as a
            fraction of the frame width (appearance change without relation
            change).
        no_person_rate: per frame, probability that the person box is
            missing (detector miss: ``bbox`` with 0 rows).
        invisible_rate: per object and frame, probability that the object is
            not visible (``bbox``/relations ``None``, not drawn).
        short_video_rate: per video, probability of only 1-2 frames.
        small_box_rate: per video, probability of a distant scene whose
            small objects have boxes with short edge <= 16 px (elsewhere
            objects are drawn with short edge >= 17 px).
        portrait_rate: per video, probability of a portrait frame
            (``height`` x ``width``).
        occlusion_rate: per frame, probability that an occlusion episode of
            2-4 frames starts: a flat grey panel is drawn over one object or
            over the person's hands while the relation continues (labels,
            object boxes and keypoints unchanged; a ``'visible'`` person box
            shrinks to what the panel leaves).
        motion_blur_rate: per frame, probability of a horizontal motion
            blur over the whole frame (labels unchanged).
        ambiguous_pose_rate: per contact change, probability that the frame
            before it shows the pose halfway between the two contact states,
            labelled with the relation still in force (the old one).
        direction_rate: per contact change, probability that the frame
            before it shows that same halfway pose labelled with the state
            it is heading to (only the motion tells picking up from putting
            down). ``ambiguous_pose_rate + direction_rate <= 1``.
        val_fraction: fraction of all videos held out from the training
            videos as a validation split (listed in the meta; their records
            keep AG's ``set`` = ``'train'``); at least one training video
            always remains.
        person_box: ``'joints'``: the person box surrounds every joint, hidden ones
            included (the geometry the labels are computed from); ``'visible'``: it
            bounds the pixels that show the person (after objects in front, occluder
            panels and motion blur), as AG's person boxes do -- they come from a
            detector, which boxes what it sees. With ``'joints'`` even a perfect
            detector of the visible person misses the box (IoU < 0.5) in about 5 % of
            the ``--temporal`` world's frames; with ``'visible'`` the demo's detector
            finds more persons but the demo's PredCls model scored lower
            (docs/experiments/detector.md).
        images: write the PNG frames (False: annotations only).
        png_compress_level: zlib level of the PNG files (1 = fast).
    """

    videos: int = 200
    min_frames: int = 8
    max_frames: int = 32
    width: int = 480
    height: int = 270
    test_fraction: float = 0.25
    seed: int = 0
    change_rate: tuple[float, float] = (0.05, 0.5)
    static_fraction: float = 0.3
    min_objects: int = 1
    max_objects: int = 3
    motion: float = 0.02
    no_person_rate: float = 0.02
    invisible_rate: float = 0.03
    short_video_rate: float = 0.04
    small_box_rate: float = 0.04
    portrait_rate: float = 0.05
    occlusion_rate: float = 0.0
    motion_blur_rate: float = 0.0
    ambiguous_pose_rate: float = 0.0
    direction_rate: float = 0.0
    val_fraction: float = 0.1
    person_box: str = "joints"
    images: bool = True
    png_compress_level: int = 1

    def __post_init__(self) -> None:
        def need(ok: bool, name: str, what: str) -> None:
            if not ok:
                raise ConfigError(f"synthetic: {name}={getattr(self, name)!r}: {what}")

        need(isinstance(self.videos, int) and self.videos >= 1, "videos", "must be >= 1")
        need(self.min_frames >= 1, "min_frames", "must be >= 1")
        need(self.max_frames >= self.min_frames, "max_frames", "must be >= min_frames")
        need(self.width >= 64, "width", "must be >= 64 pixels")
        need(self.height >= 48, "height", "must be >= 48 pixels")
        lo_hi = tuple(self.change_rate)
        need(
            len(lo_hi) == 2 and 0.0 <= lo_hi[0] <= lo_hi[1] <= 1.0,
            "change_rate",
            "must be (low, high) with 0 <= low <= high <= 1",
        )
        object.__setattr__(self, "change_rate", (float(lo_hi[0]), float(lo_hi[1])))
        need(1 <= self.min_objects <= self.max_objects, "min_objects", "1 <= min <= max")
        need(self.max_objects <= 3, "max_objects", "at most 3 objects per video")
        for name in (
            "test_fraction", "static_fraction", "no_person_rate", "invisible_rate",
            "short_video_rate", "small_box_rate", "portrait_rate", "occlusion_rate",
            "motion_blur_rate", "ambiguous_pose_rate", "direction_rate", "val_fraction",
        ):  # fmt: skip
            need(0.0 <= getattr(self, name) <= 1.0, name, "must be in [0, 1]")
        need(
            self.ambiguous_pose_rate + self.direction_rate <= 1.0,
            "ambiguous_pose_rate",
            "ambiguous_pose_rate + direction_rate must be <= 1",
        )
        need(0.0 <= self.motion <= 0.5, "motion", "must be in [0, 0.5]")
        need(self.person_box in ("visible", "joints"), "person_box", "'visible' or 'joints'")
        need(0 <= self.png_compress_level <= 9, "png_compress_level", "must be in 0..9")


@dataclass(frozen=True)
class SyntheticSummary:
    """What :func:`~tr2_core.data.synthetic.make_synthetic` wrote."""

    root: Path
    videos: int
    frames: int
    train_videos: int
    test_videos: int
    images: int
    seconds: float
    mean_change_degree: float = 0.0
    val_videos: int = 0  # held out from train_videos
    video_ids: tuple[str, ...] = field(default=(), repr=False)


TEMPORAL_PRESET: dict[str, float] = {
    "occlusion_rate": 0.08,
    "motion_blur_rate": 0.1,
    "ambiguous_pose_rate": 0.35,
    "direction_rate": 0.35,
}
"""Rates of ``tr2 make-synthetic --temporal`` (the demo's and the ablations'
world): with 8-32 frames a video has about one occlusion episode of 2-4
frames per 12 frames, one blurred frame in 10, and 70 % of contact changes
are preceded by a halfway pose (half labelled with the relation in force,
half with where it is heading)."""


def temporal_config(**overrides: object) -> SyntheticConfig:
    """:class:`SyntheticConfig` with :data:`TEMPORAL_PRESET` (``overrides``
    win)."""
    return SyntheticConfig(**{**TEMPORAL_PRESET, **overrides})  # type: ignore[arg-type]
