#include "query/cohort.h"

#include <algorithm>

#include "common/time.h"
#include "query/scan_util.h"
#include "query/suggest.h"

namespace sibyl {
namespace {

using Kind = CohortExpr::Kind;
using query_internal::ForEachActorRunIn;

constexpr int kMaxDepth = 32;

Result<double> Days(const nlohmann::json& v, std::string_view what) {
  if (!v.is_number() || v.get<double>() <= 0 || v.get<double>() > 36500)
    return InvalidArgument("\"{}\" must be a number of days between 0 and 36500, got {}", what, v.dump());
  return v.get<double>();
}

Result<CohortExpr> Parse(const nlohmann::json& j, int depth) {
  if (depth > kMaxDepth) return InvalidArgument("cohort nests deeper than {} levels", kMaxDepth);
  if (!j.is_object() || j.size() != 1)
    return InvalidArgument("a cohort condition is an object with exactly one key, got {}", j.dump());
  // items() yields proxies that die with the statement: copy the key, keep the value
  // as a reference into `j` itself.
  const std::string key = j.begin().key();
  const nlohmann::json& value = j.begin().value();
  CohortExpr e;
  if (key == "all" || key == "any") {
    e.kind = key == "all" ? Kind::kAll : Kind::kAny;
    if (!value.is_array()) return InvalidArgument("\"{}\" takes an array of conditions", key);
    for (const nlohmann::json& child : value) {
      ASSIGN_OR_RETURN(CohortExpr c, Parse(child, depth + 1));
      e.children.push_back(std::move(c));
    }
  } else if (key == "not") {
    e.kind = Kind::kNot;
    ASSIGN_OR_RETURN(CohortExpr c, Parse(value, depth + 1));
    e.children.push_back(std::move(c));
  } else if (key == "active_within_days" || key == "first_seen_within_days") {
    e.kind = key == "active_within_days" ? Kind::kActiveWithin : Kind::kFirstSeenWithin;
    ASSIGN_OR_RETURN(e.within_days, Days(value, key));
  } else if (key == "performed") {
    e.kind = Kind::kPerformed;
    if (!value.is_object() || !value.contains("event") || !value["event"].is_string())
      return InvalidArgument("\"performed\" needs {{\"event\": NAME, ...}}");
    for (const auto& [field, v] : value.items())
      if (field != "event" && field != "where" && field != "at_least" && field != "within_days")
        return InvalidArgument("\"performed\": unknown field \"{}\" (event, where, at_least, within_days)", field);
    e.event = value["event"].get<std::string>();
    if (value.contains("where")) {
      ASSIGN_OR_RETURN(e.where, ParsePropertyFilters(value["where"]));
    }
    if (value.contains("at_least")) {
      const nlohmann::json& k = value["at_least"];
      if (!k.is_number_integer() || k.get<int64_t>() < 1 || k.get<int64_t>() > 1'000'000'000)
        return InvalidArgument("\"at_least\" must be a positive integer, got {}", k.dump());
      e.at_least = static_cast<uint32_t>(k.get<int64_t>());
    }
    if (value.contains("within_days")) {
      ASSIGN_OR_RETURN(e.within_days, Days(value["within_days"], "within_days"));
    }
  } else if (key == "user_property") {
    e.kind = Kind::kUserProperty;
    ASSIGN_OR_RETURN(e.property, ParsePropertyFilter(value));
  } else {
    std::vector<std::string> keys = {"all", "any", "not", "active_within_days", "performed",
                                     "user_property", "first_seen_within_days"};
    Status s = UnknownNameError("cohort condition", key, keys);
    return InvalidArgument("{}", s.message());
  }
  return e;
}

std::vector<std::string> AllNames(const DictionaryView& dict) {
  std::vector<std::string> names;
  for (DictId i = 0; i < dict.size(); ++i) names.emplace_back(dict.name(i));
  return names;
}

std::vector<std::string> UserPropertyNames(const EventReader& reader) {
  std::vector<bool> seen(reader.property_keys().size(), false);
  for (const UserPropertyRecord& r : reader.user_property_history())
    if (r.key < seen.size()) seen[r.key] = true;
  std::vector<std::string> names;
  for (DictId k = 0; k < seen.size(); ++k)
    if (seen[k]) names.emplace_back(reader.property_keys().name(k));
  return names;
}

// Evaluation: each condition becomes a byte per actor (1 = member), over the canonical
// actors seen before the cutoff.
class Evaluator {
 public:
  Evaluator(const EventReader& reader, int64_t cutoff, bool parallel)
      : reader_(reader), cutoff_(cutoff), parallel_(parallel) {}

  Status Prepare() {
    resolved_ = reader_.ResolveIdentities(cutoff_);
    return query_internal::ComputeActivity(reader_, resolved_, cutoff_, parallel_, activity_);
  }

  std::vector<ActorId> Universe() const {
    std::vector<ActorId> out;
    for (ActorId a = 0; a < resolved_.size(); ++a)
      if (resolved_[a] == a && activity_.first_seen[a] < cutoff_) out.push_back(a);
    return out;
  }

  Result<std::vector<uint8_t>> Eval(const CohortExpr& e) {
    size_t n = resolved_.size();
    std::vector<uint8_t> out(n, 0);
    switch (e.kind) {
      case Kind::kAll:
      case Kind::kAny: {
        std::fill(out.begin(), out.end(), e.kind == Kind::kAll ? 1 : 0);
        for (const CohortExpr& c : e.children) {
          ASSIGN_OR_RETURN(std::vector<uint8_t> m, Eval(c));
          for (size_t a = 0; a < n; ++a) out[a] = e.kind == Kind::kAll ? out[a] & m[a] : out[a] | m[a];
        }
        return out;
      }
      case Kind::kNot: {
        ASSIGN_OR_RETURN(std::vector<uint8_t> m, Eval(e.children[0]));
        for (size_t a = 0; a < n; ++a) out[a] = !m[a];
        return out;
      }
      case Kind::kActiveWithin: {
        int64_t since = cutoff_ - static_cast<int64_t>(e.within_days * kMsPerDay);
        for (size_t a = 0; a < n; ++a) out[a] = activity_.last_event[a] >= since;
        return out;
      }
      case Kind::kFirstSeenWithin: {
        int64_t since = cutoff_ - static_cast<int64_t>(e.within_days * kMsPerDay);
        for (size_t a = 0; a < n; ++a)
          out[a] = activity_.first_seen[a] >= since && activity_.first_seen[a] < cutoff_;
        return out;
      }
      case Kind::kPerformed: return Performed(e);
      case Kind::kUserProperty: return UserProperty(e.property);
    }
    return out;
  }

 private:
  Result<std::vector<uint8_t>> Performed(const CohortExpr& e) {
    size_t n = resolved_.size();
    DictId event = *reader_.event_types().Find(e.event);
    CompiledFilters filters = CompiledFilters::Compile(e.where, reader_);
    ScanSpec scan;
    scan.begin_ms = e.within_days > 0 ? cutoff_ - static_cast<int64_t>(e.within_days * kMsPerDay) : INT64_MIN;
    scan.end_ms = cutoff_;
    scan.event_types = {event};
    scan.property_keys = filters.keys();
    // Each block counts its own actors (no locks); linked devices are folded into their
    // users after the scan.
    std::vector<uint32_t> counts(n, 0);
    RETURN_IF_ERROR(reader_.ScanActorBlocks(
        scan, query_internal::kActorsPerBlock,
        [&](const EventReader::ActorBlock& block) {
          std::vector<uint8_t> mask;
          for (const EventChunk& chunk : block.chunks) {
            if (!filters.empty()) {
              std::vector<int> columns;
              for (const CompiledFilter& f : filters.filters())
                columns.push_back(f.key() == kNoDictId ? -1 : query_internal::ColumnOfKey(chunk, f.key()));
              EvaluateFilters(filters, chunk, columns, mask);
            }
            ForEachActorRunIn(chunk, 0, chunk.size, [&](ActorId actor, size_t begin, size_t end) {
              uint32_t count = 0;
              for (size_t i = begin; i < end; ++i)
                count += chunk.time[i] >= scan.begin_ms && chunk.time[i] < scan.end_ms &&
                         chunk.event_type[i] == event && (mask.empty() || mask[i]);
              if (actor < n) counts[actor] += count;
            });
          }
          return Status::Ok();
        },
        parallel_));
    for (size_t a = 0; a < n; ++a)
      if (resolved_[a] != a && counts[a] > 0) {
        counts[resolved_[a]] += counts[a];
        counts[a] = 0;
      }
    std::vector<uint8_t> out(n);
    for (size_t a = 0; a < n; ++a) out[a] = counts[a] >= e.at_least;
    return out;
  }

  // The actor's own last value of the property before the cutoff.
  Result<std::vector<uint8_t>> UserProperty(const PropertyFilter& filter) {
    size_t n = resolved_.size();
    DictId key = *reader_.property_keys().Find(filter.property);
    CompiledFilter compiled = CompiledFilter::Compile(filter, key, reader_);
    std::vector<uint8_t> out(n, compiled.Matches(nullptr) ? 1 : 0);
    auto history = reader_.user_property_history();
    size_t i = 0;
    while (i < history.size()) {
      ActorId actor = history[i].actor;
      const StoredValue* last = nullptr;
      for (; i < history.size() && history[i].actor == actor; ++i)
        if (history[i].key == key && history[i].time_ms < cutoff_) last = &history[i].value;
      if (last != nullptr && actor < n) out[actor] = compiled.Matches(last);
    }
    return out;
  }

  const EventReader& reader_;
  int64_t cutoff_;
  bool parallel_;
  std::vector<ActorId> resolved_;
  query_internal::Activity activity_;
};

}  // namespace

Result<CohortExpr> ParseCohort(const nlohmann::json& j) { return Parse(j, 0); }

Result<CohortExpr> ParseCohortText(std::string_view text) {
  nlohmann::json j = nlohmann::json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded()) return InvalidArgument("cohort is not valid JSON");
  return ParseCohort(j);
}

nlohmann::json ToJson(const CohortExpr& e) {
  switch (e.kind) {
    case Kind::kAll:
    case Kind::kAny: {
      nlohmann::json children = nlohmann::json::array();
      for (const CohortExpr& c : e.children) children.push_back(ToJson(c));
      return {{e.kind == Kind::kAll ? "all" : "any", children}};
    }
    case Kind::kNot: return {{"not", ToJson(e.children[0])}};
    case Kind::kActiveWithin: return {{"active_within_days", e.within_days}};
    case Kind::kFirstSeenWithin: return {{"first_seen_within_days", e.within_days}};
    case Kind::kPerformed: {
      nlohmann::json p = {{"event", e.event}, {"at_least", e.at_least}};
      if (!e.where.empty()) {
        p["where"] = nlohmann::json::array();
        for (const PropertyFilter& f : e.where) p["where"].push_back(ToJson(f));
      }
      if (e.within_days > 0) p["within_days"] = e.within_days;
      return {{"performed", p}};
    }
    case Kind::kUserProperty: return {{"user_property", ToJson(e.property)}};
  }
  return nullptr;
}

void CollectNames(const CohortExpr& e, std::vector<std::string>& event_types,
                  std::vector<std::string>& event_properties,
                  std::vector<std::string>& user_properties) {
  auto add = [](std::vector<std::string>& v, const std::string& s) {
    if (std::find(v.begin(), v.end(), s) == v.end()) v.push_back(s);
  };
  for (const CohortExpr& c : e.children) CollectNames(c, event_types, event_properties, user_properties);
  if (e.kind == Kind::kPerformed) {
    add(event_types, e.event);
    for (const PropertyFilter& f : e.where) add(event_properties, f.property);
  }
  if (e.kind == Kind::kUserProperty) add(user_properties, e.property.property);
}

Status ValidateCohort(const EventReader& reader, const CohortExpr& expr) {
  std::vector<std::string> events, event_props, user_props;
  CollectNames(expr, events, event_props, user_props);
  for (const std::string& name : events)
    if (!reader.event_types().Find(name))
      return UnknownNameError("event type", name, AllNames(reader.event_types()));
  for (const std::string& name : event_props)
    if (!reader.property_keys().Find(name))
      return UnknownNameError("event property", name, AllNames(reader.property_keys()));
  if (!user_props.empty()) {
    std::vector<std::string> known = UserPropertyNames(reader);
    for (const std::string& name : user_props)
      if (std::find(known.begin(), known.end(), name) == known.end())
        return UnknownNameError("user property", name, known);
  }
  return Status::Ok();
}

Result<std::vector<ActorId>> EvaluateCohort(const EventReader& reader, const CohortExpr& expr,
                                            int64_t cutoff_ms, bool parallel) {
  RETURN_IF_ERROR(ValidateCohort(reader, expr));
  Evaluator evaluator(reader, FloorHour(cutoff_ms), parallel);
  RETURN_IF_ERROR(evaluator.Prepare());
  ASSIGN_OR_RETURN(std::vector<uint8_t> member, evaluator.Eval(expr));
  std::vector<ActorId> out;
  for (ActorId a : evaluator.Universe())
    if (member[a]) out.push_back(a);
  return out;
}

}  // namespace sibyl
