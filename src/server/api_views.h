// JSON views of predictions shared by the API and the web pages. Internal to src/server.
#pragma once

#include <string>

#include <nlohmann/json.hpp>

#include "pipeline/registry.h"
#include "server/context.h"

namespace sibyl::server {

// A version's version.json, or null.
nlohmann::json VersionSummary(const pipeline::PredictionRegistry& registry, const std::string& name, int version);
// One row of the predictions list: definition, latest version and its metrics, schedule.
nlohmann::json PredictionRow(const ServerContext& ctx, const pipeline::PredictionDefinition& definition);
// The row plus every version, the latest version's drivers and summary, the latest score run.
Result<nlohmann::json> PredictionDetail(const ServerContext& ctx, const std::string& name);

}  // namespace sibyl::server
