// Feature columns in plain words, for drivers and explanations: the column
// `count("Add to Cart") week -1` reads "Add to Cart events in the last 7 days".
#pragma once

#include <string>
#include <string_view>

namespace sibyl::pipeline {

// The column (names as in docs/FEATURES.md) in plain words; unknown shapes come back as
// they are.
std::string DescribeFeature(std::string_view column);

// The behaviour a column describes, for explanations. Columns of one topic are views of
// one behaviour at nested scales (an event's weekly counts, its counts and active days over
// 7, 30, 90 days and all history): they move together, so a linear model may give two of
// them opposite signs that mean nothing apart ("active days last 180d: 15, lowering it" for
// the shop's best customer). Their summed contribution is the behaviour's, and it is what an
// explanation shows. `key` identifies the topic; `title` reads "how often "Purchase"".
// Unknown shapes are a topic of their own (key the column, title its words). Keys and titles
// are one to one, so explanations (by key) and drivers (by title) group alike.
struct FeatureTopic {
  std::string key;
  std::string title;
};
FeatureTopic TopicOf(std::string_view column);

// How a driver's direction reads: "more -> more likely", "more -> less likely", "mixed"
// (regression: "higher amount" instead of "more likely").
std::string DescribeDirection(int direction, bool regression);

}  // namespace sibyl::pipeline
