#include "server/idle_trim.h"

#include <gtest/gtest.h>

namespace sibyl::server {
namespace {

using std::chrono::milliseconds;
using Clock = IdleTrimmer::Clock;

class IdleTrimmerTest : public ::testing::Test {
 protected:
  Clock::time_point At(int ms) const { return t0_ + milliseconds(ms); }
  const Clock::time_point t0_ = Clock::now();
  int trims_ = 0;
  IdleTrimmer trimmer_{milliseconds(2000), [this] { ++trims_; }};
};

TEST_F(IdleTrimmerTest, NoTrimBeforeAnyActivity) {
  EXPECT_FALSE(trimmer_.Poll(At(10'000)));
  EXPECT_EQ(trims_, 0);
}

TEST_F(IdleTrimmerTest, FiresOncePerIdlePeriod) {
  trimmer_.Begin(At(0));
  trimmer_.End(At(100));
  EXPECT_FALSE(trimmer_.Poll(At(1000)));  // idle for 0.9 s only
  EXPECT_EQ(trims_, 0);
  EXPECT_TRUE(trimmer_.Poll(At(2100)));   // idle for 2 s
  EXPECT_EQ(trims_, 1);
  // The same idle period: never again, however long it lasts.
  EXPECT_FALSE(trimmer_.Poll(At(3000)));
  EXPECT_FALSE(trimmer_.Poll(At(60'000)));
  EXPECT_EQ(trims_, 1);
  // New activity starts a new period, which trims once more after its own 2 s.
  trimmer_.Begin(At(61'000));
  trimmer_.End(At(61'500));
  EXPECT_FALSE(trimmer_.Poll(At(62'000)));
  EXPECT_TRUE(trimmer_.Poll(At(63'500)));
  EXPECT_FALSE(trimmer_.Poll(At(70'000)));
  EXPECT_EQ(trims_, 2);
  EXPECT_EQ(trimmer_.trims(), 2u);
}

TEST_F(IdleTrimmerTest, NotWhileARequestIsInFlightOrSomethingElseIsBusy) {
  trimmer_.Begin(At(0));
  // A request running for a minute is not idleness, though nothing began or ended since.
  EXPECT_FALSE(trimmer_.Poll(At(60'000)));
  trimmer_.Begin(At(60'000));
  trimmer_.End(At(60'100));
  EXPECT_FALSE(trimmer_.Poll(At(65'000)));  // the first is still in flight
  trimmer_.End(At(65'000));
  EXPECT_FALSE(trimmer_.Poll(At(66'000)));  // ended 1 s ago
  EXPECT_FALSE(trimmer_.Poll(At(70'000), /*busy_elsewhere=*/true));  // e.g. a training run
  EXPECT_EQ(trims_, 0);
  EXPECT_TRUE(trimmer_.Poll(At(70'000)));
  EXPECT_EQ(trims_, 1);
}

}  // namespace
}  // namespace sibyl::server
