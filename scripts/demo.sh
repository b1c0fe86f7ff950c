#!/usr/bin/env bash
# Set everything up and run the main job: `tr2 demo` into runs/demo.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
.venv/bin/tr2 demo "${1:-runs/demo}" --force
