#!/usr/bin/env bash
# Scoring speed: generates USERS users over DAYS days, trains purchase_7d, then times
#   1. the first full run (includes the one-off training-time drift reference),
#   2. a second full run (the daily run: cohort, features in blocks, model, write-back, drift),
#   3. an hourly run (--active-within 1h) and a 24h one,
# printing each run's stage times and peak RSS. Figures in docs/BENCHMARKS.md ("Scoring").
#   bench/score_bench.sh [USERS] [DAYS] [DIR]     (defaults: 100000 70 /tmp/sibyl-score-bench)
#   SIBYL=build-score/sibyl bench/score_bench.sh  (which binary; default build/sibyl)
#   SCORING_BENCH=build-qperf/bench/scoring_bench  also runs the in-process bench on the store
#   (full, hourly twice, real-time latency; CPU seconds per stage), e.g. on a 1M-user store:
#   build-qperf/bench/scoring_bench --data DIR --prediction NAME --requests 2000
set -euo pipefail
users=${1:-100000}
days=${2:-70}
dir=${3:-/tmp/sibyl-score-bench}
sibyl=${SIBYL:-build/sibyl}
if [[ ! -d "$dir/data" ]]; then
  mkdir -p "$dir"
  echo "== generate $users users over $days days and ingest"
  $sibyl --quiet generate --users "$users" --days "$days" --seed 42 --out "$dir/events.ndjson"
  $sibyl --quiet --data "$dir/data" ingest "$dir/events.ndjson"
  rm -f "$dir/events.ndjson"
  $sibyl --data "$dir/data" predict create purchase_7d --kind propensity --event Purchase \
    --horizon-days 7 --active-within-days 30
  $sibyl --quiet --data "$dir/data" train purchase_7d
fi
run() {
  echo "== sibyl score purchase_7d $*"
  /usr/bin/time -f "wall %e s, user %U s, sys %S s, peak RSS %M KB" \
    $sibyl --quiet --data "$dir/data" score purchase_7d "$@"
}
run
run
run --active-within 1h
run --active-within 24h
if [[ -n "${SCORING_BENCH:-}" ]]; then
  echo "== scoring_bench (in process)"
  "$SCORING_BENCH" --data "$dir/data" --prediction purchase_7d
fi
