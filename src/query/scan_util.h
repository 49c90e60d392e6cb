// Internal helpers shared by the embedded (EventReader) implementations of the queries:
// walking chunks and actor blocks actor by actor, per-thread outputs, row maps.
#pragma once

#include <cstdint>
#include <memory>
#include <mutex>
#include <span>
#include <thread>
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

// Walks the chunks of an ActorBlock actor by actor. Runs(actor) returns the actor's rows
// [begin, end) in each chunk that has any (sorted by time within a chunk), in chunk order.
// The runs are found chunk by chunk up front and bucketed by actor, so the cost is the
// chunks' rows plus their runs, not actors times chunks (a block of a store with 80 parts
// has up to 80 chunks, and most actors have rows in a few of them).
class BlockActorWalk {
 public:
  struct Run {
    uint32_t chunk;
    uint32_t begin, end;
  };
  explicit BlockActorWalk(const EventReader::ActorBlock& block) : first_(block.first_actor) {
    const size_t actors = block.end_actor - block.first_actor;
    start_.assign(actors + 1, 0);
    struct Found {
      uint32_t actor;  // offset from first_
      Run run;
    };
    std::vector<Found> found;
    for (uint32_t c = 0; c < block.chunks.size(); ++c) {
      const EventChunk& chunk = block.chunks[c];
      ForEachActorRunIn(chunk, 0, chunk.size, [&](ActorId actor, size_t begin, size_t end) {
        if (actor < block.first_actor || actor >= block.end_actor) return;
        uint32_t a = actor - block.first_actor;
        found.push_back({a, {c, static_cast<uint32_t>(begin), static_cast<uint32_t>(end)}});
        ++start_[a + 1];
      });
    }
    for (size_t a = 0; a < actors; ++a) start_[a + 1] += start_[a];
    runs_.resize(found.size());
    std::vector<uint32_t> next(start_.begin(), start_.end() - 1);
    for (const Found& f : found) runs_[next[f.actor]++] = f.run;  // stable: chunk order
  }
  std::span<const Run> Runs(ActorId actor) const {
    size_t a = actor - first_;
    return {runs_.data() + start_[a], start_[a + 1] - start_[a]};
  }

 private:
  ActorId first_;
  std::vector<uint32_t> start_;  // actor offset -> first run; one more entry than actors
  std::vector<Run> runs_;
};

// One object per thread that asks, created on first use; for per-thread output buffers
// that must outlive the blocks a thread visits.
template <typename T>
class PerThread {
 public:
  template <typename Make>
  T& Get(Make&& make) {
    std::lock_guard lock(mutex_);
    for (auto& [id, value] : values_)
      if (id == std::this_thread::get_id()) return *value;
    values_.emplace_back(std::this_thread::get_id(), std::make_unique<T>(make()));
    return *values_.back().second;
  }

 private:
  std::mutex mutex_;
  std::vector<std::pair<std::thread::id, std::unique_ptr<T>>> values_;
};

// Actors per block of EventReader::ScanActorBlocks for the queries: a block's per-actor
// state and output stay in cache, and a few hundred blocks per million actors keep both
// cores busy to the end.
inline constexpr uint32_t kActorsPerBlock = 4096;

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
