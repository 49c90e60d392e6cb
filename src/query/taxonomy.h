// Building the taxonomy (which events and properties become features) from the data
// before a cutoff, with cardinality bounded everywhere. Rules in docs/FEATURES.md.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "common/status.h"
#include "common/time.h"
#include "query/feature_spec.h"
#include "store/reader.h"

namespace sibyl {

struct TaxonomyOptions {
  int top_events = 50;
  int max_event_properties = 10;
  int max_values_per_event_property = 10;
  // A string event property with more distinct values than this (in the sample) is an id
  // or free text, not a category, and is left out unless named.
  int max_distinct_event_values = 1000;
  // An event property must appear on at least this share of events to be aggregated.
  double min_event_property_share = 0.001;
  int max_user_properties = 50;
  int max_values_per_user_property = 20;
  // A value of a string event property gets its own column only when at least this many
  // distinct actors have it. A value of one actor (an order or invoice id) names one
  // past event, not a segment: its weekly counts say nothing about the future, and a
  // learner can only memorise them. 25 actors at a base rate of 0.3 hold ~7 positives,
  // about the least a coefficient or a split can be estimated from. A property none of
  // whose values qualify is an id and gets no columns (unless named). User property
  // values are exempt (taxonomy.cc says why).
  int min_value_actors = 25;
  // Event statistics look at [cutoff - lookback, cutoff): the span the features cover.
  int64_t lookback_ms = 8 * kMsPerWeek;
  // Named by a prediction or cohort: always included (when the store knows them).
  std::vector<std::string> required_event_types;
  std::vector<std::string> required_event_properties;
  std::vector<std::string> required_user_properties;
};

// User properties written back by scoring ("sibyl.NAME.score") never become features,
// so a model cannot learn from an earlier model's output.
bool IsSibylOwnedProperty(std::string_view key);

Result<Taxonomy> BuildTaxonomy(const EventReader& reader, int64_t cutoff_ms,
                               const TaxonomyOptions& options, bool parallel = true);

}  // namespace sibyl
