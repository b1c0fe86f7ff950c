"""The node's parameters, declared in one place: :class:`NodeParams`.

Each field carries its default (whose Python type is the ROS parameter type),
description and constraints (:mod:`tr2_core.options`). The engine's options
(checkpoint, weights, device, window, thresholds) are not written here: they
are mapped from their one declaration,
:class:`~tr2_core.stream.engine_options.EngineOptions`, which the ``tr2 video`` /
``tr2 bag`` flags come from too. The node declares exactly these parameters,
``config/tr2.yaml`` sets them, and :meth:`NodeParams.from_mapping` validates
any mapping of them with messages that name the parameter. ROS-free.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from tr2_core.errors import ConfigError
from tr2_core.options import OptionSpec, option, option_specs, options_from_mapping
from tr2_core.options import validate_options as _validate_options
from tr2_core.stream.engine_options import EngineOptions, engine_option_specs

_TOPIC = r"~?/?[A-Za-z_][A-Za-z0-9_]*(/[A-Za-z_][A-Za-z0-9_]*)*"
_ENGINE = engine_option_specs()


def _where(spec: OptionSpec) -> str:
    return f"parameter '{spec.name}'"


@dataclass(frozen=True)
class NodeParams:
    """Parameters of the ``tr2`` node (all read-only once the node runs)."""

    checkpoint: str = _ENGINE["checkpoint"].field(
        help=_ENGINE["checkpoint"].help + " Required: the node stops while it is empty."
    )
    clip_weights: str = _ENGINE["clip_weights"].field()
    detector_weights: str = _ENGINE["detector_weights"].field()
    device: str = _ENGINE["device"].field(default="cpu")  # a robot picks its device
    threads: int = _ENGINE["threads"].field(
        default=2,
        help="Torch CPU threads (0: torch's choice, every core). 2 leaves the other cores to"
        " the camera driver, DDS and the rest of the robot; raise it for CPU inference on"
        " a machine of its own.",
    )
    window: int = _ENGINE["window"].field()
    max_gap_s: float = _ENGINE["max_gap_s"].field()
    mode: str = _ENGINE["mode"].field(
        help="sgdet: entities from the model's own detector; predcls: boxes and labels from"
        " the robot's detector (vision_msgs/Detection2DArray on detections_topic, classes"
        " through class_map); sgcls: boxes from the robot's detector, labels from the model."
    )
    detections_topic: str = option(
        "detections",
        "With mode predcls / sgcls: the detector's vision_msgs/Detection2DArray topic,"
        " matched to images by header stamp.",
        pattern=_TOPIC, what="a ROS topic name",
    )  # fmt: skip
    class_map: str = option(
        "",
        "YAML file mapping the detector's class ids (names or numbers) to Action Genome's"
        " 36 object classes; unmapped classes are dropped and counted. Empty: the"
        " detector's class ids are Action Genome class names.",
        metavar="PATH",
    )
    detections_tolerance_s: float = option(
        0.0,
        "Largest difference (seconds) between an image's stamp and its detections' stamp"
        " (0: exact, the detector copies the image header).",
        low=0.0, high=10.0,
    )  # fmt: skip
    detections_wait_s: float = option(
        0.5,
        "How long the worker waits for an image's detections before skipping the image"
        " (counted as unmatched).",
        low=0.0, high=60.0,
    )  # fmt: skip
    score_threshold: float = _ENGINE["score_threshold"].field()
    relation_threshold: float = _ENGINE["relation_threshold"].field()
    # the engine's fast paths (same outputs to float rounding; see docs/gpu.md)
    fold_batchnorm: bool = _ENGINE["fold_batchnorm"].field()
    newest_queries_only: bool = _ENGINE["newest_queries_only"].field()
    tf32: bool = _ENGINE["tf32"].field()
    fixed_shapes: bool = _ENGINE["fixed_shapes"].field()
    compile: str = _ENGINE["compile"].field()
    shape_bucket: int = _ENGINE["shape_bucket"].field()
    input_topic: str = option(
        "image",
        "Input image topic (sensor_msgs/Image); with input_transport 'compressed' the node"
        " subscribes to <input_topic>/compressed (sensor_msgs/CompressedImage).",
        pattern=_TOPIC, what="a ROS topic name",
    )  # fmt: skip
    input_transport: str = option(
        "raw", "raw (sensor_msgs/Image) or compressed (sensor_msgs/CompressedImage).",
        choices=("raw", "compressed"),
    )  # fmt: skip
    input_reliability: str = option(
        "best_effort",
        "QoS reliability of the image subscription: best_effort (sensor data; matches every"
        " publisher) or reliable (only matches reliable publishers).",
        choices=("best_effort", "reliable"),
    )  # fmt: skip
    input_depth: int = option(
        1, "QoS history depth of the image subscription (keep last).", low=1, high=1000
    )
    output_topic: str = option(
        "scene_graph", "Output topic (tr2/msg/SceneGraph).", pattern=_TOPIC,
        what="a ROS topic name",
    )  # fmt: skip
    vocabulary_topic: str = option(
        "scene_graph/vocabulary",
        "Latched (transient local) topic carrying tr2/msg/Vocabulary once.",
        pattern=_TOPIC, what="a ROS topic name",
    )  # fmt: skip
    publish_debug_image: bool = option(
        True, "Publish the frame with boxes and relation arrows (only while subscribed)."
    )
    debug_image_topic: str = option(
        "scene_graph/debug_image", "Debug image topic (sensor_msgs/Image, rgb8).",
        pattern=_TOPIC, what="a ROS topic name",
    )  # fmt: skip
    entities_topic: str = option(
        "scene_graph/entities",
        "The graph's entities as vision_msgs/Detection2DArray (class id: the Action Genome"
        " class name; id: the track id).",
        pattern=_TOPIC, what="a ROS topic name",
    )  # fmt: skip
    publish_markers: bool = option(
        True, "Publish RViz markers (boxes, relation lines, captions; only while subscribed)."
    )
    markers_topic: str = option(
        "scene_graph/markers", "RViz markers topic (visualization_msgs/MarkerArray).",
        pattern=_TOPIC, what="a ROS topic name",
    )  # fmt: skip
    diagnostics_period_s: float = option(
        1.0,
        "Seconds between diagnostic_msgs/DiagnosticArray messages on /diagnostics (rate,"
        " latency, drops, rejects, window fill, resets, device); 0: none.",
        low=0.0, high=3600.0,
    )  # fmt: skip
    max_rate_hz: float = option(
        0.0, "Most inferences per second (0: as fast as the model runs).", low=0.0, high=1000.0
    )
    autostart: bool = option(
        True,
        "Configure and activate the lifecycle node at start (false: wait for lifecycle"
        " transitions, e.g. from a lifecycle manager).",
    )

    def __post_init__(self) -> None:
        _validate_options(self, _where)

    @classmethod
    def from_mapping(cls, values: Mapping[str, Any], *, strict_types: bool = False) -> NodeParams:
        """Validate ``values`` (parameter name -> value); missing ones take defaults.

        Args:
            strict_types: reject an integer for a float parameter, as ROS 2
                does for a YAML ``5`` given to a double parameter.

        Raises:
            ConfigError: unknown name, wrong type or out-of-range value,
                naming the parameter.
        """
        return options_from_mapping(cls, values, _where, strict_types=strict_types)

    def require_checkpoint(self) -> Path:
        """The checkpoint path, checked to be set and to exist.

        Raises:
            ConfigError: empty or missing file.
        """
        if not self.checkpoint:
            raise ConfigError(
                "parameter 'checkpoint' is empty: set it to the trained TR2 checkpoint (.pt),"
                " e.g. in config/tr2.yaml or with 'checkpoint:=/path/to/tr2.pt' at launch"
            )
        path = Path(self.checkpoint).expanduser()
        if not path.is_file():
            raise ConfigError(f"parameter 'checkpoint': file {str(path)!r} does not exist")
        return path

    def engine_options(self) -> EngineOptions:
        """The engine options these parameters set (the others keep their defaults)."""
        return EngineOptions(**{name: getattr(self, name) for name in ENGINE_PARAMETERS})


ENGINE_PARAMETERS: tuple[str, ...] = tuple(
    spec.name for spec in option_specs(NodeParams) if spec.name in _ENGINE
)
"""The node parameters that are engine options (same name, same declaration)."""


@dataclass(frozen=True)
class ParamSpec:
    """What the node needs to declare one ROS parameter."""

    name: str
    default: bool | int | float | str
    description: str
    constraints: str
    """Human-readable constraints ('' if none), for ParameterDescriptor."""
    low: float | None
    high: float | None


def parameter_specs() -> tuple[ParamSpec, ...]:
    """Every parameter of :class:`NodeParams`, in declaration order."""
    return tuple(
        ParamSpec(s.name, s.default, s.help, s.constraints, s.low, s.high)
        for s in option_specs(NodeParams)
    )


def ros_params_from_yaml(path: Path | str, node_name: str = "tr2") -> dict[str, Any]:
    """The parameters a ROS 2 parameters file gives node ``node_name``.

    Merges the ``ros__parameters`` of the wildcard sections (``/**``, ``**``)
    and of the sections naming the node (``tr2``, ``/tr2``, ``/ns/tr2``), in
    file order, as ROS does.

    Raises:
        ConfigError: not a ROS 2 parameters file.
    """
    path = Path(path)
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as e:
        raise ConfigError(f"{path}: cannot read ROS parameters file: {e}") from None
    if not isinstance(data, Mapping):
        raise ConfigError(f"{path}: expected a mapping of node names to 'ros__parameters'")
    params: dict[str, Any] = {}
    for key, section in data.items():
        matches = key in ("/**", "**") or str(key).rsplit("/", 1)[-1] == node_name
        if not matches:
            continue
        if not isinstance(section, Mapping) or not isinstance(
            section.get("ros__parameters"), Mapping
        ):
            raise ConfigError(f"{path}: section {key!r} has no 'ros__parameters' mapping")
        params.update(section["ros__parameters"])
    return params
