#!/usr/bin/env bash
# Install the official ROS 2 interface parser (Debian's rosidl tools) so that
# test/test_ros_msgs.py can check msg/*.msg with it. Best effort: when not root
# or without apt-get it says so and exits 0 (the parser test then shows as
# skipped, naming this script). Idempotent: a second run only checks.
set -euo pipefail
# python3-catkin-pkg and python3-empy: the msg->idl translator needs them; Debian does
# not pull them in.
PACKAGES=(rosidl-tools python3-rosidl python3-catkin-pkg python3-empy)

if command -v rosidl >/dev/null 2>&1 \
  && /usr/bin/python3 -c 'import rosidl_adapter, rosidl_parser, catkin_pkg, em' >/dev/null 2>&1; then
  exit 0
fi
if ! command -v apt-get >/dev/null 2>&1; then
  echo "install_ros_tools: apt-get not available; rosidl parser tests will be skipped" >&2
  exit 0
fi
if [ "$(id -u)" -ne 0 ]; then
  echo "install_ros_tools: not root; run 'sudo apt-get install ${PACKAGES[*]}'" \
    "to enable the rosidl parser tests" >&2
  exit 0
fi
export DEBIAN_FRONTEND=noninteractive
if ! apt-get install -y -qq --no-install-recommends "${PACKAGES[@]}" >/dev/null 2>&1; then
  apt-get update -qq >/dev/null 2>&1 || true
  apt-get install -y -qq --no-install-recommends "${PACKAGES[@]}" >/dev/null 2>&1 \
    || echo "install_ros_tools: could not install ${PACKAGES[*]};" \
      "rosidl parser tests will be skipped" >&2
fi
