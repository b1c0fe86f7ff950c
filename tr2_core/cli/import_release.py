"""``tr2 import-release``: the authors' published files -> tr2's own."""

from __future__ import annotations

import argparse

NAME = "import-release"
HELP = "convert the authors' released CLIP, text table, detector and TR² checkpoints"
DESCRIPTION = """\
Turn the files the TR² authors publish into tr2's own, in one folder: OpenAI's
ViT-B-32.pt (a TorchScript archive, read without running its code) -> an open_clip
ViT-B-32-quickgelu state dict; data/clip_sentence.npy -> text_table.npz; their
PredCls / SGCls / SGDet checkpoints -> complete tr2 checkpoints that tr2 test,
tr2 video, tr2 bag and the ROS node load as they are. Every input is recognised by its
structure and refused with a one-line reason when it is not what it claims to be.
Nothing is written unless everything converts; no output replaces an input.
The checkpoints name the converted files relative to their own folder (move or copy
the folder whole) and, with the authors' detector network converted, pin the
detector and CLIP they were converted with (other weights are refused).

examples:
  tr2 import-release --clip ViT-B-32.pt --text-table clip_sentence.npy \\
      --detector faster_rcnn_ag.pth --predcls predcls.tar --sgcls sgcls.tar \\
      --sgdet sgdet.tar --out release/
  tr2 test --checkpoint release/predcls.pt --data AG --out runs/release-predcls
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--clip", metavar="ViT-B-32.pt",
                        help="OpenAI's CLIP archive (default: the clip.* weights of the first "
                        "checkpoint given)")  # fmt: skip
    parser.add_argument("--text-table", metavar="clip_sentence.npy", help="the release's table")
    parser.add_argument("--detector", metavar="faster_rcnn_ag.pth",
                        help="the authors' Action Genome Faster R-CNN (needed with checkpoints: "
                        "the object classifier reads its classification layer)")  # fmt: skip
    for task in ("predcls", "sgcls", "sgdet"):
        parser.add_argument(f"--{task}", metavar="CKPT", help=f"the authors' {task} checkpoint")
    parser.add_argument("--out", required=True, help="output folder")
    parser.add_argument(
        "--model",
        default="tr2-release",
        help="model config the checkpoints are built on (default: tr2-release)",
    )
    parser.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="model config override (repeatable)",
    )
    parser.add_argument("--overwrite", action="store_true",
                        help="replace an earlier import-release folder at --out")  # fmt: skip


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    from tr2_core.errors import ConfigError
    from tr2_core.release.importer import ReleaseInputs, import_release

    checkpoints = {
        task: Path(getattr(args, task))
        for task in ("predcls", "sgcls", "sgdet")
        if getattr(args, task)
    }
    inputs = ReleaseInputs(
        clip=Path(args.clip) if args.clip else None,
        text_table=Path(args.text_table) if args.text_table else None,
        detector=Path(args.detector) if args.detector else None,
        checkpoints=checkpoints,
    )
    if not inputs.paths():
        raise ConfigError(
            "nothing to import: give --clip, --text-table, --detector or a checkpoint"
        )
    written = import_release(
        inputs, Path(args.out), model=args.model, overrides=tuple(args.overrides),
        overwrite=args.overwrite,
    )  # fmt: skip
    for name, path in written.items():
        print(f"{name}: {path}")
    if inputs.detector is not None and "detector" not in written:
        print("detector network: not converted (the model config's detector is not the "
              "authors'); pass --detector-weights to tr2 test / tr2 video")  # fmt: skip
    return 0
