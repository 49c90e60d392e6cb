#include "query/labels.h"

#include <algorithm>

#include "common/time.h"
#include "query/outcome_scan.h"
#include "query/scan_util.h"
#include "query/store_names.h"
#include "query/suggest.h"

namespace sibyl {
namespace {

using query_internal::kNoRow;

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
  return ValidateLabelSpec(ReaderNames(reader), spec);
}

Status ValidateLabelSpec(const StoreNames& names, const LabelSpec& spec) {
  if (!spec.event.empty() && !names.HasEventType(spec.event))
    return UnknownNameError("event type", spec.event, names.EventTypes());
  auto check_key = [&](const std::string& name) {
    if (names.HasPropertyKey(name)) return Status::Ok();
    return UnknownNameError("event property", name, names.PropertyKeys());
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

  query_internal::OutcomeMatch match{.event = spec.event, .where = spec.where, .amount_property = {}};
  if (spec.kind == LabelKind::kRevenue) match.amount_property = spec.revenue_property;
  ASSIGN_OR_RETURN(query_internal::OutcomeScanResult scan,
                   query_internal::ScanOutcomeDays(reader, match, begin, end, end, row_of, parallel));
  // Revenue sums, or counts of qualifying events (an unknown event type or revenue
  // property: nothing qualified).
  std::vector<double> totals(rows.size(), 0);
  for (const query_internal::OutcomeDay& d : scan.days)
    totals[d.row] += spec.kind == LabelKind::kRevenue ? d.amount : static_cast<double>(d.count);

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
