#include "query/labels.h"

#include <algorithm>
#include <atomic>
#include <mutex>

#include "common/time.h"
#include "query/scan_util.h"
#include "query/suggest.h"

namespace sibyl {
namespace {

using query_internal::ForEachActorRunIn;
using query_internal::kNoRow;

std::vector<std::string> AllNames(const DictionaryView& dict) {
  std::vector<std::string> names;
  names.reserve(dict.size());
  for (DictId i = 0; i < dict.size(); ++i) names.emplace_back(dict.name(i));
  return names;
}

}  // namespace

Result<LabelSpec> ParseLabelSpec(const nlohmann::json& j) {
  if (!j.is_object()) return InvalidArgument("a prediction must be a JSON object");
  LabelSpec spec;
  std::string kind = j.value("kind", std::string("propensity"));
  if (kind == "propensity") spec.kind = LabelKind::kPropensity;
  else if (kind == "churn") spec.kind = LabelKind::kChurn;
  else if (kind == "revenue") spec.kind = LabelKind::kRevenue;
  else return InvalidArgument("unknown prediction kind \"{}\" (propensity, churn, revenue)", kind);
  if (auto outcome = j.find("outcome"); outcome != j.end() && !outcome->is_null()) {
    if (!outcome->is_object()) return InvalidArgument("\"outcome\" must be an object");
    spec.event = outcome->value("event", std::string());
    if (auto where = outcome->find("where"); where != outcome->end()) {
      ASSIGN_OR_RETURN(spec.where, ParsePropertyFilters(*where));
    }
    spec.revenue_property = outcome->value("revenue_property", std::string());
  }
  spec.revenue_property = j.value("revenue_property", spec.revenue_property);
  auto horizon = j.find("horizon_days");
  if (horizon == j.end() || !horizon->is_number() || horizon->get<double>() <= 0)
    return InvalidArgument("\"horizon_days\" must be a positive number");
  spec.horizon_ms = static_cast<int64_t>(horizon->get<double>() * kMsPerDay);
  if (spec.kind == LabelKind::kPropensity && spec.event.empty())
    return InvalidArgument("a propensity prediction needs \"outcome\": {{\"event\": ...}}");
  if (spec.kind == LabelKind::kRevenue && spec.revenue_property.empty())
    return InvalidArgument("a revenue prediction needs \"revenue_property\" (e.g. \"revenue\")");
  return spec;
}

Status ValidateLabelSpec(const EventReader& reader, const LabelSpec& spec) {
  if (!spec.event.empty() && !reader.event_types().Find(spec.event))
    return UnknownNameError("event type", spec.event, AllNames(reader.event_types()));
  auto check_key = [&](const std::string& name) {
    if (reader.property_keys().Find(name)) return Status::Ok();
    return UnknownNameError("event property", name, AllNames(reader.property_keys()));
  };
  for (const PropertyFilter& f : spec.where) RETURN_IF_ERROR(check_key(f.property));
  if (spec.kind == LabelKind::kRevenue) RETURN_IF_ERROR(check_key(spec.revenue_property));
  return Status::Ok();
}

Result<std::vector<float>> ComputeLabels(const EventReader& reader, const LabelSpec& spec,
                                         int64_t cutoff_ms, std::span<const ActorId> rows,
                                         bool parallel) {
  int64_t begin = FloorHour(cutoff_ms);
  int64_t end = begin + spec.horizon_ms;
  std::vector<ActorId> at_cutoff = reader.ResolveIdentities(begin);
  std::vector<ActorId> at_horizon = reader.ResolveIdentities(end);
  std::vector<uint32_t> row_of = query_internal::MakeRowMap(at_cutoff, rows).row_of_actor;
  std::vector<uint32_t> row_later = query_internal::MakeRowMap(at_horizon, rows).row_of_actor;
  for (size_t a = 0; a < row_of.size(); ++a)
    if (row_of[a] == kNoRow && at_cutoff[a] == a) row_of[a] = row_later[a];

  std::optional<DictId> event;
  if (!spec.event.empty()) {
    event = reader.event_types().Find(spec.event);
    // An outcome the store has never seen happened to nobody.
    if (!event) return std::vector<float>(rows.size(), spec.kind == LabelKind::kChurn ? 1.0f : 0.0f);
  }
  CompiledFilters filters = CompiledFilters::Compile(spec.where, reader);
  ScanSpec scan;
  scan.begin_ms = begin;
  scan.end_ms = end;
  if (event) scan.event_types = {*event};
  scan.property_keys = filters.keys();
  DictId revenue_key = kNoDictId;
  if (spec.kind == LabelKind::kRevenue) {
    revenue_key = reader.property_keys().Find(spec.revenue_property).value_or(kNoDictId);
    if (revenue_key == kNoDictId) return std::vector<float>(rows.size(), 0.0f);
    scan.property_keys.push_back(revenue_key);
  }

  // Revenue sums, or counts of qualifying events. A row's own actor is in exactly one
  // block, which adds to its total directly; the events of linked devices (whose actor
  // ids may sit in other blocks) are added after the scan.
  std::vector<double> totals(rows.size(), 0);
  std::vector<std::pair<uint32_t, double>> deferred;
  std::mutex deferred_mutex;
  RETURN_IF_ERROR(reader.ScanActorBlocks(
      scan, query_internal::kActorsPerBlock,
      [&](const EventReader::ActorBlock& block) {
        std::vector<uint8_t> mask;
        std::vector<std::pair<uint32_t, double>> block_deferred;
        for (const EventChunk& chunk : block.chunks) {
          if (!filters.empty()) {
            std::vector<int> columns;
            for (const CompiledFilter& f : filters.filters())
              columns.push_back(f.key() == kNoDictId ? -1 : query_internal::ColumnOfKey(chunk, f.key()));
            EvaluateFilters(filters, chunk, columns, mask);
          }
          // Revenue values by segment row (the column is sparse); rows ascend, so the
          // cursor only moves forward across runs and events.
          const PropertyColumn* revenue = nullptr;
          if (revenue_key != kNoDictId) {
            int c = query_internal::ColumnOfKey(chunk, revenue_key);
            if (c >= 0) revenue = &chunk.properties[c];
          }
          size_t revenue_cursor = 0;
          ForEachActorRunIn(chunk, 0, chunk.size, [&](ActorId actor, size_t run_begin, size_t run_end) {
            uint32_t row = actor < row_of.size() ? row_of[actor] : kNoRow;
            if (row == kNoRow) return;
            double total = 0;
            for (size_t i = run_begin; i < run_end; ++i) {
              int64_t t = chunk.time[i];
              if (t < begin || t >= end) continue;
              if (event && chunk.event_type[i] != *event) continue;
              if (!mask.empty() && !mask[i]) continue;
              if (revenue_key == kNoDictId) {
                total += 1;
                continue;
              }
              if (revenue == nullptr) continue;
              uint32_t segment_row = chunk.first_row + static_cast<uint32_t>(i);
              while (revenue_cursor < revenue->rows.size() && revenue->rows[revenue_cursor] < segment_row)
                ++revenue_cursor;
              if (revenue_cursor < revenue->rows.size() && revenue->rows[revenue_cursor] == segment_row) {
                const StoredValue& v = revenue->values[revenue_cursor];
                if (v.kind == ValueKind::kNumber) total += v.number;
              }
            }
            if (total == 0) return;
            if (rows[row] == actor) totals[row] += total;
            else block_deferred.emplace_back(row, total);
          });
        }
        if (!block_deferred.empty()) {
          std::lock_guard lock(deferred_mutex);
          deferred.insert(deferred.end(), block_deferred.begin(), block_deferred.end());
        }
        return Status::Ok();
      },
      parallel));
  for (const auto& [row, total] : deferred) totals[row] += total;

  std::vector<float> labels(rows.size());
  for (size_t r = 0; r < rows.size(); ++r) {
    switch (spec.kind) {
      case LabelKind::kPropensity: labels[r] = totals[r] > 0 ? 1.0f : 0.0f; break;
      case LabelKind::kChurn: labels[r] = totals[r] > 0 ? 0.0f : 1.0f; break;
      case LabelKind::kRevenue: labels[r] = static_cast<float>(totals[r]); break;
    }
  }
  return labels;
}

}  // namespace sibyl
