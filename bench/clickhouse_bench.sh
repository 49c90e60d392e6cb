#!/usr/bin/env bash
# The ClickHouse backend against the embedded store on the same generated events, in one
# run (the machine is noisy: compare ratios): a 1-shard and a 2-shard cluster on loopback
# (scripts/cluster.sh), each step timed with its peak memory.
#   bench/clickhouse_bench.sh [USERS] [DAYS]   (default 30000 users x 90 days: ~2.8M events;
#                                               540000 x 90 is ~50M)
# Steps: ingest; the full pull behind every whole-store verb (features at T); training
# (--threads 1); a full scoring run (on a cluster: shard by shard, then with --workers 2);
# one scoring run per shard (--shard i/2), one after the other and both at once. Reports seconds, events/s, rows and MB pulled, peak RSS of sibyl
# (GNU time) and of each server (VmHWM), rows per shard, and JSON in OUT/results.json.
# On 2 cores the shards compete for the same cores: the per-shard rows and pull times are
# what projects the time on N machines.
# Env: SIDES (default "embedded 1-shard 2-shard"), TRAIN_SAMPLE (train --sample percent,
# default 100), FEATURES=0 (skip the whole-store features step), MAX_MEMORY (the servers' max_memory_usage for sibyl's queries, written to
# the data directories' clickhouse.json; 18.16's 4 GB default cannot sort a 49M-row pull).
# The 49M-event run in docs/BENCHMARKS.md (one run, both cluster sizes, default limits):
#   TRAIN_SAMPLE=10 bench/clickhouse_bench.sh 540000 90
set -euo pipefail
cd "$(dirname "$0")/.."
users=${1:-30000}
days=${2:-90}
sibyl=$(realpath "${SIBYL:-build/sibyl}")
work=$(realpath -m "${BENCH_DIR:-out/clickhouse-bench}")
mkdir -p "$work"
input="$work/events-$users-$days.ndjson"
[ -f "$input" ] || "$sibyl" --quiet generate --users "$users" --days "$days" --seed 7 --out "$input"
events=$(wc -l < "$input")
as_of=$(python3 -c "import datetime; print((datetime.date(2024,1,1)+datetime.timedelta(days=$days-1)).isoformat())")
cat "$input" > /dev/null

cleanup() {
  scripts/cluster.sh stop --dir "$work/c1" --wipe >/dev/null 2>&1 || true
  scripts/cluster.sh stop --dir "$work/c2" --wipe >/dev/null 2>&1 || true
}
trap cleanup EXIT
cleanup
sides=${SIDES:-embedded 1-shard 2-shard}
has() { [[ " $sides " == *" $1 "* ]]; }
has 1-shard && scripts/cluster.sh start 1 --dir "$work/c1" --base-port 41123 >/dev/null
has 2-shard && scripts/cluster.sh start 2 --dir "$work/c2" --base-port 42123 >/dev/null
rm -rf "$work/emb" "$work/c1data" "$work/c2data"

results="$work/results.tsv"
: > "$results"
# step SIDE NAME COMMAND...: runs it under GNU time; records seconds, peak RSS and the
# pull line sibyl prints on stderr.
step() {
  local side=$1 name=$2
  shift 2
  /usr/bin/time -f "%e %M" -o "$work/time.txt" "$@" > "$work/out.txt" 2> "$work/err.txt" \
    || { cat "$work/err.txt" >&2; exit 1; }
  read -r secs rss < <(tail -1 "$work/time.txt")
  local pulled rows mb
  pulled=$(grep -m1 '^pulled' "$work/err.txt" || true)
  rows=$(echo "$pulled" | awk '{print $2}')
  mb=$(echo "$pulled" | sed -n 's/.*(\([0-9.]*\) MB).*/\1/p')
  printf '%s\t%s\t%s\t%s\t%s\t%s\n' "$side" "$name" "$secs" "$((rss / 1024))" "${rows:-0}" "${mb:-0}" >> "$results"
  printf '%-10s %-22s %8.2f s %7d MB peak  %s\n' "$side" "$name" "$secs" "$((rss / 1024))" "$pulled"
}

declare -A data=([embedded]="$work/emb" [1-shard]="$work/c1data" [2-shard]="$work/c2data")
declare -A flags=([embedded]="" [1-shard]="--clickhouse $work/c1/endpoints" [2-shard]="--clickhouse $work/c2/endpoints")
echo "$events events ($users users x $days days), as of $as_of"
for side in $sides; do
  # shellcheck disable=SC2086
  step "$side" ingest "$sibyl" --data "${data[$side]}" ${flags[$side]} ingest "$input"
  if [ -n "${MAX_MEMORY:-}" ] && [ "$side" != embedded ]; then
    python3 -c "
import json, sys
p = sys.argv[1] + '/clickhouse.json'; j = json.load(open(p))
j['settings'] = {'max_memory_usage': sys.argv[2]}; json.dump(j, open(p, 'w'))" "${data[$side]}" "$MAX_MEMORY"
  fi
done
sample=${TRAIN_SAMPLE:-100}
for side in $sides; do
  [ "${FEATURES:-1}" = 1 ] && \
    step "$side" "features (full pull)" "$sibyl" --data "${data[$side]}" features --as-of "$as_of" --out "$work/f.csv"
  "$sibyl" --quiet --data "${data[$side]}" predict create buy --kind propensity --event Purchase --horizon-days 14 --replace >/dev/null
  if [ "$side" = embedded ]; then
    step "$side" train "$sibyl" --data "${data[$side]}" train buy --threads 1 --as-of "$as_of"
  else
    step "$side" "train --sample $sample" "$sibyl" --data "${data[$side]}" train buy --threads 1 --as-of "$as_of" --sample "$sample"
  fi
  step "$side" "score (full)" "$sibyl" --data "${data[$side]}" score buy --as-of "$as_of"
done
has 2-shard || { echo "results: $results"; exit 0; }
for i in 1 2; do
  step 2-shard "score --shard $i/2" "$sibyl" --data "$work/c2data" score buy --as-of "$as_of" --shard $i/2
done
step 2-shard "score (full, 2 workers)" "$sibyl" --data "$work/c2data" score buy --as-of "$as_of" --workers 2
# Both shard runs at once: the wall time of a fan-out over 2 workers on this machine.
begin=$(date +%s.%N)
"$sibyl" --quiet --data "$work/c2data" score buy --as-of "$as_of" --shard 1/2 > /dev/null &
"$sibyl" --quiet --data "$work/c2data" score buy --as-of "$as_of" --shard 2/2 > /dev/null
wait
printf '2-shard\tscore 2 workers at once\t%s\t0\t0\t0\n' "$(echo "$(date +%s.%N) - $begin" | bc)" >> "$results"
echo "2-shard    score 2 workers at once  $(echo "$(date +%s.%N) - $begin" | bc) s"

for c in c1 c2; do
  [ -d "$work/$c" ] || continue
  for pidfile in "$work/$c"/shard*/server.pid; do
    shard=$(basename "$(dirname "$pidfile")")
    port=$(sed -n "$(( ${shard#shard} + 1 ))p" "$work/$c/endpoints" | sed 's/.*://')
    rows=$(curl -s --data-binary "SELECT count() FROM sibyl.events" "http://127.0.0.1:$port/")
    disk=$(du -sm "$work/$c/$shard/data" | cut -f1)
    hwm=$(awk '/VmHWM/ {print int($2/1024)}' "/proc/$(cat "$pidfile")/status")
    echo "$c $shard: $rows rows, $disk MB on disk, server peak RSS $hwm MB"
    printf '%s\t%s rows\t%s\t%s\t%s\t%s\n' "$c" "$shard" 0 "$hwm" "$rows" "$disk" >> "$results"
  done
done
python3 - "$results" "$events" > "$work/results.json" <<'PY'
import json, sys
rows = [l.rstrip('\n').split('\t') for l in open(sys.argv[1])]
print(json.dumps({"events": int(sys.argv[2]), "steps": [
    {"side": r[0], "step": r[1], "seconds": float(r[2]), "peak_rss_mb": int(r[3]), "rows": int(r[4]), "mb": float(r[5])}
    for r in rows]}, indent=1))
PY
echo "results: $work/results.json"
