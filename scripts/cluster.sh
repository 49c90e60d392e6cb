#!/usr/bin/env bash
# Starts and stops a local N-shard ClickHouse cluster on loopback for sibyl: N independent
# clickhouse-server processes (Debian's clickhouse-server 18.16; no ZooKeeper, no
# replication), each in its own folder with its own config, data, logs and ports.
#
#   scripts/cluster.sh start N [--dir DIR] [--base-port P] [--timeout S]
#   scripts/cluster.sh stop    [--dir DIR] [--wipe]
#   scripts/cluster.sh status  [--dir DIR]
#
# DIR defaults to ${SIBYL_CLUSTER_DIR:-$PWD/sibyl-cluster}. Ports: shard i listens on
# 127.0.0.1 only, HTTP P+10*i, native TCP P+10*i+1, interserver HTTP P+10*i+2 (P defaults
# to 18123). Layout:
#   DIR/cluster.env       shards=N and base_port=P (what stop and status read)
#   DIR/endpoints         one http://127.0.0.1:PORT per line, in shard order
#   DIR/shardI/           config.xml, users.xml, server.pid, server.log, server.err.log,
#                         stdout.log (anything printed before the logger starts),
#                         data/ tmp/ user_files/ format_schemas/
# Every config declares the cluster `sibyl` (N shards, one replica each, the TCP ports)
# for Distributed tables. Exit status: 0 success, 1 failure (status: a shard is not
# answering), 2 usage error. docs/SCALE_OUT.md has the details and the reasons.
set -euo pipefail

DEFAULT_BASE_PORT=18123
STOP_GRACE_SECONDS=20

die() { echo "cluster.sh: $*" >&2; exit 1; }
usage_error() { echo "cluster.sh: $*" >&2; echo "usage: $(usage_lines)" >&2; exit 2; }
usage_lines() {
  cat <<'EOF'
scripts/cluster.sh start N [--dir DIR] [--base-port P] [--timeout S]
       scripts/cluster.sh stop [--dir DIR] [--wipe]
       scripts/cluster.sh status [--dir DIR]
EOF
}

is_uint() { [[ $1 =~ ^[0-9]+$ ]]; }

# --- arguments ---------------------------------------------------------------------------
command=${1:-}
[ $# -gt 0 ] && shift
case "$command" in
  start|stop|status) ;;
  -h|--help|help) echo "usage: $(usage_lines)"; exit 0 ;;
  "") usage_error "missing command" ;;
  *) usage_error "unknown command: $command" ;;
esac
shards="" base_port="" wipe=0 timeout=60
dir=${SIBYL_CLUSTER_DIR:-$PWD/sibyl-cluster}
while [ $# -gt 0 ]; do
  arg=$1; shift
  value=""
  case "$arg" in
    --*=*) value=${arg#*=}; arg=${arg%%=*} ;;
    --dir|--base-port|--timeout)
      [ $# -gt 0 ] || usage_error "$arg needs a value"
      value=$1; shift ;;
  esac
  case "$command:$arg" in
    *:--dir) dir=$value ;;
    start:--base-port) base_port=$value ;;
    start:--timeout) timeout=$value ;;
    stop:--wipe) wipe=1 ;;
    start:--*|stop:--*|status:--*) usage_error "$command does not take $arg" ;;
    start:*) [ -z "$shards" ] || usage_error "unexpected argument: $arg"; shards=$arg ;;
    *) usage_error "unexpected argument: $arg" ;;
  esac
done
[ -n "$dir" ] || usage_error "--dir is empty"

# --- helpers -----------------------------------------------------------------------------
server_bin() {
  if [ -n "${SIBYL_CLICKHOUSE_SERVER:-}" ]; then echo "$SIBYL_CLICKHOUSE_SERVER"
  elif command -v clickhouse-server >/dev/null 2>&1; then command -v clickhouse-server
  else echo /usr/sbin/clickhouse-server; fi
}

http_port() { echo $((base_port + 10 * $1)); }
tcp_port() { echo $((base_port + 10 * $1 + 1)); }
interserver_port() { echo $((base_port + 10 * $1 + 2)); }
shard_dir() { echo "$dir/shard$1"; }

# The cluster's recorded shape: sets recorded_shards and recorded_base_port (empty if none).
read_cluster_env() {
  recorded_shards="" recorded_base_port=""
  [ -f "$dir/cluster.env" ] || return 0
  recorded_shards=$(sed -n 's/^shards=\([0-9][0-9]*\)$/\1/p' "$dir/cluster.env")
  recorded_base_port=$(sed -n 's/^base_port=\([0-9][0-9]*\)$/\1/p' "$dir/cluster.env")
}

# True if process $1 is the clickhouse-server running shard folder $2's config.
is_server_of() {
  local pid=$1 sd=$2 arg
  [ -r "/proc/$pid/cmdline" ] || return 1
  while IFS= read -r -d '' arg; do
    [ "$arg" = "--config-file=$sd/config.xml" ] && return 0
  done 2>/dev/null < "/proc/$pid/cmdline"
  return 1
}

# True if process $1 exists and is not a zombie (a server this script started and that
# died stays a zombie child until the script exits, and kill -0 succeeds on it).
alive() {
  local stat
  stat=$(cat "/proc/$1/stat" 2>/dev/null) || return 1
  stat=${stat##*) }
  [ "${stat%% *}" != Z ]
}

# The pid of shard $1's live server, or nothing: its pid file first, then a scan of /proc
# (a lost or stale pid file must not leave an orphan that stop cannot find).
server_pid() {
  local sd pid p
  sd=$(shard_dir "$1")
  if [ -f "$sd/server.pid" ]; then
    pid=$(cat "$sd/server.pid" 2>/dev/null || true)
    if is_uint "$pid" && is_server_of "$pid" "$sd"; then echo "$pid"; return; fi
  fi
  for p in /proc/[0-9]*; do
    pid=${p#/proc/}
    is_server_of "$pid" "$sd" && { echo "$pid"; return; }
  done
  return 0
}

pings() { [ "$(curl -s --max-time 2 "http://127.0.0.1:$1/ping" 2>/dev/null)" = "Ok." ]; }

# True if something accepts connections on 127.0.0.1:$1.
port_busy() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# (The backslashes: in bash 5.2 a bare & in a replacement stands for the matched text.)
xml_escape() { local s=${1//&/\&amp;}; s=${s//</\&lt;}; s=${s//>/\&gt;}; echo "$s"; }

# Sends SIGTERM to the given pids, waits up to STOP_GRACE_SECONDS, then SIGKILLs the rest.
terminate() {
  local pid deadline still
  [ $# -gt 0 ] || return 0
  kill -TERM "$@" 2>/dev/null || true
  deadline=$((${EPOCHREALTIME/./} + STOP_GRACE_SECONDS * 1000000))
  while :; do
    still=()
    for pid in "$@"; do alive "$pid" && still+=("$pid"); done
    [ ${#still[@]} -eq 0 ] && return 0
    [ "${EPOCHREALTIME/./}" -ge "$deadline" ] && break
    sleep 0.2
  done
  echo "cluster.sh: still running after ${STOP_GRACE_SECONDS} s, sending SIGKILL: ${still[*]}" >&2
  kill -KILL "${still[@]}" 2>/dev/null || true
  for _ in $(seq 50); do
    still=()
    for pid in "$@"; do alive "$pid" && still+=("$pid"); done
    [ ${#still[@]} -eq 0 ] && return 0
    sleep 0.1
  done
  die "could not kill: ${still[*]}"
}

write_configs() {
  local i=$1 n=$2 sd xsd s
  sd=$(shard_dir "$i")
  xsd=$(xml_escape "$sd")
  mkdir -p "$sd/data" "$sd/tmp" "$sd/user_files" "$sd/format_schemas"
  {
    cat <<EOF
<?xml version="1.0"?>
<!-- Shard $i of a local sibyl cluster: written by scripts/cluster.sh at every start, do not edit. -->
<yandex>
    <logger>
        <level>warning</level>
        <log>$xsd/server.log</log>
        <errorlog>$xsd/server.err.log</errorlog>
        <size>10M</size>
        <count>2</count>
    </logger>
    <listen_host>127.0.0.1</listen_host>
    <http_port>$(http_port "$i")</http_port>
    <tcp_port>$(tcp_port "$i")</tcp_port>
    <interserver_http_port>$(interserver_port "$i")</interserver_http_port>
    <!-- Without it the server looks up its FQDN at startup (slow where DNS is broken). -->
    <interserver_http_host>127.0.0.1</interserver_http_host>
    <path>$xsd/data/</path>
    <tmp_path>$xsd/tmp/</tmp_path>
    <user_files_path>$xsd/user_files/</user_files_path>
    <format_schema_path>$xsd/format_schemas/</format_schema_path>
    <users_config>users.xml</users_config>
    <default_profile>default</default_profile>
    <default_database>default</default_database>
    <timezone>UTC</timezone>
    <!-- Small machine: bounded mark cache (the package's 5 GiB), no uncompressed cache. -->
    <mark_cache_size>268435456</mark_cache_size>
    <uncompressed_cache_size>0</uncompressed_cache_size>
    <!-- Written only for queries run with log_queries=1 (off in users.xml). -->
    <query_log>
        <database>system</database>
        <table>query_log</table>
        <flush_interval_milliseconds>7500</flush_interval_milliseconds>
    </query_log>
    <remote_servers>
        <sibyl>
EOF
    for ((s = 0; s < n; s++)); do
      echo "            <shard><replica><host>127.0.0.1</host><port>$(tcp_port "$s")</port></replica></shard>"
    done
    cat <<'EOF'
        </sibyl>
    </remote_servers>
</yandex>
EOF
  } > "$sd/config.xml.new"
  mv "$sd/config.xml.new" "$sd/config.xml"
  cat > "$sd/users.xml" <<'EOF'
<?xml version="1.0"?>
<!-- Written by scripts/cluster.sh at every start, do not edit. -->
<yandex>
    <profiles>
        <default>
            <max_memory_usage>4000000000</max_memory_usage>
            <max_threads>2</max_threads>
            <use_uncompressed_cache>0</use_uncompressed_cache>
            <log_queries>0</log_queries>
        </default>
    </profiles>
    <users>
        <default>
            <password></password>
            <networks>
                <ip>127.0.0.1</ip>
                <ip>::1</ip>
            </networks>
            <profile>default</profile>
            <quota>default</quota>
        </default>
    </users>
    <quotas>
        <default>
            <interval>
                <duration>3600</duration>
                <queries>0</queries>
                <errors>0</errors>
                <result_rows>0</result_rows>
                <read_rows>0</read_rows>
                <execution_time>0</execution_time>
            </interval>
        </default>
    </quotas>
</yandex>
EOF
}

print_shards() {
  local i pid
  for ((i = 0; i < shards; i++)); do
    pid=$(server_pid "$i")
    echo "shard $i: http://127.0.0.1:$(http_port "$i") (tcp $(tcp_port "$i"), pid ${pid:-?})"
  done
  echo "endpoints: $dir/endpoints"
}

show_logs() {
  local sd=$1 f
  for f in "$sd/server.err.log" "$sd/stdout.log"; do
    [ -s "$f" ] || continue
    echo "--- last lines of $f:" >&2
    tail -n 8 "$f" >&2
  done
}

# --- start -------------------------------------------------------------------------------
cmd_start() {
  [ -n "$shards" ] || usage_error "start needs the number of shards"
  if ! is_uint "$shards" || [ "$shards" -lt 1 ] || [ "$shards" -gt 100 ]; then
    usage_error "the number of shards must be 1 to 100: $shards"
  fi
  [ -z "$base_port" ] || is_uint "$base_port" || usage_error "--base-port must be a number: $base_port"
  if ! is_uint "$timeout" || [ "$timeout" -lt 1 ]; then
    usage_error "--timeout must be a positive number of seconds: $timeout"
  fi
  command -v curl >/dev/null 2>&1 || die "curl not found; run scripts/install_deps.sh"
  local bin
  bin=$(server_bin)
  [ -x "$bin" ] || die "clickhouse-server not found ($bin); run scripts/install_deps.sh (Debian package clickhouse-server)"

  mkdir -p "$dir"
  dir=$(cd "$dir" && pwd -P)
  read_cluster_env
  local i running=() pid
  if [ -n "$recorded_shards" ]; then
    for ((i = 0; i < recorded_shards; i++)); do
      pid=$(server_pid "$i")
      [ -n "$pid" ] && running+=("$i")
    done
  fi
  if [ ${#running[@]} -gt 0 ]; then
    if [ "$recorded_shards" != "$shards" ] || { [ -n "$base_port" ] && [ "$base_port" != "$recorded_base_port" ]; }; then
      die "the cluster in $dir is running with $recorded_shards shards at base port $recorded_base_port; stop it first: scripts/cluster.sh stop --dir $dir"
    fi
    base_port=$recorded_base_port
  else
    base_port=${base_port:-$DEFAULT_BASE_PORT}
  fi
  if [ "$base_port" -lt 1024 ] || [ $((base_port + 10 * (shards - 1) + 2)) -gt 65535 ]; then
    usage_error "ports $base_port to $((base_port + 10 * (shards - 1) + 2)) are out of range (1024 to 65535)"
  fi

  # Which shards need starting; refuse ports another program holds.
  local to_start=() is_running port
  for ((i = 0; i < shards; i++)); do
    is_running=0
    for r in "${running[@]}"; do [ "$r" = "$i" ] && is_running=1; done
    [ $is_running = 1 ] && continue
    to_start+=("$i")
    for port in $(http_port "$i") $(tcp_port "$i") $(interserver_port "$i"); do
      port_busy "$port" && die "port $port (shard $i) is already in use by another program; choose another --base-port"
    done
  done
  if [ ${#to_start[@]} -eq 0 ]; then
    [ -f "$dir/endpoints" ] || for ((i = 0; i < shards; i++)); do echo "http://127.0.0.1:$(http_port "$i")"; done > "$dir/endpoints"
    echo "cluster in $dir already running ($shards shards)"
    print_shards
    return 0
  fi
  if [ -n "$recorded_shards" ] && [ "$recorded_shards" -gt "$shards" ]; then
    echo "cluster.sh: note: $dir has folders of $recorded_shards shards from before; shards $shards and up are left alone" >&2
  fi

  printf 'shards=%s\nbase_port=%s\n' "$shards" "$base_port" > "$dir/cluster.env"
  local started=() sd
  for i in "${to_start[@]}"; do
    sd=$(shard_dir "$i")
    write_configs "$i" "$shards"
    rm -f "$sd/server.pid"
    echo "=== $(date -u '+%Y-%m-%dT%H:%M:%SZ') starting shard $i" >> "$sd/stdout.log"
    # setsid: the servers outlive this script and the terminal's Ctrl-C. In a script (no
    # job control) the background child is not a process group leader, so setsid execs
    # in place and $! is the server's pid.
    setsid "$bin" --config-file="$sd/config.xml" < /dev/null >> "$sd/stdout.log" 2>&1 &
    echo $! > "$sd/server.pid"
    started+=("$!")
  done

  # Wait until every started server answers /ping.
  local pending=("${to_start[@]}") still failure=""
  local deadline=$((${EPOCHREALTIME/./} + timeout * 1000000))
  while [ ${#pending[@]} -gt 0 ]; do
    still=()
    for i in "${pending[@]}"; do
      sd=$(shard_dir "$i")
      if pings "$(http_port "$i")"; then continue; fi
      if ! alive "$(cat "$sd/server.pid")"; then
        failure="shard $i exited during startup; see $sd/server.err.log and $sd/stdout.log"
        break 2
      fi
      still+=("$i")
    done
    pending=("${still[@]+"${still[@]}"}")
    [ ${#pending[@]} -eq 0 ] && break
    if [ "${EPOCHREALTIME/./}" -ge "$deadline" ]; then
      i=${pending[0]}
      sd=$(shard_dir "$i")
      failure="shard $i did not answer http://127.0.0.1:$(http_port "$i")/ping within $timeout s; see $sd/server.err.log and $sd/stdout.log"
      break
    fi
    sleep 0.1
  done
  if [ -n "$failure" ]; then
    echo "cluster.sh: $failure" >&2
    show_logs "$sd"
    echo "cluster.sh: stopping the shards this start launched" >&2
    terminate "${started[@]}"
    for i in "${to_start[@]}"; do rm -f "$(shard_dir "$i")/server.pid"; done
    exit 1
  fi
  # The pid file must name the server itself (see setsid above).
  for i in "${to_start[@]}"; do
    sd=$(shard_dir "$i")
    is_server_of "$(cat "$sd/server.pid")" "$sd" || server_pid "$i" > "$sd/server.pid"
  done
  for ((i = 0; i < shards; i++)); do echo "http://127.0.0.1:$(http_port "$i")"; done > "$dir/endpoints.new"
  mv "$dir/endpoints.new" "$dir/endpoints"
  print_shards
}

# --- stop --------------------------------------------------------------------------------
cmd_stop() {
  if [ ! -d "$dir" ]; then echo "no cluster in $dir"; return 0; fi
  dir=$(cd "$dir" && pwd -P)
  local sd i pid pids=() names=()
  for sd in "$dir"/shard*/; do
    sd=${sd%/}
    i=${sd##*/shard}
    is_uint "$i" || continue
    [ -f "$sd/config.xml" ] || continue
    pid=$(server_pid "$i")
    if [ -n "$pid" ]; then pids+=("$pid"); names+=("shard $i (pid $pid)"); fi
  done
  if [ ${#pids[@]} -eq 0 ]; then
    echo "cluster in $dir: not running"
  else
    terminate "${pids[@]}"
    printf 'stopped %s\n' "${names[@]}"
  fi
  rm -f "$dir"/shard*/server.pid
  if [ $wipe = 1 ]; then
    rm -rf "$dir"/shard[0-9]* "$dir/endpoints" "$dir/endpoints.new" "$dir/cluster.env"
    rmdir "$dir" 2>/dev/null || true
    echo "wiped $dir"
  fi
}

# --- status ------------------------------------------------------------------------------
cmd_status() {
  [ -d "$dir" ] && dir=$(cd "$dir" && pwd -P)
  read_cluster_env
  if [ -z "$recorded_shards" ] || [ -z "$recorded_base_port" ]; then
    echo "no cluster in $dir"
    return 1
  fi
  shards=$recorded_shards base_port=$recorded_base_port
  local i pid url down=0
  for ((i = 0; i < shards; i++)); do
    pid=$(server_pid "$i")
    url="http://127.0.0.1:$(http_port "$i")"
    if pings "$(http_port "$i")"; then
      echo "shard $i: $url up (pid ${pid:-?})"
    elif [ -n "$pid" ]; then
      echo "shard $i: $url not answering (pid $pid; see $(shard_dir "$i")/server.err.log)"; down=1
    else
      echo "shard $i: $url down (not running)"; down=1
    fi
  done
  return $down
}

"cmd_$command"
