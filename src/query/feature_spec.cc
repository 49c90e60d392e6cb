#include "query/feature_spec.h"

#include <cmath>

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
  if (outcome.enabled) {
    std::vector<std::string> more = OutcomeColumnNames(outcome);
    names.insert(names.end(), more.begin(), more.end());
  }
  return names;
}

std::string OutcomeFamilySpec::DescribeUnfiltered() const {
  return event.empty() ? std::string("any event") : Quote(event);
}

namespace {

// "stars = 5 and platform = \"ios\"".
std::string FiltersText(const std::vector<PropertyFilter>& where) {
  std::string text;
  for (size_t i = 0; i < where.size(); ++i) text += (i == 0 ? "" : " and ") + where[i].Describe();
  return text;
}

}  // namespace

std::string OutcomeFamilySpec::Describe() const {
  return where.empty() ? DescribeUnfiltered() : DescribeUnfiltered() + " where " + FiltersText(where);
}

std::vector<std::string> OutcomeColumnNames(const OutcomeFamilySpec& o) {
  std::vector<std::string> names;
  const std::string what = o.Describe();
  auto scales = [&](const char* measure) {
    for (int d : o.window_days) names.push_back(fmt::format("{} {} last {}d", measure, what, d));
    names.push_back(fmt::format("{} {} all history", measure, what));
  };
  scales("count");
  scales("active days");
  if (!o.amount_property.empty()) {
    const std::string sum = fmt::format("sum({}) of", Quote(o.amount_property));
    scales(sum.c_str());
  }
  names.push_back(fmt::format("never {}", what));
  names.push_back(fmt::format("hours since last {} (outcome)", what));
  names.push_back(fmt::format("hours since first {}", what));
  names.push_back(fmt::format("mean days between {}", what));
  names.push_back(fmt::format("days between last two {}", what));
  names.push_back(fmt::format("days since last {} / mean gap", what));
  if (o.window_days.size() >= 2)
    names.push_back(fmt::format("share of {} days in last {}d of last {}d", what, o.window_days.front(),
                                o.window_days.back()));
  if (o.unfiltered) {
    const std::string all = o.DescribeUnfiltered();
    for (const char* measure : {"count", "active days"}) {
      for (int d : o.window_days) names.push_back(fmt::format("{} {} unfiltered last {}d", measure, all, d));
      names.push_back(fmt::format("{} {} unfiltered all history", measure, all));
    }
    names.push_back(fmt::format("hours since last {} unfiltered", all));
    names.push_back(fmt::format("share of {} with {}", all, FiltersText(o.where)));
    if (o.unfiltered_bgnbd) {
      names.push_back(fmt::format("BG/NBD P(alive) for {} unfiltered", all));
      names.push_back(fmt::format("BG/NBD P({} unfiltered within {}d)", all, o.horizon_days));
    }
  }
  if (o.bgnbd) {
    names.push_back(fmt::format("BG/NBD P(alive) for {}", what));
    names.push_back(fmt::format("BG/NBD P({} within {}d)", what, o.horizon_days));
    names.push_back(fmt::format("BG/NBD expected {} days within {}d", what, o.horizon_days));
  }
  return names;
}

namespace {

nlohmann::json BgNbdToJson(const OutcomeBgNbd& p) { return {{"r", p.r}, {"alpha", p.alpha}, {"a", p.a}, {"b", p.b}}; }

nlohmann::json OutcomeToJson(const OutcomeFamilySpec& o) {
  if (!o.enabled) return nullptr;
  nlohmann::json where = nlohmann::json::array();
  for (const PropertyFilter& f : o.where) where.push_back(ToJson(f));
  nlohmann::json j = {{"event", o.event},           {"where", std::move(where)},
                      {"amount_property", o.amount_property}, {"window_days", o.window_days},
                      {"horizon_days", o.horizon_days}};
  if (o.unfiltered) j["unfiltered"] = true;
  if (o.unfiltered_bgnbd) j["unfiltered_bgnbd"] = BgNbdToJson(*o.unfiltered_bgnbd);
  if (o.bgnbd) j["bgnbd"] = BgNbdToJson(*o.bgnbd);
  return j;
}

Result<OutcomeBgNbd> BgNbdFromJson(const nlohmann::json& b) {
  OutcomeBgNbd p{b.at("r").get<double>(), b.at("alpha").get<double>(), b.at("a").get<double>(),
                 b.at("b").get<double>()};
  if (!(p.r > 0 && p.alpha > 0 && p.a > 0 && p.b > 0) || !std::isfinite(p.r) || !std::isfinite(p.alpha) ||
      !std::isfinite(p.a) || !std::isfinite(p.b))
    return InvalidArgument("feature spec: BG/NBD parameters must be positive");
  return p;
}

Result<OutcomeFamilySpec> OutcomeFromJson(const nlohmann::json& j) {
  OutcomeFamilySpec o;
  if (j.is_null()) return o;
  o.enabled = true;
  o.event = j.at("event").get<std::string>();
  ASSIGN_OR_RETURN(o.where, ParsePropertyFilters(j.at("where")));
  o.amount_property = j.at("amount_property").get<std::string>();
  o.window_days = j.at("window_days").get<std::vector<int>>();
  o.horizon_days = j.at("horizon_days").get<int>();
  if (o.horizon_days < 1 || o.horizon_days > 3660) return InvalidArgument("feature spec: outcome horizon_days out of range");
  if (o.window_days.empty()) return InvalidArgument("feature spec: the outcome family needs at least one window");
  for (size_t i = 0; i < o.window_days.size(); ++i)
    if (o.window_days[i] < 1 || o.window_days[i] > 3660 || (i > 0 && o.window_days[i] <= o.window_days[i - 1]))
      return InvalidArgument("feature spec: outcome window days must ascend within 1..3660");
  o.unfiltered = j.value("unfiltered", false);
  if (o.unfiltered && o.where.empty())
    return InvalidArgument("feature spec: the outcome's unfiltered columns need an outcome with filters");
  if (auto b = j.find("bgnbd"); b != j.end()) {
    ASSIGN_OR_RETURN(o.bgnbd, BgNbdFromJson(*b));
  }
  if (auto b = j.find("unfiltered_bgnbd"); b != j.end()) {
    if (!o.unfiltered) return InvalidArgument("feature spec: unfiltered_bgnbd without the unfiltered columns");
    ASSIGN_OR_RETURN(o.unfiltered_bgnbd, BgNbdFromJson(*b));
  }
  return o;
}

}  // namespace

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
      {"outcome", OutcomeToJson(spec.outcome)},
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
    if (auto outcome = j.find("outcome"); outcome != j.end()) {
      ASSIGN_OR_RETURN(spec.outcome, OutcomeFromJson(*outcome));
    }
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
