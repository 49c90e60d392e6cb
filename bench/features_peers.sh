#!/usr/bin/env bash
# The feature-count query side by side: sibyl, ClickHouse and pandas computing, per user,
# the 8 weekly counts of the 50 most frequent event types before one cutoff, from the same
# generated NDJSON on the same machine. Prints each time and the ratios of one run.
#   bench/features_peers.sh [USERS] [DAYS]        (defaults: 100000 users, 84 days)
# Needs a build (BUILD=build-qperf by default) with `features_bench`, and `sibyl` (SIBYL,
# default $BUILD/sibyl) for generate and ingest. WORK keeps the NDJSON and the store.
# ClickHouse is loaded with clickhouse-client (streamed) and timed on the query of
# ../shared/peers/ch_features.sh, best of 3 like sibyl; pandas runs the shared script.
set -euo pipefail
users=${1:-100000}; days=${2:-84}
root=$(cd "$(dirname "$0")/.." && pwd)
build=${BUILD:-$root/build-qperf}
peers=${PEERS:-$root/../shared/peers}
work=${WORK:-$(mktemp -d /tmp/sibyl-peers-XXXXXX)}
sibyl=${SIBYL:-$build/sibyl}

start_ms=$(date -u -d 2024-01-01 +%s)000
cutoff=$((start_ms + (days - 7) * 86400000))
events=$work/events.ndjson

if ! python3 -c 'import pandas' 2>/dev/null; then
  echo "installing python3-pandas" >&2
  apt-get install -y python3-pandas >/dev/null
fi

[ -s "$events" ] || "$sibyl" generate --users "$users" --days "$days" --out "$events" >&2
[ -d "$work/data" ] || "$sibyl" --data "$work/data" --quiet ingest "$events" >&2

# The headline path: compressed rows (SparseFeatures); best of 3.
sibyl_s=$("$build/bench/features_bench" --data "$work/data" --as-of "$cutoff" --repeat 3 \
            --only "counts, every user (sparse)" | tee "$work/features_bench.txt" |
          awk '/top-50.*sparse/ {for (i = 1; i < NF; i++) if ($i == "best") print $(i + 1)}')

# ClickHouse: the table and the query of $peers/ch_features.sh, but loaded with
# clickhouse-client, which streams the file (that script's `curl --data-binary @FILE`
# holds the whole file in memory and fails on files of a gigabyte or more here).
"$peers/clickhouse.sh" start "$work/clickhouse" >&2
port=${CH_TCP_PORT:-19000}
ch() { clickhouse-client --port "$port" "$@"; }
ch --query "DROP TABLE IF EXISTS peer_events"
ch --query "CREATE TABLE peer_events (user_id String, event_type String, time UInt64) ENGINE=MergeTree ORDER BY (user_id, time)"
ch --input_format_skip_unknown_fields=1 --query "INSERT INTO peer_events FORMAT JSONEachRow" < "$events"
ch_events=$(ch --query "SELECT count() FROM peer_events")
week=604800000; lo=$((cutoff - 8 * week))
ch_query="SELECT count() FROM (SELECT user_id, event_type, intDiv($cutoff - 1 - time, $week) AS w, count() FROM peer_events
  WHERE time >= $lo AND time < $cutoff AND event_type IN
    (SELECT event_type FROM peer_events WHERE time >= $lo AND time < $cutoff GROUP BY event_type ORDER BY count() DESC LIMIT 50)
  GROUP BY user_id, event_type, w)"
# Best of 3, as for sibyl (the first run also warms ClickHouse's caches).
ch_s=
for _ in 1 2 3; do
  t0=$(date +%s.%N); ch_rows=$(ch --query "$ch_query"); t1=$(date +%s.%N)
  s=$(echo "$t1 - $t0" | bc)
  if [ -z "$ch_s" ] || [ "$(echo "$s < $ch_s" | bc)" = 1 ]; then ch_s=$s; fi
done
"$peers/clickhouse.sh" stop "$work/clickhouse" || true
pd=$(/usr/bin/python3 "$peers/pandas_features.py" "$events" "$cutoff")
pd_s=$(echo "$pd" | awk '/features_s/ {print $2}')

echo "events: sibyl $(awk '/^store:/ {print $2}' "$work/features_bench.txt"), clickhouse $ch_events, pandas $(echo "$pd" | awk '/^events/ {print $2}'); cutoff $cutoff"
echo "cells: clickhouse $ch_rows (user, type, week) groups; pandas $(echo "$pd" | awk '/^shape/ {print $2}')"
echo "sibyl       ${sibyl_s} s  (cpu $(awk '/top-50.*sparse/ {for (i = 1; i < NF; i++) if ($i == "(cpu") print $(i + 1)}' "$work/features_bench.txt") s)"
echo "clickhouse  ${ch_s} s   ($(echo "scale=1; $ch_s / $sibyl_s" | bc)x sibyl)"
echo "pandas      ${pd_s} s   ($(echo "scale=1; $pd_s / $sibyl_s" | bc)x sibyl)"
echo "(work dir: $work)"
