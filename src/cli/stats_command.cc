// `sibyl stats`: what the store holds — events, users, time span, top event types,
// property names with counts and cardinalities, dropped duplicates, bytes on disk.
#include <fmt/format.h>

#include <algorithm>
#include <mutex>
#include <nlohmann/json.hpp>
#include <unordered_set>

#include "cli/backend.h"
#include "cli/commands.h"
#include "common/time.h"
#include "store/event_store.h"

namespace sibyl {
namespace {

struct PropertySummary {
  std::string name;
  uint64_t count = 0;
  uint64_t distinct = 0;
};

struct StatsReport {
  StoreStats store;
  std::vector<std::pair<std::string, uint64_t>> event_types;  // by count, descending
  std::vector<PropertySummary> event_properties;
  std::vector<PropertySummary> user_properties;
  uint64_t user_property_changes = 0;
  uint64_t identity_links = 0;
};

Result<StatsReport> Collect(EventStore& store) {
  StatsReport report;
  ASSIGN_OR_RETURN(report.store, store.Stats());
  auto snap = store.Snapshot();
  size_t types = snap->event_types().size();
  size_t keys = snap->property_keys().size();
  std::vector<uint64_t> type_counts(types, 0), key_counts(keys, 0);
  std::vector<std::unordered_set<uint64_t>> key_values(keys);
  ScanSpec spec;
  for (size_t k = 0; k < keys; ++k) spec.property_keys.push_back(static_cast<DictId>(k));
  std::mutex mutex;
  RETURN_IF_ERROR(snap->Scan(spec, [&](const EventChunk& chunk) {
    std::vector<uint64_t> local(types, 0);
    for (EventTypeId t : chunk.event_type) ++local[t];
    std::lock_guard lock(mutex);
    for (size_t t = 0; t < types; ++t) type_counts[t] += local[t];
    for (const PropertyColumn& column : chunk.properties) {
      key_counts[column.key] += column.rows.size();
      auto& values = key_values[column.key];
      for (const StoredValue& v : column.values) {
        uint64_t bits;
        if (v.kind == ValueKind::kString || v.kind == ValueKind::kArray) {
          bits = (uint64_t{1} << 63) | v.string;
        } else {
          std::memcpy(&bits, &v.number, 8);
        }
        // Exact up to a bound: past it the count is reported as a lower bound.
        if (values.size() < 1'000'000) values.insert(bits);
      }
    }
    return Status::Ok();
  }, /*parallel=*/true));
  for (size_t t = 0; t < types; ++t)
    if (type_counts[t] > 0)
      report.event_types.emplace_back(std::string(snap->event_types().name(static_cast<DictId>(t))), type_counts[t]);
  std::sort(report.event_types.begin(), report.event_types.end(),
            [](const auto& a, const auto& b) { return a.second > b.second || (a.second == b.second && a.first < b.first); });
  for (size_t k = 0; k < keys; ++k)
    if (key_counts[k] > 0)
      report.event_properties.push_back({std::string(snap->property_keys().name(static_cast<DictId>(k))),
                                         key_counts[k], key_values[k].size()});

  std::vector<uint64_t> user_counts(keys, 0);
  std::vector<std::unordered_set<uint64_t>> user_values(keys);
  auto history = snap->user_property_history();
  report.user_property_changes = history.size();
  for (const auto& rec : history) {
    ++user_counts[rec.key];
    uint64_t bits;
    if (rec.value.kind == ValueKind::kString || rec.value.kind == ValueKind::kArray) {
      bits = (uint64_t{1} << 63) | rec.value.string;
    } else {
      std::memcpy(&bits, &rec.value.number, 8);
    }
    user_values[rec.key].insert(bits);
  }
  // Written scores (number columns): every value counts as a change; distinct values are
  // exact up to the same bound as event properties'.
  for (const auto& batch : snap->number_columns())
    for (size_t c = 0; c < batch->columns.size(); ++c) {
      const NumberColumnBatch::Column& column = batch->columns[c];
      if (column.key >= keys) continue;
      user_counts[column.key] += batch->actors.size();
      report.user_property_changes += batch->actors.size();
      for (double v : column.values) {
        if (user_values[column.key].size() >= 1'000'000) break;
        uint64_t bits;
        std::memcpy(&bits, &v, 8);
        user_values[column.key].insert(bits);
      }
    }
  for (size_t k = 0; k < keys; ++k)
    if (user_counts[k] > 0)
      report.user_properties.push_back({std::string(snap->property_keys().name(static_cast<DictId>(k))),
                                        user_counts[k], user_values[k].size()});
  auto by_count = [](const PropertySummary& a, const PropertySummary& b) { return a.count > b.count; };
  std::sort(report.event_properties.begin(), report.event_properties.end(), by_count);
  std::sort(report.user_properties.begin(), report.user_properties.end(), by_count);
  report.identity_links = snap->identity_links().size();
  return report;
}

void Print(const StatsReport& r, size_t top, bool json) {
  const StoreStats& s = r.store;
  double per_event = s.events ? static_cast<double>(s.event_bytes_on_disk) / static_cast<double>(s.events) : 0;
  if (json) {
    nlohmann::json out;
    out["events"] = s.events;
    out["users"] = s.users;
    out["devices"] = s.devices;
    out["anonymous_devices"] = s.anonymous_devices;
    out["duplicates_dropped"] = s.duplicates_dropped;
    out["identity_links"] = r.identity_links;
    out["user_property_changes"] = r.user_property_changes;
    if (s.events) {
      out["first_event"] = FormatTime(s.min_time_ms);
      out["last_event"] = FormatTime(s.max_time_ms);
    }
    out["bytes_on_disk"] = s.bytes_on_disk;
    out["event_bytes_on_disk"] = s.event_bytes_on_disk;
    out["event_bytes_per_event"] = per_event;
    out["parts"] = s.parts;
    out["event_types"] = nlohmann::json::array();
    for (size_t i = 0; i < std::min(top, r.event_types.size()); ++i)
      out["event_types"].push_back({{"name", r.event_types[i].first}, {"count", r.event_types[i].second}});
    out["event_type_count"] = r.event_types.size();
    for (const auto* list : {&r.event_properties, &r.user_properties}) {
      auto& arr = out[list == &r.event_properties ? "event_properties" : "user_properties"];
      arr = nlohmann::json::array();
      for (const auto& p : *list) arr.push_back({{"name", p.name}, {"count", p.count}, {"distinct", p.distinct}});
    }
    fmt::print("{}\n", out.dump(2));
    return;
  }
  fmt::print("events               {}\n", s.events);
  fmt::print("users                {}\n", s.users);
  fmt::print("devices              {} ({} never linked to a user)\n", s.devices, s.anonymous_devices);
  if (s.events)
    fmt::print("time span            {} .. {} ({:.1f} days)\n", FormatTime(s.min_time_ms),
               FormatTime(s.max_time_ms), static_cast<double>(s.max_time_ms - s.min_time_ms) / kMsPerDay);
  fmt::print("duplicates dropped   {}\n", s.duplicates_dropped);
  fmt::print("identity links       {}\n", r.identity_links);
  fmt::print("user property changes {}\n", r.user_property_changes);
  fmt::print("on disk              {:.1f} MB ({:.2f} bytes/event for events, {} parts)\n",
             static_cast<double>(s.bytes_on_disk) / 1e6, per_event, s.parts);
  fmt::print("\ntop event types ({} in all)\n", r.event_types.size());
  for (size_t i = 0; i < std::min(top, r.event_types.size()); ++i)
    fmt::print("  {:>12}  {}\n", r.event_types[i].second, r.event_types[i].first);
  fmt::print("\nevent properties (events with it, distinct values)\n");
  for (const auto& p : r.event_properties) fmt::print("  {:>12}  {:>9}  {}\n", p.count, p.distinct, p.name);
  fmt::print("\nuser properties (changes, distinct values)\n");
  for (const auto& p : r.user_properties) fmt::print("  {:>12}  {:>9}  {}\n", p.count, p.distinct, p.name);
}

}  // namespace

void AddStatsCommand(CLI::App& app, const GlobalOptions& global) {
  auto* cmd = app.add_subcommand("stats", "Summarise what the store holds: events, users, time span, "
                                           "event types, properties, duplicates, size on disk");
  auto top = std::make_shared<size_t>(20);
  cmd->add_option("--top", *top, "how many event types to list")->capture_default_str();
  cmd->callback([&global, top] {
    StoreOptions options;
    options.data_dir = global.data_dir;
    options.read_only = true;
    OpenedStore opened = OpenStoreFor(global, options);
    StatsReport report = Check(Collect(*opened.store));
    Print(report, *top, global.json);
  });
}

}  // namespace sibyl
