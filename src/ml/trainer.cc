#include "ml/trainer.h"

#include "ml/blend_model.h"
#include "ml/trainer_internal.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <future>
#include <optional>
#include <thread>

#include <stdlib.h>  // getloadavg

namespace sibyl::ml {
namespace {

using namespace trainer_internal;

// Rows of one slice, gathered into a contiguous matrix for XGBoost and for scoring.
struct Slice {
  std::vector<uint32_t> rows;
  std::vector<float> values;
  std::vector<float> labels;
  std::vector<float> weights;  // class-balancing weights; empty when unweighted
};

Status CheckBothClasses(std::span<const float> labels, const char* slice) {
  size_t positives = 0;
  for (float y : labels) positives += y > 0.5f;
  if (positives == 0 || positives == labels.size()) {
    return FailedPrecondition("the {} slice ({} rows) has {} positives: both classes are needed",
                              slice, labels.size(), positives);
  }
  return Status::Ok();
}

// Everything a candidate produced that selection and reporting need.
struct Fitted {
  std::unique_ptr<Model> model;  // null for the blend until it is selected
  IsotonicCalibration calibration;
  std::vector<double> validation_margins, test_margins;  // raw
  std::vector<double> test_predictions;                   // calibrated
};

Result<std::vector<double>> MarginsOf(const Model& model, const Slice& slice,
                                      const XgbMatrix& matrix) {
  if (auto* tree = dynamic_cast<const TreeModel*>(&model)) return tree->PredictMargin(matrix);
  return model.PredictMargin(slice.values);
}

constexpr uint64_t kCalibrationHalfSalt = 0x5a17'9e3d'0000'0007ULL;

// Which validation rows fit the calibration map, and how it is chosen (docs/ML.md,
// "Calibration"): the newest cutoff's rows when they hold at least 20 of each class (their
// base rate is the nearest to scoring's; the stacked cutoffs before it are weeks older),
// else every validation row. Isotonic and Platt maps are both cross-fitted on two halves
// of those users and the one with the lower log loss is kept, as the cross-validated path
// does: with a few hundred validation users isotonic steps overfit, with many thousand
// they beat a sigmoid.
struct CalibrationPlan {
  std::vector<size_t> rows;   // indexes into the validation slice
  std::vector<uint8_t> half;  // per entry of rows: 0 or 1, by user
  bool newest_only = false;
};

CalibrationPlan PlanCalibration(const Dataset& data, const Slice& validation, uint64_t seed) {
  CalibrationPlan plan;
  size_t positives = 0;
  for (size_t i = 0; i < validation.rows.size(); ++i)
    if (data.row_groups.empty() || data.row_groups[validation.rows[i]] == 0) {
      plan.rows.push_back(i);
      positives += validation.labels[i] > 0.5f;
    }
  plan.newest_only = plan.rows.size() < validation.rows.size();
  if (positives < 20 || plan.rows.size() - positives < 20) {
    plan.rows.resize(validation.rows.size());
    for (size_t i = 0; i < plan.rows.size(); ++i) plan.rows[i] = i;
    plan.newest_only = false;
  }
  for (size_t i : plan.rows)
    plan.half.push_back(static_cast<uint8_t>(MixHash(data.user_key(validation.rows[i]), kCalibrationHalfSalt + seed) & 1));
  return plan;
}

// The map for `scores` (validation outputs, all rows of the slice) under `plan`, and
// whether it is Platt's.
std::pair<IsotonicCalibration, bool> FitCalibration(const CalibrationPlan& plan, std::span<const double> scores,
                                                    std::span<const float> labels) {
  std::vector<double> x;
  std::vector<float> y;
  for (size_t i : plan.rows) {
    x.push_back(scores[i]);
    y.push_back(labels[i]);
  }
  if (CrossFitCalibration(x, y, plan.half, 2).PlattWins(y)) {
    if (auto platt = IsotonicCalibration::FitPlatt(x, y)) return {std::move(*platt), true};
  }
  return {IsotonicCalibration::Fit(x, y), false};
}

// The final model on mid-size data (docs/ML.md): once the winner is chosen, the held-out
// users have done their job (choosing and reporting), and below `refit_below_rows` the
// learners are still short of rows, so the winner (a blend: each of its parts) is fitted
// again on the fit and held-out users together; boosting stops early on the validation
// users as before, and the calibration map is fitted again on the validation users'
// scores of the refitted model, which never saw them. The reported metrics stay those of
// the model fitted on the fit users alone: the refitted one learned from the held-out
// users, so it cannot be judged on them (scikit-learn's `refit=True` does the same).
struct Refitted {
  std::unique_ptr<Model> model;
  IsotonicCalibration calibration;
  bool platt = false;
  nlohmann::json training;
};

Result<Refitted> RefitOnFitAndTest(const Dataset& data, const TrainOptions& options,
                                   const std::vector<CandidateResult>& candidates, std::span<const size_t> parts,
                                   std::span<const uint32_t> fit_rows, std::span<const uint32_t> test_rows,
                                   const Slice& validation, const CalibrationPlan& plan, int threads,
                                   int tree_threads) {
  std::vector<uint32_t> rows(fit_rows.begin(), fit_rows.end());
  rows.insert(rows.end(), test_rows.begin(), test_rows.end());
  std::sort(rows.begin(), rows.end());
  const std::vector<uint32_t> no_rows;
  Refitted out;
  std::vector<double> margins(validation.rows.size(), 0.0);
  std::vector<BlendModel::Part> models;
  const double weight = 1.0 / static_cast<double>(parts.size());
  for (size_t i : parts) {
    const ModelType type = candidates[i].type;
    const bool boosting = type == ModelType::kGradientBoostedTrees;
    ASSIGN_OR_RETURN(CandidateFit f, FitCandidate(type, data, rows, boosting ? validation.rows : no_rows, options, tree_threads));
    ASSIGN_OR_RETURN(std::vector<double> m, MarginsOn(*f.model, data, validation.rows, threads));
    for (size_t r = 0; r < margins.size(); ++r) margins[r] += weight * m[r];
    if (parts.size() == 1) out.training = std::move(f.training);
    else out.training[ModelTypeName(type)] = std::move(f.training);
    models.push_back({std::move(f.model), weight});
  }
  if (models.size() == 1) {
    out.model = std::move(models.front().model);
  } else {
    ASSIGN_OR_RETURN(std::unique_ptr<BlendModel> blend, BlendModel::Make(std::move(models)));
    out.model = std::move(blend);
  }
  if (data.kind == TaskKind::kClassification) {
    for (double& v : margins) v = MarginToOutput(data.kind, v);
    auto [map, platt] = FitCalibration(plan, margins, validation.labels);
    out.calibration = std::move(map);
    out.platt = platt;
  }
  return out;
}

}  // namespace

Result<std::vector<double>> TrainResult::Predict(std::span<const float> rows) const {
  if (!model) return FailedPrecondition("no trained model");
  ASSIGN_OR_RETURN(std::vector<double> out, model->PredictMargin(rows));
  for (double& v : out) v = calibration.Apply(MarginToOutput(task, v));
  return out;
}

Result<TrainResult> Train(const Dataset& data, const TrainOptions& options) {
  RETURN_IF_ERROR(data.Validate());
  const uint64_t cells = static_cast<uint64_t>(data.num_rows()) * data.num_columns();
  if (cells < options.cross_validation_below_cells) return TrainCrossValidated(data, options);
  if (options.cross_validation_below_users > 0) {
    std::vector<uint64_t> keys(data.num_rows());
    for (size_t r = 0; r < keys.size(); ++r) keys[r] = data.user_key(r);
    std::sort(keys.begin(), keys.end());
    const size_t users = static_cast<size_t>(std::unique(keys.begin(), keys.end()) - keys.begin());
    if (users < options.cross_validation_below_users) return TrainCrossValidated(data, options);
  }
  if (!options.train_linear && !options.train_random_forest && !options.train_gradient_boosting) {
    return InvalidArgument("no candidate algorithm is enabled");
  }
  TrainResult result;
  result.task = data.kind;
  StageTimer timer(result.stage_times, options.on_stage);
  const int threads = ResolveThreads(options.num_threads);
  const bool classify = data.kind == TaskKind::kClassification;

  timer.Start("split");
  SplitOptions split_options = options.split;
  split_options.seed = options.seed;
  ASSIGN_OR_RETURN(Split split, SplitByUser(data, split_options));
  result.num_users = split.num_users;
  result.num_users_sampled_out = split.num_users_sampled_out;
  result.num_fit_rows = split.fit_rows.size();
  result.num_validation_rows = split.validation_rows.size();
  result.num_test_rows = split.test_rows.size();
  if (split.fit_rows.empty() || split.validation_rows.empty() || split.test_rows.empty()) {
    return FailedPrecondition("too few users to split: {} fit, {} validation, {} test rows",
                              split.fit_rows.size(), split.validation_rows.size(),
                              split.test_rows.size());
  }

  timer.Start("matrices");
  Slice fit, validation, test;
  fit.rows = std::move(split.fit_rows);
  validation.rows = std::move(split.validation_rows);
  test.rows = std::move(split.test_rows);
  for (Slice* s : {&fit, &validation, &test}) s->labels = GatherLabels(data, s->rows);
  if (classify) {
    RETURN_IF_ERROR(CheckBothClasses(fit.labels, "fit"));
    RETURN_IF_ERROR(CheckBothClasses(validation.labels, "validation"));
    RETURN_IF_ERROR(CheckBothClasses(test.labels, "test"));
    if (options.balance_classes) {
      auto w = BalancingWeights(fit.labels);
      fit.weights = WeightsFor(fit.labels, w);
      validation.weights = WeightsFor(validation.labels, w);
    }
  }
  double base_score = 0.5;
  if (!classify) {
    double sum = 0;
    for (float y : fit.labels) sum += y;
    base_score = sum / fit.labels.size();
  }
  const size_t p = data.num_columns();
  const bool any_trees = options.train_random_forest || options.train_gradient_boosting;
  std::optional<XgbMatrix> fit_matrix, validation_matrix;
  validation.values = GatherRows(data, validation.rows);
  test.values = GatherRows(data, test.rows);
  ASSIGN_OR_RETURN(XgbMatrix test_matrix, XgbMatrix::FromDense(test.values, test.rows.size(), p, threads));
  ASSIGN_OR_RETURN(validation_matrix, XgbMatrix::FromDense(validation.values, validation.rows.size(), p, threads));
  RETURN_IF_ERROR(validation_matrix->SetLabels(validation.labels));
  if (!validation.weights.empty()) RETURN_IF_ERROR(validation_matrix->SetWeights(validation.weights));
  if (any_trees) {
    // The fit rows go straight from the dataset into XGBoost's sparse form (no dense
    // copy: at 150k rows x 800 columns that copy alone took seconds of page faults).
    ASSIGN_OR_RETURN(fit_matrix, XgbMatrix::FromRows(data.values, p, fit.rows, threads));
    RETURN_IF_ERROR(fit_matrix->SetLabels(fit.labels));
    if (!fit.weights.empty()) RETURN_IF_ERROR(fit_matrix->SetWeights(fit.weights));
  }
  const CalibrationPlan calibration_plan = PlanCalibration(data, validation, options.seed);
  TreeTrainingData tree_data;
  tree_data.fit = fit_matrix ? &*fit_matrix : nullptr;
  tree_data.validation = &*validation_matrix;
  tree_data.num_features = p;
  tree_data.task = data.kind;
  tree_data.base_score = base_score;
  tree_data.seed = options.seed;
  tree_data.num_threads = TreeThreads(options.num_threads);

  // When the tree learners run on one thread (a busy machine) and more threads were
  // allowed, the linear model (plain threads, no OpenMP) is fitted on one thread at the
  // same time as the trees; its result is the same for any thread count.
  double linear_seconds = 0;
  std::future<Result<std::unique_ptr<LinearModel>>> linear_future;
  const bool linear_alongside = options.train_linear && any_trees && tree_data.num_threads == 1 &&
                                threads > 1;
  if (linear_alongside) {
    LinearOptions linear = options.linear;
    linear.num_threads = 1;
    linear_future = std::async(std::launch::async, [&data, &fit, linear, &linear_seconds] {
      auto start = Clock::now();
      auto trained = LinearModel::Train(data, fit.rows, fit.weights, linear);
      linear_seconds = SecondsSince(start);
      return trained;
    });
  }

  // A candidate's calibration and test metrics from its raw margins. Calibration is
  // fitted on the validation slice (never on the fit rows, whose scores are optimistic),
  // then judged on the test slice.
  auto evaluate = [&](Fitted& f, CandidateResult& candidate) {
    std::vector<double> val_out = f.validation_margins, test_out = f.test_margins;
    for (double& v : val_out) v = MarginToOutput(data.kind, v);
    for (double& v : test_out) v = MarginToOutput(data.kind, v);
    if (classify) {
      candidate.uncalibrated_log_loss = LogLoss(test_out, test.labels);
      auto [map, platt] = FitCalibration(calibration_plan, val_out, validation.labels);
      f.calibration = std::move(map);
      candidate.training["calibration"] = platt ? "platt" : "isotonic";
      f.calibration.ApplyInPlace(test_out);
      candidate.metrics = EvaluateClassifier(test_out, test.labels);
    } else {
      candidate.regression_metrics = EvaluateRegressor(test_out, test.labels);
    }
    f.test_predictions = std::move(test_out);
  };
  auto loss_of = [&](size_t i) { return HeldOutLoss(result.candidates[i], data.kind); };

  std::vector<Fitted> fitted;
  auto train_candidate = [&](ModelType type) -> Status {
    timer.Start(ModelTypeName(type));
    auto start = Clock::now();
    CandidateResult candidate;
    candidate.type = type;
    Result<std::unique_ptr<Model>> model = Status(StatusCode::kInternal, "not trained");
    if (type == ModelType::kBgNbd) {
      const TrainOptions::BgNbdCandidate& b = *options.bgnbd;
      auto made = BgNbdModel::Make(data.kind, p, b.output, b.columns, b.prior);
      if (made.ok()) model = std::unique_ptr<Model>(std::move(made).value());
      else model = made.status();
      candidate.training = {{"fitted", "nothing: the outcome family's BG/NBD columns, read as a score"}};
    } else if (type == ModelType::kLinear || type == ModelType::kOutcomeLinear) {
      LinearOptions linear = options.linear;
      linear.num_threads = threads;
      if (type == ModelType::kOutcomeLinear) linear.only_columns = options.outcome_columns;
      auto trained = type == ModelType::kLinear && linear_future.valid()
                         ? linear_future.get()
                         : LinearModel::Train(data, fit.rows, fit.weights, linear);
      if (trained.ok()) {
        (*trained)->set_type(type);
        candidate.training = (*trained)->training_summary();
        model = std::unique_ptr<Model>(std::move(trained).value());
      } else {
        model = trained.status();
      }
    } else {
      auto trained = type == ModelType::kRandomForest
                         ? TreeModel::TrainRandomForest(tree_data, options.random_forest)
                         : TreeModel::TrainGradientBoosting(tree_data, options.gradient_boosting);
      if (trained.ok()) {
        candidate.training = (*trained)->training_summary();
        model = std::unique_ptr<Model>(std::move(trained).value());
      } else {
        model = trained.status();
      }
    }
    Fitted f;
    Status outcome = model.status();
    if (outcome.ok()) {
      f.model = std::move(model).value();
      auto validation_margins = MarginsOf(*f.model, validation, *validation_matrix);
      auto test_margins = MarginsOf(*f.model, test, test_matrix);
      outcome = !validation_margins.ok() ? validation_margins.status() : test_margins.status();
      if (outcome.ok()) {
        f.validation_margins = std::move(validation_margins).value();
        f.test_margins = std::move(test_margins).value();
        evaluate(f, candidate);
      }
    }
    if (!outcome.ok()) {
      candidate.error = outcome.ToString();
      f.model.reset();
    }
    candidate.train_seconds = SecondsSince(start);
    result.candidates.push_back(std::move(candidate));
    fitted.push_back(std::move(f));
    return Status::Ok();
  };
  if (options.train_linear && !linear_alongside) RETURN_IF_ERROR(train_candidate(ModelType::kLinear));
  if (options.train_linear && !options.outcome_columns.empty())
    RETURN_IF_ERROR(train_candidate(ModelType::kOutcomeLinear));
  if (options.train_random_forest) RETURN_IF_ERROR(train_candidate(ModelType::kRandomForest));
  if (options.train_gradient_boosting) RETURN_IF_ERROR(train_candidate(ModelType::kGradientBoostedTrees));
  if (options.bgnbd) RETURN_IF_ERROR(train_candidate(ModelType::kBgNbd));
  if (linear_alongside) {
    // Collected last (its stage time is the wait for it), listed first as always.
    RETURN_IF_ERROR(train_candidate(ModelType::kLinear));
    result.candidates.back().train_seconds += linear_seconds;  // fit time, not just the wait
    std::rotate(result.candidates.begin(), result.candidates.end() - 1, result.candidates.end());
    std::rotate(fitted.begin(), fitted.end() - 1, fitted.end());
  }
  fit_matrix.reset();
  validation_matrix.reset();

  // The blend of the two best candidates (their margins averaged), as on the
  // cross-validated path: the candidates' errors are partly independent, and on real
  // purchase logs the mean of a tree model and a compact linear one is often better than
  // either. It competes on the same test loss; its calibration is fitted on the
  // validation slice like any candidate's.
  const std::vector<size_t> blend_parts =
      options.consider_blend ? TwoLowestLosses(result.candidates, data.kind) : std::vector<size_t>{};
  if (!blend_parts.empty()) {
    timer.Start("blend");
    Fitted f;
    CandidateResult candidate;
    candidate.type = ModelType::kBlend;
    f.validation_margins.assign(validation.rows.size(), 0);
    f.test_margins.assign(test.rows.size(), 0);
    for (size_t i : blend_parts) {
      for (size_t r = 0; r < f.validation_margins.size(); ++r) f.validation_margins[r] += fitted[i].validation_margins[r] / 2;
      for (size_t r = 0; r < f.test_margins.size(); ++r) f.test_margins[r] += fitted[i].test_margins[r] / 2;
    }
    evaluate(f, candidate);
    candidate.training["parts"] = {ModelTypeName(result.candidates[blend_parts[0]].type),
                                   ModelTypeName(result.candidates[blend_parts[1]].type)};
    candidate.training["weights"] = "equal";
    result.candidates.push_back(std::move(candidate));
    fitted.push_back(std::move(f));
  }

  // Selection: lowest calibrated log loss (regression: RegressionSelectionLoss) on held-out users;
  // on a tie the earlier, simpler candidate stays.
  timer.Start("select");
  std::optional<size_t> best;
  for (size_t i = 0; i < fitted.size(); ++i) {
    if (!result.candidates[i].error.empty()) continue;
    if (!best || loss_of(i) < loss_of(*best)) best = i;
  }
  if (!best) return EveryCandidateFailed(result.candidates);
  result.selected = *best;
  result.candidates[*best].selected = true;
  if (result.candidates[*best].type == ModelType::kBlend) {
    std::vector<BlendModel::Part> parts;
    for (size_t i : blend_parts) parts.push_back({std::move(fitted[i].model), 0.5});
    ASSIGN_OR_RETURN(std::unique_ptr<BlendModel> blend, BlendModel::Make(std::move(parts)));
    fitted[*best].model = std::move(blend);
  }
  result.model = std::move(fitted[*best].model);
  result.calibration = std::move(fitted[*best].calibration);
  nlohmann::json final_model = {{"fitted_on", "fit users"}};
  if (options.refit_below_rows > 0 && data.num_rows() < options.refit_below_rows) {
    timer.Start("refit");
    std::vector<size_t> parts = result.candidates[*best].type == ModelType::kBlend ? blend_parts
                                                                                    : std::vector<size_t>{*best};
    Result<Refitted> refitted = RefitOnFitAndTest(data, options, result.candidates, parts, fit.rows, test.rows,
                                                  validation, calibration_plan, threads, tree_data.num_threads);
    if (refitted.ok()) {
      result.model = std::move(refitted->model);
      result.calibration = std::move(refitted->calibration);
      result.candidates[*best].training["final"] = refitted->training;
      final_model = {{"fitted_on", "fit and held-out users"},
                     {"rows", fit.rows.size() + test.rows.size()},
                     {"calibration", refitted->platt ? "platt" : "isotonic"}};
    } else {
      // The chosen model, fitted on the fit users, is still a sound model.
      final_model["refit_error"] = refitted.status().ToString();
    }
  }
  result.test_predictions = std::move(fitted[*best].test_predictions);
  result.test_labels = test.labels;
  result.test_rows = test.rows;
  result.metrics = result.candidates[*best].metrics;
  result.regression_metrics = result.candidates[*best].regression_metrics;

  // Drivers from a deterministic, evenly spread sample of held-out rows: exact TreeSHAP
  // costs grow with trees x leaves x depth^2 per row, so a few thousand rows suffice.
  timer.Start("drivers");
  {
    const size_t n = test.rows.size();
    const size_t k = std::min(n, std::max<size_t>(1, options.driver_sample_rows));
    std::vector<float> sample(k * p);
    for (size_t i = 0; i < k; ++i) {
      size_t r = i * n / k;
      std::copy_n(test.values.data() + r * p, p, sample.data() + i * p);
    }
    ASSIGN_OR_RETURN(DriverSummary drivers,
                     ComputeDriverSummary(*result.model, sample, data.feature_names, options.column_topics));
    result.drivers = std::move(drivers.columns);
    result.topic_drivers = std::move(drivers.topics);
  }
  timer.Stop();

  result.parameters = {
      {"seed", options.seed},
      {"num_threads", threads},
      {"tree_threads", tree_data.num_threads},
      {"task", TaskKindName(data.kind)},
      {"balance_classes", options.balance_classes},
      {"split", {{"test_fraction", split_options.test_fraction},
                 {"validation_fraction", split_options.validation_fraction},
                 {"max_users", split_options.max_users}}},
      {"calibration", {{"calibrated_on", calibration_plan.newest_only ? "newest cutoff" : "every cutoff"},
                       {"calibration_rows", calibration_plan.rows.size()}}},
      {"final_model", std::move(final_model)},
      {"driver_sample_rows", options.driver_sample_rows},
      {"selected", ModelTypeName(result.candidates[*best].type)}};
  return result;
}

nlohmann::json CandidatesToJson(const TrainResult& result) {
  nlohmann::json table = nlohmann::json::array();
  for (const auto& c : result.candidates) {
    nlohmann::json row = {{"model", ModelTypeName(c.type)},
                          {"selected", c.selected},
                          {"train_seconds", c.train_seconds},
                          {"training", c.training}};
    if (c.selection_loss) row["selection_loss"] = *c.selection_loss;
    if (!c.error.empty()) {
      row["error"] = c.error;
    } else if (result.task == TaskKind::kClassification) {
      row["metrics"] = c.metrics;
      row["uncalibrated_log_loss"] = c.uncalibrated_log_loss;
    } else {
      row["metrics"] = c.regression_metrics;
    }
    table.push_back(std::move(row));
  }
  return table;
}

}  // namespace sibyl::ml
