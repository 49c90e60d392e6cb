#include "store/reader.h"

#include <algorithm>

namespace sibyl {

std::vector<ActorId> EventReader::ResolveIdentities(int64_t as_of_ms) const {
  std::vector<ActorId> owner(actors().size());
  for (size_t i = 0; i < owner.size(); ++i) owner[i] = static_cast<ActorId>(i);
  for (const IdentityLink& link : identity_links())
    if (link.time_ms < as_of_ms && link.device < owner.size()) owner[link.device] = link.user;
  return owner;
}

std::vector<std::pair<DictId, StoredValue>> EventReader::UserPropertiesAsOf(
    ActorId actor, int64_t as_of_ms) const {
  auto history = user_property_history();
  auto lo = std::lower_bound(history.begin(), history.end(), actor,
                             [](const UserPropertyRecord& r, ActorId a) { return r.actor < a; });
  std::vector<std::pair<DictId, StoredValue>> values;
  for (auto it = lo; it != history.end() && it->actor == actor && it->time_ms < as_of_ms; ++it) {
    auto found = std::find_if(values.begin(), values.end(),
                              [&](const auto& kv) { return kv.first == it->key; });
    if (found != values.end()) {
      found->second = it->value;
    } else {
      values.emplace_back(it->key, it->value);
    }
  }
  // Number column values written at or after a key's last record replace it.
  std::vector<std::pair<DictId, int64_t>> record_times;  // (key, time of its last record)
  for (auto it = lo; it != history.end() && it->actor == actor && it->time_ms < as_of_ms; ++it)
    record_times.emplace_back(it->key, it->time_ms);
  std::vector<DictId> column_keys;
  for (const auto& batch : number_columns())
    for (const NumberColumnBatch::Column& c : batch->columns) column_keys.push_back(c.key);
  std::sort(column_keys.begin(), column_keys.end());
  column_keys.erase(std::unique(column_keys.begin(), column_keys.end()), column_keys.end());
  for (DictId key : column_keys) {
    auto latest = NumberColumnValueAsOf(actor, key, as_of_ms);
    if (!latest) continue;
    int64_t record_time = INT64_MIN;
    for (const auto& [k, t] : record_times)
      if (k == key) record_time = t;
    if (latest->first < record_time) continue;
    StoredValue number{ValueKind::kNumber, latest->second, kNoDictId};
    auto found = std::find_if(values.begin(), values.end(), [&](const auto& kv) { return kv.first == key; });
    if (found != values.end()) found->second = number;
    else values.emplace_back(key, number);
  }
  std::erase_if(values, [](const auto& kv) { return kv.second.kind == ValueKind::kNull; });
  std::sort(values.begin(), values.end(),
            [](const auto& a, const auto& b) { return a.first < b.first; });
  return values;
}

std::optional<std::pair<int64_t, double>> EventReader::NumberColumnValueAsOf(ActorId actor, DictId key,
                                                                              int64_t as_of_ms) const {
  std::optional<std::pair<int64_t, double>> latest;
  // Commit order: a later batch replaces an earlier one of the same time.
  for (const auto& batch : number_columns()) {
    if (batch->time_ms >= as_of_ms || (latest && batch->time_ms < latest->first)) continue;
    size_t column = batch->ColumnOf(key);
    if (column == SIZE_MAX) continue;
    size_t row = batch->RowOf(actor);
    if (row != SIZE_MAX) latest = std::pair(batch->time_ms, batch->Value(column, row));
  }
  return latest;
}

void EventReader::NumberColumnValuesAsOf(DictId key, int64_t as_of_ms, size_t actors, std::vector<int64_t>& times,
                                         std::vector<double>& values) const {
  times.assign(actors, INT64_MIN);
  values.assign(actors, 0);
  for (const auto& batch : number_columns()) {
    size_t column = batch->ColumnOf(key);
    if (batch->time_ms >= as_of_ms || column == SIZE_MAX) continue;
    const int64_t t = batch->time_ms;
    for (size_t row = 0; row < batch->actors.size(); ++row) {
      ActorId a = batch->actors[row];
      if (a >= actors || times[a] > t) continue;
      times[a] = t;
      values[a] = batch->Value(column, row);
    }
  }
}

}  // namespace sibyl
