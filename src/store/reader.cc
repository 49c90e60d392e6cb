#include "store/reader.h"

#include <algorithm>

namespace sibyl {

std::vector<ActorId> EventReader::ResolveIdentities(int64_t as_of_ms) const {
  std::vector<ActorId> owner(actors().size());
  for (size_t i = 0; i < owner.size(); ++i) owner[i] = static_cast<ActorId>(i);
  // Each device goes to its deciding link (LinkOverrules), when that was made before
  // as_of: a device's later links only ever come earlier in time, so once the deciding
  // link is after as_of every other one is too.
  std::vector<int64_t> decided_at(owner.size(), INT64_MAX);
  for (const IdentityLink& link : identity_links()) {
    if (link.device >= owner.size() || link.time_ms >= as_of_ms) continue;
    const ActorId device = link.device;
    if (LinkOverrules(link.user, link.time_ms, owner[device], decided_at[device], actors())) {
      decided_at[device] = link.time_ms;
      owner[device] = link.user;
    }
  }
  return owner;
}

std::vector<std::pair<DictId, StoredValue>> EventReader::UserPropertiesAsOf(
    ActorId actor, int64_t as_of_ms) const {
  auto history = user_property_history();
  auto lo = std::lower_bound(history.begin(), history.end(), actor,
                             [](const UserPropertyRecord& r, ActorId a) { return r.actor < a; });
  struct Latest {
    DictId key;
    StoredValue value;
    int64_t time_ms;
  };
  std::vector<Latest> latest;
  auto find = [&](DictId key) {
    return std::find_if(latest.begin(), latest.end(), [&](const Latest& l) { return l.key == key; });
  };
  auto set = [&](DictId key, const StoredValue& value, int64_t time_ms) {
    auto found = find(key);
    if (found == latest.end()) latest.push_back({key, value, time_ms});
    else *found = {key, value, time_ms};
  };
  for (auto it = lo; it != history.end() && it->actor == actor && it->time_ms < as_of_ms; ++it)
    set(it->key, it->value, it->time_ms);
  // Number columns in commit order: a value at or after a key's last write replaces it
  // (a batch wins a tie with records and with earlier batches).
  for (const auto& batch : number_columns()) {
    if (batch->time_ms >= as_of_ms) continue;
    const size_t row = batch->RowOf(actor);
    if (row == SIZE_MAX) continue;
    for (size_t c = 0; c < batch->columns.size(); ++c) {
      const DictId key = batch->columns[c].key;
      auto found = find(key);
      if (found == latest.end() || found->time_ms <= batch->time_ms)
        set(key, StoredValue{ValueKind::kNumber, batch->Value(c, row), kNoDictId}, batch->time_ms);
    }
  }
  std::vector<std::pair<DictId, StoredValue>> values;
  for (const Latest& l : latest)
    if (l.value.kind != ValueKind::kNull) values.emplace_back(l.key, l.value);
  std::sort(values.begin(), values.end(),
            [](const auto& a, const auto& b) { return a.first < b.first; });
  return values;
}

EventReader::NumberColumnRow EventReader::NumberColumnRowAsOf(ActorId actor, DictId key, int64_t as_of_ms) const {
  NumberColumnRow latest;
  // Commit order: a later batch replaces an earlier one of the same time.
  for (const auto& batch : number_columns()) {
    if (batch->time_ms >= as_of_ms || (latest.batch && batch->time_ms < latest.batch->time_ms) ||
        batch->ColumnOf(key) == SIZE_MAX)
      continue;
    if (size_t row = batch->RowOf(actor); row != SIZE_MAX) latest = {batch.get(), row};
  }
  return latest;
}

std::vector<EventReader::NumberColumnRow> EventReader::NumberColumnRowsAsOf(DictId key, int64_t as_of_ms,
                                                                            size_t actors) const {
  std::vector<NumberColumnRow> latest(actors);
  for (const auto& batch : number_columns()) {
    if (batch->time_ms >= as_of_ms || batch->ColumnOf(key) == SIZE_MAX) continue;
    for (size_t row = 0; row < batch->actors.size(); ++row) {
      const ActorId a = batch->actors[row];
      if (a >= actors || (latest[a].batch && latest[a].batch->time_ms > batch->time_ms)) continue;
      latest[a] = {batch.get(), row};
    }
  }
  return latest;
}

}  // namespace sibyl
