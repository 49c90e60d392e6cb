#include "common/time.h"

#include <gtest/gtest.h>

namespace sibyl {
namespace {

TEST(TimeTest, ParsesEpochMillisAndIso) {
  EXPECT_EQ(*ParseTime("1700000000000"), 1700000000000);
  EXPECT_EQ(*ParseTime("1970-01-01"), 0);
  EXPECT_EQ(*ParseTime("2023-11-14T22:13:20Z"), 1700000000000);
  EXPECT_EQ(*ParseTime("2023-11-14T22:13:20.5Z"), 1700000000500);
  EXPECT_EQ(*ParseTime("2023-11-15T00:13:20+02:00"), 1700000000000);
  EXPECT_EQ(*ParseTime("2023-11-14 22:13:20"), 1700000000000);
}

TEST(TimeTest, RejectsGarbageWithTheText) {
  Result<int64_t> r = ParseTime("yesterday");
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find("yesterday"), std::string::npos);
  EXPECT_FALSE(ParseTime("2023-13-01").ok());
  EXPECT_FALSE(ParseTime("2023-11-14T22:13:20Zjunk").ok());
  // Epoch milliseconds outside the years 1-9999 would overflow later arithmetic.
  EXPECT_FALSE(ParseTime("-9223372036854775808").ok());
  EXPECT_FALSE(ParseTime("9223372036854775807").ok());
  EXPECT_FALSE(ParseTime("253402300800000").ok());
  EXPECT_EQ(*ParseTime("253402300799999"), 253402300799999);
  EXPECT_EQ(*ParseTime("-62135596800000"), -62135596800000);
}

TEST(TimeTest, FormatRoundTrips) {
  for (int64_t ms : {0LL, 1700000000123LL, 951782400000LL /* 2000-02-29 */}) {
    EXPECT_EQ(*ParseTime(FormatTime(ms)), ms) << FormatTime(ms);
  }
  EXPECT_EQ(FormatTime(1700000000000), "2023-11-14T22:13:20.000Z");
}

TEST(TimeTest, FloorHour) {
  EXPECT_EQ(FloorHour(kMsPerHour * 5 + 1), kMsPerHour * 5);
  EXPECT_EQ(FloorHour(kMsPerHour * 5), kMsPerHour * 5);
  EXPECT_EQ(FloorHour(-1), -kMsPerHour);
}

}  // namespace
}  // namespace sibyl
