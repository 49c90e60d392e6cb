#include <algorithm>
#include <cmath>
#include <filesystem>
#include <numeric>
#include <random>
#include <set>

#include <gtest/gtest.h>

#include <numeric>

#include "ml/blend_model.h"
#include "ml/linear_model.h"
#include "scoring/sparse_predict.h"

#include "common/time.h"
#include "pipeline/pipeline_test_util.h"
#include "pipeline/registry.h"
#include "pipeline/train_run.h"
#include "query/query_engine.h"
#include "scoring/cohort_export.h"
#include "pipeline/feature_words.h"
#include "scoring/insights.h"
#include "scoring/score_run.h"
#include "scoring/scoring.h"

namespace sibyl::scoring {
namespace {

namespace fs = std::filesystem;
using pipeline::testing_util::GeneratedStore;

// One store with a trained purchase_7d for the whole suite: generating and training are
// the slow parts. Tests write scores into it, but none needs another to have run first
// (`--gtest_shuffle` passes).
class ScoringTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    store_ = new GeneratedStore();
    ASSERT_TRUE(store_->status().ok()) << store_->status().ToString();
    pipeline::PredictionRegistry registry(store_->dir());
    auto definition = pipeline::testing_util::PurchaseDefinition();
    ASSERT_TRUE(registry.Create(definition).ok());
    pipeline::TrainRequest request;
    request.num_threads = 1;
    request.parallel_queries = false;
    request.ml.train_linear = false;
    request.ml.train_random_forest = false;
    // Boosted trees alone: the native tree walk is what these tests check (BG/NBD or a
    // blend with it could otherwise win on this small store).
    request.bgnbd_candidate = false;
    request.ml.consider_blend = false;
    request.set.stack = 0;  // one cutoff: these tests are about scoring, not training
    auto trained = pipeline::TrainPrediction(registry, *store_->Snapshot(), definition, request);
    ASSERT_TRUE(trained.ok()) << trained.status().ToString();
  }
  static void TearDownTestSuite() {
    delete store_;
    store_ = nullptr;
  }
  void SetUp() override { ASSERT_NE(store_, nullptr); }

  static pipeline::PredictionRegistry Registry() { return pipeline::PredictionRegistry(store_->dir()); }
  static ScoringModel Model() {
    auto model = LoadScoringModel(Registry(), "purchase_7d");
    EXPECT_TRUE(model.ok()) << model.status().ToString();
    return std::move(model).value();
  }

  static GeneratedStore* store_;
};
GeneratedStore* ScoringTest::store_ = nullptr;

TEST(CohortAmountTest, PercentagesAndCountsParseAndNonsenseIsRefusedByName) {
  auto percent = ParseCohortAmount("--top", "20%");
  ASSERT_TRUE(percent.ok());
  EXPECT_EQ(*percent, std::make_pair(20.0, true));
  auto count = ParseCohortAmount("--top", "500");
  ASSERT_TRUE(count.ok());
  EXPECT_EQ(*count, std::make_pair(500.0, false));
  for (const char* bad : {"", "%", "101%", "-5", "20x", "nan"}) {
    auto r = ParseCohortAmount("--bottom", bad);
    ASSERT_FALSE(r.ok()) << bad;
    EXPECT_EQ(r.status().code(), StatusCode::kInvalidArgument);
    EXPECT_NE(r.status().message().find("--bottom"), std::string::npos) << r.status().message();
  }
}

// The drift reference (runs/reference-vN.json) is a cache: damaged, it is computed again
// and the run's drift figures are the same (issue 18: a damaged one stopped scoring with
// an internal error naming no file).
TEST_F(ScoringTest, DamagedDriftReferenceIsRebuilt) {
  ScoreRequest request;
  request.write_back = false;
  request.parallel = false;
  auto first = RunScoring(Registry(), store_->store(), "purchase_7d", request);
  ASSERT_TRUE(first.ok()) << first.status().ToString();
  std::string reference_path;
  for (const auto& entry : std::filesystem::directory_iterator(Registry().PredictionDir("purchase_7d") + "/runs"))
    if (entry.path().filename().string().starts_with("reference-v")) reference_path = entry.path().string();
  ASSERT_FALSE(reference_path.empty());
  for (const char* damage : {"{\"features\": 7}", "{", "{\"features\": [], \"margin\": {}}"}) {
    {
      std::FILE* f = std::fopen(reference_path.c_str(), "w");
      std::fputs(damage, f);
      std::fclose(f);
    }
    auto again = RunScoring(Registry(), store_->store(), "purchase_7d", request);
    ASSERT_TRUE(again.ok()) << damage << ": " << again.status().ToString();
    EXPECT_EQ(again->record["drift"]["score_psi"], first->record["drift"]["score_psi"]) << damage;
  }
}

TEST_F(ScoringTest, BatchActiveOnlyAndSingleUserScoresAreIdentical) {
  auto reader = store_->Snapshot();
  const int64_t cutoff = DefaultScoringCutoff(*reader);
  ScoreRequest full;
  full.write_back = false;
  full.parallel = false;
  full.users_per_block = 700;  // several blocks
  auto batch = RunScoring(Registry(), store_->store(), "purchase_7d", full);
  ASSERT_TRUE(batch.ok()) << batch.status().ToString();
  ASSERT_GT(batch->scores.size(), 100u);
  EXPECT_EQ(batch->record["cutoff_ms"].get<int64_t>(), cutoff);
  ASSERT_TRUE(batch->record.contains("drift"));
  EXPECT_GE(batch->record["drift"]["score_psi"].get<double>(), 0.0);

  // The hourly path needs a full run on record for its percentiles.
  ScoreRequest written = full;
  written.write_back = true;
  written.drift = false;
  auto first = RunScoring(Registry(), store_->store(), "purchase_7d", written);
  ASSERT_TRUE(first.ok()) << first.status().ToString();
  EXPECT_EQ(first->scores, batch->scores);

  ScoreRequest active = full;
  active.active_within_ms = 3 * kMsPerDay;
  auto hourly = RunScoring(Registry(), store_->store(), "purchase_7d", active);
  ASSERT_TRUE(hourly.ok()) << hourly.status().ToString();
  ASSERT_GT(hourly->scores.size(), 0u);
  EXPECT_LT(hourly->scores.size(), batch->scores.size());

  auto names = MakeEmbeddedQueryEngine(reader, false);
  const std::vector<std::string> batch_ids = names->UserIds(UserSet{cutoff, batch->actors});
  const std::vector<std::string> hourly_ids = names->UserIds(UserSet{cutoff, hourly->actors});
  ASSERT_EQ(batch_ids.size(), batch->scores.size());
  ASSERT_EQ(hourly_ids.size(), hourly->scores.size());
  std::map<std::string, std::pair<double, double>> by_user;
  for (size_t i = 0; i < batch_ids.size(); ++i)
    by_user[batch_ids[i]] = {batch->scores[i], batch->percentiles[i]};
  for (size_t i = 0; i < hourly_ids.size(); ++i) {
    auto it = by_user.find(hourly_ids[i]);
    ASSERT_NE(it, by_user.end()) << hourly_ids[i];
    EXPECT_EQ(hourly->scores[i], it->second.first) << hourly_ids[i];
    EXPECT_EQ(hourly->percentiles[i], it->second.second) << hourly_ids[i];
  }

  ScoringModel model = Model();
  auto quantiles = first->record["quantiles"].get<std::vector<double>>();
  for (size_t i = 0; i < batch_ids.size(); i += batch_ids.size() / 5) {
    auto one = ScoreUser(*reader, model, batch_ids[i], cutoff, quantiles);
    ASSERT_TRUE(one.ok()) << one.status().ToString();
    EXPECT_EQ(one->score, batch->scores[i]);
    EXPECT_EQ(*one->percentile, batch->percentiles[i]);
    EXPECT_TRUE(one->in_cohort);
  }
}

// The native tree walk (SparsePredictor) gives XGBoost's margins exactly: those of a CSR
// matrix of the same entries and those of ml's dense path (what training evaluated).
TEST_F(ScoringTest, NativeTreeWalkGivesXgboostsMarginsOnEveryRow) {
  ScoringModel model = Model();
  ASSERT_NE(model.sparse_predictor, nullptr);
  ASSERT_TRUE(model.sparse_predictor->native()) << model.sparse_predictor->why_not_native();
  auto reader = store_->Snapshot();
  auto engine = MakeEmbeddedQueryEngine(reader, false);
  const int64_t cutoff = DefaultScoringCutoff(*reader);
  auto users = engine->Cohort(model.cohort, cutoff);
  ASSERT_TRUE(users.ok());
  auto matrix = engine->SparseFeatures(model.spec, cutoff, *users);
  ASSERT_TRUE(matrix.ok()) << matrix.status().ToString();
  ASSERT_GT(matrix->rows(), 100u);
  auto native = model.sparse_predictor->Margins(*matrix, 0, matrix->rows());
  auto csr = model.sparse_predictor->XgboostMargins(*matrix, 0, matrix->rows());
  std::vector<float> dense;
  DensifyRows(*matrix, 0, matrix->rows(), dense);
  auto dense_margins = model.bundle.model->PredictMargin(dense);
  ASSERT_TRUE(native.ok() && csr.ok() && dense_margins.ok());
  size_t distinct = std::set<double>(native->begin(), native->end()).size();
  EXPECT_GT(distinct, 10u);  // the rows take many paths through the trees
  for (size_t r = 0; r < matrix->rows(); ++r) {
    ASSERT_EQ((*native)[r], (*csr)[r]) << "row " << r;
    ASSERT_EQ((*native)[r], (*dense_margins)[r]) << "row " << r;
  }
}

// A blend with a tree part is scored through the native walk of that part and its other
// parts' own code on dense rows: the margins are the blend's own (ml's dense path) exactly.
TEST_F(ScoringTest, BlendsWalkTheirTreesAndGiveTheBlendsMarginsOnEveryRow) {
  ScoringModel model = Model();
  auto reader = store_->Snapshot();
  auto engine = MakeEmbeddedQueryEngine(reader, false);
  const int64_t cutoff = DefaultScoringCutoff(*reader);
  auto users = engine->Cohort(model.cohort, cutoff);
  ASSERT_TRUE(users.ok());
  auto matrix = engine->SparseFeatures(model.spec, cutoff, *users);
  ASSERT_TRUE(matrix.ok()) << matrix.status().ToString();
  std::vector<float> dense;
  DensifyRows(*matrix, 0, matrix->rows(), dense);
  // A linear part fitted on these rows (labels: the tree model's own sign, so that it
  // learns something and its margins vary).
  auto tree_margins = model.bundle.model->PredictMargin(dense);
  ASSERT_TRUE(tree_margins.ok());
  ml::Dataset data;
  data.feature_names = model.bundle.feature_names;
  data.values = dense;
  for (double m : *tree_margins) data.labels.push_back(m > 0 ? 1.0f : 0.0f);
  std::vector<uint32_t> rows(matrix->rows());
  std::iota(rows.begin(), rows.end(), 0u);
  auto linear = ml::LinearModel::Train(data, rows, {}, ml::LinearOptions{});
  ASSERT_TRUE(linear.ok()) << linear.status().ToString();
  // The trained model is the mean of its fold models (a blend of trees): one of them is the
  // tree part here.
  const ml::Model* tree = model.bundle.model.get();
  if (tree->type() == ml::ModelType::kBlend) tree = static_cast<const ml::BlendModel*>(tree)->parts()[0].model.get();
  ASSERT_EQ(tree->type(), ml::ModelType::kGradientBoostedTrees);
  auto tree_bytes = tree->Serialize();
  ASSERT_TRUE(tree_bytes.ok());
  auto tree_copy = ml::LoadModel(tree->type(), tree->task(), *tree_bytes);
  ASSERT_TRUE(tree_copy.ok());
  std::vector<ml::BlendModel::Part> parts;
  parts.push_back({std::move(*linear), 0.4});
  parts.push_back({std::move(*tree_copy), 0.6});
  auto blend = ml::BlendModel::Make(std::move(parts));
  ASSERT_TRUE(blend.ok()) << blend.status().ToString();

  auto predictor = SparsePredictor::ForModel(**blend);
  ASSERT_TRUE(predictor.ok()) << predictor.status().ToString();
  ASSERT_NE(*predictor, nullptr);
  EXPECT_TRUE((*predictor)->native());
  auto sparse = (*predictor)->Margins(*matrix, 0, matrix->rows());
  auto reference = (*predictor)->XgboostMargins(*matrix, 0, matrix->rows());
  auto expected = (*blend)->PredictMargin(dense);
  ASSERT_TRUE(sparse.ok() && reference.ok() && expected.ok());
  EXPECT_GT(std::set<double>(sparse->begin(), sparse->end()).size(), 10u);
  for (size_t r = 0; r < matrix->rows(); ++r) {
    ASSERT_EQ((*sparse)[r], (*expected)[r]) << "row " << r;
    ASSERT_EQ((*reference)[r], (*expected)[r]) << "row " << r;
  }
}

TEST_F(ScoringTest, WrittenScoresSurviveARestartAndFeedTheCohortLanguage) {
  ScoreRequest request;
  request.parallel = false;
  auto run = RunScoring(Registry(), store_->store(), "purchase_7d", request);
  ASSERT_TRUE(run.ok()) << run.status().ToString();
  const int64_t cutoff = run->record["cutoff_ms"].get<int64_t>();
  size_t top = std::count_if(run->percentiles.begin(), run->percentiles.end(), [](double p) { return p >= 80; });
  ASSERT_GT(top, 0u);

  // A second, read-only open sees what the writer acknowledged: the store on disk.
  auto reopened = EventStore::Open(StoreOptions{.data_dir = store_->dir() + "/data", .read_only = true});
  ASSERT_TRUE(reopened.ok()) << reopened.status().ToString();
  auto reader = (*reopened)->Snapshot();
  auto written = ReadWrittenScores(*reader, "purchase_7d");
  ASSERT_EQ(written.size(), run->scores.size());
  std::map<std::string, double> score_of;
  for (const WrittenScore& w : written) score_of[w.user_id] = w.score;
  auto engine = MakeEmbeddedQueryEngine(reader, false);
  const std::vector<std::string> run_ids = engine->UserIds(UserSet{cutoff, run->actors});
  ASSERT_EQ(run_ids.size(), run->scores.size());
  for (size_t i = 0; i < run_ids.size(); ++i) EXPECT_EQ(score_of[run_ids[i]], run->scores[i]);

  auto cohort = ParseCohort(nlohmann::json::parse(R"({"user_property": "sibyl.purchase_7d.percentile >= 80"})"));
  ASSERT_TRUE(cohort.ok());
  // Scores are timestamped at T: invisible as of T, visible from the next hour on.
  auto at_t = engine->Cohort(*cohort, cutoff);
  ASSERT_TRUE(at_t.ok()) << at_t.status().ToString();
  auto later = engine->Cohort(*cohort, cutoff + kMsPerHour);
  ASSERT_TRUE(later.ok());
  EXPECT_EQ(later->actors.size(), top);
  // An earlier full run wrote at the same T, so only "never before T" holds for at_t.
  EXPECT_LT(at_t->actors.size(), later->actors.size());
}

TEST_F(ScoringTest, CohortExportIsOrderedAndTopFifthIsTheCohortLanguagesSet) {
  if (ReadWrittenScores(*store_->Snapshot(), "purchase_7d").empty()) {
    // Run alone (or shuffled before the tests that write): a full run writes them.
    ScoreRequest request;
    request.parallel = false;
    request.drift = false;
    auto run = RunScoring(Registry(), store_->store(), "purchase_7d", request);
    ASSERT_TRUE(run.ok()) << run.status().ToString();
  }
  auto reader = store_->Snapshot();
  auto written = ReadWrittenScores(*reader, "purchase_7d");
  ASSERT_GT(written.size(), 100u);
  auto top = SelectCohort(written, CohortSelection{.top_percent = 20});
  ASSERT_FALSE(top.empty());
  for (size_t i = 1; i < top.size(); ++i) {
    EXPECT_GE(top[i - 1].score, top[i].score);
    if (top[i - 1].score == top[i].score) {
      EXPECT_GE(top[i - 1].percentile, top[i].percentile);
    }
  }
  // Percentiles follow the score order: nobody outside the export outscores anyone in it.
  double lowest_in = top.back().score;
  std::set<std::string> ids;
  for (const auto& w : top) ids.insert(w.user_id);
  for (const auto& w : written)
    if (!ids.count(w.user_id)) {
      EXPECT_LE(w.score, lowest_in) << w.user_id;
    }
  // About a fifth of the full run (the hourly run reused its scale), and the same users as
  // the cohort `sibyl.purchase_7d.percentile >= 80` an hour after the scores' T.
  EXPECT_NEAR(static_cast<double>(top.size()) / written.size(), 0.2, 0.05);
  auto engine = MakeEmbeddedQueryEngine(reader, false);
  auto cohort = ParseCohort(nlohmann::json::parse(R"({"user_property": "sibyl.purchase_7d.percentile >= 80"})"));
  ASSERT_TRUE(cohort.ok());
  auto members = engine->Cohort(*cohort, written.front().cutoff_ms + kMsPerHour);
  ASSERT_TRUE(members.ok());
  std::vector<std::string> member_ids = engine->UserIds(*members);
  EXPECT_EQ(std::set<std::string>(member_ids.begin(), member_ids.end()), ids);

  auto three = SelectCohort(written, CohortSelection{.bottom_count = 3});
  ASSERT_EQ(three.size(), 3u);
  for (const auto& w : written) EXPECT_GE(w.score, three[0].score);
  auto rich = SelectCohort(written, CohortSelection{.min_score = 0.3});
  for (const auto& w : rich) EXPECT_GE(w.score, 0.3);
}

TEST_F(ScoringTest, PercentilesRankByScoreAndTopFifthIsAboveEighty) {
  std::vector<double> margins;
  for (int i = 0; i < 1000; ++i) margins.push_back(i * 0.01);
  auto q = MarginQuantiles(margins);
  ASSERT_EQ(q.size(), kQuantilePoints);
  EXPECT_EQ(PercentileOf(q, 9.99), 100.0);
  EXPECT_NEAR(PercentileOf(q, 5.0), 50.0, 0.2);
  EXPECT_EQ(PercentileOf(q, -1.0), 0.0);
  size_t top = std::count_if(margins.begin(), margins.end(), [&](double m) { return PercentileOf(q, m) >= 80; });
  EXPECT_NEAR(static_cast<double>(top), 200.0, 3.0);
}

// Sizes past the two-thread paths (2^16): the quantiles, percentiles and summary equal
// those of one plain sort, with ties and duplicates in the margins.
TEST(ScoringStatisticsTest, QuantilesPercentilesAndSummaryOfManyEqualANaiveSortsOnes) {
  std::mt19937 random(11);
  for (size_t n : {size_t{1}, size_t{999}, size_t{70'001}, size_t{200'000}}) {
    std::vector<double> margins(n);
    for (double& m : margins) m = static_cast<double>(random() % 5000) / 100.0 - 25.0;
    std::vector<double> sorted = margins;
    std::sort(sorted.begin(), sorted.end());
    std::vector<double> expected_q;
    for (size_t i = 0; i < kQuantilePoints; ++i)
      expected_q.push_back(sorted[static_cast<size_t>(std::llround(static_cast<double>(i) * (n - 1) / (kQuantilePoints - 1)))]);
    const std::vector<double> q = MarginQuantiles(margins);
    ASSERT_EQ(q, expected_q) << n;
    const std::vector<double> parallel = PercentilesOf(q, margins, true), serial = PercentilesOf(q, margins, false);
    ASSERT_EQ(parallel.size(), n);
    for (size_t i = 0; i < n; ++i) ASSERT_EQ(parallel[i], PercentileOf(q, margins[i])) << n << " row " << i;
    EXPECT_EQ(parallel, serial);
    const nlohmann::json summary = ScoreSummary(margins);
    auto at = [&](double p) { return sorted[static_cast<size_t>(p * static_cast<double>(n - 1))]; };
    EXPECT_EQ(summary["users"], n);
    EXPECT_EQ(summary["min"].get<double>(), sorted.front());
    EXPECT_EQ(summary["max"].get<double>(), sorted.back());
    EXPECT_EQ(summary["p10"].get<double>(), at(0.1)) << n;
    EXPECT_EQ(summary["p50"].get<double>(), at(0.5)) << n;
    EXPECT_EQ(summary["p90"].get<double>(), at(0.9)) << n;
    EXPECT_NEAR(summary["sum"].get<double>(), std::accumulate(sorted.begin(), sorted.end(), 0.0), 1e-6 * n);
  }
}

TEST_F(ScoringTest, ContributionsPlusBiasEqualTheRawMargin) {
  ScoringModel model = Model();
  auto reader = store_->Snapshot();
  // Its own users (a run that writes nothing), so the test does not lean on another
  // test's written scores.
  ScoreRequest request;
  request.write_back = false;
  request.parallel = false;
  request.drift = false;
  auto run = RunScoring(Registry(), store_->store(), "purchase_7d", request);
  ASSERT_TRUE(run.ok()) << run.status().ToString();
  const int64_t cutoff = run->record["cutoff_ms"].get<int64_t>();
  const std::vector<std::string> ids =
      MakeEmbeddedQueryEngine(reader, false)->UserIds(UserSet{cutoff, run->actors});
  ASSERT_GE(ids.size(), 4u);
  for (size_t i = 0; i < ids.size(); i += ids.size() / 4) {
    auto user = ScoreUser(*reader, model, ids[i], cutoff);
    ASSERT_TRUE(user.ok()) << user.status().ToString();
    auto contributions = model.bundle.Contributions(user->features);
    ASSERT_TRUE(contributions.ok());
    double sum = 0;
    for (double c : *contributions) sum += c;
    EXPECT_NEAR(sum, user->margin, 1e-4);
    auto explanation = Explain(model, *user);
    ASSERT_TRUE(explanation.ok());
    EXPECT_LE(explanation->up.size(), 3u);
    for (size_t k = 1; k < explanation->up.size(); ++k)
      EXPECT_GE(explanation->up[k - 1].contribution, explanation->up[k].contribution);
    for (const Reason& r : explanation->down) EXPECT_LT(r.contribution, 0);
    // Every reason is one topic's summed columns; with every reason asked for, the
    // reasons and the bias add up to the margin.
    auto all = Explain(model, *user, model.bundle.feature_names.size());
    ASSERT_TRUE(all.ok());
    double total = all->bias;
    std::set<std::string> topics;
    for (const auto* side : {&all->up, &all->down}) {
      for (const Reason& r : *side) {
        EXPECT_TRUE(topics.insert(r.topic).second) << "topic listed twice: " << r.topic;
        double parts = 0;
        for (const ColumnContribution& c : r.columns) {
          EXPECT_EQ(pipeline::TopicOf(c.column).title, r.topic) << c.column;
          parts += c.contribution;
        }
        EXPECT_NEAR(parts, r.contribution, 1e-9);
        total += r.contribution;
      }
    }
    EXPECT_NEAR(total, user->margin, 1e-4);
  }
}

TEST_F(ScoringTest, ForecastIntervalsCoverTheRealisedCountAsOftenAsTheyClaim) {
  std::mt19937_64 rng(11);
  std::uniform_real_distribution<double> uniform(0, 1);
  std::vector<double> p(2000);
  for (double& v : p) v = std::pow(uniform(rng), 3);  // skewed, like propensities
  Forecast f = ForecastFromProbabilities(p);
  constexpr int kRuns = 400;
  int covered90 = 0, covered95 = 0;
  for (int run = 0; run < kRuns; ++run) {
    int count = 0;
    for (double v : p) count += uniform(rng) < v;
    covered90 += count >= f.low90 && count <= f.high90;
    covered95 += count >= f.low95 && count <= f.high95;
  }
  // Binomial noise of 400 runs: +- 3 sd is about 0.045 at 90%.
  EXPECT_NEAR(covered90 / double(kRuns), 0.90, 0.045);
  EXPECT_NEAR(covered95 / double(kRuns), 0.95, 0.035);
}

}  // namespace
}  // namespace sibyl::scoring
