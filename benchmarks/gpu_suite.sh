#!/usr/bin/env bash
# The benchmark suite on a CUDA GPU machine (no network there: jax with CUDA preinstalled).
# Writes every figure to one file, ${OUT:-.}/gpu_benchmarks.txt, in about 6 minutes on an H200
# (compilation is most of it: ~20-60 s per configuration).
#
#   bash benchmarks/gpu_suite.sh
#
# 1. updates/s of one agent and of 8 vmapped agents (aggregate), AntMaze / Adroit / default
#    configurations, full fp32 matmuls;
# 2. the AntMaze configuration under each matmul precision, with the final losses after the same
#    updates on the same batches (the precision's effect on the losses);
# 3. pixel tasks (benchmarks/pixel_update.py): updates/s at 64x64x3 and 32x32x3, batch 256.
set -euo pipefail
cd "$(dirname "$0")/.."
out="${OUT:-.}/gpu_benchmarks.txt"
export PYTHONPATH="$PWD/src${PYTHONPATH:+:$PYTHONPATH}"
python=${PYTHON:-python3}
{
  echo "# calql GPU benchmarks, $(date -u +%Y-%m-%dT%H:%MZ), commit $(git rev-parse --short HEAD 2>/dev/null || echo unknown)"
  nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader || true
  "$python" -c "import jax, flax, optax; print('jax', jax.__version__, 'flax', flax.__version__, 'optax', optax.__version__)"
  echo "## single agent vs 8 vmapped agents (fp32)"
  "$python" benchmarks/update_throughput.py --settings antmaze adroit pointmaze --seeds 1 8 --precisions float32 \
    --windows 3 --updates-per-call 100 --calls-per-window 10
  echo "## matmul precision (AntMaze configuration, one agent; bfloat16 and default matched tensorfloat32 on an H200)"
  "$python" benchmarks/update_throughput.py --settings antmaze --seeds 1 \
    --precisions tensorfloat32 bfloat16 --windows 3 --updates-per-call 100 --calls-per-window 10
  echo "## pixel tasks: vision preset's encoder + Cal-QL update at batch 256, replay memory, renderer"
  "$python" benchmarks/pixel_update.py --sizes 64 32 --windows 3 --updates-per-call 50
} 2>&1 | tee "$out"
