#!/usr/bin/env bash
# How long the commands that need no model take beside `python -c "import torch"`, in the same
# run, ROUNDS times each (default 3), interleaved: `invoke list` (its vendor detection imports
# torch in a child while the suites and workloads are read) and `invoke import` of the
# docs/examples vendor table (4 rows, FLOPs per item from the model facts with
# --assume config=full). Prints each round's ratios and their medians; docs/report.md and
# docs/vendors.md record runs with the machine's load.
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
median() { sort -g | awk '{a[NR]=$1} END {print (NR % 2) ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2}'; }
echo "load: $(cut -d' ' -f1-3 /proc/loadavg) on $(nproc) CPUs"
: >"$OUT/list" ; : >"$OUT/import"
for i in $(seq "$ROUNDS"); do
  torch=$(elapsed "$PY" -c "import torch")
  list=$(elapsed "$PY" -m invoke list)
  imp=$(elapsed "$PY" -m invoke import docs/examples/vendor-inference.csv \
        --title "Example Vendor inference performance" \
        --url https://example.com/ai-inference-performance --table-name "Inference, A100 40GB" \
        --publisher "Example Vendor" --role vendor --assume config=full --out "$OUT/$i")
  echo "$list / $torch" | bc -l >>"$OUT/list"
  echo "$imp / $torch" | bc -l >>"$OUT/import"
  printf 'round %s: import torch %.2f s, invoke list %.2f s (%.2fx), invoke import %.2f s (%.2fx)\n' \
    "$i" "$torch" "$list" "$(echo "$list / $torch" | bc -l)" "$imp" \
    "$(echo "$imp / $torch" | bc -l)"
done
printf 'median ratio to import torch: invoke list %.2fx, invoke import %.2fx\n' \
  "$(median <"$OUT/list")" "$(median <"$OUT/import")"
echo "load after: $(cut -d' ' -f1-3 /proc/loadavg)"
