#!/usr/bin/env bash
# The synthetic detector's budget on a GPU: how many detector steps find the synthetic person in >= 95 % of test
# frames? Fits the small detector on the demo's pretraining world at 256 px for each step
# count and prints bench/detector_check.py's JSON per budget (person found overall and by
# box shape, objects recalled, seconds).
#
#   bench/detector_budget_gpu.sh                      # on a CUDA machine: 3000 10000 steps
#   bench/detector_budget_gpu.sh 3000 20000           # other budgets
#   bench/detector_budget_gpu.sh --cpu-smoke          # anywhere: 2 steps, 6 videos (end to end)
#
# On a 2-core CPU: 1,500 steps 708 s -> 81.1 %, 3,000 steps 1,254 s -> 87.3 %
# (docs/experiments/detector.md).
# The dataset is the demo's (`tr2 demo`'s make-synthetic flags, seed 0), made in
# $OUT/detector_budget (when $OUT is set) or /tmp/detector_budget. Python and the
# wheels that travel in .whl/ as for bench/gpu_check.sh (docs/gpu.md).
set -uo pipefail
REPO=$(cd "$(dirname "$0")/.." && pwd)
SMOKE=0
if [ "${1:-}" = "--cpu-smoke" ]; then SMOKE=1; shift; fi
RESULTS=${OUT:-/tmp}/detector_budget
PY=${PYTHON:-python3}
[ -z "${PYTHON:-}" ] && [ -x "$REPO/.venv/bin/python" ] && PY="$REPO/.venv/bin/python"
mkdir -p "$RESULTS"
if ls "$REPO"/.whl/*.whl >/dev/null 2>&1; then
  "$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
    --target /tmp/site "$REPO"/.whl/*.whl || exit 1
  export PYTHONPATH=/tmp/site${PYTHONPATH:+:$PYTHONPATH}
fi
export PYTHONPATH="$REPO${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1

if [ $SMOKE = 1 ]; then
  STEPS=${*:-2} DEV=cpu VIDEOS=6 WORLD=4 THREADS=1
else
  STEPS=${*:-3000 10000} DEV=cuda VIDEOS=240 WORLD=1500 THREADS=8
fi
DATA="$RESULTS/synthetic_ag"
rm -rf "$DATA"
"$PY" -m tr2_core make-synthetic "$DATA" --videos "$VIDEOS" --seed 0 --frames 6 12 \
  --size 320x180 --temporal --quiet --val-fraction 0.15 || exit 1
for steps in $STEPS; do
  "$PY" "$REPO/bench/detector_check.py" --data "$DATA" --world-videos "$WORLD" \
    --steps "$steps" --device "$DEV" --threads "$THREADS" \
    --override detector.min_size=256 --override detector.max_size=456 \
    2> "$RESULTS/steps_$steps.log" | tail -n 1 | tee "$RESULTS/steps_$steps.json" || exit 1
done
