#include "pipeline/training_set.h"

#include <set>

#include <fmt/format.h>
#include <gtest/gtest.h>

#include "common/time.h"
#include "ml/split.h"
#include "pipeline/pipeline_test_util.h"
#include "query/cohort.h"
#include "sim/generator.h"

namespace sibyl::pipeline {
namespace {

// The shared generated store, one snapshot of it and an embedded engine over that.
class TrainingSetStoreTest : public ::testing::Test {
 protected:
  void SetUp() override {
    const auto& store = testing_util::SharedStore();
    ASSERT_TRUE(store.status().ok()) << store.status().ToString();
    reader_ = store.Snapshot();
    engine_ = MakeEmbeddedQueryEngine(reader_, /*parallel=*/false);
  }

  // Options that let the small generated store pass eligibility.
  static TrainingSetOptions SmallStoreOptions(int min_history_days) {
    TrainingSetOptions options;
    options.eligibility.min_positives = options.eligibility.min_negatives = 1;
    options.eligibility.min_history_days = min_history_days;
    return options;
  }

  std::shared_ptr<const EventReader> reader_;
  std::unique_ptr<QueryEngine> engine_;
};

TEST(TrainingSetTest, TrainCutoffIsFlooredAsOfMinusHorizon) {
  const int64_t as_of = *ParseTime("2024-03-10T15:42:10Z");
  EXPECT_EQ(TrainCutoff(as_of, 7), *ParseTime("2024-03-03T15:00:00Z"));
  auto cutoffs = StackedCutoffs(TrainCutoff(as_of, 7), 2);
  ASSERT_EQ(cutoffs.size(), 3u);
  EXPECT_EQ(cutoffs[1], *ParseTime("2024-02-25T15:00:00Z"));
  EXPECT_EQ(cutoffs[2], *ParseTime("2024-02-18T15:00:00Z"));
  EXPECT_EQ(StackedCutoffs(cutoffs[0], 0).size(), 1u);
}

TEST(TrainingSetTest, LabelCountFailureSaysWhatWasFoundAndNeeded) {
  EligibilityOptions options;
  std::vector<CutoffSummary> summaries = {{.cutoff_ms = *ParseTime("2024-03-01"), .cohort_users = 900, .rows = 900,
                                           .positives = 42}};
  Status st = CheckLabelCounts(PredictionKind::kPropensity, 42, 858, summaries, options);
  EXPECT_EQ(st.code(), StatusCode::kFailedPrecondition);
  EXPECT_NE(st.message().find("found 42 users who did the outcome and 858 users who did not"), std::string::npos)
      << st.message();
  EXPECT_NE(st.message().find("needs at least 100 and 100"), std::string::npos) << st.message();
  EXPECT_NE(st.message().find("2024-03-01T00:00:00.000Z: 42 of 900"), std::string::npos) << st.message();
  EXPECT_TRUE(CheckLabelCounts(PredictionKind::kPropensity, 100, 100, summaries, options).ok());
  st = CheckLabelCounts(PredictionKind::kChurn, 500, 20, summaries, options);
  EXPECT_NE(st.message().find("500 users who churned and 20 users who stayed"), std::string::npos) << st.message();
}

TEST(TrainingSetTest, HistoryFailureSaysWhatWasFoundAndNeeded) {
  const auto& store = testing_util::SharedStore();
  ASSERT_TRUE(store.status().ok()) << store.status().ToString();
  auto reader = store.Snapshot();
  const int64_t first = reader->min_time_ms();
  EligibilityOptions options;
  EXPECT_TRUE(CheckHistory(*reader, first + 49 * kMsPerDay, options).ok());
  Status st = CheckHistory(*reader, first + 30 * kMsPerDay, options);
  EXPECT_EQ(st.code(), StatusCode::kFailedPrecondition);
  EXPECT_NE(st.message().find("spans 30.0 days"), std::string::npos) << st.message();
  EXPECT_NE(st.message().find("need 49 days of history"), std::string::npos) << st.message();
}

TEST_F(TrainingSetStoreTest, StackedRowsKeepEachUserOnOneSideOfTheSplit) {
  TrainingSetOptions options = SmallStoreOptions(28);
  options.stack = 2;
  const int64_t t = TrainCutoff(reader_->max_time_ms(), 7);
  auto set = BuildTrainingSet(*reader_, *engine_, testing_util::PurchaseDefinition(), StackedCutoffs(t, 2), options);
  ASSERT_TRUE(set.ok()) << set.status().ToString();
  ASSERT_EQ(set->summaries.size(), 3u);
  ASSERT_EQ(set->data.num_rows(), set->row_ids.size());
  ASSERT_EQ(set->data.values.size(), set->data.num_rows() * set->data.num_columns());
  // Stacking really repeats users (otherwise the test proves nothing).
  std::set<std::string> distinct(set->row_ids.begin(), set->row_ids.end());
  ASSERT_LT(distinct.size(), set->row_ids.size());
  for (size_t r = 0; r < set->row_ids.size(); ++r) ASSERT_EQ(set->data.user_keys[r], UserKey(set->row_ids[r]));

  auto split = ml::SplitByUser(set->data, ml::SplitOptions{.seed = 42});
  ASSERT_TRUE(split.ok());
  std::set<std::string> fit, validation, test;
  for (uint32_t r : split->fit_rows) fit.insert(set->row_ids[r]);
  for (uint32_t r : split->validation_rows) validation.insert(set->row_ids[r]);
  for (uint32_t r : split->test_rows) test.insert(set->row_ids[r]);
  for (const std::string& id : test) {
    EXPECT_FALSE(fit.count(id)) << id;
    EXPECT_FALSE(validation.count(id)) << id;
  }
  for (const std::string& id : validation) EXPECT_FALSE(fit.count(id)) << id;
  EXPECT_EQ(fit.size() + validation.size() + test.size(), distinct.size());
}

TEST_F(TrainingSetStoreTest, AutoStackAddsEarlierWeeksOnlyWhileRowsAreFewAndHistoryAllows) {
  TrainingSetOptions options = SmallStoreOptions(28);
  ASSERT_EQ(options.stack, TrainingSetOptions::kAutoStack);  // the default
  options.auto_stack_max = 3;
  options.auto_deep_stack_max = 3;  // the deeper weeks of small cohorts: the next test
  const int64_t t = TrainCutoff(reader_->max_time_ms(), 7);
  const std::vector<int64_t> candidates = CandidateCutoffs(t, 7, options);
  ASSERT_EQ(candidates.size(), 4u);
  auto build = [&](uint64_t rows) {
    options.auto_stack_rows = rows;
    return BuildTrainingSet(*reader_, *engine_, testing_util::PurchaseDefinition(), candidates, options);
  };

  auto one = build(1);  // the newest week alone has rows enough
  ASSERT_TRUE(one.ok()) << one.status().ToString();
  ASSERT_EQ(one->cutoffs, std::vector<int64_t>{t});
  ASSERT_EQ(one->summaries.size(), 1u);
  const uint64_t newest_rows = one->summaries[0].rows;
  ASSERT_EQ(one->data.num_rows(), newest_rows);

  auto two = build(newest_rows + 1);  // one more week is needed, and enough
  ASSERT_TRUE(two.ok()) << two.status().ToString();
  ASSERT_EQ(two->cutoffs, (std::vector<int64_t>{t, t - kMsPerWeek}));
  EXPECT_EQ(two->data.num_rows(), two->summaries[0].rows + two->summaries[1].rows);
  EXPECT_EQ(two->row_cutoff.back(), 1u);

  auto all = build(UINT64_MAX);  // as many weeks as the history allows, none without it
  ASSERT_TRUE(all.ok()) << all.status().ToString();
  ASSERT_GE(all->cutoffs.size(), 2u);
  for (int64_t c : all->cutoffs) EXPECT_TRUE(CheckHistory(*reader_, c, options.eligibility).ok());
  if (all->cutoffs.size() < candidates.size()) {
    EXPECT_FALSE(CheckHistory(*reader_, candidates[all->cutoffs.size()], options.eligibility).ok());
  }
}

TEST(TrainingSetTest, AutoStackWeeksFollowTheHorizon) {
  TrainingSetOptions options;  // the defaults: 3 weeks, deeper ones within 112 days, at most 12
  EXPECT_EQ(AutoStackWeeks(1, options), 12);   // (112 - 1) / 7 = 15, capped
  EXPECT_EQ(AutoStackWeeks(7, options), 12);   // 15, capped
  EXPECT_EQ(AutoStackWeeks(28, options), 12);  // 7 * 12 + 28 = 112: the oldest window starts on the span's edge
  EXPECT_EQ(AutoStackWeeks(30, options), 11);
  EXPECT_EQ(AutoStackWeeks(60, options), 7);
  EXPECT_EQ(AutoStackWeeks(90, options), 3);   // (112 - 90) / 7 = 3: as before deeper stacking
  EXPECT_EQ(AutoStackWeeks(365, options), 3);  // never fewer than auto_stack_max
  EXPECT_EQ(CandidateCutoffs(0, 30, options).size(), 12u);
  options.stack = 5;  // an explicit K ignores the horizon
  EXPECT_EQ(CandidateCutoffs(0, 30, options).size(), 6u);
  EXPECT_EQ(CandidateCutoffs(0, 90, options).size(), 6u);
}

TEST_F(TrainingSetStoreTest, AutoStackGoesDeeperOnlyWhileTheCohortIsSmall) {
  TrainingSetOptions options = SmallStoreOptions(7);
  options.auto_stack_max = 1;
  options.auto_deep_stack_max = 3;
  options.auto_stack_rows = UINT64_MAX;
  const int64_t t = TrainCutoff(reader_->max_time_ms(), 7);
  const std::vector<int64_t> candidates = CandidateCutoffs(t, 7, options);
  ASSERT_EQ(candidates.size(), 4u);
  auto build = [&](uint64_t deep_rows) {
    options.auto_deep_stack_rows = deep_rows;
    return BuildTrainingSet(*reader_, *engine_, testing_util::PurchaseDefinition(), candidates, options);
  };
  for (int64_t c : candidates) ASSERT_TRUE(CheckHistory(*reader_, c, options.eligibility).ok());

  // A bound below the newest week's rows: the first stacked week is still added (it is not
  // a deep one), the deeper ones are not.
  auto shallow = build(1);
  ASSERT_TRUE(shallow.ok()) << shallow.status().ToString();
  EXPECT_EQ(shallow->cutoffs, (std::vector<int64_t>{t, t - kMsPerWeek}));

  // Room for one deep week: it stops as soon as the rows reach the bound.
  const uint64_t two_weeks = shallow->summaries[0].rows + shallow->summaries[1].rows;
  auto one_deep = build(two_weeks + 1);
  ASSERT_TRUE(one_deep.ok()) << one_deep.status().ToString();
  EXPECT_EQ(one_deep->cutoffs.size(), 3u);

  // A small cohort takes every candidate week.
  auto deep = build(UINT64_MAX);
  ASSERT_TRUE(deep.ok()) << deep.status().ToString();
  EXPECT_EQ(deep->cutoffs, candidates);
  uint64_t rows = 0;
  for (const auto& summary : deep->summaries) rows += summary.rows;
  EXPECT_EQ(deep->data.num_rows(), rows);
}

TEST_F(TrainingSetStoreTest, SampleCapIsDeterministicAndBounded) {
  TrainingSetOptions options;
  options.max_users = 300;
  options.eligibility.min_positives = options.eligibility.min_negatives = 1;
  const int64_t t = TrainCutoff(reader_->max_time_ms(), 14);
  auto a = BuildTrainingSet(*reader_, *engine_, testing_util::ChurnDefinition(), {t}, options);
  auto b = BuildTrainingSet(*reader_, *engine_, testing_util::ChurnDefinition(), {t}, options);
  ASSERT_TRUE(a.ok()) << a.status().ToString();
  ASSERT_TRUE(b.ok());
  EXPECT_EQ(a->row_ids.size(), 300u);
  EXPECT_GT(a->summaries[0].cohort_users, 300u);
  EXPECT_EQ(a->row_ids, b->row_ids);
}

TEST_F(TrainingSetStoreTest, IneligibleStopsBeforeFeatures) {
  TrainingSetOptions options;
  options.eligibility.min_positives = 1'000'000;
  std::vector<std::string> stages;
  options.on_stage = [&](std::string_view s) { stages.emplace_back(s); };
  auto set = BuildTrainingSet(*reader_, *engine_, testing_util::PurchaseDefinition(),
                              {TrainCutoff(reader_->max_time_ms(), 7)}, options);
  ASSERT_FALSE(set.ok());
  EXPECT_EQ(set.status().code(), StatusCode::kFailedPrecondition);
  EXPECT_NE(set.status().message().find("training needs at least 1000000"), std::string::npos);
  for (const std::string& s : stages) EXPECT_NE(s, "features");
}

// A filtered outcome also gets its event without the filters (docs/FEATURES.md, "Why the
// unfiltered event"); an unfiltered one has nothing to add.
TEST(TrainingSetTest, OnlyAFilteredOutcomeGetsTheUnfilteredColumns) {
  PredictionDefinition definition = testing_util::PurchaseDefinition();
  LabelSpec label;
  label.event = "Purchase";
  label.horizon_ms = 7 * kMsPerDay;
  const int64_t first = 0, oldest = 400 * kMsPerDay;
  auto plain = OutcomeFamilyFor(definition, label, first, oldest);
  ASSERT_TRUE(plain.ok());
  EXPECT_FALSE(plain->unfiltered);
  label.where = {*ParsePropertyFilter("price >= 20")};
  auto filtered = OutcomeFamilyFor(definition, label, first, oldest);
  ASSERT_TRUE(filtered.ok());
  EXPECT_TRUE(filtered->unfiltered);
  const std::vector<std::string> names = OutcomeColumnNames(*filtered);
  EXPECT_NE(std::find(names.begin(), names.end(), R"(count "Purchase" unfiltered all history)"), names.end());
  EXPECT_EQ(names.size(), OutcomeColumnNames(*plain).size() + 2 * (filtered->window_days.size() + 1) + 2);
}

// BG/NBD describes customers from their first purchase on. A churn cohort ("bought within
// 60 days") holds only those who have not dropped out yet: fitted on it, the dropout
// probability collapses toward 0. The training set fits it on everyone who bought before
// the cutoff, so on a store drawn from known parameters it recovers them.
TEST(TrainingSetTest, BgNbdIsFittedOnTheCustomerBaseNotOnTheRecentCohort) {
  sim::SimOptions sim;
  sim.regime = sim::Regime::kBgNbd;
  sim.bgnbd.r = 0.5;
  sim.bgnbd.alpha = 10;  // 0.05 purchases a day while alive
  sim.bgnbd.a = 0.8;
  sim.bgnbd.b = 2.4;     // mean dropout after a purchase 0.25
  sim.users = 3000;
  sim.days = 300;
  sim.seed = 5;
  sim.threads = 1;
  testing_util::GeneratedStore store(sim);
  ASSERT_TRUE(store.status().ok()) << store.status().ToString();
  auto reader = store.Snapshot();
  auto engine = MakeEmbeddedQueryEngine(reader, /*parallel=*/false);
  const PredictionDefinition definition = ParsePredictionDefinition(nlohmann::json::parse(R"({
      "name": "churn_30d", "kind": "churn", "outcome": {"event": "Purchase"}, "horizon_days": 30,
      "cohort": {"performed": {"event": "Purchase", "within_days": 60}}})"))
                                              .value();
  TrainingSetOptions options;
  options.stack = 0;
  options.eligibility.min_positives = options.eligibility.min_negatives = 1;
  const int64_t cutoff = FloorHour(reader->min_time_ms() + 240 * kMsPerDay);
  auto set = BuildTrainingSet(*reader, *engine, definition, {cutoff}, options);
  ASSERT_TRUE(set.ok()) << set.status().ToString();
  SCOPED_TRACE(set->outcome_model_note);
  ASSERT_TRUE(set->spec.outcome.bgnbd.has_value());
  const OutcomeBgNbd& fit = *set->spec.outcome.bgnbd;

  // Everyone who bought before the cutoff took part, not just the cohort's rows.
  auto buyers = engine->Cohort(ParseCohortText(R"({"performed": {"event": "Purchase"}})").value(), cutoff);
  ASSERT_TRUE(buyers.ok());
  ASSERT_LT(set->summaries[0].rows * 3 / 2, buyers->actors.size());
  EXPECT_NE(set->outcome_model_note.find(fmt::format("fitted on {} users", buyers->actors.size())),
            std::string::npos);
  // Mean dropout a / (a + b) = 0.25 and mean rate r / alpha = 0.05 a day, within what
  // 3,000 customers can tell; on the cohort alone the dropout comes out below 0.002.
  EXPECT_NEAR(fit.a / (fit.a + fit.b), 0.25, 0.08);
  EXPECT_NEAR(fit.r / fit.alpha, 0.05, 0.015);

  // A base over the cap is sampled to it by a seeded hash: the same users (so the same
  // parameters) for the same seed.
  OutcomeFamilySpec capped = set->spec.outcome, again = set->spec.outcome;
  auto note = FitOutcomeModels(*engine, cutoff, 1000, options.seed, capped);
  ASSERT_TRUE(note.ok()) << note.status().ToString();
  EXPECT_NE(note->find("fitted on 1000 users"), std::string::npos) << *note;
  ASSERT_TRUE(FitOutcomeModels(*engine, cutoff, 1000, options.seed, again).ok());
  ASSERT_TRUE(capped.bgnbd && again.bgnbd);
  EXPECT_EQ(capped.bgnbd->r, again.bgnbd->r);
  EXPECT_EQ(capped.bgnbd->b, again.bgnbd->b);
  EXPECT_NE(capped.bgnbd->r, fit.r);
}

// One event stamped in the future must not move the default as-of past all the data.
TEST(DefaultAsOfTest, IsTheLastEventButNeverLaterThanNow) {
  auto reader = testing_util::SharedStore().Snapshot();
  const int64_t last = reader->max_time_ms();
  EXPECT_EQ(DefaultAsOf(*reader, last + kMsPerDay), last);
  EXPECT_EQ(DefaultAsOf(*reader, last - kMsPerDay), last - kMsPerDay);
}

}  // namespace
}  // namespace sibyl::pipeline
