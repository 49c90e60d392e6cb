// Internal helpers shared by the embedded (EventReader) implementations of the queries:
// walking a chunk actor by actor, and merging per-actor partial results from parallel
// chunk visits without a lock or an atomic per event.
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <span>
#include <vector>

#include "store/reader.h"

namespace sibyl::query_internal {

inline constexpr uint32_t kNoRow = UINT32_MAX;

// Calls visit(actor, begin, end) for each maximal run of one actor in [from, to), which
// must start and end on actor boundaries.
template <typename Visit>
void ForEachActorRunIn(const EventChunk& chunk, size_t from, size_t to, Visit&& visit) {
  const ActorId* actors = chunk.actor.data();
  size_t begin = from;
  while (begin < to) {
    ActorId actor = actors[begin];
    size_t end = begin + 1;
    while (end < to && actors[end] == actor) ++end;
    visit(actor, begin, end);
    begin = end;
  }
}

// Calls visit(actor, begin, end) for each maximal run of one actor in the chunk (chunks
// are sorted by (actor, time), so an actor's events in a chunk are contiguous and in time
// order). The walk starts at a chunk-dependent actor boundary and wraps around: parts of
// the store split by time hold the same actors in the same order, and two threads walking
// two of them from the top would fold into the same rows at the same moment and fight
// over their locks and cache lines. Visitors that keep forward cursors into a chunk must
// reset them when a run starts before the previous one (the wrap).
template <typename Visit>
void ForEachActorRun(const EventChunk& chunk, Visit&& visit) {
  size_t n = chunk.size;
  if (n == 0) return;
  uint64_t h = (static_cast<uint64_t>(chunk.time[0]) ^ (n * 0x9E3779B97F4A7C15ull)) * 0xBF58476D1CE4E5B9ull;
  size_t start = static_cast<size_t>((h >> 17) % n);
  while (start > 0 && start < n && chunk.actor[start] == chunk.actor[start - 1]) ++start;
  ForEachActorRunIn(chunk, start, n, visit);
  ForEachActorRunIn(chunk, 0, start, visit);
}

// A fixed set of spin locks striped over row numbers. One actor's events can sit in
// several chunks (several parts) and a device's events count for its user, so two
// threads may write the same row; each run of an actor is folded into its row under the
// row's stripe lock, which costs one uncontended lock per run instead of an atomic per
// event.
class StripedLocks {
 public:
  StripedLocks() : locks_(new std::atomic<bool>[kStripes]) {
    for (size_t i = 0; i < kStripes; ++i) locks_[i].store(false, std::memory_order_relaxed);
  }
  void Lock(uint32_t row) {
    std::atomic<bool>& l = locks_[Stripe(row)];
    while (l.exchange(true, std::memory_order_acquire)) {
      while (l.load(std::memory_order_relaxed)) {
      }
    }
  }
  void Unlock(uint32_t row) { locks_[Stripe(row)].store(false, std::memory_order_release); }

 private:
  static constexpr size_t kStripes = 4096;
  // Neighbouring rows are usually visited by the same thread; spread them anyway.
  static size_t Stripe(uint32_t row) { return (row * 2654435761u) >> 20 & (kStripes - 1); }
  std::unique_ptr<std::atomic<bool>[]> locks_;
};

// Which output row each actor's events count for at a cutoff: rows are the actors of the
// cohort (canonical actors at the cutoff); every actor resolving to one of them (itself,
// or a device linked to it before the cutoff) maps to its row.
struct RowMap {
  std::vector<uint32_t> row_of_actor;  // indexed by ActorId; kNoRow when not counted
};

// `resolved` is reader.ResolveIdentities(cutoff).
RowMap MakeRowMap(std::span<const ActorId> resolved, std::span<const ActorId> rows);

// First and last activity of each canonical actor before the cutoff (indexed by ActorId;
// INT64_MAX / INT64_MIN when none). first_seen also counts user property records.
struct Activity {
  std::vector<int64_t> first_seen;
  std::vector<int64_t> last_event;
};
Status ComputeActivity(const EventReader& reader, std::span<const ActorId> resolved,
                       int64_t cutoff_ms, bool parallel, Activity& out);

// Indices into a chunk's property columns of each wanted key (ScanSpec::property_keys order
// is the order of chunk.properties). Chunks may return columns in spec order; this finds
// them by key to be safe.
int ColumnOfKey(const EventChunk& chunk, DictId key);

}  // namespace sibyl::query_internal
