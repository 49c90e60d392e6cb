// The feature spec: which events, event properties and user properties become columns
// (the taxonomy), in which windows, and the resulting column names. Serialisable, so that
// scoring rebuilds exactly the columns a model was trained on: names that the store no
// longer (or not yet) knows give zero columns, values outside the taxonomy count as
// "other". See docs/FEATURES.md.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "common/status.h"
#include "query/property_filter.h"

namespace sibyl {

// An event property chosen for aggregation.
struct EventPropertySpec {
  std::string name;
  bool numeric = false;  // numeric: weekly sums; else: weekly counts per top value + other
  std::vector<std::string> values;  // strings only: the top values
};

// A user property chosen for one-hot encoding of its first and last value as of T.
struct UserPropertySpec {
  std::string name;
  std::vector<nlohmann::json> values;  // top values (strings, numbers, booleans)
};

// What the data before T looked like, reduced to what the features use.
struct Taxonomy {
  std::vector<std::string> event_types;  // by volume, largest first
  std::vector<EventPropertySpec> event_properties;
  std::vector<UserPropertySpec> user_properties;
};

// Which families of columns to build (all by default; the benchmark times counts alone).
struct FeatureFamilies {
  bool event_counts = true;
  bool event_properties = true;
  bool user_properties = true;
  bool recency = true;   // hours since last event / last of each top type, tenure
  bool sessions = true;  // sessions per week
};

// BG/NBD parameters (Fader, Hardie & Lee 2005) fitted on the customer base's outcome
// histories (pipeline/training_set.h, FitOutcomeModels), frozen into the spec so that
// scoring computes the same columns.
struct OutcomeBgNbd {
  double r = 0, alpha = 0, a = 0, b = 0;
};

// The outcome's own history before T (docs/FEATURES.md, "The outcome family"): the thing
// being predicted, exactly as defined (event and filters, or any event), counted over
// several time scales, with its gaps, its amounts and the BG/NBD quantities. Present when
// `enabled`; specs written before it existed load with it off.
//
// An outcome with filters ("Rating" where stars = 5) also gets, when `unfiltered`, the
// same event without its filters: how often and how recently the user does the event at
// all, and the share of it that passed the filters. Activity leads the filtered outcome
// (a user who rates often rates five stars often) and the share is the user's own rate of
// passing; a model of the filtered history alone sees neither. Specs written before it
// load with it off, so their columns do not change.
struct OutcomeFamilySpec {
  bool enabled = false;
  std::string event;                  // empty: any event
  std::vector<PropertyFilter> where;  // all must hold
  std::string amount_property;        // summed when set (revenue predictions)
  std::vector<int> window_days;       // ascending; every window also gets "all history"
  int horizon_days = 0;               // of the BG/NBD columns
  std::optional<OutcomeBgNbd> bgnbd;  // the BG/NBD columns exist only when fitted
  bool unfiltered = false;            // the event without `where` too (needs filters)
  // BG/NBD on the event without the filters (with `unfiltered`, when fitted): a user
  // leaves the activity, not its filtered part, so P(alive) belongs to the activity.
  std::optional<OutcomeBgNbd> unfiltered_bgnbd;

  // "\"Purchase\"", "\"Rating\" where stars = 5", "any event": how column names read.
  std::string Describe() const;
  // The same without the filters: "\"Rating\"", "any event".
  std::string DescribeUnfiltered() const;
};

struct FeatureSpec {
  Taxonomy taxonomy;
  FeatureFamilies families;
  OutcomeFamilySpec outcome;
  int event_weeks = 8;     // one-week windows of event counts
  // Fewer windows for property aggregates: they multiply with values (10 values x 10
  // properties x 8 weeks would be 800 columns) and their long-range signal is already in
  // the event counts.
  int property_weeks = 4;
  int session_weeks = 8;
  // Recency of something never seen, and the largest recency reported (a year).
  float recency_cap_hours = 8760;

  // The column names, in matrix order; a pure function of the fields above.
  std::vector<std::string> ColumnNames() const;
};

nlohmann::json ToJson(const FeatureSpec& spec);
Result<FeatureSpec> FeatureSpecFromJson(const nlohmann::json& j);

// The outcome family's column names, in matrix order (they come after every other family).
std::vector<std::string> OutcomeColumnNames(const OutcomeFamilySpec& outcome);

// Column naming, shared by the spec and docs: `count("Add to Cart") week -2`.
std::string EventCountColumn(std::string_view event_type, int week);  // week 1 = [T-7d, T)

}  // namespace sibyl
