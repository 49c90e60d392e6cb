#include "scoring/score_run.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <filesystem>
#include <atomic>
#include <mutex>
#include <thread>
#include <numeric>

#include <sys/resource.h>

#include <fmt/format.h>

#include "common/checked_json.h"
#include "common/file.h"
#include "common/time.h"
#include "query/query_engine.h"

namespace sibyl::scoring {

namespace fs = std::filesystem;

namespace {

// Drift looks at an evenly spaced sample of rows: binning every cell of a million rows by
// several hundred columns would cost more than scoring them.
constexpr size_t kDriftSampleRows = 50'000;
constexpr int kDriftBins = 10;
constexpr double kDriftThreshold = 0.2;

// Wall time per stage, and the process's CPU time (user + system, every thread) over the
// same stage: on a shared machine the wall time moves with everyone else's load.
class Stopwatch {
 public:
  double Lap() {
    auto now = std::chrono::steady_clock::now();
    double s = std::chrono::duration<double>(now - last_).count();
    last_ = now;
    double cpu = ProcessCpuSeconds();
    cpu_lap_ = cpu - last_cpu_;
    last_cpu_ = cpu;
    return s;
  }
  double cpu_lap() const { return cpu_lap_; }
  // The process's peak resident memory so far, in MB: what a stage added to it shows as
  // the step from the previous stage's figure.
  static double PeakRssMb() {
    rusage usage{};
    getrusage(RUSAGE_SELF, &usage);
    return static_cast<double>(usage.ru_maxrss) / 1024.0;
  }

 private:
  static double ProcessCpuSeconds() {
    rusage usage{};
    getrusage(RUSAGE_SELF, &usage);
    return static_cast<double>(usage.ru_utime.tv_sec + usage.ru_stime.tv_sec) +
           static_cast<double>(usage.ru_utime.tv_usec + usage.ru_stime.tv_usec) / 1e6;
  }
  std::chrono::steady_clock::time_point last_ = std::chrono::steady_clock::now();
  double last_cpu_ = ProcessCpuSeconds(), cpu_lap_ = 0;
};

std::string RunsDir(const pipeline::PredictionRegistry& registry, const std::string& name) {
  return (fs::path(registry.PredictionDir(name)) / "runs").string();
}

// Run records and drift references carry a checksum (common/checked_json.h).
Result<nlohmann::json> ReadJson(const std::string& path) {
  ASSIGN_OR_RETURN(std::string text, ReadChecksummedFile(path));
  auto j = nlohmann::json::parse(text, nullptr, false);
  if (j.is_discarded()) return Corruption("{}: not valid JSON", path);
  return j;
}

// Distinct decile cut points of `values` (sorted in place): bin b holds values v with
// edges[b-1] <= v < edges[b].
// Cut points of the deciles of the values that are numbers: NaN is "missing" (the outcome
// family's "hours since last" of a user who never did it) and has a bin of its own.
std::vector<double> DecileEdges(const std::vector<double>& values) {
  std::vector<double> present;
  present.reserve(values.size());
  for (double v : values)
    if (!std::isnan(v)) present.push_back(v);
  std::vector<double> edges;
  if (present.empty()) return edges;
  std::sort(present.begin(), present.end());
  for (int k = 1; k < kDriftBins; ++k) {
    double v = present[present.size() * k / kDriftBins];
    if (edges.empty() || v > edges.back()) edges.push_back(v);
  }
  return edges;
}

// The bin of a value: edges.size() + 1 bins by the cut points, then one for NaN.
size_t BinOf(const std::vector<double>& edges, double v) {
  if (std::isnan(v)) return edges.size() + 1;
  return static_cast<size_t>(std::upper_bound(edges.begin(), edges.end(), v) - edges.begin());
}

// Bin shares of `values` over `edges`, the missing values' share last. (References written
// before the missing bin existed have one share fewer; PSI compares the bins both have.)
std::vector<double> Shares(const std::vector<double>& edges, std::span<const double> values) {
  std::vector<double> counts(edges.size() + 2, 0.0);
  for (double v : values) counts[BinOf(edges, v)] += 1;
  for (double& c : counts) c /= std::max<size_t>(1, values.size());
  return counts;
}

// Feature values of a row sample, column by column, and the margins of the same rows.
struct Sample {
  std::vector<std::vector<double>> columns;
  std::vector<double> margins;
};

// Scores `users` in blocks, calling `on_rows` on each dense sub-block with the global
// index of its first row.
struct BlockScores {
  std::vector<ActorId> actors;
  std::vector<double> scores, margins;
  double features_seconds = 0, model_seconds = 0, features_cpu = 0, model_cpu = 0;
};

Result<BlockScores> ScoreUsers(const QueryEngine& engine, const ScoringModel& model, const UserSet& users,
                               size_t users_per_block, size_t sample_stride, Sample* sample) {
  BlockScores out;
  const size_t cols = model.bundle.feature_names.size();
  if (sample) sample->columns.assign(cols, {});
  // Sized once: growing by doublings would fault in every intermediate copy.
  out.actors.reserve(users.actors.size());
  out.scores.reserve(users.actors.size());
  out.margins.reserve(users.actors.size());
  for (size_t begin = 0; begin < users.actors.size(); begin += users_per_block) {
    size_t end = std::min(users.actors.size(), begin + users_per_block);
    UserSet block{users.cutoff_ms, {users.actors.begin() + begin, users.actors.begin() + end}};
    Stopwatch watch;
    ASSIGN_OR_RETURN(SparseFeatureMatrix matrix, engine.SparseFeatures(model.spec, users.cutoff_ms, block));
    out.features_seconds += watch.Lap();
    out.features_cpu += watch.cpu_lap();
    if (sample) {
      // The drift sample's rows, made dense one at a time.
      std::vector<float> dense;
      for (size_t r = 0; r < matrix.rows(); ++r) {
        if ((begin + r) % sample_stride != 0) continue;
        DensifyRows(matrix, r, r + 1, dense);
        for (size_t c = 0; c < cols; ++c) sample->columns[c].push_back(dense[c]);
      }
    }
    watch.Lap();
    ASSIGN_OR_RETURN(ScoredRows scored, ScoreMatrix(model, matrix));
    out.model_seconds += watch.Lap();
    out.model_cpu += watch.cpu_lap();
    out.actors.insert(out.actors.end(), matrix.actors.begin(), matrix.actors.end());
    out.scores.insert(out.scores.end(), scored.scores.begin(), scored.scores.end());
    out.margins.insert(out.margins.end(), scored.margins.begin(), scored.margins.end());
  }
  if (sample) {
    for (size_t i = 0; i < out.margins.size(); i += sample_stride) sample->margins.push_back(out.margins[i]);
  }
  return out;
}

size_t StrideFor(size_t rows) { return std::max<size_t>(1, (rows + kDriftSampleRows - 1) / kDriftSampleRows); }

// Whether a stored drift reference has the shape CompareWithReference reads: `columns`
// features, each with numeric edges and shares, and the margin's.
bool WellFormedReference(const nlohmann::json& reference, size_t columns) {
  auto numbers = [](const nlohmann::json& j) {
    if (!j.is_array()) return false;
    for (const auto& v : j)
      if (!v.is_number()) return false;
    return true;
  };
  auto histogram = [&](const nlohmann::json& h) {
    return h.is_object() && h.contains("edges") && h.contains("shares") && numbers(h["edges"]) &&
           numbers(h["shares"]);
  };
  if (!reference.is_object() || !reference.contains("features") || !reference["features"].is_array() ||
      reference["features"].size() != columns || !reference.contains("margin") || !histogram(reference["margin"]) ||
      !reference.contains("cutoff") || !reference.contains("mean_score") || !reference["mean_score"].is_number())
    return false;
  for (const auto& f : reference["features"])
    if (!histogram(f)) return false;
  return true;
}

// The training-time histograms of a version: its cohort at its training cutoff, scored
// by itself. Computed by the first full run of the version and kept beside the runs.
Result<nlohmann::json> DriftReference(const pipeline::PredictionRegistry& registry, const QueryEngine& engine,
                                      const ScoringModel& model) {
  std::string dir = RunsDir(registry, model.name);
  std::string path = fmt::format("{}/reference-v{}.json", dir, model.version);
  // The reference is a cache of what the version's training cohort looked like: a damaged
  // one (its checksum does not match, it is unreadable, or not the shape compared
  // against) is computed again, not trusted.
  if (fs::exists(path)) {
    auto stored = ReadJson(path);
    if (stored.ok() && WellFormedReference(*stored, model.bundle.feature_names.size())) return stored;
  }
  std::error_code ec;
  fs::create_directories(dir, ec);
  if (ec) return IoError("{}: {}", dir, ec.message());
  ASSIGN_OR_RETURN(UserSet users, engine.Cohort(model.cohort, model.train_cutoff_ms));
  // Only the sample's users are needed.
  size_t stride = StrideFor(users.actors.size());
  UserSet sampled{users.cutoff_ms, {}};
  for (size_t i = 0; i < users.actors.size(); i += stride) sampled.actors.push_back(users.actors[i]);
  Sample sample;
  ASSIGN_OR_RETURN(BlockScores scored, ScoreUsers(engine, model, sampled, 1 << 20, 1, &sample));
  nlohmann::json features = nlohmann::json::array();
  for (size_t c = 0; c < sample.columns.size(); ++c) {
    std::vector<double> edges = DecileEdges(sample.columns[c]);
    features.push_back({{"name", model.bundle.feature_names[c]}, {"edges", edges},
                        {"shares", Shares(edges, sample.columns[c])}});
  }
  std::vector<double> margin_edges = DecileEdges(sample.margins);
  nlohmann::json reference = {{"version", model.version},
                              {"cutoff", FormatTime(model.train_cutoff_ms)},
                              {"users", sampled.actors.size()},
                              {"features", features},
                              {"margin", {{"edges", margin_edges}, {"shares", Shares(margin_edges, sample.margins)}}},
                              {"mean_score", scored.scores.empty() ? 0.0
                                                                   : std::accumulate(scored.scores.begin(),
                                                                                     scored.scores.end(), 0.0) /
                                                                         scored.scores.size()}};
  RETURN_IF_ERROR(WriteChecksummedFile(path, reference.dump()));
  return reference;
}

nlohmann::json CompareWithReference(const nlohmann::json& reference, const ScoringModel& model, const Sample& sample,
                                    double mean_score) {
  nlohmann::json features = nlohmann::json::array();
  nlohmann::json flagged = nlohmann::json::array();
  const auto& ref_features = reference["features"];
  for (size_t c = 0; c < sample.columns.size() && c < ref_features.size(); ++c) {
    auto edges = ref_features[c]["edges"].get<std::vector<double>>();
    auto expected = ref_features[c]["shares"].get<std::vector<double>>();
    double psi = PopulationStabilityIndex(expected, Shares(edges, sample.columns[c]));
    features.push_back({{"name", model.bundle.feature_names[c]}, {"psi", psi}});
    if (psi > kDriftThreshold) flagged.push_back(model.bundle.feature_names[c]);
  }
  auto margin_edges = reference["margin"]["edges"].get<std::vector<double>>();
  auto margin_expected = reference["margin"]["shares"].get<std::vector<double>>();
  double score_psi = PopulationStabilityIndex(margin_expected, Shares(margin_edges, sample.margins));
  return {{"reference", reference["cutoff"]},
          {"threshold", kDriftThreshold},
          {"features", features},
          {"flagged_features", flagged},
          {"score_psi", score_psi},
          {"score_shifted", score_psi > kDriftThreshold},
          {"training_mean_score", reference.value("mean_score", 0.0)},
          {"mean_score", mean_score}};
}

// The scores, percentiles and model version as user properties of the scored actors, in
// one transaction, as number columns (store/reader.h NumberColumnBatch): one batch per
// million users bounds a log record at ~20 MB.
Status WriteBack(Transaction& txn, const std::string& name, int version, int64_t cutoff_ms,
                 std::span<const ActorId> actors, const std::vector<double>& scores,
                 const std::vector<double>& percentiles) {
  constexpr size_t kUsersPerBatch = 1 << 20;
  // The store wants ascending actors; blocks of the cohort come in actor order already.
  std::span<const ActorId> sorted_actors = actors;
  std::span<const double> sorted_scores = scores, sorted_percentiles = percentiles;
  std::vector<ActorId> actor_copy;
  std::vector<double> score_copy, percentile_copy;
  if (!std::is_sorted(actors.begin(), actors.end())) {
    std::vector<size_t> order(actors.size());
    std::iota(order.begin(), order.end(), size_t{0});
    std::sort(order.begin(), order.end(), [&](size_t a, size_t b) { return actors[a] < actors[b]; });
    for (size_t i : order) {
      actor_copy.push_back(actors[i]);
      score_copy.push_back(scores[i]);
      percentile_copy.push_back(percentiles[i]);
    }
    sorted_actors = actor_copy;
    sorted_scores = score_copy;
    sorted_percentiles = percentile_copy;
  }
  const std::vector<double> versions(std::min(actors.size(), kUsersPerBatch), static_cast<double>(version));
  for (size_t begin = 0; begin < actors.size(); begin += kUsersPerBatch) {
    const size_t n = std::min(actors.size(), begin + kUsersPerBatch) - begin;
    NumberPropertyUpdates updates;
    updates.time_ms = cutoff_ms;
    updates.actors = sorted_actors.subspan(begin, n);
    updates.columns = {{ScoreProperty(name), sorted_scores.subspan(begin, n)},
                       {PercentileProperty(name), sorted_percentiles.subspan(begin, n)},
                       {ModelVersionProperty(name), std::span<const double>(versions).first(n)}};
    RETURN_IF_ERROR(txn.SetNumbers(updates).status());
  }
  return txn.Commit();
}

// The loaded versions of this process: a resident scheduler runs the same version every
// hour, and loading it (files, two XGBoost boosters, the tree walk's self-check) would be
// a fifth of an hourly run. A version directory appears whole and never changes; its
// modification time is part of the key in case a prediction is deleted and recreated.
Result<std::shared_ptr<const ScoringModel>> CachedModel(const pipeline::PredictionRegistry& registry,
                                                        const std::string& name, std::optional<int> version) {
  if (!version) {
    ASSIGN_OR_RETURN(std::vector<int> versions, registry.Versions(name));
    if (versions.empty())
      return NotFound("prediction \"{}\" has no trained version; run `sibyl train {}` first", name, name);
    version = versions.back();
  }
  std::string dir = registry.VersionDir(name, *version);
  std::error_code ec;
  auto stamp = fs::last_write_time(dir, ec);
  std::string key = fmt::format("{}@{}", dir, ec ? 0 : stamp.time_since_epoch().count());
  // Never destroyed: XGBoost's own globals may be gone by the time static objects are,
  // and freeing a booster then crashes the exit.
  static std::mutex& mutex = *new std::mutex;
  static auto& cache = *new std::vector<std::pair<std::string, std::shared_ptr<const ScoringModel>>>;  // newest last
  {
    std::lock_guard lock(mutex);
    for (const auto& [k, model] : cache)
      if (k == key) return model;
  }
  ASSIGN_OR_RETURN(ScoringModel loaded, LoadScoringModel(registry, name, version));
  auto model = std::make_shared<const ScoringModel>(std::move(loaded));
  // Two runs may share a cached model at once: only models scored without an XGBoost
  // booster (the native tree walk, linear models' own code) are kept.
  if (model->sparse_predictor && !model->sparse_predictor->native()) return model;
  std::lock_guard lock(mutex);
  cache.emplace_back(key, model);
  if (cache.size() > 4) cache.erase(cache.begin());
  return model;
}

Result<std::string> NextRunFile(const std::string& dir) {
  std::error_code ec;
  fs::create_directories(dir, ec);
  if (ec) return IoError("{}: {}", dir, ec.message());
  int next = 1;
  for (const auto& entry : fs::directory_iterator(dir)) {
    std::string stem = entry.path().stem().string();
    if (entry.path().extension() == ".json" && !stem.empty() &&
        std::all_of(stem.begin(), stem.end(), [](char c) { return c >= '0' && c <= '9'; }))
      next = std::max(next, std::atoi(stem.c_str()) + 1);
  }
  return fmt::format("{}/{:06d}.json", dir, next);
}

}  // namespace

double PopulationStabilityIndex(std::span<const double> expected, std::span<const double> actual) {
  double psi = 0;
  for (size_t i = 0; i < expected.size() && i < actual.size(); ++i) {
    double e = std::max(expected[i], 1e-4), a = std::max(actual[i], 1e-4);
    psi += (a - e) * std::log(a / e);
  }
  return psi;
}

Result<std::vector<nlohmann::json>> ListRuns(const pipeline::PredictionRegistry& registry, const std::string& name) {
  std::vector<std::pair<std::string, nlohmann::json>> runs;
  std::string dir = RunsDir(registry, name);
  if (!fs::exists(dir)) return std::vector<nlohmann::json>{};
  for (const auto& entry : fs::directory_iterator(dir)) {
    std::string stem = entry.path().stem().string();
    if (entry.path().extension() != ".json" || stem.starts_with("reference")) continue;
    ASSIGN_OR_RETURN(nlohmann::json j, ReadJson(entry.path().string()));
    runs.emplace_back(stem, std::move(j));
  }
  std::sort(runs.begin(), runs.end(), [](const auto& a, const auto& b) { return a.first < b.first; });
  std::vector<nlohmann::json> out;
  for (auto& [stem, j] : runs) out.push_back(std::move(j));
  return out;
}

Result<nlohmann::json> LatestFullRun(const pipeline::PredictionRegistry& registry, const std::string& name,
                                     int version) {
  // Newest first, reading records only until the first full run of the version: an
  // hourly run must not parse every record of a month of hourly runs.
  std::vector<std::string> stems;
  std::string dir = RunsDir(registry, name);
  if (fs::exists(dir))
    for (const auto& entry : fs::directory_iterator(dir)) {
      std::string stem = entry.path().stem().string();
      if (entry.path().extension() == ".json" && !stem.starts_with("reference")) stems.push_back(stem);
    }
  std::sort(stems.rbegin(), stems.rend());
  for (const std::string& stem : stems) {
    ASSIGN_OR_RETURN(nlohmann::json run, ReadJson((fs::path(dir) / (stem + ".json")).string()));
    if (run.value("kind", "") == "full" && run.value("version", 0) == version) return run;
  }
  return FailedPrecondition("no full scoring run of {} version {} yet: run `sibyl score {}` without "
                            "--active-within first (its score distribution gives the percentiles)",
                            name, version, name);
}

Result<ScoreRunResult> RunScoring(const pipeline::PredictionRegistry& registry, EventStore& store,
                                  const std::string& name, const ScoreRequest& request) {
  Stopwatch total, watch;
  nlohmann::json timings = nlohmann::json::object(), cpu = nlohmann::json::object(),
                 rss = nlohmann::json::object();
  // Wall and CPU seconds of the stage that ends here, and the peak memory after it.
  auto mark = [&](const char* stage) {
    timings[stage] = watch.Lap();
    cpu[stage] = watch.cpu_lap();
    rss[stage] = std::round(Stopwatch::PeakRssMb());
  };
  ASSIGN_OR_RETURN(std::shared_ptr<const ScoringModel> loaded_model, CachedModel(registry, name, request.version));
  const ScoringModel& model = *loaded_model;
  std::shared_ptr<const EventReader> reader = store.Snapshot();
  const int64_t cutoff = request.as_of_ms ? FloorHour(*request.as_of_ms) : DefaultScoringCutoff(*reader);
  auto engine = MakeEmbeddedQueryEngine(reader, request.parallel);
  mark("load");

  const bool full = !request.active_within_ms.has_value();
  const bool shard_run = !request.shard.empty();
  nlohmann::json reference_run;
  std::vector<double> quantiles;
  if (!full || shard_run) {
    ASSIGN_OR_RETURN(reference_run, LatestFullRun(registry, name, model.version));
    quantiles = reference_run["quantiles"].get<std::vector<double>>();
  }
  CohortExpr cohort = model.cohort;
  if (!full) {
    CohortExpr active;
    active.kind = CohortExpr::Kind::kActiveWithin;
    // Half a millisecond over, so the cohort's truncation to whole ms gives the window exactly.
    active.within_days = (static_cast<double>(*request.active_within_ms) + 0.5) / kMsPerDay;
    cohort = CohortExpr{};
    cohort.children = {model.cohort, active};
  }
  UserSet users;
  if (full) {
    ASSIGN_OR_RETURN(users, engine->Cohort(cohort, cutoff));
  } else {
    // Only the users with an event in the window can be members: find them in the
    // window's segments, then evaluate the cohort on them alone (their events gathered
    // by binary search), not on every user of the store.
    ASSIGN_OR_RETURN(std::vector<ActorId> active,
                     ActiveActors(*reader, cutoff, *request.active_within_ms, request.parallel));
    users.cutoff_ms = cutoff;
    ASSIGN_OR_RETURN(users.actors, EvaluateCohortFor(*reader, cohort, cutoff, active, request.parallel));
  }
  mark("cohort");

  Sample sample;
  const bool drift = full && !shard_run && request.drift;
  ASSIGN_OR_RETURN(BlockScores scored, ScoreUsers(*engine, model, users, std::max<size_t>(1, request.users_per_block),
                                                  StrideFor(users.actors.size()), drift ? &sample : nullptr));
  timings["features"] = scored.features_seconds;
  timings["model"] = scored.model_seconds;
  cpu["features"] = scored.features_cpu;
  cpu["model"] = scored.model_cpu;
  rss["model"] = std::round(Stopwatch::PeakRssMb());
  watch.Lap();

  ScoreRunResult result;
  if (full && !shard_run) quantiles = MarginQuantiles(scored.margins);
  result.percentiles = PercentilesOf(quantiles, scored.margins, request.parallel);
  result.scores = std::move(scored.scores);
  mark("percentiles");

  if (request.write_back) {
    ASSIGN_OR_RETURN(auto txn, store.Begin());
    RETURN_IF_ERROR(WriteBack(*txn, name, model.version, cutoff, scored.actors, result.scores, result.percentiles));
  }
  result.actors = std::move(scored.actors);
  mark("write_back");

  nlohmann::json& r = result.record;
  r = {{"prediction", name},
       {"version", model.version},
       {"kind", !full ? "active" : shard_run ? "shard" : "full"},
       {"cutoff", FormatTime(cutoff)},
       {"cutoff_ms", cutoff},
       {"task", model.regression() ? "revenue" : "probability"},
       {"users_scored", result.scores.size()},
       {"written_back", request.write_back},
       {"score_summary", ScoreSummary(result.scores)}};
  if (full && !shard_run) {
    r["quantiles"] = quantiles;
  } else {
    if (!full) r["active_within_ms"] = *request.active_within_ms;
    if (shard_run) r["shard"] = request.shard;
    r["percentiles_from"] = reference_run.value("cutoff", "");
  }
  if (drift && !result.scores.empty()) {
    ASSIGN_OR_RETURN(nlohmann::json reference, DriftReference(registry, *engine, model));
    double mean = r["score_summary"].value("mean", 0.0);
    r["drift"] = CompareWithReference(reference, model, sample, mean);
    mark("drift");
  }
  timings["total"] = total.Lap();
  cpu["total"] = total.cpu_lap();
  r["seconds"] = timings;
  r["cpu_seconds"] = cpu;
  r["peak_rss_mb"] = rss;
  if (request.write_back) {
    ASSIGN_OR_RETURN(result.run_file, NextRunFile(RunsDir(registry, name)));
    RETURN_IF_ERROR(WriteChecksummedFile(result.run_file, r.dump(1)));
  }
  return result;
}

Result<ScoreRunResult> RunScoringInParts(const pipeline::PredictionRegistry& registry, const std::string& name,
                                         const ScoreRequest& request, const ScoreParts& parts) {
  if (request.active_within_ms || !request.shard.empty())
    return InvalidArgument("a run in parts is a full run: no active window, no shard");
  if (parts.count == 0) return InvalidArgument("a run in parts needs at least one part");
  Stopwatch total, watch;
  nlohmann::json timings = nlohmann::json::object();
  ASSIGN_OR_RETURN(std::shared_ptr<const ScoringModel> loaded_model, CachedModel(registry, name, request.version));
  const ScoringModel& model = *loaded_model;

  // What each part leaves behind once its store is closed: names, not the part's ids.
  struct PartScores {
    int64_t cutoff = 0;
    std::vector<std::string> names;
    std::vector<double> scores, margins;
    Sample sample;
    nlohmann::json reference;
    Status status;
  };
  std::vector<PartScores> done(parts.count);
  auto score_part = [&](size_t i) -> Status {
    PartScores& out = done[i];
    ASSIGN_OR_RETURN(std::unique_ptr<EventStore> store, parts.open(i));
    std::shared_ptr<const EventReader> reader = store->Snapshot();
    out.cutoff = request.as_of_ms ? FloorHour(*request.as_of_ms) : DefaultScoringCutoff(*reader);
    auto engine = MakeEmbeddedQueryEngine(reader, request.parallel);
    ASSIGN_OR_RETURN(UserSet users, engine->Cohort(model.cohort, out.cutoff));
    // Parts are hash samples of users: each keeps about its share of the drift sample, and
    // the first computes the version's drift reference if there is none.
    const size_t stride = StrideFor(users.actors.size() * parts.count);
    ASSIGN_OR_RETURN(BlockScores scored, ScoreUsers(*engine, model, users, std::max<size_t>(1, request.users_per_block),
                                                    stride, request.drift ? &out.sample : nullptr));
    if (request.drift && i == 0) {
      ASSIGN_OR_RETURN(out.reference, DriftReference(registry, *engine, model));
    }
    out.names.reserve(scored.actors.size());
    for (ActorId a : scored.actors) out.names.emplace_back(reader->actors().name(a));
    out.scores = std::move(scored.scores);
    out.margins = std::move(scored.margins);
    return Status::Ok();
  };
  {
    std::atomic<size_t> next{0};
    std::vector<std::jthread> workers;
    for (size_t w = 0; w < std::clamp<size_t>(parts.workers, 1, parts.count); ++w)
      workers.emplace_back([&] {
        for (size_t i; (i = next++) < parts.count;) done[i].status = score_part(i);
      });
  }
  for (size_t i = 0; i < parts.count; ++i)
    if (!done[i].status.ok()) return done[i].status.WithContext(fmt::format("part {} of {}", i + 1, parts.count));
  const int64_t cutoff = done[0].cutoff;
  for (const PartScores& p : done)
    if (p.cutoff != cutoff)
      return Internal("the parts disagree on the cutoff ({} and {})", FormatTime(cutoff), FormatTime(p.cutoff));
  timings["score_parts"] = watch.Lap();

  // The whole population's percentiles, then one write-back of every part's users.
  std::vector<std::string> names;
  ScoreRunResult result;
  std::vector<double> margins;
  Sample sample;
  for (PartScores& p : done) {
    for (auto& n : p.names) names.push_back(std::move(n));
    result.scores.insert(result.scores.end(), p.scores.begin(), p.scores.end());
    margins.insert(margins.end(), p.margins.begin(), p.margins.end());
    sample.columns.resize(p.sample.columns.size());
    for (size_t c = 0; c < p.sample.columns.size(); ++c)
      sample.columns[c].insert(sample.columns[c].end(), p.sample.columns[c].begin(), p.sample.columns[c].end());
    sample.margins.insert(sample.margins.end(), p.sample.margins.begin(), p.sample.margins.end());
  }
  const std::vector<double> quantiles = MarginQuantiles(margins);
  result.percentiles = PercentilesOf(quantiles, margins, request.parallel);
  timings["percentiles"] = watch.Lap();
  if (request.write_back) {
    // Ids 0..n-1 index `names`: the writer names each row's user.
    result.actors.resize(names.size());
    std::iota(result.actors.begin(), result.actors.end(), ActorId{0});
    ASSIGN_OR_RETURN(std::unique_ptr<Transaction> txn,
                     parts.begin_write([&names](ActorId a) { return names[a]; }));
    RETURN_IF_ERROR(WriteBack(*txn, name, model.version, cutoff, result.actors, result.scores, result.percentiles));
  }
  timings["write_back"] = watch.Lap();

  nlohmann::json& r = result.record;
  r = {{"prediction", name},
       {"version", model.version},
       {"kind", "full"},
       {"parts", parts.count},
       {"cutoff", FormatTime(cutoff)},
       {"cutoff_ms", cutoff},
       {"task", model.regression() ? "revenue" : "probability"},
       {"users_scored", result.scores.size()},
       {"written_back", request.write_back},
       {"score_summary", ScoreSummary(result.scores)},
       {"quantiles", quantiles}};
  if (request.drift && !result.scores.empty() && !done[0].reference.is_null())
    r["drift"] = CompareWithReference(done[0].reference, model, sample, r["score_summary"].value("mean", 0.0));
  timings["total"] = total.Lap();
  r["seconds"] = timings;
  r["peak_rss_mb"] = std::round(Stopwatch::PeakRssMb());
  if (request.write_back) {
    ASSIGN_OR_RETURN(result.run_file, NextRunFile(RunsDir(registry, name)));
    RETURN_IF_ERROR(WriteChecksummedFile(result.run_file, r.dump(1)));
  }
  return result;
}

}  // namespace sibyl::scoring
