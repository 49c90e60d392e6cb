// EventReader: the read interface every query uses. The embedded store implements it over
// its columnar parts; a ClickHouse backend can sit beside it later. A reader is a
// snapshot: it sees every event acknowledged before it was opened and nothing after.
#pragma once

#include <cstdint>
#include <algorithm>
#include <functional>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "common/status.h"
#include "event/event.h"

namespace sibyl {

// Dense index of an actor: a user id, or a device id seen without a user id.
using ActorId = uint32_t;
// Dense index of an event type, a property key, or a string property value.
using DictId = uint32_t;
inline constexpr DictId kNoDictId = UINT32_MAX;

// A name <-> dense id mapping (event types, property keys, string values, actors).
class DictionaryView {
 public:
  virtual ~DictionaryView() = default;
  virtual size_t size() const = 0;
  virtual std::string_view name(DictId id) const = 0;
  virtual std::optional<DictId> Find(std::string_view name) const = 0;
};

// A stored property value. Strings and arrays are ids into string_values(); numbers and
// booleans are kept as doubles (booleans as 0/1). The kind goes last so the value takes 16
// bytes, not 24: scans decode tens of millions of them. Built as {kind, number, string}.
struct StoredValue {
  constexpr StoredValue() = default;
  constexpr StoredValue(ValueKind k, double n, DictId s) : number(n), string(s), kind(k) {}

  double number = 0;          // kNumber, kBool
  DictId string = kNoDictId;  // kString, kArray (canonical JSON)
  ValueKind kind = ValueKind::kNull;

  // The same value: same kind, number and string id (strings are interned, so equal ids
  // are equal strings).
  friend constexpr bool operator==(const StoredValue&, const StoredValue&) = default;
};
static_assert(sizeof(StoredValue) == 16);

// The values of one event property over the rows of a chunk; sparse: only rows that have
// the property appear, in ascending row order. A key absent from a chunk has no rows.
struct PropertyColumn {
  DictId key = kNoDictId;
  std::span<const uint32_t> rows;
  std::span<const StoredValue> values;
};

// Event type ids fit 16 bits in chunks (at most 65,535 event types; Amplitude allows
// 2,000), which keeps the decoded core columns at 14 bytes an event in memory.
using EventTypeId = uint16_t;

// A slice of events in columnar form, sorted by (actor, time).
// How an event's session relates to the event before it in its segment (rows sorted by
// actor, then time), in one byte an event: a consumer reads the 8-byte session id only
// where the session changes (or the week does), not for every event.
enum SessionMark : uint8_t {
  kNoSession = 0,    // the event had no session id (-1)
  kSameSession = 1,  // the same session id as the row before it
  kNewSession = 2,   // a session id other than the row before it's (or the first row)
};

struct EventChunk {
  size_t size = 0;
  // Property rows count from the start of the stored segment; row r of a property column
  // is chunk row r - first_row. 0 for chunks from Scan.
  uint32_t first_row = 0;
  std::span<const ActorId> actor;
  std::span<const int64_t> time;  // epoch ms
  std::span<const EventTypeId> event_type;
  // Only filled when ScanSpec::with_sessions: per event, a SessionMark saying
  // whether it had a session and whether it is another session than the event before
  // it (an actor's events are consecutive, in time order). The first event of a run of an
  // actor's events starts a session when it has one.
  std::span<const uint8_t> session_marks;
  // Filled with session_marks: per event, its session id (-1: none). Counting distinct
  // sessions needs the ids: marks alone count two interleaved sessions at every switch,
  // and a session that continues in another segment once more.
  std::span<const int64_t> session_ids;
  // The properties the scan asked for, in ScanSpec::property_keys order.
  std::vector<PropertyColumn> properties;
};

struct ScanSpec {
  int64_t begin_ms = INT64_MIN;  // inclusive
  int64_t end_ms = INT64_MAX;    // exclusive
  std::vector<DictId> event_types;    // empty: all types
  std::vector<DictId> property_keys;  // properties to load alongside the core columns
  bool with_sessions = false;         // also decode session marks and ids
  // Property columns and session ids are only wanted for events at or after these times:
  // segments that end before them are not decoded for them, and their chunks carry none.
  // Decoding is most of a wide scan's cost, and a query over all history (recency) may
  // need them only for its last weeks.
  int64_t properties_begin_ms = INT64_MIN;
  int64_t sessions_begin_ms = INT64_MIN;
  // ScanActorBlocks: only the actors in [first_actor, end_actor) are wanted (a block of a
  // scoring run's users). A hint: blocks outside it are skipped, but a visitor may still
  // see other actors of the blocks it gets, and must skip them.
  ActorId first_actor = 0;
  ActorId end_actor = UINT32_MAX;
};

// One change to a user property, as stored: the history of every user property. The
// store applies $set/$setOnce/$add/$append/$unset when the update arrives and records the
// resulting value (kind kNull: unset), so a value as of T is the last record before T.
struct UserPropertyRecord {
  ActorId actor = 0;
  int64_t time_ms = 0;
  DictId key = kNoDictId;
  StoredValue value;
};

// Numbers set on many actors at one time, kept as columns: scoring's write-back of a run
// (a million users' scores, percentiles and model version). As records these were three
// 32-byte history records and three latest-value entries per user, every run; as columns
// they are an actor id and 8 bytes a value, and a value shared by every actor (the model
// version) is stored once.
//
// A column value counts as a user property set at `time_ms`. As of T, a property's value
// is the latest write strictly before T among history records and column batches; at
// equal times a column batch wins over records and a later batch over an earlier one.
// Column values never feed $add/$append/$setOnce of events (those see history records
// only), and they do not count as activity (first seen). See docs/FORMAT.md.
struct NumberColumnBatch {
  struct Column {
    DictId key = kNoDictId;
    std::vector<double> values;  // one per actor, or a single value that every actor has
  };
  int64_t time_ms = 0;
  std::vector<ActorId> actors;  // ascending, distinct
  std::vector<Column> columns;

  // Row of `actor` in this batch, or SIZE_MAX.
  size_t RowOf(ActorId actor) const {
    auto it = std::lower_bound(actors.begin(), actors.end(), actor);
    return it != actors.end() && *it == actor ? static_cast<size_t>(it - actors.begin()) : SIZE_MAX;
  }
  double Value(size_t column, size_t row) const {
    const std::vector<double>& v = columns[column].values;
    return v.size() == 1 ? v[0] : v[row];
  }
  // Index of `key` in columns, or SIZE_MAX.
  size_t ColumnOf(DictId key) const {
    for (size_t c = 0; c < columns.size(); ++c)
      if (columns[c].key == key) return c;
    return SIZE_MAX;
  }
};

// A device linked to a user: from `time_ms` on (events at or after it and, for queries as
// of a later cutoff, the device's earlier anonymous events too) the device's events
// belong to `user`.
struct IdentityLink {
  ActorId device = 0;
  ActorId user = 0;
  int64_t time_ms = 0;
};

// Which of two links of one device decides it (docs/ARCHITECTURE.md, "Identity rule"): the
// earlier event, and on equal times the user whose actor name sorts first. A pure function
// of the events, not of the order they arrived in: a device's events belong to the user of
// its earliest event that carries both ids, from that event's time on. The store keeps a
// link for every event that was the earliest of its device when it arrived, so the
// deciding one is the least of a device's links under this order.
// LinkOverrules: whether a link to `user` at `time_ms` takes a device from its deciding
// link so far, to `current_user` at `current_ms` (INT64_MAX: none yet). `names` maps actor
// ids to names (a Dictionary or a DictionaryView).
template <typename Names>
bool LinkOverrules(ActorId user, int64_t time_ms, ActorId current_user, int64_t current_ms, const Names& names) {
  // Times decide almost always; the names are looked up only on a tie.
  if (current_ms == INT64_MAX) return true;
  if (time_ms != current_ms) return time_ms < current_ms;
  return names.name(user) < names.name(current_user);
}

class EventReader {
 public:
  virtual ~EventReader() = default;

  virtual const DictionaryView& actors() const = 0;  // names: "u:<user_id>" / "d:<device_id>"
  virtual const DictionaryView& event_types() const = 0;
  virtual const DictionaryView& property_keys() const = 0;      // event and user properties
  virtual const DictionaryView& string_values() const = 0;

  // Totals over the snapshot.
  virtual uint64_t event_count() const = 0;
  virtual int64_t min_time_ms() const = 0;  // INT64_MAX when empty
  virtual int64_t max_time_ms() const = 0;  // INT64_MIN when empty

  // Calls `visit` for chunks holding every event matching `spec` (and possibly others in
  // the same time range: callers filter by time and type; chunks are cheap to skip).
  // Chunks may be visited from several threads at once when `parallel` is true.
  virtual Status Scan(const ScanSpec& spec,
                      const std::function<Status(const EventChunk&)>& visit,
                      bool parallel = false) const = 0;

  // The events of a block of consecutive actors [first_actor, end_actor), gathered from
  // every stored segment: one chunk per segment that has rows for them.
  struct ActorBlock {
    ActorId first_actor = 0;
    ActorId end_actor = 0;
    std::vector<EventChunk> chunks;
  };

  // Visits all actors in blocks of `actors_per_block` consecutive ids; every event of a
  // block's actors that `spec` selects is in that block's chunks (possibly with others in
  // the same segments: callers filter by time and type). Blocks are disjoint, so visitors
  // running on different threads (`parallel`) never share an actor: per-actor results
  // need no locks, and a block's rows stay in cache.
  virtual Status ScanActorBlocks(const ScanSpec& spec, uint32_t actors_per_block,
                                 const std::function<Status(const ActorBlock&)>& visit,
                                 bool parallel = false) const = 0;

  // The events of a few actors out of many, found by binary search in each stored segment
  // instead of a walk over all of them: the path for one user's score in real time or the
  // hourly run's active users. `actors` must be ascending and distinct. `visit` gets one
  // block [actor, actor + 1) per actor of `actors` (with no chunks when the actor has no
  // events `spec` selects), holding the same rows and columns ScanActorBlocks would give
  // for that actor. With `parallel`, visitors may run on two threads (disjoint actors).
  // Decoded property and session columns are kept for later gathers (a server scores one
  // user at a time), so the first gather of a part pays its decoding once.
  virtual Status GatherActors(std::span<const ActorId> actors, const ScanSpec& spec,
                              const std::function<Status(const ActorBlock&)>& visit,
                              bool parallel = false) const;

  // The actor whose events `actor`'s count for as of `as_of_ms`: ResolveIdentities for
  // one actor, without building the whole map.
  ActorId ResolveIdentity(ActorId actor, int64_t as_of_ms) const;
  // The devices whose events count for `user` as of `as_of_ms` (linked to it by a link
  // made before then; ResolveIdentity(device) == user), ascending.
  virtual std::vector<ActorId> LinkedDevices(ActorId user, int64_t as_of_ms) const;
  // The identity links of one device, in identity_links() order.
  virtual std::vector<IdentityLink> LinksOfDevice(ActorId device) const;
  // One actor's slice of user_property_history() (sorted by time, arrival order among
  // equal times). Per-actor paths use it: a snapshot taken right after a commit answers
  // it without building the store's whole sorted history.
  virtual std::vector<UserPropertyRecord> UserPropertyHistoryOf(ActorId actor) const;

  // Whether this reader answers for `actor`: cohorts list only actors it owns. A store
  // owns every actor. A slice of a cluster (clickhouse/slice_store.h) also holds rows of
  // other users that its own users' identities depend on (the user a shared device was
  // linked to first), and owns only its users.
  virtual bool OwnsAll() const { return true; }
  virtual bool Owns(ActorId actor) const { return true; }

  // One actor's events in [begin, end), in time order.
  virtual Status ScanActor(ActorId actor, int64_t begin_ms, int64_t end_ms,
                           const std::function<void(int64_t time_ms, DictId event_type)>& visit)
      const = 0;

  // Every user property change, sorted by (actor, time, arrival order).
  virtual std::span<const UserPropertyRecord> user_property_history() const = 0;

  // Every identity link, sorted by device.
  virtual std::span<const IdentityLink> identity_links() const = 0;

  // Every number column batch, in commit order.
  virtual std::span<const std::shared_ptr<const NumberColumnBatch>> number_columns() const { return {}; }
  // Where the latest value of `key` for `actor` in number_columns() strictly before
  // `as_of_ms` is (the latest batch time wins, then the later batch); batch null: none.
  struct NumberColumnRow {
    const NumberColumnBatch* batch = nullptr;
    size_t row = 0;
    double Value(DictId key) const { return batch->Value(batch->ColumnOf(key), row); }
  };
  NumberColumnRow NumberColumnRowAsOf(ActorId actor, DictId key, int64_t as_of_ms) const;
  // The same for every actor below `actors`, indexed by actor.
  std::vector<NumberColumnRow> NumberColumnRowsAsOf(DictId key, int64_t as_of_ms, size_t actors) const;

  // For each actor, the actor its events count for as of `as_of_ms`: itself, or the user
  // its device was linked to by a link made before `as_of_ms`.
  std::vector<ActorId> ResolveIdentities(int64_t as_of_ms) const;

  // User properties of `actor` as of `as_of_ms`: for each key, the last record strictly
  // before `as_of_ms`, or the number column value that is later (see NumberColumnBatch).
  // Keys never set, or unset last, are absent.
  std::vector<std::pair<DictId, StoredValue>> UserPropertiesAsOf(ActorId actor,
                                                                int64_t as_of_ms) const;
};

}  // namespace sibyl
