#include "pipeline/prediction.h"

#include <cmath>
#include <set>

#include <fmt/format.h>

#include "common/time.h"
#include "query/property_filter.h"
#include "query/suggest.h"

namespace sibyl::pipeline {
namespace {

const std::vector<std::string> kTopLevelKeys = {"name", "kind", "outcome", "horizon_days",
                                                "cohort", "refresh", "revenue_property"};
const std::vector<std::string> kOutcomeKeys = {"event", "where", "revenue_property"};
const std::vector<std::string> kRefreshKeys = {"train_every_hours", "score_every_hours"};

// Unknown keys are errors rather than silently ignored: a misspelt "horizon_day" would
// otherwise train something other than what was asked.
Status CheckKeys(const nlohmann::json& object, const std::vector<std::string>& known,
                 std::string_view where) {
  for (const auto& [key, value] : object.items()) {
    bool found = false;
    for (const std::string& k : known) found = found || k == key;
    if (found) continue;
    Status unknown = UnknownNameError(fmt::format("field in {}", where), key, known);
    return InvalidArgument("{}", unknown.message());
  }
  return Status::Ok();
}

Result<int> WholeNumber(const nlohmann::json& value, std::string_view field, int min, int max) {
  if (!value.is_number()) return InvalidArgument("\"{}\" must be a number, got {}", field, value.dump());
  double v = value.get<double>();
  if (v != std::floor(v)) return InvalidArgument("\"{}\" must be a whole number, got {}", field, v);
  if (v < min || v > max)
    return InvalidArgument("\"{}\" must be between {} and {}, got {}", field, min, max, v);
  return static_cast<int>(v);
}

}  // namespace

const char* PredictionKindName(PredictionKind kind) {
  switch (kind) {
    case PredictionKind::kPropensity: return "propensity";
    case PredictionKind::kChurn: return "churn";
    case PredictionKind::kRevenue: return "revenue";
  }
  return "?";
}

Status ValidatePredictionName(std::string_view name) {
  if (name.empty()) return InvalidArgument("a prediction needs a \"name\"");
  if (name.size() > 64)
    return InvalidArgument("prediction name \"{}\" is {} characters long; at most 64", name, name.size());
  if (!std::isalpha(static_cast<unsigned char>(name[0])))
    return InvalidArgument("prediction name \"{}\" must start with a letter", name);
  for (char c : name) {
    if (!std::isalnum(static_cast<unsigned char>(c)) && c != '_' && c != '-')
      return InvalidArgument(
          "prediction name \"{}\" may only hold letters, digits, '_' and '-' (found '{}')", name, c);
  }
  return Status::Ok();
}

Result<PredictionDefinition> ParsePredictionDefinition(const nlohmann::json& j) {
  if (!j.is_object()) return InvalidArgument("a prediction definition must be a JSON object");
  RETURN_IF_ERROR(CheckKeys(j, kTopLevelKeys, "a prediction"));
  PredictionDefinition d;
  auto name = j.find("name");
  if (name == j.end() || !name->is_string()) return InvalidArgument("a prediction needs a \"name\" (a string)");
  d.name = name->get<std::string>();
  RETURN_IF_ERROR(ValidatePredictionName(d.name));

  auto kind = j.find("kind");
  if (kind == j.end() || !kind->is_string())
    return InvalidArgument("a prediction needs a \"kind\": propensity, churn or revenue");
  const std::string kind_name = kind->get<std::string>();
  if (kind_name == "propensity") d.kind = PredictionKind::kPropensity;
  else if (kind_name == "churn") d.kind = PredictionKind::kChurn;
  else if (kind_name == "revenue") d.kind = PredictionKind::kRevenue;
  else return InvalidArgument("unknown prediction kind \"{}\": use propensity, churn or revenue", kind_name);

  auto horizon = j.find("horizon_days");
  if (horizon == j.end())
    return InvalidArgument("a prediction needs \"horizon_days\" ({} to {})", kMinHorizonDays, kMaxHorizonDays);
  ASSIGN_OR_RETURN(d.horizon_days, WholeNumber(*horizon, "horizon_days", kMinHorizonDays, kMaxHorizonDays));

  if (auto outcome = j.find("outcome"); outcome != j.end() && !outcome->is_null()) {
    if (!outcome->is_object()) return InvalidArgument("\"outcome\" must be an object like {{\"event\": \"Purchase\"}}");
    RETURN_IF_ERROR(CheckKeys(*outcome, kOutcomeKeys, "\"outcome\""));
    if (auto event = outcome->find("event"); event != outcome->end()) {
      if (!event->is_string()) return InvalidArgument("\"outcome.event\" must be a string");
      d.outcome_event = event->get<std::string>();
    }
    if (auto where = outcome->find("where"); where != outcome->end()) {
      auto filters = ParsePropertyFilters(*where);
      if (!filters.ok()) return filters.status().WithContext("\"outcome.where\"");
      d.outcome_where = nlohmann::json::array();
      for (const PropertyFilter& f : *filters) d.outcome_where.push_back(sibyl::ToJson(f));
    }
    if (auto rp = outcome->find("revenue_property"); rp != outcome->end() && rp->is_string())
      d.revenue_property = rp->get<std::string>();
  }
  if (auto rp = j.find("revenue_property"); rp != j.end()) {
    if (!rp->is_string()) return InvalidArgument("\"revenue_property\" must be a string");
    d.revenue_property = rp->get<std::string>();
  }
  switch (d.kind) {
    case PredictionKind::kPropensity:
      if (d.outcome_event.empty())
        return InvalidArgument("a propensity prediction needs \"outcome\": {{\"event\": ...}} (the event to predict)");
      break;
    case PredictionKind::kChurn:
      break;  // no event: churn means no event of any type
    case PredictionKind::kRevenue:
      if (d.revenue_property.empty())
        return InvalidArgument("a revenue prediction needs \"revenue_property\" (the numeric event property to sum, e.g. \"revenue\")");
      break;
  }
  if (d.kind != PredictionKind::kRevenue && !d.revenue_property.empty())
    return InvalidArgument("\"revenue_property\" only applies to revenue predictions, not {}", kind_name);

  if (auto cohort = j.find("cohort"); cohort != j.end() && !cohort->is_null()) {
    auto parsed = ParseCohort(*cohort);
    if (!parsed.ok()) return parsed.status().WithContext("\"cohort\"");
    d.cohort = sibyl::ToJson(*parsed);
  }
  if (auto refresh = j.find("refresh"); refresh != j.end() && !refresh->is_null()) {
    if (!refresh->is_object()) return InvalidArgument("\"refresh\" must be an object");
    RETURN_IF_ERROR(CheckKeys(*refresh, kRefreshKeys, "\"refresh\""));
    if (auto t = refresh->find("train_every_hours"); t != refresh->end()) {
      ASSIGN_OR_RETURN(d.train_every_hours, WholeNumber(*t, "refresh.train_every_hours", 1, 24 * 365));
    }
    if (auto s = refresh->find("score_every_hours"); s != refresh->end()) {
      ASSIGN_OR_RETURN(d.score_every_hours, WholeNumber(*s, "refresh.score_every_hours", 1, 24 * 365));
    }
  }
  // The label layer has its own checks; running them here keeps one source of truth.
  RETURN_IF_ERROR(ToLabelSpec(d).status());
  return d;
}

Result<PredictionDefinition> ParsePredictionDefinitionText(std::string_view json_text) {
  auto j = nlohmann::json::parse(json_text, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded()) return InvalidArgument("the prediction definition is not valid JSON");
  return ParsePredictionDefinition(j);
}

nlohmann::json ToJson(const PredictionDefinition& d) {
  nlohmann::json j = {{"name", d.name}, {"kind", PredictionKindName(d.kind)}};
  nlohmann::json outcome = nlohmann::json::object();
  if (!d.outcome_event.empty()) outcome["event"] = d.outcome_event;
  if (!d.outcome_where.empty()) outcome["where"] = d.outcome_where;
  if (!outcome.empty()) j["outcome"] = outcome;
  if (!d.revenue_property.empty()) j["revenue_property"] = d.revenue_property;
  j["horizon_days"] = d.horizon_days;
  j["cohort"] = d.cohort;
  j["refresh"] = {{"train_every_hours", d.train_every_hours}, {"score_every_hours", d.score_every_hours}};
  return j;
}

Result<LabelSpec> ToLabelSpec(const PredictionDefinition& d) {
  return ParseLabelSpec(ToJson(d));
}

Result<CohortExpr> ToCohort(const PredictionDefinition& d) { return ParseCohort(d.cohort); }

Status ValidateAgainstStore(const PredictionDefinition& d, const EventReader& reader) {
  return ValidateAgainstStore(d, ReaderNames(reader));
}

Status ValidateAgainstStore(const PredictionDefinition& d, const StoreNames& names) {
  ASSIGN_OR_RETURN(LabelSpec label, ToLabelSpec(d));
  RETURN_IF_ERROR(ValidateLabelSpec(names, label));
  ASSIGN_OR_RETURN(CohortExpr cohort, ToCohort(d));
  Status cohort_status = ValidateCohort(names, cohort);
  if (!cohort_status.ok()) return cohort_status.WithContext("cohort");
  return Status::Ok();
}

std::string DescribeDefinition(const PredictionDefinition& d) {
  std::string outcome = d.outcome_event.empty() ? std::string("any event") : fmt::format("\"{}\"", d.outcome_event);
  auto filters = ParsePropertyFilters(d.outcome_where);
  if (filters.ok() && !filters->empty()) {
    std::string where;
    for (const PropertyFilter& f : *filters) where += (where.empty() ? "" : " and ") + f.Describe();
    outcome += " where " + where;
  }
  switch (d.kind) {
    case PredictionKind::kPropensity:
      return fmt::format("will do {} within {} days", outcome, d.horizon_days);
    case PredictionKind::kChurn:
      if (d.outcome_event.empty()) return fmt::format("will do nothing at all within {} days (churn)", d.horizon_days);
      return fmt::format("will do no {} within {} days (churn)", outcome, d.horizon_days);
    case PredictionKind::kRevenue:
      return fmt::format("sum of \"{}\" over {} within {} days", d.revenue_property, outcome, d.horizon_days);
  }
  return "";
}

}  // namespace sibyl::pipeline
