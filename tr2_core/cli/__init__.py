"""The ``tr2`` command.

Each subcommand is one module in this package defining ``NAME``, ``HELP``,
``DESCRIPTION``, ``add_arguments(parser)`` and ``run(args) -> int``. Heavy
imports (torch, open_clip) happen inside ``run`` so that ``tr2 --help`` and
``tr2 eval`` start fast.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

from tr2_core.errors import Tr2Error

# Order shown by `tr2 --help`: data -> evaluation -> model -> deployment.
SUBCOMMAND_MODULES: tuple[str, ...] = (
    "make_synthetic",
    "eval",
    "baseline",
    "prompts",
    "pretrain_synthetic",
    "cache_features",
    "train",
    "test",
    "plot",
    "bag",
    "video",
    "demo",
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="tr2",
        description="TR² dynamic scene graph generation: data, evaluation, training, streaming.",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for module_name in SUBCOMMAND_MODULES:
        module = importlib.import_module(f"tr2_core.cli.{module_name}")
        p = sub.add_parser(
            module.NAME,
            help=module.HELP,
            description=module.DESCRIPTION,
            formatter_class=argparse.RawDescriptionHelpFormatter,
        )
        module.add_arguments(p)
        p.set_defaults(_run=module.run)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args._run(args) or 0)
    except Tr2Error as e:  # user-facing: message only, no traceback
        print(f"tr2 {args.command}: error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
