// The label query: what each cohort user did in the horizon [T, T+H) after the cutoff T.
#pragma once

#include <span>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "common/status.h"
#include "query/property_filter.h"
#include "query/store_names.h"
#include "store/reader.h"

namespace sibyl {

enum class LabelKind {
  kPropensity,  // 1 when the user performed the outcome in [T, T+H), else 0
  kChurn,       // 1 when the user performed no qualifying event in [T, T+H), else 0
  kRevenue,     // sum of revenue_property over qualifying events in [T, T+H)
};

struct LabelSpec {
  LabelKind kind = LabelKind::kPropensity;
  // The qualifying event; empty means any event (churn: "did nothing at all").
  std::string event;
  std::vector<PropertyFilter> where;
  std::string revenue_property;  // kRevenue only
  int64_t horizon_ms = 0;
};

// Parses {"kind": "propensity", "outcome": {"event": .., "where": [..]}, "horizon_days": 7,
// "revenue_property": "revenue"}: the label part of a prediction definition.
Result<LabelSpec> ParseLabelSpec(const nlohmann::json& prediction);

// Checks the names against the store, with "did you mean" suggestions.
Status ValidateLabelSpec(const EventReader& reader, const LabelSpec& spec);
Status ValidateLabelSpec(const StoreNames& names, const LabelSpec& spec);

// One label per row, in `rows` order. Events count for a row when they belong to it at the
// cutoff (its own, or a device linked before T); a device that first appears in the
// horizon counts for the user it was linked to by T+H (a user buying on a new phone still
// bought), but a device that was its own row at T stays its own.
Result<std::vector<float>> ComputeLabels(const EventReader& reader, const LabelSpec& spec,
                                         int64_t cutoff_ms, std::span<const ActorId> rows,
                                         bool parallel = true);

}  // namespace sibyl
