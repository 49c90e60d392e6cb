// EmbeddedStore::Prepare: resolving a parsed batch's names to dictionary ids on the
// thread that parsed it, so the single writer thread mostly copies ids (hashing and
// probing the dictionaries was a fifth of its time).
#include <algorithm>
#include <cstring>

#include "store/embedded_store.h"

namespace sibyl {
namespace {

inline uint64_t Load64(const char* p) {
  uint64_t v;
  std::memcpy(&v, p, 8);
  return v;
}
inline uint64_t Load32(const char* p) {
  uint32_t v;
  std::memcpy(&v, p, 4);
  return v;
}
inline uint64_t Mix(uint64_t a, uint64_t b) {
  __uint128_t m = static_cast<__uint128_t>(a ^ 0xa0761d6478bd642full) * (b ^ 0xe7037ed1a0b428dbull);
  return static_cast<uint64_t>(m) ^ static_cast<uint64_t>(m >> 64);
}

// The memo's hash, inline and with fixed-size loads only (std::hash<string_view> is an
// out-of-line call that hashed byte groups in a loop: a fifth of Prepare's time; a
// variable-length memcpy per name was worse still). Lives only in this process's memory,
// so it need not be stable.
inline uint64_t MemoHash(std::string_view name) {
  const char* p = name.data();
  size_t n = name.size();
  uint64_t a, b;
  if (n >= 8) {
    const char* end = p + n;
    uint64_t h = n;
    for (; end - p > 16; p += 16) h = Mix(Load64(p) ^ h, Load64(p + 8) ^ 0x8ebc6af09c88c6e3ull);
    // The last 8 to 16 bytes: two loads, overlapping each other (or what the loop read).
    a = Load64(n > 16 ? end - 16 : p) ^ h;
    b = Load64(end - 8);
  } else if (n >= 4) {
    a = Load32(p) << 32 | Load32(p + n - 4);
    b = n;
  } else if (n > 0) {
    a = static_cast<uint64_t>(static_cast<uint8_t>(p[0])) << 16 |
        static_cast<uint64_t>(static_cast<uint8_t>(p[n >> 1])) << 8 | static_cast<uint8_t>(p[n - 1]);
    b = n;
  } else {
    a = 0;
    b = 0;
  }
  return Mix(a ^ 0x589965cc75374cc3ull, b ^ 0x1d8e4e27c47d124full);
}

// One thread's memo of one dictionary, without locks. Each slot holds 32 bits of the
// name's hash, its id and, when it fits, a copy of the name, so that a hit costs one
// cache line: confirming it against the dictionary's name (whose view and bytes live
// elsewhere) was two more cache misses a lookup for the many string values. Longer names
// are confirmed against the dictionary, whose names never change or move once
// published. A miss asks the dictionary (under its reader lock); names it does not hold
// yet stay unresolved for the writer.
class IdMemo {
 public:
  DictId Resolve(const Dictionary& dict, std::string_view name) {
    if (slots_.empty()) slots_.assign(1024, Slot{});
    uint64_t hash = MemoHash(name);
    uint32_t tag = static_cast<uint32_t>(hash >> 32);
    size_t mask = slots_.size() - 1;
    size_t i = hash & mask;
    for (; slots_[i].id_plus_one != 0; i = (i + 1) & mask) {
      const Slot& slot = slots_[i];
      if (slot.tag != tag) continue;
      DictId id = slot.id_plus_one - 1;
      if (slot.length <= Slot::kInline ? SameName(std::string_view(slot.name, slot.length), name)
                                       : SameName(dict.name(id), name))
        return id;
    }
    std::optional<DictId> id = dict.Find(name);
    if (!id) return kNoDictId;
    if ((used_ + 1) * 2 > slots_.size()) {
      // Full: start over, twice as big (entries come back on their next miss).
      slots_.assign(slots_.size() * 2, Slot{});
      used_ = 0;
      mask = slots_.size() - 1;
      for (i = hash & mask; slots_[i].id_plus_one != 0; i = (i + 1) & mask) {}
    }
    Slot& slot = slots_[i];
    slot.tag = tag;
    slot.id_plus_one = *id + 1;
    slot.length = static_cast<uint8_t>(std::min<size_t>(name.size(), Slot::kInline + 1));
    if (name.size() <= Slot::kInline) std::memcpy(slot.name, name.data(), name.size());
    ++used_;
    return *id;
  }

 private:
  struct Slot {
    static constexpr size_t kInline = 23;
    uint32_t tag = 0;
    DictId id_plus_one = 0;  // 0: empty
    uint8_t length = 0;      // kInline + 1: longer, not copied
    char name[kInline];
  };
  static_assert(sizeof(Slot) == 32);
  std::vector<Slot> slots_;
  size_t used_ = 0;
};

struct PrepareMemo {
  uint64_t store = 0;  // serial of the store the ids belong to
  IdMemo event_types, property_keys, string_values;
};

bool IsText(const Value& v) { return v.kind == ValueKind::kString || v.kind == ValueKind::kArray; }

}  // namespace

void EmbeddedStore::Prepare(EventBatch& batch) const {
  if (options_.read_only) return;
  thread_local PrepareMemo memo;
  if (memo.store != serial_) memo = PrepareMemo{serial_, {}, {}, {}};
  const Catalog& c = *catalog_;
  EventBatch::ResolvedIds& r = batch.resolved;
  r.store = serial_;
  auto value_id = [&](const Value& v) {
    return IsText(v) ? memo.string_values.Resolve(c.string_values, v.text) : kNoDictId;
  };
  r.event_types.resize(batch.events.size());
  r.insert_id_hashes.resize(batch.events.size());
  // Every (key, value) item gets an id slot; items outside any event's range (none from
  // the parsers) stay unresolved for the writer.
  r.property_keys.assign(batch.properties.size(), kNoDictId);
  r.property_values.assign(batch.properties.size(), kNoDictId);
  r.update_keys.assign(batch.user_updates.size(), kNoDictId);
  r.update_values.assign(batch.user_updates.size(), kNoDictId);
  // Names are mostly those of the previous event at the same place in its list (the same
  // device fields and user properties event after event, the same property keys): those
  // are compared in place, in memory just parsed, and their ids copied; equal names have
  // equal ids. Only the others go through the memo (three in four lookups were repeats).
  auto resolve = [&](const auto& items, uint32_t begin, uint32_t end, uint32_t previous_begin,
                     uint32_t previous_end, std::vector<DictId>& keys, std::vector<DictId>& values) {
    for (uint32_t at = begin; at < end; ++at) {
      const uint32_t same_place = previous_begin + (at - begin);
      const auto& item = items[at];
      if (same_place < previous_end) {
        const auto& before = items[same_place];
        keys[at] = SameName(item.key, before.key) ? keys[same_place]
                                                  : memo.property_keys.Resolve(c.property_keys, item.key);
        if (!IsText(item.value)) continue;
        if (IsText(before.value) && SameName(item.value.text, before.value.text)) {
          values[at] = values[same_place];
          continue;
        }
      } else {
        keys[at] = memo.property_keys.Resolve(c.property_keys, item.key);
      }
      values[at] = value_id(item.value);
    }
  };
  for (size_t i = 0; i < batch.events.size(); ++i) {
    ParsedEvent& e = batch.events[i];
    const ParsedEvent* previous = i > 0 ? &batch.events[i - 1] : nullptr;
    if (previous != nullptr) {
      // Ids equal to the previous event's point at its bytes: the writer compares each
      // event's ids with the previous ones, and reading them where it read them just
      // before spares it a cache miss on every event's line (parsed on another core).
      if (!e.user_id.empty() && SameName(e.user_id, previous->user_id)) e.user_id = previous->user_id;
      if (!e.device_id.empty() && SameName(e.device_id, previous->device_id)) e.device_id = previous->device_id;
    }
    r.insert_id_hashes[i] = e.insert_id.empty() ? 0 : HashInsertId(e.insert_id);
    if (e.is_identify) {
      r.event_types[i] = kNoDictId;
    } else if (previous != nullptr && !previous->is_identify && SameName(e.event_type, previous->event_type)) {
      r.event_types[i] = r.event_types[i - 1];
    } else {
      r.event_types[i] = memo.event_types.Resolve(c.event_types, e.event_type);
    }
    resolve(batch.properties, e.properties_begin, e.properties_end, previous ? previous->properties_begin : 0,
            previous ? previous->properties_end : 0, r.property_keys, r.property_values);
    resolve(batch.user_updates, e.user_updates_begin, e.user_updates_end,
            previous ? previous->user_updates_begin : 0, previous ? previous->user_updates_end : 0,
            r.update_keys, r.update_values);
  }
}

}  // namespace sibyl
