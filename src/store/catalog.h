// The store's shared, append-only state: dictionaries, user property history and
// identity links. Snapshots hold it by shared_ptr and read the prefix they saw.
#pragma once

#include <algorithm>
#include <bit>
#include <cstdint>
#include <memory>
#include <vector>

#include <string>
#include <string_view>

#include "common/status.h"
#include "store/append_only.h"
#include "store/chunked_vector.h"
#include "store/dictionary.h"
#include "store/reader.h"
#include "store/segment.h"

namespace sibyl {

struct Catalog {
  Dictionary actors;  // "u:<user_id>" or "d:<device_id>"
  Dictionary event_types;
  Dictionary property_keys;
  Dictionary string_values;
  AppendOnlyVector<UserPropertyRecord> history;  // arrival order
  AppendOnlyVector<IdentityLink> links;          // arrival order

  Dictionary* dictionary(int i) {
    Dictionary* all[] = {&actors, &event_types, &property_keys, &string_values};
    return all[i];
  }
  static constexpr int kDictionaries = 4;
};

// What a snapshot sees: immutable lists of segments plus prefix sizes of the catalog.
struct Version {
  std::vector<std::shared_ptr<const Segment>> parts;     // on disk
  std::vector<std::shared_ptr<const Segment>> memtable;  // committed, still in the log
  size_t dictionary_sizes[Catalog::kDictionaries] = {0, 0, 0, 0};
  size_t history_size = 0;
  size_t links_size = 0;
  // Commit order; immutable once committed (a checkpoint writes each to a file once).
  std::vector<std::shared_ptr<const NumberColumnBatch>> number_columns;
  uint64_t events = 0;
  uint64_t duplicates_dropped = 0;
};

// Set of recently ingested insert_id hashes with their ingestion times.
//
// The table is split by a hash's top kSegmentBits into segments, each its own
// open-addressing table that doubles on its own: growing rehashes and allocates one
// segment (about 1/1024 of the ids), never the whole table. As one table, each doubling
// at ~60M ids faulted in 1-2 GB and rehashed every id on the writer's commit path, and
// real-time scores stalled for 0.1-1 s meanwhile (issue 18).
class DedupIndex {
 public:
  bool Contains(uint64_t hash) const;
  // Adds `hash` unless present; returns whether it was added.
  bool Insert(uint64_t hash, int64_t ingested_ms);
  // Insert for many hashes at once, prefetching their slots (the table is far bigger
  // than the caches, so single inserts wait on memory). added[i] = Insert(hashes[i]).
  void InsertMany(const uint64_t* hashes, size_t n, int64_t ingested_ms, bool* added);
  // Sizes the table for `ids` entries at once (a bulk load's expected count): each
  // segment once, not every doubling on the way.
  void Reserve(size_t ids);
  // Removes the entries added after the index held `size` entries (an aborted
  // transaction's ids).
  void TruncateTo(size_t size);
  // Forgets entries ingested before `oldest_ms` (O(entries); segments left mostly empty
  // are rebuilt smaller, one at a time).
  void Expire(int64_t oldest_ms);
  // Entries ingested before `oldest_ms`, counted by runs of one time (cheap).
  size_t ExpiredCount(int64_t oldest_ms) const;
  size_t size() const { return hashes_.size(); }
  // Every entry as (hash, ingestion time), in insertion order.
  std::vector<std::pair<uint64_t, int64_t>> entries() const;

  // The on-disk form (docs/FORMAT.md, users file): ids grouped by the UTC day they were
  // ingested on, each group's hashes sorted and Elias-Fano coded (~5.5 bytes an id, where
  // a hash and a time took ~8.8 compressed). Every id of a group comes back with the
  // group's latest ingestion time, so after a reopen an id can be remembered up to a day
  // longer than the window (never shorter).
  // Only the entries [from, to) in insertion order (a checkpoint writes what arrived since
  // the previous one, docs/FORMAT.md "De-duplication files").
  void EncodeTo(std::string* out, size_t from = 0, size_t to = SIZE_MAX) const;
  // Inserts the ids of a section written by EncodeTo; `what` names the file for errors.
  Status DecodeFrom(std::string_view bytes, std::string_view what);

  // The table's shape, for tests and benchmarks: how big one growth step can be.
  struct Shape {
    size_t slots = 0;                  // every segment's, overflow included
    size_t largest_segment_slots = 0;
    size_t largest_growth = 0;         // the most entries one growth step rehashed, ever
    size_t growths = 0;                // growth steps, ever
  };
  Shape shape() const;

  // 1024 segments: at 60M ids a segment holds ~60K ids in 1 MB, so one growth step
  // faults in 1 MB and rehashes ~50K ids (a few ms at most) where the whole table was
  // 1-2 GB and 45M ids. More segments would make smaller steps, but the directory would
  // outgrow the L1 cache (every insert reads it) and the many small tables cost more to
  // grow: with 4096, inserts took 1.15-1.3x as long (40M ids, docs/BENCHMARKS.md).
  static constexpr int kSegmentBits = 10;

 private:
  // One open-addressing table of 2^bits slots: linear probing that never wraps, so the
  // last few slots are not any hash's home but take the last clusters' overflow. 0 marks
  // an empty slot (hash 0 is stored as 1). 16 bytes, so that the directory (read on every
  // insert and lookup) fits the L1 cache. A power of two of slots is a size the allocator
  // has a class for: the table's earlier 2^bits + 64 slots took the next class, 25% more
  // address space, which huge pages fill.
  struct Segment {
    std::unique_ptr<uint64_t[]> slots;
    uint32_t size = 0;  // 2^bits, more (under 2^(bits+1)) if a cluster overflowed the room
    uint32_t used = 0;
  };
  static constexpr size_t kSegments = size_t{1} << kSegmentBits;
  static int Bits(const Segment& s) { return std::bit_width(s.size) - 1; }
  static size_t Slots(const Segment& s) { return std::bit_floor(size_t{s.size}); }  // 2^bits, or 0
  // The overflow room at the end of 2^bits slots: a cluster rarely runs past its home by more.
  static size_t Room(size_t slots) { return std::min<size_t>(64, slots / 4); }
  // A hash's home slot in its (allocated) segment: the bits after the segment's, scaled to
  // the home slots. It ascends with the hash, so the segment holds hashes in ascending
  // order but for the few displaced within a cluster (EncodeTo reads them sorted from it).
  static size_t Home(const Segment& s, uint64_t h) {
    const size_t homes = Slots(s) - Room(Slots(s));
    return static_cast<size_t>((static_cast<unsigned __int128>(h << kSegmentBits) * homes) >> 64);
  }
  Segment& SegmentOf(uint64_t h) { return segments_[h >> (64 - kSegmentBits)]; }
  const Segment& SegmentOf(uint64_t h) const { return segments_[h >> (64 - kSegmentBits)]; }
  // Rebuilds `s` with 2^bits slots; returns the entries it moved.
  static size_t Rehash(Segment& s, int bits);
  // Stores `h` in the first empty slot from `slot` on, making more overflow room when
  // there is none.
  static void Place(Segment& s, size_t slot, uint64_t h);
  void Grow(Segment& s);
  static void EraseSlot(Segment& s, size_t slot);
  void Erase(uint64_t h);  // h stored (NonZero)
  // Where stored hash `h` would be looked for first, for prefetching it (an unallocated
  // segment gives a null address, which a prefetch ignores). The caller prefetches: GCC
  // finds a function that only prefetches free of side effects and drops its calls.
  const uint64_t* HomeAddress(uint64_t h) const {
    const Segment& s = SegmentOf(h);
    return s.slots.get() + Home(s, h);
  }
  // One past the last entry of time run `r`.
  size_t RunEnd(size_t r) const { return r + 1 < time_runs_.size() ? time_runs_[r + 1].first : hashes_.size(); }
  // Calls f on every stored hash (hash 0 as 1) in ascending order.
  template <typename F>
  void ForEachSorted(F&& f) const;

  std::vector<Segment> segments_;  // kSegments of them from the first insert on
  size_t largest_growth_ = 0, growths_ = 0;
  // Insertion order, for expiry and aborts: the hashes, and the ingestion times as runs
  // (the first entry of each run of one time; a batch's ids share one), 8 bytes an id
  // instead of 16 for a hash and a time each. In chunks that never move: 64K hashes
  // (512 KB) is a step of ~1.5 ms of fresh memory at most.
  ChunkedVector<uint64_t, 16> hashes_;
  ChunkedVector<std::pair<size_t, int64_t>, 12> time_runs_;
};

}  // namespace sibyl
