#include "query/taxonomy.h"

#include <algorithm>
#include <mutex>
#include <span>
#include <tuple>
#include <unordered_map>
#include <vector>

#include "query/scan_util.h"

namespace sibyl {
namespace {

bool IsIdentifierLikeProperty(std::string_view name) {
  return name == "event_id" || name == "location_lat" || name == "location_lng";
}

using query_internal::ColumnOfKey;

// Property statistics (decoding property columns) are the expensive part; above this many
// events in the lookback they come from the most recent weeks holding this many (event
// type counts stay exact).
constexpr uint64_t kValueSampleEvents = 4'000'000;

// How often a value occurs and the first few distinct actors that have it (up to the
// support threshold: bounded memory, and "enough" is all the rule needs).
struct ValueStats {
  uint64_t count = 0;
  std::vector<ActorId> actors;

  void AddActor(ActorId actor, size_t limit) {
    if (actors.size() >= limit) return;
    if (std::find(actors.begin(), actors.end(), actor) == actors.end()) actors.push_back(actor);
  }
  void Merge(const ValueStats& other, size_t limit) {
    count += other.count;
    for (ActorId a : other.actors) AddActor(a, limit);
  }
};

struct KeyStats {
  uint64_t rows = 0;     // events carrying the key
  uint64_t numeric = 0;  // of which numbers or booleans
  std::unordered_map<DictId, ValueStats> string_counts;
  bool high_cardinality = false;
};

bool Contains(const std::vector<std::string>& names, std::string_view name) {
  return std::find(names.begin(), names.end(), name) != names.end();
}

template <typename Count>
std::vector<size_t> TopIndices(const std::vector<Count>& counts, size_t limit) {
  std::vector<size_t> order;
  for (size_t i = 0; i < counts.size(); ++i)
    if (counts[i] > 0) order.push_back(i);
  std::stable_sort(order.begin(), order.end(),
                   [&](size_t a, size_t b) { return counts[a] > counts[b]; });
  if (order.size() > limit) order.resize(limit);
  return order;
}

nlohmann::json ValueToJson(const EventReader& reader, const StoredValue& v) {
  switch (v.kind) {
    case ValueKind::kBool: return v.number != 0;
    case ValueKind::kNumber: return v.number;
    case ValueKind::kString:
    case ValueKind::kArray: return std::string(reader.string_values().name(v.string));
    case ValueKind::kNull: break;
  }
  return nullptr;
}

void BuildUserProperties(const EventReader& reader, int64_t cutoff_ms,
                         const TaxonomyOptions& options, Taxonomy& taxonomy) {
  // Keys are ranked by how many users had them set before the cutoff, and values by how
  // many users had them: counts of users, not of history records, which depend on the
  // order values arrived in (docs/ARCHITECTURE.md, "User properties"). Numbers and
  // strings are keyed apart so "1" and 1 stay different. No support rule here (unlike
  // event property values): a user property is a lasting attribute of the users who have
  // it, and the users a prediction scores are mostly those it learnt from, so even a
  // value of three customers (the Online Retail's "EIRE": three large wholesale buyers)
  // describes them; dropping such values cost 0.002-0.005 AUC on the whole shop.
  std::unordered_map<DictId, uint64_t> key_counts;
  std::unordered_map<DictId, std::unordered_map<std::string, std::pair<uint64_t, nlohmann::json>>> values;
  // The history is sorted by actor: one actor's distinct (key, value) pairs at a time.
  std::span<const UserPropertyRecord> history = reader.user_property_history();
  std::vector<UserPropertyRecord> pairs;
  auto same_pair = [](const UserPropertyRecord& a, const UserPropertyRecord& b) {
    return a.key == b.key && a.value == b.value;
  };
  for (size_t begin = 0, end = 0; begin < history.size(); begin = end) {
    while (end < history.size() && history[end].actor == history[begin].actor) ++end;
    pairs.clear();
    for (size_t i = begin; i < end; ++i)
      if (history[i].time_ms < cutoff_ms && history[i].value.kind != ValueKind::kNull) pairs.push_back(history[i]);
    std::sort(pairs.begin(), pairs.end(), [](const UserPropertyRecord& a, const UserPropertyRecord& b) {
      return std::tie(a.key, a.value.kind, a.value.number, a.value.string) <
             std::tie(b.key, b.value.kind, b.value.number, b.value.string);
    });
    pairs.erase(std::unique(pairs.begin(), pairs.end(), same_pair), pairs.end());
    for (size_t i = 0; i < pairs.size(); ++i) {
      if (i == 0 || pairs[i].key != pairs[i - 1].key) ++key_counts[pairs[i].key];
      nlohmann::json v = ValueToJson(reader, pairs[i].value);
      auto& slot = values[pairs[i].key][v.dump()];
      if (slot.first++ == 0) slot.second = std::move(v);
    }
  }
  std::vector<std::pair<uint64_t, std::string>> keys;
  for (auto [key, count] : key_counts) {
    std::string name(reader.property_keys().name(key));
    if (IsSibylOwnedProperty(name)) continue;
    bool required = Contains(options.required_user_properties, name);
    keys.emplace_back(required ? UINT64_MAX : count, std::move(name));
  }
  std::sort(keys.begin(), keys.end(), [](const auto& a, const auto& b) {
    return a.first != b.first ? a.first > b.first : a.second < b.second;
  });
  if (keys.size() > static_cast<size_t>(options.max_user_properties))
    keys.resize(options.max_user_properties);
  for (const auto& [count, name] : keys) {
    DictId key = *reader.property_keys().Find(name);
    std::vector<std::pair<uint64_t, std::pair<std::string, nlohmann::json>>> ranked;
    for (auto& [text, entry] : values[key]) ranked.push_back({entry.first, {text, entry.second}});
    std::sort(ranked.begin(), ranked.end(), [](const auto& a, const auto& b) {
      return a.first != b.first ? a.first > b.first : a.second.first < b.second.first;
    });
    UserPropertySpec spec{name, {}};
    for (size_t i = 0; i < ranked.size() && i < static_cast<size_t>(options.max_values_per_user_property); ++i)
      spec.values.push_back(ranked[i].second.second);
    taxonomy.user_properties.push_back(std::move(spec));
  }
}

}  // namespace

bool IsSibylOwnedProperty(std::string_view key) { return key.starts_with("sibyl."); }

Result<Taxonomy> BuildTaxonomy(const EventReader& reader, int64_t cutoff_ms,
                               const TaxonomyOptions& options, bool parallel) {
  int64_t cutoff = FloorHour(cutoff_ms);
  const DictionaryView& types = reader.event_types();
  const DictionaryView& keys = reader.property_keys();
  for (const std::string& name : options.required_event_types)
    if (!types.Find(name)) return NotFound("required event type \"{}\" is not in the store", name);

  // Pass 1, core columns only: exact event type counts, and events per week of the
  // lookback (week 0 is the last).
  int64_t lookback_begin = cutoff - options.lookback_ms;
  int lookback_weeks = static_cast<int>((options.lookback_ms + kMsPerWeek - 1) / kMsPerWeek);
  std::vector<uint64_t> type_counts(types.size(), 0);
  std::vector<uint64_t> week_counts(lookback_weeks, 0);
  std::mutex mu;
  ScanSpec core;
  core.begin_ms = lookback_begin;
  core.end_ms = cutoff;
  RETURN_IF_ERROR(reader.Scan(
      core,
      [&](const EventChunk& chunk) {
        std::vector<uint64_t> local_types(types.size(), 0), local_weeks(lookback_weeks, 0);
        for (size_t i = 0; i < chunk.size; ++i) {
          int64_t t = chunk.time[i];
          if (t < lookback_begin || t >= cutoff) continue;
          ++local_types[chunk.event_type[i]];
          ++local_weeks[std::min<int64_t>(lookback_weeks - 1, (cutoff - 1 - t) / kMsPerWeek)];
        }
        std::lock_guard lock(mu);
        for (size_t t = 0; t < local_types.size(); ++t) type_counts[t] += local_types[t];
        for (int w = 0; w < lookback_weeks; ++w) week_counts[w] += local_weeks[w];
        return Status::Ok();
      },
      parallel));

  // Pass 2, property statistics: decoding property columns is what costs, so above
  // kValueSampleEvents events they come from the most recent whole weeks that hold at
  // least that many (the values a model will be scored on), the rest of the lookback
  // unread. Presence shares are taken within that sample.
  int64_t sample_begin = lookback_begin;
  uint64_t sample_events = 0;
  for (int w = 0; w < lookback_weeks; ++w) {
    sample_events += week_counts[w];
    if (sample_events >= kValueSampleEvents) {
      sample_begin = std::max(lookback_begin, cutoff - (w + 1) * kMsPerWeek);
      break;
    }
  }
  ScanSpec spec;
  spec.begin_ms = sample_begin;
  spec.end_ms = cutoff;
  spec.properties_begin_ms = sample_begin;
  // Candidate event property keys: every key except those sibyl writes back.
  for (DictId k = 0; k < keys.size(); ++k)
    if (!IsSibylOwnedProperty(keys.name(k))) spec.property_keys.push_back(k);
  std::vector<KeyStats> key_stats(keys.size());
  size_t max_distinct = static_cast<size_t>(options.max_distinct_event_values);
  const size_t min_actors = static_cast<size_t>(std::max(options.min_value_actors, 1));
  RETURN_IF_ERROR(reader.Scan(
      spec,
      [&](const EventChunk& chunk) {
        std::vector<uint8_t> in_range(chunk.size);
        for (size_t i = 0; i < chunk.size; ++i)
          in_range[i] = chunk.time[i] >= spec.begin_ms && chunk.time[i] < spec.end_ms;
        std::vector<KeyStats> local(chunk.properties.size());
        for (size_t c = 0; c < chunk.properties.size(); ++c) {
          const PropertyColumn& column = chunk.properties[c];
          for (size_t i = 0; i < column.rows.size(); ++i) {
            const size_t row = column.rows[i] - chunk.first_row;
            if (!in_range[row]) continue;
            const StoredValue& v = column.values[i];
            ++local[c].rows;
            if (v.kind == ValueKind::kNumber || v.kind == ValueKind::kBool) {
              ++local[c].numeric;
            } else if (v.kind == ValueKind::kString) {
              ValueStats& value = local[c].string_counts[v.string];
              ++value.count;
              value.AddActor(chunk.actor[row], min_actors);
            }
          }
        }
        std::lock_guard lock(mu);
        for (size_t c = 0; c < chunk.properties.size(); ++c) {
          KeyStats& global = key_stats[chunk.properties[c].key];
          global.rows += local[c].rows;
          global.numeric += local[c].numeric;
          if (global.high_cardinality) continue;
          for (const auto& [value, stats] : local[c].string_counts) global.string_counts[value].Merge(stats, min_actors);
          // Past the limit the property is an id: stop tracking values (bounded memory).
          if (global.string_counts.size() > max_distinct) {
            global.high_cardinality = true;
            global.string_counts.clear();
          }
        }
        return Status::Ok();
      },
      parallel));

  Taxonomy taxonomy;
  // Required types always count; the rest of the places go by volume.
  taxonomy.event_types = options.required_event_types;
  size_t limit = static_cast<size_t>(std::max(options.top_events, 0));
  for (size_t t : TopIndices(type_counts, type_counts.size())) {
    if (taxonomy.event_types.size() >= limit) break;
    std::string name(types.name(static_cast<DictId>(t)));
    if (!Contains(taxonomy.event_types, name)) taxonomy.event_types.push_back(std::move(name));
  }
  // Volume order is what the spec promises; a required type keeps its place by volume.
  std::stable_sort(taxonomy.event_types.begin(), taxonomy.event_types.end(),
                   [&](const std::string& a, const std::string& b) {
                     return type_counts[*types.Find(a)] > type_counts[*types.Find(b)];
                   });

  std::vector<std::pair<uint64_t, DictId>> candidates;
  for (DictId k = 0; k < key_stats.size(); ++k) {
    const KeyStats& s = key_stats[k];
    bool required = Contains(options.required_event_properties, std::string(keys.name(k)));
    if (s.rows == 0) continue;
    // Amplitude's top-level event_id (a per-device counter) and coordinates are stored as
    // numbers, but their sums measure nothing; they would take the slots of properties
    // that do. A prediction can still name them (required).
    if (!required && IsIdentifierLikeProperty(keys.name(k))) continue;
    bool numeric = s.numeric * 10 >= s.rows * 9;
    bool frequent = s.rows >= options.min_event_property_share * static_cast<double>(sample_events);
    bool shared_value = false;  // a value of at least min_value_actors actors
    for (const auto& [value, stats] : s.string_counts) shared_value = shared_value || stats.actors.size() >= min_actors;
    bool categorical = !numeric && !s.high_cardinality && shared_value;
    if (required || (frequent && (numeric || categorical)))
      candidates.emplace_back(required ? UINT64_MAX : s.rows, k);
  }
  std::sort(candidates.begin(), candidates.end(), [&](const auto& a, const auto& b) {
    return a.first != b.first ? a.first > b.first : keys.name(a.second) < keys.name(b.second);
  });
  for (const auto& [rows, k] : candidates) {
    if (taxonomy.event_properties.size() >= static_cast<size_t>(options.max_event_properties) &&
        rows != UINT64_MAX)
      continue;
    const KeyStats& s = key_stats[k];
    EventPropertySpec p;
    p.name = std::string(keys.name(k));
    p.numeric = s.numeric * 10 >= s.rows * 9;
    if (!p.numeric) {
      std::vector<std::pair<uint64_t, std::string>> values;
      for (const auto& [value, stats] : s.string_counts)
        if (rows == UINT64_MAX || stats.actors.size() >= min_actors)
          values.emplace_back(stats.count, std::string(reader.string_values().name(value)));
      std::sort(values.begin(), values.end(), [](const auto& a, const auto& b) {
        return a.first != b.first ? a.first > b.first : a.second < b.second;
      });
      for (size_t i = 0; i < values.size() && i < static_cast<size_t>(options.max_values_per_event_property); ++i)
        p.values.push_back(values[i].second);
    }
    taxonomy.event_properties.push_back(std::move(p));
  }
  BuildUserProperties(reader, cutoff, options, taxonomy);
  return taxonomy;
}

}  // namespace sibyl
