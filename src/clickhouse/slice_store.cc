#include "clickhouse/slice_store.h"

#include <fmt/format.h>

#include <algorithm>
#include <chrono>
#include <condition_variable>
#include <deque>
#include <future>
#include <mutex>
#include <set>
#include <thread>
#include <unordered_map>

#include "clickhouse/cluster_writer.h"
#include "clickhouse/event_rows.h"
#include "clickhouse/row_binary.h"
#include "clickhouse/shard_stream.h"

namespace sibyl::clickhouse {
namespace {

// The ingestion time of a batch: its id's high bits (Cluster::NewBatchId). Replay gives
// the store this time, so its de-duplication window sees what the original ingest saw.
class ReplayClock final : public Clock {
 public:
  int64_t NowMs() const override { return now_ms; }
  int64_t now_ms = 0;
};

// A slice reports the whole cluster's time span (Cluster::CommitLog::span) as its own, so
// that a shard's run defaults to the same cutoff as every other shard's, and a sample's
// training sees the history the whole store would.

// Forwards every read to the slice's private store, owns only the slice's actors, and
// spans the cluster's time.
class SliceReader final : public EventReader {
 public:
  SliceReader(std::shared_ptr<const EventReader> inner, std::shared_ptr<const std::vector<uint8_t>> owned,
              TimeSpan span)
      : inner_(std::move(inner)), owned_(std::move(owned)), span_(span) {}

  bool OwnsAll() const override { return owned_ == nullptr; }
  bool Owns(ActorId actor) const override {
    return owned_ == nullptr || (actor < owned_->size() && (*owned_)[actor]);
  }
  const DictionaryView& actors() const override { return inner_->actors(); }
  const DictionaryView& event_types() const override { return inner_->event_types(); }
  const DictionaryView& property_keys() const override { return inner_->property_keys(); }
  const DictionaryView& string_values() const override { return inner_->string_values(); }
  uint64_t event_count() const override { return inner_->event_count(); }
  int64_t min_time_ms() const override { return span_.min_ms; }
  int64_t max_time_ms() const override { return span_.max_ms; }
  Status Scan(const ScanSpec& spec, const std::function<Status(const EventChunk&)>& visit,
              bool parallel) const override {
    return inner_->Scan(spec, visit, parallel);
  }
  Status ScanActorBlocks(const ScanSpec& spec, uint32_t actors_per_block,
                         const std::function<Status(const ActorBlock&)>& visit, bool parallel) const override {
    return inner_->ScanActorBlocks(spec, actors_per_block, visit, parallel);
  }
  Status GatherActors(std::span<const ActorId> actors, const ScanSpec& spec,
                      const std::function<Status(const ActorBlock&)>& visit, bool parallel) const override {
    return inner_->GatherActors(actors, spec, visit, parallel);
  }
  std::vector<ActorId> LinkedDevices(ActorId user, int64_t as_of_ms) const override {
    return inner_->LinkedDevices(user, as_of_ms);
  }
  std::vector<IdentityLink> LinksOfDevice(ActorId device) const override { return inner_->LinksOfDevice(device); }
  std::vector<UserPropertyRecord> UserPropertyHistoryOf(ActorId actor) const override {
    return inner_->UserPropertyHistoryOf(actor);
  }
  Status ScanActor(ActorId actor, int64_t begin_ms, int64_t end_ms,
                   const std::function<void(int64_t, DictId)>& visit) const override {
    return inner_->ScanActor(actor, begin_ms, end_ms, visit);
  }
  std::span<const UserPropertyRecord> user_property_history() const override {
    return inner_->user_property_history();
  }
  std::span<const IdentityLink> identity_links() const override { return inner_->identity_links(); }
  std::span<const std::shared_ptr<const NumberColumnBatch>> number_columns() const override {
    return inner_->number_columns();
  }

 private:
  std::shared_ptr<const EventReader> inner_;
  std::shared_ptr<const std::vector<uint8_t>> owned_;
  TimeSpan span_;
};

class SliceStore final : public EventStore {
 public:
  SliceStore(const Cluster& cluster, const std::string& temp_dir) : cluster_(cluster), dir_(temp_dir, "slice") {}

  Result<AppendResult> Append(const EventBatch& batch) override { return AppendToCluster(cluster_, batch); }
  // Writes go to the cluster; this slice does not see them (open a new one).
  Result<std::unique_ptr<Transaction>> Begin() override {
    WriterOptions options;
    options.what = "scores";
    std::shared_ptr<const EventReader> names = local_->Snapshot();
    options.actor_name = [names](ActorId a) { return std::string(names->actors().name(a)); };
    return BeginClusterTransaction(cluster_, std::move(options));
  }
  std::shared_ptr<const EventReader> Snapshot() const override {
    return std::make_shared<SliceReader>(local_->Snapshot(), owned_, span_);
  }
  Status Checkpoint() override { return Status::Ok(); }
  Result<StoreStats> Stats() const override { return local_->Stats(); }

  const Cluster& cluster_;
  PrivateDirectory dir_;  // declared before the store in it: removed after it
  ReplayClock clock_;
  std::unique_ptr<EventStore> local_;
  std::shared_ptr<const std::vector<uint8_t>> owned_;  // null: every actor
  TimeSpan span_;
};

using Visibility = Cluster::Visibility;

// Up to this many named owners, their hashes go into the query text (the primary key's
// prefix); beyond, the query would grow long for little gain.
constexpr size_t kOwnersByHash = 64;

// The condition selecting the slice's own rows on `shard`.
std::string OwnRows(const SliceSpec& spec, size_t shard, size_t shards) {
  std::string where;
  switch (spec.kind) {
    case SliceSpec::Kind::kAll: where = "1"; break;
    case SliceSpec::Kind::kShard: where = shard == spec.shard ? "1" : "0"; break;
    case SliceSpec::Kind::kOwners: {
      // A few named owners (a real-time score, an explanation): their hashes too, so the
      // shard reads only the granules of its primary key (owner_hash, time) that hold them,
      // not the whole table. The owner test stays: two names may share a hash.
      where = "owner IN owners";
      if (!spec.owners.empty() && spec.owners.size() <= kOwnersByHash) {
        std::string hashes;
        for (const std::string& owner : spec.owners) hashes += fmt::format("{}{}", hashes.empty() ? "" : ", ", OwnerHash(owner));
        where = fmt::format("owner_hash IN ({}) AND owner IN owners", hashes);
      }
      break;
    }
  }
  if (spec.sample_buckets < kSampleBuckets)
    where = fmt::format("({}) AND intDiv(owner_hash, {}) % {} < {}", where, shards, kSampleBuckets, spec.sample_buckets);
  return where;
}

// Runs `select` (with "{table}", "{visible}" and "{own}" for the table, the visible batches
// and the slice's own rows) on each shard that can hold the slice's rows, and hands each
// answer to `read` with its shard.
Status QueryOwnRows(const Cluster& cluster, const SliceSpec& spec, const Visibility& visible,
                    const ExternalTable& owners, std::string_view table, std::string_view select,
                    const std::function<Status(size_t shard, std::string_view rows)>& read) {
  std::vector<ExternalTable> tables = visible.tables;
  if (spec.kind == SliceSpec::Kind::kOwners) tables.push_back(owners);
  std::vector<Result<std::string>> answers = cluster.OnEveryShard([&](size_t s) -> Result<std::string> {
    if (spec.kind == SliceSpec::Kind::kShard && s != spec.shard) return std::string();
    const std::string sql = fmt::format(fmt::runtime(select), fmt::arg("table", cluster.Table(table)),
                                        fmt::arg("visible", visible.condition),
                                        fmt::arg("own", OwnRows(spec, s, cluster.shards())));
    return cluster.shard(s).Query(sql, tables);
  });
  for (size_t s = 0; s < cluster.shards(); ++s) {
    if (spec.kind == SliceSpec::Kind::kShard && s != spec.shard) continue;
    ASSIGN_OR_RETURN(std::string rows, std::move(answers[s]));
    RETURN_IF_ERROR(read(s, rows));
  }
  return Status::Ok();
}

// The devices whose links decide the slice's identities: `linked` were seen with one of
// the slice's users (their anonymous rows may belong to that user), `all` also holds the
// slice's anonymous devices (a link to another shard's user takes them away).
Status FindDevices(const Cluster& cluster, const SliceSpec& spec, const Visibility& visible,
                   const ExternalTable& owners, std::vector<std::string>* linked, std::vector<std::string>* all) {
  std::set<std::string> linked_set, all_set;
  RETURN_IF_ERROR(QueryOwnRows(
      cluster, spec, visible, owners, "events",
      "SELECT DISTINCT device_id, user_id != '' FROM {table} WHERE {visible} AND device_id != '' AND {own} "
      "FORMAT RowBinary",
      [&](size_t s, std::string_view rows) -> Status {
        RowBinaryReader in(rows);
        while (!in.at_end()) {
          std::string_view device;
          uint8_t with_user = 0;
          if (!in.String(&device) || !in.UInt8(&with_user))
            return Corruption("{}: unreadable device list", cluster.shard(s).endpoint());
          all_set.emplace(device);
          if (with_user) linked_set.emplace(device);
        }
        return Status::Ok();
      }));
  linked->assign(linked_set.begin(), linked_set.end());
  all->assign(all_set.begin(), all_set.end());
  return Status::Ok();
}

// A slice of a few named owners finds every row it needs through primary keys, so that
// its cost follows its owners' rows, not the shards' (a real-time score on a cluster of
// 25M rows a shard read every row's ids and took seconds): its own rows and its linked
// devices' anonymous rows by their owners' hashes; the other users seen with one of its
// devices from `links`, and of each such (device, user) pair its earliest row (the one
// that may decide whom the device belongs to: LinkOverrules, store/reader.h) by that
// user's hash.
struct NamedOwnersPull {
  std::vector<uint64_t> hashes;  // of the owners and of the linked devices' anonymous owners
  struct ForeignPair {
    uint64_t owner_hash;
    std::string device, user;
  };
  std::vector<std::vector<ForeignPair>> foreign;  // per shard
};

// Beyond this many (device, other user) pairs (a device id that thousands share, such as a
// placeholder), the rows are found by the scan that bigger slices use.
constexpr size_t kMaxForeignPairs = 1000;

Result<std::optional<NamedOwnersPull>> PlanNamedOwnersPull(const Cluster& cluster, const SliceSpec& spec,
                                                           const Visibility& visible,
                                                           const std::vector<std::string>& linked,
                                                           const std::vector<std::string>& devices) {
  NamedOwnersPull pull;
  pull.foreign.resize(cluster.shards());
  for (const std::string& owner : spec.owners) pull.hashes.push_back(OwnerHash(owner));
  for (const std::string& device : linked) pull.hashes.push_back(OwnerHash("d:" + device));
  std::sort(pull.hashes.begin(), pull.hashes.end());
  pull.hashes.erase(std::unique(pull.hashes.begin(), pull.hashes.end()), pull.hashes.end());
  if (devices.empty()) return std::optional<NamedOwnersPull>(std::move(pull));
  std::vector<ExternalTable> tables = visible.tables;
  tables.push_back(ExternalTable{.name = "devices", .column = "device_id", .values = devices});
  const std::set<std::string_view> own(spec.owners.begin(), spec.owners.end());
  const std::string sql = fmt::format(
      "SELECT DISTINCT device_id, user_id FROM {} PREWHERE device_id IN devices WHERE {} FORMAT RowBinary",
      cluster.Table("links"), visible.condition);
  std::vector<Result<std::string>> answers =
      cluster.OnEveryShard([&](size_t s) { return cluster.shard(s).Query(sql, tables); });
  size_t total = 0;
  for (size_t s = 0; s < cluster.shards(); ++s) {
    ASSIGN_OR_RETURN(std::string rows, std::move(answers[s]));
    RowBinaryReader in(rows);
    while (!in.at_end()) {
      std::string_view device, user;
      if (!in.String(&device) || !in.String(&user))
        return Corruption("{}: unreadable links", cluster.shard(s).endpoint());
      const std::string owner = "u:" + std::string(user);
      if (own.count(owner)) continue;  // the slice's own rows come with them
      pull.foreign[s].push_back({OwnerHash(owner), std::string(device), std::string(user)});
      if (++total > kMaxForeignPairs) return std::optional<NamedOwnersPull>();
    }
  }
  return std::optional<NamedOwnersPull>(std::move(pull));
}

// The pull of a NamedOwnersPull on `shard`, ordered by (batch, row) with the sentinel row
// at the end, as every pull.
std::string NamedOwnersQuery(const Cluster& cluster, const NamedOwnersPull& pull, size_t shard,
                             const std::string& visible, const std::string& own) {
  std::string hashes;
  for (uint64_t h : pull.hashes) hashes += fmt::format("{}{}", hashes.empty() ? "" : ", ", h);
  std::string foreign;
  if (!pull.foreign[shard].empty()) {
    std::string foreign_hashes, pairs;
    for (const NamedOwnersPull::ForeignPair& p : pull.foreign[shard]) {
      foreign_hashes += fmt::format("{}{}", foreign_hashes.empty() ? "" : ", ", p.owner_hash);
      pairs += fmt::format("{}({}, {})", pairs.empty() ? "" : ", ", Quote(p.device), Quote(p.user));
    }
    foreign = fmt::format(
        "SELECT {0} FROM (SELECT {0} FROM {1} PREWHERE owner_hash IN ({2}) AND (device_id, user_id) IN ({3}) "
        "WHERE {4} ORDER BY time, batch, row LIMIT 1 BY device_id, user_id) UNION ALL ",
        EventRowColumns(), cluster.Table("events"), foreign_hashes, pairs, visible);
  }
  return fmt::format(
      "SELECT {0} FROM ("
      "SELECT {0} FROM {1} PREWHERE owner_hash IN ({2}) AND (({3}) OR (user_id = '' AND device_id IN linked)) "
      "WHERE {4} UNION ALL {5}{6}"
      ") ORDER BY batch, row FORMAT RowBinary",
      EventRowColumns(), cluster.Table("events"), hashes, own, visible, foreign, SentinelRowSelect());
}

// Replays the number batches (score write-backs) of the slice's owners, batch by batch.
Status ReplayNumbers(const Cluster& cluster, const SliceSpec& spec, const Visibility& visible,
                     const ExternalTable& owners, EventStore& local) {
  struct Cell {
    uint64_t batch;
    int64_t time;
    ActorId actor;
    std::string key;
    double value;
  };
  std::shared_ptr<const EventReader> names = local.Snapshot();
  std::vector<Cell> cells;
  RETURN_IF_ERROR(QueryOwnRows(
      cluster, spec, visible, owners, "numbers",
      "SELECT batch, time, owner, key, value FROM {table} WHERE {visible} AND {own} FORMAT RowBinary",
      [&](size_t s, std::string_view rows) -> Status {
        RowBinaryReader in(rows);
        while (!in.at_end()) {
          Cell c;
          std::string_view owner, key;
          if (!in.UInt64(&c.batch) || !in.Int64(&c.time) || !in.String(&owner) || !in.String(&key) ||
              !in.Float64(&c.value))
            return Corruption("{}: unreadable numbers", cluster.shard(s).endpoint());
          std::optional<DictId> actor = names->actors().Find(owner);
          if (!actor) continue;  // an actor with no event in the slice (cannot happen for its owners)
          c.actor = *actor;
          c.key = std::string(key);
          cells.push_back(std::move(c));
        }
        return Status::Ok();
      }));
  if (cells.empty()) return Status::Ok();
  std::sort(cells.begin(), cells.end(), [](const Cell& a, const Cell& b) {
    return std::tie(a.batch, a.key, a.actor) < std::tie(b.batch, b.key, b.actor);
  });
  ASSIGN_OR_RETURN(std::unique_ptr<Transaction> txn, local.Begin());
  for (size_t begin = 0; begin < cells.size();) {
    size_t end = begin;
    while (end < cells.size() && cells[end].batch == cells[begin].batch) ++end;
    // One NumberColumnBatch per write-back: every key has a value for every actor.
    std::vector<ActorId> actors;
    std::vector<std::string> keys;
    std::vector<std::vector<double>> values;
    for (size_t i = begin; i < end; ++i) {
      if (keys.empty() || keys.back() != cells[i].key) {
        keys.push_back(cells[i].key);
        values.emplace_back();
      }
      if (keys.size() == 1) actors.push_back(cells[i].actor);
      values.back().push_back(cells[i].value);
    }
    for (const auto& v : values)
      if (v.size() != actors.size())
        return Corruption("score write-back {} on the cluster lacks values for some users", cells[begin].batch);
    NumberPropertyUpdates updates;
    updates.time_ms = cells[begin].time;
    updates.actors = actors;
    for (size_t k = 0; k < keys.size(); ++k) updates.columns.emplace_back(keys[k], values[k]);
    RETURN_IF_ERROR(txn->SetNumbers(updates).status());
    begin = end;
  }
  return txn->Commit();
}

}  // namespace

bool SliceSpec::Selects(uint64_t owner_hash, size_t shards) const {
  if (sample_buckets < kSampleBuckets && (owner_hash / shards) % kSampleBuckets >= sample_buckets) return false;
  switch (kind) {
    case Kind::kAll: return true;
    case Kind::kShard: return owner_hash % shards == shard;
    case Kind::kOwners: return true;  // checked by name by the caller
  }
  return false;
}

std::string SliceSpec::Describe(size_t shards) const {
  std::string what = kind == Kind::kAll     ? "all users"
                     : kind == Kind::kShard ? fmt::format("the users of shard {} of {}", shard + 1, shards)
                                            : fmt::format("{} named users", owners.size());
  if (sample_buckets < kSampleBuckets)
    what += fmt::format(" (a {:.1f}% sample)", 100.0 * sample_buckets / kSampleBuckets);
  return what;
}

Result<std::unique_ptr<EventStore>> OpenSlice(const Cluster& cluster, const SliceSpec& spec,
                                              const SliceOptions& options, SliceStats* stats) {
  const auto started = std::chrono::steady_clock::now();
  if (spec.kind == SliceSpec::Kind::kShard && spec.shard >= cluster.shards())
    return InvalidArgument("shard {} of {}: the cluster has {} shards", spec.shard + 1, cluster.shards(),
                           cluster.shards());
  auto slice = std::make_unique<SliceStore>(cluster, options.temp_dir);
  StoreOptions store_options;
  store_options.data_dir = slice->dir_.path();
  store_options.clock = &slice->clock_;
  // Replayed rows are written out as parts (compressed, in the slice's temporary
  // directory) every `replay_step_rows`, as an ingest of a big file is: held staged until
  // one commit at the end, a whole-store pull kept every row's decoded form in memory at
  // once (~170 bytes a row at peak, 7.5 GB for 49M rows).
  const uint64_t step_rows = std::max<uint64_t>(options.replay_step_rows, 1);
  store_options.checkpoint_events = step_rows;
  ASSIGN_OR_RETURN(slice->local_, EventStore::Open(store_options));

  ASSIGN_OR_RETURN(Cluster::CommitLog log, cluster.ReadCommitLog());
  const Visibility visible = Cluster::Visible(log);
  if (log.span) {
    slice->span_ = *log.span;
  } else {
    ASSIGN_OR_RETURN(slice->span_, cluster.ScanTimeSpan(log));
  }
  ExternalTable owners{.name = "owners", .column = "owner"};
  owners.values = spec.owners;

  const std::string& where = visible.condition;
  std::vector<ExternalTable> tables = visible.tables;
  if (spec.kind == SliceSpec::Kind::kOwners) tables.push_back(owners);
  const bool whole = spec.kind == SliceSpec::Kind::kAll && spec.sample_buckets >= kSampleBuckets;
  std::optional<NamedOwnersPull> named;
  if (!whole) {
    std::vector<std::string> linked, devices;
    RETURN_IF_ERROR(FindDevices(cluster, spec, visible, owners, &linked, &devices));
    if (spec.kind == SliceSpec::Kind::kOwners && spec.owners.size() <= kOwnersByHash &&
        linked.size() <= kOwnersByHash) {
      ASSIGN_OR_RETURN(named, PlanNamedOwnersPull(cluster, spec, visible, linked, devices));
    }
    tables.push_back(ExternalTable{.name = "linked", .column = "device_id", .values = std::move(linked)});
    tables.push_back(ExternalTable{.name = "devices", .column = "device_id", .values = std::move(devices)});
  }

  // Every shard streams its part ordered by (batch, row); the merge replays them in that
  // order, the order the events were accepted in. The server sorts what it sends, so a
  // big part is asked for in chunks of (batch, row) ranges, each sorted on its own
  // (18.16's sort of these rows is not bounded by its external sort: docs/SCALE_OUT.md).
  std::vector<std::unique_ptr<ShardStream>> streams;
  for (size_t s = 0; s < cluster.shards(); ++s) {
    const std::string own = OwnRows(spec, s, cluster.shards());
    std::vector<RowKey> cuts;
    if (spec.kind != SliceSpec::Kind::kOwners) {
      ASSIGN_OR_RETURN(cuts, PlanPullChunks(cluster.shard(s), cluster.Table("events"),
                                            fmt::format("({}) AND ({})", where, own), tables,
                                            cluster.config().pull_chunk_rows));
    }
    std::vector<std::string> queries;
    for (size_t c = 0; c <= cuts.size(); ++c) {
      const std::string range = KeyRange(c == 0 ? std::nullopt : std::optional<RowKey>(cuts[c - 1]),
                                         c == cuts.size() ? std::nullopt : std::optional<RowKey>(cuts[c]));
      if (whole) {
        queries.push_back(fmt::format(
            "SELECT {0} FROM (SELECT {0} FROM {1} {4} WHERE {2} UNION ALL {3}) ORDER BY batch, row FORMAT RowBinary",
            EventRowColumns(), cluster.Table("events"), where, SentinelRowSelect(),
            cuts.empty() ? std::string() : "PREWHERE " + range));
        continue;
      }
      if (named) {
        queries.push_back(NamedOwnersQuery(cluster, *named, s, where, own));
        continue;
      }
      // The slice's rows, the anonymous rows of devices its users were seen with, and of
      // every other user seen with one of its devices only the earliest row of each
      // (device, user) pair: the earliest of those decides whom a device belongs to
      // (LinkOverrules, store/reader.h).
      // The selective conditions are PREWHERE: the shard reads the few columns they need
      // for every row and the rest only for the rows they pass (18.16 does not move them
      // there itself inside a UNION: a named user's pull read every column of every row).
      queries.push_back(fmt::format(
          "SELECT {0} FROM ("
          "SELECT {0} FROM {1} PREWHERE (({3}) OR (user_id = '' AND device_id IN linked)) AND {5} WHERE {2} "
          "UNION ALL "
          "SELECT {0} FROM (SELECT {0} FROM {1} PREWHERE device_id IN devices AND user_id != '' AND NOT ({3}) "
          "WHERE {2} ORDER BY time, batch, row LIMIT 1 BY device_id, user_id) WHERE {5} "
          "UNION ALL {4}"
          ") ORDER BY batch, row FORMAT RowBinary",
          EventRowColumns(), cluster.Table("events"), where, own, SentinelRowSelect(), range));
    }
    streams.push_back(std::make_unique<ShardStream>(cluster.shard(s), std::move(queries), tables));
  }
  struct Cursor {
    std::unique_ptr<RowBlock> block;
    size_t next = 0;
  };
  std::vector<Cursor> cursors(streams.size());
  auto refill = [&](size_t s) {
    if (cursors[s].block && cursors[s].next < cursors[s].block->keys.size()) return;
    cursors[s].block = streams[s]->Next();
    cursors[s].next = 0;
  };
  for (size_t s = 0; s < streams.size(); ++s) refill(s);

  ASSIGN_OR_RETURN(std::unique_ptr<Transaction> txn, slice->local_->Begin());
  EventBatch batch;
  uint64_t batch_id = 0, rows = 0, staged_rows = 0;
  auto add = [&]() -> Status {
    if (batch.events.empty()) return Status::Ok();
    slice->clock_.now_ms = static_cast<int64_t>(batch_id >> 20);
    RETURN_IF_ERROR(txn->Add(batch).status());
    staged_rows += batch.events.size();
    batch.Clear();
    if (options.on_progress) options.on_progress("pull", rows);
    // Nobody reads the slice before it is whole, so committing in steps changes nothing
    // it answers: de-duplication and identity see earlier commits as they saw earlier
    // batches of one transaction.
    if (staged_rows >= step_rows) {
      RETURN_IF_ERROR(txn->Commit());
      txn.reset();  // the store runs one transaction at a time
      ASSIGN_OR_RETURN(txn, slice->local_->Begin());
      staged_rows = 0;
    }
    return Status::Ok();
  };
  while (true) {
    size_t best = SIZE_MAX;
    for (size_t s = 0; s < cursors.size(); ++s) {
      if (!cursors[s].block) continue;
      if (best == SIZE_MAX || cursors[s].block->keys[cursors[s].next] < cursors[best].block->keys[cursors[best].next])
        best = s;
    }
    if (best == SIZE_MAX) break;
    Cursor& c = cursors[best];
    const RowKey key = c.block->keys[c.next];
    if (key.batch != batch_id || batch.events.size() >= (1 << 16)) {
      RETURN_IF_ERROR(add());
      batch_id = key.batch;
    }
    RowBinaryReader in(std::string_view(c.block->bytes).substr(c.block->starts[c.next]));
    RowKey ignored;
    if (!DecodeEventRow(in, &ignored, &batch)) return Internal("a row that parsed once did not parse again");
    ++rows;
    ++c.next;
    refill(best);
  }
  for (auto& stream : streams) RETURN_IF_ERROR(stream->status());
  RETURN_IF_ERROR(add());
  RETURN_IF_ERROR(txn->Commit());
  txn.reset();  // the store runs one transaction at a time
  RETURN_IF_ERROR(ReplayNumbers(cluster, spec, visible, owners, *slice->local_));

  uint64_t owned_actors = 0;
  std::shared_ptr<const EventReader> reader = slice->local_->Snapshot();
  if (!whole) {
    std::set<std::string_view> named(spec.owners.begin(), spec.owners.end());
    auto owned = std::make_shared<std::vector<uint8_t>>(reader->actors().size(), 0);
    for (ActorId a = 0; a < owned->size(); ++a) {
      const std::string_view name = reader->actors().name(a);
      const bool mine = spec.kind == SliceSpec::Kind::kOwners ? named.count(name) > 0
                                                               : spec.Selects(OwnerHash(name), cluster.shards());
      (*owned)[a] = mine;
      owned_actors += mine;
    }
    slice->owned_ = std::move(owned);
  } else {
    owned_actors = reader->actors().size();
  }
  if (stats) {
    stats->rows_pulled = rows;
    for (auto& stream : streams) stats->bytes_pulled += stream->bytes();
    stats->owned_actors = owned_actors;
    stats->pull_seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
  }
  return std::unique_ptr<EventStore>(std::move(slice));
}

}  // namespace sibyl::clickhouse
