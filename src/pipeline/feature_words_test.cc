// Topics group the columns an explanation sums (pipeline::TopicOf); the words name them.
#include <map>
#include <set>

#include <gtest/gtest.h>

#include "pipeline/feature_words.h"
#include "query/feature_spec.h"

namespace sibyl::pipeline {
namespace {

OutcomeFamilySpec FilteredOutcome() {
  OutcomeFamilySpec o;
  o.enabled = true;
  o.event = "Rating";
  o.where = {PropertyFilter{.property = "stars", .op = FilterOp::kEq, .value = 5}};
  o.amount_property = "revenue";
  o.window_days = {7, 30, 90};
  o.horizon_days = 14;
  o.bgnbd = OutcomeBgNbd{.r = 1, .alpha = 2, .a = 3, .b = 4};
  o.unfiltered = true;
  o.unfiltered_bgnbd = OutcomeBgNbd{.r = 1, .alpha = 2, .a = 3, .b = 4};
  return o;
}

TEST(FeatureWordsTest, ColumnsReadAsPlainWords) {
  EXPECT_EQ(DescribeFeature("count(\"Add to Cart\") week -1"), "Add to Cart events in the last 7 days");
  EXPECT_EQ(DescribeFeature("count(\"Purchase\") week -3"), "Purchase events 14-21 days ago");
  EXPECT_EQ(DescribeFeature("count(\"category\" = \"shoes\") week -2"), "events with category = shoes 7-14 days ago");
  EXPECT_EQ(DescribeFeature("sum(\"price\") week -1"), "total price in the last 7 days");
  EXPECT_EQ(DescribeFeature("last(\"plan\") = \"pro\""), "plan is pro");
  EXPECT_EQ(DescribeFeature("first(\"plan\") = other"), "plan was first another value");
  EXPECT_EQ(DescribeFeature("hours since last \"Purchase\""), "hours since the last Purchase");
  EXPECT_EQ(DescribeFeature("tenure hours"), "hours since first seen");
  EXPECT_EQ(DescribeFeature("something new"), "something new");
  EXPECT_EQ(DescribeDirection(1, false), "higher -> more likely");
  EXPECT_EQ(DescribeDirection(-1, true), "higher -> lower amount");
}

TEST(FeatureTopicTest, EveryOutcomeColumnHasATopicAndWords) {
  std::vector<std::string> columns = OutcomeColumnNames(FilteredOutcome());
  OutcomeFamilySpec churn;  // any event, as churn's outcome
  churn.enabled = true;
  churn.window_days = {7, 30};
  churn.horizon_days = 14;
  churn.bgnbd = OutcomeBgNbd{.r = 1, .alpha = 2, .a = 3, .b = 4};
  for (const std::string& c : OutcomeColumnNames(churn)) columns.push_back(c);
  std::map<std::string, std::string> title_of_key, key_of_title;
  for (const std::string& column : columns) {
    const FeatureTopic topic = TopicOf(column);
    EXPECT_NE(topic.key, column) << "no topic for " << column;
    EXPECT_NE(DescribeFeature(column), column) << "no words for " << column;
    // One key, one title: explanations group by key and drivers by title.
    EXPECT_EQ(title_of_key.try_emplace(topic.key, topic.title).first->second, topic.title) << column;
    EXPECT_EQ(key_of_title.try_emplace(topic.title, topic.key).first->second, topic.key) << column;
  }
  for (const std::string column : {"hours since last event", "tenure hours", "sessions week -1"}) {
    const FeatureTopic topic = TopicOf(column);
    EXPECT_EQ(title_of_key.try_emplace(topic.key, topic.title).first->second, topic.title) << column;
    EXPECT_EQ(key_of_title.try_emplace(topic.title, topic.key).first->second, topic.key) << column;
  }
}

TEST(FeatureTopicTest, NestedWindowsOfOneBehaviourShareATopic) {
  const std::string rating = "\"Rating\"", five = "\"Rating\" where stars = 5";
  // Counts and active days of the filtered outcome at every scale: one topic.
  std::set<std::string> keys;
  for (const std::string& c : {"count " + five + " last 7d", "count " + five + " last 90d", "count " + five + " all history",
                               "active days " + five + " last 30d", "mean days between " + five})
    keys.insert(TopicOf(c).key);
  EXPECT_EQ(keys.size(), 1u);
  EXPECT_EQ(TopicOf("count " + five + " last 7d").title, "how often " + five);
  // The event without the filters joins the event's weekly counts, not the filtered outcome.
  EXPECT_EQ(TopicOf("count " + rating + " unfiltered last 30d").key, TopicOf("count(\"Rating\") week -3").key);
  EXPECT_NE(TopicOf("count " + rating + " unfiltered last 30d").key, TopicOf("count " + five + " last 30d").key);
  EXPECT_EQ(TopicOf("count(\"Rating\") week -1").title, "how often Rating");
  // Recency: the outcome's own, its gaps, and the weekly family's recency of the event.
  EXPECT_EQ(TopicOf("hours since last \"Purchase\" (outcome)").key, TopicOf("hours since last \"Purchase\"").key);
  EXPECT_EQ(TopicOf("days since last \"Purchase\" / mean gap").key, TopicOf("never \"Purchase\"").key);
  EXPECT_EQ(TopicOf("hours since last \"Purchase\"").title, "how recently Purchase");
  // The BG/NBD columns are one model's view; amounts go with their property.
  EXPECT_EQ(TopicOf("BG/NBD P(alive) for \"Purchase\"").key, TopicOf("BG/NBD P(\"Purchase\" within 30d)").key);
  EXPECT_EQ(TopicOf("BG/NBD expected \"Purchase\" days within 30d").key, TopicOf("BG/NBD P(alive) for \"Purchase\"").key);
  EXPECT_EQ(TopicOf("sum(\"revenue\") of \"Purchase\" last 90d").key, TopicOf("sum(\"revenue\") week -2").key);
  // One user property's one-hot columns, first and last value alike.
  EXPECT_EQ(TopicOf("first(\"plan\") = \"pro\"").key, TopicOf("last(\"plan\") = other").key);
  EXPECT_NE(TopicOf("last(\"plan\") = \"pro\"").key, TopicOf("last(\"country\") = \"pro\"").key);
  // A categorical value's weeks are one topic; another value is another.
  EXPECT_EQ(TopicOf("count(\"category\" = \"shoes\") week -1").key, TopicOf("count(\"category\" = \"shoes\") week -4").key);
  EXPECT_NE(TopicOf("count(\"category\" = \"shoes\") week -1").key, TopicOf("count(\"category\" = other) week -1").key);
  EXPECT_EQ(TopicOf("sessions week -2").key, TopicOf("sessions week -8").key);
  EXPECT_EQ(TopicOf("tenure hours").key, TopicOf("hours since first \"Purchase\"").key);
  EXPECT_EQ(TopicOf("hours since last event").title, "how recently any event");
  EXPECT_EQ(TopicOf("hours since last event").key, TopicOf("hours since last any event (outcome)").key);
  EXPECT_NE(TopicOf("hours since last event").key, TopicOf("hours since last \"event\"").key);
  // Different events are different topics; unknown columns stand alone.
  EXPECT_NE(TopicOf("count(\"Purchase\") week -1").key, TopicOf("count(\"Add to Cart\") week -1").key);
  EXPECT_EQ(TopicOf("something new").key, "something new");
}

TEST(FeatureTopicTest, OutcomeColumnsReadAsPlainWords) {
  EXPECT_EQ(DescribeFeature("count \"Purchase\" last 30d"), "Purchase in the last 30 days");
  EXPECT_EQ(DescribeFeature("active days \"Purchase\" all history"), "days with Purchase ever");
  EXPECT_EQ(DescribeFeature("sum(\"revenue\") of \"Purchase\" last 90d"), "total revenue of Purchase in the last 90 days");
  EXPECT_EQ(DescribeFeature("hours since last \"Purchase\" (outcome)"), "hours since the last Purchase");
  EXPECT_EQ(DescribeFeature("count \"Rating\" unfiltered last 7d"), "Rating in the last 7 days");
  EXPECT_EQ(DescribeFeature("BG/NBD P(\"Purchase\" within 30d)"), "BG/NBD chance of Purchase within 30 days");
  EXPECT_EQ(DescribeFeature("days since last \"Purchase\" / mean gap"), "days since the last Purchase over the mean gap");
  EXPECT_EQ(DescribeFeature("share of \"Purchase\" days in last 7d of last 90d"),
            "share of Purchase days of the last 90 in the last 7");
}

}  // namespace
}  // namespace sibyl::pipeline
