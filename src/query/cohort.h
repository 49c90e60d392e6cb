// Starting cohorts: which users a prediction is about at a cutoff T. A small JSON
// language (reference with examples in docs/FEATURES.md):
//
//   {"all": [{"active_within_days": 90},
//            {"performed": {"event": "Purchase", "where": [..], "at_least": 2, "within_days": 30}},
//            {"user_property": {"property": "plan", "op": "eq", "value": "pro"}},
//            {"user_property": "sibyl.purchase_7d.percentile >= 80"},
//            {"first_seen_within_days": 14},
//            {"not": {...}}, {"any": [...]}]}
//
// Every condition is evaluated on data strictly before T; the users considered are the
// canonical actors at T (users, and devices not linked to a user before T) seen before T.
#pragma once

#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "common/status.h"
#include "query/property_filter.h"
#include "query/store_names.h"
#include "store/reader.h"

namespace sibyl {

struct CohortExpr {
  enum class Kind { kAll, kAny, kNot, kActiveWithin, kPerformed, kUserProperty, kFirstSeenWithin };
  Kind kind = Kind::kAll;
  std::vector<CohortExpr> children;    // kAll, kAny; kNot has exactly one
  double within_days = 0;              // kActiveWithin, kFirstSeenWithin, kPerformed (0: ever)
  std::string event;                   // kPerformed
  std::vector<PropertyFilter> where;   // kPerformed: event property filters
  uint32_t at_least = 1;               // kPerformed
  PropertyFilter property;             // kUserProperty

  static CohortExpr Everyone() { return {}; }  // {"all": []}
};

Result<CohortExpr> ParseCohort(const nlohmann::json& j);
Result<CohortExpr> ParseCohortText(std::string_view json_text);
nlohmann::json ToJson(const CohortExpr& expr);

// Names used by the expression, so a taxonomy can always include them.
void CollectNames(const CohortExpr& expr, std::vector<std::string>& event_types,
                  std::vector<std::string>& event_properties,
                  std::vector<std::string>& user_properties);

// Checks every event and property name against the store; unknown names fail with the
// closest known ones ("did you mean").
Status ValidateCohort(const EventReader& reader, const CohortExpr& expr);
Status ValidateCohort(const StoreNames& names, const CohortExpr& expr);

// The members at the hour-aligned cutoff, ascending by ActorId. Validates first.
Result<std::vector<ActorId>> EvaluateCohort(const EventReader& reader, const CohortExpr& expr,
                                            int64_t cutoff_ms, bool parallel = true);

// The members among `candidates` at the hour-aligned cutoff, ascending: exactly
// EvaluateCohort's answer restricted to them, from their own events (and those of the
// devices linked to them) gathered by binary search. For a few users out of many (one
// user's cohort membership in real time, an hourly run's active users).
Result<std::vector<ActorId>> EvaluateCohortFor(const EventReader& reader, const CohortExpr& expr,
                                               int64_t cutoff_ms, std::span<const ActorId> candidates,
                                               bool parallel = true);

// The canonical actors at the hour-aligned cutoff with an event in [cutoff - window,
// cutoff) (their own or a linked device's), ascending; reads only the segments of that
// window. A superset check for {"active_within_days": window}: evaluate the cohort on
// them with EvaluateCohortFor.
Result<std::vector<ActorId>> ActiveActors(const EventReader& reader, int64_t cutoff_ms, int64_t window_ms,
                                          bool parallel = true);

}  // namespace sibyl
