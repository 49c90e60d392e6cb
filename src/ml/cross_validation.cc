// Training on small data: k-fold cross-validation by user (docs/ML.md, "Small data").
//
// With a few thousand users, one 64/16/20 split leaves a few hundred users to choose the
// winner and a few hundred more to fit the calibration: both decisions are then mostly
// noise (retraining with another seed moved held-out AUC by up to 0.15 on ~800 users).
// Here every user is held out exactly once: each candidate is fitted k times on the other
// folds, the winner is chosen on all users' out-of-fold scores, the calibration map is
// fitted on them, and the final model is the mean of the winner's k fold models.
//
// With stacked cutoffs the two decisions use different rows. The winner is chosen on every
// row's out-of-fold score: under deep stacking the newest cutoff is a twelfth of the rows,
// and choosing among five candidates on a thousand users is the noise this file exists to
// remove. The calibration map (and the reported metrics) keep the newest cutoff's rows:
// its base rate is the nearest to the one scoring will meet (docs/ML.md, "Small data").
#include <algorithm>
#include <cmath>
#include <limits>
#include <map>
#include <optional>

#include "ml/blend_model.h"
#include "ml/trainer.h"
#include "ml/trainer_internal.h"

namespace sibyl::ml {
namespace trainer_internal {

// Raw margins (log-odds or amounts) of `model` on `rows` of `data`.
Result<std::vector<double>> MarginsOn(const Model& model, const Dataset& data, std::span<const uint32_t> rows,
                                      int threads) {
  std::vector<float> values = GatherRows(data, rows);
  std::vector<double> margins;
  if (auto* tree = dynamic_cast<const TreeModel*>(&model)) {
    ASSIGN_OR_RETURN(XgbMatrix matrix, XgbMatrix::FromDense(values, rows.size(), data.num_columns(), threads));
    ASSIGN_OR_RETURN(margins, tree->PredictMargin(matrix));
  } else {
    ASSIGN_OR_RETURN(margins, model.PredictMargin(values));
  }
  return margins;
}

Result<CandidateFit> FitCandidate(ModelType type, const Dataset& data, std::vector<uint32_t> fit,
                                  const std::vector<uint32_t>& stop, const TrainOptions& options, int tree_threads) {
  const bool classify = data.kind == TaskKind::kClassification;
  if (type != ModelType::kGradientBoostedTrees) {
    fit.insert(fit.end(), stop.begin(), stop.end());
    std::sort(fit.begin(), fit.end());
  }
  std::vector<float> fit_labels = GatherLabels(data, fit), stop_labels = GatherLabels(data, stop);
  std::vector<float> fit_weights, stop_weights;
  if (classify && options.balance_classes) {
    auto w = BalancingWeights(fit_labels);
    fit_weights = WeightsFor(fit_labels, w);
    stop_weights = WeightsFor(stop_labels, w);
  }
  CandidateFit out;
  if (type == ModelType::kBgNbd) {
    const TrainOptions::BgNbdCandidate& b = *options.bgnbd;
    ASSIGN_OR_RETURN(out.model, BgNbdModel::Make(data.kind, data.num_columns(), b.output, b.columns, b.prior));
    out.training = {{"fitted", "nothing: the outcome family's BG/NBD columns, read as a score"}};
    return out;
  }
  if (type == ModelType::kLinear || type == ModelType::kOutcomeLinear) {
    LinearOptions linear = options.linear;
    linear.num_threads = ResolveThreads(options.num_threads);
    if (type == ModelType::kOutcomeLinear) linear.only_columns = options.outcome_columns;
    ASSIGN_OR_RETURN(std::unique_ptr<LinearModel> model, LinearModel::Train(data, fit, fit_weights, linear));
    model->set_type(type);
    out.training = model->training_summary();
    out.model = std::move(model);
    return out;
  }
  const int threads = tree_threads;
  ASSIGN_OR_RETURN(XgbMatrix fit_matrix, XgbMatrix::FromRows(data.values, data.num_columns(), fit, threads));
  RETURN_IF_ERROR(fit_matrix.SetLabels(fit_labels));
  if (!fit_weights.empty()) RETURN_IF_ERROR(fit_matrix.SetWeights(fit_weights));
  std::optional<XgbMatrix> stop_matrix;
  TreeTrainingData tree;
  tree.fit = &fit_matrix;
  tree.num_features = data.num_columns();
  tree.task = data.kind;
  tree.seed = options.seed;
  tree.num_threads = threads;
  tree.base_score = 0.5;
  if (!classify) {
    double sum = 0;
    for (float y : fit_labels) sum += y;
    tree.base_score = sum / static_cast<double>(fit_labels.size());
  }
  std::unique_ptr<TreeModel> model;
  if (type == ModelType::kRandomForest) {
    ASSIGN_OR_RETURN(model, TreeModel::TrainRandomForest(tree, options.random_forest));
  } else {
    std::vector<float> values = GatherRows(data, stop);
    ASSIGN_OR_RETURN(stop_matrix, XgbMatrix::FromDense(values, stop.size(), data.num_columns(), threads));
    RETURN_IF_ERROR(stop_matrix->SetLabels(stop_labels));
    if (!stop_weights.empty()) RETURN_IF_ERROR(stop_matrix->SetWeights(stop_weights));
    tree.validation = &*stop_matrix;
    ASSIGN_OR_RETURN(model, TreeModel::TrainGradientBoosting(tree, options.gradient_boosting));
  }
  out.training = model->training_summary();
  out.model = std::move(model);
  return out;
}

}  // namespace trainer_internal

namespace {

using namespace trainer_internal;

constexpr uint64_t kFoldSalt = 0x5a17'9e3d'0000'0003ULL;

// The fold of every row. Users are stratified by whether any of their rows is positive
// (regression: any amount > 0), ordered by a seeded hash within each stratum and dealt
// round-robin, so every fold holds the same share of positives to one user, and all rows
// of one user (stacked cutoffs) share a fold.
std::vector<uint8_t> AssignFolds(const Dataset& data, int folds, uint64_t seed, uint64_t& num_users) {
  std::map<uint64_t, bool> positive;  // ordered: the result must not depend on hashing
  for (size_t r = 0; r < data.num_rows(); ++r) {
    bool& p = positive[data.user_key(r)];
    p = p || data.labels[r] > 0;
  }
  num_users = positive.size();
  std::vector<std::pair<uint64_t, uint64_t>> strata[2];  // (hash, key)
  for (const auto& [key, p] : positive) strata[p].emplace_back(MixHash(key, kFoldSalt + seed), key);
  std::map<uint64_t, uint8_t> fold_of_user;
  size_t dealt = 0;
  for (auto& stratum : strata) {
    std::sort(stratum.begin(), stratum.end());
    for (const auto& [hash, key] : stratum) fold_of_user[key] = static_cast<uint8_t>(dealt++ % folds);
  }
  std::vector<uint8_t> fold(data.num_rows());
  for (size_t r = 0; r < data.num_rows(); ++r) fold[r] = fold_of_user[data.user_key(r)];
  return fold;
}

// The loss selection compares over every row: out-of-fold log loss after a calibration map
// cross-fitted on the same folds (Platt's or isotonic, the lower), or for amounts
// RegressionSelectionLoss (the Poisson deviance, RMSE with amounts below 0). Calibrated, so
// that a candidate whose raw scores sit at another base rate is not penalised for what the
// map will correct; on every stacked cutoff at once, so one map for their mixed base rates,
// the same handicap for every candidate.
double EveryRowLoss(TaskKind kind, std::span<const double> margins, std::span<const float> labels,
                    std::span<const uint8_t> fold, int folds) {
  std::vector<double> output(margins.size());
  for (size_t r = 0; r < margins.size(); ++r) output[r] = MarginToOutput(kind, margins[r]);
  if (kind != TaskKind::kClassification) return RegressionSelectionLoss(EvaluateRegressor(output, labels));
  CrossFittedCalibration fitted = CrossFitCalibration(output, labels, fold, folds);
  return LogLoss(fitted.PlattWins(labels) ? fitted.by_platt : fitted.by_isotonic, labels);
}

// A candidate's out-of-fold record.
struct OutOfFold {
  std::vector<double> margin;      // per row: margin of the model that did not see it
  std::vector<double> calibrated;  // per calibration row, cross-fitted (see below)
  bool platt = false;              // calibrated by Platt scaling rather than isotonic
};

}  // namespace

std::vector<uint8_t> CrossValidationFolds(const Dataset& data, int folds, uint64_t seed) {
  uint64_t num_users = 0;
  return AssignFolds(data, std::clamp(folds, 3, 10), seed, num_users);
}

Result<TrainResult> TrainCrossValidated(const Dataset& data, const TrainOptions& options) {
  RETURN_IF_ERROR(data.Validate());
  const int k = std::clamp(options.cross_validation_folds, 3, 10);
  const bool classify = data.kind == TaskKind::kClassification;
  TrainResult result;
  result.task = data.kind;
  StageTimer timer(result.stage_times, options.on_stage);
  const int threads = ResolveThreads(options.num_threads);
  const int tree_threads = TreeThreads(options.num_threads);

  timer.Start("split");
  std::vector<uint8_t> fold = AssignFolds(data, k, options.seed, result.num_users);
  const size_t n = data.num_rows();
  std::vector<std::vector<uint32_t>> rows_of_fold(k);
  for (uint32_t r = 0; r < n; ++r) rows_of_fold[fold[r]].push_back(r);
  for (int f = 0; f < k; ++f)
    if (rows_of_fold[f].empty()) return FailedPrecondition("too few users for {}-fold cross-validation", k);
  // Calibration and reported metrics: the newest cutoff's rows when there are enough of
  // them (its base rate is the nearest to scoring's), else every row.
  std::vector<uint32_t> calibration_rows;
  for (uint32_t r = 0; r < n; ++r)
    if (data.row_groups.empty() || data.row_groups[r] == 0) calibration_rows.push_back(r);
  size_t calibration_positives = 0;
  for (uint32_t r : calibration_rows) calibration_positives += data.labels[r] > 0;
  const bool newest_only = calibration_rows.size() < n;
  if (classify && (calibration_positives < 20 || calibration_rows.size() - calibration_positives < 20)) {
    calibration_rows.resize(n);
    for (uint32_t r = 0; r < n; ++r) calibration_rows[r] = r;
  }
  const bool calibrated_on_newest = newest_only && calibration_rows.size() < n;
  std::vector<float> calibration_labels = GatherLabels(data, calibration_rows);
  if (classify) {
    size_t positives = 0;
    for (float y : data.labels) positives += y > 0;
    if (positives == 0 || positives == n) return FailedPrecondition("both classes are needed ({} positives)", positives);
  }

  std::vector<ModelType> types;
  if (options.train_linear) types.push_back(ModelType::kLinear);
  if (options.train_linear && !options.outcome_columns.empty()) types.push_back(ModelType::kOutcomeLinear);
  if (options.train_random_forest) types.push_back(ModelType::kRandomForest);
  if (options.train_gradient_boosting) types.push_back(ModelType::kGradientBoostedTrees);
  if (options.bgnbd) types.push_back(ModelType::kBgNbd);
  if (types.empty()) return InvalidArgument("no candidate algorithm is enabled");

  // Out-of-fold metrics of a candidate from its margins: cross-fitted calibration (each
  // fold's scores go through a map fitted on the other folds' out-of-fold scores, so the
  // reported calibration is out of sample too), on the calibration rows.
  auto evaluate = [&](OutOfFold& o, CandidateResult& candidate) {
    std::vector<double> raw(calibration_rows.size());
    for (size_t i = 0; i < calibration_rows.size(); ++i)
      raw[i] = MarginToOutput(data.kind, o.margin[calibration_rows[i]]);
    // Selection on every row when the calibration rows are fewer (see the top of the file).
    if (calibrated_on_newest) candidate.selection_loss = EveryRowLoss(data.kind, o.margin, data.labels, fold, k);
    if (!classify) {
      o.calibrated = raw;
      candidate.regression_metrics = EvaluateRegressor(raw, calibration_labels);
      return;
    }
    // Both maps are cross-fitted; the one with the lower out-of-fold log loss is kept
    // (isotonic on a tie, or when Platt cannot be fitted on some fold).
    std::vector<uint8_t> part(calibration_rows.size());
    for (size_t i = 0; i < calibration_rows.size(); ++i) part[i] = fold[calibration_rows[i]];
    CrossFittedCalibration fitted = CrossFitCalibration(raw, calibration_labels, part, k);
    o.platt = fitted.PlattWins(calibration_labels);
    o.calibrated = o.platt ? std::move(fitted.by_platt) : std::move(fitted.by_isotonic);
    candidate.uncalibrated_log_loss = LogLoss(raw, calibration_labels);
    candidate.metrics = EvaluateClassifier(o.calibrated, calibration_labels);
  };

  std::vector<OutOfFold> oof(types.size());
  // Each candidate's k fold models: the winner's become the final model (below).
  std::vector<std::vector<std::unique_ptr<Model>>> fold_models(types.size());
  for (size_t c = 0; c < types.size(); ++c) {
    timer.Start(ModelTypeName(types[c]));
    auto start = Clock::now();
    CandidateResult candidate;
    candidate.type = types[c];
    Status status;
    std::vector<double>& margin = oof[c].margin;
    margin.assign(n, std::numeric_limits<double>::quiet_NaN());
    nlohmann::json per_fold = nlohmann::json::array();
    for (int f = 0; f < k && status.ok(); ++f) {
      const int s = (f + 1) % k;  // boosting's early-stopping fold
      std::vector<uint32_t> fit;
      for (int g = 0; g < k; ++g)
        if (g != f && g != s) fit.insert(fit.end(), rows_of_fold[g].begin(), rows_of_fold[g].end());
      std::sort(fit.begin(), fit.end());
      auto fitted = FitCandidate(types[c], data, std::move(fit), rows_of_fold[s], options, tree_threads);
      if (!fitted.ok()) {
        status = fitted.status();
        break;
      }
      per_fold.push_back(fitted->training);
      auto margins = MarginsOn(*fitted->model, data, rows_of_fold[f], threads);
      if (!margins.ok()) {
        status = margins.status();
        break;
      }
      for (size_t i = 0; i < rows_of_fold[f].size(); ++i) margin[rows_of_fold[f][i]] = (*margins)[i];
      fold_models[c].push_back(std::move(fitted->model));  // the final model's parts
    }
    if (status.ok()) {
      evaluate(oof[c], candidate);
      candidate.training = {{"folds", per_fold}};
      if (classify) candidate.training["calibration"] = oof[c].platt ? "platt" : "isotonic";
    } else {
      candidate.error = status.ToString();
    }
    candidate.train_seconds = SecondsSince(start);
    result.candidates.push_back(std::move(candidate));
  }

  auto loss_of = [&](size_t c) { return HeldOutLoss(result.candidates[c], data.kind); };
  // The blend: the two best candidates' margins, averaged. Their margins are on one
  // scale (log-odds of the same reweighted task, or amounts), so the mean is a model of
  // its own, calibrated like any other; it competes on the same out-of-fold loss.
  const std::vector<size_t> blend_parts =
      options.consider_blend ? TwoLowestLosses(result.candidates, data.kind) : std::vector<size_t>{};
  if (!blend_parts.empty()) {
    timer.Start("blend");
    OutOfFold blend;
    blend.margin.assign(n, 0);
    for (size_t c : blend_parts)
      for (size_t r = 0; r < n; ++r) blend.margin[r] += oof[c].margin[r] / static_cast<double>(blend_parts.size());
    CandidateResult candidate;
    candidate.type = ModelType::kBlend;
    evaluate(blend, candidate);
    nlohmann::json parts = nlohmann::json::array();
    for (size_t c : blend_parts) parts.push_back(ModelTypeName(types[c]));
    candidate.training = {{"parts", parts}, {"weights", "equal"}};
    result.candidates.push_back(std::move(candidate));
    oof.push_back(std::move(blend));
  }

  // Selection on every user's out-of-fold score: lowest calibrated log loss (regression:
  // Poisson deviance, or RMSE), over every stacked cutoff's rows; on a tie the earlier,
  // simpler candidate stays.
  timer.Start("select");
  std::optional<size_t> best;
  for (size_t c = 0; c < result.candidates.size(); ++c) {
    if (!result.candidates[c].error.empty()) continue;
    if (!best || loss_of(c) < loss_of(*best)) best = c;
  }
  if (!best) return EveryCandidateFailed(result.candidates);
  result.selected = *best;
  result.candidates[*best].selected = true;

  // The final model is the winner's k fold models, their margins averaged (bagging over the
  // folds; docs/ML.md, "Small data"): the models whose out-of-fold scores chose the winner
  // and fit the calibration map, so the map describes the parts of the model it is applied
  // to. On a few thousand users a model fitted once varies with its one sample (the trees
  // most); the mean of k models that each saw (k-1)/k of the users varies less, and it
  // costs no further fit. A blend's final model is both parts' fold models. BG/NBD's fold
  // models are all the same model (it fits nothing on the labels): it takes part once.
  // Amounts through a log link are bounded by each fold model's largest fitted amount
  // (linear_model.h), without which one fold model in k could carry a user through its
  // exponential.
  timer.Start("final");
  {
    const bool blend = result.candidates[*best].type == ModelType::kBlend;
    const std::vector<size_t> parts = blend ? blend_parts : std::vector<size_t>{*best};
    std::vector<BlendModel::Part> averaged;
    for (size_t c : parts) {
      std::vector<std::unique_ptr<Model>>& models = fold_models[c];
      if (types[c] == ModelType::kBgNbd) models.resize(1);
      for (std::unique_ptr<Model>& model : models)
        averaged.push_back({std::move(model), 1.0 / static_cast<double>(parts.size() * models.size())});
    }
    result.candidates[*best].training["final"] = {
        {"model", fmt::format("the mean of {} fold models' margins", averaged.size())},
        {"fold_models", averaged.size()}};
    if (averaged.size() == 1) {
      result.model = std::move(averaged[0].model);
    } else {
      ASSIGN_OR_RETURN(std::unique_ptr<BlendModel> model, BlendModel::Make(std::move(averaged)));
      result.model = std::move(model);
    }
  }
  fold_models.clear();
  if (classify) {
    std::vector<double> calibration_raw(calibration_rows.size());
    for (size_t i = 0; i < calibration_rows.size(); ++i)
      calibration_raw[i] = MarginToOutput(data.kind, oof[*best].margin[calibration_rows[i]]);
    std::optional<IsotonicCalibration> platt;
    if (oof[*best].platt) platt = IsotonicCalibration::FitPlatt(calibration_raw, calibration_labels);
    result.calibration = platt ? std::move(*platt) : IsotonicCalibration::Fit(calibration_raw, calibration_labels);
    result.candidates[*best].training["calibration"] = platt ? "platt" : "isotonic";
  }
  result.test_predictions = oof[*best].calibrated;
  result.test_labels = calibration_labels;
  result.test_rows = calibration_rows;
  if (classify) {
    // A few thousand users leave real doubt in the reported AUC: say how much.
    auto [low, high] = RocAucInterval(result.test_predictions, result.test_labels, 1000, options.seed);
    result.candidates[*best].metrics.roc_auc_low = low;
    result.candidates[*best].metrics.roc_auc_high = high;
    result.candidates[*best].metrics.ece_floor = CalibratedEceFloor(result.test_predictions, 200, options.seed);
  }
  result.metrics = result.candidates[*best].metrics;
  result.regression_metrics = result.candidates[*best].regression_metrics;
  result.num_fit_rows = n;
  result.num_validation_rows = 0;
  result.num_test_rows = calibration_rows.size();

  timer.Start("drivers");
  {
    const size_t p = data.num_columns();
    const size_t m = calibration_rows.size();
    const size_t sample_rows = std::min(m, std::max<size_t>(1, options.driver_sample_rows));
    std::vector<float> sample(sample_rows * p);
    for (size_t i = 0; i < sample_rows; ++i)
      std::copy_n(data.row(calibration_rows[i * m / sample_rows]), p, sample.data() + i * p);
    ASSIGN_OR_RETURN(DriverSummary drivers,
                     ComputeDriverSummary(*result.model, sample, data.feature_names, options.column_topics));
    result.drivers = std::move(drivers.columns);
    result.topic_drivers = std::move(drivers.topics);
  }
  timer.Stop();

  result.parameters = {
      {"seed", options.seed},
      {"num_threads", threads},
      {"tree_threads", tree_threads},
      {"task", TaskKindName(data.kind)},
      {"balance_classes", options.balance_classes},
      {"selection", fmt::format("{}-fold cross-validation by user", k)},
      {"cross_validation", {{"folds", k},
                            {"below_users", options.cross_validation_below_users},
                            {"below_cells", options.cross_validation_below_cells},
                            {"calibrated_on", calibrated_on_newest ? "newest cutoff" : "every cutoff"},
                            {"selected_on", "every cutoff"},
                            {"calibration_rows", calibration_rows.size()}}},
      {"driver_sample_rows", options.driver_sample_rows},
      {"final_model", {{"fitted_on", "fold models"}, {"folds", k}}},
      {"selected", ModelTypeName(result.candidates[*best].type)}};
  return result;
}

}  // namespace sibyl::ml
