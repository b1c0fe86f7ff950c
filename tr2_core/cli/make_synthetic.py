"""``tr2 make-synthetic``: write a synthetic dataset in the Action Genome layout."""

from __future__ import annotations

import argparse
import re
from typing import TYPE_CHECKING

from tr2_core.errors import ConfigError

if TYPE_CHECKING:
    from tr2_core.data.synthetic import SyntheticConfig

NAME = "make-synthetic"
HELP = "generate a synthetic Action Genome dataset (frames + annotations)"
DESCRIPTION = """\
Render synthetic videos in the exact Action Genome release layout:
  OUT/frames/VIDEO.mp4/FRAME.png
  OUT/annotations/{person_bbox.pkl, object_bbox_and_relationship.pkl,
                   object_classes.txt, relationship_classes.txt, frame_list.txt}
plus OUT/annotations/synthetic_meta.json (seed, config, per-video change rate).

Each video shows a person figure and 1-3 objects of AG classes; attention,
spatial and contacting relations are derived from what is drawn and change
over time at a per-video rate (--change-rate; --static-fraction of the videos
never change). Edge cases of the real data (frames without a person box,
invisible objects, 1-2 frame videos, small boxes, portrait frames) appear at
the given rates. Same seed, same bytes.

Relations that need time (all off by default; --temporal turns on the preset
occlusion 0.08, motion blur 0.1, ambiguous pose 0.35, direction 0.35, and any
explicit rate flag wins): occluders hide an object or the hands for 2-4
frames while the relation continues, blurred frames, halfway poses labelled
with the relation in force (--ambiguous-pose-rate) or with where the motion
is heading (--direction-rate). A seeded --val-fraction of the training
videos is listed as the validation split in synthetic_meta.json
("val_videos"; their records keep AG's set "train").

examples:
  tr2 make-synthetic data/synth --videos 200
  tr2 make-synthetic /tmp/ag_tiny --videos 40 --frames 8 12 --size 320x180
  tr2 make-synthetic /tmp/ag_ann --videos 500 --no-images --change-rate 0.2 0.6
  tr2 make-synthetic data/synth_t --videos 400 --temporal
"""

_TEMPORAL_FLAGS = {
    "occlusion_rate": "per frame: an occlusion episode (2-4 frames) starts",
    "motion_blur_rate": "per frame: horizontal motion blur",
    "ambiguous_pose_rate": "per contact change: halfway pose before it, labelled as in force",
    "direction_rate": "per contact change: halfway pose before it, labelled as heading",
}


def _size(text: str) -> tuple[int, int]:
    m = re.fullmatch(r"\s*(\d+)\s*[xX]\s*(\d+)\s*", text)
    if not m:
        raise argparse.ArgumentTypeError(f"expected WIDTHxHEIGHT such as 480x270, got {text!r}")
    return int(m.group(1)), int(m.group(2))


def add_arguments(p: argparse.ArgumentParser) -> None:
    from tr2_core.data.synthetic import SyntheticConfig

    d = SyntheticConfig()
    p.add_argument("out", metavar="OUT", help="dataset root to create")
    p.add_argument("--videos", type=int, default=d.videos, help="number of videos (%(default)s)")
    p.add_argument(
        "--frames",
        type=int,
        nargs=2,
        metavar=("MIN", "MAX"),
        default=(d.min_frames, d.max_frames),
        help="annotated frames per video, uniform in [MIN, MAX] (%(default)s)",
    )
    p.add_argument(
        "--size",
        type=_size,
        default=(d.width, d.height),
        metavar="WxH",
        help=f"landscape frame size (default {d.width}x{d.height}, like AG)",
    )
    p.add_argument(
        "--test-fraction",
        type=float,
        default=d.test_fraction,
        help="fraction of videos in the test split (%(default)s)",
    )
    p.add_argument("--seed", type=int, default=d.seed, help="random seed (%(default)s)")
    p.add_argument(
        "--change-rate",
        type=float,
        nargs="+",
        metavar="RATE",
        default=list(d.change_rate),
        help="per-video proportion of frames that change a relation: one value, or LOW HIGH "
        "to draw each video's rate uniformly (default %(default)s)",
    )
    p.add_argument(
        "--static-fraction",
        type=float,
        default=d.static_fraction,
        help="fraction of videos that never change a relation (%(default)s)",
    )
    p.add_argument(
        "--objects",
        type=int,
        nargs=2,
        metavar=("MIN", "MAX"),
        default=(d.min_objects, d.max_objects),
        help="annotated objects per video, at most 3 (%(default)s)",
    )
    p.add_argument(
        "--motion",
        type=float,
        default=d.motion,
        help="scene drift per frame, fraction of the width (%(default)s)",
    )
    _add_edge_case_arguments(p, d)
    _add_temporal_arguments(p, d)
    p.add_argument(
        "--person-box",
        choices=("joints", "visible"),
        default=d.person_box,
        help="person boxes around every joint, hidden ones included, or around what the "
        "frame shows of the person, as AG's detector-made boxes (%(default)s)",
    )
    p.add_argument(
        "--no-images",
        action="store_true",
        help="annotations only (fast; for loader/evaluator tests)",
    )
    p.add_argument(
        "--workers",
        type=int,
        help="processes generating videos (default: every core when there are at least 32 "
        "videos; the dataset is the same for any number)",
    )
    p.add_argument(
        "--force", action="store_true", help="replace an earlier synthetic dataset at OUT"
    )
    p.add_argument("--quiet", action="store_true", help="no progress bar")


def _add_edge_case_arguments(p: argparse.ArgumentParser, d: SyntheticConfig) -> None:
    g = p.add_argument_group("edge cases (rates in [0, 1])")
    g.add_argument(
        "--no-person-rate",
        type=float,
        default=d.no_person_rate,
        help="per frame: person box missing (%(default)s)",
    )
    g.add_argument(
        "--invisible-rate",
        type=float,
        default=d.invisible_rate,
        help="per object and frame: object not visible (%(default)s)",
    )
    g.add_argument(
        "--short-video-rate",
        type=float,
        default=d.short_video_rate,
        help="per video: only 1-2 frames (%(default)s)",
    )
    g.add_argument(
        "--small-box-rate",
        type=float,
        default=d.small_box_rate,
        help="per video: distant scene with boxes <= 16 px (%(default)s)",
    )
    g.add_argument(
        "--portrait-rate",
        type=float,
        default=d.portrait_rate,
        help="per video: portrait frame (%(default)s)",
    )


def _add_temporal_arguments(p: argparse.ArgumentParser, d: SyntheticConfig) -> None:
    from tr2_core.data.synthetic import TEMPORAL_PRESET

    g = p.add_argument_group("relations that need time (rates in [0, 1])")
    g.add_argument(
        "--temporal",
        action="store_true",
        help="turn on the preset rates "
        + ", ".join(f"{k}={v}" for k, v in TEMPORAL_PRESET.items()),
    )
    for name, what in _TEMPORAL_FLAGS.items():
        g.add_argument(
            "--" + name.replace("_", "-"),
            type=float,
            default=None,
            help=f"{what} (default {getattr(d, name)}, with --temporal {TEMPORAL_PRESET[name]})",
        )
    g.add_argument(
        "--val-fraction",
        type=float,
        default=d.val_fraction,
        help="fraction of all videos held out from training as validation (%(default)s)",
    )


def _temporal_rates(args: argparse.Namespace) -> dict[str, float]:
    """Explicit rate flags, else the preset with --temporal, else the defaults."""
    from tr2_core.data.synthetic import TEMPORAL_PRESET, SyntheticConfig

    d = SyntheticConfig()
    rates = {}
    for name in _TEMPORAL_FLAGS:
        given = getattr(args, name)
        if given is not None:
            rates[name] = given
        else:
            rates[name] = TEMPORAL_PRESET[name] if args.temporal else getattr(d, name)
    return rates


def run(args: argparse.Namespace) -> int:
    from tr2_core.data.synthetic import SyntheticConfig, make_synthetic

    rate = list(args.change_rate)
    if len(rate) == 1:
        rate = rate * 2
    if len(rate) != 2:
        raise ConfigError(f"--change-rate takes one value or LOW HIGH, got {len(rate)} values")
    cfg = SyntheticConfig(
        videos=args.videos,
        min_frames=args.frames[0],
        max_frames=args.frames[1],
        width=args.size[0],
        height=args.size[1],
        test_fraction=args.test_fraction,
        seed=args.seed,
        change_rate=(rate[0], rate[1]),
        static_fraction=args.static_fraction,
        min_objects=args.objects[0],
        max_objects=args.objects[1],
        motion=args.motion,
        no_person_rate=args.no_person_rate,
        invisible_rate=args.invisible_rate,
        short_video_rate=args.short_video_rate,
        small_box_rate=args.small_box_rate,
        portrait_rate=args.portrait_rate,
        val_fraction=args.val_fraction,
        person_box=args.person_box,
        images=not args.no_images,
        **_temporal_rates(args),
    )
    s = make_synthetic(
        args.out, cfg, progress=not args.quiet, overwrite=args.force, workers=args.workers
    )
    print(
        f"wrote {s.videos} videos ({s.train_videos} train, of which {s.val_videos} "
        f"validation / {s.test_videos} test), "
        f"{s.frames} frames, {s.images} images to {s.root} in {s.seconds:.1f} s; "
        f"mean degree of relation change {s.mean_change_degree:.3f}"
    )
    return 0
