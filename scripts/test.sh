#!/usr/bin/env bash
# Set everything up and run the test suite (this is what CI runs).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
# Debian's official ROS 2 interface parser for the .msg tests (those tests are
# skipped with the reason where apt is unavailable).
bash scripts/install_ros_tools.sh
.venv/bin/python -m pytest "$@"
