#!/usr/bin/env bash
# Accuracy on generated data (issue 4, "Accuracy"): generate users with the simulator's
# true probabilities at a cutoff, ingest them, train "purchase within 7 days" and "churn
# within 14 days" at that cutoff, and compare on the same held-out users the AUC of
# (a) the truth, (b) a recency-frequency logistic regression, (c) sibyl; plus sibyl's ECE
# and the share of the gap closed, and the per-stage times of each whole training run.
#
#   bench/accuracy_bench.sh [USERS] [WORKDIR]     (defaults: 100000, out/accuracy)
#   SIBYL_BUILD=build-pipeline bench/accuracy_bench.sh 20000 /tmp/acc
set -euo pipefail
cd "$(dirname "$0")/.."
users=${1:-100000}
work=${2:-out/accuracy}
build=${SIBYL_BUILD:-build}
cutoff=2024-03-17   # 90 days from 2024-01-01: T + 14 days is the end of the span
rm -rf "$work"
mkdir -p "$work"
echo "== generate $users users (truth at $cutoff)"
"$build/sibyl" generate --users "$users" --days 90 --seed 1 --out "$work/events.ndjson" \
  --cutoff "$cutoff" --truth-horizons 7,14 --truth "$work/truth.csv"
echo "== ingest"
"$build/sibyl" --quiet --data "$work/data" ingest "$work/events.ndjson"
rm -f "$work/events.ndjson"
echo "== train at T_train = $cutoff and measure"
"$build/bench/accuracy_bench" --data "$work/data" --cutoff "$cutoff" \
  --truth "$work/truth.csv" --truth-columns purchase_7d,churn_14d ${SIBYL_BENCH_ARGS:-} \
  --prediction '{"name": "purchase_7d", "kind": "propensity", "outcome": {"event": "Purchase"},
                 "horizon_days": 7, "cohort": {"all": [{"active_within_days": 30}]}}' \
  --prediction '{"name": "churn_14d", "kind": "churn", "horizon_days": 14,
                 "cohort": {"all": [{"active_within_days": 30}]}}'
