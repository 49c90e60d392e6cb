// accuracy_bench: how good are sibyl's models, measured (issue 4, "Accuracy" and "Speed").
// For each prediction it runs the whole training pipeline on an ingested store (cohort,
// labels, taxonomy, features, three candidates, calibration, metrics, drivers) and reports
// on the held-out users of that run:
//   (a) the truth: the simulator's true probabilities (with --truth),
//   (b) the baseline: logistic regression on recency and frequency (pipeline/baseline.h),
//       fitted on the same fit users,
//   (c) sibyl: the selected, calibrated model,
// the AUC of each, sibyl's ECE, the share of the (b)->(a) gap that sibyl closes, and the
// per-stage times of the run.
//
//   accuracy_bench --data DIR --prediction FILE_OR_JSON [--prediction ...]
//                  [--truth truth.csv --truth-columns purchase_7d,churn_14d]
//                  [--cutoff T] [--stack K] [--threads N] [--seed S] [--json]
//
// --cutoff T trains at T_train = T (as of T + H), the cutoff the truth file is for;
// without it, as of the store's last event.
#include <cmath>
#include <cstdio>
#include <fstream>
#include <sstream>
#include <string>
#include <unordered_map>
#include <vector>

#include <CLI/CLI.hpp>
#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "common/memory.h"
#include "common/file.h"
#include "common/time.h"
#include "ml/metrics.h"
#include "ml/split.h"
#include "pipeline/baseline.h"
#include "pipeline/train_run.h"
#include "store/event_store.h"

namespace {

using namespace sibyl;

// user_id -> probability, for one column of the truth CSV.
Result<std::unordered_map<std::string, double>> ReadTruthColumn(const std::string& path, const std::string& column) {
  std::ifstream in(path);
  if (!in) return IoError("cannot open {}", path);
  std::string line;
  std::getline(in, line);
  std::vector<std::string> header;
  {
    std::stringstream s(line);
    std::string cell;
    while (std::getline(s, cell, ',')) header.push_back(cell);
  }
  size_t index = header.size();
  for (size_t i = 0; i < header.size(); ++i)
    if (header[i] == column) index = i;
  if (index == header.size()) return NotFound("{} has no column {} (header: {})", path, column, line);
  std::unordered_map<std::string, double> out;
  while (std::getline(in, line)) {
    std::stringstream s(line);
    std::string cell, id;
    for (size_t i = 0; std::getline(s, cell, ','); ++i) {
      if (i == 0) id = cell;
      if (i == index) out[id] = std::strtod(cell.c_str(), nullptr);
    }
  }
  return out;
}

Result<pipeline::PredictionDefinition> LoadDefinition(const std::string& arg) {
  std::string text = arg;
  if (!arg.empty() && arg[0] != '{') {
    ASSIGN_OR_RETURN(text, ReadFile(arg));
  }
  return pipeline::ParsePredictionDefinitionText(text);
}

struct Options {
  std::string data_dir;
  std::vector<std::string> predictions;
  std::string truth;
  std::string truth_columns;
  std::string cutoff;
  int threads = 0;
  uint64_t seed = 42;
  int top_events = 50;
  int stack = pipeline::TrainingSetOptions::kAutoStack;
  bool json = false;
  ml::TrainOptions ml;  // learner settings (defaults: ml's)
};

nlohmann::json RunOne(const EventReader& reader, const pipeline::PredictionDefinition& definition,
                      const Options& options, const std::string& truth_column) {
  pipeline::TrainRequest request;
  request.num_threads = options.threads;
  request.set.seed = options.seed;
  request.set.taxonomy.top_events = options.top_events;
  request.keep_matrix = true;
  request.ml = options.ml;
  request.set.stack = options.stack;
  if (!options.cutoff.empty()) {
    int64_t t = FloorHour(*ParseTime(options.cutoff));
    request.as_of_ms = t + static_cast<int64_t>(definition.horizon_days) * kMsPerDay;
  }
  auto fitted = pipeline::FitPrediction(reader, definition, request);
  if (!fitted.ok()) return {{"prediction", definition.name}, {"error", fitted.status().ToString()}};
  const ml::Dataset& data = fitted->set.data;
  nlohmann::json out = {{"prediction", definition.name},
                        {"train_cutoff", FormatTime(fitted->train_cutoff_ms)},
                        {"rows", data.num_rows()},
                        {"stacked_cutoffs", fitted->set.cutoffs.size() - 1},
                        {"features", data.num_columns()},
                        {"positives", fitted->set.positives},
                        {"model_type", ml::ModelTypeName(fitted->result.model->type())},
                        {"stage_times", pipeline::StageTimesJson(fitted->stage_times)}};
  out["candidates"] = nlohmann::json::array();
  for (const auto& c : fitted->result.candidates) {
    out["candidates"].push_back({{"model", ml::ModelTypeName(c.type)},
                                 {"auc", c.metrics.roc_auc},
                                 {"log_loss", c.metrics.log_loss},
                                 {"seconds", c.train_seconds},
                                 {"training", c.training}});
  }
  double total = 0;
  for (const auto& t : fitted->stage_times) total += t.seconds;
  out["total_seconds"] = total;

  // The rows sibyl's held-out predictions are for, and the baseline's predictions on the
  // same rows from fits that did not see them: on the same split ml::Train made (a pure
  // function of keys, labels and seed), or, when training cross-validated (small
  // cohorts), on the same folds, one fit per fold.
  const std::vector<double>& sibyl_scores = fitted->result.test_predictions;
  const std::vector<uint32_t>& test_rows = fitted->result.test_rows;
  if (test_rows.size() != sibyl_scores.size()) {
    out["error"] = "the training result does not say which rows it held out";
    return out;
  }
  ml::Split split;
  split.test_rows = test_rows;
  std::vector<double> baseline_scores(test_rows.size());
  const nlohmann::json& cv = fitted->result.parameters.value("cross_validation", nlohmann::json());
  if (cv.is_object()) {
    const int k = cv.value("folds", 5);
    std::vector<uint8_t> fold = ml::CrossValidationFolds(data, k, options.seed);
    for (int f = 0; f < k; ++f) {
      ml::Split fold_split;
      std::vector<size_t> where;  // indexes into test_rows
      for (uint32_t r = 0; r < data.num_rows(); ++r)
        if (fold[r] != f) fold_split.fit_rows.push_back(r);
      for (size_t i = 0; i < test_rows.size(); ++i)
        if (fold[test_rows[i]] == f) {
          fold_split.test_rows.push_back(test_rows[i]);
          where.push_back(i);
        }
      if (fold_split.test_rows.empty()) continue;
      auto b = pipeline::RecencyFrequencyBaseline(data, fold_split);
      if (!b.ok()) {
        out["error"] = b.status().ToString();
        return out;
      }
      for (size_t j = 0; j < where.size(); ++j) baseline_scores[where[j]] = (*b)[j];
    }
    out["selection"] = fmt::format("{}-fold cross-validation by user (baseline fitted on the same folds)", k);
  } else {
    ml::SplitOptions split_options;
    split_options.seed = options.seed;
    split_options.max_users = request.set.max_users;
    split = ml::SplitByUser(data, split_options).value();
    if (split.test_rows != test_rows) {
      out["error"] = "held-out rows differ from ml::Train's";
      return out;
    }
    auto b = pipeline::RecencyFrequencyBaseline(data, split);
    if (!b.ok()) {
      out["error"] = b.status().ToString();
      return out;
    }
    baseline_scores = std::move(*b);
  }
  const std::vector<double>* baseline = &baseline_scores;
  // With --stack the held-out users also have rows at earlier cutoffs; everything below
  // is measured on their rows at T_train (the cutoff the truth is for).
  std::vector<size_t> newest;  // indexes into split.test_rows / the held-out predictions
  for (size_t i = 0; i < split.test_rows.size(); ++i)
    if (fitted->set.row_cutoff[split.test_rows[i]] == 0) newest.push_back(i);
  std::vector<float> labels;
  std::vector<double> sibyl_newest, baseline_newest;
  for (size_t i : newest) {
    labels.push_back(data.labels[split.test_rows[i]]);
    sibyl_newest.push_back(sibyl_scores[i]);
    baseline_newest.push_back((*baseline)[i]);
  }
  double positives = 0;
  for (float y : labels) positives += y;
  out["held_out_users"] = labels.size();
  out["all_held_out"] = {{"sibyl_auc", ml::RocAuc(sibyl_newest, labels)},
                         {"baseline_auc", ml::RocAuc(baseline_newest, labels)},
                         {"sibyl_ece", ml::ExpectedCalibrationError(sibyl_newest, labels)},
                         {"sibyl_log_loss", ml::LogLoss(sibyl_newest, labels)},
                         {"baseline_log_loss", ml::LogLoss(baseline_newest, labels)},
                         {"base_rate", labels.empty() ? 0.0 : positives / labels.size()}};
  if (options.truth.empty() || truth_column.empty()) return out;

  auto truth = ReadTruthColumn(options.truth, truth_column);
  if (!truth.ok()) {
    out["error"] = truth.status().ToString();
    return out;
  }
  // Only held-out rows the truth covers (signed-up users; anonymous devices have none).
  std::vector<double> t, b, s;
  std::vector<float> y;
  for (size_t k = 0; k < newest.size(); ++k) {
    auto it = truth->find(fitted->set.row_ids[split.test_rows[newest[k]]]);
    if (it == truth->end()) continue;
    t.push_back(it->second);
    b.push_back(baseline_newest[k]);
    s.push_back(sibyl_newest[k]);
    y.push_back(labels[k]);
  }
  const double truth_auc = ml::RocAuc(t, y), base_auc = ml::RocAuc(b, y), sibyl_auc = ml::RocAuc(s, y);
  out["with_truth"] = {{"users", y.size()},
                       {"truth_column", truth_column},
                       {"truth_auc", truth_auc},
                       {"baseline_auc", base_auc},
                       {"sibyl_auc", sibyl_auc},
                       {"truth_minus_baseline", truth_auc - base_auc},
                       {"gap_closed", truth_auc - base_auc > 0 ? (sibyl_auc - base_auc) / (truth_auc - base_auc) : 0},
                       {"sibyl_ece", ml::ExpectedCalibrationError(s, y)},
                       {"truth_ece", ml::ExpectedCalibrationError(t, y)},
                       {"sibyl_log_loss", ml::LogLoss(s, y)},
                       {"truth_log_loss", ml::LogLoss(t, y)}};
  return out;
}

void Print(const nlohmann::json& r) {
  std::printf("\n== %s\n", r["prediction"].get<std::string>().c_str());
  if (r.contains("error") && !r.contains("all_held_out")) {
    std::printf("  error: %s\n", r["error"].get<std::string>().c_str());
    return;
  }
  std::printf("  T_train %s (+%zu stacked weeks), %zu rows x %zu features, %zu positives, winner %s, whole run %.1f s\n",
              r["train_cutoff"].get<std::string>().c_str(), r["stacked_cutoffs"].get<size_t>(),
              r["rows"].get<size_t>(), r["features"].get<size_t>(),
              r["positives"].get<size_t>(), r["model_type"].get<std::string>().c_str(),
              r["total_seconds"].get<double>());
  std::string stages;
  for (const auto& t : r["stage_times"])
    stages += fmt::format("{}{} {:.2f}", stages.empty() ? "" : ", ", t["stage"].get<std::string>(),
                          t["seconds"].get<double>());
  std::printf("  stages (s): %s\n", stages.c_str());
  for (const auto& c : r["candidates"]) {
    std::string note;
    if (c["training"].contains("rounds")) note = fmt::format(", {} rounds", c["training"]["rounds"].dump());
    if (c["training"].contains("iterations")) note = fmt::format(", {} iterations", c["training"]["iterations"].dump());
    std::printf("  candidate %s: held-out AUC %.4f, log loss %.4f, %.2f s%s\n",
                c["model"].get<std::string>().c_str(), c["auc"].get<double>(),
                c["log_loss"].get<double>(), c["seconds"].get<double>(), note.c_str());
  }
  if (r.contains("error")) std::printf("  error: %s\n", r["error"].get<std::string>().c_str());
  if (!r.contains("all_held_out")) return;
  const auto& a = r["all_held_out"];
  std::printf("  all %zu held-out users: base rate %.4f; AUC sibyl %.4f, baseline %.4f; sibyl ECE %.4f\n",
              r["held_out_users"].get<size_t>(), a["base_rate"].get<double>(), a["sibyl_auc"].get<double>(),
              a["baseline_auc"].get<double>(), a["sibyl_ece"].get<double>());
  if (r.contains("with_truth")) {
    const auto& w = r["with_truth"];
    std::printf("  %zu held-out users with truth: AUC truth %.4f | baseline %.4f | sibyl %.4f; "
                "truth - baseline %.4f; gap closed %.0f%%; ECE sibyl %.4f (truth %.4f)\n",
                w["users"].get<size_t>(), w["truth_auc"].get<double>(), w["baseline_auc"].get<double>(),
                w["sibyl_auc"].get<double>(), w["truth_minus_baseline"].get<double>(),
                100 * w["gap_closed"].get<double>(), w["sibyl_ece"].get<double>(), w["truth_ece"].get<double>());
  }
}

}  // namespace

int main(int argc, char** argv) {
  sibyl::UseSibylHeapSettings();  // as the sibyl binary
  Options options;
  CLI::App app{"accuracy_bench: sibyl vs the truth and a recency-frequency baseline on held-out users"};
  app.add_option("--data", options.data_dir, "data directory of an ingested store")->required();
  app.add_option("--prediction", options.predictions, "prediction definition: JSON text or a file (repeatable)")
      ->required();
  app.add_option("--truth", options.truth, "the simulator's truth CSV");
  app.add_option("--truth-columns", options.truth_columns, "truth column per prediction, comma-separated");
  app.add_option("--cutoff", options.cutoff, "train at T_train = this cutoff (the truth's)");
  app.add_option("--threads", options.threads, "learner threads (0: all)");
  app.add_option("--seed", options.seed, "seed");
  app.add_option("--top-events", options.top_events, "event types with feature columns");
  app.add_option("--stack", options.stack, "earlier weekly cutoffs stacked for training (-1: auto, the default)");
  app.add_flag("--json", options.json, "print JSON lines");
  // Learner settings, for trying other defaults without a rebuild.
  auto& gbt = options.ml.gradient_boosting;
  app.add_option("--gbt-eta", gbt.learning_rate, "boosting learning rate");
  app.add_option("--gbt-depth", gbt.max_depth, "boosting max depth");
  app.add_option("--gbt-min-child-weight", gbt.min_child_weight, "boosting min_child_weight");
  app.add_option("--gbt-colsample", gbt.colsample_bytree, "boosting colsample_bytree");
  app.add_option("--gbt-subsample", gbt.subsample, "boosting subsample");
  app.add_option("--gbt-rounds", gbt.max_rounds, "boosting max rounds");
  app.add_option("--gbt-patience", gbt.early_stopping_rounds, "boosting early-stopping rounds");
  app.add_option("--gbt-max-bin", gbt.max_bin, "boosting histogram bins");
  app.add_option("--rf-trees", options.ml.random_forest.num_trees, "random forest trees");
  app.add_option("--rf-depth", options.ml.random_forest.max_depth, "random forest depth");
  app.add_option("--rf-subsample", options.ml.random_forest.subsample, "random forest row sample");
  app.add_option("--linear-iterations", options.ml.linear.max_iterations, "linear max iterations");
  app.add_option("--linear-tolerance", options.ml.linear.tolerance, "linear relative tolerance");
  app.add_option("--cross-validation-below-users", options.ml.cross_validation_below_users,
                 "cross-validate training below this many users (0: never)");
  app.add_option("--cross-validation-below-cells", options.ml.cross_validation_below_cells,
                 "cross-validate training below this many cells, rows x columns, whatever the users (0: never)");
  CLI11_PARSE(app, argc, argv);

  std::vector<std::string> columns;
  {
    std::stringstream s(options.truth_columns);
    std::string c;
    while (std::getline(s, c, ',')) columns.push_back(c);
  }
  auto store = EventStore::Open(StoreOptions{.data_dir = options.data_dir, .read_only = true});
  if (!store.ok()) {
    std::fprintf(stderr, "accuracy_bench: %s\n", store.status().ToString().c_str());
    return 1;
  }
  auto reader = (*store)->Snapshot();
  int failures = 0;
  for (size_t i = 0; i < options.predictions.size(); ++i) {
    auto definition = LoadDefinition(options.predictions[i]);
    if (!definition.ok()) {
      std::fprintf(stderr, "accuracy_bench: %s\n", definition.status().ToString().c_str());
      return 2;
    }
    nlohmann::json r = RunOne(*reader, *definition, options, i < columns.size() ? columns[i] : "");
    failures += r.contains("error");
    if (options.json) std::printf("%s\n", r.dump().c_str());
    else Print(r);
    std::fflush(stdout);
  }
  return failures ? 1 : 0;
}
