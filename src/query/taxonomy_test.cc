// The taxonomy's support rule: an event property value gets a column only when enough
// distinct actors have it (TaxonomyOptions::min_value_actors), so order ids do not become
// columns a learner can only memorise; user property values are exempt.
#include <gtest/gtest.h>

#include <algorithm>
#include <string>

#include <fmt/format.h>

#include "query/query_engine.h"
#include "query/query_test_util.h"

namespace sibyl {
namespace {

using testing_util::AddLogLine;
using testing_util::TempStore;

constexpr int64_t kCutoff = 1'700'000'000'000;

bool HasValue(const std::vector<std::string>& values, const std::string& v) {
  return std::find(values.begin(), values.end(), v) != values.end();
}

// 40 users buy; each order has its own id ("order"), every user pays by "card" or
// "cash" (shared by 20 actors each), one rare "voucher" payment is used by 3 users, and
// the users' "plan" is "pro" for 30 of them and "trial" for 3.
void AddShop(TempStore& store) {
  EventBatch batch;
  for (int u = 0; u < 40; ++u) {
    const std::string user = fmt::format("u{}", u);
    for (int k = 0; k < 3; ++k) {
      const std::string payment = u < 3 && k == 0 ? "voucher" : (u % 2 ? "card" : "cash");
      AddLogLine({{"user_id", user}, {"event_type", "Purchase"}, {"time", fmt::format("T-{}d", 1 + u % 5 + k * 7)},
                  {"event_properties", {{"order", fmt::format("o-{}-{}", u, k)}, {"payment", payment}}}},
                 kCutoff, batch);
    }
    if (u < 33)
      AddLogLine({{"user_id", user}, {"identify", true}, {"time", "T-30d"},
                  {"user_properties", {{"plan", u < 30 ? "pro" : "trial"}}}},
                 kCutoff, batch);
  }
  ASSERT_TRUE(store.store().Append(batch).ok());
}

const EventPropertySpec* Find(const Taxonomy& t, const std::string& name) {
  for (const auto& p : t.event_properties)
    if (p.name == name) return &p;
  return nullptr;
}

TEST(TaxonomyTest, ValuesOfFewActorsGetNoColumns) {
  TempStore store;
  AddShop(store);
  auto engine = MakeEmbeddedQueryEngine(store.Snapshot());
  TaxonomyOptions options;
  options.min_value_actors = 10;
  auto taxonomy = engine->BuildTaxonomy(kCutoff, options);
  ASSERT_TRUE(taxonomy.ok()) << taxonomy.status().ToString();

  // Every order id belongs to one user: the property is an id and gets no columns.
  EXPECT_EQ(Find(*taxonomy, "order"), nullptr);
  const EventPropertySpec* payment = Find(*taxonomy, "payment");
  ASSERT_NE(payment, nullptr);
  EXPECT_TRUE(HasValue(payment->values, "card"));
  EXPECT_TRUE(HasValue(payment->values, "cash"));
  EXPECT_FALSE(HasValue(payment->values, "voucher"));  // 3 users: counted under "other"

  // User property values are lasting attributes of the users scored: kept, even "trial"
  // of 3 users.
  ASSERT_EQ(taxonomy->user_properties.size(), 1u);
  EXPECT_EQ(taxonomy->user_properties[0].name, "plan");
  EXPECT_EQ(taxonomy->user_properties[0].values.size(), 2u);
}

TEST(TaxonomyTest, OneActorPerValueKeepsEveryValue) {
  TempStore store;
  AddShop(store);
  auto engine = MakeEmbeddedQueryEngine(store.Snapshot());
  TaxonomyOptions options;
  options.min_value_actors = 1;
  auto taxonomy = engine->BuildTaxonomy(kCutoff, options);
  ASSERT_TRUE(taxonomy.ok()) << taxonomy.status().ToString();
  const EventPropertySpec* order = Find(*taxonomy, "order");
  ASSERT_NE(order, nullptr);
  EXPECT_EQ(order->values.size(), 10u);  // max_values_per_event_property
  const EventPropertySpec* payment = Find(*taxonomy, "payment");
  ASSERT_NE(payment, nullptr);
  EXPECT_TRUE(HasValue(payment->values, "voucher"));
  ASSERT_EQ(taxonomy->user_properties.size(), 1u);
  EXPECT_EQ(taxonomy->user_properties[0].values.size(), 2u);
}

// A property the prediction names keeps its values whatever their support.
TEST(TaxonomyTest, RequiredPropertyKeepsItsValues) {
  TempStore store;
  AddShop(store);
  auto engine = MakeEmbeddedQueryEngine(store.Snapshot());
  TaxonomyOptions options;
  options.min_value_actors = 10;
  options.required_event_properties = {"order"};
  auto taxonomy = engine->BuildTaxonomy(kCutoff, options);
  ASSERT_TRUE(taxonomy.ok()) << taxonomy.status().ToString();
  const EventPropertySpec* order = Find(*taxonomy, "order");
  ASSERT_NE(order, nullptr);
  EXPECT_EQ(order->values.size(), 10u);
}

// User property keys and values rank by how many users had them, not by how many history
// records hold them: how many records a value makes depends on the order values arrive
// in (a user flipping between two values makes a record each time).
TEST(TaxonomyTest, UserPropertyValuesRankByUsersNotRecords) {
  TempStore store;
  AddShop(store);
  EventBatch batch;
  for (int k = 0; k < 20; ++k)
    AddLogLine({{"user_id", "u0"}, {"identify", true}, {"time", fmt::format("T-{}d", 40 - k)},
                {"user_properties", {{"tier", k % 2 ? "silver" : "gold"}}}},
               kCutoff, batch);
  for (int u = 1; u <= 5; ++u)
    AddLogLine({{"user_id", fmt::format("u{}", u)}, {"identify", true}, {"time", "T-10d"},
                {"user_properties", {{"tier", "bronze"}}}},
               kCutoff, batch);
  ASSERT_TRUE(store.store().Append(batch).ok());
  auto engine = MakeEmbeddedQueryEngine(store.Snapshot());
  TaxonomyOptions options;
  options.max_values_per_user_property = 1;
  auto taxonomy = engine->BuildTaxonomy(kCutoff, options);
  ASSERT_TRUE(taxonomy.ok()) << taxonomy.status().ToString();
  ASSERT_EQ(taxonomy->user_properties.size(), 2u);
  EXPECT_EQ(taxonomy->user_properties[0].name, "plan");  // 33 users, 33 records
  EXPECT_EQ(taxonomy->user_properties[1].name, "tier");  // 6 users, 25 records
  ASSERT_EQ(taxonomy->user_properties[1].values.size(), 1u);
  EXPECT_EQ(taxonomy->user_properties[1].values[0], "bronze");  // 5 users; gold: 1 user, 10 records
}

}  // namespace
}  // namespace sibyl
