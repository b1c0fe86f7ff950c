"""Node parameters: one declaration, validation naming the parameter, the
shipped config/tr2.yaml, and the launch file agreeing with both."""

from __future__ import annotations

import dataclasses
import importlib.util
import math
import sys
import types
from pathlib import Path

import pytest

from tr2_core.errors import ConfigError
from tr2_ros.params import NodeParams, parameter_specs, ros_params_from_yaml

ROOT = Path(__file__).resolve().parent.parent
CONFIG = ROOT / "config" / "tr2.yaml"


def test_defaults_are_valid_and_typed():
    params = NodeParams()
    for spec in parameter_specs():
        assert type(getattr(params, spec.name)) is type(spec.default)
        assert spec.description, spec.name
    assert params.input_reliability == "best_effort"  # sensor-data QoS by default
    assert params.device == "cpu"


def test_every_field_is_a_declared_parameter():
    assert [s.name for s in parameter_specs()] == [f.name for f in dataclasses.fields(NodeParams)]
    assert {s.name for s in parameter_specs()} >= {
        "checkpoint", "clip_weights", "detector_weights", "device", "window", "score_threshold",
        "relation_threshold", "input_topic", "output_topic", "input_reliability",
        "input_transport", "publish_debug_image", "max_rate_hz",
    }  # fmt: skip


@pytest.mark.parametrize(
    ("values", "reason"),
    [
        ({"device": "gpu"}, "parameter 'device': 'gpu' is not auto, cpu, cuda or cuda:N"),
        ({"device": "cuda:x"}, "parameter 'device'"),
        ({"window": 0}, r"parameter 'window': 0 is outside \[1, 1024\]"),
        ({"window": 2.5}, "parameter 'window': expected an integer"),
        ({"window": True}, "parameter 'window': expected an integer"),
        ({"score_threshold": 1.5}, "parameter 'score_threshold'"),
        ({"score_threshold": math.nan}, "parameter 'score_threshold'"),
        ({"relation_threshold": "0.5"}, "expected a floating-point number"),
        ({"input_transport": "theora"}, r"is not one of \['raw', 'compressed'\]"),
        ({"input_reliability": "best-effort"}, "parameter 'input_reliability'"),
        ({"input_topic": "camera//image"}, "parameter 'input_topic': 'camera//image' is not a ROS"),
        ({"output_topic": "scene graph"}, "parameter 'output_topic'"),
        ({"output_topic": ""}, "parameter 'output_topic'"),
        ({"publish_debug_image": "yes"}, "expected true/false"),
        ({"max_rate_hz": -1.0}, "parameter 'max_rate_hz'"),
        ({"checkpoint": 3}, "parameter 'checkpoint': expected a string"),
        ({"windw": 8}, r"unknown parameter\(s\) \['windw'\]"),
    ],
)
def test_invalid_values_name_the_parameter(values, reason):
    with pytest.raises(ConfigError, match=reason):
        NodeParams.from_mapping(values)


def test_ints_for_floats_follow_ros_typing():
    assert NodeParams.from_mapping({"max_rate_hz": 5}).max_rate_hz == 5.0
    with pytest.raises(ConfigError, match=r"decimal point, e.g. 5.0"):
        NodeParams.from_mapping({"max_rate_hz": 5}, strict_types=True)


def test_valid_values():
    p = NodeParams.from_mapping(
        {"device": "cuda:1", "input_topic": "/camera/color/image_raw", "window": 16,
         "input_transport": "compressed", "output_topic": "~/graph", "max_rate_hz": 2.5}
    )  # fmt: skip
    assert (p.device, p.window, p.max_rate_hz) == ("cuda:1", 16, 2.5)


def test_require_checkpoint(tmp_path):
    with pytest.raises(ConfigError, match="parameter 'checkpoint' is empty"):
        NodeParams().require_checkpoint()
    with pytest.raises(ConfigError, match="does not exist"):
        NodeParams(checkpoint=str(tmp_path / "missing.pt")).require_checkpoint()
    ckpt = tmp_path / "tr2.pt"
    ckpt.write_bytes(b"x")
    assert NodeParams(checkpoint=str(ckpt)).require_checkpoint() == ckpt


def test_shipped_config_sets_every_parameter_with_ros_types():
    values = ros_params_from_yaml(CONFIG)
    assert sorted(values) == sorted(s.name for s in parameter_specs())
    params = NodeParams.from_mapping(values, strict_types=True)  # as ROS would type them
    assert params == NodeParams()  # the file documents the defaults


def test_ros_params_file_sections(tmp_path):
    path = tmp_path / "p.yaml"
    path.write_text(
        "/**:\n  ros__parameters:\n    window: 4\n    device: cpu\n"
        "/robot1/tr2:\n  ros__parameters:\n    device: cuda:0\n"
        "other_node:\n  ros__parameters:\n    window: 99\n"
    )
    assert ros_params_from_yaml(path) == {"window": 4, "device": "cuda:0"}
    path.write_text("tr2:\n  parameters:\n    window: 4\n")
    with pytest.raises(ConfigError, match="no 'ros__parameters'"):
        ros_params_from_yaml(path)
    path.write_text("- a list\n")
    with pytest.raises(ConfigError, match="expected a mapping"):
        ros_params_from_yaml(path)


# --------------------------------------------------------------------------
# The launch file, evaluated against recording stand-ins for launch/launch_ros
# (the real ones exist only where ROS 2 is installed; test_ros_launch.py uses them).


class _Recorder:
    def __init__(self, *args, **kwargs):
        self.args, self.kwargs = args, kwargs


class _LaunchConfiguration(_Recorder):
    values: dict[str, str] = {}

    def perform(self, context):
        return self.values[self.args[0]]


def _load_launch_file(monkeypatch):
    modules = {
        "launch": types.ModuleType("launch"),
        "launch.actions": types.ModuleType("launch.actions"),
        "launch.substitutions": types.ModuleType("launch.substitutions"),
        "launch_ros": types.ModuleType("launch_ros"),
        "launch_ros.actions": types.ModuleType("launch_ros.actions"),
        "launch_ros.substitutions": types.ModuleType("launch_ros.substitutions"),
    }
    modules["launch"].LaunchDescription = _Recorder
    modules["launch.actions"].DeclareLaunchArgument = _Recorder
    modules["launch.actions"].OpaqueFunction = _Recorder
    modules["launch.substitutions"].LaunchConfiguration = _LaunchConfiguration
    modules["launch.substitutions"].PathJoinSubstitution = _Recorder
    modules["launch_ros.actions"].Node = _Recorder
    modules["launch_ros.substitutions"].FindPackageShare = _Recorder
    for name, module in modules.items():
        monkeypatch.setitem(sys.modules, name, module)
    spec = importlib.util.spec_from_file_location("tr2_launch", ROOT / "launch" / "tr2.launch.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_launch_file_wires_params_topics_and_overrides(monkeypatch):
    launch = _load_launch_file(monkeypatch)
    description = launch.generate_launch_description()
    *arguments, opaque = description.args[0]
    declared = {a.args[0]: a.kwargs["default_value"] for a in arguments}
    assert {"namespace", "params_file", "checkpoint", "device", "image", "scene_graph"} <= set(
        declared
    )
    params_default = declared["params_file"]
    assert params_default.args[0][0].args == ("tr2",) and params_default.args[0][1:] == [
        "config",
        "tr2.yaml",
    ]
    # overrides only when given; topics remapped from the node's internal names
    _LaunchConfiguration.values = {
        **{k: v for k, v in declared.items() if isinstance(v, str)},
        "checkpoint": "/models/tr2.pt",
        "image": "/camera/color/image_raw",
    }
    (node,) = opaque.kwargs["function"](context=None)
    kw = node.kwargs
    assert (kw["package"], kw["executable"], kw["name"]) == ("tr2", "tr2_node", "tr2")
    assert kw["parameters"][1] == {"checkpoint": "/models/tr2.pt"}
    remaps = dict(kw["remappings"])
    defaults = NodeParams()
    assert remaps[defaults.input_topic] == "/camera/color/image_raw"
    assert remaps[f"{defaults.input_topic}/compressed"] == "/camera/color/image_raw/compressed"
    for topic in (defaults.output_topic, defaults.vocabulary_topic, defaults.debug_image_topic):
        assert topic in remaps  # every internal name can be remapped
    # the executable the launch file starts is the one CMake installs
    assert (
        f'"${{CMAKE_CURRENT_BINARY_DIR}}/{kw["executable"]}"'
        in (ROOT / "CMakeLists.txt").read_text()
    )


def test_every_parameter_is_documented_for_users():
    docs = (Path(__file__).resolve().parent.parent / "docs" / "ros.md").read_text()
    missing = [s.name for s in parameter_specs() if f"`{s.name}`" not in docs]
    assert missing == [], f"docs/ros.md does not describe {missing}"
