#include "pipeline/fallback.h"

#include <cmath>

#include "common/time.h"
#include "ml/bgnbd_model.h"

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
  ASSIGN_OR_RETURN(set.outcome_model_note, FitOutcomeModels(engine, cutoff, request.set.customer_base_users,
                                                            request.set.seed, set.spec.outcome));
  if (!set.spec.outcome.bgnbd)
    return Status(why.code(), fmt::format("{}; nor can BG/NBD stand in: {}", why.message(), set.outcome_model_note));

  stage("features");
  ASSIGN_OR_RETURN(FeatureMatrix matrix, engine.Features(set.spec, cutoff, users));
  const size_t k = matrix.cols();
  std::optional<ml::TrainOptions::BgNbdCandidate> c =
      BgNbdCandidateFor(set.spec, definition.kind, std::span<const float>(matrix.values.data(), matrix.rows() * k));
  if (!c) return Internal("BG/NBD parameters were fitted but the model cannot be placed");
  const double prior = c->prior;
  const ml::TaskKind task = TaskFor(definition.kind);
  ASSIGN_OR_RETURN(std::unique_ptr<ml::BgNbdModel> model, ml::BgNbdModel::Make(task, k, c->output, c->columns, prior));
  const OutcomeBgNbd& b = *set.spec.outcome.bgnbd;

  set.data.kind = task;
  set.data.feature_names = matrix.columns;
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
