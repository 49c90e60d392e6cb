// StoreSnapshot: the EventReader over one Version of the embedded store.
#pragma once

#include <memory>
#include <mutex>
#include <span>
#include <vector>

#include "store/catalog.h"
#include "store/reader.h"

namespace sibyl {

// A segment's decoded optional columns (session marks and ids, property columns by key), as the
// process-wide cache of decoded part columns holds them (snapshot.cc): pieces decoded at
// different times, viewed as one.
struct ExtrasView {
  const std::vector<uint8_t>* session_marks = nullptr;
  const std::vector<int64_t>* session_ids = nullptr;  // set with session_marks
  std::vector<std::pair<DictId, const SegmentExtras::Column*>> columns;  // sorted by key
  std::vector<std::shared_ptr<const SegmentExtras>> hold;
};

class StoreSnapshot final : public EventReader {
 public:
  StoreSnapshot(std::shared_ptr<const Catalog> catalog, std::shared_ptr<const Version> version);

  const DictionaryView& actors() const override { return actors_; }
  const DictionaryView& event_types() const override { return event_types_; }
  const DictionaryView& property_keys() const override { return property_keys_; }
  const DictionaryView& string_values() const override { return string_values_; }
  uint64_t event_count() const override { return version_->events; }
  int64_t min_time_ms() const override { return min_time_; }
  int64_t max_time_ms() const override { return max_time_; }

  Status Scan(const ScanSpec& spec, const std::function<Status(const EventChunk&)>& visit,
              bool parallel) const override;
  Status ScanActorBlocks(const ScanSpec& spec, uint32_t actors_per_block,
                         const std::function<Status(const ActorBlock&)>& visit,
                         bool parallel) const override;
  Status ScanActor(ActorId actor, int64_t begin_ms, int64_t end_ms,
                   const std::function<void(int64_t, DictId)>& visit) const override;
  Status GatherActors(std::span<const ActorId> actors, const ScanSpec& spec,
                      const std::function<Status(const ActorBlock&)>& visit, bool parallel) const override;
  std::vector<ActorId> LinkedDevices(ActorId user, int64_t as_of_ms) const override;
  std::vector<IdentityLink> LinksOfDevice(ActorId device) const override;
  std::vector<UserPropertyRecord> UserPropertyHistoryOf(ActorId actor) const override;
  std::span<const UserPropertyRecord> user_property_history() const override;
  std::span<const IdentityLink> identity_links() const override;
  std::span<const std::shared_ptr<const NumberColumnBatch>> number_columns() const override {
    return version_->number_columns;
  }

  // The sorted history and links (and links by user) of a catalog prefix, shared by every
  // snapshot of the same store: a server takes a snapshot per request, and sorting
  // millions of history records per request would cost more than answering it.
  struct SortedLogs;

 private:
  std::vector<const Segment*> Segments() const;
  // The segments `spec`'s time range touches, with the optional columns it asks for.
  struct Selected {
    const Segment* segment;
    std::shared_ptr<const ExtrasView> extras;  // null: no optional column asked for
  };
  Result<std::vector<Selected>> Select(const ScanSpec& spec, bool parallel) const;
  // A chunk of rows [begin, end) of `selected`, with `spec`'s columns.
  static EventChunk MakeChunk(const ScanSpec& spec, const Selected& selected, uint32_t begin,
                              uint32_t end);

  std::shared_ptr<const Catalog> catalog_;
  std::shared_ptr<const Version> version_;
  DictionarySnapshot actors_, event_types_, property_keys_, string_values_;
  int64_t min_time_ = INT64_MAX, max_time_ = INT64_MIN;
  // The catalog's append-only logs sorted, shared with the other snapshots of the store:
  // a large sorted base and a small sorted delta of the newest records (a commit sorts only
  // its own records into the delta; the delta is folded into the base when it grows past
  // an eighth of it). Per-actor lookups read both; the whole sorted span
  // (user_property_history(), identity_links()) is merged on first use.
  template <typename T>
  struct Parts {
    std::shared_ptr<const std::vector<T>> base, delta;
  };
  void LoadParts() const;
  mutable std::once_flag parts_once_, history_once_, links_once_;
  mutable Parts<UserPropertyRecord> history_parts_;
  mutable Parts<IdentityLink> links_parts_, links_by_user_parts_;
  mutable std::shared_ptr<const std::vector<UserPropertyRecord>> history_;
  mutable std::shared_ptr<const std::vector<IdentityLink>> links_;
};

namespace store_internal {
// The orders a snapshot keeps the catalog's logs in (user property history stably by
// (actor, time), links stably by device and by user), with the same code: exposed for
// tests of the sort of large logs.
std::vector<UserPropertyRecord> SortedHistory(std::span<const UserPropertyRecord> records);
std::vector<IdentityLink> SortedLinksByDevice(std::span<const IdentityLink> links);
std::vector<IdentityLink> SortedLinksByUser(std::span<const IdentityLink> links);
}  // namespace store_internal

}  // namespace sibyl
