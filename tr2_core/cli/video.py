"""``tr2 video``: scene graphs of a video file or an image folder, as JSON lines."""

from __future__ import annotations

import argparse
import logging

from tr2_core.runners.engine_args import add_engine_arguments

NAME = "video"
HELP = "scene graphs per frame of a video file or image folder (JSONL, annotated video)"
DESCRIPTION = """\
Run the streaming engine over every frame of IN, a video file (anything FFmpeg
decodes, through PyAV) or a folder of images (PNG/JPEG/..., natural order of the
names, e.g. an Action Genome frames/VIDEO.mp4/ folder), and write one JSON line
per frame to --jsonl: frame index, stamp, entities (track id, label id and
name, score, box) and relations (subject/object track ids; per predicate family
the top predicate, the predicates that hold and all scores). With --overlay,
the annotated frames go to a video (.mp4/.mkv/.mov/.avi/.webm) or, for any
other path, to a folder of PNGs.

Unreadable frames get a line with "error" and are counted; they never stop the
run. Outputs appear only when the run completes. A video that stops before the
frame count or the duration its container states is reported as truncated.

Exit status: 0 done; 1 done, but no frame gave a scene graph (every JSON line is
an error; an --overlay video is then not written, an existing one stays as it
was); 2 an error, nothing written; 130 interrupted (the frames done are kept).

Examples:
  tr2 video clip.mp4 --jsonl clip.jsonl --overlay clip_sg.mp4 --checkpoint best.pt
  tr2 video AG/frames/0A8CF.mp4 --jsonl 0A8CF.jsonl --fps 30 --checkpoint best.pt
  tr2 video clip.mp4 --jsonl demo.jsonl --model tr2-small --random-init   # demo only
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("input", metavar="IN", help="video file, or folder of images")
    parser.add_argument("--jsonl", required=True, metavar="OUT.jsonl", help="one line per frame")
    parser.add_argument(
        "--overlay",
        metavar="OUT.mp4|DIR",
        help="annotated frames: a video for .mp4/.mkv/.mov/.avi/.webm, else a PNG folder",
    )
    parser.add_argument(
        "--fps",
        type=float,
        help="frame rate of an image folder (stamps i/fps; default 30); for a video file, "
        "the overlay's rate (stamps always come from the file)",
    )
    parser.add_argument(
        "--overwrite", action="store_true", help="replace the outputs (once the run is complete)"
    )
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    add_engine_arguments(parser)


def run(args: argparse.Namespace) -> int:
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    from pathlib import Path

    from tqdm.contrib.logging import logging_redirect_tqdm

    from tr2_core.runners.engine_args import EngineRequest, build_engine
    from tr2_core.runners.video_runner import check_paths, process_video

    request = EngineRequest.from_args(args)
    request.validate()  # cheap checks before the slow model build
    overlay = Path(args.overlay) if args.overlay else None
    check_paths(Path(args.input), Path(args.jsonl), overlay, overwrite=args.overwrite)
    engine = build_engine(request)
    with logging_redirect_tqdm():
        report = process_video(
            args.input,
            engine,
            args.jsonl,
            overlay=overlay,
            fps=args.fps,
            relation_threshold=request.options.relation_threshold,
            overwrite=args.overwrite,
            progress=not args.no_progress,
        )
    print(report.summary())
    if report.interrupted:
        return 130
    return 1 if report.frames and not report.graphs else 0
