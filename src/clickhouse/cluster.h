// A ClickHouse cluster as sibyl's event store: where it is (one HTTP endpoint per shard),
// its tables, which shard owns which user, and the commit log that makes a multi-shard
// write all-or-nothing. docs/SCALE_OUT.md describes the design; in short:
//
// * Every accepted event is one row of `events` on the shard that owns it: the owner is
//   the event's user ("u:<user_id>") or, without one, its device ("d:<device_id>"); the
//   shard is OwnerHash(owner) % shards. Rows keep what the event said (ids, time, type,
//   session, insert_id, properties and user property operations as parallel arrays).
// * A write (one `sibyl ingest`, one server group commit, one score write-back) gets a
//   batch id; its rows go to every shard they belong to, then one row in shard 0's
//   `commits` table makes them visible. Readers only read committed batches, so a crash
//   or a shard refusing an insert mid-write leaves nothing half-visible.
// * Readers do not re-implement the queries in SQL: a slice of the cluster (all of it, a
//   shard, a hash sample of users, a few users) is pulled in commit order and replayed
//   into a private embedded store (materialize.h), where the embedded engine answers
//   every query exactly as it would have on one machine.
#pragma once

#include <algorithm>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "clickhouse/client.h"
#include "common/status.h"

namespace sibyl::clickhouse {

struct ClusterConfig {
  std::vector<std::string> endpoints;  // one per shard, shard order
  std::string database = "sibyl";
  int max_threads = 2;  // per query, per server
  // More ClickHouse settings sent with every query ("max_memory_usage": "8000000000").
  std::vector<std::pair<std::string, std::string>> settings;
  // A shard's part of a pull above this many rows is asked for in chunks of about this
  // many, each sorted by the server on its own (measured: 400,000 rows did not fit a
  // 250 MB query limit, 100,000 did; so 4M rows stay inside the default 4 GB). 0: one
  // query whatever its size. `"pull_chunk_rows"` in clickhouse.json.
  uint64_t pull_chunk_rows = 4'000'000;

  // From `spec`: a comma-separated list of http://HOST:PORT, or the path of a file with one
  // endpoint per line (scripts/cluster.sh writes DIR/endpoints).
  static Result<ClusterConfig> Parse(std::string_view spec);
  // <data>/clickhouse.json, written by the first ingest into a cluster, so later commands
  // need no flags. NotFound when absent.
  static Result<ClusterConfig> Load(const std::string& data_dir);
  Status Save(const std::string& data_dir) const;
};

// A stable 64-bit hash of an owner name ("u:..."/"d:..."): FNV-1a, then a finaliser that
// spreads its bits (shard = hash % shards; a sample takes (hash / shards) % 1024 < k).
uint64_t OwnerHash(std::string_view owner);
inline constexpr uint32_t kSampleBuckets = 1024;

// The times of a set of events (identify calls are not events): empty when min > max.
struct TimeSpan {
  int64_t min_ms = INT64_MAX;
  int64_t max_ms = INT64_MIN;
  void Add(int64_t time_ms) {
    min_ms = std::min(min_ms, time_ms);
    max_ms = std::max(max_ms, time_ms);
  }
  void Add(const TimeSpan& other) {
    min_ms = std::min(min_ms, other.min_ms);
    max_ms = std::max(max_ms, other.max_ms);
  }
};

class Cluster {
 public:
  // Connects and checks each shard knows its place (a reordered endpoint list would send
  // users to the wrong shard): on a fresh cluster it creates the tables.
  static Result<std::unique_ptr<Cluster>> Open(const ClusterConfig& config);

  size_t shards() const { return clients_.size(); }
  const Client& shard(size_t i) const { return *clients_[i]; }
  const ClusterConfig& config() const { return config_; }
  // Runs `query(shard)` on every shard at once (a one-user pull is a chain of small
  // queries, and their round trips, not the shards' work, are most of its time), then
  // returns the answers in shard order.
  std::vector<Result<std::string>> OnEveryShard(const std::function<Result<std::string>(size_t)>& query) const;
  // Fully qualified table name: "sibyl.events".
  std::string Table(std::string_view name) const { return config_.database + "." + std::string(name); }

  // A new batch id: milliseconds since the epoch in the high bits, so ids ascend with time
  // (commit order is batch order), and a random low part, so two writers never collide.
  uint64_t NewBatchId() const;
  // Whether a write of `batch` may still send its rows and commit: not when the batch is
  // below the newest seal, or older than kMaxWriteAgeMs (a seal may be about to hide it).
  Status CheckCommittable(uint64_t batch) const;
  // Makes `batch` visible: one row in shard 0's commit log, with the time span of the
  // batch's events (so that readers need not scan every shard's `time` for it).
  Status CommitBatch(uint64_t batch, int64_t committed_ms, uint64_t rows, std::string_view what,
                     const TimeSpan& events) const;

  // Which batches are visible. Every reader sends the list of committed batches with its
  // queries, and a server commits a batch per group commit (~1M a day), so the old part
  // of the list is sealed: below `sealed_below` every batch is visible but the few
  // `abandoned` ones (rows of writes that never committed); above it, `committed` lists
  // them (docs/SCALE_OUT.md, "Sealing the commit log").
  struct CommitLog {
    uint64_t sealed_below = 0;
    std::vector<uint64_t> abandoned;  // ascending
    std::vector<uint64_t> committed;  // ascending, all >= sealed_below
    // The visible events' time span, from the seal and the commit rows (each records its
    // batch's), or unset when one of them was written before sibyl kept spans: then
    // ScanTimeSpan reads it from the shards.
    std::optional<TimeSpan> span;
    std::optional<TimeSpan> sealed_span;  // of the batches below `sealed_below`
  };
  Result<CommitLog> ReadCommitLog() const;
  // Seals the batches older than `older_than_ms`: lists those that have rows on a shard
  // but no commit as abandoned, then writes one seal row. Returns the new log.
  Result<CommitLog> Seal(int64_t older_than_ms) const;

  // Which rows `log` makes visible: a condition on `batch`, and the external tables it
  // names (sent with every query that uses it).
  struct Visibility {
    std::string condition;
    std::vector<ExternalTable> tables;
  };
  static Visibility Visible(const CommitLog& log);
  // The time span of the events `log` makes visible below batch `below`, read from every
  // shard (a scan of their `time` columns; CommitLog::span spares it).
  Result<TimeSpan> ScanTimeSpan(const CommitLog& log, uint64_t below = UINT64_MAX) const;
  // The longest a write may take from its batch id to its commit; seals leave twice this
  // unsealed, so a write in flight is never sealed out (clocks within 12 h of each other).
  static constexpr int64_t kMaxWriteAgeMs = 12 * 3600 * 1000;

 private:
  Cluster() = default;
  Status EnsureSchema(size_t shard) const;
  Status AddMissingColumns(size_t shard) const;
  ClusterConfig config_;
  std::vector<std::unique_ptr<Client>> clients_;
  // The newest seal as last read, and when (steady clock, ms): CheckCommittable runs per
  // group commit, and the seal moves once an hour, 24 h behind the clock, so a reading a
  // minute old is as good as a fresh query (the 12 h age check leaves the margin).
  mutable std::mutex seal_mutex_;
  mutable uint64_t seal_cached_ = 0;
  mutable int64_t seal_read_at_ms_ = INT64_MIN;
};

}  // namespace sibyl::clickhouse
