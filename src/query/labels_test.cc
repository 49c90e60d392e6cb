#include "query/labels.h"

#include <gtest/gtest.h>

#include "common/time.h"
#include "query/query_engine.h"
#include "query/query_test_util.h"

namespace sibyl {
namespace {

using testing_util::AddLogLine;
using testing_util::TempStore;

constexpr int64_t kCutoff = 1'699'999'200'000;

class LabelsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    EventBatch batch;
    for (const char* line : {
             R"({"user_id": "alice", "event_type": "Seen", "time": "T-1d"})",
             R"({"user_id": "alice", "event_type": "Purchase", "time": "T+1d", "event_properties": {"revenue": 20, "plan": "pro"}})",
             R"({"user_id": "alice", "event_type": "Purchase", "time": "T+2d", "event_properties": {"revenue": 5.5, "plan": "basic"}})",
             R"({"user_id": "bob", "event_type": "Seen", "time": "T-1d"})",
             R"({"user_id": "bob", "event_type": "Purchase", "time": "T+8d", "event_properties": {"revenue": 100, "plan": "pro"}})",
             R"({"user_id": "bob", "event_type": "Seen", "time": "T+3d"})",
             R"({"user_id": "carol", "event_type": "Seen", "time": "T-1d"})",
             // carol buys on a new phone first seen in the horizon: still carol's purchase.
             R"({"user_id": "carol", "device_id": "phone-2", "event_type": "Login", "time": "T+1h"})",
             R"({"device_id": "phone-2", "event_type": "Purchase", "time": "T+2h", "event_properties": {"revenue": 7, "plan": "pro"}})",
         })
      AddLogLine(nlohmann::json::parse(line), kCutoff, batch);
    ASSERT_TRUE(store_.store().Append(batch).ok());
    engine_ = MakeEmbeddedQueryEngine(store_.Snapshot());
    auto users = engine_->Cohort(CohortExpr::Everyone(), kCutoff);
    ASSERT_TRUE(users.ok());
    users_ = *users;
    ASSERT_EQ(engine_->UserIds(users_), (std::vector<std::string>{"alice", "bob", "carol"}));
  }

  std::vector<float> Labels(const std::string& prediction) {
    auto spec = ParseLabelSpec(nlohmann::json::parse(prediction));
    EXPECT_TRUE(spec.ok()) << spec.status().ToString();
    auto y = engine_->Labels(*spec, kCutoff, users_);
    EXPECT_TRUE(y.ok()) << y.status().ToString();
    return y.ok() ? *y : std::vector<float>{};
  }

  TempStore store_;
  std::unique_ptr<QueryEngine> engine_;
  UserSet users_;
};

TEST_F(LabelsTest, PropensityCountsTheOutcomeInsideTheHorizonOnly) {
  EXPECT_EQ(Labels(R"({"kind": "propensity", "outcome": {"event": "Purchase"}, "horizon_days": 7})"),
            (std::vector<float>{1, 0, 1}));
  EXPECT_EQ(Labels(R"({"kind": "propensity", "outcome": {"event": "Purchase"}, "horizon_days": 9})"),
            (std::vector<float>{1, 1, 1}));
}

TEST_F(LabelsTest, PropensityAppliesPropertyFilters) {
  EXPECT_EQ(Labels(R"({"kind": "propensity", "horizon_days": 7,
                       "outcome": {"event": "Purchase", "where": [{"property": "plan", "op": "eq", "value": "basic"}]}})"),
            (std::vector<float>{1, 0, 0}));
  EXPECT_EQ(Labels(R"({"kind": "propensity", "horizon_days": 7,
                       "outcome": {"event": "Purchase", "where": [{"property": "revenue", "op": "lt", "value": 6}]}})"),
            (std::vector<float>{1, 0, 0}));
  EXPECT_EQ(Labels(R"({"kind": "propensity", "horizon_days": 7,
                       "outcome": {"event": "Purchase", "where": [{"property": "revenue", "op": "gte", "value": 7},
                                                                  {"property": "plan", "op": "contains", "value": "pr"}]}})"),
            (std::vector<float>{1, 0, 1}));
}

TEST_F(LabelsTest, ChurnIsNoQualifyingEventInTheHorizon) {
  // Any event: bob was seen at T+3d, so nobody churned within 7 days.
  EXPECT_EQ(Labels(R"({"kind": "churn", "horizon_days": 7})"), (std::vector<float>{0, 0, 0}));
  EXPECT_EQ(Labels(R"({"kind": "churn", "horizon_days": 2})"), (std::vector<float>{0, 1, 0}));
  EXPECT_EQ(Labels(R"({"kind": "churn", "outcome": {"event": "Purchase"}, "horizon_days": 7})"),
            (std::vector<float>{0, 1, 0}));
}

TEST_F(LabelsTest, RevenueSumsTheNumericPropertyOverQualifyingEvents) {
  EXPECT_EQ(Labels(R"({"kind": "revenue", "outcome": {"event": "Purchase"}, "revenue_property": "revenue", "horizon_days": 7})"),
            (std::vector<float>{25.5f, 0, 7}));
  EXPECT_EQ(Labels(R"({"kind": "revenue", "outcome": {"event": "Purchase", "where": ["plan = pro"]}, "revenue_property": "revenue", "horizon_days": 30})"),
            (std::vector<float>{20, 100, 7}));
}

TEST_F(LabelsTest, ValidationSuggestsKnownNames) {
  auto spec = ParseLabelSpec(nlohmann::json::parse(
      R"({"kind": "propensity", "outcome": {"event": "Purchace"}, "horizon_days": 7})"));
  ASSERT_TRUE(spec.ok());
  EXPECT_EQ(engine_->ValidateLabel(*spec).message(),
            "unknown event type \"Purchace\"; did you mean \"Purchase\"?");
  EXPECT_EQ(ParseLabelSpec(nlohmann::json::parse(R"({"kind": "revenue", "horizon_days": 7})")).status().message(),
            "a revenue prediction needs \"revenue_property\" (e.g. \"revenue\")");
  EXPECT_FALSE(ParseLabelSpec(nlohmann::json::parse(R"({"kind": "churn", "horizon_days": 0})")).ok());
}

}  // namespace
}  // namespace sibyl
