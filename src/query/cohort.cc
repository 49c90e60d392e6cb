#include "query/cohort.h"

#include <algorithm>
#include <mutex>

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

// Evaluation: each condition becomes a byte per slot (1 = member). A slot is a canonical
// actor: every actor of the store (slot = actor id), or in gather mode only the
// candidates asked about (slot i = candidates_[i]), whose events are then gathered by
// binary search (EventReader::GatherActors) instead of scanned. Both modes compute the
// same per-actor values, so they agree on every candidate.
class Evaluator {
 public:
  Evaluator(const EventReader& reader, int64_t cutoff, bool parallel)
      : reader_(reader), cutoff_(cutoff), parallel_(parallel) {}

  Status Prepare() {
    resolved_ = reader_.ResolveIdentities(cutoff_);
    return query_internal::ComputeActivity(reader_, resolved_, cutoff_, parallel_, activity_);
  }

  // Gather mode over `candidates` (ascending, distinct). A candidate that is not
  // canonical at the cutoff (a device linked before it) is never a member.
  Status PrepareFor(std::span<const ActorId> candidates) {
    gather_ = true;
    const size_t actors = reader_.actors().size();
    for (ActorId c : candidates) {
      if (c >= actors || reader_.ResolveIdentity(c, cutoff_) != c) continue;
      uint32_t slot = static_cast<uint32_t>(candidates_.size());
      candidates_.push_back(c);
      targets_.push_back({c, slot});
      for (ActorId device : reader_.LinkedDevices(c, cutoff_)) targets_.push_back({device, slot});
    }
    std::sort(targets_.begin(), targets_.end(), [](const Target& a, const Target& b) { return a.actor < b.actor; });
    for (const Target& t : targets_) target_actors_.push_back(t.actor);
    size_t n = candidates_.size();
    activity_.first_seen.assign(n, INT64_MAX);
    activity_.last_event.assign(n, INT64_MIN);
    ScanSpec spec;
    spec.end_ms = cutoff_;
    std::mutex mutex;  // visitors on two threads may share a slot (a user and its device)
    RETURN_IF_ERROR(reader_.GatherActors(
        target_actors_, spec,
        [&](const EventReader::ActorBlock& block) {
          int64_t first = INT64_MAX, last = INT64_MIN;
          for (const EventChunk& chunk : block.chunks) {
            size_t end = chunk.size;
            while (end > 0 && chunk.time[end - 1] >= cutoff_) --end;
            if (end == 0) continue;
            first = std::min(first, chunk.time[0]);
            last = std::max(last, chunk.time[end - 1]);
          }
          if (first == INT64_MAX) return Status::Ok();
          std::lock_guard lock(mutex);
          uint32_t slot = SlotOf(block.first_actor);
          activity_.first_seen[slot] = std::min(activity_.first_seen[slot], first);
          activity_.last_event[slot] = std::max(activity_.last_event[slot], last);
          return Status::Ok();
        },
        parallel_));
    for (const Target& t : targets_) {
      std::vector<UserPropertyRecord> records = reader_.UserPropertyHistoryOf(t.actor);
      if (!records.empty() && records[0].time_ms < cutoff_)
        activity_.first_seen[t.slot] = std::min(activity_.first_seen[t.slot], records[0].time_ms);
    }
    return Status::Ok();
  }

  std::vector<ActorId> Universe() const {
    std::vector<ActorId> out;
    if (gather_) {
      for (size_t i = 0; i < candidates_.size(); ++i)
        if (activity_.first_seen[i] < cutoff_) out.push_back(static_cast<ActorId>(i));
      return out;
    }
    for (ActorId a = 0; a < resolved_.size(); ++a)
      if (resolved_[a] == a && activity_.first_seen[a] < cutoff_) out.push_back(a);
    return out;
  }
  // The canonical actor of a slot.
  ActorId ActorOfSlot(ActorId slot) const { return gather_ ? candidates_[slot] : slot; }

  Result<std::vector<uint8_t>> Eval(const CohortExpr& e) {
    size_t n = gather_ ? candidates_.size() : resolved_.size();
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
    size_t n = gather_ ? candidates_.size() : resolved_.size();
    // Unknown only to a reader of part of the store (EvaluateCohortFor): nobody it holds
    // did it.
    std::optional<DictId> found = reader_.event_types().Find(e.event);
    if (!found) return std::vector<uint8_t>(n, e.at_least == 0 ? 1 : 0);
    DictId event = *found;
    CompiledFilters filters = CompiledFilters::Compile(e.where, reader_);
    ScanSpec scan;
    scan.begin_ms = e.within_days > 0 ? cutoff_ - static_cast<int64_t>(e.within_days * kMsPerDay) : INT64_MIN;
    scan.end_ms = cutoff_;
    scan.event_types = {event};
    scan.property_keys = filters.keys();
    // Each block counts its own actors (no locks); linked devices are folded into their
    // users after the scan.
    std::vector<uint32_t> counts(n, 0);
    std::mutex mutex;  // gather mode: a user and its device may be visited on two threads
    auto visit = [&](const EventReader::ActorBlock& block) {
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
              if (gather_) {
                std::lock_guard lock(mutex);
                counts[SlotOf(actor)] += count;
              } else if (actor < n) {
                counts[actor] += count;
              }
            });
          }
          return Status::Ok();
    };
    if (gather_) {
      RETURN_IF_ERROR(reader_.GatherActors(target_actors_, scan, visit, parallel_));
      std::vector<uint8_t> out(n);
      for (size_t i = 0; i < n; ++i) out[i] = counts[i] >= e.at_least;
      return out;
    }
    RETURN_IF_ERROR(reader_.ScanActorBlocks(scan, query_internal::kActorsPerBlock, visit, parallel_));
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
    size_t n = gather_ ? candidates_.size() : resolved_.size();
    // kNoDictId (unknown to a reader of part of the store): unset for everyone it holds.
    DictId key = reader_.property_keys().Find(filter.property).value_or(kNoDictId);
    CompiledFilter compiled = CompiledFilter::Compile(filter, key, reader_);
    std::vector<uint8_t> out(n, compiled.Matches(nullptr) ? 1 : 0);
    // Number columns (written scores) hold the key too when a batch names it: their value
    // wins over a record of the same or an earlier time (reader.h, NumberColumnBatch).
    bool in_columns = false;
    for (const auto& batch : reader_.number_columns()) in_columns |= batch->ColumnOf(key) != SIZE_MAX;
    if (gather_) {
      for (size_t slot = 0; slot < n; ++slot) {
        std::vector<UserPropertyRecord> records = reader_.UserPropertyHistoryOf(candidates_[slot]);
        const UserPropertyRecord* last = nullptr;
        for (const UserPropertyRecord& r : records)
          if (r.key == key && r.time_ms < cutoff_) last = &r;
        EventReader::NumberColumnRow column;
        if (in_columns) column = reader_.NumberColumnRowAsOf(candidates_[slot], key, cutoff_);
        if (column.batch && (last == nullptr || column.batch->time_ms >= last->time_ms)) {
          StoredValue number{ValueKind::kNumber, column.Value(key), kNoDictId};
          out[slot] = compiled.Matches(&number);
        } else if (last != nullptr) {
          out[slot] = compiled.Matches(&last->value);
        }
      }
      return out;
    }
    std::vector<int64_t> record_time(in_columns ? n : 0, INT64_MIN);
    auto history = reader_.user_property_history();
    size_t i = 0;
    while (i < history.size()) {
      ActorId actor = history[i].actor;
      const UserPropertyRecord* last = nullptr;
      for (; i < history.size() && history[i].actor == actor; ++i)
        if (history[i].key == key && history[i].time_ms < cutoff_) last = &history[i];
      if (last == nullptr || actor >= n) continue;
      out[actor] = compiled.Matches(&last->value);
      if (in_columns) record_time[actor] = last->time_ms;
    }
    if (in_columns) {
      const std::vector<EventReader::NumberColumnRow> columns = reader_.NumberColumnRowsAsOf(key, cutoff_, n);
      for (size_t a = 0; a < n; ++a) {
        if (!columns[a].batch || columns[a].batch->time_ms < record_time[a]) continue;
        StoredValue number{ValueKind::kNumber, columns[a].Value(key), kNoDictId};
        out[a] = compiled.Matches(&number);
      }
    }
    return out;
  }

  // Gather mode: the slot whose counts an actor's events go to.
  struct Target {
    ActorId actor;
    uint32_t slot;
  };
  uint32_t SlotOf(ActorId actor) const {
    auto it = std::lower_bound(targets_.begin(), targets_.end(), actor,
                               [](const Target& t, ActorId a) { return t.actor < a; });
    return it->slot;
  }

  const EventReader& reader_;
  int64_t cutoff_;
  bool parallel_;
  std::vector<ActorId> resolved_;
  query_internal::Activity activity_;
  bool gather_ = false;
  std::vector<ActorId> candidates_;      // by slot
  std::vector<Target> targets_;          // by actor
  std::vector<ActorId> target_actors_;   // the same actors, for GatherActors
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
  return ValidateCohort(ReaderNames(reader), expr);
}

Status ValidateCohort(const StoreNames& names, const CohortExpr& expr) {
  std::vector<std::string> events, event_props, user_props;
  CollectNames(expr, events, event_props, user_props);
  for (const std::string& name : events)
    if (!names.HasEventType(name)) return UnknownNameError("event type", name, names.EventTypes());
  for (const std::string& name : event_props)
    if (!names.HasPropertyKey(name)) return UnknownNameError("event property", name, names.PropertyKeys());
  if (!user_props.empty()) {
    std::vector<std::string> known = names.UserProperties();
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
  const bool owns_all = reader.OwnsAll();  // the usual case: no call per actor
  for (ActorId a : evaluator.Universe())
    if (member[a] && (owns_all || reader.Owns(a))) out.push_back(a);
  return out;
}

Result<std::vector<ActorId>> EvaluateCohortFor(const EventReader& reader, const CohortExpr& expr,
                                               int64_t cutoff_ms, std::span<const ActorId> candidates,
                                               bool parallel) {
  // Names only need to be known here (a real-time call must not list every user
  // property of the store to check one); EvaluateCohort gives the "did you mean" errors.
  // A reader of part of the store (a cluster's slice of a few users) knows only the names
  // its users used: there an unknown name is one none of them used, and matches no event
  // (the prediction's names were checked against the whole store when it was made).
  std::vector<std::string> events, event_props, user_props;
  CollectNames(expr, events, event_props, user_props);
  const bool check_names = reader.OwnsAll();
  for (const std::string& name : events)
    if (check_names && !reader.event_types().Find(name)) return ValidateCohort(reader, expr);
  for (const auto* names : {&event_props, &user_props})
    for (const std::string& name : *names)
      if (check_names && !reader.property_keys().Find(name)) return ValidateCohort(reader, expr);
  std::vector<ActorId> sorted(candidates.begin(), candidates.end());
  std::sort(sorted.begin(), sorted.end());
  sorted.erase(std::unique(sorted.begin(), sorted.end()), sorted.end());
  Evaluator evaluator(reader, FloorHour(cutoff_ms), parallel);
  RETURN_IF_ERROR(evaluator.PrepareFor(sorted));
  ASSIGN_OR_RETURN(std::vector<uint8_t> member, evaluator.Eval(expr));
  std::vector<ActorId> out;
  for (ActorId slot : evaluator.Universe())
    if (member[slot] && reader.Owns(evaluator.ActorOfSlot(slot))) out.push_back(evaluator.ActorOfSlot(slot));
  return out;
}

Result<std::vector<ActorId>> ActiveActors(const EventReader& reader, int64_t cutoff_ms, int64_t window_ms,
                                          bool parallel) {
  const int64_t cutoff = FloorHour(cutoff_ms);
  ScanSpec spec;
  spec.begin_ms = cutoff - window_ms;
  spec.end_ms = cutoff;
  const size_t actors = reader.actors().size();
  std::vector<uint8_t> active(actors, 0);  // a byte per actor: chunks may run on two threads
  RETURN_IF_ERROR(reader.Scan(
      spec,
      [&](const EventChunk& chunk) {
        for (size_t i = 0; i < chunk.size; ++i)
          if (chunk.time[i] >= spec.begin_ms && chunk.time[i] < cutoff && chunk.actor[i] < actors)
            active[chunk.actor[i]] = 1;
        return Status::Ok();
      },
      parallel));
  std::vector<ActorId> out;
  for (ActorId a = 0; a < actors; ++a)
    if (active[a]) out.push_back(reader.ResolveIdentity(a, cutoff));
  std::sort(out.begin(), out.end());
  out.erase(std::unique(out.begin(), out.end()), out.end());
  if (!reader.OwnsAll()) std::erase_if(out, [&reader](ActorId a) { return !reader.Owns(a); });
  return out;
}

}  // namespace sibyl
