#!/usr/bin/env bash
# Accuracy where the classic model is the right one (issue 16): `sibyl generate --regime
# bgnbd` simulates users who follow a known BG/NBD process (docs/SIMULATOR.md, "The bgnbd
# regime"), with each user's TRUE probability of a purchase in the 30 days after the
# cutoff. sibyl is run as a user would (ingest, predict create, train --as-of T, score
# --as-of T, cohort export) for "Purchase within 30 days", cohort: purchased before T.
# On the same users (all of the cohort; sibyl learned at T - 30 d, so none of them is in
# its training labels) it reports the AUC of:
#   truth           the latent state's probability (alive ? 1 - exp(-lambda H) : 0): the ceiling
#   BG/NBD (true)   P(alive) x (1 - ((alpha+T)/(alpha+T+t))^(r+x)) with the simulator's
#                   parameters: the posterior expectation of the truth given the purchase
#                   history, i.e. the best any model of the visible data can do
#   BG/NBD (fit)    the same with parameters fitted (maximum likelihood) on every
#                   purchaser's (x, t_x, T) at T
#   sibyl           the exported scores
# and the gaps (with a paired bootstrap 95% interval of truth - sibyl). Labels and
# (x, t_x, T) come from the generated NDJSON, never from sibyl. Then, unless NO_HELD_OUT=1,
# bench/accuracy_bench's in-time protocol (train at T with labels in [T, T+30), measure on
# held-out users) for the same prediction.
#
# With COHORT_DAYS=N the cohort is "purchased in the N days before T" (as churn questions
# ask it) instead of "purchased before T": every figure is on those users, and "BG/NBD
# (fitted)" stays fitted on every purchaser, as a data scientist fits it (a cohort chosen
# on recent activity holds only customers who have not dropped out; docs/FEATURES.md).
#
# With SEASONALITY=A[,peak] the purchase rate follows the seasons (docs/SIMULATOR.md) and
# sibyl is also trained with --no-seasonal-shift, so the two calibrations can be compared
# (ECE, log loss, mean score against the base rate); use DAYS/CUTOFF to give it more than a
# year of history.
#
#   bench/bgnbd_accuracy.sh [USERS] [WORKDIR]          (defaults: 20000, out/bgnbd_accuracy)
#   SIBYL_BUILD=build-sim SEED=2 bench/bgnbd_accuracy.sh 50000
#   SEASONALITY=0.6 START=2023-01-01 DAYS=1095 CUTOFF=2025-11-01 NO_HELD_OUT=1 bench/bgnbd_accuracy.sh 20000
#   COHORT_DAYS=60 NO_HELD_OUT=1 bench/bgnbd_accuracy.sh 20000
#
# Env: SIBYL_BUILD (default build: $SIBYL_BUILD/sibyl and $SIBYL_BUILD/bench/accuracy_bench),
# SEED (1), BGNBD (r,alpha,a,b; the generator's default), SEASONALITY (none), COHORT_DAYS (none), DAYS (365),
# CUTOFF (2024-12-01), START (2024-01-01, the span's first day), PYTHON (a python3 with numpy and scipy;
# default /usr/bin/python3), SIBYL_TRAIN_ARGS (extra `train` flags for experiments, e.g. "--stack 3").
set -euo pipefail
cd "$(dirname "$0")/.."
users=${1:-20000}
work=${2:-out/bgnbd_accuracy}
build=${SIBYL_BUILD:-build}
seed=${SEED:-1}
python=${PYTHON:-/usr/bin/python3}
days=${DAYS:-365}
cutoff=${CUTOFF:-2024-12-01}   # default: 335 days from 2024-01-01, T + 30 days is the end of the span
seasonality=${SEASONALITY:-}
cohort_days=${COHORT_DAYS:-0}
case "$cohort_days" in ''|*[!0-9]*) echo "bgnbd_accuracy.sh: COHORT_DAYS wants a whole number of days, got \"$cohort_days\"" >&2; exit 2 ;; esac
start_day=${START:-2024-01-01}
horizon=30
sibyl=$build/sibyl
[ -x "$sibyl" ] || { echo "bgnbd_accuracy.sh: no sibyl binary at $sibyl (set SIBYL_BUILD=...)" >&2; exit 2; }
"$python" -c 'import numpy, scipy' 2>/dev/null ||
  { echo "bgnbd_accuracy.sh: $python lacks numpy/scipy (apt-get install python3-numpy python3-scipy)" >&2; exit 2; }
rm -rf "$work"
mkdir -p "$work"
start=$(date +%s)

echo "== generate $users BG/NBD users over $days days (seed $seed, truth at $cutoff)"
"$sibyl" --quiet --json generate --regime bgnbd ${BGNBD:+--bgnbd "$BGNBD"} ${seasonality:+--seasonality "$seasonality"} --users "$users" --days "$days" --start "$start_day" \
  --seed "$seed" --out "$work/events.ndjson" --cutoff "$cutoff" --truth-horizons 7,$horizon \
  --truth "$work/truth.csv" > "$work/generate.json"
cat "$work/generate.json"

echo "== ingest"
"$sibyl" --quiet --data "$work/data" ingest "$work/events.ndjson"

echo "== sibyl: predict create, train --as-of $cutoff (learns at T - $horizon d), score, export"
within=""
[ "$cohort_days" -gt 0 ] && within=", \"within_days\": $cohort_days"
cat > "$work/purchase_30d.json" <<JSON
{"name": "purchase_30d", "kind": "propensity", "outcome": {"event": "Purchase"},
 "horizon_days": $horizon, "cohort": {"performed": {"event": "Purchase"$within}}}
JSON
run() { echo "  \$ sibyl $*"; "$sibyl" --quiet --data "$work/data" "$@" > "$work/$1.out"; }
t0=$(date +%s.%N)
run predict create --file "$work/purchase_30d.json"
run train purchase_30d --as-of "$cutoff" --seed "$seed" --threads 1 ${SIBYL_TRAIN_ARGS:-}
t1=$(date +%s.%N)
run score purchase_30d --as-of "$cutoff"
run cohort purchase_30d --format csv --out "$work/sibyl_scores.csv"
"$sibyl" --quiet --data "$work/data" predict show purchase_30d > "$work/show.out"
grep -h "version" "$work/train.out" | head -3 | sed 's/^/  /'
awk -v a="$t0" -v b="$t1" 'BEGIN { printf "  predict create + train %.1f s\n", b - a }'
grep -h "seasonal" "$work/show.out" 2>/dev/null | sed 's/^/  /' || true
if [ -n "$seasonality" ] || [ "${COMPARE_SHIFT:-0}" = 1 ]; then
  sed 's/"purchase_30d"/"purchase_30d_noshift"/' "$work/purchase_30d.json" > "$work/purchase_30d_noshift.json"
  run predict create --file "$work/purchase_30d_noshift.json"
  run train purchase_30d_noshift --as-of "$cutoff" --seed "$seed" --threads 1 --no-seasonal-shift
  run score purchase_30d_noshift --as-of "$cutoff"
  run cohort purchase_30d_noshift --format csv --out "$work/sibyl_noshift_scores.csv"
fi

echo "== evaluate (labels and BG/NBD from the NDJSON)"
"$python" - "$work" "$cutoff" "$horizon" "$work/generate.json" "$cohort_days" <<'PY'
import csv, json, sys
from datetime import datetime, timezone
import numpy as np
sys.path.insert(0, "bench")  # the script runs from the repository's root
from real_accuracy_models import bgnbd_p_buy, fit_bgnbd, roc_auc as auc  # BG/NBD as the real-data benchmark fits it

work, cutoff, H, gen = sys.argv[1], sys.argv[2], int(sys.argv[3]), json.load(open(sys.argv[4]))
cohort_days = int(sys.argv[5])
DAY = 86400000
T_ms = int(datetime.fromisoformat(cutoff).replace(tzinfo=timezone.utc).timestamp() * 1000)
true_params = dict(r=gen["bgnbd"]["r"], alpha=gen["bgnbd"]["alpha_days"], a=gen["bgnbd"]["a"], b=gen["bgnbd"]["b"])

# Purchase times per user from the raw events.
first, last, count, future = {}, {}, {}, set()
with open(f"{work}/events.ndjson") as f:
    for line in f:
        if '"event_type":"Purchase"' not in line:
            continue
        e = json.loads(line)
        u, t = e["user_id"], e["time"]
        if t < T_ms:
            first[u] = min(first.get(u, t), t)
            last[u] = max(last.get(u, t), t)
            count[u] = count.get(u, 0) + 1
        elif t < T_ms + H * DAY:
            future.add(u)
truth = {}
with open(f"{work}/truth.csv") as f:
    for row in csv.DictReader(f):
        truth[row["user_id"]] = float(row[f"purchase_{H}d"])
def read_scores(path):
    out = {}
    with open(path) as f:
        for row in csv.DictReader(f):
            out[row["user_id"]] = float(row["score"])
    return out
import os
sibyl = read_scores(f"{work}/sibyl_scores.csv")
noshift = read_scores(f"{work}/sibyl_noshift_scores.csv") if os.path.exists(f"{work}/sibyl_noshift_scores.csv") else None

buyers = sorted(first)  # every purchaser before T: BG/NBD (fitted) learns from them
assert set(buyers) == set(truth), "truth rows differ from the purchased-before-T users"
# The cohort: purchased before T, or in the COHORT_DAYS before it.
users = [u for u in buyers if not cohort_days or last[u] >= T_ms - cohort_days * DAY]
in_cohort = set(users)
missing = [u for u in users if u not in sibyl]
extra = [u for u in sibyl if u not in in_cohort]
print(f"  cohort {len(users)} users{f' (purchased in the {cohort_days} days before T)' if cohort_days else ''}; "
      f"sibyl exported {len(sibyl)} ({len(missing)} of the cohort missing, {len(extra)} extra)")
users = [u for u in users if u in sibyl]
def summary(us):
    """BG/NBD's (x, t_x, T) in days for the users `us`."""
    return (np.array([count[u] - 1 for u in us], float), np.array([(last[u] - first[u]) / DAY for u in us]),
            np.array([(T_ms - first[u]) / DAY for u in us]))
x, tx, T = summary(users)
y = np.array([u in future for u in users], float)
s_truth = np.array([truth[u] for u in users])
s_sibyl = np.array([sibyl[u] for u in users])

fitted = fit_bgnbd(*summary(buyers))
s_true_bg = bgnbd_p_buy(true_params, x, tx, T, H)
s_fit_bg = bgnbd_p_buy(fitted, x, tx, T, H)
print("  BG/NBD parameters (days): true r %.4f alpha %.2f a %.4f b %.4f | fitted r %.4f alpha %.2f a %.4f b %.4f"
      % (true_params["r"], true_params["alpha"], true_params["a"], true_params["b"],
         fitted["r"], fitted["alpha"], fitted["a"], fitted["b"]))
scores = {"truth": s_truth, "BG/NBD (true params)": s_true_bg, "BG/NBD (fitted)": s_fit_bg, "sibyl": s_sibyl}
if noshift is not None:
    scores["sibyl --no-seasonal-shift"] = np.array([noshift.get(u, np.nan) for u in users])

def ece(y, s, bins=10):
    idx = np.minimum((s * bins).astype(int), bins - 1)
    return sum(abs(y[idx == b].mean() - s[idx == b].mean()) * (idx == b).sum() for b in range(bins) if (idx == b).any()) / len(y)
aucs = {k: auc(y, v) for k, v in scores.items()}
print(f"  {len(users)} users, base rate {y.mean():.4f} (mean truth {s_truth.mean():.4f}, mean sibyl {s_sibyl.mean():.4f})")
for k, v in scores.items():
    ll_ = -np.mean(y * np.log(np.clip(v, 1e-6, 1)) + (1 - y) * np.log(np.clip(1 - v, 1e-6, 1)))
    print(f"  AUC {k:26s} {aucs[k]:.4f}   log loss {ll_:.4f}   ECE {ece(y, v):.4f}   mean score {v.mean():.4f}")
rng = np.random.default_rng(16)
boot = {"truth": [], "BG/NBD (true params)": []}
for _ in range(300):
    i = rng.integers(0, len(y), len(y))
    a_s = auc(y[i], s_sibyl[i])
    boot["truth"].append(auc(y[i], s_truth[i]) - a_s)
    boot["BG/NBD (true params)"].append(auc(y[i], s_true_bg[i]) - a_s)
for k, b in boot.items():
    lo, hi = np.percentile(b, [2.5, 97.5])
    print(f"  gap {k} - sibyl: {aucs[k] - aucs['sibyl']:+.4f} (95% paired bootstrap {lo:+.4f} .. {hi:+.4f})")
gt, gb = aucs["truth"] - aucs["sibyl"], aucs["BG/NBD (true params)"] - aucs["sibyl"]
print(f"  issue 16 target, sibyl within 0.01 AUC of the truth: {'met' if gt <= 0.01 else 'NOT met'} ({gt:+.4f}); "
      f"even BG/NBD with the true parameters, the best model of the visible data, is "
      f"{aucs['truth'] - aucs['BG/NBD (true params)']:.4f} below the truth")
print(f"  sibyl within 0.01 AUC of BG/NBD with the true parameters: {'met' if gb <= 0.01 else 'NOT met'} ({gb:+.4f})")
json.dump(dict(users=len(users), base_rate=float(y.mean()), auc={k: float(v) for k, v in aucs.items()},
               fitted={k: float(v) for k, v in fitted.items()}, true=true_params), open(f"{work}/result.json", "w"), indent=1)
PY

if [ "${NO_HELD_OUT:-0}" != 1 ] && [ -x "$build/bench/accuracy_bench" ]; then
  echo "== accuracy_bench: train at T = $cutoff (labels in [T, T+$horizon d)), measure on held-out users"
  "$build/bench/accuracy_bench" --data "$work/data" --cutoff "$cutoff" --seed "$seed" \
    --truth "$work/truth.csv" --truth-columns purchase_${horizon}d --prediction "$work/purchase_30d.json"
fi
rm -f "$work/events.ndjson"
echo "bgnbd_accuracy.sh: done in $(( $(date +%s) - start )) s"
