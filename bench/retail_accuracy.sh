#!/usr/bin/env bash
# Accuracy on real data (issue 4, "Accuracy"): the UCI Online Retail II transactions
# (../shared/data/online_retail_ii, one event per invoice line), ingested with
# examples/online_retail_mapping.json. Trains, as of the last invoice,
#   - "buys again within 30 days" (customers who bought before T), and
#   - "churn: no purchase in 90 days" (customers who bought in the 90 days before T),
# and compares sibyl's held-out AUC with the recency-frequency baseline on the same users.
#
#   bench/retail_accuracy.sh [CSV] [WORKDIR]
#   SIBYL_BUILD=build-pipeline bench/retail_accuracy.sh
set -euo pipefail
cd "$(dirname "$0")/.."
csv=${1:-../shared/data/online_retail_ii/online_retail_ii_2009_2010.csv.gz}
work=${2:-out/retail_accuracy}
build=${SIBYL_BUILD:-build}
rm -rf "$work"
mkdir -p "$work"
echo "== ingest $csv"
"$build/sibyl" --quiet --data "$work/data" ingest --mapping examples/online_retail_mapping.json "$csv"
echo "== train and measure (as of the last invoice)"
"$build/bench/accuracy_bench" --data "$work/data" ${SIBYL_BENCH_ARGS:-} \
  --prediction '{"name": "buys_again_30d", "kind": "propensity", "outcome": {"event": "Product Purchased"},
                 "horizon_days": 30, "cohort": {"performed": {"event": "Product Purchased"}}}' \
  --prediction '{"name": "churn_90d", "kind": "churn", "outcome": {"event": "Product Purchased"},
                 "horizon_days": 90,
                 "cohort": {"performed": {"event": "Product Purchased", "within_days": 90}}}'
