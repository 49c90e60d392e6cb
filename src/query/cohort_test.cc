#include "query/cohort.h"

#include <gtest/gtest.h>

#include "common/time.h"
#include "query/query_engine.h"
#include "query/query_test_util.h"

namespace sibyl {
namespace {

using testing_util::AddLogLine;
using testing_util::TempStore;

constexpr int64_t kCutoff = 1'699'999'200'000;

class CohortTest : public ::testing::Test {
 protected:
  void SetUp() override {
    EventBatch batch;
    for (const char* line : {
             // alice: old user, buys twice recently, pro plan, top percentile
             R"({"user_id": "alice", "event_type": "Sign Up", "time": "T-200d"})",
             R"({"user_id": "alice", "event_type": "Purchase", "time": "T-3d", "event_properties": {"price": 30, "category": "shoes"}})",
             R"({"user_id": "alice", "event_type": "Purchase", "time": "T-2d", "event_properties": {"price": 5, "category": "socks"}})",
             R"({"user_id": "alice", "identify": true, "time": "T-10d", "user_properties": {"plan": "pro", "sibyl.purchase_7d.percentile": 91}})",
             // bob: new user, one cheap purchase, free plan
             R"({"user_id": "bob", "event_type": "Sign Up", "time": "T-5d"})",
             R"({"user_id": "bob", "event_type": "Purchase", "time": "T-1d", "event_properties": {"price": 8, "category": "socks"}})",
             R"({"user_id": "bob", "identify": true, "time": "T-5d", "user_properties": {"plan": "free", "sibyl.purchase_7d.percentile": 40}})",
             // carol: dormant for 100 days
             R"({"user_id": "carol", "event_type": "Sign Up", "time": "T-120d"})",
             R"({"user_id": "carol", "event_type": "View Item", "time": "T-100d"})",
             // dave: appears only after the cutoff
             R"({"user_id": "dave", "event_type": "Sign Up", "time": "T+1h"})",
         })
      AddLogLine(nlohmann::json::parse(line), kCutoff, batch);
    ASSERT_TRUE(store_.store().Append(batch).ok());
    engine_ = MakeEmbeddedQueryEngine(store_.Snapshot());
  }

  // Members of the cohort written as JSON, by user id; or the error message.
  std::string Members(const std::string& json) {
    auto expr = ParseCohortText(json);
    if (!expr.ok()) return "parse error: " + expr.status().message();
    auto users = engine_->Cohort(*expr, kCutoff);
    if (!users.ok()) return "error: " + users.status().message();
    std::string out;
    for (const std::string& id : engine_->UserIds(*users)) out += (out.empty() ? "" : ",") + id;
    return out;
  }

  TempStore store_;
  std::unique_ptr<QueryEngine> engine_;
};

TEST_F(CohortTest, EveryoneIsEveryUserSeenBeforeTheCutoff) {
  EXPECT_EQ(Members(R"({"all": []})"), "alice,bob,carol");
}

TEST_F(CohortTest, ActiveWithinDays) {
  EXPECT_EQ(Members(R"({"active_within_days": 30})"), "alice,bob");
  EXPECT_EQ(Members(R"({"active_within_days": 101})"), "alice,bob,carol");
}

TEST_F(CohortTest, FirstSeenWithinDays) {
  EXPECT_EQ(Members(R"({"first_seen_within_days": 7})"), "bob");
}

TEST_F(CohortTest, PerformedAtLeastKTimesWithFiltersWithinDays) {
  EXPECT_EQ(Members(R"({"performed": {"event": "Purchase"}})"), "alice,bob");
  EXPECT_EQ(Members(R"({"performed": {"event": "Purchase", "at_least": 2}})"), "alice");
  EXPECT_EQ(Members(R"({"performed": {"event": "Purchase", "within_days": 1.5}})"), "bob");
  EXPECT_EQ(Members(R"({"performed": {"event": "Purchase", "where": [{"property": "price", "op": "gte", "value": 8}]}})"),
            "alice,bob");
  EXPECT_EQ(Members(R"({"performed": {"event": "Purchase", "where": [{"property": "price", "op": "gt", "value": 8}]}})"),
            "alice");
  EXPECT_EQ(Members(R"({"performed": {"event": "Purchase", "at_least": 2, "where": [{"property": "category", "op": "in", "value": ["socks", "shoes"]}]}})"),
            "alice");
  EXPECT_EQ(Members(R"({"performed": {"event": "Purchase", "where": ["category contains hoe"]}})"), "alice");
  EXPECT_EQ(Members(R"({"performed": {"event": "Purchase", "where": [{"property": "category", "op": "neq", "value": "shoes"}]}})"),
            "alice,bob");
}

TEST_F(CohortTest, UserPropertiesAsOfTheCutoffIncludingScoresWrittenBack) {
  EXPECT_EQ(Members(R"({"user_property": {"property": "plan", "op": "eq", "value": "pro"}})"), "alice");
  EXPECT_EQ(Members(R"({"user_property": "sibyl.purchase_7d.percentile >= 80"})"), "alice");
  EXPECT_EQ(Members(R"({"user_property": "sibyl.purchase_7d.percentile < 80"})"), "bob");
  // neq also holds for users who never had the property.
  EXPECT_EQ(Members(R"({"user_property": "plan != pro"})"), "bob,carol");
}

TEST_F(CohortTest, AllAnyNotCompose) {
  EXPECT_EQ(Members(R"({"all": [{"active_within_days": 30}, {"not": {"user_property": "plan = pro"}}]})"), "bob");
  EXPECT_EQ(Members(R"({"any": [{"first_seen_within_days": 7}, {"not": {"active_within_days": 30}}]})"), "bob,carol");
  EXPECT_EQ(Members(R"({"not": {"all": []}})"), "");
}

TEST_F(CohortTest, UnknownNamesSuggestTheClosestKnownOnes) {
  EXPECT_EQ(Members(R"({"performed": {"event": "Purchse"}})"),
            "error: unknown event type \"Purchse\"; did you mean \"Purchase\"?");
  EXPECT_EQ(Members(R"({"user_property": "plann = pro"})"),
            "error: unknown user property \"plann\"; did you mean \"plan\"?");
  EXPECT_EQ(Members(R"({"performed": {"event": "Purchase", "where": ["prise > 3"]}})"),
            "error: unknown event property \"prise\"; did you mean \"price\"?");
  EXPECT_EQ(Members(R"({"user_property": "sibyl.purchase_7.percentile >= 80"})"),
            "error: unknown user property \"sibyl.purchase_7.percentile\"; did you mean "
            "\"sibyl.purchase_7d.percentile\"?");
}

// Names given as lists (what a ClickHouse cluster answers) check a cohort exactly as the
// store's own dictionaries do: the same refusals, the same suggestions.
TEST_F(CohortTest, NameListsCheckAsTheStoresDictionariesDo) {
  std::shared_ptr<const EventReader> reader = store_.Snapshot();
  const ReaderNames from_store(*reader);
  std::vector<std::string> events = from_store.EventTypes(), keys = from_store.PropertyKeys(),
                           users = from_store.UserProperties();
  const std::vector<std::string> again = events;
  events.insert(events.end(), again.begin(), again.end());  // repeats, as several shards answer
  std::reverse(keys.begin(), keys.end());
  const NameLists lists(events, keys, users);
  EXPECT_TRUE(lists.HasEventType("Purchase"));
  EXPECT_FALSE(lists.HasEventType("Purchse"));
  EXPECT_TRUE(lists.HasPropertyKey("price"));
  EXPECT_EQ(lists.EventTypes(), [&] {
    std::vector<std::string> sorted = from_store.EventTypes();
    std::sort(sorted.begin(), sorted.end());
    return sorted;
  }());
  for (const char* json : {R"({"performed": {"event": "Purchse"}})", R"({"user_property": "plann = pro"})",
                           R"({"performed": {"event": "Purchase", "where": ["prise > 3"]}})",
                           R"({"user_property": "sibyl.purchase_7.percentile >= 80"})",
                           R"({"all": [{"performed": {"event": "Purchase", "where": ["price > 3"]}}, {"user_property": "plan = pro"}]})"}) {
    auto expr = ParseCohortText(json);
    ASSERT_TRUE(expr.ok()) << json;
    EXPECT_EQ(ValidateCohort(lists, *expr).ToString(), ValidateCohort(*reader, *expr).ToString()) << json;
  }
}

TEST_F(CohortTest, MalformedCohortsAreRejectedWithAReason) {
  EXPECT_EQ(Members(R"({"active_within": 3})"),
            "parse error: unknown cohort condition \"active_within\"; did you mean \"active_within_days\"?");
  EXPECT_EQ(Members(R"({"active_within_days": -1})"),
            "parse error: \"active_within_days\" must be a number of days between 0 and 36500, got -1");
  EXPECT_EQ(Members(R"({"performed": {"event": "Purchase", "at_least": 0}})"),
            "parse error: \"at_least\" must be a positive integer, got 0");
  EXPECT_EQ(Members(R"({"user_property": "plan"})"),
            "parse error: filter \"plan\" has no operator (=, !=, >, >=, <, <=, contains)");
  EXPECT_EQ(Members(R"({"all": {}})"), "parse error: \"all\" takes an array of conditions");
  EXPECT_EQ(Members("{"), "parse error: cohort is not valid JSON");
}

TEST(CohortJsonTest, RoundTrips) {
  const char* text = R"({"all":[{"active_within_days":90.0},{"not":{"performed":{"at_least":2,"event":"Purchase","where":[{"op":"gte","property":"price","value":10}],"within_days":30.0}}},{"user_property":{"op":"gte","property":"sibyl.p.percentile","value":80.0}}]})";
  auto expr = ParseCohortText(text);
  ASSERT_TRUE(expr.ok()) << expr.status().ToString();
  auto again = ParseCohort(ToJson(*expr));
  ASSERT_TRUE(again.ok());
  EXPECT_EQ(ToJson(*again), ToJson(*expr));
  std::vector<std::string> events, event_props, user_props;
  CollectNames(*expr, events, event_props, user_props);
  EXPECT_EQ(events, std::vector<std::string>{"Purchase"});
  EXPECT_EQ(event_props, std::vector<std::string>{"price"});
  EXPECT_EQ(user_props, std::vector<std::string>{"sibyl.p.percentile"});
}

}  // namespace
}  // namespace sibyl
