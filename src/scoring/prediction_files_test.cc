// The files of a prediction's directory carry checksums (common/checked_json.h, docs/FORMAT.md
// "Checksummed JSON files"): definition.json, a version's version.json, holdout.json and
// model/manifest.json, run records, drift references and kept backtests. A changed byte is
// refused by the reader with the file's name (the drift reference, a cache, is computed
// again); files written before checksums still load.
#include <filesystem>
#include <functional>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "common/checked_json.h"
#include "common/file.h"
#include "pipeline/backtest.h"
#include "pipeline/pipeline_test_util.h"
#include "pipeline/registry.h"
#include "pipeline/train_run.h"
#include "scoring/score_run.h"

namespace sibyl::scoring {
namespace {

namespace fs = std::filesystem;
using pipeline::testing_util::GeneratedStore;

constexpr const char* kName = "purchase_7d";

pipeline::TrainRequest QuickRequest() {
  pipeline::TrainRequest request;
  request.num_threads = 1;
  request.parallel_queries = false;
  request.ml.train_linear = false;
  request.ml.train_random_forest = false;
  request.bgnbd_candidate = false;
  request.ml.consider_blend = false;
  request.set.stack = 0;
  return request;
}

// One store with a trained version, a full scoring run (with its drift reference) and a
// kept one-cutoff backtest. Tests run in file order: the last one rewrites the files.
class PredictionFilesTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    store_ = new GeneratedStore();
    ASSERT_TRUE(store_->status().ok()) << store_->status().ToString();
    pipeline::PredictionRegistry registry(store_->dir());
    const auto definition = pipeline::testing_util::PurchaseDefinition();
    ASSERT_TRUE(registry.Create(definition).ok());
    auto trained = pipeline::TrainPrediction(registry, *store_->Snapshot(), definition, QuickRequest());
    ASSERT_TRUE(trained.ok()) << trained.status().ToString();
    auto scored = RunScoring(registry, store_->store(), kName, ScoreRequest{});
    ASSERT_TRUE(scored.ok()) << scored.status().ToString();
    pipeline::BacktestOptions options;
    options.cutoffs = 1;
    options.train = QuickRequest();
    auto rows = pipeline::RunBacktest(*store_->Snapshot(), definition, options);
    ASSERT_TRUE(rows.ok()) << rows.status().ToString();
    rows_ = new std::vector<pipeline::BacktestRow>(*rows);
    auto kept = pipeline::SaveBacktest(registry, definition, options, *rows, 1'700'000'000'000);
    ASSERT_TRUE(kept.ok()) << kept.status().ToString();
  }
  static void TearDownTestSuite() {
    delete store_;
    delete rows_;
    store_ = nullptr;
    rows_ = nullptr;
  }
  void SetUp() override { ASSERT_NE(rows_, nullptr); }

  static pipeline::PredictionRegistry Registry() { return pipeline::PredictionRegistry(store_->dir()); }
  static std::string Dir() { return Registry().PredictionDir(kName); }

  struct CheckedFile {
    std::string path;
    std::function<Status()> read;  // what reads the file in sibyl
  };
  static std::vector<CheckedFile> Files() {
    const std::string dir = Dir();
    auto status_of = [](const auto& result) { return result.status(); };
    std::vector<CheckedFile> files = {
        {dir + "/definition.json", [=] { return status_of(Registry().Get(kName)); }},
        {dir + "/versions/1/version.json", [=] { return status_of(pipeline::ReadVersionSummary(Registry(), kName, 1)); }},
        {dir + "/versions/1/holdout.json", [=] { return status_of(pipeline::LoadVersion(Registry(), kName, 1)); }},
        {dir + "/versions/1/model/manifest.json", [=] { return status_of(pipeline::LoadVersion(Registry(), kName, 1)); }},
        {dir + "/runs/000001.json", [=] { return status_of(ListRuns(Registry(), kName)); }},
        {dir + "/runs/000001.json", [=] { return status_of(LatestFullRun(Registry(), kName, 1)); }},
    };
    auto backtests = ListDir(dir + "/backtests");
    EXPECT_TRUE(backtests.ok() && backtests->size() == 1u);
    if (backtests.ok() && !backtests->empty())
      files.push_back({dir + "/backtests/" + backtests->front(),
                       [=] { return status_of(pipeline::ListBacktests(Registry(), kName, 10)); }});
    return files;
  }

  static GeneratedStore* store_;
  static std::vector<pipeline::BacktestRow>* rows_;
};

GeneratedStore* PredictionFilesTest::store_ = nullptr;
std::vector<pipeline::BacktestRow>* PredictionFilesTest::rows_ = nullptr;

TEST_F(PredictionFilesTest, BacktestComparesWithTheBaselineAndIsKept) {
  ASSERT_EQ(rows_->size(), 1u);
  const pipeline::BacktestRow& row = rows_->front();
  ASSERT_TRUE(row.error.empty()) << row.error;
  EXPECT_TRUE(row.baseline_error.empty()) << row.baseline_error;
  EXPECT_GT(row.baseline_roc_auc, 0.5) << "the recency-frequency baseline ranks buyers better than chance";
  EXPECT_GT(row.baseline_log_loss, 0.0);
  auto kept = pipeline::ListBacktests(Registry(), kName, 10);
  ASSERT_TRUE(kept.ok()) << kept.status().ToString();
  ASSERT_EQ(kept->size(), 1u);
  const nlohmann::json& cutoff = kept->front()["cutoffs"][0];
  EXPECT_DOUBLE_EQ(cutoff["roc_auc"].get<double>(), row.roc_auc);
  EXPECT_DOUBLE_EQ(cutoff["baseline"]["roc_auc"].get<double>(), row.baseline_roc_auc);
  EXPECT_EQ(kept->front()["ran_at"], "2023-11-14T22:13:20.000Z");
  EXPECT_EQ(kept->front()["id"], "20231114T221320.000Z");
}

// One digit changed (the file stays valid JSON, so only the checksum can tell): the reader
// refuses it naming the file; put back, it reads again.
TEST_F(PredictionFilesTest, EveryFileRefusesAChangedDigitNamingIt) {
  for (const CheckedFile& file : Files()) {
    SCOPED_TRACE(file.path);
    auto original = ReadFile(file.path);
    ASSERT_TRUE(original.ok()) << original.status().ToString();
    EXPECT_TRUE(original->starts_with(R"({"crc32c":")")) << "written with a checksum";
    ASSERT_TRUE(file.read().ok()) << file.read().ToString();
    std::string damaged = *original;
    size_t at = damaged.find_first_of("0123456789", damaged.size() / 2);
    ASSERT_NE(at, std::string::npos);
    damaged[at] = damaged[at] == '9' ? '8' : static_cast<char>(damaged[at] + 1);
    ASSERT_TRUE(WriteFileAtomic(file.path, damaged).ok());
    const Status refused = file.read();
    EXPECT_EQ(refused.code(), StatusCode::kCorruption) << refused.ToString();
    EXPECT_NE(refused.message().find(file.path), std::string::npos) << refused.ToString();
    EXPECT_NE(refused.message().find("checksum"), std::string::npos) << refused.ToString();
    ASSERT_TRUE(WriteFileAtomic(file.path, *original).ok());
    EXPECT_TRUE(file.read().ok());
  }
}

// The drift reference is a cache: a damaged one is not trusted but computed again by the
// next full run, and written back with a good checksum.
TEST_F(PredictionFilesTest, ADamagedDriftReferenceIsComputedAgain) {
  const std::string path = Dir() + "/runs/reference-v1.json";
  auto original = ReadFile(path);
  ASSERT_TRUE(original.ok()) << original.status().ToString();
  ASSERT_TRUE(VerifyChecksum(path, *original).ok());
  std::string damaged = *original;
  const size_t at = damaged.find_first_of("123456789", damaged.size() / 2);
  ASSERT_NE(at, std::string::npos);
  damaged[at] = '0';
  ASSERT_TRUE(WriteFileAtomic(path, damaged).ok());
  ASSERT_FALSE(ReadChecksummedFile(path).ok());
  auto scored = RunScoring(Registry(), store_->store(), kName, ScoreRequest{});
  ASSERT_TRUE(scored.ok()) << scored.status().ToString();
  EXPECT_TRUE(scored->record.contains("drift"));
  auto again = ReadChecksummedFile(path);
  EXPECT_TRUE(again.ok()) << again.status().ToString();
  EXPECT_NE(ReadFile(path).value(), damaged) << "written again";
}

// Files written before checksums existed: the same content without the member. They load,
// and give what the checked files gave.
TEST_F(PredictionFilesTest, FilesWithoutAChecksumStillLoad) {
  const auto summary = pipeline::ReadVersionSummary(Registry(), kName, 1);
  ASSERT_TRUE(summary.ok());
  const auto definition = Registry().Get(kName);
  ASSERT_TRUE(definition.ok());
  for (const CheckedFile& file : Files()) {
    SCOPED_TRACE(file.path);
    auto text = ReadFile(file.path);
    ASSERT_TRUE(text.ok());
    if (!text->starts_with(R"({"crc32c":")")) continue;  // the run record is listed twice
    auto body = VerifyChecksum(file.path, *text);
    ASSERT_TRUE(body.ok()) << body.status().ToString();
    ASSERT_FALSE(body->starts_with(R"({"crc32c":")"));
    ASSERT_TRUE(WriteFileAtomic(file.path, *body).ok());
    const Status read = file.read();
    EXPECT_TRUE(read.ok()) << read.ToString();
  }
  auto old_summary = pipeline::ReadVersionSummary(Registry(), kName, 1);
  ASSERT_TRUE(old_summary.ok());
  EXPECT_EQ(*old_summary, *summary);
  auto old_definition = Registry().Get(kName);
  ASSERT_TRUE(old_definition.ok());
  EXPECT_EQ(pipeline::ToJson(*old_definition), pipeline::ToJson(*definition));
}

}  // namespace
}  // namespace sibyl::scoring
