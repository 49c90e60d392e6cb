// A prediction definition: the question a team asks ("which users active in the last 90
// days will purchase within 7 days?") in a sentence's worth of fields. Parsed strictly from
// JSON (docs/PREDICTIONS.md), checked against a store's names, and turned into the label
// and cohort of the query layer.
//
//   {"name": "purchase_7d", "kind": "propensity",
//    "outcome": {"event": "Purchase", "where": [{"property": "plan", "op": "eq", "value": "pro"}]},
//    "horizon_days": 7,
//    "cohort": {"all": [{"active_within_days": 90}]},
//    "refresh": {"train_every_hours": 24, "score_every_hours": 1}}
#pragma once

#include <string>
#include <string_view>

#include <nlohmann/json.hpp>

#include "common/status.h"
#include "query/cohort.h"
#include "query/labels.h"
#include "store/reader.h"

namespace sibyl::pipeline {

enum class PredictionKind { kPropensity, kChurn, kRevenue };

const char* PredictionKindName(PredictionKind kind);  // "propensity", "churn", "revenue"

inline constexpr int kMinHorizonDays = 1;
inline constexpr int kMaxHorizonDays = 365;

struct PredictionDefinition {
  std::string name;
  PredictionKind kind = PredictionKind::kPropensity;
  // The outcome event and its event property filters (JSON filter objects or compact
  // strings, as the query layer parses them). Propensity needs an event; churn without an
  // event means "did nothing at all"; revenue sums `revenue_property` over the event (any
  // event when empty).
  std::string outcome_event;
  nlohmann::json outcome_where = nlohmann::json::array();
  std::string revenue_property;  // revenue only
  int horizon_days = 0;
  // The starting cohort (query/cohort.h language); everyone seen before T by default.
  nlohmann::json cohort = {{"all", nlohmann::json::array()}};
  int train_every_hours = 24;
  int score_every_hours = 1;
};

// Names are what users type and what directories are called: 1 to 64 characters of
// letters, digits, '_' and '-', starting with a letter.
Status ValidatePredictionName(std::string_view name);

// Parses and checks everything that does not need a store: the name, a known kind, the
// horizon (a whole number of days in 1..365), the fields the kind needs, well-formed
// filters and cohort, no unknown keys.
Result<PredictionDefinition> ParsePredictionDefinition(const nlohmann::json& j);
Result<PredictionDefinition> ParsePredictionDefinitionText(std::string_view json_text);

// The canonical JSON form (what definition.json holds).
nlohmann::json ToJson(const PredictionDefinition& definition);

// The label and cohort of the query layer; only fail on definitions that did not come
// from ParsePredictionDefinition.
Result<LabelSpec> ToLabelSpec(const PredictionDefinition& definition);
Result<CohortExpr> ToCohort(const PredictionDefinition& definition);

// Checks every event and property name against the store, failing with "did you mean"
// (e.g. `unknown event type "Purchse"; did you mean "Purchase"?`).
Status ValidateAgainstStore(const PredictionDefinition& definition, const EventReader& reader);
Status ValidateAgainstStore(const PredictionDefinition& definition, const StoreNames& names);

// One line in plain words: "propensity: Purchase (plan = "pro") within 7 days".
std::string DescribeDefinition(const PredictionDefinition& definition);

}  // namespace sibyl::pipeline
