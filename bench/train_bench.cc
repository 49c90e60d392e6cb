// Training benchmark: synthetic users with a known signal, the whole ml/ training run
// (split, three candidates, calibration, metrics, SHAP drivers), per-stage times.
//
//   train_bench [--rows 100000] [--columns 420] [--threads 0] [--seed 42]
//               [--html report.html] [--bundle DIR]
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>

#include "common/memory.h"
#include "common/file.h"
#include "ml/bundle.h"
#include "ml/metrics.h"
#include "ml/report_html.h"
#include "ml/synthetic.h"
#include "ml/trainer.h"

namespace {

double Seconds(std::chrono::steady_clock::time_point since) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - since).count();
}

}  // namespace

int main(int argc, char** argv) {
  sibyl::UseSibylHeapSettings();  // as the sibyl binary
  using namespace sibyl::ml;
  SyntheticOptions synthetic;
  synthetic.num_rows = 100'000;
  synthetic.num_columns = 420;
  synthetic.nonlinear = true;
  synthetic.missing_rate = 0.02;
  synthetic.intercept = -3;
  TrainOptions options;
  std::string html_path, bundle_dir;
  bool revenue = false;
  for (int i = 1; i < argc; ++i) {
    std::string_view arg = argv[i];
    auto next = [&]() -> const char* {
      if (i + 1 >= argc) {
        std::fprintf(stderr, "%s needs a value\n", argv[i]);
        std::exit(2);
      }
      return argv[++i];
    };
    if (arg == "--rows") synthetic.num_rows = std::strtoull(next(), nullptr, 10);
    else if (arg == "--columns") synthetic.num_columns = std::strtoull(next(), nullptr, 10);
    else if (arg == "--threads") options.num_threads = std::atoi(next());
    else if (arg == "--seed") options.seed = std::strtoull(next(), nullptr, 10);
    else if (arg == "--html") html_path = next();
    else if (arg == "--bundle") bundle_dir = next();
    else if (arg == "--revenue") revenue = true;
    // Hyper-parameter overrides, for measuring the fixed defaults' cost; not for tuning.
    else if (arg == "--eta") options.gradient_boosting.learning_rate = std::atof(next());
    else if (arg == "--max-bin") options.gradient_boosting.max_bin = options.random_forest.max_bin = std::atoi(next());
    else if (arg == "--colsample") options.gradient_boosting.colsample_bytree = std::atof(next());
    else if (arg == "--rf-trees") options.random_forest.num_trees = std::atoi(next());
    else if (arg == "--rf-depth") options.random_forest.max_depth = std::atoi(next());
    else if (arg == "--driver-rows") options.driver_sample_rows = std::strtoull(next(), nullptr, 10);
    else {
      std::fprintf(stderr,
                   "usage: train_bench [--rows N] [--columns N] [--threads N] [--seed N] "
                   "[--revenue] [--html FILE] [--bundle DIR]\n");
      return 2;
    }
  }
  if (revenue) synthetic.kind = TaskKind::kRegression, synthetic.intercept = -1;

  auto start = std::chrono::steady_clock::now();
  SyntheticData data = MakeSynthetic(synthetic);
  std::printf("data: %zu rows x %zu columns, generated in %.2f s\n", data.data.num_rows(),
              data.data.num_columns(), Seconds(start));

  start = std::chrono::steady_clock::now();
  auto result = Train(data.data, options);
  const double total = Seconds(start);
  if (!result.ok()) {
    std::fprintf(stderr, "training failed: %s\n", result.status().ToString().c_str());
    return 1;
  }
  std::printf("rows: fit %zu, validation %zu, test %zu; threads %d\n", result->num_fit_rows,
              result->num_validation_rows, result->num_test_rows, ResolveThreads(options.num_threads));
  std::printf("\n%-24s %8s\n", "stage", "seconds");
  for (const auto& t : result->stage_times) std::printf("%-24s %8.3f\n", t.stage.c_str(), t.seconds);
  std::printf("%-24s %8.3f\n", "total", total);

  std::printf("\n%-24s %8s %8s %8s %8s %8s\n", "candidate", "auc", "logloss", "ece", "lift10",
              "rounds");
  for (const auto& c : result->candidates) {
    if (!c.error.empty()) {
      std::printf("%-24s failed: %s\n", ModelTypeName(c.type), c.error.c_str());
      continue;
    }
    int rounds = c.training.value("rounds", 0);
    if (result->task == TaskKind::kClassification) {
      std::printf("%-24s %8.4f %8.4f %8.4f %8.2f %8d%s\n", ModelTypeName(c.type), c.metrics.roc_auc,
                  c.metrics.log_loss, c.metrics.ece, c.metrics.lift_top_decile, rounds,
                  c.selected ? "  <- selected" : "");
    } else {
      std::printf("%-24s r2 %.4f rmse %.4g spearman %.4f%s\n", ModelTypeName(c.type),
                  c.regression_metrics.r2, c.regression_metrics.rmse, c.regression_metrics.spearman,
                  c.selected ? "  <- selected" : "");
    }
  }
  if (result->task == TaskKind::kClassification) {
    // The ceiling: the generator's own probabilities on all rows.
    std::printf("%-24s %8.4f (all rows)\n", "true probabilities",
                RocAuc(data.true_probability, data.data.labels));
  }
  std::printf("\ntop drivers:\n");
  for (size_t i = 0; i < std::min<size_t>(8, result->drivers.size()); ++i) {
    const auto& d = result->drivers[i];
    std::printf("  %-16s %.4f %s\n", d.feature.c_str(), d.importance,
                d.direction > 0 ? "+" : d.direction < 0 ? "-" : "?");
  }

  if (!html_path.empty()) {
    ReportInput input;
    input.title = "train_bench";
    input.task = result->task;
    input.predictions = result->test_predictions;
    input.labels = result->test_labels;
    input.drivers = result->drivers;
    input.candidates = CandidatesToJson(*result);
    auto st = sibyl::WriteFileAtomic(html_path, RenderReportHtml(input));
    if (!st.ok()) std::fprintf(stderr, "%s\n", st.ToString().c_str());
  }
  if (!bundle_dir.empty()) {
    start = std::chrono::steady_clock::now();
    ModelBundle bundle = MakeBundle(std::move(result).value(), data.data.feature_names, options.seed);
    auto st = WriteBundle(bundle_dir, bundle);
    if (!st.ok()) {
      std::fprintf(stderr, "%s\n", st.ToString().c_str());
      return 1;
    }
    std::printf("bundle written to %s in %.3f s\n", bundle_dir.c_str(), Seconds(start));
  }
  return 0;
}
