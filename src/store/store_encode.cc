// The write path of EmbeddedStore: encoding parsed batches against the dictionaries,
// de-duplication, identity links, user property operations, and transactions.
#include <fmt/format.h>

#include <cmath>
#include <span>
#include <unordered_map>

#include "store/codec.h"
#include "store/embedded_store.h"
#include "store/number_columns.h"

namespace sibyl {
namespace {

// Equal names: the same bytes (Prepare points an id equal to the previous event's at its
// bytes), or bytes compared inline (most names are short: a call to memcmp cost more).
bool SameText(std::string_view a, std::string_view b) {
  return (a.data() == b.data() && a.size() == b.size()) || SameName(a, b);
}

// Equal, idempotent update lists: re-applying `b` after `a` changes nothing. `ids` are
// the batch's resolved ids of update keys and values (null when it has none): equal ids
// are equal names, with no need to read them.
bool SameUpdates(std::span<const UserPropertyUpdate> a, std::span<const UserPropertyUpdate> b,
                 const UserPropertyUpdate* first, const EventBatch::ResolvedIds* ids) {
  if (a.size() != b.size()) return false;
  auto same_name = [&](const UserPropertyUpdate& x, const UserPropertyUpdate& y, std::string_view xs,
                       std::string_view ys, const std::vector<DictId>* known) {
    if (known != nullptr) {
      DictId i = (*known)[static_cast<size_t>(&x - first)], j = (*known)[static_cast<size_t>(&y - first)];
      if (i != kNoDictId && j != kNoDictId) return i == j;
    }
    return SameText(xs, ys);
  };
  for (size_t i = 0; i < a.size(); ++i) {
    const UserPropertyUpdate& x = a[i];
    const UserPropertyUpdate& y = b[i];
    if (x.op != y.op || x.op == UserPropertyOp::kAdd || x.op == UserPropertyOp::kAppend) return false;
    if (x.value.kind != y.value.kind || x.value.boolean != y.value.boolean || x.value.number != y.value.number)
      return false;
    if (!same_name(x, y, x.key, y.key, ids ? &ids->update_keys : nullptr)) return false;
    if (!same_name(x, y, x.value.text, y.value.text, ids ? &ids->update_values : nullptr)) return false;
  }
  return true;
}

// A total order of values, for the one choice arrival order must not make: which of two
// values set at the same millisecond holds from then on (the greater does).
bool ValueSortsBefore(const StoredValue& a, const StoredValue& b, const Dictionary& strings) {
  if (a.kind != b.kind) return a.kind < b.kind;
  if (a.kind == ValueKind::kString || a.kind == ValueKind::kArray)
    return a.string != b.string && strings.name(a.string) < strings.name(b.string);
  return a.number < b.number;
}

// What a property's new value `next` at `time` does to the history, given its latest
// state (null: none) and the earliest run this transaction has seen behind it (null:
// none), so that the value as of any time does not depend on the order values arrive in
// (docs/ARCHITECTURE.md, "User properties"): records to append, in order, and how the
// two runs move. A run whose start moved back owes its record (UserState::pending) until
// the start is final: when another value arrives before it, or at commit.
struct RecordPlan {
  int n = 0;
  UserPropertyRecord records[3];
  bool move_latest_back = false;
  enum class Earliest { kKeep, kMoveBack, kSet } earliest = Earliest::kKeep;
  UserState earliest_state;  // kSet: the earliest run from now on

  // A new earliest run of `value` from `time`, its start owed.
  void StartEarliestRun(const StoredValue& value, int64_t time) {
    earliest = Earliest::kSet;
    earliest_state = UserState(value, time);
    earliest_state.MoveStartBack(time);
  }
};
RecordPlan PlanRecords(const UserState* latest, const UserState* earliest, ActorId actor, DictId key, int64_t time,
                       const StoredValue& next, const Dictionary& strings) {
  RecordPlan plan;
  auto add = [&](int64_t at, const StoredValue& value) { plan.records[plan.n++] = {actor, at, key, value}; };
  if (latest == nullptr) {
    add(time, next);  // even unsetting what was never set: a value set earlier may still arrive
    return plan;
  }
  // In time order. A repeat is no history; two values at one time: the greater holds, so
  // it goes last whatever came first (settling a pending start of the lesser one).
  const StoredValue value = latest->value();
  if (time >= latest->time_ms()) {
    if (next == value) return plan;
    if (time == latest->time_ms()) {
      add(time, next);
      if (ValueSortsBefore(next, value, strings)) add(time, value);
      return plan;
    }
    if (latest->pending()) add(latest->time_ms(), value);  // the run ends: its start is due
    add(time, next);
    return plan;
  }
  // Out of time order, with nothing seen behind the latest run: the same value starts
  // the run earlier; another one starts the earliest run.
  if (earliest == nullptr) {
    if (next == value) {
      plan.move_latest_back = true;
    } else {
      plan.StartEarliestRun(next, time);
    }
    return plan;
  }
  const StoredValue first = earliest->value();
  if (time < earliest->time_ms()) {
    if (next == first) {
      plan.earliest = RecordPlan::Earliest::kMoveBack;
    } else {
      if (earliest->pending()) add(earliest->time_ms(), first);
      plan.StartEarliestRun(next, time);
    }
  } else if (time == earliest->time_ms()) {
    if (next == first) return plan;
    if (earliest->pending()) add(time, first);
    add(time, next);
    const bool first_wins = ValueSortsBefore(next, first, strings);
    if (first_wins) add(time, first);
    plan.earliest = RecordPlan::Earliest::kSet;
    plan.earliest_state = UserState(first_wins ? first : next, time);
  } else {
    // Between the earliest and the latest run: kept, since what lies between them is not
    // known here.
    add(time, next);
  }
  return plan;
}

void AppendJsonString(std::string_view s, std::string* out) {
  out->push_back('"');
  for (char c : s) {
    switch (c) {
      case '"': out->append("\\\""); break;
      case '\\': out->append("\\\\"); break;
      case '\n': out->append("\\n"); break;
      case '\t': out->append("\\t"); break;
      case '\r': out->append("\\r"); break;
      default:
        if (static_cast<unsigned char>(c) < 0x20) {
          out->append(fmt::format("\\u{:04x}", static_cast<unsigned>(c)));
        } else {
          out->push_back(c);
        }
    }
  }
  out->push_back('"');
}

// The elements of a value as JSON array items (without brackets).
std::string ArrayItems(const Value& v) {
  std::string out;
  switch (v.kind) {
    case ValueKind::kNull: break;
    case ValueKind::kBool: out = v.boolean ? "true" : "false"; break;
    case ValueKind::kNumber: out = fmt::format("{}", v.number); break;
    case ValueKind::kString: AppendJsonString(v.text, &out); break;
    case ValueKind::kArray:
      if (v.text.size() >= 2) out = std::string(v.text.substr(1, v.text.size() - 2));
      break;
  }
  return out;
}

void PutValue(ByteWriter& w, const StoredValue& v) {
  w.U8(static_cast<uint8_t>(v.kind));
  if (v.kind == ValueKind::kNumber || v.kind == ValueKind::kBool) w.F64(v.number);
  if (v.kind == ValueKind::kString || v.kind == ValueKind::kArray) w.Varint(v.string);
}

StoredValue GetValue(ByteReader& r) {
  StoredValue v;
  v.kind = static_cast<ValueKind>(r.U8());
  if (v.kind == ValueKind::kNumber || v.kind == ValueKind::kBool) v.number = r.F64();
  if (v.kind == ValueKind::kString || v.kind == ValueKind::kArray)
    v.string = static_cast<DictId>(r.Varint());
  return v;
}

}  // namespace

uint64_t HashInsertId(std::string_view id) {
  // FNV-1a then a murmur finaliser: stable across builds and platforms (std::hash is
  // not guaranteed to be), which matters because the hashes are persisted.
  uint64_t h = 1469598103934665603ull;
  for (unsigned char c : id) h = (h ^ c) * 1099511628211ull;
  h ^= h >> 33;
  h *= 0xff51afd7ed558ccdull;
  h ^= h >> 33;
  h *= 0xc4ceb9fe1a85ec53ull;
  h ^= h >> 33;
  return h;
}

Result<StagedBatch> EmbeddedStore::Encode(const EventBatch& batch, TransactionOverlay& overlay) {
  Catalog& c = *catalog_;
  StagedBatch staged;
  staged.ingested_ms = options_.clock->NowMs();
  std::vector<EncodedEvent> events;
  std::vector<EncodedProperty> properties;
  events.reserve(batch.events.size());
  properties.reserve(batch.properties.size());

  // Consecutive events mostly come from the same user and device (a session): remember
  // the last id of each kind instead of hashing and probing the actor dictionary again.
  struct LastActor {
    std::string_view id;
    ActorId actor = 0;
    bool valid = false;
  } last_user, last_device;
  auto intern_actor = [&](char prefix, std::string_view id) {
    LastActor& last = prefix == 'u' ? last_user : last_device;
    if (last.valid && SameText(last.id, id)) return last.actor;
    scratch_key_.clear();
    scratch_key_.push_back(prefix);
    scratch_key_.push_back(':');
    scratch_key_.append(id);
    last = {id, c.actors.Intern(scratch_key_), true};
    return last.actor;
  };
  // Ids resolved ahead by Prepare (on the parse threads), when they are this store's and
  // match the batch; kNoDictId entries and batches without them are interned here.
  const EventBatch::ResolvedIds& resolved = batch.resolved;
  bool have_resolved = resolved.store == serial_ &&
                       resolved.event_types.size() == batch.events.size() &&
                       resolved.property_keys.size() == batch.properties.size() &&
                       resolved.property_values.size() == batch.properties.size() &&
                       resolved.update_keys.size() == batch.user_updates.size() &&
                       resolved.update_values.size() == batch.user_updates.size();
  auto intern = [](Dictionary& dict, std::string_view name, DictId known) {
    return known != kNoDictId ? known : dict.Intern(name);
  };
  auto store_value = [&](const Value& v, DictId known = kNoDictId) -> StoredValue {
    switch (v.kind) {
      case ValueKind::kNull: return {};
      case ValueKind::kBool: return {ValueKind::kBool, v.boolean ? 1.0 : 0.0, kNoDictId};
      case ValueKind::kNumber: return {ValueKind::kNumber, v.number, kNoDictId};
      case ValueKind::kString: return {ValueKind::kString, 0, intern(c.string_values, v.text, known)};
      case ValueKind::kArray: return {ValueKind::kArray, 0, intern(c.string_values, v.text, known)};
    }
    return {};
  };
  auto current_state = [&](uint64_t key) -> const UserState* {
    if (auto it = overlay.user_values.find(key); it != overlay.user_values.end()) return &it->second;
    if (auto it = user_values_.find(key); it != user_values_.end()) return &it->second;
    return nullptr;
  };
  auto owner_of = [&](ActorId device) -> const DeviceOwner* {
    if (auto it = overlay.device_owner.find(device); it != overlay.device_owner.end())
      return &it->second;
    if (auto it = device_owner_.find(device); it != device_owner_.end()) return &it->second;
    return nullptr;
  };

  // De-duplication first, for the whole batch: the index is far bigger than the caches,
  // and inserting many ids at once lets their memory loads overlap.
  // (The parse threads usually hashed the ids already, in Prepare.)
  std::vector<uint64_t> hashes;
  std::vector<uint32_t> with_id;
  bool have_hashes = have_resolved && resolved.insert_id_hashes.size() == batch.events.size();
  for (uint32_t i = 0; i < batch.events.size(); ++i) {
    if (batch.events[i].insert_id.empty()) continue;
    hashes.push_back(have_hashes ? resolved.insert_id_hashes[i] : HashInsertId(batch.events[i].insert_id));
    with_id.push_back(i);
  }
  std::unique_ptr<bool[]> added(new bool[hashes.size() + 1]);
  dedup_.InsertMany(hashes.data(), hashes.size(), staged.ingested_ms, added.get());
  std::vector<char> duplicate(batch.events.size(), 0);
  for (size_t k = 0; k < hashes.size(); ++k) {
    if (added[k]) {
      staged.dedup_hashes.push_back(hashes[k]);
    } else {
      duplicate[with_id[k]] = 1;
      ++staged.counts.duplicates_dropped;
    }
  }

  struct LastUpdates {
    std::span<const UserPropertyUpdate> updates;
    int64_t time_ms;
  };
  std::unordered_map<ActorId, LastUpdates> last_updates;
  ActorId linked_device = 0, linked_user = 0;
  int64_t linked_time = 0;
  bool has_linked_device = false;
  for (size_t index = 0; index < batch.events.size(); ++index) {
    const ParsedEvent& e = batch.events[index];
    if (duplicate[index]) continue;
    int64_t time = e.has_time ? e.time_ms : staged.ingested_ms;
    ActorId actor;
    if (!e.user_id.empty()) {
      actor = intern_actor('u', e.user_id);
      if (!e.device_id.empty()) {
        ActorId device = intern_actor('d', e.device_id);
        // The earliest event with both ids decides the device (LinkOverrules): an
        // event that comes before the device's deciding link so far, whenever it arrives,
        // adds a link that decides from now on, so any arrival order ends with the same
        // deciding link. Events mostly arrive in time order: a repeat of the previous
        // event's pair at the same time or later changes nothing and needs no lookup.
        const bool repeat = has_linked_device && linked_device == device && linked_user == actor &&
                            time >= linked_time;
        if (!repeat) {
          const DeviceOwner none;
          const DeviceOwner* owner = owner_of(device);
          if (owner == nullptr) owner = &none;
          if (LinkOverrules(actor, time, owner->user, owner->time_ms, c.actors)) {
            overlay.device_owner[device] = {actor, time};
            staged.links.push_back({device, actor, time});
            ++staged.counts.identity_links;
          }
          has_linked_device = true;
          linked_device = device;
          linked_user = actor;
          linked_time = time;
        }
      }
    } else {
      actor = intern_actor('d', e.device_id);
    }

    // Events usually repeat their user's device fields and properties verbatim. When the
    // updates equal those of the actor's previous event in this batch, are all idempotent
    // ($set, $setOnce, $unset) and come no earlier, applying them again changes nothing.
    auto updates = batch.UserUpdatesOf(e);
    if (!updates.empty()) {
      auto [it, fresh] = last_updates.try_emplace(actor, LastUpdates{updates, time});
      if (!fresh && time >= it->second.time_ms &&
          SameUpdates(it->second.updates, updates, batch.user_updates.data(), have_resolved ? &resolved : nullptr))
        updates = {};
      else it->second = {updates, time};
    }
    for (const UserPropertyUpdate& u : updates) {
      size_t at = static_cast<size_t>(&u - batch.user_updates.data());
      DictId known_value = have_resolved ? resolved.update_values[at] : kNoDictId;
      DictId key = intern(c.property_keys, u.key, have_resolved ? resolved.update_keys[at] : kNoDictId);
      uint64_t slot = UserKey(actor, key);
      const UserState* state = current_state(slot);
      // $setOnce, $add and $append build on the latest value by time.
      const StoredValue latest = state != nullptr ? state->value() : StoredValue{};
      const StoredValue* current = latest.kind != ValueKind::kNull ? &latest : nullptr;
      StoredValue next;
      bool change = true;
      switch (u.op) {
        case UserPropertyOp::kSet: next = store_value(u.value, known_value); break;
        case UserPropertyOp::kSetOnce:
          change = current == nullptr;
          if (change) next = store_value(u.value, known_value);
          break;
        case UserPropertyOp::kAdd: {
          change = u.value.kind == ValueKind::kNumber;
          double base = current && current->kind == ValueKind::kNumber ? current->number : 0;
          next = {ValueKind::kNumber, base + u.value.number, kNoDictId};
          break;
        }
        case UserPropertyOp::kAppend: {
          std::string items;
          if (current != nullptr) {
            Value as_value;
            as_value.kind = current->kind;
            as_value.number = current->number;
            as_value.boolean = current->number != 0;
            if (current->kind == ValueKind::kString || current->kind == ValueKind::kArray)
              as_value.text = c.string_values.name(current->string);
            items = ArrayItems(as_value);
          }
          std::string added = ArrayItems(u.value);
          if (!items.empty() && !added.empty()) items.push_back(',');
          items += added;
          next = {ValueKind::kArray, 0, c.string_values.Intern("[" + items + "]")};
          break;
        }
        case UserPropertyOp::kUnset: next = {}; break;
      }
      if (!change) continue;
      // Events usually repeat the user's properties; only what changes a value at some
      // time is history.
      auto earliest = overlay.earliest_runs.find(slot);
      const RecordPlan plan = PlanRecords(state, earliest == overlay.earliest_runs.end() ? nullptr : &earliest->second,
                                          actor, key, time, next, c.string_values);
      switch (plan.earliest) {
        case RecordPlan::Earliest::kKeep: break;
        case RecordPlan::Earliest::kMoveBack: earliest->second.MoveStartBack(time); break;
        case RecordPlan::Earliest::kSet: overlay.earliest_runs.insert_or_assign(slot, plan.earliest_state); break;
      }
      if (plan.n == 0 && !plan.move_latest_back) continue;
      auto [it, fresh] = overlay.user_values.try_emplace(slot);
      if (fresh) {
        // A slot new to the overlay starts from the store's state; none means the store's
        // map gains an entry at commit.
        if (state != nullptr) it->second = *state;
        else ++overlay.new_user_values;
      }
      if (plan.move_latest_back) it->second.MoveStartBack(time);
      for (int i = 0; i < plan.n; ++i) {
        // Records behind the latest run leave it as it is (its start may still be owed).
        const bool known = state != nullptr || i > 0;
        if (!known || plan.records[i].time_ms >= it->second.time_ms()) AdvanceUserState(it->second, known, plan.records[i]);
        staged.records.push_back(plan.records[i]);
        ++staged.counts.user_property_changes;
      }
    }

    if (e.is_identify) {
      ++staged.counts.identify_calls;
      continue;
    }
    DictId type = intern(c.event_types, e.event_type, have_resolved ? resolved.event_types[index] : kNoDictId);
    if (type > UINT16_MAX)
      return ResourceExhausted("{}: more than 65,535 event types", batch.Describe(e.position));
    uint32_t begin = static_cast<uint32_t>(properties.size());
    for (uint32_t at = e.properties_begin; at < e.properties_end; ++at) {
      const Property& p = batch.properties[at];
      if (p.value.kind == ValueKind::kNull) continue;
      if (have_resolved) {
        properties.push_back({intern(c.property_keys, p.key, resolved.property_keys[at]),
                              store_value(p.value, resolved.property_values[at])});
      } else {
        properties.push_back({c.property_keys.Intern(p.key), store_value(p.value)});
      }
    }
    events.push_back({actor, static_cast<EventTypeId>(type), time, e.session_id, begin,
                      static_cast<uint32_t>(properties.size())});
  }
  staged.counts.events_written = events.size();
  // Encoded here once: the write-ahead log takes these bytes, and the staged segments
  // keep only them for their optional columns until a checkpoint or a query needs them.
  staged.segments = Segment::BuildEncoded(std::move(events), properties, kPartitionMs, kLogZstdLevel);
  return staged;
}

Status EmbeddedStore::LogDictionaryGrowth() {
  std::string payload;
  ByteWriter w(&payload);
  bool grew = false;
  for (int i = 0; i < Catalog::kDictionaries; ++i) {
    size_t first = logged_dictionary_sizes_[i];
    w.Varint(first);
    catalog_->dictionary(i)->EncodeFrom(static_cast<DictId>(first), &payload);
    size_t now = catalog_->dictionary(i)->size();
    grew |= now != first;
    logged_dictionary_sizes_[i] = now;
  }
  if (!grew) return Status::Ok();
  return wal_->Add(WalRecordType::kDictionary, payload);
}

std::string EmbeddedStore::EncodeStaged(uint64_t txn, const StagedBatch& s) const {
  std::string out;
  ByteWriter w(&out);
  w.Varint(txn);
  w.SignedVarint(s.ingested_ms);
  w.Varint(s.counts.duplicates_dropped);
  w.Varint(s.counts.identify_calls);
  w.Varint(s.counts.user_property_changes);
  w.Varint(s.counts.identity_links);
  w.Varint(s.segments.size());
  for (const auto& segment : s.segments) {
    if (segment->encoded()) {
      w.Bytes(*segment->encoded());
    } else {
      w.Bytes(segment->Encode(kLogZstdLevel));
    }
  }
  std::string raw;
  ByteWriter r(&raw);
  r.Varint(s.records.size());
  for (const auto& rec : s.records) {
    r.Varint(rec.actor);
    r.SignedVarint(rec.time_ms);
    r.Varint(rec.key);
    PutValue(r, rec.value);
  }
  r.Varint(s.links.size());
  for (const auto& link : s.links) {
    r.Varint(link.device);
    r.Varint(link.user);
    r.SignedVarint(link.time_ms);
  }
  r.Varint(s.dedup_hashes.size());
  for (uint64_t h : s.dedup_hashes) r.U64(h);
  // Logs written before number columns end here: the section is there only when used.
  if (s.number_columns) {
    r.U8(1);
    PutNumberColumns(*s.number_columns, r);
  }
  AppendCompressedBlock(raw, kLogZstdLevel, &out);
  return out;
}

Result<StagedBatch> EmbeddedStore::DecodeStaged(WalRecordType type, std::string_view payload,
                                                uint64_t* txn) const {
  StagedBatch s;
  ByteReader r(payload);
  *txn = r.Varint();
  s.ingested_ms = r.SignedVarint();
  s.counts.duplicates_dropped = r.Varint();
  s.counts.identify_calls = r.Varint();
  s.counts.user_property_changes = r.Varint();
  s.counts.identity_links = r.Varint();
  if (type == WalRecordType::kTxnData) {
    // Logs of older versions: one segment of the whole batch, empty for none.
    std::string_view segment_bytes = r.Bytes();
    if (!r.ok()) return Corruption("write-ahead log: truncated batch header");
    if (!segment_bytes.empty()) {
      ASSIGN_OR_RETURN(auto segment, Segment::DecodeBytes(segment_bytes, "write-ahead log batch"));
      s.segments.push_back(std::move(segment));
    }
  } else {
    uint64_t count = r.Varint();
    if (!r.ok() || count > payload.size()) return Corruption("write-ahead log: truncated batch header");
    for (uint64_t k = 0; k < count; ++k) {
      std::string_view segment_bytes = r.Bytes();
      if (!r.ok()) return Corruption("write-ahead log: truncated batch header");
      // A copy: the log file is unmapped after replay, and the segment decodes its
      // optional columns from these bytes on demand.
      ASSIGN_OR_RETURN(auto segment, Segment::DecodeEncoded(std::make_shared<const std::string>(segment_bytes),
                                                           "write-ahead log batch"));
      s.segments.push_back(std::move(segment));
    }
  }
  for (const auto& segment : s.segments) s.counts.events_written += segment->size();
  ASSIGN_OR_RETURN(std::string raw, ReadCompressedBlock(r, "write-ahead log batch"));
  ByteReader b(raw);
  uint64_t n = b.Varint();
  for (uint64_t i = 0; i < n && b.ok(); ++i) {
    UserPropertyRecord rec;
    rec.actor = static_cast<ActorId>(b.Varint());
    rec.time_ms = b.SignedVarint();
    rec.key = static_cast<DictId>(b.Varint());
    rec.value = GetValue(b);
    s.records.push_back(rec);
  }
  n = b.Varint();
  for (uint64_t i = 0; i < n && b.ok(); ++i) {
    IdentityLink link;
    link.device = static_cast<ActorId>(b.Varint());
    link.user = static_cast<ActorId>(b.Varint());
    link.time_ms = b.SignedVarint();
    s.links.push_back(link);
  }
  n = b.Varint();
  for (uint64_t i = 0; i < n && b.ok(); ++i) s.dedup_hashes.push_back(b.U64());
  if (!b.ok()) return Corruption("write-ahead log: truncated batch body");
  if (!b.done()) {
    if (b.U8() != 1) return Corruption("write-ahead log: unknown section in a batch");
    ASSIGN_OR_RETURN(s.number_columns, GetNumberColumns(b, "write-ahead log batch"));
    if (!b.done()) return Corruption("write-ahead log: trailing bytes in a batch");
  }
  return s;
}

// The records a transaction still owes: the start of every run that moved back to an
// earlier time without a record (PlanRecords), in key order so the log does not depend on
// the map's iteration order.
StagedBatch PendingRunStarts(TransactionOverlay& overlay, int64_t now_ms) {
  StagedBatch owed;
  owed.ingested_ms = now_ms;
  for (UserValues* runs : {&overlay.earliest_runs, &overlay.user_values}) {
    for (auto& [slot, state] : *runs) {
      if (!state.pending()) continue;
      owed.records.push_back({static_cast<ActorId>(slot >> 32), state.time_ms(),
                              static_cast<DictId>(slot & 0xffffffffu), state.value()});
      state.set_value(state.value());  // recorded
    }
  }
  // A property's earliest run lies before its latest: by time within a property.
  std::sort(owed.records.begin(), owed.records.end(), [](const UserPropertyRecord& a, const UserPropertyRecord& b) {
    return std::tie(a.actor, a.key, a.time_ms) < std::tie(b.actor, b.key, b.time_ms);
  });
  owed.counts.user_property_changes = owed.records.size();
  return owed;
}

// A transaction holds the store's write lock for its whole life.
class StoreTransaction final : public Transaction {
  static constexpr size_t kBulkLoadBatches = 64;

 public:
  explicit StoreTransaction(EmbeddedStore* store)
      : store_(store), lock_(store->write_mutex_), id_(store->next_txn_++) {
    overlay_.dedup_size_before = store_->dedup_.size();
  }
  ~StoreTransaction() override {
    if (!committed_) store_->dedup_.TruncateTo(overlay_.dedup_size_before);
  }

  Result<AppendResult> Add(const EventBatch& batch) override {
    if (committed_ || failed_) return FailedPrecondition("transaction already ended");
    // A failed Add may have left part of the batch in the overlay: the transaction can
    // only be abandoned after that.
    failed_ = true;
    ASSIGN_OR_RETURN(StagedBatch staged, store_->Encode(batch, overlay_));
    return Stage(std::move(staged));
  }

  Result<AppendResult> SetNumbers(const NumberPropertyUpdates& updates) override {
    if (committed_ || failed_) return FailedPrecondition("transaction already ended");
    // A refused request leaves the overlay as it was, so the transaction goes on.
    ASSIGN_OR_RETURN(StagedBatch staged, store_->EncodeNumbers(updates));
    failed_ = true;
    return Stage(std::move(staged));
  }

  void ExpectEvents(uint64_t events) override {
    if (!committed_) store_->dedup_.Reserve(store_->dedup_.size() + events);
  }

  Status Commit() override {
    if (committed_ || failed_) return FailedPrecondition("transaction already ended");
    // Runs whose start moved back during the transaction get their records now, one a
    // property however many earlier repeats arrived, logged before the commit record.
    StagedBatch owed = PendingRunStarts(overlay_, store_->options_.clock->NowMs());
    if (!owed.records.empty()) {
      failed_ = true;
      RETURN_IF_ERROR(Stage(std::move(owed)).status());
    }
    std::string payload;
    ByteWriter(&payload).Varint(id_);
    RETURN_IF_ERROR(store_->wal_->Add(WalRecordType::kTxnCommit, payload));
    RETURN_IF_ERROR(store_->wal_->Sync());
    committed_ = true;
    // A transaction of many batches is a bulk load (`sibyl ingest` of a file): merging its
    // segments in memory only to merge them again when they are written out would sort
    // every event twice more, so it is checkpointed right away (one merge, into parts).
    bool bulk = batches_.size() > kBulkLoadBatches;
    // One resize for the whole commit (a bulk load of identifies can add millions of
    // values): growing by doublings would allocate, fault in and fill every intermediate
    // table.
    store_->user_values_.reserve(store_->user_values_.size() + overlay_.new_user_values);
    store_->ApplyCommitted(batches_, /*merge_memtable=*/!bulk);
    batches_.clear();
    uint64_t memtable_events = 0;
    for (const auto& s : store_->current()->memtable) memtable_events += s->size();
    if (bulk || memtable_events >= store_->options_.checkpoint_events) return store_->CheckpointLocked();
    return Status::Ok();
  }

 private:
  // Logs an encoded batch and keeps it for Commit. The caller has set failed_ first: an
  // error leaves it set, since the overlay holds the batch's changes.
  Result<AppendResult> Stage(StagedBatch staged) {
    // Dictionary names first: ids must replay identically whether or not this commits.
    RETURN_IF_ERROR(store_->LogDictionaryGrowth());
    RETURN_IF_ERROR(store_->wal_->Add(WalRecordType::kTxnSegments, store_->EncodeStaged(id_, staged)));
    failed_ = false;
    AppendResult counts = staged.counts;
    batches_.push_back(std::move(staged));
    return counts;
  }

 private:
  EmbeddedStore* store_;
  std::unique_lock<std::mutex> lock_;
  uint64_t id_;
  bool committed_ = false;
  bool failed_ = false;
  TransactionOverlay overlay_;
  std::vector<StagedBatch> batches_;
};

Result<std::unique_ptr<Transaction>> EmbeddedStore::Begin() {
  if (options_.read_only) return FailedPrecondition("store {} is open read-only", dir_);
  return std::unique_ptr<Transaction>(new StoreTransaction(this));
}

Result<AppendResult> EmbeddedStore::Append(const EventBatch& batch) {
  ASSIGN_OR_RETURN(auto txn, Begin());
  ASSIGN_OR_RETURN(AppendResult result, txn->Add(batch));
  RETURN_IF_ERROR(txn->Commit());
  return result;
}

}  // namespace sibyl
