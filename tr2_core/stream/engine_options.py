"""The streaming engine's options, declared once: :class:`EngineOptions`.

Every field carries its default, help and constraints (:mod:`tr2_core.options`).
:class:`~tr2_core.stream.engine.StreamingEngine` takes an instance; the flags of
``tr2 video`` / ``tr2 bag`` (:mod:`tr2_core.runners.engine_args`) and the ROS
node's parameters (``tr2_ros/params.py``) are generated from these fields.
Importing this module does not import torch.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

from tr2_core.errors import ConfigError
from tr2_core.options import OptionSpec, option, option_specs, validate_options

DEVICE_PATTERN = r"auto|cpu|cuda|cuda:\d+"


def _name(spec: OptionSpec) -> str:
    return f"engine option '{spec.name}'"


@dataclass(frozen=True)
class EngineOptions:
    """How the streaming engine loads, runs and decodes (all surfaces share these).

    Raises:
        ConfigError: (on construction) a value of the wrong type or out of range.
    """

    checkpoint: str = option(
        "", "Trained TR2 checkpoint (.pt, the output of tr2 train).", metavar="PATH"
    )
    clip_weights: str = option(
        "",
        "Local CLIP ViT-B/32 weights file (open_clip); empty: the path stored in the checkpoint.",
        metavar="PATH_OR_TAG",
    )
    detector_weights: str = option(
        "",
        "Local detector weights (torchvision state dict); empty: the path in the checkpoint.",
        metavar="PATH",
    )
    device: str = option(
        "auto", "Torch device for inference: auto (cuda when available), cpu, cuda or cuda:N.",
        pattern=DEVICE_PATTERN, what="auto, cpu, cuda or cuda:N",
    )  # fmt: skip
    threads: int = option(
        0,
        "Torch CPU threads (0: torch's choice; 1 is often fastest on a CPU shared with"
        " other processes).",
        low=0, high=1024,
    )  # fmt: skip
    mode: str = option(
        "sgdet",
        "Task mode: sgdet (entities from the detector), sgcls (given boxes) or predcls"
        " (given boxes and labels).",
        choices=("sgdet", "sgcls", "predcls"),
    )  # fmt: skip
    window: int = option(
        8, "Frames W in the temporal window the relations are inferred from.", low=1, high=1024
    )
    max_gap_s: float = option(
        3.0,
        "A gap longer than this (seconds) between consecutive frames the source received"
        " resets the window and the tracks (frames dropped unprocessed do not make gaps;"
        " the default keeps Action Genome-spaced frames, about 1 s apart, and a 0.5 Hz"
        " camera in one window).",
        low=0.0, high=1e9, open_low=True, flag="max-gap", metavar="SECONDS",
    )  # fmt: skip
    score_threshold: float = option(
        0.1, "Minimum detector score for an entity to become a node.", low=0.0, high=1.0
    )
    relation_threshold: float = option(
        0.5,
        "Spatial/contacting predicates scoring at least this are listed as holding;"
        " full scores are always kept.",
        low=0.0, high=1.0,
    )  # fmt: skip

    # fast paths (docs/gpu.md); each is tested against the plain float32 path
    fold_batchnorm: bool = option(
        True,
        "Fold the frozen detector's batch norms into its convolutions (same outputs to"
        " float rounding, 1e-5).",
    )
    newest_queries_only: bool = option(
        True,
        "Compute the last temporal decoder layer only for the newest frame's pairs (same"
        " outputs to float rounding, 1e-5).",
    )
    tf32: bool = option(
        False,
        "Allow TF32 matrix products and convolutions on CUDA (about 1e-3 relative error;"
        " no effect on a CPU).",
    )
    fixed_shapes: bool = option(
        False,
        "Pad the temporal batch to (sequence bucket, window) and RoI counts to a bucket,"
        " so that a few fixed shapes recur (same outputs); needed by --compile.",
    )
    compile: str = option(
        "off",
        "torch.compile the per-frame detector parts and the temporal decoder: off,"
        " default, or cuda-graphs (mode reduce-overhead; CUDA only; implies fixed"
        " shapes).",
        choices=("off", "default", "cuda-graphs"),
    )
    shape_bucket: int = option(
        16,
        "Bucket size for fixed shapes: sequence and RoI counts are padded up to a"
        " multiple of it.",
        low=1, high=4096,
    )  # fmt: skip

    def __post_init__(self) -> None:
        validate_options(self, _name)

    def replace(self, **changes: Any) -> EngineOptions:
        """A copy with ``changes`` (field name -> value), validated.

        Raises:
            ConfigError: an unknown field name.
        """
        unknown = sorted(set(changes) - {s.name for s in option_specs(EngineOptions)})
        if unknown:
            raise ConfigError(f"unknown engine option(s) {unknown}")
        return dataclasses.replace(self, **changes)


def engine_option_specs() -> dict[str, OptionSpec]:
    """The declarations of :class:`EngineOptions`, by field name."""
    return {s.name: s for s in option_specs(EngineOptions)}


def resolve_device(device: str) -> str:
    """``auto`` -> ``cuda`` when available else ``cpu``, as a device string (the one rule
    lives in :func:`tr2_core.run.resolve_device`; imported lazily so that declaring
    options never imports torch).

    Raises:
        ConfigError: a CUDA device on a machine without CUDA, or not a device name.
    """
    from tr2_core.run import resolve_device as resolve  # deferred: torch

    return str(resolve(device))
