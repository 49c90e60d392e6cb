#!/usr/bin/env bash
# `sibyl serve` on a 2-shard ClickHouse cluster (docs/SERVER.md, "On a ClickHouse
# cluster"): starts a local cluster (scripts/cluster.sh) and a server whose data directory
# uses it, then through HTTP only: posts generated events to Amplitude's /batch (4 clients
# at once) and Segment messages to /v1/batch, re-posts one batch (its insert_ids are
# duplicates), checks every event landed on the shards (SQL on each shard, and `sibyl
# stats` pulled from the cluster: events, duplicates dropped), creates a prediction (the
# scheduler trains it), triggers a full scoring run, checks the scores written back to the
# cluster (`sibyl cohort`), and asks real-time scores and an explanation of single users,
# which must equal the written scores at the run's cutoff. Endpoints that read every
# user's score answer 501. Then an hourly scoring run, and a shard killed: ingest answers
# 500 and nothing of it becomes visible; once the shard is back it is accepted. Prints
# the ingest rate and the real-time latency. Stops the server and the cluster on any exit,
# also on its own deadline ($SIBYL_TEST_DEADLINE, 400 s).
# Usage: serve_cluster_test.sh path/to/sibyl. Needs clickhouse-server and python3.
set -euo pipefail
sibyl=$(realpath "$1")
root="$(cd "$(dirname "$0")/../.." && pwd)"
cluster="$root/scripts/cluster.sh"
work=$(mktemp -d "${TMPDIR:-/tmp}/sibyl-serve-cluster.XXXXXX")
dir=$work/cluster
data=$work/data
server_pid=
py_pid=
watchdog=

fail() {
  echo "serve_cluster_test: FAIL: $*" >&2
  [ -f "$work/serve.log" ] && { echo "--- last lines of the server's log:" >&2; tail -n 30 "$work/serve.log" >&2; }
  exit 1
}
cleanup() {
  [ -n "$watchdog" ] && { pkill -P "$watchdog" 2>/dev/null; kill "$watchdog" 2>/dev/null; } || true
  [ -n "$py_pid" ] && kill "$py_pid" 2>/dev/null || true
  if [ -n "$server_pid" ] && kill -0 "$server_pid" 2>/dev/null; then
    kill -TERM "$server_pid" 2>/dev/null || true
    for _ in $(seq 200); do kill -0 "$server_pid" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$server_pid" 2>/dev/null || true
  fi
  "$cluster" stop --dir "$dir" --wipe >/dev/null 2>&1 || true
  cd / && rm -rf "$work"
}
trap cleanup EXIT
# A global deadline of our own, so that the servers are stopped by the cleanup above even
# when the test hangs (ctest's timeout kills the script outright, leaving them running).
deadline=${SIBYL_TEST_DEADLINE:-400}
trap 'fail "timed out after $deadline s"' TERM INT
( sleep "$deadline" & wait $!; kill -TERM $$ 2>/dev/null ) &
watchdog=$!
# shellcheck source=tests/cluster/lib.sh
. "$root/tests/cluster/lib.sh"
cd "$work"
start_cluster "$cluster" "$dir" 2 || fail "cluster start failed"

"$sibyl" generate --users 800 --days 90 --seed 11 --out events.ndjson --quiet
export SIBYL_ADMIN_KEY=serve-cluster-admin-key SIBYL_INGEST_KEYS=serve-cluster-ingest-key

"$sibyl" --data "$data" --clickhouse "$dir/endpoints" serve --port 0 --threads 4 --idle-trim-seconds 0 \
  2> serve.log &
server_pid=$!
port=
for _ in $(seq 300); do
  port=$(python3 -c "
import json, sys
for line in open('serve.log'):
    try: j = json.loads(line)
    except ValueError: continue
    if j.get('event') == 'started': print(j['port']); break" 2>/dev/null || true)
  [ -n "$port" ] && break
  kill -0 "$server_pid" 2>/dev/null || fail "sibyl serve exited before it started"
  sleep 0.1
done
[ -n "$port" ] || fail "sibyl serve did not start within 30 s"
grep -q "events on a ClickHouse cluster of 2 shard" serve.log || fail "serve does not say it uses the cluster"
echo "ok: serve started on port $port, events on the 2-shard cluster"

# Everything over HTTP; fails (exit 1, naming the check) on the first wrong answer.
python3 - "$port" "$dir/endpoints" "$sibyl" "$data" "$cluster" "$dir" "$base" <<'PY' &
import base64, concurrent.futures, json, subprocess, sys, time, urllib.error, urllib.request

port, endpoints_file, sibyl_path, data_dir, cluster_script, cluster_dir, base_port = sys.argv[1:8]
base = f"http://127.0.0.1:{port}"
admin = {"Authorization": "Bearer serve-cluster-admin-key"}
ingest_key = "serve-cluster-ingest-key"
shards = [l.strip() for l in open(endpoints_file) if l.strip()]

def check(ok, what):
    if not ok:
        print(f"serve_cluster_test: FAIL: {what}", file=sys.stderr)
        sys.exit(1)

def call(method, path, body=None, headers=None, raw=False):
    data = body if isinstance(body, (bytes, type(None))) else json.dumps(body).encode()
    req = urllib.request.Request(base + path, data=data, method=method, headers=headers or {})
    try:
        with urllib.request.urlopen(req, timeout=120) as r:
            text = r.read()
            return r.status, (text if raw else json.loads(text or b"null"))
    except urllib.error.HTTPError as e:
        text = e.read()
        try: return e.code, json.loads(text)
        except ValueError: return e.code, text

def sql(shard, query):
    with urllib.request.urlopen(urllib.request.Request(shard, data=query.encode()), timeout=60) as r:
        return r.read().decode().strip()

events = [json.loads(l) for l in open("events.ndjson")]
batches = [events[i:i + 1000] for i in range(0, len(events), 1000)]

# Amplitude /batch, 4 clients at once; every answer is 200 only once the rows are committed.
def post(batch):
    return call("POST", "/batch", {"api_key": ingest_key, "events": batch})
t0 = time.monotonic()
with concurrent.futures.ThreadPoolExecutor(4) as pool:
    answers = list(pool.map(post, batches))
seconds = time.monotonic() - t0
for status, body in answers:
    check(status == 200 and body["code"] == 200, f"/batch answered {status}: {body}")
check(sum(b["events_ingested"] for _, b in answers) == len(events), "events_ingested does not add up")
print(f"ok: {len(events)} events in {len(batches)} /batch requests (4 clients): {seconds:.2f} s, "
      f"{len(events) / seconds:,.0f} events/s into the cluster")

# The same batch again: accepted (de-duplication happens when rows are read).
status, body = post(batches[0])
check(status == 200, f"the re-sent batch answered {status}: {body}")

# Segment: identify + track for 5 new users, with the write key as HTTP Basic user.
auth = {"Authorization": "Basic " + base64.b64encode(f"{ingest_key}:".encode()).decode(),
        "Content-Type": "application/json"}
messages = []
for i in range(5):
    messages.append({"type": "identify", "userId": f"seg-{i}", "traits": {"plan": "segment-pro"},
                     "timestamp": "2024-02-20T10:00:00Z", "messageId": f"seg-identify-{i}"})
    messages.append({"type": "track", "userId": f"seg-{i}", "event": "Segment Signup", "properties": {"n": i},
                     "timestamp": "2024-02-20T10:05:00Z", "messageId": f"seg-track-{i}"})
status, body = call("POST", "/v1/batch", json.dumps({"batch": messages}).encode(), auth)
check(status == 200 and body.get("success") is True, f"/v1/batch answered {status}: {body}")
# A bad key stores nothing.
status, _ = call("POST", "/v1/batch", json.dumps({"batch": messages}).encode(),
                 {"Authorization": "Basic " + base64.b64encode(b"wrong-key-000:").decode()})
check(status == 403, f"a wrong Segment key answered {status}")

# On the shards: every row, both shards holding some.
rows = [int(sql(s, "SELECT count() FROM sibyl.events")) for s in shards]
expected_rows = len(events) + len(batches[0]) + len(messages)
check(sum(rows) == expected_rows and min(rows) > 0, f"rows on the shards {rows}, expected {expected_rows} in all")
print(f"ok: the shards hold {rows} rows ({expected_rows} posted)")
commits = int(sql(shards[0], "SELECT count() FROM sibyl.commits WHERE what = 'ingest'"))
check(0 < commits <= len(batches) + 2, f"{commits} ingest commits for {len(batches) + 2} requests")

# What readers see: `sibyl stats` pulls the cluster (the server holds no lock on it).
def sibyl(*args):
    out = subprocess.run([sibyl_path, "--quiet", "--data", data_dir, *args], capture_output=True, text=True)
    check(out.returncode == 0, f"sibyl {' '.join(args)} exited {out.returncode}: {out.stderr.strip()}")
    return out.stdout
stats = json.loads(sibyl("stats", "--json"))
identify_calls = sum(e.get("event_type") == "$identify" for e in events)  # not events
check(stats["events"] == len(events) - identify_calls + 5,
      f"stats: {stats['events']} events, expected {len(events) - identify_calls + 5}")
check(stats["duplicates_dropped"] == len(batches[0]),
      f"stats: {stats['duplicates_dropped']} duplicates dropped, expected {len(batches[0])}")
print(f"ok: sibyl stats on the cluster: {stats['events']} events, {stats['duplicates_dropped']} duplicates dropped")
status, user = call("GET", "/api/v1/users/seg-3", headers=admin)
check(status == 200 and user["properties"].get("plan") == "segment-pro", f"/api/v1/users/seg-3: {status} {user}")
status, ev = call("GET", "/api/v1/users/seg-3/events", headers=admin)
check(status == 200 and ev["total_events"] == 1 and ev["events"][0]["event_type"] == "Segment Signup",
      f"/api/v1/users/seg-3/events: {status} {ev}")
print("ok: a Segment user's properties and events read back from the cluster")

# A prediction: names checked against the cluster; the scheduler trains it at once.
definition = {"name": "buy", "kind": "propensity", "outcome": {"event": "Purchase"}, "horizon_days": 14}
status, body = call("POST", "/api/v1/predictions?dry_run=true", {**definition, "outcome": {"event": "Purchse"}}, admin)
check(status == 200 and body.get("names_checked") is False, f"a dry run on a cluster: {status} {body}")
status, body = call("POST", "/api/v1/predictions", {**definition, "outcome": {"event": "Purchse"}}, admin)
check(status == 400 and "Purchase" in json.dumps(body), f"a misspelt event on the cluster: {status} {body}")
status, body = call("POST", "/api/v1/predictions", definition, admin)
check(status == 201, f"create answered {status}: {body}")

def wait_run(kind, limit=400, prediction="buy"):
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        status, runs = call("GET", f"/api/v1/runs?prediction={prediction}", headers=admin)
        check(status == 200, f"/api/v1/runs answered {status}")
        done = [r for r in runs["runs"] if r["kind"] == kind and r["state"] in ("succeeded", "failed", "aborted")]
        if done:
            check(done[0]["state"] == "succeeded", f"the {kind} run {done[0]['state']}: {done[0].get('error')}")
            return done[0]
        time.sleep(0.5)
    check(False, f"no {kind} run finished within {limit} s")

train = wait_run("train")
# 90 days of events are enough for a learned model (bg_nbd alone: nothing learned).
check(train["detail"]["model_type"] != "bg_nbd" and "roc_auc" in json.dumps(train["detail"]["metrics"]),
      f"no learned model: {train['detail']}")
check(train["detail"]["pulled"]["rows"] >= len(events), f"the training pulled {train['detail'].get('pulled')}")
print(f"ok: trained on the cluster: version {train['detail']['version']}, {train['detail']['model_type']}, "
      f"pulled {train['detail']['pulled']['rows']} rows")
status, body = call("POST", "/api/v1/predictions/buy/score", b"", admin)
check(status == 202, f"score trigger answered {status}: {body}")
score = wait_run("score_full")
scored = score["detail"]["users_scored"]
cutoff = score["detail"]["cutoff"]
check(scored > 500, f"the full run scored {scored} users")
print(f"ok: full scoring run shard by shard: {scored} users as of {cutoff}")

# The written-back scores are on the cluster: `sibyl cohort` reads them back.
written = {}
for line in sibyl("cohort", "buy", "--format", "csv").splitlines()[1:]:
    user_id, score_text, percentile, version = line.split(",")
    written[user_id] = float(score_text)
check(len(written) == scored, f"sibyl cohort lists {len(written)} users, the run scored {scored}")
# Three numbers a scored user for every scoring run (the scheduler also scores a newly
# trained prediction at once).
# The scheduler's own run after training may still be writing: wait until no scoring run
# is queued or running, then the rows on the shards are exactly what the runs wrote.
deadline = time.monotonic() + 120
while True:
    _, runs = call("GET", "/api/v1/runs?prediction=buy", headers=admin)
    scoring = [r for r in runs["runs"] if r["kind"].startswith("score")]
    if all(r["state"] in ("succeeded", "failed", "aborted") for r in scoring) or time.monotonic() > deadline:
        break
    time.sleep(0.5)
numbers = sum(int(sql(s, "SELECT count() FROM sibyl.numbers")) for s in shards)
written_rows = sum(3 * r["detail"]["users_scored"] for r in scoring if r["state"] == "succeeded")
check(numbers == written_rows and numbers >= 3 * scored,
      f"{numbers} score rows on the shards, {written_rows} written by {len(scoring)} runs: "
      f"{[(r['kind'], r['state']) for r in scoring]}")

for path in ["/api/v1/predictions/buy/cohort", "/api/v1/predictions/buy/forecast",
             "/api/v1/predictions/buy/audience", "/api/v1/taxonomy"]:
    status, body = call("GET", path, headers=admin)
    check(status == 501 and "ClickHouse cluster" in body["error"]["message"], f"{path} on a cluster: {status} {body}")
print("ok: cohort, forecast, audience and taxonomy answer 501 on a cluster")

# Real-time scores pull one user: the same score as the run wrote at its cutoff.
users = sorted(written)[:: max(1, len(written) // 40)][:40]
latencies, inside = [], []
for rounds in range(5):
    for u in users:
        t = time.monotonic()
        status, body = call("GET", f"/api/v1/predictions/buy/users/{u}/score?as_of={cutoff}", headers=admin)
        latencies.append(time.monotonic() - t)
        check(status == 200, f"real-time score of {u}: {status} {body}")
        inside.append(body["seconds"])
        check(abs(body["score"] - written[u]) <= 1e-6 * max(1.0, abs(written[u])),
              f"real-time score of {u} {body['score']} != written {written[u]}")
        check(body["percentile"] is not None, f"no percentile for {u}")
latencies.sort(); inside.sort()
q = lambda xs, p: xs[min(len(xs) - 1, int(p * len(xs)))] * 1000
print(f"ok: {len(latencies)} real-time scores equal the written ones; latency (client) p50 {q(latencies, .5):.1f} ms, "
      f"p99 {q(latencies, .99):.1f} ms; in the handler p50 {q(inside, .5):.1f} ms, p99 {q(inside, .99):.1f} ms")
status, body = call("GET", f"/api/v1/predictions/buy/users/{users[0]}/explanation", headers=admin)
check(status == 200 and abs(body["score"] - written[users[0]]) <= 1e-6 and "up" in body,
      f"explanation of {users[0]}: {status} {body}")
# A cohort that names an event: a user who never did it is scored, outside the cohort. Their
# one-user slice does not know the name (it answered 404 "unknown event type" before).
status, body = call("POST", "/api/v1/predictions",
                    {**definition, "name": "buy_again", "cohort": {"performed": {"event": "Purchase"}}}, admin)
check(status == 201, f"create buy_again answered {status}: {body}")
wait_run("train", prediction="buy_again")
buyers = {e.get("user_id") for e in events if e.get("event_type") == "Purchase"}
never = sorted({e["user_id"] for e in events if e.get("user_id") and e["user_id"] not in buyers})
check(len(never) > 0 and len(buyers) > 0, "the events have no user without a purchase")
for u in never[:5] + sorted(buyers)[:5]:
    status, body = call("GET", f"/api/v1/predictions/buy_again/users/{u}/score", headers=admin)
    check(status == 200 and body["in_cohort"] == (u in buyers),
          f"real-time score of {u} (bought: {u in buyers}) under a cohort naming Purchase: {status} {body}")
print("ok: a cohort naming an event scores users who never did it, outside the cohort")
status, body = call("GET", "/api/v1/predictions/buy/users/nobody-at-all/score", headers=admin)
check(status == 404, f"an unknown user answered {status}: {body}")
status, body = call("GET", "/healthz")
check(status == 200 and body["backend"] == "clickhouse", f"/healthz: {status} {body}")
print("ok: explanation, unknown user, healthz")

# An hourly run: the cluster pulled, the active users scored and written back.
status, body = call("POST", "/api/v1/predictions/buy/score?kind=score_active", b"", admin)
check(status == 202, f"score_active trigger answered {status}: {body}")
active = wait_run("score_active")
print(f"ok: hourly run on the cluster: {active['detail']['users_scored']} active users scored")

# A shard down: the request is not acknowledged, and nothing of it becomes visible.
before = json.loads(sibyl("stats", "--json"))["events"]
shard1_pid = int(open(f"{cluster_dir}/shard1/server.pid").read())
subprocess.run(["kill", str(shard1_pid)], check=True)
for _ in range(100):
    if subprocess.run(["kill", "-0", str(shard1_pid)], capture_output=True).returncode != 0: break
    time.sleep(0.1)
more = [dict(e, insert_id="down-" + e["insert_id"]) for e in batches[1]]
status, body = post(more)
check(status == 500 and "not stored" in body.get("error", ""), f"ingest with a shard down answered {status}: {body}")
subprocess.run([cluster_script, "start", "2", "--dir", cluster_dir, "--base-port", base_port], check=True,
               capture_output=True)
after = json.loads(sibyl("stats", "--json"))["events"]
check(after == before, f"{after - before} events of a refused request became visible")
status, body = post(more)
check(status == 200, f"ingest after the shard came back answered {status}: {body}")
check(json.loads(sibyl("stats", "--json"))["events"] == before + len(more), "the re-sent request is not all visible")
print("ok: with a shard down ingest answers 500 (not stored), nothing visible; "
      "accepted again once it is back")
PY
py_pid=$!
wait "$py_pid" || fail "HTTP checks failed (above)"
py_pid=

# A graceful stop: exit 0, nothing left in <data>/tmp (slices are deleted with their readers).
kill -TERM "$server_pid"
rc=0
wait "$server_pid" || rc=$?
server_pid=
[ "$rc" = 0 ] || fail "sibyl serve exited $rc after SIGTERM"
grep -q '"event":"stopped"' serve.log || fail "no stopped line in the server's log"
# At shutdown the cluster store's checkpoint seals the commit log (docs/SCALE_OUT.md).
seal=$(grep '"event":"cluster_maintenance"' serve.log | grep '"reason":"shutdown"' || true)
[ -n "$seal" ] || fail "no commit-log seal at shutdown"
case "$seal" in *'"error"'*) fail "the shutdown seal failed: $seal" ;; esac
sealed=$(curl -sS "$(head -1 "$dir/endpoints")" --data-binary "SELECT count() FROM sibyl.seals")
[ "$sealed" -ge 1 ] || fail "no seal row on shard 0 after the shutdown: $sealed"
left=$(find "$data/tmp" -mindepth 1 -maxdepth 1 2>/dev/null | wc -l)
[ "$left" = 0 ] || fail "$left folders left in $data/tmp after the server stopped"
echo "serve_cluster_test: all passed"
