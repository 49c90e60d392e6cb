#include "pipeline/train_run.h"

#include <filesystem>

#include <set>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "common/file.h"
#include "pipeline/backtest.h"
#include "pipeline/feature_words.h"
#include "pipeline/pipeline_test_util.h"

namespace sibyl::pipeline {
namespace {

namespace fs = std::filesystem;

class TrainRunTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_TRUE(testing_util::SharedStore().status().ok()) << testing_util::SharedStore().status().ToString();
    reader_ = testing_util::SharedStore().Snapshot();
    dir_ = (fs::temp_directory_path() / ("sibyl-train-run-test-" + std::to_string(::getpid()))).string();
    fs::remove_all(dir_);
  }
  void TearDown() override { fs::remove_all(dir_); }

  // One thread everywhere: the model bytes are then a function of data and seed.
  static TrainRequest Request() {
    TrainRequest request;
    request.num_threads = 1;
    request.parallel_queries = false;
    request.set.eligibility.min_history_days = 49;
    return request;
  }

  std::shared_ptr<const EventReader> reader_;
  std::string dir_;
};

TEST_F(TrainRunTest, EndToEndTrainWritesAVersionThatReloadsAndScoresIdentically) {
  PredictionRegistry registry(dir_);
  PredictionDefinition definition = testing_util::PurchaseDefinition();
  ASSERT_TRUE(registry.Create(definition).ok());
  TrainRequest request = Request();
  request.keep_matrix = true;
  std::vector<std::string> stages;
  request.on_stage = [&](std::string_view s) { stages.emplace_back(s); };
  auto fitted = FitPrediction(*reader_, definition, request);
  ASSERT_TRUE(fitted.ok()) << fitted.status().ToString();
  EXPECT_EQ(fitted->train_cutoff_ms, TrainCutoff(reader_->max_time_ms(), 7));
  EXPECT_GT(fitted->set.data.num_columns(), 100u);
  EXPECT_GE(fitted->set.positives, 100u);
  EXPECT_GT(fitted->result.metrics.roc_auc, 0.6);  // the simulator hides intent, but not all of it
  for (const char* stage : {"cohort", "labels", "features", "split", "drivers"})
    EXPECT_NE(std::find(stages.begin(), stages.end(), stage), stages.end()) << stage;

  const auto& data = fitted->set.data;
  std::vector<float> rows(data.values.begin(), data.values.begin() + std::min<size_t>(200, data.num_rows()) * data.num_columns());
  auto before = fitted->result.Predict(rows);
  ASSERT_TRUE(before.ok());
  nlohmann::json summary;
  ASSERT_TRUE(WriteVersion(registry.VersionDir(definition.name, 1), 1, *fitted, request, summary).ok());
  EXPECT_EQ(*registry.Versions(definition.name), std::vector<int>{1});
  for (const char* file : {"version.json", "holdout.json", "model/manifest.json", "model/extra.json"})
    EXPECT_TRUE(fs::exists(registry.VersionDir(definition.name, 1) + "/" + file)) << file;

  auto loaded = LoadVersion(registry, definition.name, 1);
  ASSERT_TRUE(loaded.ok()) << loaded.status().ToString();
  auto after = loaded->bundle.Score(rows);
  ASSERT_TRUE(after.ok());
  ASSERT_EQ(after->size(), before->size());
  for (size_t i = 0; i < before->size(); ++i) ASSERT_EQ((*before)[i], (*after)[i]) << i;
  EXPECT_EQ(loaded->summary["data_window"]["train_cutoff_ms"].get<int64_t>(), fitted->train_cutoff_ms);
  EXPECT_FALSE(loaded->holdout_predictions.empty());
  auto spec = SpecOf(loaded->bundle);
  ASSERT_TRUE(spec.ok());
  EXPECT_EQ(spec->ColumnNames(), loaded->bundle.feature_names);
  ASSERT_FALSE(loaded->bundle.drivers.empty());
  EXPECT_NE(DescribeFeature(loaded->bundle.drivers[0].feature), "");
  // Drivers per behaviour: each names the topic of its lead column, no topic twice, and no
  // more of them than there are columns with a non-zero importance.
  ASSERT_FALSE(loaded->bundle.topic_drivers.empty());
  EXPECT_LE(loaded->bundle.topic_drivers.size(), loaded->bundle.drivers.size());
  std::set<std::string> topics;
  for (const ml::Driver& d : loaded->bundle.topic_drivers) {
    ASSERT_LT(d.column, loaded->bundle.feature_names.size());
    EXPECT_EQ(d.feature, TopicOf(loaded->bundle.feature_names[d.column]).title);
    EXPECT_TRUE(topics.insert(d.feature).second) << d.feature;
  }
  EXPECT_EQ(TopicDriversJson(loaded->bundle).size(), loaded->bundle.topic_drivers.size());
}

TEST_F(TrainRunTest, SameDataAndSeedOnOneThreadGiveTheSameModelBytes) {
  PredictionRegistry registry(dir_);
  PredictionDefinition definition = testing_util::ChurnDefinition();
  ASSERT_TRUE(registry.Create(definition).ok());
  auto first = TrainPrediction(registry, *reader_, definition, Request());
  ASSERT_TRUE(first.ok()) << first.status().ToString();
  auto second = TrainPrediction(registry, *reader_, definition, Request());
  ASSERT_TRUE(second.ok()) << second.status().ToString();
  EXPECT_EQ(first->version, 1);
  EXPECT_EQ(second->version, 2);
  // Whichever file holds the model (one learner's, or the mean of fold models), as the
  // manifest names it; both versions name the same one.
  auto manifest = ReadFile(first->dir + "/model/manifest.json");
  auto second_manifest = ReadFile(second->dir + "/model/manifest.json");
  ASSERT_TRUE(manifest.ok() && second_manifest.ok());
  const std::string model_file = nlohmann::json::parse(*manifest).at("model_file");
  EXPECT_EQ(nlohmann::json::parse(*second_manifest).at("model_file"), model_file);
  auto a = ReadFile(first->dir + "/model/" + model_file);
  auto b = ReadFile(second->dir + "/model/" + model_file);
  ASSERT_TRUE(a.ok() && b.ok());
  EXPECT_FALSE(a->empty());
  EXPECT_TRUE(*a == *b) << "model bytes differ between two identical runs";
  for (const char* file : {"calibration.json", "drivers.json", "metrics.json", "extra.json"}) {
    EXPECT_EQ(*ReadFile(first->dir + "/model/" + file), *ReadFile(second->dir + "/model/" + file)) << file;
  }
}

TEST_F(TrainRunTest, IneligiblePredictionTrainsNothingWithoutTheFallback) {
  PredictionRegistry registry(dir_);
  PredictionDefinition definition = testing_util::PurchaseDefinition();
  ASSERT_TRUE(registry.Create(definition).ok());
  TrainRequest request = Request();
  request.bgnbd_fallback = false;
  request.set.eligibility.min_negatives = 10'000'000;
  auto trained = TrainPrediction(registry, *reader_, definition, request);
  ASSERT_FALSE(trained.ok());
  EXPECT_EQ(trained.status().code(), StatusCode::kFailedPrecondition);
  EXPECT_NE(trained.status().message().find("not eligible: found"), std::string::npos);
  EXPECT_TRUE(registry.Versions(definition.name)->empty());

  request = Request();
  request.bgnbd_fallback = false;
  request.as_of_ms = reader_->min_time_ms() + 40 * kMsPerDay;  // T_train 33 days in: too little history
  trained = TrainPrediction(registry, *reader_, definition, request);
  ASSERT_FALSE(trained.ok());
  EXPECT_NE(trained.status().message().find("need 49 days of history"), std::string::npos)
      << trained.status().message();
  EXPECT_TRUE(registry.Versions(definition.name)->empty());
}

// With too little labelled history, BG/NBD (fitted at the as-of time, no labels) stands
// in: the version says so and why, and scores every cohort user with a probability.
TEST_F(TrainRunTest, IneligiblePredictionFallsBackToBgNbd) {
  PredictionRegistry registry(dir_);
  PredictionDefinition definition = testing_util::PurchaseDefinition();
  ASSERT_TRUE(registry.Create(definition).ok());
  TrainRequest request = Request();
  request.as_of_ms = reader_->min_time_ms() + 40 * kMsPerDay;  // T_train 33 days in: too little history
  auto trained = TrainPrediction(registry, *reader_, definition, request);
  ASSERT_TRUE(trained.ok()) << trained.status().ToString();
  const nlohmann::json& s = trained->summary;
  EXPECT_EQ(s.value("model_type", ""), "bg_nbd");
  ASSERT_TRUE(s["fallback"].is_object());
  EXPECT_NE(s["fallback"].value("reason", "").find("need 49 days of history"), std::string::npos);
  auto loaded = LoadVersion(registry, definition.name, trained->version);
  ASSERT_TRUE(loaded.ok()) << loaded.status().ToString();
  EXPECT_EQ(loaded->bundle.model->type(), ml::ModelType::kBgNbd);
  auto spec = FeatureSpecFromJson(loaded->bundle.extra.at("feature_spec"));
  ASSERT_TRUE(spec.ok());
  ASSERT_TRUE(spec->outcome.bgnbd.has_value());
  // Every row gets a probability; users with more purchases score higher on average.
  std::shared_ptr<const EventReader> borrowed(reader_.get(), [](const EventReader*) {});
  auto engine = MakeEmbeddedQueryEngine(borrowed);
  auto rows = BuildScoringRows(*reader_, *engine, definition, *spec, *request.as_of_ms, false);
  ASSERT_TRUE(rows.ok());
  auto scores = loaded->bundle.Score(rows->values);
  ASSERT_TRUE(scores.ok());
  ASSERT_FALSE(scores->empty());
  for (double p : *scores) EXPECT_TRUE(p >= 0 && p <= 1) << p;

  // Nobody did the outcome: BG/NBD cannot stand in either, and both reasons are given.
  PredictionDefinition never = definition;
  never.name = "never_done";
  never.outcome_where = nlohmann::json::array({"price > 1e12"});
  ASSERT_TRUE(registry.Create(never).ok());
  auto failed = TrainPrediction(registry, *reader_, never, request);
  ASSERT_FALSE(failed.ok());
  EXPECT_EQ(failed.status().code(), StatusCode::kFailedPrecondition);
  EXPECT_NE(failed.status().message().find("nor can BG/NBD stand in"), std::string::npos)
      << failed.status().message();
  EXPECT_TRUE(registry.Versions(never.name)->empty());
}

TEST_F(TrainRunTest, BacktestScoresEachCutoffAgainstWhatHappened) {
  BacktestOptions options;
  options.cutoffs = 2;
  options.train = Request();
  options.train.set.eligibility.min_history_days = 28;
  options.train.ml.train_random_forest = false;  // keep it quick; the rows are what is tested
  auto rows = RunBacktest(*reader_, testing_util::ChurnDefinition(), options);
  ASSERT_TRUE(rows.ok()) << rows.status().ToString();
  ASSERT_EQ(rows->size(), 2u);
  EXPECT_EQ((*rows)[0].eval_cutoff_ms - (*rows)[1].eval_cutoff_ms, 7 * kMsPerDay);
  for (const BacktestRow& r : *rows) {
    ASSERT_TRUE(r.error.empty()) << r.error;
    EXPECT_EQ(r.train_cutoff_ms, r.eval_cutoff_ms - 14 * kMsPerDay);
    EXPECT_GT(r.users, 0u);
    EXPECT_GT(r.roc_auc, 0.55);
    EXPECT_GT(r.base_rate, 0.0);
    EXPECT_LT(r.base_rate, 1.0);
  }
}

// Revenue backtests report the top decile's share of what was spent, for the model and for
// the baseline, in the rows and in the JSON.
TEST_F(TrainRunTest, RevenueBacktestReportsTheTopDecilesShare) {
  const PredictionDefinition revenue = ParsePredictionDefinition(nlohmann::json::parse(R"({
    "name": "revenue_14d", "kind": "revenue", "outcome": {"event": "Purchase"}, "revenue_property": "revenue",
    "horizon_days": 14, "cohort": {"all": [{"active_within_days": 30}]}})"))
                                           .value();
  BacktestOptions options;
  options.cutoffs = 1;
  options.train = Request();
  options.train.set.eligibility.min_history_days = 28;
  options.train.ml.train_random_forest = false;
  auto rows = RunBacktest(*reader_, revenue, options);
  ASSERT_TRUE(rows.ok()) << rows.status().ToString();
  ASSERT_EQ(rows->size(), 1u);
  const BacktestRow& r = (*rows)[0];
  ASSERT_TRUE(r.error.empty()) << r.error;
  ASSERT_TRUE(r.baseline_error.empty()) << r.baseline_error;
  // A tenth of the users chosen at random would hold a tenth of the amount; both models
  // know who buys.
  EXPECT_GT(r.top_decile_share, 0.2);
  EXPECT_LE(r.top_decile_share, 1.0);
  EXPECT_GT(r.baseline_top_decile_share, 0.1);
  EXPECT_LE(r.baseline_top_decile_share, 1.0);
  const nlohmann::json j = BacktestToJson(revenue, *rows);
  EXPECT_DOUBLE_EQ(j["cutoffs"][0].at("top_decile_share").get<double>(), r.top_decile_share);
  EXPECT_DOUBLE_EQ(j["cutoffs"][0]["baseline"].at("top_decile_share").get<double>(), r.baseline_top_decile_share);
}

}  // namespace
}  // namespace sibyl::pipeline
