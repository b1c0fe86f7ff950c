# Source me (bash): `source scripts/ros_env.sh`. Puts the colcon workspace
# built by scripts/setup_ros.sh (.ros_ws/) on top of the project's .venv:
# rclpy, `from tr2.msg import SceneGraph`, and tr2_node / tr2_listen on PATH.
# Does nothing (returns 1) when the workspace is not built. Works under
# `set -u` (colcon's setup.bash does not: it is sourced with nounset off).
_tr2_repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
_tr2_venv=${TR2_VENV:-$_tr2_repo/.venv}
_tr2_ws=${TR2_ROS_WS:-$_tr2_repo/.ros_ws}
if [ -f "$_tr2_ws/install/setup.bash" ]; then
  # rclpy finds the rmw implementation and message packages through the ament index.
  export AMENT_PREFIX_PATH="$_tr2_venv${AMENT_PREFIX_PATH:+:$AMENT_PREFIX_PATH}"
  case $- in *u*) _tr2_nounset=1; set +u ;; *) _tr2_nounset=0 ;; esac
  # shellcheck disable=SC1091
  source "$_tr2_ws/install/setup.bash"
  [ "$_tr2_nounset" = 1 ] && set -u
  # The executables start with `#!/usr/bin/env python3`: the project's venv comes first
  # on PATH (as activating it would), or they would run a python without rclpy / torch.
  export PATH="$_tr2_ws/install/tr2/lib/tr2:$_tr2_venv/bin:$PATH"
  # Keep the traffic of ad-hoc runs on this machine unless told otherwise.
  export ROS_AUTOMATIC_DISCOVERY_RANGE=${ROS_AUTOMATIC_DISCOVERY_RANGE:-LOCALHOST}
  unset _tr2_nounset _tr2_repo _tr2_venv _tr2_ws
else
  echo "ros_env: $_tr2_ws is not built; run scripts/setup_ros.sh" >&2
  unset _tr2_repo _tr2_venv _tr2_ws
  return 1 2>/dev/null || true
fi
