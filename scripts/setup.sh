#!/usr/bin/env bash
# Create .venv (if missing) and install tr2 with its test tools into it.
# Idempotent: a second run only checks that everything is installed.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  "$PYTHON" -m venv .venv
fi
# torchvision pins the matching torch from the package index (the CPU-only
# torch wheel some machines carry locally cannot load torchvision's ops).
.venv/bin/python -m pip install --quiet --disable-pip-version-check -e ".[test]"
