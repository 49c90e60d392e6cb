#include "pipeline/prediction.h"

#include <filesystem>

#include <gtest/gtest.h>

#include "pipeline/pipeline_test_util.h"
#include "pipeline/registry.h"

namespace sibyl::pipeline {
namespace {

using nlohmann::json;

Status ParseError(const std::string& text) {
  auto parsed = ParsePredictionDefinitionText(text);
  return parsed.ok() ? Status::Ok() : parsed.status();
}

TEST(PredictionDefinitionTest, ParsesTheProductExampleAndRoundTrips) {
  auto d = ParsePredictionDefinitionText(R"({"name": "purchase_7d", "kind": "propensity",
    "outcome": {"event": "Purchase", "where": [{"property": "plan", "op": "eq", "value": "pro"}]},
    "horizon_days": 7, "cohort": {"all": [{"active_within_days": 90}]},
    "refresh": {"train_every_hours": 24, "score_every_hours": 1}})");
  ASSERT_TRUE(d.ok()) << d.status().ToString();
  EXPECT_EQ(d->name, "purchase_7d");
  EXPECT_EQ(d->kind, PredictionKind::kPropensity);
  EXPECT_EQ(d->outcome_event, "Purchase");
  EXPECT_EQ(d->horizon_days, 7);
  auto again = ParsePredictionDefinition(ToJson(*d));
  ASSERT_TRUE(again.ok());
  EXPECT_EQ(ToJson(*again), ToJson(*d));
  auto label = ToLabelSpec(*d);
  ASSERT_TRUE(label.ok());
  EXPECT_EQ(label->horizon_ms, 7 * 24 * 3600 * 1000LL);
  ASSERT_EQ(label->where.size(), 1u);
}

TEST(PredictionDefinitionTest, HorizonBounds) {
  const std::string head = R"({"name": "p", "kind": "churn", "horizon_days": )";
  EXPECT_TRUE(ParseError(head + "1}").ok());
  EXPECT_TRUE(ParseError(head + "365}").ok());
  for (const char* bad : {"0", "366", "-3", "7.5", "\"7\""}) {
    Status st = ParseError(head + bad + "}");
    EXPECT_EQ(st.code(), StatusCode::kInvalidArgument) << bad;
    EXPECT_NE(st.message().find("horizon_days"), std::string::npos) << st.message();
  }
  Status missing = ParseError(R"({"name": "p", "kind": "churn"})");
  EXPECT_NE(missing.message().find("needs \"horizon_days\" (1 to 365)"), std::string::npos) << missing.message();
}

TEST(PredictionDefinitionTest, FieldsAKindNeeds) {
  Status st = ParseError(R"({"name": "p", "kind": "propensity", "horizon_days": 7})");
  EXPECT_NE(st.message().find("propensity prediction needs \"outcome\""), std::string::npos) << st.message();
  st = ParseError(R"({"name": "p", "kind": "revenue", "horizon_days": 28})");
  EXPECT_NE(st.message().find("revenue prediction needs \"revenue_property\""), std::string::npos) << st.message();
  st = ParseError(R"({"name": "p", "kind": "churn", "horizon_days": 7, "revenue_property": "x"})");
  EXPECT_NE(st.message().find("only applies to revenue"), std::string::npos) << st.message();
  st = ParseError(R"({"name": "p", "kind": "likely", "horizon_days": 7})");
  EXPECT_NE(st.message().find("unknown prediction kind \"likely\""), std::string::npos) << st.message();
  st = ParseError(R"({"kind": "churn", "horizon_days": 7})");
  EXPECT_NE(st.message().find("needs a \"name\""), std::string::npos) << st.message();
  EXPECT_TRUE(ParseError(R"({"name": "r", "kind": "revenue", "revenue_property": "revenue",
                             "outcome": {"event": "Purchase"}, "horizon_days": 28})").ok());
}

TEST(PredictionDefinitionTest, UnknownFieldsSuggestTheRightOne) {
  Status st = ParseError(R"({"name": "p", "kind": "churn", "horizon_day": 7})");
  EXPECT_EQ(st.code(), StatusCode::kInvalidArgument);
  EXPECT_NE(st.message().find("did you mean \"horizon_days\"?"), std::string::npos) << st.message();
  st = ParseError(R"({"name": "p", "kind": "propensity", "horizon_days": 7, "outcome": {"evnt": "Purchase"}})");
  EXPECT_NE(st.message().find("did you mean \"event\"?"), std::string::npos) << st.message();
}

TEST(PredictionDefinitionTest, NameSyntax) {
  EXPECT_TRUE(ValidatePredictionName("purchase_7d").ok());
  EXPECT_TRUE(ValidatePredictionName("Churn-14").ok());
  for (const char* bad : {"", "7days", "a b", "../etc", "a/b", ".hidden"}) {
    EXPECT_EQ(ValidatePredictionName(bad).code(), StatusCode::kInvalidArgument) << bad;
  }
  EXPECT_FALSE(ValidatePredictionName(std::string(65, 'a')).ok());
}

TEST(PredictionDefinitionTest, BadCohortAndFiltersNameTheField) {
  Status st = ParseError(R"({"name": "p", "kind": "churn", "horizon_days": 7, "cohort": {"al": []}})");
  EXPECT_NE(st.message().find("\"cohort\""), std::string::npos) << st.message();
  st = ParseError(R"({"name": "p", "kind": "propensity", "horizon_days": 7,
                      "outcome": {"event": "Purchase", "where": [{"property": "plan", "op": "like", "value": 1}]}})");
  EXPECT_NE(st.message().find("outcome.where"), std::string::npos) << st.message();
}

TEST(PredictionDefinitionTest, UnknownEventGetsDidYouMeanFromTheStore) {
  const auto& store = testing_util::SharedStore();
  ASSERT_TRUE(store.status().ok()) << store.status().ToString();
  auto reader = store.Snapshot();
  PredictionDefinition d = testing_util::PurchaseDefinition();
  EXPECT_TRUE(ValidateAgainstStore(d, *reader).ok());
  d.outcome_event = "Purchse";
  Status st = ValidateAgainstStore(d, *reader);
  EXPECT_EQ(st.code(), StatusCode::kNotFound);
  EXPECT_NE(st.message().find("unknown event type \"Purchse\"; did you mean \"Purchase\"?"), std::string::npos)
      << st.message();
  d = testing_util::PurchaseDefinition();
  d.cohort = json::parse(R"({"performed": {"event": "Add to Crt"}})");
  st = ValidateAgainstStore(d, *reader);
  EXPECT_NE(st.message().find("did you mean \"Add to Cart\"?"), std::string::npos) << st.message();
  EXPECT_NE(st.message().find("cohort"), std::string::npos) << st.message();
}

TEST(PredictionRegistryTest, CreateGetListDelete) {
  const std::string dir = (std::filesystem::temp_directory_path() / "sibyl-registry-test").string();
  std::filesystem::remove_all(dir);
  PredictionRegistry registry(dir);
  EXPECT_EQ(registry.Get("nothing").status().code(), StatusCode::kNotFound);
  ASSERT_TRUE(registry.Create(testing_util::PurchaseDefinition()).ok());
  ASSERT_TRUE(registry.Create(testing_util::ChurnDefinition()).ok());
  EXPECT_EQ(registry.Create(testing_util::ChurnDefinition()).code(), StatusCode::kAlreadyExists);
  EXPECT_TRUE(registry.Create(testing_util::ChurnDefinition(), /*replace=*/true).ok());
  EXPECT_TRUE(std::filesystem::exists(dir + "/predictions/purchase_7d/definition.json"));
  auto got = registry.Get("purchase_7d");
  ASSERT_TRUE(got.ok());
  EXPECT_EQ(ToJson(*got), ToJson(testing_util::PurchaseDefinition()));
  Status typo = registry.Get("purchase_7").status();
  EXPECT_NE(typo.message().find("did you mean \"purchase_7d\"?"), std::string::npos) << typo.message();
  auto all = registry.List();
  ASSERT_TRUE(all.ok());
  ASSERT_EQ(all->size(), 2u);
  EXPECT_EQ((*all)[0].name, "churn_14d");
  ASSERT_TRUE(registry.Delete("churn_14d").ok());
  EXPECT_EQ(registry.List()->size(), 1u);
  EXPECT_FALSE(std::filesystem::exists(dir + "/predictions/churn_14d"));
  std::filesystem::remove_all(dir);
}

}  // namespace
}  // namespace sibyl::pipeline
