#include "event/event.h"

#include <gtest/gtest.h>

namespace sibyl {
namespace {

TEST(EventBatchTest, InternedViewsSurviveGrowthAndAppend) {
  EventBatch a;
  std::vector<std::string_view> views;
  for (int i = 0; i < 20000; ++i) views.push_back(a.Intern("value-" + std::to_string(i)));
  views.push_back(a.Own("tiny"));  // short enough for std::string's inline buffer
  EventBatch b;
  b.Append(std::move(a));
  for (int i = 0; i < 20000; ++i) EXPECT_EQ(views[i], "value-" + std::to_string(i));
  EXPECT_EQ(views.back(), "tiny");
}

TEST(EventBatchTest, AppendRebasesRangesAndFiles) {
  EventBatch a, b;
  a.files.push_back("a.ndjson");
  b.files.push_back("b.ndjson");
  a.properties.push_back({a.Intern("k"), Value::Number(1)});
  a.events.push_back({.event_type = "x", .properties_begin = 0, .properties_end = 1,
                      .position = {0, 1, 0}});
  b.properties.push_back({b.Intern("k2"), Value::Bool(true)});
  b.events.push_back({.event_type = "y", .properties_begin = 0, .properties_end = 1,
                      .position = {0, 7, 0}});
  a.Append(std::move(b));
  ASSERT_EQ(a.events.size(), 2u);
  EXPECT_EQ(a.PropertiesOf(a.events[1])[0].key, "k2");
  EXPECT_EQ(a.Describe(a.events[1].position), "b.ndjson:7");
  EXPECT_TRUE(b.events.empty());
}

}  // namespace
}  // namespace sibyl
