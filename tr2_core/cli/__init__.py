"""The ``tr2`` command.

Each subcommand is one module defining ``NAME``, ``HELP``, ``DESCRIPTION``,
``add_arguments(parser)`` and ``run(args) -> int``. The modules of this package
are listed in :data:`SUBCOMMAND_MODULES`; other packages add subcommands through
the ``tr2.commands`` entry point group (tr2_ros registers ``tr2 bag`` there, see
pyproject.toml), so this package never imports them by name. Heavy imports
(torch, open_clip) happen inside ``run`` so that ``tr2 --help`` and ``tr2
eval`` start fast.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys
from collections.abc import Sequence
from importlib.metadata import EntryPoint, distributions
from types import ModuleType

from tr2_core.errors import Tr2Error

log = logging.getLogger(__name__)

# Order shown by `tr2 --help`: data -> evaluation -> model -> deployment.
SUBCOMMAND_MODULES: tuple[str, ...] = (
    "make_synthetic",
    "eval",
    "baseline",
    "prompts",
    "import_release",
    "pretrain_synthetic",
    "cache_features",
    "train",
    "test",
    "plot",
    "video",
    "demo",
)

ENTRY_POINT_GROUP = "tr2.commands"
"""Entry point group of subcommands from other packages (value: a module path)."""


def registered_subcommands(group: str = ENTRY_POINT_GROUP) -> list[EntryPoint]:
    """The entry points of ``group`` in every installed distribution, by name (the first
    of a name on ``sys.path`` wins).

    ``importlib.metadata.entry_points`` keeps one distribution per name, the first on
    the path: in a shell where a ROS 2 workspace is sourced, the ROS package ``tr2``'s
    metadata (no entry points) comes first and would hide the pip install's ``tr2 bag``.
    Reading every distribution's entry points does not depend on that name.
    """
    found: dict[str, EntryPoint] = {}
    for dist in distributions():
        for ep in dist.entry_points:
            if ep.group == group:
                found.setdefault(ep.name, ep)
    return [found[name] for name in sorted(found)]


def subcommand_modules() -> list[ModuleType]:
    """This package's subcommand modules, then those registered under
    :data:`ENTRY_POINT_GROUP` (in name order; one that cannot be imported is
    left out with a warning)."""
    modules = [importlib.import_module(f"tr2_core.cli.{name}") for name in SUBCOMMAND_MODULES]
    for ep in registered_subcommands():
        try:
            modules.append(ep.load())
        except ImportError as e:  # e.g. tr2_core installed without tr2_ros: no `tr2 bag`
            log.warning("tr2 %s is unavailable: %s", ep.name, e)
    return modules


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="tr2",
        description="TR² dynamic scene graph generation: data, evaluation, training, streaming.",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for module in subcommand_modules():
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
