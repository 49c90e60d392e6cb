// The outcome family (query/outcome_features.h): every column against a naive reference
// computed from the plain list of logged events by the definitions, with linked devices,
// filters, an amount property, events at T-1ms and at T, and rows that never did the
// outcome; no leakage from [T, ...); the spec's JSON form.
#include <gtest/gtest.h>

#include <bit>
#include <cmath>
#include <functional>
#include <limits>
#include <map>
#include <random>
#include <set>

#include "common/time.h"
#include "ml/clv.h"
#include "query/features.h"
#include "query/outcome_features.h"
#include "query/query_engine.h"
#include "query/query_test_util.h"

namespace sibyl {
namespace {

using testing_util::AddLogLine;
using testing_util::TempStore;

constexpr int64_t kCutoff = 1'699'999'200'000;  // hour-aligned
static_assert(kCutoff % kMsPerHour == 0);
constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();

// One event as logged: the actor it was logged under and its properties.
struct Logged {
  std::string user, device;  // user_id wins: an event with both is the user's
  std::string type;
  int64_t time = 0;
  nlohmann::json properties = nlohmann::json::object();
};

// A random log over 400 days before T to 10 days after, with:
// - users "user-0".."user-11" and devices "dev-0".."dev-7"; dev-k is linked to user-(k % 4)
//   by a "Login" event carrying both ids, before T for k < 5 (its events, earlier ones
//   too, are the user's), after T for k >= 5 (at T it is a row of its own);
// - "Buy" with "color" (a, b or absent) and "price" (a number, a string or absent);
// - users 8..11 never buy (rows without the outcome), 12 and 13 buy on one day only, 14
//   buys only what fails "color = a";
// - events exactly at T-1ms, at T, and at the 7-day and 30-day window edges.
std::vector<Logged> RandomLog(uint32_t seed) {
  std::mt19937 rng(seed);
  auto pick = [&](int n) { return static_cast<int>(rng() % static_cast<uint32_t>(n)); };
  std::vector<Logged> log;
  for (int k = 0; k < 8; ++k) {
    Logged link{.user = fmt::format("user-{}", k % 4), .device = fmt::format("dev-{}", k), .type = "Login"};
    link.time = k < 5 ? kCutoff - (k + 1) * kMsPerDay - pick(1000) : kCutoff + kMsPerHour + k;
    log.push_back(link);
  }
  const int64_t special[] = {kCutoff - 1,
                             kCutoff,
                             kCutoff + 1,
                             kCutoff - 7 * kMsPerDay,
                             kCutoff - 7 * kMsPerDay - 1,
                             kCutoff - 30 * kMsPerDay,
                             kCutoff - 30 * kMsPerDay - 1,
                             kCutoff - kMsPerDay,
                             kCutoff - kMsPerDay - 1};
  for (int i = 0; i < 900; ++i) {
    Logged e;
    const int who = pick(20);
    if (who < 12) e.user = fmt::format("user-{}", who);
    else e.device = fmt::format("dev-{}", who - 12);
    const bool buyer = e.user.empty() || who < 8;
    e.type = buyer && pick(3) != 0 ? "Buy" : (pick(2) ? "View" : "Cart");
    // Most events in the last 100 days (several per day), some up to 400 days back.
    const int64_t span = pick(4) == 0 ? 400 * kMsPerDay : 100 * kMsPerDay;
    e.time = kCutoff - span + static_cast<int64_t>(rng() % static_cast<uint32_t>(span + 10 * kMsPerDay));
    if (pick(12) == 0) e.time = special[pick(std::size(special))];
    if (pick(4) != 0) e.properties["color"] = pick(2) ? "a" : "b";
    const int price = pick(6);
    if (price < 4) e.properties["price"] = pick(400) / 4.0 - 10;  // negatives too
    else if (price == 4) e.properties["price"] = "free";
    log.push_back(e);
  }
  // Single active days: two Buys in one day (no gaps), and one Buy just before T.
  const nlohmann::json a = {{"color", "a"}, {"price", 3}};
  log.push_back({.user = "user-12", .type = "Buy", .time = kCutoff - 2 * kMsPerDay, .properties = a});
  log.push_back({.user = "user-12", .type = "Buy", .time = kCutoff - 2 * kMsPerDay + kMsPerHour, .properties = a});
  log.push_back({.user = "user-12", .type = "View", .time = kCutoff - 9 * kMsPerDay});
  log.push_back({.user = "user-13", .type = "Buy", .time = kCutoff - 1, .properties = a});
  // Buys that never pass "color = a": the unfiltered columns without the outcome's.
  log.push_back({.user = "user-14", .type = "Buy", .time = kCutoff - 3 * kMsPerDay, .properties = {{"color", "b"}}});
  log.push_back({.user = "user-14", .type = "Buy", .time = kCutoff - 40 * kMsPerDay});
  return log;
}

void Ingest(const std::vector<Logged>& log, TempStore& store) {
  // Three batches: a row's events come from several segments.
  for (size_t part = 0; part < 3; ++part) {
    EventBatch batch;
    for (size_t i = part; i < log.size(); i += 3) {
      const Logged& e = log[i];
      nlohmann::json line = {{"event_type", e.type}, {"time", e.time}};
      if (!e.user.empty()) line["user_id"] = e.user;
      if (!e.device.empty()) line["device_id"] = e.device;
      if (!e.properties.empty()) line["event_properties"] = e.properties;
      AddLogLine(line, kCutoff, batch);
    }
    ASSERT_TRUE(store.store().Append(batch).ok());
  }
}

// The row a logged event belongs to at T, named as QueryEngine::UserId names rows.
std::string RowOf(const Logged& e, const std::map<std::string, std::string>& linked_before_t) {
  if (!e.user.empty()) return e.user;
  auto link = linked_before_t.find(e.device);
  return link != linked_before_t.end() ? link->second : "device:" + e.device;
}

bool Qualifies(const Logged& e, const std::string& filter_set) {
  if (e.type != "Buy") return false;
  const auto color = e.properties.find("color");
  if (filter_set == "color = a") return color != e.properties.end() && *color == "a";
  if (filter_set == "color != b") return color == e.properties.end() || *color != "b";
  return true;
}

// The outcome's columns of one row by the definitions (outcome_features.h, FEATURES.md):
// day d of an event at t is floor((T - 1 - t) / 24 h); window w holds days d < w.
// `unfiltered`: the row's events of the outcome's type whatever their properties.
std::vector<double> ReferenceRow(const std::vector<const Logged*>& events,
                                 const std::vector<const Logged*>& unfiltered, const OutcomeFamilySpec& spec,
                                 bool amount_known) {
  std::vector<double> out;
  const size_t windows = spec.window_days.size();
  std::vector<double> count(windows + 1, 0), sum(windows + 1, 0);
  std::vector<std::set<int64_t>> days(windows + 1);
  int64_t first = INT64_MAX, last = INT64_MIN;
  for (const Logged* e : events) {
    const int64_t d = (kCutoff - 1 - e->time) / kMsPerDay;
    double amount = 0;
    if (amount_known) {
      auto price = e->properties.find(spec.amount_property);
      if (price != e->properties.end() && price->is_number()) amount = price->get<double>();
    }
    for (size_t w = 0; w <= windows; ++w) {
      if (w < windows && d >= spec.window_days[w]) continue;
      count[w] += 1;
      sum[w] += amount;
      days[w].insert(d);
    }
    first = std::min(first, e->time);
    last = std::max(last, e->time);
  }
  for (double c : count) out.push_back(c);
  for (const auto& s : days) out.push_back(static_cast<double>(s.size()));
  if (!spec.amount_property.empty())
    for (double s : sum) out.push_back(s);
  const bool never = events.empty();
  out.push_back(never ? 1 : 0);
  const std::set<int64_t>& all = days[windows];
  const size_t n = all.size();
  const double since_last = never ? kNaN : static_cast<double>(kCutoff - last) / kMsPerHour;
  out.push_back(since_last);
  out.push_back(never ? kNaN : static_cast<double>(kCutoff - first) / kMsPerHour);
  const double mean_gap = n >= 2 ? static_cast<double>(*all.rbegin() - *all.begin()) / static_cast<double>(n - 1) : kNaN;
  out.push_back(mean_gap);
  out.push_back(n >= 2 ? static_cast<double>(*std::next(all.begin()) - *all.begin()) : kNaN);
  out.push_back(n >= 2 ? since_last / 24.0 / mean_gap : kNaN);
  if (windows >= 2) {
    const double longest = static_cast<double>(days[windows - 1].size());
    out.push_back(longest > 0 ? static_cast<double>(days[0].size()) / longest : kNaN);
  }
  if (spec.unfiltered) {
    std::vector<double> all_count(windows + 1, 0);
    std::vector<std::set<int64_t>> all_days(windows + 1);
    int64_t all_last = INT64_MIN;
    for (const Logged* e : unfiltered) {
      const int64_t d = (kCutoff - 1 - e->time) / kMsPerDay;
      for (size_t w = 0; w <= windows; ++w) {
        if (w < windows && d >= spec.window_days[w]) continue;
        all_count[w] += 1;
        all_days[w].insert(d);
      }
      all_last = std::max(all_last, e->time);
    }
    for (double c : all_count) out.push_back(c);
    for (const auto& s : all_days) out.push_back(static_cast<double>(s.size()));
    out.push_back(unfiltered.empty() ? kNaN : static_cast<double>(kCutoff - all_last) / kMsPerHour);
    out.push_back(unfiltered.empty() ? kNaN : count[windows] / all_count[windows]);
    if (spec.unfiltered_bgnbd) {
      if (unfiltered.empty()) {
        out.insert(out.end(), 2, kNaN);
      } else {
        int64_t all_first = INT64_MAX;
        for (const Logged* e : unfiltered) all_first = std::min(all_first, e->time);
        const double x = static_cast<double>(all_days[windows].size() - 1);
        const ml::RfmSummary rfm{x, x == 0 ? 0.0 : static_cast<double>(all_last - all_first) / kMsPerDay,
                                 static_cast<double>(kCutoff - all_first) / kMsPerDay};
        const OutcomeBgNbd& b = *spec.unfiltered_bgnbd;
        const ml::BgNbdParams p{b.r, b.alpha, b.a, b.b};
        out.push_back(ml::BgNbdProbAlive(p, rfm));
        out.push_back(ml::BgNbdProbAnyWithin(p, rfm, spec.horizon_days));
      }
    }
  }
  if (spec.bgnbd) {
    if (never) {
      out.insert(out.end(), 3, kNaN);
    } else {
      const double x = static_cast<double>(n - 1);
      const ml::RfmSummary rfm{x, x == 0 ? 0.0 : static_cast<double>(last - first) / kMsPerDay,
                               static_cast<double>(kCutoff - first) / kMsPerDay};
      const ml::BgNbdParams p{spec.bgnbd->r, spec.bgnbd->alpha, spec.bgnbd->a, spec.bgnbd->b};
      out.push_back(ml::BgNbdProbAlive(p, rfm));
      out.push_back(ml::BgNbdProbAnyWithin(p, rfm, spec.horizon_days));
      out.push_back(ml::BgNbdExpectedTransactions(p, rfm, spec.horizon_days));
    }
  }
  return out;
}

struct Case {
  const char* name;
  OutcomeFamilySpec spec;
  const char* filter_set;  // which Qualifies() rule
  bool any_event = false;
};

std::vector<Case> Cases() {
  std::vector<Case> cases;
  {
    Case c{.name = "Buy where color = a, price, BG/NBD", .filter_set = "color = a"};
    c.spec.enabled = true;
    c.spec.event = "Buy";
    c.spec.where = {*ParsePropertyFilter("color = a")};
    c.spec.amount_property = "price";
    c.spec.window_days = {7, 30, 90, 365};
    c.spec.horizon_days = 14;
    c.spec.bgnbd = OutcomeBgNbd{0.6, 4.0, 0.8, 2.5};
    c.spec.unfiltered = true;
    c.spec.unfiltered_bgnbd = OutcomeBgNbd{0.9, 3.0, 0.5, 4.0};
    cases.push_back(c);
  }
  {
    Case c{.name = "Buy where color != b (absent qualifies), price", .filter_set = "color != b"};
    c.spec.enabled = true;
    c.spec.event = "Buy";
    c.spec.where = {*ParsePropertyFilter("color != b")};
    c.spec.amount_property = "price";
    c.spec.window_days = {7, 30};
    c.spec.horizon_days = 7;
    c.spec.unfiltered = true;  // without its BG/NBD columns
    cases.push_back(c);
  }
  {
    Case c{.name = "any event, one window", .filter_set = "", .any_event = true};
    c.spec.enabled = true;
    c.spec.window_days = {30};
    c.spec.horizon_days = 30;
    c.spec.bgnbd = OutcomeBgNbd{0.3, 2.0, 1.5, 0.7};
    cases.push_back(c);
  }
  {
    Case c{.name = "Buy, amount the store does not know", .filter_set = ""};
    c.spec.enabled = true;
    c.spec.event = "Buy";
    c.spec.amount_property = "no such property";
    c.spec.window_days = {7, 90};
    c.spec.horizon_days = 7;
    cases.push_back(c);
  }
  return cases;
}

void ExpectSameValue(double got, double want, const std::string& what) {
  if (std::isnan(want)) {
    EXPECT_TRUE(std::isnan(got)) << what << ": " << got << ", want NaN";
    return;
  }
  EXPECT_NEAR(got, want, 2e-6 * std::max(1.0, std::abs(want))) << what;
}

class OutcomeReferenceTest : public ::testing::TestWithParam<uint32_t> {};

TEST_P(OutcomeReferenceTest, EveryColumnEqualsTheNaiveReference) {
  TempStore store;
  const std::vector<Logged> log = RandomLog(GetParam());
  Ingest(log, store);
  auto reader = store.Snapshot();
  auto engine = MakeEmbeddedQueryEngine(reader);
  auto users = engine->Cohort(CohortExpr::Everyone(), kCutoff);
  ASSERT_TRUE(users.ok()) << users.status().ToString();
  const std::vector<std::string> ids = engine->UserIds(*users);

  std::map<std::string, std::string> linked_before_t;  // device -> user
  for (const Logged& e : log)
    if (!e.user.empty() && !e.device.empty() && e.time < kCutoff) linked_before_t[e.device] = e.user;
  ASSERT_EQ(linked_before_t.size(), 5u);
  ASSERT_GT(ids.size(), 15u);
  for (const auto& [device, user] : linked_before_t)
    EXPECT_EQ(std::count(ids.begin(), ids.end(), "device:" + device), 0) << device << " is " << user << "'s";
  EXPECT_EQ(std::count(ids.begin(), ids.end(), "device:dev-6"), 1) << "linked after T: its own row";

  // Rows: the cohort, plus one repeated (the later copy has the events, as for every
  // family) and a user that did nothing before T.
  std::vector<ActorId> rows = users->actors;
  rows.push_back(users->actors[0]);
  std::vector<std::string> row_names = ids;
  row_names.push_back(ids[0]);
  row_names[0] = "(repeated: empty)";

  FeatureSpec base;
  base.taxonomy.event_types = {"Buy", "View"};
  base.taxonomy.event_properties = {{.name = "price", .numeric = true, .values = {}}};
  size_t rows_without_outcome = 0, rows_with_one_day = 0, rows_with_only_unfiltered = 0;
  for (const Case& c : Cases()) {
    SCOPED_TRACE(c.name);
    FeatureSpec spec = base;
    spec.outcome = c.spec;
    const std::vector<std::string> names = OutcomeColumnNames(c.spec);
    ASSERT_EQ(names.size(), OutcomeEmptyValues(c.spec).size());
    const size_t k = names.size();
    const bool amount_known = c.spec.amount_property == "price";

    auto without = ComputeFeatures(*reader, base, kCutoff, rows, true);
    ASSERT_TRUE(without.ok()) << without.status().ToString();
    std::vector<FeatureMatrix> dense;
    for (bool parallel : {false, true}) {
      auto m = ComputeFeatures(*reader, spec, kCutoff, rows, parallel);
      ASSERT_TRUE(m.ok()) << m.status().ToString();
      dense.push_back(std::move(*m));
    }
    auto sparse = ComputeSparseFeatures(*reader, spec, kCutoff, rows, true);
    ASSERT_TRUE(sparse.ok()) << sparse.status().ToString();
    const size_t scanned = without->cols();
    ASSERT_EQ(dense[0].cols(), scanned + k);
    ASSERT_EQ(sparse->columns, dense[0].columns);
    for (size_t j = 0; j < k; ++j) EXPECT_EQ(dense[0].columns[scanned + j], names[j]);
    for (size_t j = 0; j < k; ++j) {
      const float fill = OutcomeEmptyValues(c.spec)[j];
      EXPECT_TRUE(sparse->fill[scanned + j] == fill || (std::isnan(fill) && std::isnan(sparse->fill[scanned + j])));
    }

    for (size_t r = 0; r < rows.size(); ++r) {
      std::vector<const Logged*> events, unfiltered;
      if (r != 0) {
        for (const Logged& e : log) {
          if (e.time >= kCutoff || RowOf(e, linked_before_t) != row_names[r]) continue;
          if (c.any_event ? true : Qualifies(e, c.filter_set)) events.push_back(&e);
          if (c.any_event ? true : Qualifies(e, "")) unfiltered.push_back(&e);
        }
      }
      const std::vector<double> want = ReferenceRow(events, unfiltered, c.spec, amount_known);
      ASSERT_EQ(want.size(), k);
      if (events.empty()) ++rows_without_outcome;
      if (c.spec.unfiltered && events.empty() && !unfiltered.empty()) ++rows_with_only_unfiltered;
      std::set<int64_t> days;
      for (const Logged* e : events) days.insert((kCutoff - 1 - e->time) / kMsPerDay);
      rows_with_one_day += days.size() == 1;
      for (size_t j = 0; j < k; ++j) {
        const std::string what = fmt::format("row {} ({}), column {}", r, row_names[r], names[j]);
        for (const FeatureMatrix& m : dense) ExpectSameValue(m.at(r, scanned + j), want[j], what + " (dense)");
        ExpectSameValue(sparse->at(r, scanned + j), want[j], what + " (sparse)");
      }
      // The other families' columns are where they were without the outcome family.
      for (size_t j = 0; j < scanned; ++j) {
        EXPECT_EQ(dense[1].at(r, j), without->at(r, j)) << "row " << r << ", column " << without->columns[j];
        EXPECT_EQ(sparse->at(r, j), without->at(r, j)) << "row " << r << ", column " << without->columns[j];
      }
    }
  }
  EXPECT_GT(rows_without_outcome, 4u) << "the log has rows that never did the outcome";
  EXPECT_GT(rows_with_one_day, 0u) << "and rows with a single active day (no gaps)";
  EXPECT_GT(rows_with_only_unfiltered, 0u) << "and rows with the event but never passing its filters";
}

INSTANTIATE_TEST_SUITE_P(Seeds, OutcomeReferenceTest, ::testing::Values(1u, 2u, 3u));

// Hand-checked values around the cutoff and the day boundaries.
TEST(OutcomeFeaturesTest, EdgesOfTheCutoffAndTheWindows) {
  TempStore store;
  EventBatch batch;
  for (const char* line : {
           R"({"user_id": "alice", "event_type": "Buy", "time": "T-1ms", "event_properties": {"price": 5}})",
           R"({"user_id": "alice", "event_type": "Buy", "time": "T", "event_properties": {"price": 100}})",
           R"({"user_id": "alice", "event_type": "Buy", "time": "T-7d", "event_properties": {"price": 2}})",
           R"({"user_id": "alice", "event_type": "Buy", "time": "T-7d", "event_properties": {"price": "x"}})",
           R"({"user_id": "alice", "event_type": "Buy", "time": "T-169h"})",
           R"({"user_id": "bob", "event_type": "View", "time": "T-2d"})",
           R"({"user_id": "bob", "event_type": "Buy", "time": "T"})",
       })
    AddLogLine(nlohmann::json::parse(line), kCutoff, batch);
  ASSERT_TRUE(store.store().Append(batch).ok());
  auto reader = store.Snapshot();
  auto engine = MakeEmbeddedQueryEngine(reader);
  auto users = engine->Cohort(CohortExpr::Everyone(), kCutoff);
  ASSERT_TRUE(users.ok());
  ASSERT_EQ(engine->UserIds(*users), (std::vector<std::string>{"alice", "bob"}));
  FeatureSpec spec;
  spec.outcome.enabled = true;
  spec.outcome.event = "Buy";
  spec.outcome.amount_property = "price";
  spec.outcome.window_days = {7, 30};
  auto m = engine->Features(spec, kCutoff, *users);
  ASSERT_TRUE(m.ok()) << m.status().ToString();
  auto cell = [&](size_t row, const std::string& column) {
    auto it = std::find(m->columns.begin(), m->columns.end(), column);
    EXPECT_NE(it, m->columns.end()) << column;
    return it == m->columns.end() ? -1.0f : m->at(row, static_cast<size_t>(it - m->columns.begin()));
  };
  // T-1ms and T-7d are days 0 and 6 (inside 7 days); T-169h is day 7.
  EXPECT_EQ(cell(0, "count \"Buy\" last 7d"), 3);
  EXPECT_EQ(cell(0, "count \"Buy\" last 30d"), 4);
  EXPECT_EQ(cell(0, "count \"Buy\" all history"), 4);
  EXPECT_EQ(cell(0, "active days \"Buy\" last 7d"), 2);
  EXPECT_EQ(cell(0, "active days \"Buy\" all history"), 3);
  EXPECT_EQ(cell(0, "sum(\"price\") of \"Buy\" last 7d"), 7);  // the string price adds nothing
  EXPECT_EQ(cell(0, "never \"Buy\""), 0);
  EXPECT_NEAR(cell(0, "hours since last \"Buy\" (outcome)"), 1.0 / 3'600'000, 1e-9);
  EXPECT_EQ(cell(0, "hours since first \"Buy\""), 169);
  EXPECT_EQ(cell(0, "mean days between \"Buy\""), 3.5f);     // days 7, 6, 0
  EXPECT_EQ(cell(0, "days between last two \"Buy\""), 6);
  EXPECT_NEAR(cell(0, "days since last \"Buy\" / mean gap"), 1.0 / 3'600'000 / 24 / 3.5, 1e-12);
  EXPECT_NEAR(cell(0, "share of \"Buy\" days in last 7d of last 30d"), 2.0 / 3, 1e-6);
  // Bob's only Buy is at T: never, as of T.
  EXPECT_EQ(cell(1, "count \"Buy\" all history"), 0);
  EXPECT_EQ(cell(1, "never \"Buy\""), 1);
  EXPECT_TRUE(std::isnan(cell(1, "hours since last \"Buy\" (outcome)")));
  EXPECT_TRUE(std::isnan(cell(1, "share of \"Buy\" days in last 7d of last 30d")));
}

// No leakage: outcome events at or after T change nothing (asked at T or within T's
// hour); one at T-1ms does.
TEST(OutcomeFeaturesTest, EventsAtOrAfterTheCutoffChangeNothing) {
  const char* before[] = {
      R"({"user_id": "alice", "event_type": "Buy", "time": "T-3d", "event_properties": {"price": 4}})",
      R"({"user_id": "alice", "event_type": "Buy", "time": "T-20d", "event_properties": {"price": 1}})",
      R"({"user_id": "bob", "event_type": "View", "time": "T-2d"})",
      R"({"device_id": "dev-1", "event_type": "Buy", "time": "T-5d", "event_properties": {"price": 3}})",
      R"({"user_id": "carol", "device_id": "dev-1", "event_type": "Login", "time": "T-1h"})",
  };
  const char* at_or_after[] = {
      R"({"user_id": "alice", "event_type": "Buy", "time": "T", "event_properties": {"price": 50}})",
      R"({"user_id": "bob", "event_type": "Buy", "time": "T", "event_properties": {"price": 50}})",
      R"({"user_id": "bob", "event_type": "Buy", "time": "T+30m", "event_properties": {"price": 50}})",
      R"({"device_id": "dev-1", "event_type": "Buy", "time": "T+1h", "event_properties": {"price": 50}})",
      R"({"user_id": "carol", "event_type": "Buy", "time": "T+2d", "event_properties": {"price": 50}})",
      // Fails the filter: only the unfiltered columns could see it.
      R"({"user_id": "alice", "event_type": "Buy", "time": "T+1ms", "event_properties": {"price": 1}})",
  };
  const char* just_before[] = {
      R"({"user_id": "bob", "event_type": "Buy", "time": "T-1ms", "event_properties": {"price": 50}})",
  };
  OutcomeFamilySpec outcome;
  outcome.enabled = true;
  outcome.event = "Buy";
  outcome.where = {*ParsePropertyFilter("price >= 2")};  // alice's T-20d Buy is unfiltered only
  outcome.unfiltered = true;
  outcome.unfiltered_bgnbd = OutcomeBgNbd{0.7, 5.0, 0.6, 3.0};
  outcome.amount_property = "price";
  outcome.window_days = {7, 30, 90};
  outcome.horizon_days = 7;
  outcome.bgnbd = OutcomeBgNbd{0.5, 3.0, 0.9, 2.0};
  const size_t k = OutcomeColumnNames(outcome).size();
  // Rows alice, bob, carol; their outcome columns asked at `asked`.
  auto rows_of = [&](std::vector<const char*> lines, int64_t asked, std::vector<std::string>* ids) {
    TempStore store;
    EventBatch batch;
    for (const char* line : lines) AddLogLine(nlohmann::json::parse(line), kCutoff, batch);
    EXPECT_TRUE(store.store().Append(batch).ok());
    auto engine = MakeEmbeddedQueryEngine(store.Snapshot());
    auto users = engine->Cohort(CohortExpr::Everyone(), asked);
    EXPECT_TRUE(users.ok());
    *ids = engine->UserIds(*users);
    FeatureSpec spec;
    spec.outcome = outcome;
    auto dense = engine->Features(spec, asked, *users);
    auto sparse = engine->SparseFeatures(spec, asked, *users);
    EXPECT_TRUE(dense.ok() && sparse.ok());
    std::vector<float> values;
    for (size_t r = 0; r < dense->rows(); ++r)
      for (size_t c = dense->cols() - k; c < dense->cols(); ++c) {
        values.push_back(dense->at(r, c));
        EXPECT_EQ(std::bit_cast<uint32_t>(sparse->at(r, c)), std::bit_cast<uint32_t>(dense->at(r, c)));
      }
    return values;
  };
  auto same_bits = [](const std::vector<float>& a, const std::vector<float>& b) {
    if (a.size() != b.size()) return false;
    for (size_t i = 0; i < a.size(); ++i)
      if (std::bit_cast<uint32_t>(a[i]) != std::bit_cast<uint32_t>(b[i])) return false;
    return true;
  };
  std::vector<std::string> ids, ids_later, ids_hour, ids_just;
  std::vector<const char*> lines(std::begin(before), std::end(before));
  const std::vector<float> base = rows_of(lines, kCutoff, &ids);
  ASSERT_EQ(ids, (std::vector<std::string>{"alice", "bob", "carol"}));
  ASSERT_EQ(base.size(), 3 * k);
  EXPECT_EQ(base[k * 2 + 0], 1) << "carol has dev-1's Buy (count last 7d)";

  std::vector<const char*> more = lines;
  more.insert(more.end(), std::begin(at_or_after), std::end(at_or_after));
  EXPECT_TRUE(same_bits(rows_of(more, kCutoff, &ids_later), base));
  EXPECT_EQ(ids_later, ids);
  EXPECT_TRUE(same_bits(rows_of(more, kCutoff + 59 * 60 * kMsPerSecond, &ids_hour), base)) << "T+59m means T";

  std::vector<const char*> just = lines;
  just.insert(just.end(), std::begin(just_before), std::end(just_before));
  const std::vector<float> changed = rows_of(just, kCutoff, &ids_just);
  ASSERT_EQ(changed.size(), base.size());
  EXPECT_TRUE(std::equal(changed.begin(), changed.begin() + k, base.begin(),
                         [](float a, float b) { return std::bit_cast<uint32_t>(a) == std::bit_cast<uint32_t>(b); }))
      << "alice unchanged";
  EXPECT_FALSE(same_bits(std::vector<float>(changed.begin() + k, changed.begin() + 2 * k),
                         std::vector<float>(base.begin() + k, base.begin() + 2 * k)))
      << "bob's T-1ms Buy is a feature";
  EXPECT_EQ(changed[k + 0], 1) << "bob: count last 7d";
}

// --- the spec's JSON form ---

FeatureSpec SpecWithOutcome() {
  FeatureSpec spec;
  spec.taxonomy.event_types = {"Buy", "View"};
  spec.outcome.enabled = true;
  spec.outcome.event = "Buy";
  spec.outcome.where = {*ParsePropertyFilter("color = a"), *ParsePropertyFilter("price >= 10")};
  spec.outcome.amount_property = "price";
  spec.outcome.window_days = {7, 30, 90};
  spec.outcome.horizon_days = 14;
  spec.outcome.bgnbd = OutcomeBgNbd{0.25, 3.5, 0.75, 2.125};
  spec.outcome.unfiltered = true;
  spec.outcome.unfiltered_bgnbd = OutcomeBgNbd{0.5, 7.25, 0.375, 3.0};
  return spec;
}

TEST(OutcomeSpecTest, JsonRoundTripKeepsTheOutcomeFamily) {
  const FeatureSpec spec = SpecWithOutcome();
  const nlohmann::json j = ToJson(spec);
  ASSERT_TRUE(j.contains("outcome"));
  auto back = FeatureSpecFromJson(nlohmann::json::parse(j.dump()));
  ASSERT_TRUE(back.ok()) << back.status().ToString();
  EXPECT_EQ(ToJson(*back), j);
  EXPECT_EQ(back->ColumnNames(), spec.ColumnNames());
  EXPECT_TRUE(back->outcome.enabled);
  EXPECT_EQ(back->outcome.event, "Buy");
  ASSERT_EQ(back->outcome.where.size(), 2u);
  EXPECT_EQ(back->outcome.where[1].Describe(), spec.outcome.where[1].Describe());
  EXPECT_EQ(back->outcome.amount_property, "price");
  EXPECT_EQ(back->outcome.window_days, (std::vector<int>{7, 30, 90}));
  EXPECT_EQ(back->outcome.horizon_days, 14);
  ASSERT_TRUE(back->outcome.bgnbd.has_value());
  EXPECT_EQ(back->outcome.bgnbd->r, 0.25);
  EXPECT_EQ(back->outcome.bgnbd->b, 2.125);
  EXPECT_TRUE(back->outcome.unfiltered);
  ASSERT_TRUE(back->outcome.unfiltered_bgnbd.has_value());
  EXPECT_EQ(back->outcome.unfiltered_bgnbd->alpha, 7.25);
  // The family's columns come last.
  const std::vector<std::string> names = spec.ColumnNames(), outcome = OutcomeColumnNames(spec.outcome);
  ASSERT_GT(names.size(), outcome.size());
  EXPECT_TRUE(std::equal(outcome.begin(), outcome.end(), names.end() - static_cast<ptrdiff_t>(outcome.size())));
  // Without fitted BG/NBD parameters there are no BG/NBD columns, and none come back.
  FeatureSpec unfitted = spec;
  unfitted.outcome.bgnbd.reset();
  auto unfitted_back = FeatureSpecFromJson(ToJson(unfitted));
  ASSERT_TRUE(unfitted_back.ok()) << unfitted_back.status().ToString();
  EXPECT_FALSE(unfitted_back->outcome.bgnbd.has_value());
  EXPECT_EQ(unfitted_back->ColumnNames().size(), names.size() - 3);
}

TEST(OutcomeSpecTest, SpecsWithoutTheOutcomeStillLoad) {
  FeatureSpec old;
  old.taxonomy.event_types = {"Buy", "View"};
  nlohmann::json j = ToJson(old);
  EXPECT_TRUE(j.at("outcome").is_null());
  auto with_null = FeatureSpecFromJson(j);
  ASSERT_TRUE(with_null.ok()) << with_null.status().ToString();
  EXPECT_FALSE(with_null->outcome.enabled);
  j.erase("outcome");  // written before the family existed
  auto loaded = FeatureSpecFromJson(j);
  ASSERT_TRUE(loaded.ok()) << loaded.status().ToString();
  EXPECT_FALSE(loaded->outcome.enabled);
  EXPECT_EQ(loaded->ColumnNames(), old.ColumnNames());
}

// A filtered outcome's spec written before the unfiltered columns existed has no
// "unfiltered" key: it loads with them off and its columns are the ones its model learned.
TEST(OutcomeSpecTest, SpecsWrittenBeforeTheUnfilteredColumnsKeepTheirColumns) {
  FeatureSpec old = SpecWithOutcome();
  old.outcome.unfiltered = false;
  old.outcome.unfiltered_bgnbd.reset();
  const nlohmann::json j = ToJson(old);
  EXPECT_FALSE(j.at("outcome").contains("unfiltered"));
  auto loaded = FeatureSpecFromJson(j);
  ASSERT_TRUE(loaded.ok()) << loaded.status().ToString();
  EXPECT_FALSE(loaded->outcome.unfiltered);
  EXPECT_EQ(loaded->ColumnNames(), old.ColumnNames());
  const size_t with = OutcomeColumnNames(SpecWithOutcome().outcome).size();
  const size_t scales = old.outcome.window_days.size() + 1;
  EXPECT_EQ(OutcomeColumnNames(old.outcome).size() + 2 * scales + 2 + 2, with);
  // The new columns sit before the outcome's BG/NBD ones, which stay last.
  const std::vector<std::string> names = OutcomeColumnNames(SpecWithOutcome().outcome);
  EXPECT_EQ(names[with - 7], R"(hours since last "Buy" unfiltered)");
  EXPECT_EQ(names[with - 6], R"(share of "Buy" with color = "a" and price >= 10.0)");
  EXPECT_EQ(names[with - 5], R"(BG/NBD P(alive) for "Buy" unfiltered)");
  EXPECT_EQ(names[with - 4], R"(BG/NBD P("Buy" unfiltered within 14d))");
  EXPECT_EQ(names[with - 3].rfind("BG/NBD P(alive) for \"Buy\" where", 0), 0u);
}

TEST(OutcomeSpecTest, TamperedOrInvalidOutcomeIsRejected) {
  const nlohmann::json good = ToJson(SpecWithOutcome());
  ASSERT_TRUE(FeatureSpecFromJson(good).ok());
  auto rejected = [&](const std::function<void(nlohmann::json&)>& tamper, const char* what) {
    nlohmann::json j = good;
    tamper(j);
    auto spec = FeatureSpecFromJson(j);
    EXPECT_FALSE(spec.ok()) << what;
    if (!spec.ok()) {
      EXPECT_EQ(spec.status().code(), StatusCode::kInvalidArgument) << what;
    }
  };
  rejected([](nlohmann::json& j) { j["columns"].back() = "BG/NBD P(alive) for something else"; }, "renamed column");
  rejected([](nlohmann::json& j) { j["columns"].erase(j["columns"].size() - 1); }, "dropped column");
  rejected([](nlohmann::json& j) { j["outcome"]["window_days"] = {7, 90, 30}; }, "windows out of order");
  rejected([](nlohmann::json& j) { j["outcome"]["window_days"] = {0, 30}; }, "zero window");
  rejected([](nlohmann::json& j) { j["outcome"]["bgnbd"]["r"] = -1; }, "negative BG/NBD parameter");
  rejected([](nlohmann::json& j) { j["outcome"]["bgnbd"]["a"] = nullptr; }, "missing BG/NBD parameter");
  rejected([](nlohmann::json& j) { j["outcome"]["where"] = {{{"property", "color"}, {"op", "nonsense"}}}; },
           "bad filter");
  rejected([](nlohmann::json& j) { j["outcome"].erase("event"); }, "no event");
  rejected([](nlohmann::json& j) { j["outcome"]["unfiltered"] = "yes"; }, "unfiltered not a boolean");
  rejected([](nlohmann::json& j) { j["outcome"]["unfiltered_bgnbd"]["b"] = 0; }, "zero unfiltered BG/NBD parameter");
  rejected([](nlohmann::json& j) { j["outcome"]["unfiltered"] = false; }, "unfiltered BG/NBD without the columns");
  rejected(
      [](nlohmann::json& j) {
        j["outcome"]["where"] = nlohmann::json::array();
        j["columns"] = ToJson([] {
          FeatureSpec s = SpecWithOutcome();
          s.outcome.where.clear();
          s.outcome.unfiltered = false;
          s.outcome.unfiltered_bgnbd.reset();
          return s;
        }())["columns"];
      },
      "unfiltered columns without filters");
  // The outcome removed but its columns kept: the column list no longer matches.
  rejected([](nlohmann::json& j) { j.erase("outcome"); }, "outcome removed, columns kept");
}

}  // namespace
}  // namespace sibyl
