// EmbeddedStore::Prepare: resolving a parsed batch's names to dictionary ids on the
// thread that parsed it, so the single writer thread mostly copies ids (hashing and
// probing the dictionaries was a fifth of its time).
#include <cstring>
#include <functional>

#include "store/embedded_store.h"

namespace sibyl {
namespace {

// One thread's memo of one dictionary, without locks: slots hold (32 bits of the name's
// hash << 32 | id + 1), and a hit is confirmed against the dictionary's name, which never
// changes or moves once published. A miss asks the dictionary (under its reader lock);
// names it does not hold yet stay unresolved for the writer.
class IdMemo {
 public:
  DictId Resolve(const Dictionary& dict, std::string_view name) {
    if (slots_.empty()) slots_.assign(1024, 0);
    uint64_t hash = std::hash<std::string_view>{}(name);
    uint64_t tag = hash >> 32;
    size_t mask = slots_.size() - 1;
    size_t i = hash & mask;
    for (uint64_t slot; (slot = slots_[i]) != 0; i = (i + 1) & mask) {
      if ((slot >> 32) != tag) continue;
      DictId id = static_cast<DictId>((slot & 0xffffffffu) - 1);
      if (SameName(dict.name(id), name)) return id;
    }
    std::optional<DictId> id = dict.Find(name);
    if (!id) return kNoDictId;
    if ((used_ + 1) * 2 > slots_.size()) {
      // Full: start over, twice as big (entries come back on their next miss).
      slots_.assign(slots_.size() * 2, 0);
      used_ = 0;
      mask = slots_.size() - 1;
      for (i = hash & mask; slots_[i] != 0; i = (i + 1) & mask) {}
    }
    slots_[i] = (tag << 32) | (static_cast<uint64_t>(*id) + 1);
    ++used_;
    return *id;
  }

 private:
  std::vector<uint64_t> slots_;
  size_t used_ = 0;
};

struct PrepareMemo {
  uint64_t store = 0;  // serial of the store the ids belong to
  IdMemo event_types, property_keys, string_values;
};

}  // namespace

void EmbeddedStore::Prepare(EventBatch& batch) const {
  if (options_.read_only) return;
  thread_local PrepareMemo memo;
  if (memo.store != serial_) memo = PrepareMemo{serial_, {}, {}, {}};
  const Catalog& c = *catalog_;
  EventBatch::ResolvedIds& r = batch.resolved;
  r.store = serial_;
  auto value_id = [&](const Value& v) {
    bool text = v.kind == ValueKind::kString || v.kind == ValueKind::kArray;
    return text ? memo.string_values.Resolve(c.string_values, v.text) : kNoDictId;
  };
  r.event_types.resize(batch.events.size());
  r.insert_id_hashes.resize(batch.events.size());
  for (size_t i = 0; i < batch.events.size(); ++i) {
    const ParsedEvent& e = batch.events[i];
    r.insert_id_hashes[i] = e.insert_id.empty() ? 0 : HashInsertId(e.insert_id);
    r.event_types[i] = e.is_identify ? kNoDictId : memo.event_types.Resolve(c.event_types, e.event_type);
  }
  // Event properties and user property updates: both are (key, value) lists.
  auto resolve = [&](const auto& items, std::vector<DictId>& keys, std::vector<DictId>& values) {
    keys.resize(items.size());
    values.resize(items.size());
    for (size_t i = 0; i < items.size(); ++i) {
      keys[i] = memo.property_keys.Resolve(c.property_keys, items[i].key);
      values[i] = value_id(items[i].value);
    }
  };
  resolve(batch.properties, r.property_keys, r.property_values);
  resolve(batch.user_updates, r.update_keys, r.update_values);
}

}  // namespace sibyl
