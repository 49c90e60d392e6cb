#!/usr/bin/env bash
# Real-data accuracy (issue 16), by the protocol of ../shared/docs/EVALUATION.md.
#
# On the UCI Online Retail II transactions (../shared/data/online_retail_ii, ingested once
# with examples/online_retail_mapping.json: one `Product Purchased` event per invoice line,
# `Order Cancelled` for invoices starting with C, rows without Customer ID skipped), runs
# sibyl as a user would (predict create, train --as-of T, score --as-of T, `cohort NAME`
# export of every scored user) on these tasks (cutoffs are UTC midnights):
#   buy_30d      propensity, H = 30 d, cohort: bought before T, T = 2010-11-01 and 2010-10-01
#   buy_90d      propensity, H = 90 d, cohort: bought before T, T = 2010-09-01
#   churn_90d    churn (no purchase in H), H = 90 d, cohort: bought in the 90 d before T, T = 2010-09-01
#   churn_30d    churn, H = 30 d, cohort: bought in the 90 d before T, T = 2010-11-01 and 2010-10-01
#   revenue_90d  revenue (sum of quantity * price), H = 90 d, cohort: bought before T, T = 2010-09-01
#   big_line_30d propensity of an outcome with a property filter: a purchase line with
#                revenue >= 50 within 30 d, cohort: bought anything before T, T = 2010-11-01 and
#                2010-10-01 (the baselines' outcome history: the qualifying lines only)
#   filtered_sweep (not in the default run) the same at 2010-09-01 and 2010-08-01, and a bulk
#                line (quantity >= 24) within 30 d at 2010-11-01, 2010-10-01 and 2010-09-01
#   short_horizons (not in the default run) propensity and churn (cohort: bought in the 30 d before T)
#                within 7 and 14 d at T = 2010-11-01, 2010-10-01 and 2010-09-01 (with --cdnow:
#                cdnow_short_horizons, at 1997-10-01, 1998-01-01 and 1998-04-01)
#   two_months   (not in the default run) propensity and churn (cohort: bought in the 90 d
#                before T) within 60 d at T = 2010-10-01, 2010-09-01 and 2010-08-01
#   revenue_sweep (not in the default run) revenue within 90 d at 2010-07-01 and 2010-08-01,
#                within 30 d at 2010-09-01, 2010-10-01 and 2010-11-01 (with --cdnow:
#                cdnow_revenue_sweep, 90 d at 1997-10-01 and 1998-04-01, 30 d at 1997-11-01,
#                1998-03-01 and 1998-05-01)
#   revenue_wide (not in the default run) revenue within 30 d at eight more cutoffs, 2010-06-01 to
#                2010-10-15 (with --cdnow: cdnow_revenue_wide, seven cutoffs 1997-09-01 to 1998-06-01)
#   cdnow_late_sweep (with --cdnow only) purchase and churn within 30 d at 1998-04-01, 04-15,
#                05-15 and 06-01: with cdnow_buy_30d_1998_05_01 and cdnow_churn_30d_1998_05_01
#                the cutoffs where the year-ago seasonal shift applies (docs/ML.md)
# and prints sibyl beside two baselines fitted by bench/real_accuracy.py on the same users,
# with labels and cohorts computed from the raw CSV (never read back from sibyl; the baselines
# and metrics are in bench/real_accuracy_models.py):
# BG/NBD (x Gamma-Gamma for revenue) on purchase days, and RF-LR (logistic regression on
# recency/frequency features fitted at T - H). See docs/BENCHMARKS.md.
#
#   bench/real_accuracy.sh [--tasks buy_30d,churn_90d] [--seeds 1,2,3] [--json FILE]
#   bench/real_accuracy.sh --tasks buy_30d_sweep     (the 30-day task at 7 more cutoffs, July to October)
#   bench/real_accuracy.sh --tasks filtered_sweep    (5 more outcomes with a property filter)
#   bench/real_accuracy.sh --tasks two_months        (purchase and churn within 60 days, 3 cutoffs)
#   bench/real_accuracy.sh --customer-sample 0.2 --sample-seed 3   (a small shop: 20% of the customers)
#   bench/real_accuracy.sh --date-only   (purchase times truncated to the day, as in date-only logs)
#   bench/real_accuracy.sh --acquired 2010-01-01,2010-04-01   (an acquisition cohort, as CDNOW:
#                only the customers whose first purchase is in [FROM, TO))
#   bench/real_accuracy.sh --since 2010-06-01   (a short log: every row before the date dropped)
#   bench/real_accuracy.sh --cdnow CDNOW_sample.txt   (Fader & Hardie's CDNOW log, not shipped: its own
#                tasks, purchase/churn within 30 and 90 days and revenue at cutoffs in 1997-98)
#   SIBYL=/tmp/sibyl-bench WORK=out/real_accuracy bench/real_accuracy.sh
#
# Env: SIBYL (default build/sibyl), WORK (default out/real_accuracy; wiped first),
# PYTHON (default: the first of /usr/bin/python3, python3 that imports numpy and scipy;
# Debian: apt-get install python3-numpy python3-scipy, see scripts/install_deps.sh).
set -euo pipefail
caller_dir=$PWD
cd "$(dirname "$0")/.."

tasks="" seeds="1" json="" sample=()
while [ $# -gt 0 ]; do
  case "$1" in
    --tasks) tasks=$2; shift 2 ;;
    --tasks=*) tasks=${1#*=}; shift ;;
    --seeds) seeds=$2; shift 2 ;;
    --seeds=*) seeds=${1#*=}; shift ;;
    --json) json=$2; shift 2 ;;
    --json=*) json=${1#*=}; shift ;;
    --customer-sample|--sample-seed|--bootstrap|--acquired|--since) sample+=("$1" "$2"); shift 2 ;;
    --cdnow) f=$2; case "$f" in /*) ;; *) f=$caller_dir/$f ;; esac
      [ -f "$f" ] || { echo "real_accuracy.sh: --cdnow: no file $2" >&2; exit 2; }
      sample+=("$1" "$f"); shift 2 ;;
    --date-only) sample+=("$1"); shift ;;
    -h|--help) sed -n '2,51p' "$0"; exit 0 ;;
    *) echo "real_accuracy.sh: unknown argument \"$1\" (see --help)" >&2; exit 2 ;;
  esac
done

sibyl=${SIBYL:-build/sibyl}
work=${WORK:-out/real_accuracy}
data_root=../shared/data
csv=$data_root/online_retail_ii/online_retail_ii_2009_2010.csv.gz
mapping=examples/online_retail_mapping.json

[ -x "$sibyl" ] || { echo "real_accuracy.sh: no sibyl binary at $sibyl (set SIBYL=...)" >&2; exit 2; }
[ -f "$csv" ] || { echo "real_accuracy.sh: $csv not found" >&2; exit 2; }
if [ -z "${PYTHON:-}" ]; then
  for p in /usr/bin/python3 python3; do
    if command -v "$p" >/dev/null && "$p" -c 'import numpy, scipy' 2>/dev/null; then PYTHON=$p; break; fi
  done
fi
[ -n "${PYTHON:-}" ] || { echo "real_accuracy.sh: needs a python3 with numpy and scipy (apt-get install python3-numpy python3-scipy)" >&2; exit 2; }

# Other real data sets: only those with a mapping under examples/ and a task table can run.
for f in $(find "$data_root" -name '*.csv*' -o -name '*.parquet' -o -name '*.ndjson*' 2>/dev/null | sort); do
  [ "$f" = "$csv" ] || echo "note: $f has no mapping and tasks in this benchmark; skipped" >&2
done

# Absolute paths for json and sibyl, then a fresh work directory.
case "$sibyl" in /*) ;; *) sibyl=$PWD/$sibyl ;; esac
if [ -n "$json" ]; then case "$json" in /*) ;; *) json=$PWD/$json ;; esac; fi
rm -rf "$work"
mkdir -p "$work"

start=$(date +%s)
"$PYTHON" bench/real_accuracy.py --csv "$csv" --mapping "$mapping" --sibyl "$sibyl" --work "$work" \
  --tasks "$tasks" --seeds "$seeds" ${json:+--json "$json"} ${sample[@]+"${sample[@]}"}
echo "real_accuracy.sh: done in $(( $(date +%s) - start )) s (logs of every sibyl command under $work/logs)"
