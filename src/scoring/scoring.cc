#include "scoring/scoring.h"

#include <algorithm>
#include <cmath>
#include <numeric>
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
  // A million margins: the halves sort on two threads, then merge (a third of the time of
  // one sort; the result is the same sorted array).
  if (margins.size() >= (1u << 16) && std::thread::hardware_concurrency() > 1) {
    auto middle = margins.begin() + static_cast<std::ptrdiff_t>(margins.size() / 2);
    std::thread helper([&] { std::sort(margins.begin(), middle); });
    std::sort(middle, margins.end());
    helper.join();
    std::inplace_merge(margins.begin(), middle, margins.end());
  } else {
    std::sort(margins.begin(), margins.end());
  }
  q.reserve(kQuantilePoints);
  const size_t n = margins.size();
  for (size_t i = 0; i < kQuantilePoints; ++i) {
    size_t at = static_cast<size_t>(std::llround(static_cast<double>(i) * (n - 1) / (kQuantilePoints - 1)));
    q.push_back(margins[at]);
  }
  return q;
}

std::vector<double> PercentilesOf(std::span<const double> quantiles, std::span<const double> margins, bool parallel) {
  std::vector<double> out(margins.size());
  auto range = [&](size_t from, size_t to) {
    for (size_t i = from; i < to; ++i) out[i] = PercentileOf(quantiles, margins[i]);
  };
  if (parallel && margins.size() >= (1u << 16) && std::thread::hardware_concurrency() > 1) {
    std::thread helper(range, 0, margins.size() / 2);
    range(margins.size() / 2, margins.size());
    helper.join();
  } else {
    range(0, margins.size());
  }
  return out;
}

nlohmann::json ScoreSummary(std::vector<double> scores) {
  if (scores.empty()) return {{"users", 0}};
  double sum = std::accumulate(scores.begin(), scores.end(), 0.0);
  // Three order statistics, not a sort of a million scores: each nth_element leaves the
  // elements below its position unordered but smaller, so later ones search the rest.
  auto at = [&, from = scores.begin()](double q) mutable {
    auto nth = scores.begin() + static_cast<std::ptrdiff_t>(q * static_cast<double>(scores.size() - 1));
    std::nth_element(from, nth, scores.end());
    from = nth;
    return *nth;
  };
  auto [min, max] = std::minmax_element(scores.begin(), scores.end());
  const double low = *min, high = *max;
  const double p10 = at(0.1), p50 = at(0.5), p90 = at(0.9);
  return {{"users", scores.size()}, {"sum", sum},   {"mean", sum / scores.size()}, {"min", low},
          {"p10", p10},             {"p50", p50},   {"p90", p90},                   {"max", high}};
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
                   ComputeSparseFeatures(reader, model.spec, cutoff_ms, one, /*parallel=*/false, FeaturePath::kAuto,
                                         &model.bundle.feature_names));
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

namespace {

std::string UserIdOf(const EventReader& reader, ActorId actor) {
  std::string_view name = reader.actors().name(actor);
  return name.starts_with("d:") ? "device:" + std::string(name.substr(2)) : std::string(name.substr(2));
}

// The keys of a prediction's written properties (kNoDictId where the store has none).
struct ScoreKeys {
  DictId score = kNoDictId, percentile = kNoDictId, version = kNoDictId;
  explicit ScoreKeys(const EventReader& reader, const std::string& name) {
    const DictionaryView& keys = reader.property_keys();
    score = keys.Find(ScoreProperty(name)).value_or(kNoDictId);
    percentile = keys.Find(PercentileProperty(name)).value_or(kNoDictId);
    version = keys.Find(ModelVersionProperty(name)).value_or(kNoDictId);
  }
};

// Applies one actor's history records before `as_of_ms` to `w`: scores set by identify
// events, or written by stores from before number columns. Returns the time of the last
// score record (INT64_MIN: none, or unset last).
int64_t ApplyScoreRecords(std::span<const UserPropertyRecord> records, const ScoreKeys& keys, int64_t as_of_ms,
                          WrittenScore& w) {
  int64_t score_time = INT64_MIN;
  for (const UserPropertyRecord& r : records) {
    if (r.time_ms >= as_of_ms) continue;
    const bool unset = r.value.kind == ValueKind::kNull;
    if (r.key == keys.score) {
      score_time = unset ? INT64_MIN : r.time_ms;
      w.score = r.value.number;
      w.cutoff_ms = r.time_ms;
    } else if (r.key == keys.percentile) {
      w.percentile = r.value.number;
    } else if (r.key == keys.version) {
      w.version = static_cast<int>(r.value.number);
    }
  }
  return score_time;
}

// Takes row `row` of `batch` into `w` when the batch holds the score.
void ApplyScoreColumns(const NumberColumnBatch& batch, size_t row, const ScoreKeys& keys, WrittenScore& w) {
  w.score = batch.Value(batch.ColumnOf(keys.score), row);
  w.cutoff_ms = batch.time_ms;
  if (size_t c = batch.ColumnOf(keys.percentile); c != SIZE_MAX) w.percentile = batch.Value(c, row);
  if (size_t c = batch.ColumnOf(keys.version); c != SIZE_MAX) w.version = static_cast<int>(batch.Value(c, row));
}

}  // namespace

std::vector<WrittenScore> ReadWrittenScores(const EventReader& reader, const std::string& name, int64_t as_of_ms) {
  std::vector<WrittenScore> out;
  const ScoreKeys keys(reader, name);
  if (keys.score == kNoDictId) return out;
  // Columns: for each actor, the batch (and row) of its latest score before as_of.
  const size_t actors = reader.actors().size();
  const std::vector<EventReader::NumberColumnRow> columns = reader.NumberColumnRowsAsOf(keys.score, as_of_ms, actors);
  // Records are sorted by actor: walk them beside the actors, and let a column value win
  // over a record of the same or an earlier time.
  std::span<const UserPropertyRecord> history = reader.user_property_history();
  size_t i = 0;
  for (ActorId actor = 0; actor < actors; ++actor) {
    size_t begin = i;
    while (i < history.size() && history[i].actor == actor) ++i;
    const EventReader::NumberColumnRow& column = columns[actor];
    if (begin == i && !column.batch) continue;
    WrittenScore w;
    w.actor = actor;
    int64_t record_time = ApplyScoreRecords(history.subspan(begin, i - begin), keys, as_of_ms, w);
    if (column.batch && column.batch->time_ms >= record_time) {
      ApplyScoreColumns(*column.batch, column.row, keys, w);
    } else if (record_time == INT64_MIN) {
      continue;
    }
    w.user_id = UserIdOf(reader, actor);
    out.push_back(std::move(w));
  }
  return out;
}

std::optional<WrittenScore> ReadWrittenScore(const EventReader& reader, const std::string& name, ActorId actor,
                                             int64_t as_of_ms) {
  const ScoreKeys keys(reader, name);
  if (keys.score == kNoDictId) return std::nullopt;
  WrittenScore w;
  w.actor = actor;
  const std::vector<UserPropertyRecord> records = reader.UserPropertyHistoryOf(actor);
  const int64_t record_time = ApplyScoreRecords(records, keys, as_of_ms, w);
  const EventReader::NumberColumnRow column = reader.NumberColumnRowAsOf(actor, keys.score, as_of_ms);
  if (column.batch && column.batch->time_ms >= record_time) ApplyScoreColumns(*column.batch, column.row, keys, w);
  else if (record_time == INT64_MIN) return std::nullopt;
  w.user_id = UserIdOf(reader, actor);
  return w;
}

int64_t DefaultScoringCutoff(const EventReader& reader) {
  if (reader.event_count() == 0) return 0;
  // Never after the hour now falls in: an event stamped in the future must not move every
  // default scoring cutoff past the data (as pipeline::DefaultAsOf for training).
  return FloorHour(std::min(reader.max_time_ms(), SystemClock::Instance().NowMs()) + 1);
}

}  // namespace sibyl::scoring
