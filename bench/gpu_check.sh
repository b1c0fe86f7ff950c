#!/usr/bin/env bash
# Every GPU figure of docs/gpu.md in one run (< 5 minutes on an H200), printed as one table.
#
#   bench/gpu_check.sh                 # on a CUDA machine: paper size
#   bench/gpu_check.sh --cpu-smoke     # anywhere: tr2-small, CPU, tiny sizes (end-to-end check)
#
# Writes each step's JSON and log to $OUT/gpu_check (when $OUT is set) or
# /tmp/gpu_check, then prints the table (bench/gpu_check_table.py). A failing step is
# reported in the table and the script goes on; the exit code is 1 if any step failed.
# Python: $PYTHON, else the repo's .venv, else python3. Packages missing
# there (open_clip_torch, ftfy, wcwidth, rosbags, lz4, ruamel.yaml) travel as wheels in
# .whl/ (docs/gpu.md says how to fetch them) and are installed to /tmp/site.
set -uo pipefail
REPO=$(cd "$(dirname "$0")/.." && pwd)
SMOKE=0
if [ "${1:-}" = "--cpu-smoke" ]; then SMOKE=1; shift; fi
RESULTS=${1:-${OUT:-/tmp}/gpu_check}
PY=${PYTHON:-python3}
[ -z "${PYTHON:-}" ] && [ -x "$REPO/.venv/bin/python" ] && PY="$REPO/.venv/bin/python"
mkdir -p "$RESULTS"
if ls "$REPO"/.whl/*.whl >/dev/null 2>&1; then
  "$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
    --target /tmp/site "$REPO"/.whl/*.whl || exit 1
  export PYTHONPATH=/tmp/site${PYTHONPATH:+:$PYTHONPATH}
fi
export PYTHONPATH="$REPO${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1 TR2_CACHE_DIR="$RESULTS/cache_home"

if [ $SMOKE = 1 ]; then
  MODEL=tr2-small DEV=cpu IT=2 WINDOWS="2 3" H=96 W=128 N=4 BIG_H=108 BIG_W=192 BIG_N=5
  FRAMES=4 VIDEOS=3 EPOCHS=1 TRAIN_MODEL=tr2-small RECIPE=small EXTRA="--threads 1"
  FP_WINDOW=3 FP_FRAMES=4
  OVR="model.detector.min_size=64 model.detector.max_size=128"
else
  MODEL=tr2 DEV=cuda IT=20 WINDOWS="2 8 32" H=480 W=640 N=10 BIG_H=1080 BIG_W=1920 BIG_N=20
  FRAMES=16 VIDEOS=24 EPOCHS=2 TRAIN_MODEL=tr2 RECIPE=tr2 EXTRA="" OVR=""
  FP_WINDOW=8 FP_FRAMES=30
fi
FAILED=0
step() {  # step NAME COMMAND... : run, time, log; never stops the script
  local name=$1; shift
  local t0=$(date +%s%N)
  echo "== $name: $*" >&2
  "$@" >"$RESULTS/$name.log" 2>&1
  local rc=$?
  echo "$name $rc $(( ($(date +%s%N) - t0) / 1000000 ))" >>"$RESULTS/steps.txt"
  if [ $rc != 0 ]; then FAILED=1; tail -5 "$RESULTS/$name.log" >&2; fi
}
: >"$RESULTS/steps.txt"
"$PY" - >"$RESULTS/env.txt" 2>&1 <<'PYEOF'
import platform, subprocess, torch
print("torch", torch.__version__, "cuda", torch.version.cuda, "python", platform.python_version())
if torch.cuda.is_available():
    print("gpu", torch.cuda.get_device_name(0))
    try:
        print("driver", subprocess.run(["nvidia-smi", "--query-gpu=driver_version", "--format=csv,noheader"],
                                       capture_output=True, text=True).stdout.strip())
    except OSError:
        pass
PYEOF

B="$REPO/bench"
S=(--model "$MODEL" --device "$DEV" --iterations "$IT" --no-recompute $EXTRA)
# streaming, 640x480, N given boxes, W = 2/8/32, and SGDet at W=8 (fp32, engine defaults)
step stream "$PY" "$B/bench_stream.py" "${S[@]}" --windows $WINDOWS --height $H --width $W \
  --entities $N --sgdet-window 8 --json "$RESULTS/stream.json"
# W=8: plain fp32 (fast paths off), TF32, bf16 autocast, CUDA graphs
step stream_plain "$PY" "$B/bench_stream.py" "${S[@]}" --windows 8 --height $H --width $W \
  --entities $N --sgdet-window 0 --engine-option fold_batchnorm=false \
  --engine-option newest_queries_only=false --json "$RESULTS/stream_plain.json"
step stream_tf32 "$PY" "$B/bench_stream.py" "${S[@]}" --windows 8 --height $H --width $W \
  --entities $N --sgdet-window 0 --engine-option tf32=true --json "$RESULTS/stream_tf32.json"
step stream_bf16 "$PY" "$B/bench_stream.py" "${S[@]}" --windows 8 --height $H --width $W \
  --entities $N --sgdet-window 0 --autocast bf16 --json "$RESULTS/stream_bf16.json"
if [ $SMOKE = 0 ]; then
  step stream_graphs "$PY" "$B/bench_stream.py" "${S[@]}" --windows 8 --height $H --width $W \
    --entities $N --sgdet-window 0 --engine-option compile=cuda-graphs --engine-option tf32=true \
    --json "$RESULTS/stream_graphs.json"
fi
# 1080p, 20 boxes, W=8
step stream_1080 "$PY" "$B/bench_stream.py" "${S[@]}" --windows 8 --height $BIG_H \
  --width $BIG_W --entities $BIG_N --sgdet-window 0 --json "$RESULTS/stream_1080.json"
# the fast paths against the plain fp32 path (equality + time), incl. CUDA-graph capture
step fast_paths "$PY" "$B/gpu_fast_paths.py" --model "$MODEL" --device "$DEV" --window $FP_WINDOW \
  --frames $FP_FRAMES --height $H --width $W --entities $N --json "$RESULTS/fast_paths.json"
# extractor batched over FRAMES frames and the relation model, fp32 and bf16
step model_fp32 "$PY" "$B/bench_model_latency.py" --model "$MODEL" --device "$DEV" \
  --frames $FRAMES --objects $((N - 1)) --skip-sgdet $EXTRA --out "$RESULTS/model_fp32.json"
step model_bf16 "$PY" "$B/bench_model_latency.py" --model "$MODEL" --device "$DEV" \
  --frames $FRAMES --objects $((N - 1)) --skip-sgdet --autocast bf16 $EXTRA \
  --out "$RESULTS/model_bf16.json"
# the node: image in -> message out
step node "$PY" "$B/bench_node_latency.py" --model "$MODEL" --device "$DEV" --iterations $IT \
  --height $H --width $W --entities $N $EXTRA --json "$RESULTS/node.json"
# training throughput from the feature cache (paper recipe), no prefetch vs prefetch
step train_throughput "$PY" "$B/bench_train_throughput.py" --model "$TRAIN_MODEL" \
  --train-config "$RECIPE" --device "$DEV" --videos $VIDEOS --epochs 2 --cached-only \
  --width $W --height $H $EXTRA --work "$RESULTS/throughput"
# the paper recipe, 2 epochs on synthetic data: plain and under torchrun (NCCL on CUDA)
DATA="$RESULTS/synthetic"
[ -d "$DATA/annotations" ] || "$PY" -m tr2_core make-synthetic "$DATA" --videos $((VIDEOS + 6)) \
  --frames 6 12 --size ${W}x${H} --quiet >"$RESULTS/make_synthetic.log" 2>&1
T=(train --data "$DATA" --model "$TRAIN_MODEL" --train-config "$RECIPE" --task predcls
   --random-init --device "$DEV" --epochs $EPOCHS --no-progress --cache-dir "$RESULTS/cache" $OVR)
step train_plain "$PY" -m tr2_core "${T[@]}" --out "$RESULTS/run_plain"
step train_torchrun "$PY" -m torch.distributed.run --standalone --nproc_per_node 1 \
  -m tr2_core "${T[@]}" --out "$RESULTS/run_torchrun"

"$PY" "$B/gpu_check_table.py" "$RESULTS" | tee "$RESULTS/table.md"
exit $FAILED
