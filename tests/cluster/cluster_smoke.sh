#!/usr/bin/env bash
# Smoke test of scripts/cluster.sh: starts a 2-shard ClickHouse cluster in a temporary folder
# on a random free base port, creates on each shard a local MergeTree table and a
# Distributed(sibyl, ...) table over it, inserts rows into each shard's local table over
# HTTP, checks that the Distributed table on either shard counts both shards' rows, checks
# start's idempotence and status, and stops (and wipes) the cluster. Exits non-zero on any
# failure. Needs clickhouse-server (scripts/install_deps.sh) and curl.
set -euo pipefail
cluster="$(cd "$(dirname "$0")/../.." && pwd)/scripts/cluster.sh"
work=$(mktemp -d "${TMPDIR:-/tmp}/sibyl-cluster-smoke.XXXXXX")
dir=$work/cluster

fail() { echo "cluster_smoke: FAIL: $*" >&2; exit 1; }
cleanup() {
  "$cluster" stop --dir "$dir" --wipe >/dev/null 2>&1 || true
  rm -rf "$work"
}
trap cleanup EXIT

# shellcheck source=tests/cluster/lib.sh
. "$(dirname "$0")/lib.sh"
base=$(free_base_port 2)
[ -n "$base" ] || fail "no free base port found"

# q PORT SQL [DATA]: runs SQL on the shard at PORT over HTTP (DATA, if given, is the body of
# an INSERT whose SQL goes in the URL); prints the result, fails on anything but HTTP 200.
q() {
  local port=$1 sql=$2 out code
  if [ $# -ge 3 ]; then
    out=$(printf '%s' "$3" | curl -sS -w '\n%{http_code}' --data-binary @- \
      "http://127.0.0.1:$port/?query=${sql// /%20}") || fail "curl to port $port failed: $sql"
  else
    out=$(curl -sS -w '\n%{http_code}' --data-binary "$sql" "http://127.0.0.1:$port/") \
      || fail "curl to port $port failed: $sql"
  fi
  code=${out##*$'\n'}
  out=${out%$'\n'*}
  [ "$code" = 200 ] || fail "HTTP $code from port $port for: $sql: $out"
  printf '%s' "$out"
}
expect() { # expect WHAT GOT WANT
  [ "$2" = "$3" ] || fail "$1: got '$2', want '$3'"
  echo "ok: $1 = $3"
}

start_ms=$(date +%s%3N)
"$cluster" start 2 --dir "$dir" --base-port "$base" || fail "start failed"
echo "started 2 shards in $(( $(date +%s%3N) - start_ms )) ms"

expect "endpoints file" "$(cat "$dir/endpoints")" "http://127.0.0.1:$base
http://127.0.0.1:$((base + 10))"
mapfile -t ports < <(sed 's#^http://127.0.0.1:##' "$dir/endpoints")

out=$("$cluster" start 2 --dir "$dir") || fail "a second start exited non-zero"
[[ $out == *"already running"* ]] || fail "a second start did not say it was running: $out"
echo "ok: a second start is a no-op"

for port in "${ports[@]}"; do
  expect "max_threads on $port" "$(q "$port" "SELECT value FROM system.settings WHERE name = 'max_threads'")" 2
  tz=$(q "$port" "SELECT timezone()")
  [ "$tz" = UTC ] || [ "$tz" = Etc/UTC ] || fail "timezone on $port: got $tz, want UTC"
  q "$port" "CREATE DATABASE smoke"
  q "$port" "CREATE TABLE smoke.events_local (user_id String, time DateTime, n UInt32)
             ENGINE = MergeTree() PARTITION BY toYYYYMM(time) ORDER BY (user_id, time)"
  q "$port" "CREATE TABLE smoke.events AS smoke.events_local
             ENGINE = Distributed(sibyl, smoke, events_local, rand())"
done
q "${ports[0]}" "INSERT INTO smoke.events_local FORMAT TabSeparated" \
  $'user-1\t2024-01-01 00:00:00\t1\nuser-2\t2024-01-02 00:00:00\t2\nuser-3\t2024-02-01 00:00:00\t3\n'
q "${ports[1]}" "INSERT INTO smoke.events_local FORMAT TabSeparated" \
  $'user-4\t2024-01-01 00:00:00\t10\nuser-5\t2024-01-05 00:00:00\t20\n'

expect "local count on shard 0" "$(q "${ports[0]}" "SELECT count() FROM smoke.events_local")" 3
expect "local count on shard 1" "$(q "${ports[1]}" "SELECT count() FROM smoke.events_local")" 2
for s in 0 1; do
  expect "distributed count, sum from shard $s" \
    "$(q "${ports[$s]}" "SELECT count(), sum(n) FROM smoke.events")" $'5\t36'
done
expect "distributed group by from shard 0" \
  "$(q "${ports[0]}" "SELECT toYYYYMM(time) AS m, count() FROM smoke.events GROUP BY m ORDER BY m")" \
  $'202401\t4\n202402\t1'

"$cluster" status --dir "$dir" || fail "status said a shard is down"
"$cluster" stop --dir "$dir" --wipe || fail "stop failed"
if "$cluster" status --dir "$dir" >/dev/null; then fail "status after stop exited 0"; fi
for port in "${ports[@]}"; do port_free "$port" || fail "port $port still answers after stop"; done
[ ! -e "$dir" ] || fail "--wipe left $dir"
echo "cluster_smoke: all checks passed"
