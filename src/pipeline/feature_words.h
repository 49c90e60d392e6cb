// Feature columns in plain words, for drivers and explanations: the column
// `count("Add to Cart") week -1` reads "Add to Cart events in the last 7 days".
#pragma once

#include <string>
#include <string_view>

namespace sibyl::pipeline {

// The column (names as in docs/FEATURES.md) in plain words; unknown shapes come back as
// they are.
std::string DescribeFeature(std::string_view column);

// How a driver's direction reads: "more -> more likely", "more -> less likely", "mixed"
// (regression: "higher amount" instead of "more likely").
std::string DescribeDirection(int direction, bool regression);

}  // namespace sibyl::pipeline
