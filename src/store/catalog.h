// The store's shared, append-only state: dictionaries, user property history and
// identity links. Snapshots hold it by shared_ptr and read the prefix they saw.
#pragma once

#include <algorithm>
#include <cstdint>
#include <memory>
#include <vector>

#include <string>
#include <string_view>

#include "common/status.h"
#include "store/append_only.h"
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
class DedupIndex {
 public:
  bool Contains(uint64_t hash) const;
  // Adds `hash` unless present; returns whether it was added.
  bool Insert(uint64_t hash, int64_t ingested_ms);
  // Insert for many hashes at once, prefetching their slots (the table is far bigger
  // than the caches, so single inserts wait on memory). added[i] = Insert(hashes[i]).
  void InsertMany(const uint64_t* hashes, size_t n, int64_t ingested_ms, bool* added);
  // Sizes the table for `ids` entries at once (a bulk load's expected count): one table,
  // not every doubling on the way, each of which stops the writer to rehash millions.
  void Reserve(size_t ids);
  // Removes the entries added after the index held `size` entries (an aborted
  // transaction's ids).
  void TruncateTo(size_t size);
  // Forgets entries ingested before `oldest_ms` (rebuilds the table: O(entries)).
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

 private:
  void Grow() { GrowTo(std::max<size_t>(1024, table_size() * 2)); }
  void GrowTo(size_t slots);  // a power of two
  void EraseSlot(size_t slot);
  size_t table_size() const { return home_bits_ == 0 ? 0 : size_t{1} << home_bits_; }
  // A hash's home slot: its top bits, so that the table holds hashes in ascending order
  // but for the few displaced within a cluster (EncodeTo reads them sorted from it).
  size_t Home(uint64_t h) const { return static_cast<size_t>(h >> (64 - home_bits_)); }
  // Calls f on every stored hash (hash 0 as 1) in ascending order.
  template <typename F>
  void ForEachSorted(F&& f) const;
  // Open addressing, linear probing that never wraps: slots past the table_size() home
  // slots take the last clusters' overflow. 0 marks an empty slot (hash 0 is stored as 1).
  std::vector<uint64_t> slots_;
  int home_bits_ = 0;
  size_t used_ = 0;
  // Insertion order, for expiry and aborts: the hashes, and the ingestion times as runs
  // (the first entry of each run of one time; a batch's ids share one), 8 bytes an id
  // instead of 16 for a hash and a time each.
  std::vector<uint64_t> hashes_;
  std::vector<std::pair<size_t, int64_t>> time_runs_;
};

}  // namespace sibyl
