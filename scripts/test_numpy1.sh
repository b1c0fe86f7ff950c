#!/usr/bin/env bash
# The test suite under NumPy 1.26 (what Ubuntu 24.04 / a stock ROS 2 Jazzy has),
# beside the project's NumPy 2 .venv: a second venv (.venv-numpy1, git-ignored)
# holding only numpy 1.26 and chained to .venv's packages through a .pth line,
# so torch & co. are not installed twice. Run after scripts/test.sh (or
# scripts/setup.sh + setup_ros.sh). Arguments go to pytest (default: the
# library's and the node's tests that need no rclpy in this process: rclpy's C
# extension loads its libraries relative to the interpreter's prefix, so the
# live node tests and the in-process rclpy tests run under .venv only).
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=${TR2_VENV:-$PWD/.venv}
NP1=${TR2_NUMPY1_VENV:-$PWD/.venv-numpy1}
PY=$("$VENV/bin/python" -c 'import sys; print(sys.executable)')
if ! "$NP1/bin/python" -c 'import numpy, sys; sys.exit(numpy.__version__[:5] != "1.26.")' 2>/dev/null; then
  "$(readlink -f "$PY")" -m venv "$NP1"
  "$NP1/bin/python" -m pip install --quiet --disable-pip-version-check "numpy==1.26.4"
  # venv's bundled setuptools is older than .venv's (no bdist_wheel without `wheel`):
  # let .venv's build tools be the ones found
  "$NP1/bin/python" -m pip uninstall --quiet -y setuptools 2>/dev/null || true
fi
site=$("$NP1/bin/python" -c 'import site; print(site.getsitepackages()[0])')
"$VENV/bin/python" -c 'import site; print(site.getsitepackages()[0])' > "$site/zz_tr2_project_venv.pth"
# shellcheck source=scripts/ros_env.sh
source scripts/ros_env.sh >/dev/null 2>&1 || true
"$NP1/bin/python" -c 'import numpy; print("NumPy", numpy.__version__)'
if [ $# -eq 0 ]; then
  set -- test -q --ignore=test/test_ros_live.py --ignore=test/test_ros_live_detections.py \
    --ignore=test/test_ros_lifecycle.py --ignore=test/test_ros_node_rclpy.py \
    --ignore=test/test_install.py
fi
"$NP1/bin/python" -m pytest -p no:cacheprovider "$@"
