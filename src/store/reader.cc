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
  std::erase_if(values, [](const auto& kv) { return kv.second.kind == ValueKind::kNull; });
  std::sort(values.begin(), values.end(),
            [](const auto& a, const auto& b) { return a.first < b.first; });
  return values;
}

}  // namespace sibyl
