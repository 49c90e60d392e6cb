#include "scoring/scoring.h"

#include <algorithm>
#include <cmath>
#include <thread>

#include "common/time.h"
#include "pipeline/train_run.h"
#include "query/features.h"

namespace sibyl::scoring {

std::string ScoreProperty(const std::string& name) { return "sibyl." + name + ".score"; }
std::string PercentileProperty(const std::string& name) { return "sibyl." + name + ".percentile"; }
std::string ModelVersionProperty(const std::string& name) { return "sibyl." + name + ".model_version"; }

Result<ScoringModel> LoadScoringModel(const pipeline::PredictionRegistry& registry, const std::string& name,
                                      std::optional<int> version) {
  if (!version) {
    ASSIGN_OR_RETURN(std::vector<int> versions, registry.Versions(name));
    if (versions.empty())
      return NotFound("prediction \"{}\" has no trained version; run `sibyl train {}` first", name, name);
    version = versions.back();
  }
  ASSIGN_OR_RETURN(pipeline::LoadedVersion loaded, pipeline::LoadVersion(registry, name, *version));
  ScoringModel model;
  model.name = name;
  model.version = *version;
  ASSIGN_OR_RETURN(model.spec, pipeline::SpecOf(loaded.bundle));
  const nlohmann::json& extra = loaded.bundle.extra;
  // The cohort the version was trained for: a later edit of the definition only takes
  // effect with the next trained version, so scores stay a function of the version.
  if (!extra.contains("definition")) return Corruption("{} version {}: model has no definition", name, *version);
  ASSIGN_OR_RETURN(model.definition, pipeline::ParsePredictionDefinition(extra["definition"]));
  ASSIGN_OR_RETURN(model.cohort, pipeline::ToCohort(model.definition));
  model.train_cutoff_ms = extra.value("data_window", nlohmann::json::object()).value("train_cutoff_ms", int64_t{0});
  model.bundle = std::move(loaded.bundle);
  if (model.spec.ColumnNames() != model.bundle.feature_names)
    return Corruption("{} version {}: the feature spec does not give the model's columns", name, *version);
  ASSIGN_OR_RETURN(model.sparse_predictor, SparsePredictor::ForModel(*model.bundle.model));
  return model;
}

void DensifyRows(const SparseFeatureMatrix& matrix, size_t begin, size_t end, std::vector<float>& out) {
  const size_t cols = matrix.cols();
  out.resize((end - begin) * cols);
  for (size_t r = begin; r < end; ++r) {
    float* row = out.data() + (r - begin) * cols;
    std::copy(matrix.fill.begin(), matrix.fill.end(), row);
    for (const SparseCell& cell : matrix.row(r)) row[cell.col] = cell.value;
  }
}

Result<ScoredRows> ScoreMatrix(const ScoringModel& model, const SparseFeatureMatrix& matrix, size_t rows_per_block,
                               const std::function<void(std::span<const float>, size_t)>& on_block) {
  if (matrix.cols() != model.bundle.feature_names.size())
    return Internal("feature matrix has {} columns, the model {}", matrix.cols(), model.bundle.feature_names.size());
  ScoredRows out;
  out.scores.reserve(matrix.rows());
  out.margins.reserve(matrix.rows());
  if (model.sparse_predictor && !on_block) {
    // Blocks of 64k rows bound the XGBoost matrix; two threads take alternate blocks.
    constexpr size_t kRows = size_t{1} << 16;
    const size_t blocks = (matrix.rows() + kRows - 1) / kRows;
    out.margins.resize(matrix.rows());
    out.scores.resize(matrix.rows());
    // Each lane calibrates its own rows too (an exp and a search a row).
    auto lane = [&](int which) -> Status {
      for (size_t b = static_cast<size_t>(which); b < blocks; b += 2) {
        size_t begin = b * kRows, end = std::min(matrix.rows(), begin + kRows);
        ASSIGN_OR_RETURN(std::vector<double> margins, model.sparse_predictor->Margins(matrix, begin, end, which));
        for (size_t r = begin; r < end; ++r) {
          out.margins[r] = margins[r - begin];
          out.scores[r] = model.bundle.calibration.Apply(ml::MarginToOutput(model.bundle.task, out.margins[r]));
        }
      }
      return Status::Ok();
    };
    Status second = Status::Ok();
    std::thread helper;
    if (blocks > 1) helper = std::thread([&] { second = lane(1); });
    Status first = lane(0);
    if (helper.joinable()) helper.join();
    RETURN_IF_ERROR(first);
    RETURN_IF_ERROR(second);
    return out;
  }
  std::vector<float> dense;
  for (size_t begin = 0; begin < matrix.rows(); begin += rows_per_block) {
    size_t end = std::min(matrix.rows(), begin + rows_per_block);
    DensifyRows(matrix, begin, end, dense);
    if (on_block) on_block(dense, end - begin);
    ASSIGN_OR_RETURN(std::vector<double> margins, model.bundle.model->PredictMargin(dense));
    for (double m : margins) {
      out.margins.push_back(m);
      out.scores.push_back(model.bundle.calibration.Apply(ml::MarginToOutput(model.bundle.task, m)));
    }
  }
  return out;
}

std::vector<double> MarginQuantiles(std::vector<double> margins) {
  std::vector<double> q;
  if (margins.empty()) return q;
  std::sort(margins.begin(), margins.end());
  q.reserve(kQuantilePoints);
  const size_t n = margins.size();
  for (size_t i = 0; i < kQuantilePoints; ++i) {
    size_t at = static_cast<size_t>(std::llround(static_cast<double>(i) * (n - 1) / (kQuantilePoints - 1)));
    q.push_back(margins[at]);
  }
  return q;
}

double PercentileOf(std::span<const double> quantiles, double margin) {
  if (quantiles.empty()) return 0;
  size_t at_or_below = static_cast<size_t>(std::upper_bound(quantiles.begin(), quantiles.end(), margin) -
                                           quantiles.begin());
  return std::round(10000.0 * static_cast<double>(at_or_below) / static_cast<double>(quantiles.size())) / 100.0;
}

std::optional<ActorId> ActorOfUserId(const EventReader& reader, const std::string& user_id) {
  constexpr std::string_view kDevice = "device:";
  std::string key = user_id.starts_with(kDevice) ? "d:" + user_id.substr(kDevice.size()) : "u:" + user_id;
  return reader.actors().Find(key);
}

Result<UserScore> ScoreUser(const EventReader& reader, const ScoringModel& model, const std::string& user_id,
                            int64_t cutoff_ms, std::span<const double> quantiles) {
  std::optional<ActorId> actor = ActorOfUserId(reader, user_id);
  if (!actor) return NotFound("unknown user \"{}\"", user_id);
  cutoff_ms = FloorHour(cutoff_ms);
  // One row out of many: the feature query and the cohort gather this actor's events
  // (and its linked devices') by binary search in each segment, the same numbers the
  // batch scan gives (docs/SCORING.md, "Purity").
  const ActorId one[1] = {*actor};
  ASSIGN_OR_RETURN(SparseFeatureMatrix matrix,
                   ComputeSparseFeatures(reader, model.spec, cutoff_ms, one, /*parallel=*/false));
  ASSIGN_OR_RETURN(ScoredRows scored, ScoreMatrix(model, matrix));
  ASSIGN_OR_RETURN(std::vector<ActorId> members,
                   EvaluateCohortFor(reader, model.cohort, cutoff_ms, one, /*parallel=*/false));
  UserScore out;
  out.user_id = user_id;
  out.version = model.version;
  out.cutoff_ms = cutoff_ms;
  out.score = scored.scores.at(0);
  out.margin = scored.margins.at(0);
  if (!quantiles.empty()) out.percentile = PercentileOf(quantiles, out.margin);
  out.in_cohort = !members.empty();
  DensifyRows(matrix, 0, 1, out.features);
  return out;
}

std::vector<WrittenScore> ReadWrittenScores(const EventReader& reader, const std::string& name, int64_t as_of_ms) {
  std::vector<WrittenScore> out;
  auto score_key = reader.property_keys().Find(ScoreProperty(name));
  if (!score_key) return out;
  auto percentile_key = reader.property_keys().Find(PercentileProperty(name));
  auto version_key = reader.property_keys().Find(ModelVersionProperty(name));
  std::span<const UserPropertyRecord> history = reader.user_property_history();
  // Records are sorted by (actor, time): the last one before as_of per key wins.
  size_t i = 0;
  while (i < history.size()) {
    ActorId actor = history[i].actor;
    WrittenScore w;
    w.actor = actor;
    bool has_score = false;
    for (; i < history.size() && history[i].actor == actor; ++i) {
      const UserPropertyRecord& r = history[i];
      if (r.time_ms >= as_of_ms) continue;
      bool unset = r.value.kind == ValueKind::kNull;
      if (r.key == *score_key) {
        has_score = !unset;
        w.score = r.value.number;
        w.cutoff_ms = r.time_ms;
      } else if (percentile_key && r.key == *percentile_key) {
        w.percentile = r.value.number;
      } else if (version_key && r.key == *version_key) {
        w.version = static_cast<int>(r.value.number);
      }
    }
    if (!has_score) continue;
    std::string_view actor_name = reader.actors().name(actor);
    w.user_id = actor_name.starts_with("d:") ? "device:" + std::string(actor_name.substr(2))
                                             : std::string(actor_name.substr(2));
    out.push_back(std::move(w));
  }
  return out;
}

int64_t DefaultScoringCutoff(const EventReader& reader) {
  if (reader.event_count() == 0) return 0;
  return FloorHour(reader.max_time_ms() + 1);
}

}  // namespace sibyl::scoring
