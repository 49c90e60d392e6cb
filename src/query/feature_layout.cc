#include "query/feature_layout.h"

#include <algorithm>

namespace sibyl::query_internal {

int FeatureLayout::MaxWeeks() const { return std::max({event_weeks, property_weeks, session_weeks}); }

FeatureLayout MakeFeatureLayout(const EventReader& reader, const FeatureSpec& spec) {
  FeatureLayout l;
  const Taxonomy& t = spec.taxonomy;
  l.event_weeks = spec.event_weeks;
  l.property_weeks = spec.property_weeks;
  l.session_weeks = spec.session_weeks;
  l.recency_cap = spec.recency_cap_hours;
  l.n_slots = t.event_types.size();
  l.slot_of_type.assign(reader.event_types().size(), -1);
  for (size_t s = 0; s < t.event_types.size(); ++s)
    if (auto id = reader.event_types().Find(t.event_types[s])) l.slot_of_type[*id] = static_cast<int32_t>(s);
  size_t col = 0;
  if (spec.families.event_counts) {
    l.counts = col;
    col += l.n_slots * l.event_weeks;
  } else {
    l.event_weeks = 0;  // nothing to count
  }
  if (spec.families.event_properties) {
    for (const EventPropertySpec& p : t.event_properties) {
      FeatureLayout::EventProperty lp;
      lp.key = reader.property_keys().Find(p.name).value_or(kNoDictId);
      lp.numeric = p.numeric;
      lp.base = col;
      for (const std::string& v : p.values)
        lp.values.push_back(reader.string_values().Find(v).value_or(kNoDictId));
      col += p.numeric ? l.property_weeks : (p.values.size() + 1) * l.property_weeks;
      l.properties.push_back(std::move(lp));
    }
  } else {
    l.property_weeks = 0;
  }
  if (spec.families.user_properties) {
    l.user_property_of_key.assign(reader.property_keys().size(), -1);
    l.user_properties.resize(t.user_properties.size());
    size_t total_slots = 0;
    for (size_t i = 0; i < t.user_properties.size(); ++i) {
      const UserPropertySpec& p = t.user_properties[i];
      if (auto key = reader.property_keys().Find(p.name)) l.user_property_of_key[*key] = static_cast<int32_t>(i);
      for (const nlohmann::json& v : p.values) {
        StoredValue sv;
        if (v.is_string()) {
          if (auto id = reader.string_values().Find(v.get<std::string>())) sv = {ValueKind::kString, 0, *id};
        } else if (v.is_boolean()) {
          sv = {ValueKind::kBool, v.get<bool>() ? 1.0 : 0.0, kNoDictId};
        } else if (v.is_number()) {
          sv = {ValueKind::kNumber, v.get<double>(), kNoDictId};
        }
        l.user_properties[i].values.push_back(sv);
      }
      l.user_properties[i].first_base = col + total_slots;
      total_slots += p.values.size() + 1;
    }
    for (size_t i = 0; i < t.user_properties.size(); ++i)
      l.user_properties[i].last_base = l.user_properties[i].first_base + total_slots;
    col += 2 * total_slots;
  }
  if (spec.families.recency) {
    l.recency = true;
    l.recency_any = col;
    l.recency_types = col + 1;
    l.tenure = col + 1 + l.n_slots;
    col += 2 + l.n_slots;
  }
  if (spec.families.sessions) {
    l.sessions = col;
    col += l.session_weeks;
  } else {
    l.session_weeks = 0;
  }
  l.cols = col;
  return l;
}

size_t UserValueSlot(const FeatureLayout::UserProperty& p, const StoredValue& v) {
  for (size_t i = 0; i < p.values.size(); ++i) {
    const StoredValue& want = p.values[i];
    bool text = v.kind == ValueKind::kString || v.kind == ValueKind::kArray;
    if (want.kind == ValueKind::kString ? text && v.string == want.string
                                        : want.kind == v.kind && want.kind != ValueKind::kNull &&
                                              v.number == want.number)
      return i;
  }
  return p.values.size();
}

}  // namespace sibyl::query_internal
