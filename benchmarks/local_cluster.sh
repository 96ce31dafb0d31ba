#!/usr/bin/env bash
# The cluster path of `calql sweep` on one machine: a Ray head node and WORKERS worker nodes started
# with `ray start` (each node offering one CPU), a tiny sweep (Cal-QL and CQL, 2 seeds, a few hundred
# steps) joined with `--address`, its trials written to one shared folder, then which node ran each
# trial (the first line of each trial's log) and the sweep's wall time.
#
#   bash benchmarks/local_cluster.sh [WORKERS] [OUT]        # default 1 worker node, OUT=/tmp/calql-cluster-sweep
#
# Needs the `sweep` extra (Ray). The nodes keep their files under a private temporary folder and are
# stopped by their process IDs when the script ends (not with `ray stop`, which would also stop any
# other Ray on the machine, such as another sweep's). A cluster started with `ray start` uses Ray's
# token authentication (its token in ~/.ray/auth_token); processes that join it, the worker nodes and
# calql sweep's driver, need RAY_AUTH_MODE=token, as set here.
set -euo pipefail
cd "$(dirname "$0")/.."
workers="${1:-1}"
out="${2:-/tmp/calql-cluster-sweep}"
python="${PYTHON:-.venv/bin/python}"
ray_cli="$(dirname "$python")/ray"
port="${CALQL_CLUSTER_PORT:-6391}"
temp="$(mktemp -d /tmp/calql-cluster.XXXXXX)"
export RAY_AUTH_MODE=token RAY_USAGE_STATS_ENABLED=0 HF_HUB_OFFLINE=1

stop_cluster() {
  # Every process of this cluster names its session folder or its port on its command line.
  pkill -f -- "$temp" 2>/dev/null || true
  pkill -f -- ":$port" 2>/dev/null || true
  sleep 3
  pkill -9 -f -- "$temp" 2>/dev/null || true
  pkill -9 -f -- ":$port" 2>/dev/null || true
  rm -rf "$temp"
}
trap stop_cluster EXIT

"$ray_cli" start --head --port "$port" --num-cpus 1 --temp-dir "$temp" --include-dashboard false \
  --disable-usage-stats > "$temp/head.log" 2>&1
address="$(grep -o "ray start --address='[^']*'" "$temp/head.log" | head -1 | cut -d"'" -f2)"
for _ in $(seq "$workers"); do
  "$ray_cli" start --address "$address" --num-cpus 1 --disable-usage-stats > "$temp/worker.log" 2>&1
done
echo "cluster at $address: $((workers + 1)) nodes, 1 CPU each"

spec="$temp/tiny.toml"
cat > "$spec" <<'TOML'
tasks = ["pointmaze-umaze-narrow"]
methods = ["calql", "cql"]
seeds = [0, 1]
[options]
offline-steps = 200
online-steps = 300
eval-every = 300
start-evals = 0
eval-episodes = 2
tensorboard = false
TOML
start=$(date +%s)
"$(dirname "$python")/calql" sweep "$spec" --address "$address" --out "$out"
echo "sweep of 4 trials on the cluster: $(( $(date +%s) - start )) s"
for log in "$out"/trials/*.log; do
  echo "$(basename "$log" .log): $(head -1 "$log")"
done
