#!/usr/bin/env bash
# How long `invoke import` of the docs/examples vendor table (4 rows, FLOPs per item from the
# model facts with --assume config=full) takes beside `python -c "import torch"`, in the same
# run, ROUNDS times each (default 3). docs/report.md records a run and the machine's load.
#
#   scripts/import-speed.sh [ROUNDS]
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
ROUNDS=${1:-3}
OUT=$(mktemp -d)
trap 'rm -rf "$OUT"' EXIT
elapsed() { local t0 t1; t0=$(date +%s.%N); "$@" >/dev/null; t1=$(date +%s.%N)
            echo "$t1 - $t0" | bc; }
echo "load: $(cut -d' ' -f1-3 /proc/loadavg) on $(nproc) CPUs"
for i in $(seq "$ROUNDS"); do
  imp=$(elapsed "$PY" -m invoke import docs/examples/vendor-inference.csv \
        --title "Example Vendor inference performance" \
        --url https://example.com/ai-inference-performance --table-name "Inference, A100 40GB" \
        --publisher "Example Vendor" --role vendor --assume config=full --out "$OUT/$i")
  torch=$(elapsed "$PY" -c "import torch")
  printf 'round %s: invoke import %.2f s, import torch %.2f s, ratio %.2f\n' \
    "$i" "$imp" "$torch" "$(echo "$imp / $torch" | bc -l)"
done
