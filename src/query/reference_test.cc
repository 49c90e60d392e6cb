// Property test: on random logs spread over several segments, the fast paths (columnar,
// parallel, run-folded) equal a naive reference written as plainly as possible: per row,
// per member actor, ScanActor and maps.
#include <gtest/gtest.h>

#include <map>
#include <random>
#include <set>
#include <tuple>

#include "common/time.h"
#include "query/cohort.h"
#include "query/features.h"
#include "query/query_engine.h"
#include "query/query_test_util.h"

namespace sibyl {
namespace {

using testing_util::AddLogLine;
using testing_util::TempStore;

constexpr int64_t kCutoff = 1'699'999'200'000;

// An event of the random log with its session: the reference counts sessions from the
// log itself, not from what the store kept of it.
struct LoggedSession {
  std::string actor;  // as EventReader::actors() names it: "u:<user_id>" or "d:<device_id>"
  int64_t time;
  int64_t session;
};

void AddRandomLog(uint32_t seed, TempStore& store, std::vector<LoggedSession>* sessions = nullptr) {
  std::mt19937 rng(seed);
  auto pick = [&](int n) { return static_cast<int>(rng() % n); };
  // Sessions come from a stream of their own, so the rest of the log is what it was before
  // sessions were added. Few ids shared by every actor: an actor's sessions interleave,
  // continue in another batch (segment), cross week boundaries, and neighbouring actors
  // in a segment often have the same id.
  std::mt19937 session_rng(seed * 7919 + 1);
  const char* types[] = {"View", "Cart", "Buy", "Share", "Rare", "Open"};
  const char* colors[] = {"a", "b", "c", "d", "e"};
  for (int batch_index = 0; batch_index < 3; ++batch_index) {
    EventBatch batch;
    for (int i = 0; i < 400; ++i) {
      nlohmann::json line;
      int who = pick(10);
      if (who < 7) line["user_id"] = fmt::format("user-{}", pick(20));
      if (who >= 5) line["device_id"] = fmt::format("device-{}", pick(8));
      // Ten weeks before to one week after the cutoff, with some events right at it.
      int64_t t = kCutoff - 10 * kMsPerWeek + static_cast<int64_t>(rng() % (11 * kMsPerWeek));
      if (pick(20) == 0) t = kCutoff - pick(3) + 1;
      line["time"] = t;
      if (pick(8) == 0 && line.contains("user_id")) {
        line["identify"] = true;
        nlohmann::json value = pick(4) == 0 ? nlohmann::json() : nlohmann::json(colors[pick(4)]);
        line["user_properties"] = {{pick(2) ? "plan" : "tier", value}};
      } else {
        line["event_type"] = types[std::min(pick(7), pick(7)) % 6];
        if (pick(2)) line["event_properties"]["price"] = pick(100) / 4.0;
        if (pick(3)) line["event_properties"]["color"] = colors[pick(5)];
        int64_t session = session_rng() % 5 == 0 ? -1 : static_cast<int64_t>(session_rng() % 4) * 1000;
        line["session_id"] = session;
        if (sessions != nullptr && session != -1) {
          std::string actor = line.contains("user_id") ? "u:" + line["user_id"].get<std::string>()
                                                       : "d:" + line["device_id"].get<std::string>();
          sessions->push_back({actor, t, session});
        }
      }
      AddLogLine(line, kCutoff, batch);
    }
    ASSERT_TRUE(store.store().Append(batch).ok());
  }
}

// The plain reference for one row of the spec's columns.
std::map<std::string, double> ReferenceRow(const EventReader& reader, const FeatureSpec& spec,
                                           const std::vector<ActorId>& resolved, ActorId row_actor,
                                           const std::vector<LoggedSession>& sessions) {
  std::map<std::string, double> cells;
  int64_t T = kCutoff;
  auto week_of = [&](int64_t t) { return static_cast<int>((T - 1 - t) / kMsPerWeek) + 1; };
  int64_t last_any = INT64_MIN, first_any = INT64_MAX;
  std::map<std::string, int64_t> last_of;
  for (ActorId a = 0; a < resolved.size(); ++a) {
    if (resolved[a] != row_actor) continue;
    EXPECT_TRUE(reader.ScanActor(a, INT64_MIN, T, [&](int64_t t, DictId type) {
      std::string name(reader.event_types().name(type));
      last_any = std::max(last_any, t);
      first_any = std::min(first_any, t);
      bool top = std::count(spec.taxonomy.event_types.begin(), spec.taxonomy.event_types.end(), name) > 0;
      if (!top) return;
      last_of[name] = std::max(last_of.count(name) ? last_of[name] : INT64_MIN, t);
      if (week_of(t) <= spec.event_weeks) cells[EventCountColumn(name, week_of(t))] += 1;
    }).ok());
  }
  float cap = spec.recency_cap_hours;
  auto hours = [&](int64_t t) { return t == INT64_MIN ? cap : std::min<double>(cap, double(T - t) / kMsPerHour); };
  cells["hours since last event"] = hours(last_any);
  for (const std::string& e : spec.taxonomy.event_types)
    cells["hours since last \"" + e + "\""] = hours(last_of.count(e) ? last_of[e] : INT64_MIN);
  if (first_any != INT64_MAX) cells["tenure hours"] = double(T - first_any) / kMsPerHour;

  // Sessions: distinct (actor, week, session id) of the row's actors' events before T;
  // a linked device's sessions add to its user's (docs/FEATURES.md).
  std::set<std::tuple<ActorId, int, int64_t>> seen;
  for (const LoggedSession& e : sessions) {
    ActorId a = *reader.actors().Find(e.actor);
    if (resolved[a] != row_actor || e.time >= T || week_of(e.time) > spec.session_weeks) continue;
    if (seen.insert({a, week_of(e.time), e.session}).second)
      cells[fmt::format("sessions week -{}", week_of(e.time))] += 1;
  }

  // Event properties: a plain non-parallel scan, a per-event lookup of each property.
  ScanSpec scan;
  scan.end_ms = T;
  for (const EventPropertySpec& p : spec.taxonomy.event_properties)
    scan.property_keys.push_back(*reader.property_keys().Find(p.name));
  EXPECT_TRUE(reader.Scan(scan, [&](const EventChunk& chunk) {
    for (size_t i = 0; i < chunk.size; ++i) {
      if (resolved[chunk.actor[i]] != row_actor || chunk.time[i] >= T) continue;
      int w = week_of(chunk.time[i]);
      if (w > spec.property_weeks) continue;
      for (size_t c = 0; c < chunk.properties.size(); ++c) {
        const EventPropertySpec& p = spec.taxonomy.event_properties[c];
        const PropertyColumn& col = chunk.properties[c];
        for (size_t k = 0; k < col.rows.size(); ++k) {
          if (col.rows[k] != i) continue;
          const StoredValue& v = col.values[k];
          if (p.numeric) {
            if (v.kind == ValueKind::kNumber) cells[fmt::format("sum(\"{}\") week -{}", p.name, w)] += v.number;
            continue;
          }
          std::string value(reader.string_values().name(v.string));
          bool top = std::count(p.values.begin(), p.values.end(), value) > 0;
          cells[top ? fmt::format("count(\"{}\" = \"{}\") week -{}", p.name, value, w)
                    : fmt::format("count(\"{}\" = other) week -{}", p.name, w)] += 1;
        }
      }
    }
    return Status::Ok();
  }).ok());

  // User properties: the row actor's own history, first and last value before T.
  for (const UserPropertySpec& p : spec.taxonomy.user_properties) {
    DictId key = *reader.property_keys().Find(p.name);
    std::optional<std::string> first;
    for (const UserPropertyRecord& r : reader.user_property_history())
      if (r.actor == row_actor && r.key == key && r.time_ms < T && r.value.kind != ValueKind::kNull && !first)
        first = std::string(reader.string_values().name(r.value.string));
    std::optional<std::string> last;
    for (const auto& [k, v] : reader.UserPropertiesAsOf(row_actor, T))
      if (k == key) last = std::string(reader.string_values().name(v.string));
    auto column = [&](const char* which, const std::string& value) {
      bool top = std::count(p.values.begin(), p.values.end(), nlohmann::json(value)) > 0;
      return top ? fmt::format("{}(\"{}\") = \"{}\"", which, p.name, value)
                 : fmt::format("{}(\"{}\") = other", which, p.name);
    };
    if (first) cells[column("first", *first)] = 1;
    if (last) cells[column("last", *last)] = 1;
  }
  return cells;
}

class ReferenceTest : public ::testing::TestWithParam<uint32_t> {};

TEST_P(ReferenceTest, FastFeaturesEqualTheNaiveReference) {
  TempStore store;
  std::vector<LoggedSession> sessions;
  AddRandomLog(GetParam(), store, &sessions);
  auto reader = store.Snapshot();
  auto engine = MakeEmbeddedQueryEngine(reader);
  TaxonomyOptions options;
  options.top_events = 4;
  options.max_values_per_event_property = 3;
  options.max_values_per_user_property = 2;
  options.min_value_actors = 1;  // ~20 users: keep every value's columns under test
  auto taxonomy = engine->BuildTaxonomy(kCutoff, options);
  ASSERT_TRUE(taxonomy.ok());
  FeatureSpec spec;
  spec.taxonomy = *taxonomy;
  ASSERT_EQ(spec.taxonomy.event_properties.size(), 2u);
  ASSERT_EQ(spec.taxonomy.user_properties.size(), 2u);
  auto users = engine->Cohort(CohortExpr::Everyone(), kCutoff);
  ASSERT_TRUE(users.ok());
  ASSERT_GT(users->actors.size(), 15u);
  auto matrix = engine->Features(spec, kCutoff, *users);
  ASSERT_TRUE(matrix.ok()) << matrix.status().ToString();
  std::vector<ActorId> resolved = reader->ResolveIdentities(kCutoff);
  for (size_t r = 0; r < matrix->rows(); ++r) {
    std::map<std::string, double> expected = ReferenceRow(*reader, spec, resolved, users->actors[r], sessions);
    for (size_t c = 0; c < matrix->cols(); ++c) {
      const std::string& name = matrix->columns[c];
      double want = expected.count(name) ? expected[name] : 0;
      EXPECT_NEAR(matrix->at(r, c), want, 1e-3 * std::max(1.0, std::abs(want)))
          << "row " << engine->UserId(users->actors[r]) << ", column " << name;
    }
  }
}

// The compressed rows hold exactly the dense matrix, sessions included: same cells, and a
// stored cell never equals its column's fill.
TEST_P(ReferenceTest, SparseFeaturesEqualTheDenseMatrix) {
  TempStore store;
  AddRandomLog(GetParam(), store);
  auto engine = MakeEmbeddedQueryEngine(store.Snapshot());
  auto taxonomy = engine->BuildTaxonomy(kCutoff, TaxonomyOptions{.top_events = 4, .min_value_actors = 1});
  ASSERT_TRUE(taxonomy.ok());
  FeatureSpec spec;
  spec.taxonomy = *taxonomy;
  auto users = engine->Cohort(CohortExpr::Everyone(), kCutoff);
  ASSERT_TRUE(users.ok());
  auto dense = engine->Features(spec, kCutoff, *users);
  auto sparse = engine->SparseFeatures(spec, kCutoff, *users);
  ASSERT_TRUE(dense.ok() && sparse.ok());
  ASSERT_EQ(sparse->rows(), dense->rows());
  ASSERT_EQ(sparse->columns, dense->columns);
  FeatureMatrix expanded = sparse->ToDense();
  for (size_t r = 0; r < dense->rows(); ++r) {
    uint32_t previous = 0;
    for (const SparseCell& cell : sparse->row(r)) {
      EXPECT_NE(cell.value, sparse->fill[cell.col]);
      EXPECT_TRUE(cell.col >= previous) << "columns ascend";
      previous = cell.col + 1;
    }
    for (size_t c = 0; c < dense->cols(); ++c) {
      EXPECT_EQ(sparse->at(r, c), dense->at(r, c)) << "row " << r << ", column " << dense->columns[c];
      EXPECT_EQ(expanded.at(r, c), dense->at(r, c));
    }
  }
}

TEST_P(ReferenceTest, FastLabelsAndActivityEqualTheNaiveReference) {
  TempStore store;
  AddRandomLog(GetParam(), store);
  auto reader = store.Snapshot();
  auto engine = MakeEmbeddedQueryEngine(reader);
  auto users = engine->Cohort(CohortExpr::Everyone(), kCutoff);
  auto active = engine->Cohort(*ParseCohortText(R"({"active_within_days": 10})"), kCutoff);
  ASSERT_TRUE(users.ok() && active.ok());
  LabelSpec label{.kind = LabelKind::kPropensity, .event = "Buy", .horizon_ms = 4 * kMsPerDay};
  auto y = engine->Labels(label, kCutoff, *users);
  ASSERT_TRUE(y.ok());
  std::vector<ActorId> at_t = reader->ResolveIdentities(kCutoff);
  std::vector<ActorId> at_h = reader->ResolveIdentities(kCutoff + label.horizon_ms);
  DictId buy = *reader->event_types().Find("Buy");
  for (size_t r = 0; r < users->actors.size(); ++r) {
    ActorId row = users->actors[r];
    bool bought = false, recent = false;
    for (ActorId a = 0; a < at_t.size(); ++a) {
      bool member_at_t = at_t[a] == row;
      // Not a row at T (first seen in the horizon), linked to this row by T+H.
      bool rows_has_a = std::binary_search(users->actors.begin(), users->actors.end(), a);
      bool later = at_t[a] == a && !rows_has_a && at_h[a] == row;
      if (!member_at_t && !later) continue;
      ASSERT_TRUE(reader->ScanActor(a, kCutoff, kCutoff + label.horizon_ms, [&](int64_t, DictId type) {
        bought |= type == buy;
      }).ok());
      if (member_at_t) {
        ASSERT_TRUE(reader->ScanActor(a, kCutoff - 10 * kMsPerDay, kCutoff, [&](int64_t, DictId) {
          recent = true;
        }).ok());
      }
    }
    EXPECT_EQ((*y)[r], bought ? 1 : 0) << engine->UserId(row);
    EXPECT_EQ(std::binary_search(active->actors.begin(), active->actors.end(), row), recent)
        << engine->UserId(row);
  }
}

void ExpectSameRow(const SparseFeatureMatrix& a, size_t ra, const SparseFeatureMatrix& b, size_t rb,
                   const std::string& what) {
  std::span<const SparseCell> x = a.row(ra), y = b.row(rb);
  ASSERT_EQ(x.size(), y.size()) << what;
  for (size_t i = 0; i < x.size(); ++i) {
    EXPECT_EQ(x[i].col, y[i].col) << what;
    EXPECT_EQ(x[i].value, y[i].value) << what << ", column " << a.columns[x[i].col];
  }
}

// The gather path (a few actors by binary search: real-time and hourly scoring) gives
// bit-identical rows to the block scan, sessions, linked devices and repeated or
// non-canonical row ids included.
TEST_P(ReferenceTest, GatheredFeaturesEqualTheScannedOnes) {
  TempStore store;
  AddRandomLog(GetParam(), store);
  auto reader = store.Snapshot();
  auto engine = MakeEmbeddedQueryEngine(reader);
  auto taxonomy = engine->BuildTaxonomy(kCutoff, TaxonomyOptions{.top_events = 4, .min_value_actors = 1});
  ASSERT_TRUE(taxonomy.ok());
  FeatureSpec spec;
  spec.taxonomy = *taxonomy;
  auto users = engine->Cohort(CohortExpr::Everyone(), kCutoff);
  ASSERT_TRUE(users.ok());
  std::vector<ActorId> every_actor;  // devices linked before T too (rows that get nothing)
  for (ActorId a = 0; a < reader->actors().size(); ++a) every_actor.push_back(a);
  std::vector<ActorId> repeated = {users->actors[0], users->actors[1], users->actors[0]};
  for (const std::vector<ActorId>* rows : {&users->actors, &every_actor, &repeated}) {
    for (bool parallel : {false, true}) {
      auto scanned = ComputeSparseFeatures(*reader, spec, kCutoff, *rows, parallel, FeaturePath::kScan);
      auto gathered = ComputeSparseFeatures(*reader, spec, kCutoff, *rows, parallel, FeaturePath::kGather);
      ASSERT_TRUE(scanned.ok() && gathered.ok());
      for (size_t r = 0; r < rows->size(); ++r)
        ExpectSameRow(*scanned, r, *gathered, r, "row " + engine->UserId((*rows)[r]));
      auto dense_scanned = ComputeFeatures(*reader, spec, kCutoff, *rows, parallel, FeaturePath::kScan);
      auto dense_gathered = ComputeFeatures(*reader, spec, kCutoff, *rows, parallel, FeaturePath::kGather);
      ASSERT_TRUE(dense_scanned.ok() && dense_gathered.ok());
      for (size_t r = 0; r < rows->size(); ++r)
        for (size_t c = 0; c < dense_scanned->cols(); ++c)
          EXPECT_EQ(dense_scanned->at(r, c), dense_gathered->at(r, c)) << "row " << r << ", column " << c;
    }
  }
  // One user at a time, as ScoreUser asks (kAuto picks the gather for one row of many).
  auto all = ComputeSparseFeatures(*reader, spec, kCutoff, users->actors, true, FeaturePath::kScan);
  ASSERT_TRUE(all.ok());
  for (size_t r = 0; r < users->actors.size(); ++r) {
    const ActorId one[1] = {users->actors[r]};
    auto alone = ComputeSparseFeatures(*reader, spec, kCutoff, one, false, FeaturePath::kGather);
    ASSERT_TRUE(alone.ok());
    ExpectSameRow(*all, r, *alone, 0, "alone " + engine->UserId(users->actors[r]));
  }
}

// The cohort of a few candidates (EvaluateCohortFor) is the whole cohort's answer for
// them, for every kind of condition; ActiveActors finds every member of an activity window.
TEST_P(ReferenceTest, CohortOfSomeCandidatesEqualsTheWholeCohort) {
  TempStore store;
  AddRandomLog(GetParam(), store);
  auto reader = store.Snapshot();
  std::vector<ActorId> every_actor, every_third;
  for (ActorId a = 0; a < reader->actors().size(); ++a) {
    every_actor.push_back(a);
    if (a % 3 == GetParam() % 3) every_third.push_back(a);
  }
  for (const char* text : {
           R"({"all": []})",
           R"({"active_within_days": 10})",
           R"({"first_seen_within_days": 30})",
           R"({"performed": {"event": "Buy", "at_least": 2, "within_days": 40, "where": ["price >= 10"]}})",
           R"({"performed": {"event": "View", "where": ["color = a"]}})",
           R"({"user_property": "plan = a"})",
           R"({"not": {"user_property": "tier != b"}})",
           R"({"any": [{"active_within_days": 3}, {"all": [{"performed": {"event": "Cart"}}, {"not": {"first_seen_within_days": 60}}]}]})",
       }) {
    auto expr = ParseCohortText(text);
    ASSERT_TRUE(expr.ok()) << text;
    auto whole = EvaluateCohort(*reader, *expr, kCutoff);
    ASSERT_TRUE(whole.ok()) << text;
    for (const std::vector<ActorId>* candidates : {&every_actor, &every_third}) {
      std::vector<ActorId> expected;
      for (ActorId a : *whole)
        if (std::binary_search(candidates->begin(), candidates->end(), a)) expected.push_back(a);
      for (bool parallel : {false, true}) {
        auto some = EvaluateCohortFor(*reader, *expr, kCutoff, *candidates, parallel);
        ASSERT_TRUE(some.ok()) << text;
        EXPECT_EQ(*some, expected) << text;
      }
    }
  }
  auto active = EvaluateCohort(*reader, *ParseCohortText(R"({"active_within_days": 2})"), kCutoff);
  auto window = ActiveActors(*reader, kCutoff, 2 * kMsPerDay);
  ASSERT_TRUE(active.ok() && window.ok());
  auto members = EvaluateCohortFor(*reader, *ParseCohortText(R"({"active_within_days": 2})"), kCutoff, *window);
  ASSERT_TRUE(members.ok());
  EXPECT_EQ(*members, *active);
}

// Snapshots share the sorted logs (a sorted base and a delta of the newest commits): after
// every commit, per-actor lookups equal the slices of the whole sorted history and links,
// which stay sorted, and an older snapshot keeps seeing its own prefix.
TEST_P(ReferenceTest, PerActorHistoryAndLinksEqualTheSortedLogsAfterEachCommit) {
  TempStore store;
  std::mt19937 rng(GetParam());
  std::vector<std::shared_ptr<const EventReader>> snapshots;
  std::vector<size_t> history_sizes;
  // Enough records over the commits that the delta is folded into the base.
  for (int commit = 0; commit < 6; ++commit) {
    EventBatch batch;
    for (int i = 0; i < 1500; ++i) {
      nlohmann::json line = {{"user_id", fmt::format("user-{}", rng() % 300)},
                             {"time", kCutoff - static_cast<int64_t>(rng() % (4 * kMsPerWeek))}};
      if (rng() % 4 == 0) line["device_id"] = fmt::format("device-{}", rng() % 200);
      line["identify"] = true;
      line["user_properties"] = {{"plan", fmt::format("p{}", rng() % 5)}};
      AddLogLine(line, kCutoff, batch);
    }
    ASSERT_TRUE(store.store().Append(batch).ok());
    auto reader = store.Snapshot();
    snapshots.push_back(reader);
    std::span<const UserPropertyRecord> history = reader->user_property_history();
    history_sizes.push_back(history.size());
    for (size_t i = 1; i < history.size(); ++i)
      ASSERT_FALSE(history[i].actor < history[i - 1].actor ||
                   (history[i].actor == history[i - 1].actor && history[i].time_ms < history[i - 1].time_ms));
    std::vector<ActorId> resolved = reader->ResolveIdentities(kCutoff);
    std::span<const IdentityLink> links = reader->identity_links();
    for (ActorId a = 0; a < reader->actors().size(); ++a) {
      std::vector<UserPropertyRecord> slice;
      for (const UserPropertyRecord& r : history)
        if (r.actor == a) slice.push_back(r);
      std::vector<UserPropertyRecord> mine = reader->UserPropertyHistoryOf(a);
      ASSERT_EQ(mine.size(), slice.size());
      for (size_t i = 0; i < slice.size(); ++i) {
        EXPECT_EQ(mine[i].time_ms, slice[i].time_ms);
        EXPECT_EQ(mine[i].value.string, slice[i].value.string);
      }
      std::vector<IdentityLink> device_links;
      for (const IdentityLink& l : links)
        if (l.device == a) device_links.push_back(l);
      std::vector<IdentityLink> of_device = reader->LinksOfDevice(a);
      ASSERT_EQ(of_device.size(), device_links.size());
      for (size_t i = 0; i < device_links.size(); ++i) EXPECT_EQ(of_device[i].user, device_links[i].user);
      EXPECT_EQ(reader->ResolveIdentity(a, kCutoff), resolved[a]);
      std::vector<ActorId> linked;
      for (ActorId d = 0; d < resolved.size(); ++d)
        if (d != a && resolved[d] == a) linked.push_back(d);
      EXPECT_EQ(reader->LinkedDevices(a, kCutoff), linked);
    }
  }
  for (size_t k = 0; k < snapshots.size(); ++k)
    EXPECT_EQ(snapshots[k]->user_property_history().size(), history_sizes[k]);
}

INSTANTIATE_TEST_SUITE_P(Seeds, ReferenceTest, ::testing::Values(1u, 2u, 3u, 4u, 5u));

}  // namespace
}  // namespace sibyl
