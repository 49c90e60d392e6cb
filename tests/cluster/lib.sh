# Sourced by the cluster tests: a free base port for scripts/cluster.sh.

port_free() { ! (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# free_base_port SHARDS: a random base port whose ports (HTTP, TCP, interserver of each
# shard: P + 10 i + 0..2) are all free; prints it, or nothing after 50 tries.
free_base_port() {
  local shards=${1:-2} p ok port i
  for _ in $(seq 50); do
    p=$((20000 + (RANDOM * 32768 + RANDOM) % 4000 * 10))
    ok=1
    for i in $(seq 0 $((shards - 1))); do
      for port in $((p + 10 * i)) $((p + 10 * i + 1)) $((p + 10 * i + 2)); do
        port_free "$port" || { ok=0; break 2; }
      done
    done
    [ $ok = 1 ] && { echo "$p"; return; }
  done
}
