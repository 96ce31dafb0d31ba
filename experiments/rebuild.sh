#!/usr/bin/env bash
# Rebuild every report and table behind docs/results.md from the committed raw metrics
# (each trial's config.json, metrics.jsonl and summary.json under docs/results/<experiment>/trials):
# the sweep report (report/: figures, report.md, CSV) and the summary tables (summary.md).
#
#   bash experiments/rebuild.sh            # uses .venv/bin/python; PYTHON=... to choose another
set -euo pipefail
cd "$(dirname "$0")/.."
python="${PYTHON:-.venv/bin/python}"
for folder in docs/results/*/; do
  folder="${folder%/}"
  [ -d "$folder/trials" ] || continue
  "$python" -m calql.cli sweep --report "$folder"
  "$python" experiments/summarize.py "$folder/trials" > "$folder/summary.md"
  echo "rebuilt $folder/report and $folder/summary.md"
done
