#include "ml/report_html.h"

#include <random>

#include <gtest/gtest.h>

namespace sibyl::ml {
namespace {

TEST(ReportHtmlTest, SelfContainedPageWithAllCharts) {
  std::mt19937 rng(3);
  std::uniform_real_distribution<double> u(0, 1);
  std::vector<double> p;
  std::vector<float> y;
  for (int i = 0; i < 2000; ++i) {
    p.push_back(u(rng) * 0.4);
    y.push_back(u(rng) < p.back() ? 1.0f : 0.0f);
  }
  ReportInput input;
  input.title = "purchase <7d>";
  input.predictions = p;
  input.labels = y;
  input.drivers = {{"viewed \"pricing\"", 0, 0.4, 1, 0.8}, {"days_since_last", 1, 0.2, -1, -0.7}};
  input.candidates = nlohmann::json::array(
      {{{"model", "linear"}, {"selected", true}, {"train_seconds", 0.1},
        {"metrics", {{"roc_auc", 0.7}, {"log_loss", 0.4}, {"ece", 0.01}, {"lift_top_decile", 2.0}}}}});
  std::string html = RenderReportHtml(input);
  EXPECT_NE(html.find("<!DOCTYPE html>"), std::string::npos);
  for (const char* part : {"ROC curve", "Calibration", "Cumulative lift", "Score distribution",
                           "Top drivers", "polyline", "purchase &lt;7d&gt;",
                           "viewed &quot;pricing&quot;", "(selected)"}) {
    EXPECT_NE(html.find(part), std::string::npos) << part;
  }
  // Self-contained: nothing fetched from elsewhere.
  EXPECT_EQ(html.find("http://"), std::string::npos);
  EXPECT_EQ(html.find("https://"), std::string::npos);
  EXPECT_EQ(html.find("<script"), std::string::npos);
}

// Candidates chosen on every stacked cutoff's loss show that loss in a column of its own;
// a failed candidate's cell spans it too.
TEST(ReportHtmlTest, CandidatesChosenOnEveryCutoffShowTheLossCompared) {
  const std::vector<double> p = {0.1, 0.8};
  const std::vector<float> y = {0, 1};
  ReportInput input;
  input.title = "purchase";
  input.predictions = p;
  input.labels = y;
  const nlohmann::json metrics = {{"roc_auc", 0.7}, {"log_loss", 0.4}, {"ece", 0.01}, {"lift_top_decile", 2.0}};
  input.candidates = nlohmann::json::array(
      {{{"model", "linear"}, {"selected", true}, {"train_seconds", 0.1}, {"metrics", metrics},
        {"selection_loss", 0.31234}},
       {{"model", "random_forest"}, {"selected", false}, {"train_seconds", 0.1}, {"error", "boom"}}});
  std::string html = RenderReportHtml(input);
  EXPECT_NE(html.find("Chosen on: log loss, every cutoff"), std::string::npos);
  EXPECT_NE(html.find("<td>0.3123</td>"), std::string::npos);
  EXPECT_NE(html.find("<td colspan=5>failed: boom</td>"), std::string::npos);
  input.candidates[0].erase("selection_loss");  // the newest cutoff's metrics chose: no column
  html = RenderReportHtml(input);
  EXPECT_EQ(html.find("Chosen on"), std::string::npos);
  EXPECT_NE(html.find("<td colspan=4>failed: boom</td>"), std::string::npos);
}

// Cross-validated training records how far the AUC can move over users and the ECE a
// calibrated model would show; the page prints both beside the figures, and nothing when
// the training did not record them.
TEST(ReportHtmlTest, ShowsTheAucIntervalAndTheEceFloorWhenRecorded) {
  const std::vector<double> p = {0.1, 0.8, 0.3, 0.6};
  const std::vector<float> y = {0, 1, 0, 1};
  ReportInput input;
  input.title = "churn";
  input.predictions = p;
  input.labels = y;
  nlohmann::json metrics = {{"roc_auc", 0.7}, {"log_loss", 0.4}, {"ece", 0.05}, {"lift_top_decile", 2.0},
                            {"roc_auc_interval", {0.6330, 0.7621}}, {"ece_floor", 0.0418}};
  input.candidates = nlohmann::json::array(
      {{{"model", "linear"}, {"selected", false}, {"train_seconds", 0.1},
        {"metrics", {{"roc_auc", 0.5}, {"roc_auc_interval", {0.1, 0.2}}, {"ece_floor", 0.9}}}},
       {{"model", "blend"}, {"selected", true}, {"train_seconds", 0.1}, {"metrics", metrics}}});
  std::string html = RenderReportHtml(input);
  EXPECT_NE(html.find("95% interval over users 0.6330 to 0.7621"), std::string::npos);
  EXPECT_NE(html.find("a calibrated model would show about 0.0418 on these users"), std::string::npos);
  EXPECT_EQ(html.find("0.1000 to 0.2000"), std::string::npos) << "the winner's, not another candidate's";
  input.candidates[1]["metrics"].erase("roc_auc_interval");
  input.candidates[1]["metrics"].erase("ece_floor");
  html = RenderReportHtml(input);
  EXPECT_EQ(html.find("interval over users"), std::string::npos);
  EXPECT_EQ(html.find("a calibrated model would show"), std::string::npos);
}

TEST(ReportHtmlTest, RegressionPage) {
  std::vector<double> p = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12};
  std::vector<float> y = {0, 2, 3, 3, 6, 5, 8, 8, 9, 12, 10, 13};
  ReportInput input;
  input.title = "revenue";
  input.task = TaskKind::kRegression;
  input.predictions = p;
  input.labels = y;
  std::string html = RenderReportHtml(input);
  EXPECT_NE(html.find("Calibration by decile"), std::string::npos);
  EXPECT_NE(html.find("Spearman"), std::string::npos);
  // The top 1.2 of 12 users: 13 and a fifth of 10, of 79 in all.
  EXPECT_NE(html.find("19.0% of the actual amount"), std::string::npos);
  // Amounts >= 0 are chosen on the Poisson deviance (their metrics carry it): the column says so.
  input.candidates = nlohmann::json::array(
      {{{"model", "linear"}, {"selected", true}, {"train_seconds", 0.1}, {"selection_loss", 12.5},
        {"metrics", {{"mae", 1.0}, {"rmse", 2.0}, {"r2", 0.5}, {"spearman", 0.9}, {"poisson_deviance", 0.7}}}}});
  html = RenderReportHtml(input);
  EXPECT_NE(html.find("Chosen on: Poisson deviance, every cutoff"), std::string::npos);
  input.candidates[0]["metrics"].erase("poisson_deviance");  // net amounts: RMSE chose
  html = RenderReportHtml(input);
  EXPECT_NE(html.find("Chosen on: RMSE, every cutoff"), std::string::npos);
}

}  // namespace
}  // namespace sibyl::ml
