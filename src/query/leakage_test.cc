// No leakage: features see only [.., T), labels only [T, T+H), user properties and
// identity links only as they were before T.
#include <gtest/gtest.h>

#include "common/time.h"
#include "query/query_engine.h"
#include "query/query_test_util.h"

namespace sibyl {
namespace {

using testing_util::AddLogLine;
using testing_util::TempStore;

constexpr int64_t kCutoff = 1'699'999'200'000;  // hour-aligned
static_assert(kCutoff % kMsPerHour == 0);

class LeakageTest : public ::testing::Test {
 protected:
  void Load(std::initializer_list<const char*> lines) {
    EventBatch batch;
    for (const char* line : lines) AddLogLine(nlohmann::json::parse(line), kCutoff, batch);
    ASSERT_TRUE(store_.store().Append(batch).ok());
    engine_ = MakeEmbeddedQueryEngine(store_.Snapshot());
  }
  UserSet Everyone() {
    auto users = engine_->Cohort(CohortExpr::Everyone(), kCutoff);
    EXPECT_TRUE(users.ok()) << users.status().ToString();
    return *users;
  }
  // The value of `column` for `user_id` (which must be a row).
  float Cell(const FeatureMatrix& m, const UserSet& users, const std::string& user_id,
             const std::string& column) {
    auto ids = engine_->UserIds(users);
    size_t row = std::find(ids.begin(), ids.end(), user_id) - ids.begin();
    size_t col = std::find(m.columns.begin(), m.columns.end(), column) - m.columns.begin();
    EXPECT_LT(row, ids.size()) << user_id;
    EXPECT_LT(col, m.columns.size()) << column;
    return row < ids.size() && col < m.columns.size() ? m.at(row, col) : -1;
  }
  FeatureSpec SpecWith(std::vector<std::string> events, std::vector<UserPropertySpec> user_props = {}) {
    FeatureSpec spec;
    spec.taxonomy.event_types = std::move(events);
    spec.taxonomy.user_properties = std::move(user_props);
    return spec;
  }

  TempStore store_;
  std::unique_ptr<QueryEngine> engine_;
};

TEST_F(LeakageTest, EventJustBeforeCutoffIsAFeatureNotALabel) {
  Load({R"({"user_id": "alice", "event_type": "Buy", "time": "T-1ms"})",
        R"({"user_id": "bob", "event_type": "Seen", "time": "T-1d"})",
        R"({"user_id": "bob", "event_type": "Buy", "time": "T"})"});
  UserSet users = Everyone();
  auto m = engine_->Features(SpecWith({"Buy"}), kCutoff, users);
  ASSERT_TRUE(m.ok()) << m.status().ToString();
  EXPECT_EQ(Cell(*m, users, "alice", "count(\"Buy\") week -1"), 1);
  EXPECT_EQ(Cell(*m, users, "bob", "count(\"Buy\") week -1"), 0);
  // 1 ms before the cutoff is 1/3600000 of an hour ago.
  EXPECT_LT(Cell(*m, users, "alice", "hours since last \"Buy\""), 0.001);
  EXPECT_EQ(Cell(*m, users, "bob", "hours since last \"Buy\""), 8760);  // never, as of T

  LabelSpec label{.kind = LabelKind::kPropensity, .event = "Buy", .horizon_ms = 7 * kMsPerDay};
  auto y = engine_->Labels(label, kCutoff, users);
  ASSERT_TRUE(y.ok()) << y.status().ToString();
  auto ids = engine_->UserIds(users);
  ASSERT_EQ(ids, (std::vector<std::string>{"alice", "bob"}));
  EXPECT_EQ((*y)[0], 0);  // alice bought at T-1ms: before the horizon
  EXPECT_EQ((*y)[1], 1);  // bob bought at exactly T: inside it
}

TEST_F(LeakageTest, CutoffIsFlooredToTheHourForBoth) {
  Load({R"({"user_id": "alice", "event_type": "Buy", "time": "T+30m"})"});
  // Asking at T+59m still means T: the T+30m event is a label, never a feature.
  int64_t asked = kCutoff + 59 * 60 * 1000;
  auto users = engine_->Cohort(CohortExpr::Everyone(), asked);
  ASSERT_TRUE(users.ok());
  EXPECT_TRUE(users->actors.empty());  // alice is not seen before T
}

TEST_F(LeakageTest, UserPropertySetAtOrAfterCutoffIsInvisibleToFeatures) {
  Load({R"({"user_id": "alice", "event_type": "Seen", "time": "T-2d"})",
        R"({"user_id": "bob", "event_type": "Seen", "time": "T-2d"})",
        R"({"user_id": "alice", "identify": true, "time": "T-1ms", "user_properties": {"plan": "pro"}})",
        R"({"user_id": "bob", "identify": true, "time": "T-3d", "user_properties": {"plan": "free"}})",
        R"({"user_id": "bob", "identify": true, "time": "T", "user_properties": {"plan": "pro"}})"});
  UserSet users = Everyone();
  auto m = engine_->Features(SpecWith({"Seen"}, {{"plan", {"pro", "free"}}}), kCutoff, users);
  ASSERT_TRUE(m.ok()) << m.status().ToString();
  EXPECT_EQ(Cell(*m, users, "alice", "last(\"plan\") = \"pro\""), 1);
  EXPECT_EQ(Cell(*m, users, "bob", "last(\"plan\") = \"pro\""), 0);
  EXPECT_EQ(Cell(*m, users, "bob", "last(\"plan\") = \"free\""), 1);
  // The cohort language sees the same as-of values.
  auto cohort = ParseCohort(nlohmann::json::parse(R"({"user_property": "plan = pro"})"));
  ASSERT_TRUE(cohort.ok());
  auto pro = engine_->Cohort(*cohort, kCutoff);
  ASSERT_TRUE(pro.ok()) << pro.status().ToString();
  EXPECT_EQ(engine_->UserIds(*pro), std::vector<std::string>{"alice"});
}

TEST_F(LeakageTest, IdentityLinkAfterCutoffDoesNotMoveEventsIntoTheUser) {
  Load({R"({"device_id": "dev-1", "event_type": "View", "time": "T-2d"})",
        R"({"device_id": "dev-1", "event_type": "View", "time": "T-1d"})",
        R"({"user_id": "carol", "event_type": "View", "time": "T-3d"})",
        R"({"user_id": "carol", "device_id": "dev-1", "event_type": "Login", "time": "T+1h"})"});
  UserSet users = Everyone();
  auto m = engine_->Features(SpecWith({"View"}), kCutoff, users);
  ASSERT_TRUE(m.ok()) << m.status().ToString();
  EXPECT_EQ(Cell(*m, users, "carol", "count(\"View\") week -1"), 1);
  // At T the device is still anonymous: its own row.
  EXPECT_EQ(Cell(*m, users, "device:dev-1", "count(\"View\") week -1"), 2);
}

TEST_F(LeakageTest, IdentityLinkBeforeCutoffMovesTheDevicesEarlierEventsToo) {
  Load({R"({"device_id": "dev-1", "event_type": "View", "time": "T-2d"})",
        R"({"device_id": "dev-1", "event_type": "View", "time": "T-1d"})",
        R"({"user_id": "carol", "event_type": "View", "time": "T-3d"})",
        R"({"user_id": "carol", "device_id": "dev-1", "event_type": "Login", "time": "T-1h"})"});
  UserSet users = Everyone();
  ASSERT_EQ(engine_->UserIds(users), std::vector<std::string>{"carol"});
  auto m = engine_->Features(SpecWith({"View"}), kCutoff, users);
  ASSERT_TRUE(m.ok()) << m.status().ToString();
  EXPECT_EQ(Cell(*m, users, "carol", "count(\"View\") week -1"), 3);
}

TEST_F(LeakageTest, FeaturesRejectAUserSetFromAnotherCutoff) {
  Load({R"({"user_id": "alice", "event_type": "Buy", "time": "T-1d"})"});
  UserSet users = Everyone();
  auto m = engine_->Features(SpecWith({"Buy"}), kCutoff + kMsPerHour, users);
  EXPECT_EQ(m.status().code(), StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace sibyl
