#!/usr/bin/env bash
# The feature-count query side by side: sibyl, ClickHouse and pandas computing, per user,
# the 8 weekly counts of the 50 most frequent event types before one cutoff, from the same
# generated NDJSON on the same machine. Prints each time and the ratios of one run.
#   bench/features_peers.sh [USERS] [DAYS]        (defaults: 100000 users, 84 days)
# Needs a build (BUILD=build-qperf by default) with `features_bench`, and `sibyl` (SIBYL,
# default $BUILD/sibyl) for generate and ingest. WORK keeps the NDJSON and the store.
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

"$peers/clickhouse.sh" start >&2
ch=$("$peers/ch_features.sh" "$events" "$cutoff")
ch_s=$(echo "$ch" | awk '/features_s/ {print $2}')
pd=$(/usr/bin/python3 "$peers/pandas_features.py" "$events" "$cutoff")
pd_s=$(echo "$pd" | awk '/features_s/ {print $2}')

echo "events: $(echo "$ch" | awk '/^events/ {print $2}'), cutoff $cutoff"
echo "sibyl       ${sibyl_s} s"
echo "clickhouse  ${ch_s} s   ($(echo "scale=1; $ch_s / $sibyl_s" | bc)x sibyl)"
echo "pandas      ${pd_s} s   ($(echo "scale=1; $pd_s / $sibyl_s" | bc)x sibyl)"
echo "(work dir: $work; stop ClickHouse with $peers/clickhouse.sh stop)"
