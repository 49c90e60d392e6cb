#include "scheduler/scheduler.h"

#include <gtest/gtest.h>

namespace sibyl::scheduler {
namespace {

TEST(JobKindTest, NamesRoundTrip) {
  for (JobKind kind : {JobKind::kTrain, JobKind::kScoreActive, JobKind::kScoreFull}) {
    EXPECT_EQ(ParseJobKind(JobKindName(kind)), kind);
  }
  EXPECT_FALSE(ParseJobKind("score").has_value());
}

}  // namespace
}  // namespace sibyl::scheduler
