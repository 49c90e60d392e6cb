// A scoring run: the prediction's cohort at T (or its users active in the last window),
// features in blocks of users, model and calibration, percentiles, write-back of
// sibyl.NAME.{score,percentile,model_version} at time T in one store transaction, drift
// against the training distributions, and a run record:
//
//   <data>/predictions/<name>/runs/<nnnnnn>.json      one per run (docs/SCORING.md)
//   <data>/predictions/<name>/runs/reference-v<n>.json training-time histograms of version n
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "common/status.h"
#include "pipeline/registry.h"
#include "scoring/scoring.h"
#include "store/event_store.h"

namespace sibyl::scoring {

struct ScoreRequest {
  std::optional<int64_t> as_of_ms;         // floored to the hour; default DefaultScoringCutoff
  std::optional<int64_t> active_within_ms;  // hourly run: only users active in [T - w, T)
  std::optional<int> version;               // default: the latest
  size_t users_per_block = 1 << 18;         // feature blocks (bounded memory; see SCORING.md)
  bool write_back = true;
  bool drift = true;                        // full runs only
  bool parallel = true;
  // A shard's run on a cluster ("2/4"; empty: not one): the store is the slice of that
  // shard's users. Its percentiles come from the newest full run's score distribution,
  // as an active run's do, so that every shard's percentiles are on one scale.
  std::string shard;
};

struct ScoreRunResult {
  nlohmann::json record;  // what the run file holds
  std::string run_file;
  // Every scored user, as actor ids of the store (QueryEngine::UserIds names them: a
  // million id strings would cost a tenth of a run, and nothing in a run needs them).
  std::vector<ActorId> actors;
  std::vector<double> scores;
  std::vector<double> percentiles;
};

// Runs one scoring run. `store` must be open for writing when request.write_back.
Result<ScoreRunResult> RunScoring(const pipeline::PredictionRegistry& registry, EventStore& store,
                                  const std::string& name, const ScoreRequest& request);

// A store held in parts, one open at a time (a cluster's shards): `open(i)` opens part i,
// whose snapshot owns only that part's users; `begin_write(names)` starts a write-back
// whose actor ids are indexes into a list of actor names.
struct ScoreParts {
  size_t count = 0;
  size_t workers = 1;  // parts open at once
  std::function<Result<std::unique_ptr<EventStore>>(size_t part)> open;
  std::function<Result<std::unique_ptr<Transaction>>(std::function<std::string(ActorId)> names)> begin_write;
};

// A full run over `parts`: each part's users are scored while it is open (the part is
// closed before the next opens, past `workers`), the scores of all parts give the
// percentiles and the quantiles, and one write-back writes every user's. The same scores,
// percentiles and record as RunScoring on one store holding all parts, with memory for
// `workers` parts and every user's name and score at once.
Result<ScoreRunResult> RunScoringInParts(const pipeline::PredictionRegistry& registry, const std::string& name,
                                         const ScoreRequest& request, const ScoreParts& parts);

// The run records of `name`, oldest first.
Result<std::vector<nlohmann::json>> ListRuns(const pipeline::PredictionRegistry& registry, const std::string& name);
// The newest full run of `version` (its quantiles are the reference of hourly runs).
Result<nlohmann::json> LatestFullRun(const pipeline::PredictionRegistry& registry, const std::string& name,
                                     int version);

// Population stability index of `actual` against `expected` bin shares (each bin floored
// at 1e-4 so empty bins stay finite).
double PopulationStabilityIndex(std::span<const double> expected, std::span<const double> actual);

}  // namespace sibyl::scoring
