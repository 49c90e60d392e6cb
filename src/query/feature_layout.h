// Internal to the embedded feature query: where each family of columns of a FeatureSpec
// starts, and how the spec's event types, properties and values map to one reader's
// dictionary ids.
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

#include "query/feature_spec.h"
#include "store/reader.h"

namespace sibyl::query_internal {

struct FeatureLayout {
  size_t cols = 0;
  int event_weeks = 0, property_weeks = 0, session_weeks = 0;
  size_t counts = 0;                   // + slot * event_weeks + week
  std::vector<int32_t> slot_of_type;   // by event type id; -1: not a top type
  size_t n_slots = 0;

  struct EventProperty {
    DictId key = kNoDictId;
    bool numeric = false;
    std::vector<DictId> values;  // top values (kNoDictId: unknown to this store)
    size_t base = 0;             // numeric: base + week; string: base + value * weeks + week
  };
  std::vector<EventProperty> properties;

  struct UserProperty {
    std::vector<StoredValue> values;       // kind kNull: a value this store has never seen
    size_t first_base = 0, last_base = 0;  // + value slot; the last slot is "other"
  };
  std::vector<UserProperty> user_properties;
  std::vector<int32_t> user_property_of_key;  // by key id; -1: not in the spec

  bool recency = false;
  size_t recency_any = 0;    // hours since last event
  size_t recency_types = 0;  // + slot
  size_t tenure = 0;
  size_t sessions = 0;       // + week
  float recency_cap = 0;

  // How two partial values of a column combine (a linked device's events and its user's):
  // recency columns keep the smaller (more recent), tenure the larger, the rest add up.
  enum class Merge : uint8_t { kAdd, kMin, kMax };
  Merge MergeOf(size_t col) const {
    if (!recency || col < recency_any || col > tenure) return Merge::kAdd;
    return col == tenure ? Merge::kMax : Merge::kMin;
  }
  // The value of a column for a row with no data: the recency cap ("never") for recency
  // columns, 0 for every other.
  float EmptyValue(size_t col) const {
    return recency && col >= recency_any && col < tenure ? recency_cap : 0.0f;
  }
  // Largest number of weeks any family looks back.
  int MaxWeeks() const;
};

FeatureLayout MakeFeatureLayout(const EventReader& reader, const FeatureSpec& spec);

// The slot of a user property value among the spec's top values; values.size() is "other".
size_t UserValueSlot(const FeatureLayout::UserProperty& p, const StoredValue& v);

}  // namespace sibyl::query_internal
