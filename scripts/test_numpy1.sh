#!/usr/bin/env bash
# The test suite under NumPy 1.26 (what Ubuntu 24.04 / a stock ROS 2 Jazzy has), in
# .venv-numpy1 (scripts/setup_numpy1.sh: a copy of .venv with NumPy 1.26). Run after
# scripts/setup.sh and scripts/setup_ros.sh; arguments go to pytest (default: all).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup_numpy1.sh
# shellcheck source=scripts/ros_env.sh
source scripts/ros_env.sh || true
.venv-numpy1/bin/python -m pytest -p no:cacheprovider "$@"
