#include "pipeline/seasonal_shift.h"

#include <algorithm>
#include <cmath>

#include <fmt/format.h>

#include "common/time.h"
#include "pipeline/training_set.h"

namespace sibyl::pipeline {
namespace {

constexpr int64_t kYearMs = 52 * kMsPerWeek;
// Scores are clamped away from 0 and 1 before taking log-odds: a calibrated map never
// claims certainty, and this keeps the offsets finite.
constexpr double kScoreFloor = 1e-6;

double LogOdds(double p) {
  p = std::clamp(p, kScoreFloor, 1.0 - kScoreFloor);
  return std::log(p / (1.0 - p));
}

double Sigmoid(double z) { return 1.0 / (1.0 + std::exp(-z)); }

std::string Date(int64_t ms) { return FormatTime(ms).substr(0, 10); }

struct YearAgoRows {
  std::vector<float> values;
  std::vector<float> labels;
};

Result<YearAgoRows> RowsAt(const QueryEngine& engine, const PredictionDefinition& definition,
                           const FeatureSpec& spec, int64_t cutoff_ms, const SeasonalShiftOptions& options) {
  ASSIGN_OR_RETURN(CohortExpr cohort, ToCohort(definition));
  ASSIGN_OR_RETURN(UserSet users, engine.Cohort(cohort, cutoff_ms));
  std::vector<std::string> ids = engine.UserIds(users);
  SampleUsers(users, ids, options.max_users, options.seed);
  YearAgoRows rows;
  ASSIGN_OR_RETURN(FeatureMatrix matrix, engine.Features(spec, cutoff_ms, users));
  rows.values.assign(matrix.values.data(), matrix.values.data() + matrix.rows() * matrix.cols());
  ASSIGN_OR_RETURN(LabelSpec label, ToLabelSpec(definition));
  ASSIGN_OR_RETURN(rows.labels, engine.Labels(label, cutoff_ms, users));
  return rows;
}

}  // namespace

nlohmann::json SeasonalShift::ToJson() const {
  auto fit = [](const InterceptFit& f) {
    return nlohmann::json{{"cutoff", FormatTime(f.cutoff_ms)}, {"rows", f.rows},
                          {"label_rate", f.label_rate}, {"mean_score", f.mean_score},
                          {"intercept", f.intercept}, {"standard_error", f.standard_error}};
  };
  nlohmann::json out = {{"applied", applied}, {"note", note}};
  if (at_train.rows && at_scoring.rows) {
    out["year_ago_train"] = fit(at_train);
    out["year_ago_scoring"] = fit(at_scoring);
    out["raw_delta"] = raw_delta;
    out["standard_error"] = standard_error;
    out["delta"] = delta;
  }
  return out;
}

InterceptFit FitIntercept(std::span<const double> scores, std::span<const float> labels) {
  InterceptFit fit;
  fit.rows = scores.size();
  if (scores.empty()) return fit;
  std::vector<double> offsets(scores.size());
  double positives = 0, score_sum = 0;
  for (size_t i = 0; i < scores.size(); ++i) {
    offsets[i] = LogOdds(scores[i]);
    positives += labels[i] > 0.5f ? 1.0 : 0.0;
    score_sum += scores[i];
  }
  fit.label_rate = positives / static_cast<double>(scores.size());
  fit.mean_score = score_sum / static_cast<double>(scores.size());
  // The log-likelihood is concave in c; Newton from 0 converges in a few steps. Steps are
  // capped so an all-0 or all-1 sample (rejected by the caller anyway) cannot diverge.
  double c = 0, information = 0;
  for (int iteration = 0; iteration < 50; ++iteration) {
    double gradient = 0;
    information = 0;
    for (size_t i = 0; i < offsets.size(); ++i) {
      const double p = Sigmoid(offsets[i] + c);
      gradient += (labels[i] > 0.5f ? 1.0 : 0.0) - p;
      information += p * (1.0 - p);
    }
    if (information <= 0) break;
    const double step = std::clamp(gradient / information, -2.0, 2.0);
    c += step;
    if (std::abs(step) < 1e-10) break;
  }
  fit.intercept = c;
  fit.standard_error = information > 0 ? 1.0 / std::sqrt(information) : INFINITY;
  return fit;
}

double ShrinkTowardZero(double estimate, double standard_error) {
  if (!(std::abs(estimate) > 0) || !std::isfinite(standard_error)) return 0.0;
  const double ratio = (standard_error * standard_error) / (estimate * estimate);
  return estimate * std::max(0.0, 1.0 - ratio);
}

Result<SeasonalShift> EstimateSeasonalShift(const EventReader& reader, const QueryEngine& engine,
                                            const PredictionDefinition& definition, const FeatureSpec& spec,
                                            int64_t train_cutoff_ms, int64_t as_of_ms, const RowScorer& score,
                                            const SeasonalShiftOptions& options) {
  SeasonalShift shift;
  if (definition.kind == PredictionKind::kRevenue) {
    shift.note = "not applicable to revenue predictions";
    return shift;
  }
  const int64_t horizon_ms = static_cast<int64_t>(definition.horizon_days) * kMsPerDay;
  if (horizon_ms > kYearMs) {
    shift.note = "not applicable: the horizon is longer than 52 weeks";
    return shift;
  }
  const int64_t year_ago_train = train_cutoff_ms - kYearMs;
  const int64_t year_ago_scoring = FloorHour(as_of_ms) - kYearMs;
  const int64_t needed_from = year_ago_train - static_cast<int64_t>(options.min_history_days) * kMsPerDay;
  if (reader.event_count() == 0 || reader.min_time_ms() > needed_from) {
    shift.note = fmt::format("not estimated: a year back needs events from {} ({} days before {}); the data starts {}",
                             Date(needed_from), options.min_history_days, Date(year_ago_train),
                             reader.event_count() ? Date(reader.min_time_ms()) : std::string("nowhere"));
    return shift;
  }

  for (auto [cutoff, fit] : {std::pair{year_ago_train, &shift.at_train}, std::pair{year_ago_scoring, &shift.at_scoring}}) {
    ASSIGN_OR_RETURN(YearAgoRows rows, RowsAt(engine, definition, spec, cutoff, options));
    uint64_t positives = 0;
    for (float y : rows.labels) positives += y > 0.5f;
    const uint64_t negatives = rows.labels.size() - positives;
    if (positives < options.min_class_rows || negatives < options.min_class_rows) {
      shift.note = fmt::format("not estimated: at {} the cohort had {} users with the outcome and {} without (needs {} each)",
                               Date(cutoff), positives, negatives, options.min_class_rows);
      shift.at_train = shift.at_scoring = InterceptFit{};
      return shift;
    }
    ASSIGN_OR_RETURN(std::vector<double> scores, score(rows.values));
    *fit = FitIntercept(scores, rows.labels);
    fit->cutoff_ms = cutoff;
  }
  shift.raw_delta = shift.at_scoring.intercept - shift.at_train.intercept;
  shift.standard_error = std::hypot(shift.at_train.standard_error, shift.at_scoring.standard_error);
  shift.delta = ShrinkTowardZero(shift.raw_delta, shift.standard_error);
  shift.applied = shift.delta != 0.0;
  shift.note = shift.applied
                   ? fmt::format("applied: {:+.3f} log-odds (a year back, the label rate went from {:.3f} at {} to {:.3f} "
                                 "at {} while the model's mean score went from {:.3f} to {:.3f})",
                                 shift.delta, shift.at_train.label_rate, Date(year_ago_train),
                                 shift.at_scoring.label_rate, Date(year_ago_scoring), shift.at_train.mean_score,
                                 shift.at_scoring.mean_score)
                   : fmt::format("estimated {:+.3f} log-odds, within its standard error {:.3f}: not applied",
                                 shift.raw_delta, shift.standard_error);
  return shift;
}

ml::IsotonicCalibration ShiftLogOdds(const ml::IsotonicCalibration& calibration, double delta) {
  std::vector<double> xs, ys;
  if (calibration.is_identity()) {
    // The identity's log-odds shift is a curve: sample it finely.
    constexpr int kKnots = 257;
    for (int i = 0; i < kKnots; ++i) {
      const double x = static_cast<double>(i) / (kKnots - 1);
      xs.push_back(x);
      ys.push_back(Sigmoid(LogOdds(x) + delta));
    }
  } else {
    xs = calibration.knots_x();
    for (double y : calibration.knots_y()) ys.push_back(Sigmoid(LogOdds(y) + delta));
  }
  auto shifted = ml::IsotonicCalibration::FromJson({{"knots_x", xs}, {"knots_y", ys}});
  // Sigmoid(LogOdds(.) + delta) is non-decreasing, so the knots stay a valid map.
  return shifted.ok() ? std::move(shifted).value() : calibration;
}

}  // namespace sibyl::pipeline
