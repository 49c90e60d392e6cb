# Sourced by the cluster tests: a free base port for scripts/cluster.sh.

port_free() { ! (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# free_base_port SHARDS: a random base port whose ports (HTTP, TCP, interserver of each
# shard: P + 10 i + 0..2) are all free; prints it, or nothing after 50 tries. Below 32768:
# Linux hands out ports from 32768 up to outgoing connections, so a port free when checked
# there may be taken by another test's client before the server binds it.
free_base_port() {
  local shards=${1:-2} p ok port i
  for _ in $(seq 50); do
    p=$((20000 + (RANDOM * 32768 + RANDOM) % 1200 * 10))
    ok=1
    for i in $(seq 0 $((shards - 1))); do
      for port in $((p + 10 * i)) $((p + 10 * i + 1)) $((p + 10 * i + 2)); do
        port_free "$port" || { ok=0; break 2; }
      done
    done
    [ $ok = 1 ] && { echo "$p"; return; }
  done
}

# start_cluster SCRIPT DIR SHARDS: starts a cluster on a free base port, trying another
# port if a server could not bind its own (another process took it in between); sets
# $base.
start_cluster() {
  local script=$1 dir=$2 shards=$3
  for _ in 1 2 3; do
    base=$(free_base_port "$shards")
    [ -n "$base" ] || return 1
    "$script" start "$shards" --dir "$dir" --base-port "$base" >/dev/null && return 0
    "$script" stop --dir "$dir" --wipe >/dev/null 2>&1 || true
  done
  return 1
}
