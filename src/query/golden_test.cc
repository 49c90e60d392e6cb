// Golden tests: each testdata/NAME.ndjson (an event log, times relative to the cutoff) is
// loaded into a fresh store; the taxonomy (limits from the log's header line), everyone's
// features at the cutoff, in the readable form of DescribeMatrix, must equal
// testdata/NAME.expected. On a mismatch the actual output is printed in full.
#include <gtest/gtest.h>

#include <filesystem>

#include "query/query_engine.h"
#include "query/query_test_util.h"

namespace sibyl {
namespace {

using namespace testing_util;

constexpr int64_t kCutoff = 1'699'999'200'000;

std::string TestData(const std::string& name) {
  return std::string(SIBYL_SOURCE_DIR) + "/src/query/testdata/" + name;
}

class GoldenTest : public ::testing::TestWithParam<std::string> {};

TEST_P(GoldenTest, FeaturesMatchExpectedRows) {
  std::string log = ReadTextFile(TestData(GetParam() + ".ndjson"));
  std::string expected = ReadTextFile(TestData(GetParam() + ".expected"));
  ASSERT_FALSE(log.empty());
  EventBatch all;
  nlohmann::json header = ParseEventLog(log, kCutoff, all);
  TempStore store;
  // Spread the events over several appends (several segments) when the header asks.
  int batches = header.value("batches", 1);
  std::vector<EventBatch> parts(batches);
  for (size_t i = 0; i < all.events.size(); ++i) {
    const ParsedEvent& e = all.events[i];
    EventBatch& part = parts[i % batches];
    nlohmann::json line = {{"time", e.time_ms}};
    if (!e.user_id.empty()) line["user_id"] = e.user_id;
    if (!e.device_id.empty()) line["device_id"] = e.device_id;
    if (!e.event_type.empty()) line["event_type"] = e.event_type;
    line["session_id"] = e.session_id;
    line["identify"] = e.is_identify;
    for (const Property& p : all.PropertiesOf(e)) {
      if (p.value.kind == ValueKind::kNumber) line["event_properties"][std::string(p.key)] = p.value.number;
      else line["event_properties"][std::string(p.key)] = std::string(p.value.text);
    }
    for (const UserPropertyUpdate& u : all.UserUpdatesOf(e))
      line["user_properties"][std::string(u.key)] = std::string(u.value.text);
    AddLogLine(line, kCutoff, part);
  }
  for (EventBatch& part : parts) ASSERT_TRUE(store.store().Append(part).ok());

  auto engine = MakeEmbeddedQueryEngine(store.Snapshot());
  TaxonomyOptions options;
  options.top_events = header.value("top_events", 50);
  options.max_values_per_event_property = header.value("max_values_per_event_property", 10);
  options.max_values_per_user_property = header.value("max_values_per_user_property", 20);
  // The logs hold a handful of users: every value counts (the support rule has its own
  // test, taxonomy_test.cc).
  options.min_value_actors = header.value("min_value_actors", 1);
  auto taxonomy = engine->BuildTaxonomy(kCutoff, options);
  ASSERT_TRUE(taxonomy.ok()) << taxonomy.status().ToString();
  FeatureSpec spec;
  spec.taxonomy = *taxonomy;
  auto users = engine->Cohort(CohortExpr::Everyone(), kCutoff);
  ASSERT_TRUE(users.ok()) << users.status().ToString();
  auto matrix = engine->Features(spec, kCutoff, *users);
  ASSERT_TRUE(matrix.ok()) << matrix.status().ToString();
  std::string actual = DescribeMatrix(*matrix, engine->UserIds(*users));
  EXPECT_EQ(actual, expected) << "actual output of " << GetParam() << ":\n" << actual;

  // The spec survives JSON, and the reloaded spec gives the same matrix.
  auto reloaded = FeatureSpecFromJson(ToJson(spec));
  ASSERT_TRUE(reloaded.ok()) << reloaded.status().ToString();
  auto again = engine->Features(*reloaded, kCutoff, *users);
  ASSERT_TRUE(again.ok());
  EXPECT_EQ(DescribeMatrix(*again, engine->UserIds(*users)), actual);
}

INSTANTIATE_TEST_SUITE_P(Logs, GoldenTest, ::testing::Values("basic", "identity", "sessions"));

}  // namespace
}  // namespace sibyl
