#include "pipeline/fallback.h"

#include <cmath>

#include "common/time.h"
#include "ml/bgnbd_model.h"
#include "ml/clv.h"

namespace sibyl::pipeline {

Result<FittedPrediction> FitBgNbdFallback(const EventReader& reader, const QueryEngine& engine,
                                          const PredictionDefinition& definition, int64_t as_of_ms,
                                          const Status& why, const TrainRequest& request) {
  const int64_t cutoff = FloorHour(as_of_ms);
  FittedPrediction fitted;
  fitted.definition = definition;
  fitted.as_of_ms = as_of_ms;
  fitted.train_cutoff_ms = cutoff;
  TrainingSet& set = fitted.set;
  set.cutoffs = {cutoff};
  auto stage = [&](const char* name) {
    if (request.on_stage) request.on_stage(name);
  };

  stage("cohort");
  ASSIGN_OR_RETURN(LabelSpec label, ToLabelSpec(definition));
  ASSIGN_OR_RETURN(CohortExpr cohort, ToCohort(definition));
  ASSIGN_OR_RETURN(UserSet users, engine.Cohort(cohort, cutoff));

  // Only the outcome family: the model reads its BG/NBD columns, and the amounts.
  stage("outcome history");
  set.spec.families = {false, false, false, false, false};
  ASSIGN_OR_RETURN(set.spec.outcome, OutcomeFamilyFor(definition, label, reader.min_time_ms(), cutoff));
  ASSIGN_OR_RETURN(auto summaries, engine.RepeatSummaries(set.spec.outcome, cutoff, users));
  set.outcome_model_note = FitOutcomeBgNbd(summaries, set.spec.outcome);
  if (!set.spec.outcome.bgnbd)
    return Status(why.code(), fmt::format("{}; nor can BG/NBD stand in: {}", why.message(), set.outcome_model_note));

  stage("features");
  ASSIGN_OR_RETURN(FeatureMatrix matrix, engine.Features(set.spec, cutoff, users));
  const std::vector<std::string>& names = matrix.columns;
  const size_t k = names.size(), scales = set.spec.outcome.window_days.size() + 1;
  // Column positions in the family's order (feature_spec.cc, OutcomeColumnNames).
  ml::BgNbdModel::Columns columns;
  columns.probability = k - 2;
  columns.expected_days = k - 1;
  columns.active_days = 2 * scales - 1;
  columns.amount = set.spec.outcome.amount_property.empty() ? columns.active_days : 3 * scales - 1;

  const OutcomeBgNbd& b = *set.spec.outcome.bgnbd;
  const ml::BgNbdParams params{b.r, b.alpha, b.a, b.b};
  const ml::RfmSummary newcomer{0, 0, 0};
  const double horizon = definition.horizon_days;
  ml::BgNbdModel::Output output = ml::BgNbdModel::Output::kProbability;
  double prior = ml::BgNbdProbAnyWithin(params, newcomer, horizon);
  if (definition.kind == PredictionKind::kChurn) output = ml::BgNbdModel::Output::kOneMinusProbability;
  if (definition.kind == PredictionKind::kRevenue) {
    // A newcomer's expected days times the cohort's mean amount per active day.
    output = ml::BgNbdModel::Output::kAmount;
    double amount = 0, days = 0;
    for (size_t r = 0; r < matrix.rows(); ++r) {
      const float a = matrix.at(r, columns.amount), d = matrix.at(r, columns.active_days);
      if (std::isfinite(a) && d > 0) {
        amount += a;
        days += d;
      }
    }
    prior = ml::BgNbdExpectedTransactions(params, newcomer, horizon) * (days > 0 ? amount / days : 0.0);
    if (!std::isfinite(prior) || prior < 0) prior = 0;
  }
  const ml::TaskKind task = TaskFor(definition.kind);
  ASSIGN_OR_RETURN(std::unique_ptr<ml::BgNbdModel> model, ml::BgNbdModel::Make(task, k, output, columns, prior));

  set.data.kind = task;
  set.data.feature_names = names;
  CutoffSummary summary{.cutoff_ms = cutoff, .cohort_users = users.actors.size(), .rows = 0};
  set.summaries.push_back(summary);

  ml::TrainResult& result = fitted.result;
  result.task = task;
  result.model = std::move(model);
  ml::CandidateResult candidate;
  candidate.type = ml::ModelType::kBgNbd;
  candidate.selected = true;
  candidate.training = {{"fallback", why.message()}, {"fit", set.outcome_model_note}, {"prior", prior}};
  result.candidates.push_back(std::move(candidate));
  result.num_users = users.actors.size();
  result.parameters = {{"selected", "bg_nbd"},
                       {"fallback", why.message()},
                       {"bgnbd", {{"r", b.r}, {"alpha", b.alpha}, {"a", b.a}, {"b", b.b}}},
                       {"prior", prior}};
  fitted.fallback_reason = why.message();
  return fitted;
}

}  // namespace sibyl::pipeline
