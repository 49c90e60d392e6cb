#!/usr/bin/env bash
# Durable ingest throughput of `sibyl ingest` on generated NDJSON, beside ClickHouse's
# JSONEachRow ingest of the same file, measured in one run (the machine is noisy: compare
# the ratio, not absolute times).
#   bench/ingest_bench.sh [USERS] [DAYS]     (default 110000 users x 90 days: ~10M events)
#   SIBYL_SKIP_PEERS=1 to leave ClickHouse out.
# Prints: events, bytes/event of input, sibyl seconds and events/s, CPU seconds, peak RSS,
# bytes/event on disk; ClickHouse seconds and events/s; the ratio.
set -euo pipefail
cd "$(dirname "$0")/.."
for tool in bc time; do
  command -v "$tool" >/dev/null || [ -x /usr/bin/$tool ] || \
    { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq bc time >/dev/null; }
done
users=${1:-110000}
days=${2:-90}
sibyl=${SIBYL:-build/sibyl}
work=${BENCH_DIR:-out/ingest-bench}
mkdir -p "$work"
input="$work/events-$users-$days.ndjson"
if [ ! -f "$input" ]; then
  $sibyl --quiet generate --users "$users" --days "$days" --seed 7 --out "$input"
fi
events=$(wc -l < "$input")
bytes=$(stat -L -c %s "$input")
rm -rf "$work/data"
# Warm the page cache so both engines read the file from memory.
cat "$input" > /dev/null
/usr/bin/time -f "%e %U %S %M" -o "$work/time.txt" \
  $sibyl --quiet --data "$work/data" ingest "$input" > /dev/null
read -r wall user sys rss_kb < "$work/time.txt"
on_disk=$($sibyl --data "$work/data" --json stats | python3 -c 'import json,sys; s=json.load(sys.stdin); print(s["event_bytes_on_disk"], s["bytes_on_disk"])')
read -r event_bytes all_bytes <<< "$on_disk"
echo "events              $events"
echo "input bytes/event   $(echo "scale=1; $bytes / $events" | bc)"
echo "sibyl ingest s      $wall  (cpu $(echo "$user + $sys" | bc) s, peak RSS $((rss_kb / 1024)) MB)"
echo "sibyl events/s      $(echo "$events / $wall" | bc)"
echo "disk bytes/event    events $(echo "scale=2; $event_bytes / $events" | bc), everything $(echo "scale=2; $all_bytes / $events" | bc)"
if [ "${SIBYL_SKIP_PEERS:-0}" != 1 ]; then
  # The same table as ../shared/peers/ch_features.sh, loaded with clickhouse-client, which
  # streams the file (that script's `curl --data-binary @FILE` holds the whole file in
  # memory and fails on files of a gigabyte or more here).
  ../shared/peers/clickhouse.sh start "$work/clickhouse" >/dev/null
  port=${CH_TCP_PORT:-19000}
  ch() { clickhouse-client --port "$port" "$@"; }
  ch --query "DROP TABLE IF EXISTS peer_events"
  ch --query "CREATE TABLE peer_events (user_id String, event_type String, time UInt64) ENGINE=MergeTree ORDER BY (user_id, time)"
  t0=$(date +%s.%N)
  ch --input_format_skip_unknown_fields=1 --query "INSERT INTO peer_events FORMAT JSONEachRow" < "$input"
  t1=$(date +%s.%N)
  ch_rows=$(ch --query "SELECT count() FROM peer_events")
  ../shared/peers/clickhouse.sh stop "$work/clickhouse" || true
  ch_ingest=$(echo "$t1 - $t0" | bc)
  echo "clickhouse rows     $ch_rows"
  echo "clickhouse ingest s $ch_ingest"
  echo "clickhouse events/s $(echo "$events / $ch_ingest" | bc)"
  echo "ratio (sibyl events/s / clickhouse events/s) $(echo "scale=2; $ch_ingest / $wall" | bc)"
fi
