#include "server/model_cache.h"

#include "scoring/score_run.h"

namespace sibyl::server {

Result<std::shared_ptr<const CachedModel>> ModelCache::Get(const std::string& name) {
  const auto now = std::chrono::steady_clock::now();
  {
    std::lock_guard lock(mutex_);
    auto it = entries_.find(name);
    if (it != entries_.end() && now - it->second->checked < recheck_) return it->second;
  }
  std::lock_guard load(load_mutex_);
  std::shared_ptr<const CachedModel> current;
  {
    std::lock_guard lock(mutex_);
    auto it = entries_.find(name);
    if (it != entries_.end()) {
      if (std::chrono::steady_clock::now() - it->second->checked < recheck_) return it->second;
      current = it->second;
    }
  }
  RETURN_IF_ERROR(registry_.Get(name).status());
  ASSIGN_OR_RETURN(std::vector<int> versions, registry_.Versions(name));
  if (versions.empty()) {
    Invalidate(name);
    return FailedPrecondition("prediction \"{}\" has no trained version yet", name);
  }
  auto entry = std::make_shared<CachedModel>();
  if (current && current->model->version == versions.back()) {
    entry->model = current->model;  // same version: keep the loaded model
  } else {
    ASSIGN_OR_RETURN(scoring::ScoringModel model, scoring::LoadScoringModel(registry_, name, versions.back()));
    entry->model = std::make_shared<const scoring::ScoringModel>(std::move(model));
  }
  // The reference distribution may have changed (a new full run) even for the same version.
  auto full = scoring::LatestFullRun(registry_, name, entry->model->version);
  if (full.ok() && full->contains("quantiles")) entry->quantiles = (*full)["quantiles"].get<std::vector<double>>();
  entry->checked = std::chrono::steady_clock::now();
  std::lock_guard lock(mutex_);
  entries_[name] = entry;
  return std::shared_ptr<const CachedModel>(entry);
}

void ModelCache::Invalidate(const std::string& name) {
  std::lock_guard lock(mutex_);
  entries_.erase(name);
}

}  // namespace sibyl::server
