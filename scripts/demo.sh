#!/usr/bin/env bash
# The main job on generated data: install, build, generate a product's events, ingest
# them into a fresh store and summarise it, then create a purchase and a churn prediction,
# train both and print their quality (report pages in $work/*.html).
#   scripts/demo.sh [USERS] [DAYS]      (defaults: 20000 users, 90 days; training needs DAYS >= 63:
#                                        49 days of history before T_train plus the 14-day horizon)
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
echo "== predictions: purchase within 7 days, churn (no event at all) within 14 days"
$sibyl --data "$work/data" predict create purchase_7d --kind propensity --event Purchase \
  --horizon-days 7 --active-within-days 30
$sibyl --data "$work/data" predict create churn_14d --kind churn --horizon-days 14 --active-within-days 30
echo "== train (as of the last event; T_train = last event - horizon)"
$sibyl --data "$work/data" train purchase_7d
$sibyl --data "$work/data" train churn_14d
echo "== quality"
$sibyl --data "$work/data" predict show purchase_7d --html "$work/purchase_7d.html"
$sibyl --data "$work/data" predict show churn_14d --html "$work/churn_14d.html"
$sibyl --data "$work/data" predict list
echo "== score (write sibyl.NAME.score / .percentile / .model_version back at T), predictive cohort, explain, forecast"
$sibyl --data "$work/data" score purchase_7d
$sibyl --data "$work/data" score churn_14d
$sibyl --data "$work/data" cohort purchase_7d --top 20% --out "$work/purchase_7d_top20.csv"
head -4 "$work/purchase_7d_top20.csv"
top_user=$(sed -n 2p "$work/purchase_7d_top20.csv" | cut -d, -f1)
$sibyl --data "$work/data" explain purchase_7d "$top_user"
$sibyl --data "$work/data" forecast purchase_7d
echo "== serve: HTTP ingest, real-time score, then a graceful stop (docs/SERVER.md)"
export SIBYL_ADMIN_KEY=demo-admin-key-0001 SIBYL_INGEST_KEYS=demo-ingest-key-0001
$sibyl --data "$work/data" serve --port 0 2> "$work/serve.log" &
server=$!
port=""
for _ in $(seq 1 100); do
  port=$(sed -n 's|.*listening on http://[^:]*:\([0-9]*\)/.*|\1|p' "$work/serve.log" | head -1)
  [ -n "$port" ] && break
  sleep 0.1
done
[ -n "$port" ] || { echo "serve did not start:" >&2; cat "$work/serve.log" >&2; kill "$server"; exit 1; }
curl -sf "http://127.0.0.1:$port/healthz"; echo
now=$(($(date +%s) * 1000))
curl -sf "http://127.0.0.1:$port/2/httpapi" -d '{"api_key":"demo-ingest-key-0001","events":[
  {"user_id":"'"$top_user"'","event_type":"View Item","time":'"$now"',"insert_id":"demo-'"$now"'"}]}'; echo
curl -sf -H "Authorization: Bearer demo-admin-key-0001" \
  "http://127.0.0.1:$port/api/v1/predictions/purchase_7d/users/$top_user/score"; echo
kill -TERM "$server"
wait "$server"
echo "server stopped cleanly; web page and API while it runs: docs/SERVER.md"
