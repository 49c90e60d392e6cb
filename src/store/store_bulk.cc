// The bulk write of numbers as user properties of known actors (scoring's write-back).
// It stages the same records an identify event with `$set`s would, so reading, logging,
// replay and checkpoints need nothing new.
#include <algorithm>
#include <cmath>

#include "store/embedded_store.h"

namespace sibyl {

Result<StagedBatch> EmbeddedStore::EncodeNumbers(const NumberPropertyUpdates& updates,
                                                  TransactionOverlay& overlay) {
  constexpr size_t kMaxNameLength = 1024;  // Amplitude's string limit, as validation applies
  Catalog& c = *catalog_;
  const size_t actors = updates.actors.size();
  // Every check first: a refused request must not intern a name or stage anything.
  for (size_t k = 0; k < updates.columns.size(); ++k) {
    const auto& [name, values] = updates.columns[k];
    if (name.empty() || name.size() > kMaxNameLength)
      return InvalidArgument("column {}: property name must have 1 to {} characters", k, kMaxNameLength);
    if (values.size() != actors)
      return InvalidArgument("column {} (\"{}\"): {} values for {} actors", k, name, values.size(), actors);
    for (size_t i = 0; i < actors; ++i)
      if (!std::isfinite(values[i])) return InvalidArgument("column {} (\"{}\"), row {}: value is not finite", k, name, i);
  }
  const size_t known_actors = c.actors.size();
  for (size_t i = 0; i < actors; ++i)
    if (updates.actors[i] >= known_actors)
      return InvalidArgument("row {}: actor {} is not in the store", i, updates.actors[i]);

  StagedBatch staged;
  staged.ingested_ms = options_.clock->NowMs();
  staged.records.reserve(actors * updates.columns.size());
  overlay.user_values.reserve(
      std::max(overlay.user_values.size() + actors * updates.columns.size(), updates.transaction_values_hint));
  // Both maps are far bigger than the caches: the slots of a later actor are fetched while
  // this one's are looked at, so that their memory loads overlap.
  constexpr size_t kAhead = 16;
  for (const auto& [name, values] : updates.columns) {
    const DictId key = c.property_keys.Intern(name);
    auto slot_of = [&](size_t i) { return UserKey(updates.actors[i], key); };
    for (size_t i = 0; i < actors; ++i) {
      if (i + kAhead < actors) {
        overlay.user_values.prefetch(slot_of(i + kAhead));
        user_values_.prefetch(slot_of(i + kAhead));
      }
      const ActorId actor = updates.actors[i];
      const uint64_t slot = slot_of(i);
      const StoredValue next{ValueKind::kNumber, values[i], kNoDictId};
      // The overlay's entry if this transaction set it, else the store's: as for `$set`,
      // an unchanged value is no change and makes no history.
      auto [it, fresh] = overlay.user_values.try_emplace(slot, next);
      if (!fresh) {
        if (it->second.kind == ValueKind::kNumber && it->second.number == next.number) continue;
        it->second = next;
      } else if (auto current = user_values_.find(slot); current == user_values_.end()) {
        ++overlay.new_user_values;
      } else if (current->second.kind == ValueKind::kNumber && current->second.number == next.number) {
        overlay.user_values.erase(it);
        continue;
      }
      staged.records.push_back({actor, updates.time_ms, key, next});
    }
  }
  staged.counts.identify_calls = actors;
  staged.counts.user_property_changes = staged.records.size();
  return staged;
}

}  // namespace sibyl
