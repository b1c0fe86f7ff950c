"""The node's parameters, declared in one place: :class:`NodeParams`.

Each field carries its default (whose Python type is the ROS parameter type),
description and constraints. The node declares exactly these parameters,
``config/tr2.yaml`` sets them, and :meth:`NodeParams.from_mapping` validates
any mapping of them with messages that name the parameter. ROS-free.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from tr2_core.errors import ConfigError

_TOPIC = re.compile(r"^~?/?[A-Za-z_][A-Za-z0-9_]*(/[A-Za-z_][A-Za-z0-9_]*)*$")
_DEVICE = re.compile(r"^(cpu|cuda|cuda:\d+)$")


def _param(
    default: bool | int | float | str,
    description: str,
    *,
    choices: tuple[str, ...] | None = None,
    low: float | None = None,
    high: float | None = None,
    pattern: re.Pattern[str] | None = None,
    what: str = "",
) -> Any:
    meta = {"description": description, "choices": choices, "low": low, "high": high}
    meta |= {"pattern": pattern, "what": what}
    return field(default=default, metadata=meta)


@dataclass(frozen=True)
class NodeParams:
    """Parameters of the ``tr2`` node (all read-only once the node runs)."""

    checkpoint: str = _param(
        "", "Path to the trained TR2 checkpoint (.pt). Required: the node stops if empty."
    )
    clip_weights: str = _param(
        "",
        "Local CLIP ViT-B/32 weights file (open_clip); empty: the path stored in the checkpoint.",
    )
    detector_weights: str = _param(
        "",
        "Local detector weights (torchvision state dict); empty: the path in the checkpoint.",
    )
    device: str = _param(
        "cpu", "Torch device for inference: cpu, cuda or cuda:N.", pattern=_DEVICE,
        what="cpu, cuda or cuda:N",
    )  # fmt: skip
    window: int = _param(
        8, "Frames in the temporal window the relations are inferred from.", low=1, high=1024
    )
    score_threshold: float = _param(
        0.1, "Minimum detector score for an entity to become a node.", low=0.0, high=1.0
    )
    relation_threshold: float = _param(
        0.5,
        "Spatial/contacting predicates scoring at least this are listed as holding"
        " (PredicateScores.predicates); full scores are always published.",
        low=0.0, high=1.0,
    )  # fmt: skip
    input_topic: str = _param(
        "image",
        "Input image topic (sensor_msgs/Image); with input_transport 'compressed' the node"
        " subscribes to <input_topic>/compressed (sensor_msgs/CompressedImage).",
        pattern=_TOPIC, what="a ROS topic name",
    )  # fmt: skip
    input_transport: str = _param(
        "raw", "raw (sensor_msgs/Image) or compressed (sensor_msgs/CompressedImage).",
        choices=("raw", "compressed"),
    )  # fmt: skip
    input_reliability: str = _param(
        "best_effort",
        "QoS reliability of the image subscription: best_effort (sensor data; matches every"
        " publisher) or reliable (only matches reliable publishers).",
        choices=("best_effort", "reliable"),
    )  # fmt: skip
    input_depth: int = _param(
        1, "QoS history depth of the image subscription (keep last).", low=1, high=1000
    )
    output_topic: str = _param(
        "scene_graph", "Output topic (tr2/msg/SceneGraph).", pattern=_TOPIC,
        what="a ROS topic name",
    )  # fmt: skip
    vocabulary_topic: str = _param(
        "scene_graph/vocabulary",
        "Latched (transient local) topic carrying tr2/msg/Vocabulary once.",
        pattern=_TOPIC, what="a ROS topic name",
    )  # fmt: skip
    publish_debug_image: bool = _param(
        True, "Publish the frame with boxes and relation arrows (only while subscribed)."
    )
    debug_image_topic: str = _param(
        "scene_graph/debug_image", "Debug image topic (sensor_msgs/Image, rgb8).",
        pattern=_TOPIC, what="a ROS topic name",
    )  # fmt: skip
    max_rate_hz: float = _param(
        0.0, "Most inferences per second (0: as fast as the model runs).", low=0.0, high=1000.0
    )
    autostart: bool = _param(
        True,
        "Configure and activate the lifecycle node at start (false: wait for lifecycle"
        " transitions, e.g. from a lifecycle manager).",
    )

    def __post_init__(self) -> None:
        for f in dataclasses.fields(self):
            value = _convert(f, getattr(self, f.name), strict_types=False)
            object.__setattr__(self, f.name, value)  # ints given for floats become floats
            _check(f, value)

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
        specs = {f.name: f for f in dataclasses.fields(cls)}
        unknown = sorted(set(values) - set(specs))
        if unknown:
            raise ConfigError(f"unknown parameter(s) {unknown}; known: {sorted(specs)}")
        converted = {
            name: _convert(specs[name], value, strict_types) for name, value in values.items()
        }
        return cls(**converted)

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


def _convert(f: dataclasses.Field, value: Any, strict_types: bool) -> Any:
    kind = type(f.default)
    where = f"parameter '{f.name}'"
    if kind is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"{where}: expected true/false, got {value!r}")
    elif kind is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{where}: expected an integer, got {value!r}")
    elif kind is float:
        ok = isinstance(value, float) or (isinstance(value, int) and not strict_types)
        if isinstance(value, bool) or not ok:
            hint = " (write it with a decimal point, e.g. 5.0)" if isinstance(value, int) else ""
            raise ConfigError(f"{where}: expected a floating-point number, got {value!r}{hint}")
        value = float(value)
    elif not isinstance(value, str):
        raise ConfigError(f"{where}: expected a string, got {value!r}")
    return value


def _check(f: dataclasses.Field, value: Any) -> None:
    m = f.metadata
    where = f"parameter '{f.name}'"
    if m["choices"] is not None and value not in m["choices"]:
        raise ConfigError(f"{where}: {value!r} is not one of {list(m['choices'])}")
    if m["pattern"] is not None and not m["pattern"].match(value):
        raise ConfigError(f"{where}: {value!r} is not {m['what']}")
    if m["low"] is not None and not (m["low"] <= value <= m["high"]):  # also rejects NaN
        raise ConfigError(f"{where}: {value!r} is outside [{m['low']}, {m['high']}]")


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
    specs = []
    for f in dataclasses.fields(NodeParams):
        m = f.metadata
        if m["choices"] is not None:
            constraints = "one of: " + ", ".join(m["choices"])
        elif m["pattern"] is not None:
            constraints = m["what"]
        elif m["low"] is not None:
            constraints = f"in [{m['low']}, {m['high']}]"
        else:
            constraints = ""
        specs.append(
            ParamSpec(f.name, f.default, m["description"], constraints, m["low"], m["high"])
        )
    return tuple(specs)


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
