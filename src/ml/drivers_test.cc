// Drivers per column and per topic from contributions worked out by hand.
#include <cmath>
#include <vector>

#include <gtest/gtest.h>

#include "ml/drivers.h"

namespace sibyl::ml {
namespace {

// Four rows, three columns (bias last in each contribution row). Columns 0 and 1 are one
// behaviour seen twice: their contributions are large and opposite, as a linear model
// gives collinear columns, and sum to a small push that follows column 0's value.
struct Hand {
  std::vector<float> rows = {1, 1, 5,  //
                             2, 2, 5,  //
                             3, 3, 9,  //
                             4, 4, 9};
  std::vector<double> contributions = {+3.0, -2.9, -0.5, 0.1,  //
                                       +6.0, -5.8, -0.5, 0.1,  //
                                       +9.0, -8.7, +0.5, 0.1,  //
                                       +12.0, -11.6, +0.5, 0.1};
  std::vector<std::string> names = {"count 7d", "count 30d", "plan"};
};

TEST(DriversTest, ColumnsAreRankedByMeanAbsoluteContributionWithTheirSigns) {
  Hand h;
  std::vector<Driver> d = SummariseContributions(h.contributions, h.rows, h.names);
  ASSERT_EQ(d.size(), 3u);
  EXPECT_EQ(d[0].feature, "count 7d");
  EXPECT_DOUBLE_EQ(d[0].importance, 7.5);
  EXPECT_EQ(d[0].direction, 1);
  EXPECT_EQ(d[1].feature, "count 30d");
  EXPECT_NEAR(d[1].importance, 7.25, 1e-12);
  EXPECT_EQ(d[1].direction, -1);  // alone it reads "higher -> less likely": the collinearity artefact
  EXPECT_EQ(d[2].feature, "plan");
  EXPECT_DOUBLE_EQ(d[2].importance, 0.5);
}

TEST(DriversTest, ATopicSumsItsColumnsPerRowBeforeTakingTheMagnitude) {
  Hand h;
  std::vector<Driver> d = SummariseTopics(h.contributions, h.rows, {"how often", "how often", "plan"});
  ASSERT_EQ(d.size(), 2u);
  // Per row 0.1, 0.2, 0.3, 0.4: the behaviour's push is small, not 7.5 + 7.25.
  EXPECT_EQ(d[0].feature, "plan");
  EXPECT_DOUBLE_EQ(d[0].importance, 0.5);
  EXPECT_EQ(d[1].feature, "how often");
  EXPECT_NEAR(d[1].importance, 0.25, 1e-12);
  EXPECT_EQ(d[1].column, 0u);     // led by its larger column
  EXPECT_EQ(d[1].direction, 1);   // and the sum rises with that column's value
  EXPECT_NEAR(d[1].correlation, 1.0, 1e-9);
  EXPECT_TRUE(SummariseTopics(h.contributions, h.rows, {}).empty());
}

}  // namespace
}  // namespace sibyl::ml
