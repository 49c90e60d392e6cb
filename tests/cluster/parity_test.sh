#!/usr/bin/env bash
# Parity of the ClickHouse backend with the embedded store (docs/SCALE_OUT.md): the same
# generated events (anonymous devices later linked to users, user property histories,
# a re-sent file whose insert_ids are duplicates) go into an embedded data directory and
# into a 2-shard cluster started by scripts/cluster.sh; then every answer must be equal:
# stats, the taxonomy and every feature cell at two cutoffs, a cohort's size, a trained
# model's metrics (labels included) with an outcome property filter, the refusal of a
# misspelled name, the scores written
# back by a full run and again by one run per shard, an explanation of a linked user and
# of an anonymous device. Last, a shard that is down makes an ingest fail with the shard
# named, and leaves nothing half-written.
# Usage: parity_test.sh path/to/sibyl. Needs clickhouse-server (scripts/install_deps.sh).
set -euo pipefail
sibyl=$(realpath "$1")
root="$(cd "$(dirname "$0")/../.." && pwd)"
cluster="$root/scripts/cluster.sh"
work=$(mktemp -d "${TMPDIR:-/tmp}/sibyl-parity.XXXXXX")
dir=$work/cluster
cd "$work"

fail() { echo "parity_test: FAIL: $*" >&2; exit 1; }
cleanup() {
  "$cluster" stop --dir "$dir" --wipe >/dev/null 2>&1 || true
  cd / && rm -rf "$work"
}
trap cleanup EXIT
# shellcheck source=tests/cluster/lib.sh
. "$root/tests/cluster/lib.sh"
start_cluster "$cluster" "$dir" 2 || fail "cluster start failed"

same() { # same WHAT FILE_A FILE_B
  cmp -s "$2" "$3" || { diff <(head -c 2000 "$2") <(head -c 2000 "$3") | head -20 >&2; fail "$1 differ ($2, $3)"; }
  echo "ok: $1 equal ($(wc -l < "$2") lines)"
}
emb() { "$sibyl" --quiet --data "$work/emb" "$@"; }
clu() { "$sibyl" --quiet --data "$work/clu" "$@"; }

"$sibyl" generate --users 2500 --days 120 --seed 7 --out events.ndjson --quiet
head -n 4000 events.ndjson > resent.ndjson  # duplicates: the same insert_ids again
emb ingest events.ndjson
clu --clickhouse "$dir/endpoints" ingest events.ndjson
emb ingest resent.ndjson
clu ingest resent.ndjson  # the data directory remembers the cluster

# Stats, except what is about files on this machine.
strip_stats() { python3 -c "
import json, sys
j = json.load(sys.stdin)
for k in ('bytes_on_disk', 'event_bytes_on_disk', 'event_bytes_per_event', 'parts'): j.pop(k, None)
print(json.dumps(j, sort_keys=True))"; }
emb stats --json | strip_stats > stats.emb
clu stats --json | strip_stats > stats.clu
same "stats" stats.emb stats.clu
grep -q '"duplicates_dropped": 4000' stats.clu || fail "the re-sent file's 4000 events were not all dropped: $(cat stats.clu)"

# The taxonomy (each side builds its own) and every cell, at two cutoffs.
for as_of in 2024-03-01 2024-04-20T13:00:00Z; do
  emb features --as-of "$as_of" --out "f.emb.$as_of.csv" --save-spec "spec.emb.$as_of.json"
  clu features --as-of "$as_of" --out "f.clu.$as_of.csv" --save-spec "spec.clu.$as_of.json"
  same "taxonomy at $as_of" "spec.emb.$as_of.json" "spec.clu.$as_of.json"
  same "feature matrix at $as_of" "f.emb.$as_of.csv" "f.clu.$as_of.csv"
done

echo '{"all": [{"active_within_days": 30}, {"performed": {"event": "Purchase", "at_least": 1, "within_days": 60}}]}' > cohort.json
emb cohort-size cohort.json --as-of 2024-04-01 --json | python3 -c "import json,sys; print(json.load(sys.stdin)['users'])" > size.emb
clu cohort-size cohort.json --as-of 2024-04-01 --json | python3 -c "import json,sys; print(json.load(sys.stdin)['users'])" > size.clu
same "cohort size" size.emb size.clu

# Training (labels, the split, the learners with one thread) and its metrics.
strip_train() { python3 -c "
import json, sys
j = json.load(sys.stdin)
def clean(x):
    if isinstance(x, dict):
        return {k: clean(v) for k, v in x.items() if not any(w in k for w in ('second', 'rss', 'cpu', 'trained_at', 'path', 'dir'))}
    if isinstance(x, list): return [clean(v) for v in x]
    return x
print(json.dumps(clean(j), sort_keys=True, indent=1))"; }
for side in emb clu; do
  $side predict create grocery --kind propensity --event Purchase --where 'category = grocery' --horizon-days 14 >/dev/null
  $side train grocery --threads 1 --json | strip_train > "train.$side"
done
same "trained model" train.emb train.clu
# A misspelled name is refused alike (on the cluster from its names, not a pull).
for side in emb clu; do
  if $side predict create typo --kind propensity --event Purchse --where 'categry = grocery' --horizon-days 7 \
      > "typo.$side" 2>&1; then fail "$side accepted a misspelled event"; fi
  sed -i 's/^sibyl: //' "typo.$side"
done
same "refusal of a misspelled name" typo.emb typo.clu
grep -q 'did you mean "Purchase"' typo.clu || fail "no suggestion: $(cat typo.clu)"
grep -q '"roc_auc"' train.clu || fail "no metrics in the training report"

# Scores written back: a full run on each side, then one run per shard on the cluster.
emb score grocery --as-of 2024-04-29 >/dev/null
clu score grocery --as-of 2024-04-29 >/dev/null
emb cohort grocery --format csv | sort > scores.emb
clu cohort grocery --format csv | sort > scores.clu
same "written-back scores (full run)" scores.emb scores.clu
scored=0
for i in 1 2; do
  n=$(clu score grocery --as-of 2024-04-29 --shard $i/2 --json | python3 -c "import json,sys; print(json.load(sys.stdin)['users_scored'])")
  [ "$n" -gt 0 ] || fail "shard $i/2 scored no users"
  scored=$((scored + n))
done
[ "$scored" = "$(($(wc -l < scores.emb) - 1))" ] || fail "the shard runs scored $scored users, the full run $(($(wc -l < scores.emb) - 1))"
clu cohort grocery --format csv | sort > scores.shards
same "written-back scores (one run per shard)" scores.emb scores.shards
# A full run on the cluster scores shard by shard (two at once here) and writes back
# percentiles over everyone: the same as one machine's.
emb score grocery --as-of 2024-04-30 >/dev/null
clu score grocery --as-of 2024-04-30 --workers 2 >/dev/null
emb cohort grocery --format csv | sort > scores2.emb
clu cohort grocery --format csv | sort > scores2.clu
same "written-back scores (full run, 2 workers)" scores2.emb scores2.clu
# Without --as-of, a shard's run takes the cutoff of the whole cluster's last event.
cutoff() { python3 -c "import json,sys; print(json.load(sys.stdin)['cutoff'])"; }
emb score grocery --dry-run --json | cutoff > cutoff.emb
clu score grocery --shard 2/2 --dry-run --json | cutoff > cutoff.clu
same "default cutoff of a shard's run" cutoff.emb cutoff.clu

# Explanations: a user whose device was anonymous before it was linked, and a device that
# stayed anonymous.
linked=$(python3 -c "
import json
anon, linked = set(), None
for line in open('events.ndjson'):
    e = json.loads(line)
    if not e.get('user_id'): anon.add(e['device_id'])
    elif e.get('device_id') in anon: linked = e['user_id']; break
print(linked)")
device=$(grep -m1 -v '"user_id"' events.ndjson | python3 -c "import json,sys; print('device:' + json.loads(sys.stdin.readline())['device_id'])")
for who in "$linked" "$device"; do
  if emb explain grocery "$who" --json > explain.emb 2>&1; then
    clu explain grocery "$who" --json > explain.clu
    same "explanation of $who" explain.emb explain.clu
  else
    clu explain grocery "$who" --json > explain.clu 2>&1 && fail "explain $who worked on the cluster only"
    same "refusal to explain $who" explain.emb explain.clu
  fi
done

# A shard down: the ingest fails naming it, and nothing of it becomes visible (shard 0
# takes its rows before shard 1 refuses; no commit row makes them visible).
clu stats --json | strip_stats > stats.before
kill "$(cat "$dir/shard1/server.pid")"
sleep 1
"$sibyl" generate --users 50 --days 10 --seed 9 --start 2024-05-01 --out more.ndjson --quiet
if clu ingest more.ndjson 2> ingest.err; then fail "an ingest with a shard down succeeded"; fi
grep -q "127.0.0.1:$((base + 10))" ingest.err || fail "the error does not name the shard: $(cat ingest.err)"
echo "ok: ingest with a shard down failed: $(head -c 200 ingest.err)"
"$cluster" start 2 --dir "$dir" --base-port "$base" >/dev/null || fail "cluster restart failed"
clu stats --json | strip_stats > stats.after
same "stats after the failed ingest" stats.before stats.after
# A data directory holding an embedded store is not silently switched to the cluster.
if "$sibyl" --quiet --data "$work/emb" --clickhouse "$dir/endpoints" stats 2> mixed.err; then
  fail "an embedded data directory was opened as a cluster's"
fi
grep -q "holds an embedded store" mixed.err || fail "unexpected refusal: $(cat mixed.err)"
echo "ok: an embedded data directory is refused for the cluster"
echo "parity_test: all equal"
