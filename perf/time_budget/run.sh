#!/bin/bash
# #28 measurements on IMDB (TEXTBENCH_DATA): the README's taste under --time-budget 5m, then a capped
# benchmark with and without --stop-when-converged; each in a fresh output folder, one after the
# other, wall time from start to exit. Usage: bash perf/time_budget/run.sh OUT
set -u
OUT=${1:-/tmp/tb28}
TASTE="--arch both --max-train-samples 2000 --max-eval-samples 500 --max-steps 400 --eval-steps 100 --final-seeds 2 --top-k 1"
SMALL="--arch both --max-train-samples 2000 --max-eval-samples 500 --max-steps 200 --eval-steps 50 --final-seeds 2 --top-k 1 --no-mlflow --workers 1"
run() {
  name=$1; shift
  rm -rf "$OUT/$name"; mkdir -p "$OUT"
  start=$(date +%s.%N)
  python benchmark.py "$@" --output-dir "$OUT/$name" --name imdb > "$OUT/$name.log" 2>&1
  rc=$?
  end=$(date +%s.%N)
  echo "$name rc=$rc wall_s=$(echo "$end - $start" | bc) args: $*" >> "$OUT/times.txt"
}
run budget5m $TASTE --trials 50 --time-budget 5m
run converged $SMALL --trials 12 --stop-when-converged --min-trials 6
run plain $SMALL --trials 12
run budget8m $TASTE --trials 50 --time-budget 8m
