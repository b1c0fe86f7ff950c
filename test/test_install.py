"""Installing next to ROS 2: ``tr2 bag`` stays a subcommand where a ROS workspace's
``tr2`` package metadata (the generated messages' egg-info, no entry points) comes
first on the path, as in every shell that sourced the workspace."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from ros_fixtures import live_skip_reason

ROOT = Path(__file__).resolve().parent.parent
LIST = (
    "import importlib.metadata as m, tr2_core.cli as c;"
    "print(sorted(e.name for e in m.entry_points(group=c.ENTRY_POINT_GROUP)));"
    "print([e.name for e in c.registered_subcommands()])"
)


def _run(code_or_args, pythonpath: str | None = None) -> subprocess.CompletedProcess:
    env = dict(os.environ)
    if pythonpath is not None:
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [pythonpath, env.get("PYTHONPATH")]))
    args = ["-c", code_or_args] if isinstance(code_or_args, str) else code_or_args
    return subprocess.run(
        [sys.executable, *args], capture_output=True, text=True, env=env, cwd="/", timeout=120
    )


def test_a_shadowing_tr2_metadata_does_not_hide_tr2_bag(tmp_path):
    """The ROS workspace's metadata, as colcon installs it: same name, no entry points."""
    shadow = tmp_path / "site-packages" / "tr2-0.1.0-py3.11.egg-info"
    shadow.mkdir(parents=True)
    (shadow / "PKG-INFO").write_text("Metadata-Version: 2.1\nName: tr2\nVersion: 0.1.0\n")
    run = _run(LIST, str(shadow.parent))
    assert run.returncode == 0, run.stderr
    by_name, everywhere = run.stdout.splitlines()
    assert by_name == "[]"  # the trap: importlib.metadata keeps the first 'tr2' only
    assert everywhere == "['bag']"


def test_tr2_bag_in_a_sourced_shell():
    reason = live_skip_reason()
    if reason is not None:
        pytest.skip(reason)
    run = _run(["-m", "tr2_core", "bag", "--help"])
    assert run.returncode == 0, run.stderr
    assert "--image-topic" in run.stdout


def test_the_no_ros_recipe_runs_the_executables_in_a_fresh_shell():
    """README: `source scripts/ros_env.sh` then `tr2_listen` / `tr2_node`, without
    activating the venv (the executables' `#!/usr/bin/env python3` must find it)."""
    reason = live_skip_reason()
    if reason is not None:
        pytest.skip(reason)
    env = {"HOME": os.environ.get("HOME", "/root"), "PATH": "/usr/bin:/bin"}
    for var in ("TR2_VENV", "TR2_ROS_WS"):
        if var in os.environ:
            env[var] = os.environ[var]
    run = subprocess.run(
        ["bash", "-c", "source scripts/ros_env.sh && tr2_listen --help"],
        capture_output=True, text=True, env=env, cwd=ROOT, timeout=120,
    )  # fmt: skip
    assert run.returncode == 0, run.stderr[-2000:]
    assert "--threshold" in run.stdout
