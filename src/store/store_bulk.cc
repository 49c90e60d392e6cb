// The bulk write of numbers as user properties of known actors (scoring's write-back),
// staged as one NumberColumnBatch: logged, replayed and checkpointed as columns.
#include <algorithm>
#include <cmath>

#include "store/embedded_store.h"

namespace sibyl {

Result<StagedBatch> EmbeddedStore::EncodeNumbers(const NumberPropertyUpdates& updates) {
  constexpr size_t kMaxNameLength = 1024;  // Amplitude's string limit, as validation applies
  Catalog& c = *catalog_;
  const size_t actors = updates.actors.size();
  // Every check first: a refused request must not intern a name or stage anything.
  for (size_t k = 0; k < updates.columns.size(); ++k) {
    const auto& [name, values] = updates.columns[k];
    if (name.empty() || name.size() > kMaxNameLength)
      return InvalidArgument("column {}: property name must have 1 to {} characters", k, kMaxNameLength);
    for (size_t j = 0; j < k; ++j)
      if (updates.columns[j].first == name)
        return InvalidArgument("column {} (\"{}\"): the same property as column {}", k, name, j);
    if (values.size() != actors)
      return InvalidArgument("column {} (\"{}\"): {} values for {} actors", k, name, values.size(), actors);
    for (size_t i = 0; i < actors; ++i)
      if (!std::isfinite(values[i])) return InvalidArgument("column {} (\"{}\"), row {}: value is not finite", k, name, i);
  }
  const size_t known_actors = c.actors.size();
  for (size_t i = 0; i < actors; ++i)
    if (updates.actors[i] >= known_actors)
      return InvalidArgument("row {}: actor {} is not in the store", i, updates.actors[i]);

  for (size_t i = 1; i < actors; ++i)
    if (updates.actors[i] <= updates.actors[i - 1])
      return InvalidArgument("row {}: actor {} after actor {}: actors must be ascending and distinct", i,
                             updates.actors[i], updates.actors[i - 1]);

  // One batch of columns, not a history record per value: see NumberColumnBatch.
  auto batch = std::make_shared<NumberColumnBatch>();
  batch->time_ms = updates.time_ms;
  batch->actors.assign(updates.actors.begin(), updates.actors.end());
  for (const auto& [name, values] : updates.columns) {
    NumberColumnBatch::Column& column = batch->columns.emplace_back();
    column.key = c.property_keys.Intern(name);
    // A value every actor shares (the model version) is kept once.
    const bool shared = actors > 1 && std::all_of(values.begin(), values.end(), [&](double v) { return v == values[0]; });
    if (shared) column.values = {values[0]};
    else column.values.assign(values.begin(), values.end());
  }
  StagedBatch staged;
  staged.ingested_ms = options_.clock->NowMs();
  staged.number_columns = std::move(batch);
  staged.counts.identify_calls = actors;
  staged.counts.user_property_changes = actors * updates.columns.size();
  return staged;
}

}  // namespace sibyl
