#!/bin/bash
# #28 measurements: a capped IMDB benchmark plain, with --stop-when-converged, and the taste under
# --time-budget 5m; each in a fresh output folder, one after the other. Usage: bash perf/time_budget/run.sh OUT
set -u
OUT=${1:-/tmp/tb28}
COMMON="--arch both --max-train-samples 2000 --max-eval-samples 500 --max-steps 400 --eval-steps 100 --final-seeds 2 --top-k 1 --no-mlflow"
run() {
  name=$1; shift
  rm -rf "$OUT/$name"; mkdir -p "$OUT"
  start=$(date +%s.%N)
  python benchmark.py $COMMON --output-dir "$OUT/$name" --name imdb "$@" > "$OUT/$name.log" 2>&1
  rc=$?
  end=$(date +%s.%N)
  echo "$name rc=$rc wall_s=$(echo "$end - $start" | bc) args: $*" >> "$OUT/times.txt"
}
run plain --trials 12
run converged --trials 12 --stop-when-converged --min-trials 6
run budget5m --trials 50 --time-budget 5m
