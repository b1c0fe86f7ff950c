"""Engine options shared by ``tr2 bag`` and ``tr2 video``, and the engine they build.

A trained model comes from ``--checkpoint`` (``StreamingEngine.from_checkpoint``);
``--model CONFIG --random-init`` builds an untrained one for demos and tests,
with a loud warning. Heavy imports (torch, open_clip) happen in
:func:`build_engine` only.
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tr2_core.errors import ConfigError

if TYPE_CHECKING:
    from tr2_core.stream.engine import StreamingEngine


def add_engine_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the model / engine options (one of ``--checkpoint`` or ``--model``)."""
    g = parser.add_argument_group("model")
    source = g.add_mutually_exclusive_group(required=True)
    source.add_argument("--checkpoint", metavar="PATH", help="trained model (tr2 train output)")
    source.add_argument(
        "--model",
        metavar="CONFIG",
        help="model config name or YAML, untrained: needs --random-init (demos and tests only)",
    )
    g.add_argument(
        "--random-init",
        action="store_true",
        help="with --model: random weights everywhere (output is meaningless; loud warning)",
    )
    g.add_argument(
        "--override",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="with --model: model config override, e.g. detector.score_thresh=0.05 (repeatable)",
    )
    g.add_argument("--clip-weights", metavar="PATH_OR_TAG", help="with --checkpoint: CLIP weights")
    g.add_argument(
        "--detector-weights", metavar="PATH", help="with --checkpoint: detector state dict"
    )
    g.add_argument(
        "--mode",
        choices=("sgdet",),
        default="sgdet",
        help="task mode: sgdet (entities from the detector; the only mode offline tools offer)",
    )
    g.add_argument(
        "--window", type=int, default=8, help="frames W in the temporal window (default 8)"
    )
    g.add_argument("--device", default="auto", help="auto | cpu | cuda | cuda:N (default auto)")
    g.add_argument(
        "--threads",
        type=int,
        default=0,
        help="torch CPU threads (default 0: torch's choice; 1 is often fastest on a CPU "
        "shared with other processes)",
    )
    g.add_argument(
        "--score-threshold",
        type=float,
        default=0.1,
        help="minimum detector score for an entity (default 0.1, as the ROS node)",
    )
    g.add_argument(
        "--relation-threshold",
        type=float,
        default=0.5,
        help="spatial/contacting predicates scoring at least this are listed (default 0.5)",
    )
    g.add_argument(
        "--max-gap",
        type=float,
        default=1.0,
        metavar="SECONDS",
        help="a timestamp gap longer than this resets the window and tracks (default 1.0)",
    )


@dataclass(frozen=True)
class EngineOptions:
    """What :func:`build_engine` needs (parsed from the command line).

    Attributes mirror the options of :func:`add_engine_arguments`.
    """

    checkpoint: str | None = None
    model: str | None = None
    random_init: bool = False
    overrides: tuple[str, ...] = ()
    clip_weights: str | None = None
    detector_weights: str | None = None
    mode: str = "sgdet"
    window: int = 8
    device: str = "auto"
    threads: int = 0
    score_threshold: float = 0.1
    max_gap: float = 1.0

    @classmethod
    def from_args(cls, args: argparse.Namespace) -> EngineOptions:
        return cls(
            checkpoint=args.checkpoint,
            model=args.model,
            random_init=args.random_init,
            overrides=tuple(args.override),
            clip_weights=args.clip_weights,
            detector_weights=args.detector_weights,
            mode=args.mode,
            window=args.window,
            device=args.device,
            threads=args.threads,
            score_threshold=args.score_threshold,
            max_gap=args.max_gap,
        )

    def validate(self) -> None:
        """Raises :class:`ConfigError` naming the option that is wrong."""
        if (self.checkpoint is None) == (self.model is None):
            raise ConfigError("give exactly one of --checkpoint PATH or --model CONFIG")
        if self.model is not None and not self.random_init:
            raise ConfigError(
                "--model builds an untrained model; add --random-init to confirm (demos and "
                "tests only) or use --checkpoint PATH for a trained one"
            )
        if self.checkpoint is not None and (self.random_init or self.overrides):
            raise ConfigError("--random-init and --override apply to --model, not --checkpoint")
        if self.model is not None and (self.clip_weights or self.detector_weights):
            raise ConfigError("--clip-weights / --detector-weights apply to --checkpoint")
        if self.checkpoint is not None and not Path(self.checkpoint).is_file():
            raise ConfigError(f"--checkpoint {self.checkpoint}: no such file")
        if self.threads < 0:
            raise ConfigError(f"--threads must be >= 0, got {self.threads}")
        if self.window < 1:
            raise ConfigError(f"--window must be >= 1, got {self.window}")
        if not 0.0 <= self.score_threshold <= 1.0:
            raise ConfigError(f"--score-threshold must be in [0, 1], got {self.score_threshold}")
        if self.max_gap <= 0:
            raise ConfigError(f"--max-gap must be > 0 seconds, got {self.max_gap}")
        if self.mode != "sgdet":
            raise ConfigError(f"--mode {self.mode!r}: the offline tools run sgdet only")


def resolve_device(device: str) -> str:
    """``auto`` -> ``cuda`` when available else ``cpu``; a CUDA device without CUDA
    raises :class:`ConfigError`."""
    from tr2_core.run import resolve_device as resolve

    if device != "auto" and device != "cpu" and not device.startswith("cuda"):
        raise ConfigError(f"--device must be auto, cpu, cuda or cuda:N, got {device!r}")
    return str(resolve(device))


def build_engine(options: EngineOptions) -> StreamingEngine:
    """The streaming engine the options describe (checkpoint or random init).

    Raises:
        ConfigError: inconsistent options.
        WeightsError: (from the model code) missing or mismatched weights.
    """
    options.validate()
    device = resolve_device(options.device)
    if options.threads:
        import torch

        torch.set_num_threads(options.threads)
    from tr2_core.stream.engine import StreamingEngine

    common: dict[str, Any] = {
        "window": options.window,
        "mode": options.mode,
        "max_gap_s": options.max_gap,
        "score_threshold": options.score_threshold,
    }
    if options.checkpoint is not None:
        return StreamingEngine.from_checkpoint(
            options.checkpoint,
            device=device,
            clip_weights=options.clip_weights,
            detector_weights=options.detector_weights,
            **common,
        )
    from tr2_core.run import announce_random_init, build_model

    announce_random_init(relation_trained=False, stream=sys.stderr)
    model = build_model(
        options.model, random_init=True, overrides=options.overrides, device=device, announce=False
    )
    return StreamingEngine(model.extractor, model.relation, **common)
