// What real-time scoring keeps loaded: per prediction, the latest trained version's
// ScoringModel and the reference quantiles of its newest full run (for percentiles).
// Loading a model reads its bundle from disk (tens of ms), far more than scoring one user,
// so it is done once per version. An entry is dropped when a run trains or scores the
// prediction, when it is deleted, and re-validated against the registry every few seconds
// (a version trained by another process shows up without a restart).
#pragma once

#include <chrono>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "pipeline/registry.h"
#include "scoring/scoring.h"

namespace sibyl::server {

struct CachedModel {
  std::shared_ptr<const scoring::ScoringModel> model;  // shared: a reload keeps a loaded version
  std::vector<double> quantiles;  // empty: no full run of this version yet
  std::chrono::steady_clock::time_point checked;
};

class ModelCache {
 public:
  explicit ModelCache(std::string data_dir, std::chrono::milliseconds recheck = std::chrono::seconds(5))
      : registry_(std::move(data_dir)), recheck_(recheck) {}

  // The latest version of `name`. NotFound for unknown predictions, FailedPrecondition
  // when nothing is trained yet.
  Result<std::shared_ptr<const CachedModel>> Get(const std::string& name);
  void Invalidate(const std::string& name);

 private:
  pipeline::PredictionRegistry registry_;
  std::chrono::milliseconds recheck_;
  std::mutex mutex_;
  std::map<std::string, std::shared_ptr<const CachedModel>> entries_;
  std::mutex load_mutex_;  // one load at a time: concurrent misses load once
};

}  // namespace sibyl::server
