#!/usr/bin/env bash
# A second environment, .venv-numpy1: a copy of the project's .venv with NumPy 1.26, as a
# stock ROS 2 Jazzy on Ubuntu 24.04 has it (python3-numpy 1.26; cv_bridge and OpenCV are
# built against NumPy 1.x). A copy rather than an overlay: the ROS 2 wheels find their
# shared libraries from the interpreter's prefix. Idempotent.
set -euo pipefail
cd "$(dirname "$0")/.."
NUMPY1_VERSION=${NUMPY1_VERSION:-1.26.4}
# copied again whenever .venv's packages changed (setup.sh / setup_ros.sh installed more)
packages=$(.venv/bin/python -m pip freeze --disable-pip-version-check 2>/dev/null | grep -v '^numpy==' | sha256sum | cut -c1-16)
if [ ! -x .venv-numpy1/bin/python ] || [ "$(cat .venv-numpy1/.copied-from 2>/dev/null)" != "$packages" ]; then
  rm -rf .venv-numpy1 .venv-numpy1.partial
  cp -a --reflink=auto .venv .venv-numpy1.partial
  echo "$packages" > .venv-numpy1.partial/.copied-from
  mv .venv-numpy1.partial .venv-numpy1
fi
if ! .venv-numpy1/bin/python -c "import numpy, sys; sys.exit(numpy.__version__ != '$NUMPY1_VERSION')" 2>/dev/null; then
  # --no-deps: everything else stays as in .venv (pip warns that tr2's own
  # requirement would want a newer NumPy when .venv pins one)
  .venv-numpy1/bin/python -m pip install --quiet --disable-pip-version-check --no-deps \
    "numpy==$NUMPY1_VERSION"
fi
.venv-numpy1/bin/python -c "import numpy, torch; print('setup_numpy1: numpy', numpy.__version__, 'torch', torch.__version__)"
