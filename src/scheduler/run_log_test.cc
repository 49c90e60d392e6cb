// runs.log: torn tail or damage, byte by byte (docs/FORMAT.md, "Scheduler state").
#include "scheduler/run_log.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <filesystem>
#include <fstream>

namespace sibyl::scheduler {
namespace {

class RunLogTest : public ::testing::Test {
 protected:
  void SetUp() override {
    const auto* info = ::testing::UnitTest::GetInstance()->current_test_info();
    dir_ = (std::filesystem::path(::testing::TempDir()) /
            (std::string("sibyl_run_log_") + info->name() + "_" + std::to_string(::getpid())))
               .string();
    std::filesystem::remove_all(dir_);
    auto opened = RunLog::Open(dir_);
    ASSERT_TRUE(opened.ok()) << opened.status().ToString();
    for (uint64_t id = 1; id <= 1; ++id) {
      RunRecord run{id, "p", JobKind::kTrain, "schedule", 1, 10, 20, 30, "succeeded", "", nullptr};
      ASSERT_TRUE(opened->log->AppendRun(run).ok());
    }
    ASSERT_TRUE(opened->log->AppendSchedule({"p", JobKind::kTrain}, {10, 20}).ok());
    bytes_ = *ReadFile(path());
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }
  std::string path() const { return dir_ + "/runs.log"; }
  // Without the fsyncs of WriteFileAtomic: a thousand of them would take most of a minute.
  void Spill(const std::string& bytes) const {
    std::ofstream out(path(), std::ios::binary | std::ios::trunc);
    out << bytes;
  }

  std::string dir_;
  std::string bytes_;
};

// A kill -9 can stop an append after any byte: every prefix loads, with the whole lines.
TEST_F(RunLogTest, EveryPrefixIsATornTailNeverDamage) {
  for (size_t cut = 0; cut <= bytes_.size(); ++cut) {
    std::string prefix = bytes_.substr(0, cut);
    Spill(prefix);
    auto opened = RunLog::Open(dir_);
    ASSERT_TRUE(opened.ok()) << "cut at " << cut << ": " << opened.status().ToString();
    size_t whole_lines = static_cast<size_t>(std::count(prefix.begin(), prefix.end(), '\n'));
    EXPECT_EQ(opened->state.records, whole_lines) << "cut at " << cut;
    EXPECT_EQ(opened->state.dropped_torn_tail, prefix.size() > 0 && prefix.back() != '\n') << "cut at " << cut;
  }
}

// Every single flipped bit of synced lines is refused, wherever it falls (checksum,
// separator, JSON, newlines; the first line and the last).
TEST_F(RunLogTest, EveryFlippedBitIsRefused) {
  for (size_t i = 0; i < bytes_.size(); ++i) {
    std::string damaged = bytes_;
    damaged[i] ^= static_cast<char>(1 << (i % 8));
    Spill(damaged);
    auto opened = RunLog::Open(dir_);
    ASSERT_FALSE(opened.ok()) << "flip at byte " << i << " accepted";
    EXPECT_EQ(opened.status().code(), StatusCode::kCorruption);
    EXPECT_EQ(*ReadFile(path()), damaged) << "flip at byte " << i << ": the file was changed";
  }
}

}  // namespace
}  // namespace sibyl::scheduler
