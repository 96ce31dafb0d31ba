#!/usr/bin/env bash
# Cal-QL (Monte-Carlo reference), Cal-QL (learned reference) and CQL on pointmaze-medium,
# 3 seeds each, same generated dataset and pre-training budget; then the report
# (figures, results.csv with the fine-tuning dip and regret) into docs/results/pointmaze-medium.
#
#   bash experiments/pointmaze_medium.sh [OUT]        # ~1 h on 2 CPU cores
#
# Sized for 2 cores: 2x64 networks (the built-in preset), 30k offline gradient steps and 20k
# online environment steps (about 33 episodes of at most 600 steps), evaluation every 2k steps
# (so the first 10% of fine-tuning has one evaluation), 10 episodes each. Two runs at a time,
# one core each: the small networks use two cores poorly (benchmarks/update_throughput.py).
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${1:-docs/results/pointmaze-medium}
CALQL=${CALQL:-.venv/bin/calql}
COMMON=(--task pointmaze-medium --dataset-size 200000 --offline-steps 30000 --online-steps 20000 --eval-every 2000
        --offline-eval-every 5000 --eval-episodes 10 --reference-steps 20000 --checkpoint-every 10000
        --keep-checkpoints 1 --no-tensorboard --run-dir "$OUT/runs")
declare -A METHODS=([calql]="--algo calql" [calql-learned]="--algo calql --reference learned" [cql]="--algo cql")

mkdir -p "$OUT"
"$CALQL" datasets generate pointmaze-medium --size 200000  # once, before the parallel runs share it
stream() {  # stream CORE: every other (seed, method) run, one after another, on one core
    local core=$1 index=0
    for seed in 0 1 2; do
        for method in calql calql-learned cql; do
            if (( index++ % 2 == core )); then
                # shellcheck disable=SC2086
                taskset -c "$core" "$CALQL" train "${COMMON[@]}" ${METHODS[$method]} --seed "$seed" \
                    --run-name "$method-s$seed"
            fi
        done
    done
}
stream 0 > "$OUT/stream0.log" 2>&1 &
stream 1 > "$OUT/stream1.log" 2>&1 &
wait
"$CALQL" plot "$OUT/runs" --out "$OUT"
