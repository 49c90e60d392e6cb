#!/usr/bin/env bash
# The main job on generated data: install, build, generate a product's events, ingest
# them into a fresh store and summarise it.
#   scripts/demo.sh [USERS] [DAYS]      (defaults: 20000 users, 90 days)
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install_deps.sh
scripts/build.sh release >/dev/null
users=${1:-20000}
days=${2:-90}
work=${SIBYL_DEMO_DIR:-out/demo}
rm -rf "$work"
mkdir -p "$work"
sibyl=build/sibyl
echo "== generate $users users over $days days"
$sibyl generate --users "$users" --days "$days" --seed 42 --out "$work/events.ndjson"
echo "== ingest"
$sibyl --data "$work/data" ingest "$work/events.ndjson"
echo "== stats"
$sibyl --data "$work/data" stats --top 10
