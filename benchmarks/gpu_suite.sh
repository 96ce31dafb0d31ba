#!/usr/bin/env bash
# The benchmark suite on a CUDA GPU machine (no network there: jax with CUDA preinstalled).
# Writes every figure to one file, ${OUT:-.}/gpu_benchmarks.txt, in about 10 minutes on an H200
# (compilation is most of the update figures: ~20-60 s per configuration).
#
#   bash benchmarks/gpu_suite.sh            # DRY=1: every step at toy sizes, to try the script on a CPU
#
# 1. updates/s of one agent and of 8 vmapped agents (aggregate), AntMaze / Adroit / default
#    configurations, full fp32 matmuls;
# 2. the AntMaze configuration under each matmul precision, with the final losses after the same
#    updates on the same batches (the precision's effect on the losses);
# 3. the update against its floor (its network arithmetic alone), default and AntMaze configurations;
# 4. an evaluation's episodes one after another and in lockstep (one batched policy call per step);
# 5. the precision's effect on learning: the default task's run (seed 0) under fp32 and tf32, the
#    same seed, scores and wall time side by side.
# 6. pixel tasks (benchmarks/pixel_update.py): updates/s at 64x64x3 and 32x32x3, batch 256.
set -euo pipefail
cd "$(dirname "$0")/.."
out="${OUT:-.}/gpu_benchmarks.txt"
export PYTHONPATH="$PWD/src${PYTHONPATH:+:$PYTHONPATH}" HF_HUB_OFFLINE=1
python=${PYTHON:-python3}
if [ "${DRY:-0}" = 1 ]; then
  sizes=(--windows 1 --updates-per-call 2 --calls-per-window 1)
  all=(pointmaze) big=(pointmaze) floors=(pointmaze)  # the 256-wide ones compile for minutes on a CPU
  rounds=1
  pixels=(--sizes 32 --windows 1 --updates-per-call 2)
  run=(--offline-steps 50 --online-steps 300 --eval-every 300 --start-evals 0 --eval-episodes 2)
else
  sizes=(--windows 3 --updates-per-call 100 --calls-per-window 10)
  all=(antmaze adroit pointmaze) big=(antmaze) floors=(pointmaze antmaze)
  rounds=3
  pixels=(--sizes 64 32 --windows 3 --updates-per-call 50)
  run=()
fi
runs="$(mktemp -d)"
{
  echo "# calql GPU benchmarks, $(date -u +%Y-%m-%dT%H:%MZ), commit $(git rev-parse --short HEAD 2>/dev/null || echo unknown)"
  nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader || echo "no nvidia-smi (DRY=${DRY:-0})"
  "$python" -c "import jax, flax, optax; print('jax', jax.__version__, 'flax', flax.__version__, 'optax', optax.__version__, jax.devices())"
  echo "## single agent vs 8 vmapped agents (fp32)"
  "$python" benchmarks/update_throughput.py --settings "${all[@]}" --seeds 1 8 --precisions float32 "${sizes[@]}"
  echo "## matmul precision (AntMaze configuration, one agent; bfloat16 and default matched tensorfloat32 on an H200)"
  "$python" benchmarks/update_throughput.py --settings "${big[@]}" --seeds 1 --precisions tensorfloat32 bfloat16 "${sizes[@]}"
  echo "## the update against its floor (network arithmetic alone), jax's default precision"
  "$python" benchmarks/update_throughput.py --settings "${floors[@]}" --floor "${sizes[@]}"
  echo "## evaluation: episodes one after another and in lockstep"
  "$python" benchmarks/evaluation.py --rounds "$rounds"
  echo "## matmul precision and learning: the default run, seed 0, fp32 vs tf32"
  for precision in float32 tensorfloat32; do
    "$python" -m calql.cli train --matmul-precision "$precision" --run-dir "$runs" --run-name "$precision" \
      --no-tensorboard "${run[@]}" > "$runs/$precision.txt" 2>&1
    "$python" -c "import json, sys; s = json.load(open(sys.argv[1])); print(sys.argv[2], 'pre-trained', \
s['offline']['normalized_score'], 'final', s['final']['normalized_score'], 'regret', round(s['regret'], 4), \
'wall', round(s['wall_time']), 's', {k: round(v) for k, v in s['timers'].items()})" "$runs/$precision/summary.json" "$precision"
  done
  echo "## pixel tasks: vision preset's encoder + Cal-QL update at batch 256, replay memory, renderer"
  "$python" benchmarks/pixel_update.py "${pixels[@]}"
} 2>&1 | tee "$out"
rm -rf "$runs"
