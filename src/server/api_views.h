// JSON views of predictions shared by the API and the web pages. Internal to src/server.
#pragma once

#include <functional>
#include <memory>
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

using RouteHandler = std::function<void(const httplib::Request&, httplib::Response&)>;
// Wraps a handler with the admin check (for state-changing routes, the CSRF check too) and
// its route label for metrics.
using AdminWrap = std::function<RouteHandler(const char* route, RouteHandler handler)>;

// The workspace endpoints (api_workspace.cc): audience, export, saved cohorts, a user's
// events, scoring runs, taxonomy. Registered by RegisterApiRoutes before its catch-all;
// the returned state must live as long as the routes.
std::shared_ptr<void> RegisterWorkspaceRoutes(Router& http, ServerContext& ctx, const AdminWrap& admin,
                                              const AdminWrap& change);

}  // namespace sibyl::server
