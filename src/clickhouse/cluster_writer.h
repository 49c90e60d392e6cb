// Writing to a cluster: a Transaction (store/event_store.h) whose batches become rows of
// the shards that own their users, visible all at once when Commit writes the batch's
// row in the commit log (cluster.h). Used by `sibyl ingest --backend clickhouse` and by
// score write-back from a cluster slice.
#pragma once

#include <functional>
#include <memory>
#include <string>
#include <string_view>

#include "clickhouse/cluster.h"
#include "common/time.h"
#include "store/event_store.h"

namespace sibyl::clickhouse {

struct WriterOptions {
  // Rows are sent to a shard once its buffer holds this many bytes (and at Commit): a few
  // large inserts, as MergeTree wants (each insert makes a part per month it touches).
  size_t flush_bytes = 64 << 20;
  const Clock* clock = &SystemClock::Instance();
  // Names of the actor ids SetNumbers is given (the slice the scores were computed on).
  std::function<std::string(ActorId)> actor_name;
  std::string what = "ingest";  // recorded in the commit log
};

// A new transaction on `cluster` (which must outlive it). Nothing is visible before
// Commit; a transaction destroyed uncommitted leaves rows no reader will ever see.
std::unique_ptr<Transaction> BeginClusterTransaction(const Cluster& cluster, WriterOptions options);

// EventStore::Append on a cluster: one transaction holding `batch`, committed.
Result<AppendResult> AppendToCluster(const Cluster& cluster, const EventBatch& batch);

// A private directory under `temp_dir` ("PREFIX-<random hex>") for a store that lives
// only as long as its owner, removed with everything in it when this is destroyed.
class PrivateDirectory {
 public:
  PrivateDirectory(const std::string& temp_dir, std::string_view prefix);
  ~PrivateDirectory();
  PrivateDirectory(const PrivateDirectory&) = delete;
  PrivateDirectory& operator=(const PrivateDirectory&) = delete;
  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

}  // namespace sibyl::clickhouse
