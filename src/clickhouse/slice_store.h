// A slice of a cluster in a private embedded store: the rows of the users it owns (all
// users, one shard's, a hash sample, or a few named ones), plus the rows other shards
// hold that decide those users' identities, replayed in commit order into a temporary
// embedded store. Every query then runs on the embedded engine, unchanged, and returns
// what one machine holding all events would return for those users (docs/SCALE_OUT.md
// says why this holds). Writes (score write-back) go to the cluster.
#pragma once

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "clickhouse/cluster.h"
#include "store/event_store.h"

namespace sibyl::clickhouse {

struct SliceSpec {
  enum class Kind { kAll, kShard, kOwners };
  Kind kind = Kind::kAll;
  size_t shard = 0;  // kShard
  // Only owners whose sample bucket ((hash / shards) % kSampleBuckets) is below this: a
  // uniform sample of users, the same on every run (training on the article's 5M users).
  uint32_t sample_buckets = kSampleBuckets;
  std::vector<std::string> owners;  // kOwners: actor names, "u:<id>" / "d:<id>"

  bool Selects(uint64_t owner_hash, size_t shards) const;
  std::string Describe(size_t shards) const;
};

struct SliceOptions {
  std::string temp_dir;  // where the private store lives while the slice is open
  std::function<void(std::string_view stage, uint64_t done)> on_progress;
  // Replayed rows are committed and written out as parts every this many rows, so the
  // slice's memory is its open store's, not every row's decoded form (slice_store.cc).
  uint64_t replay_step_rows = 2'000'000;
};

struct SliceStats {
  uint64_t rows_pulled = 0;
  uint64_t bytes_pulled = 0;
  uint64_t owned_actors = 0;
  double pull_seconds = 0;  // pulling and replaying overlap; this is the whole
};

// Opens `spec` of `cluster` (which must outlive the store). Snapshot() answers for the
// owned actors only (EventReader::Owns); Begin() writes to the cluster.
Result<std::unique_ptr<EventStore>> OpenSlice(const Cluster& cluster, const SliceSpec& spec,
                                              const SliceOptions& options, SliceStats* stats = nullptr);

}  // namespace sibyl::clickhouse
