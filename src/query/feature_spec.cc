#include "query/feature_spec.h"

namespace sibyl {
namespace {

constexpr std::string_view kFormat = "sibyl.feature_spec/1";

// Names are quoted the way JSON quotes strings, so any event name stays readable and
// unambiguous in a CSV header.
std::string Quote(std::string_view s) { return nlohmann::json(std::string(s)).dump(); }

}  // namespace

std::string EventCountColumn(std::string_view event_type, int week) {
  return fmt::format("count({}) week -{}", Quote(event_type), week);
}

std::vector<std::string> FeatureSpec::ColumnNames() const {
  std::vector<std::string> names;
  const Taxonomy& t = taxonomy;
  if (families.event_counts)
    for (const std::string& e : t.event_types)
      for (int w = 1; w <= event_weeks; ++w) names.push_back(EventCountColumn(e, w));
  if (families.event_properties) {
    for (const EventPropertySpec& p : t.event_properties) {
      if (p.numeric) {
        for (int w = 1; w <= property_weeks; ++w)
          names.push_back(fmt::format("sum({}) week -{}", Quote(p.name), w));
        continue;
      }
      for (const std::string& v : p.values)
        for (int w = 1; w <= property_weeks; ++w)
          names.push_back(fmt::format("count({} = {}) week -{}", Quote(p.name), Quote(v), w));
      for (int w = 1; w <= property_weeks; ++w)
        names.push_back(fmt::format("count({} = other) week -{}", Quote(p.name), w));
    }
  }
  if (families.user_properties) {
    for (const char* which : {"first", "last"}) {
      for (const UserPropertySpec& p : t.user_properties) {
        for (const nlohmann::json& v : p.values)
          names.push_back(fmt::format("{}({}) = {}", which, Quote(p.name), v.dump()));
        names.push_back(fmt::format("{}({}) = other", which, Quote(p.name)));
      }
    }
  }
  if (families.recency) {
    names.push_back("hours since last event");
    for (const std::string& e : t.event_types)
      names.push_back(fmt::format("hours since last {}", Quote(e)));
    names.push_back("tenure hours");
  }
  if (families.sessions)
    for (int w = 1; w <= session_weeks; ++w) names.push_back(fmt::format("sessions week -{}", w));
  return names;
}

nlohmann::json ToJson(const FeatureSpec& spec) {
  nlohmann::json event_properties = nlohmann::json::array();
  for (const EventPropertySpec& p : spec.taxonomy.event_properties) {
    nlohmann::json j = {{"name", p.name}, {"kind", p.numeric ? "number" : "string"}};
    if (!p.numeric) j["values"] = p.values;
    event_properties.push_back(std::move(j));
  }
  nlohmann::json user_properties = nlohmann::json::array();
  for (const UserPropertySpec& p : spec.taxonomy.user_properties)
    user_properties.push_back({{"name", p.name}, {"values", p.values}});
  const FeatureFamilies& f = spec.families;
  return {
      {"format", kFormat},
      {"taxonomy",
       {{"event_types", spec.taxonomy.event_types},
        {"event_properties", std::move(event_properties)},
        {"user_properties", std::move(user_properties)}}},
      {"families",
       {{"event_counts", f.event_counts}, {"event_properties", f.event_properties},
        {"user_properties", f.user_properties}, {"recency", f.recency}, {"sessions", f.sessions}}},
      {"event_weeks", spec.event_weeks},
      {"property_weeks", spec.property_weeks},
      {"session_weeks", spec.session_weeks},
      {"recency_cap_hours", spec.recency_cap_hours},
      {"columns", spec.ColumnNames()},
  };
}

Result<FeatureSpec> FeatureSpecFromJson(const nlohmann::json& j) {
  try {
    if (j.value("format", std::string()) != kFormat)
      return InvalidArgument("feature spec: expected \"format\": \"{}\"", kFormat);
    FeatureSpec spec;
    const nlohmann::json& t = j.at("taxonomy");
    spec.taxonomy.event_types = t.at("event_types").get<std::vector<std::string>>();
    for (const nlohmann::json& p : t.at("event_properties")) {
      EventPropertySpec e;
      e.name = p.at("name").get<std::string>();
      e.numeric = p.at("kind").get<std::string>() == "number";
      if (!e.numeric) e.values = p.at("values").get<std::vector<std::string>>();
      spec.taxonomy.event_properties.push_back(std::move(e));
    }
    for (const nlohmann::json& p : t.at("user_properties")) {
      UserPropertySpec u;
      u.name = p.at("name").get<std::string>();
      for (const nlohmann::json& v : p.at("values")) u.values.push_back(v);
      spec.taxonomy.user_properties.push_back(std::move(u));
    }
    const nlohmann::json& f = j.at("families");
    spec.families = {f.at("event_counts").get<bool>(), f.at("event_properties").get<bool>(),
                     f.at("user_properties").get<bool>(), f.at("recency").get<bool>(),
                     f.at("sessions").get<bool>()};
    spec.event_weeks = j.at("event_weeks").get<int>();
    spec.property_weeks = j.at("property_weeks").get<int>();
    spec.session_weeks = j.at("session_weeks").get<int>();
    spec.recency_cap_hours = j.at("recency_cap_hours").get<float>();
    if (spec.event_weeks < 0 || spec.event_weeks > 520 || spec.property_weeks < 0 ||
        spec.property_weeks > 520 || spec.session_weeks < 0 || spec.session_weeks > 520)
      return InvalidArgument("feature spec: window counts must be within 0..520");
    // The stored column list is the contract with the model: if the rules that derive
    // columns ever change, an old spec must fail loudly rather than shift columns.
    if (auto columns = j.find("columns"); columns != j.end()) {
      if (columns->get<std::vector<std::string>>() != spec.ColumnNames())
        return InvalidArgument("feature spec: stored column list does not match its taxonomy");
    }
    return spec;
  } catch (const nlohmann::json::exception& e) {
    return InvalidArgument("feature spec: {}", e.what());
  }
}

}  // namespace sibyl
