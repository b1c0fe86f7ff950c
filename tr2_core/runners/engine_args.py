"""Engine options of ``tr2 bag`` and ``tr2 video``, and the engine they build.

The flags are generated from :class:`~tr2_core.stream.engine_options.EngineOptions`
(the declaration the ROS node's parameters come from too); only where the
model comes from is command-line specific. A trained model comes from
``--checkpoint`` (``StreamingEngine.from_checkpoint``); ``--model CONFIG
--random-init`` builds an untrained one for demos and tests, with a loud
warning. Heavy imports (torch, open_clip) happen in :func:`build_engine` only.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from tr2_core.errors import ConfigError
from tr2_core.options import add_flags, cli_name, options_from_mapping
from tr2_core.stream.engine_options import EngineOptions, engine_option_specs, resolve_device

if TYPE_CHECKING:
    from tr2_core.stream.engine import StreamingEngine  # deferred: torch (flags stay light)

ENGINE_FLAGS: tuple[str, ...] = (
    "clip_weights", "detector_weights", "mode", "window", "device", "threads",
    "score_threshold", "relation_threshold", "max_gap_s",
    "tf32", "fixed_shapes", "compile", "shape_bucket",  # fast paths (docs/gpu.md), default off
)  # fmt: skip
"""The :class:`EngineOptions` fields offered as flags besides ``--checkpoint``."""

OFFLINE_MODES = ("sgdet",)
"""The offline tools have no boxes to give the engine: they run sgdet only."""


def add_engine_arguments(
    parser: argparse.ArgumentParser, modes: tuple[str, ...] = OFFLINE_MODES
) -> None:
    """Add the model / engine options (one of ``--checkpoint`` or ``--model``);
    ``modes``: the task modes the tool offers (``tr2 bag`` with a detections topic
    takes predcls / sgcls too)."""
    specs = engine_option_specs()
    g = parser.add_argument_group("model")
    source = g.add_mutually_exclusive_group(required=True)
    add_flags(source, [specs["checkpoint"]])
    source.add_argument(
        "--model",
        metavar="CONFIG",
        help="model config name or YAML, untrained: needs --random-init (demos and tests only)",
    )
    g.add_argument(
        "--random-init",
        action="store_true",
        help="with --model: random weights everywhere, drawn from seed 0 (output is meaningless "
        "but the same in every run; loud warning)",
    )
    g.add_argument(
        "--override",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="with --model: model config override, e.g. detector.score_thresh=0.05 (repeatable)",
    )
    mode = dataclasses.replace(
        specs["mode"],
        choices=modes,
        help=specs["mode"].help
        + (" This tool offers sgdet only." if modes == OFFLINE_MODES else ""),
    )
    add_flags(g, [mode if name == "mode" else specs[name] for name in ENGINE_FLAGS])


@dataclass(frozen=True)
class EngineRequest:
    """What :func:`build_engine` needs (parsed from the command line): the engine
    options and where the model comes from.

    Attributes:
        options: the engine options (``options.checkpoint`` empty with ``model``).
        model: model config name or YAML for an untrained model.
        random_init: confirms ``model``.
        overrides: model config overrides (``KEY=VALUE``) for ``model``.
    """

    options: EngineOptions = field(default_factory=EngineOptions)
    model: str | None = None
    random_init: bool = False
    overrides: tuple[str, ...] = ()

    @classmethod
    def from_args(cls, args: argparse.Namespace) -> EngineRequest:
        """Raises :class:`ConfigError` naming the flag with a bad value."""
        values = {name: getattr(args, name) for name in ("checkpoint", *ENGINE_FLAGS)}
        values["checkpoint"] = values["checkpoint"] or ""
        return cls(
            options=options_from_mapping(EngineOptions, values, cli_name),
            model=args.model,
            random_init=args.random_init,
            overrides=tuple(args.override),
        )

    def validate(self, modes: tuple[str, ...] = OFFLINE_MODES) -> None:
        """Checks the options together (``modes``: those the tool offers); raises
        :class:`ConfigError` naming them."""
        o = self.options
        if bool(o.checkpoint) == (self.model is not None):
            raise ConfigError("give exactly one of --checkpoint PATH or --model CONFIG")
        if self.model is not None and not self.random_init:
            raise ConfigError(
                "--model builds an untrained model; add --random-init to confirm (demos and "
                "tests only) or use --checkpoint PATH for a trained one"
            )
        if o.checkpoint and (self.random_init or self.overrides):
            raise ConfigError("--random-init and --override apply to --model, not --checkpoint")
        if self.model is not None and (o.clip_weights or o.detector_weights):
            raise ConfigError("--clip-weights / --detector-weights apply to --checkpoint")
        if o.checkpoint and not Path(o.checkpoint).is_file():
            raise ConfigError(f"--checkpoint {o.checkpoint}: no such file")
        if o.mode not in modes:
            raise ConfigError(f"--mode {o.mode!r}: this tool runs {' / '.join(modes)} only")


RANDOM_INIT_SEED = 0
"""``--random-init`` draws its weights from this seed: the same command gives the same
output in every run (torch seeds its default generator differently in each process)."""


def build_engine(request: EngineRequest, modes: tuple[str, ...] = OFFLINE_MODES) -> StreamingEngine:
    """The streaming engine the request describes (checkpoint or random init).

    Raises:
        ConfigError: inconsistent options.
        WeightsError: (from the model code) missing or mismatched weights.
    """
    request.validate(modes)
    from tr2_core.stream.engine import StreamingEngine  # deferred: torch

    if request.options.checkpoint:
        return StreamingEngine.from_checkpoint(options=request.options)
    from tr2_core.run import announce_random_init, build_model  # deferred: torch

    announce_random_init(relation_trained=False, stream=sys.stderr)
    model = build_model(
        request.model,
        random_init=True,
        overrides=request.overrides,
        seed=RANDOM_INIT_SEED,
        device=resolve_device(request.options.device),
        announce=False,
    )
    return StreamingEngine(model.extractor, model.relation, request.options)
