// The embedded QueryEngine: the queries on an EventReader snapshot of the local store.
#include <cassert>

#include "common/time.h"
#include "query/features.h"
#include "query/query_engine.h"

namespace sibyl {
namespace {

class EmbeddedQueryEngine final : public QueryEngine {
 public:
  EmbeddedQueryEngine(std::shared_ptr<const EventReader> reader, bool parallel)
      : reader_(std::move(reader)), parallel_(parallel) {}

  Result<Taxonomy> BuildTaxonomy(int64_t cutoff_ms, const TaxonomyOptions& options) const override {
    return sibyl::BuildTaxonomy(*reader_, cutoff_ms, options, parallel_);
  }

  Result<UserSet> Cohort(const CohortExpr& cohort, int64_t cutoff_ms) const override {
    UserSet users;
    users.cutoff_ms = FloorHour(cutoff_ms);
    ASSIGN_OR_RETURN(users.actors, EvaluateCohort(*reader_, cohort, users.cutoff_ms, parallel_));
    return users;
  }

  Result<FeatureMatrix> Features(const FeatureSpec& spec, int64_t cutoff_ms,
                                 const UserSet& users) const override {
    if (users.cutoff_ms != FloorHour(cutoff_ms))
      return InvalidArgument("the user set was chosen at {}, not at the feature cutoff {}",
                             FormatTime(users.cutoff_ms), FormatTime(FloorHour(cutoff_ms)));
    return ComputeFeatures(*reader_, spec, cutoff_ms, users.actors, parallel_);
  }

  Result<SparseFeatureMatrix> SparseFeatures(const FeatureSpec& spec, int64_t cutoff_ms,
                                             const UserSet& users) const override {
    RETURN_IF_ERROR(CheckCutoff(users, cutoff_ms, "feature"));
    return ComputeSparseFeatures(*reader_, spec, cutoff_ms, users.actors, parallel_);
  }

  Result<std::vector<std::optional<OutcomeRepeatSummary>>> RepeatSummaries(
      const OutcomeFamilySpec& outcome, int64_t cutoff_ms, const UserSet& users) const override {
    RETURN_IF_ERROR(CheckCutoff(users, cutoff_ms, "outcome"));
    return ComputeRepeatSummaries(*reader_, outcome, cutoff_ms, users.actors, parallel_);
  }

  Result<std::vector<float>> Labels(const LabelSpec& label, int64_t cutoff_ms,
                                    const UserSet& users) const override {
    if (users.cutoff_ms != FloorHour(cutoff_ms))
      return InvalidArgument("the user set was chosen at {}, not at the label cutoff {}",
                             FormatTime(users.cutoff_ms), FormatTime(FloorHour(cutoff_ms)));
    return ComputeLabels(*reader_, label, cutoff_ms, users.actors, parallel_);
  }

  Status ValidateLabel(const LabelSpec& label) const override {
    return ValidateLabelSpec(*reader_, label);
  }

  std::string UserId(ActorId actor) const override {
    std::string_view name = reader_->actors().name(actor);
    if (name.starts_with("u:")) return std::string(name.substr(2));
    if (name.starts_with("d:")) return "device:" + std::string(name.substr(2));
    return std::string(name);
  }

  std::vector<std::string> UserIds(const UserSet& users) const override {
    std::vector<std::string> ids;
    ids.reserve(users.actors.size());
    for (ActorId a : users.actors) ids.push_back(UserId(a));
    return ids;
  }

 private:
  static Status CheckCutoff(const UserSet& users, int64_t cutoff_ms, const char* what) {
    if (users.cutoff_ms != FloorHour(cutoff_ms))
      return InvalidArgument("the user set was chosen at {}, not at the {} cutoff {}",
                             FormatTime(users.cutoff_ms), what, FormatTime(FloorHour(cutoff_ms)));
    return Status::Ok();
  }

  std::shared_ptr<const EventReader> reader_;
  bool parallel_;
};

}  // namespace

std::unique_ptr<QueryEngine> MakeEmbeddedQueryEngine(std::shared_ptr<const EventReader> reader,
                                                     bool parallel) {
  return std::make_unique<EmbeddedQueryEngine>(std::move(reader), parallel);
}

}  // namespace sibyl
