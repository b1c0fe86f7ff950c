"""``ros2 launch tr2 tr2.launch.py`` on a real ROS 2 installation: the launch
file loads the package's config/tr2.yaml, applies launch-argument overrides,
and the node stops with a clear fatal line when the checkpoint is unusable.

Needs ROS 2 (Humble or later) with the tr2 package built and sourced:
    colcon build --packages-select tr2 && source install/setup.bash
Elsewhere every test here is reported as skipped, with the reason.
(test_ros_params.py checks the same launch file without ROS, against
recording stand-ins for launch/launch_ros.)
"""

from __future__ import annotations

import shutil
import subprocess

import pytest

launch = pytest.importorskip(
    "launch", reason="ROS 2 'launch' not available: needs a sourced ROS 2 environment"
)
if not hasattr(launch, "LaunchDescription"):  # only this repository's launch/ folder was found
    pytest.skip(
        "ROS 2 'launch' not installed: source a ROS 2 (Humble or later) environment",
        allow_module_level=True,
    )
pytest.importorskip("launch_ros", reason="launch_ros not available: source ROS 2")
packages = pytest.importorskip("ament_index_python.packages", reason="ament_index not available")
try:
    SHARE = packages.get_package_share_directory("tr2")
except packages.PackageNotFoundError:
    pytest.skip(
        "ROS package tr2 not installed: colcon build --packages-select tr2, then source"
        " install/setup.bash",
        allow_module_level=True,
    )
ROS2 = shutil.which("ros2")
if ROS2 is None:
    pytest.skip("the ros2 command is not on PATH: source ROS 2", allow_module_level=True)


def _launch(*arguments: str) -> str:
    run = subprocess.run(
        [ROS2, "launch", "tr2", "tr2.launch.py", *arguments],
        capture_output=True,
        text=True,
        timeout=90,
    )
    return run.stdout + run.stderr


def test_config_installed():
    from pathlib import Path

    assert (Path(SHARE) / "config" / "tr2.yaml").is_file()
    assert (Path(SHARE) / "launch" / "tr2.launch.py").is_file()


def test_launch_without_checkpoint_stops_with_a_clear_message():
    out = _launch()
    assert "parameter 'checkpoint' is empty" in out
    assert "exit code 1" in out


def test_launch_arguments_override_the_params_file(tmp_path):
    out = _launch(f"checkpoint:={tmp_path / 'missing.pt'}", "namespace:=robot1")
    assert "does not exist" in out and "missing.pt" in out
    out = _launch("checkpoint:=/x.pt", "device:=gpu")
    assert "parameter 'device'" in out
