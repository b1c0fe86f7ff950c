#!/usr/bin/env bash
# Install the official ROS 2 interface parser (Debian's rosidl tools) so that
# test/test_ros_msgs.py can check msg/*.msg with it. Best effort: without
# apt-get, without root (or password-less sudo) or without a package index it
# says so and exits 0; the parser tests then show as skipped, naming this
# script. Idempotent: once installed, a second run only checks.
set -euo pipefail
# python3-catkin-pkg and python3-empy: the msg->idl translator needs them; Debian does
# not pull them in.
PACKAGES=(rosidl-tools python3-rosidl python3-catkin-pkg python3-empy)

if command -v rosidl >/dev/null 2>&1 && [ -x /usr/bin/python3 ] \
  && /usr/bin/python3 -c 'import rosidl_adapter, rosidl_parser, catkin_pkg, em' >/dev/null 2>&1; then
  exit 0
fi
if ! command -v apt-get >/dev/null 2>&1; then
  echo "install_ros_tools: apt-get not available; the rosidl parser tests will be skipped" >&2
  exit 0
fi
if [ "$(id -u)" -eq 0 ]; then
  SUDO=()
elif command -v sudo >/dev/null 2>&1 && sudo -n true >/dev/null 2>&1; then
  SUDO=(sudo -n)
else
  echo "install_ros_tools: not root; run 'sudo apt-get install ${PACKAGES[*]}'" \
    "to enable the rosidl parser tests" >&2
  exit 0
fi
export DEBIAN_FRONTEND=noninteractive
install() {
  ${SUDO[@]+"${SUDO[@]}"} env DEBIAN_FRONTEND=noninteractive \
    apt-get install -y -qq --no-install-recommends "${PACKAGES[@]}" >/dev/null 2>&1
}
if ! install; then
  ${SUDO[@]+"${SUDO[@]}"} apt-get update -qq >/dev/null 2>&1 || true
  install || echo "install_ros_tools: could not install ${PACKAGES[*]};" \
    "the rosidl parser tests will be skipped" >&2
fi
