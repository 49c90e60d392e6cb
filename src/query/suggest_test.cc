#include "query/suggest.h"

#include <gtest/gtest.h>

namespace sibyl {
namespace {

TEST(EditDistanceTest, CountsInsertionsDeletionsAndSubstitutionsIgnoringCase) {
  EXPECT_EQ(EditDistance("Purchase", "Purchase"), 0u);
  EXPECT_EQ(EditDistance("Purchse", "Purchase"), 1u);
  EXPECT_EQ(EditDistance("add to cart", "Add to Cart"), 0u);
  EXPECT_EQ(EditDistance("", "abc"), 3u);
  EXPECT_EQ(EditDistance("kitten", "sitting"), 3u);
}

TEST(ClosestNamesTest, NearestFirstAndOnlyPlausibleTypos) {
  std::vector<std::string> names = {"Purchase", "Add to Cart", "View Item", "Purchased Gift"};
  auto close = ClosestNames("Purchse", names);
  ASSERT_FALSE(close.empty());
  EXPECT_EQ(close[0], "Purchase");
  EXPECT_TRUE(ClosestNames("Completely Different", names).empty());
}

TEST(UnknownNameErrorTest, NamesTheClosestKnownOnes) {
  std::vector<std::string> names = {"Purchase", "Add to Cart"};
  Status s = UnknownNameError("event type", "Purchse", names);
  EXPECT_EQ(s.code(), StatusCode::kNotFound);
  EXPECT_EQ(s.message(), "unknown event type \"Purchse\"; did you mean \"Purchase\"?");
  EXPECT_EQ(UnknownNameError("event type", "Zzz", names).message(), "unknown event type \"Zzz\"");
}

}  // namespace
}  // namespace sibyl
