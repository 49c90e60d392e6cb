// What every route handler shares: the store, the registry, the scheduler, metrics, logs.
// Internal to src/server.
#pragma once

#include <httplib.h>

#include <atomic>
#include <chrono>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "pipeline/registry.h"
#include "scheduler/scheduler.h"
#include "server/group_commit.h"
#include "server/http/router.h"
#include "server/job_runner.h"
#include "server/log.h"
#include "server/metrics.h"
#include "server/model_cache.h"
#include "server/server.h"
#include "store/event_store.h"

namespace sibyl::server {

// Routes are registered on a Router (server/http/router.h): Get/Post/Put/Delete(pattern,
// handler) with handlers taking (const httplib::Request&, httplib::Response&).

struct ServerContext {
  explicit ServerContext(ServerOptions o)
      : options(std::move(o)), registry(options.data_dir), log(stderr, options.log) {}

  ServerOptions options;
  pipeline::PredictionRegistry registry;
  Metrics metrics;
  JsonLog log;
  std::unique_ptr<EventStore> store;
  std::unique_ptr<GroupCommitter> committer;
  std::unique_ptr<ModelCache> models;
  std::unique_ptr<ServerJobRunner> runner;
  std::unique_ptr<scheduler::Scheduler> scheduler;  // null when disabled
  std::atomic<uint64_t> events_since_checkpoint{0};
  std::mutex predictions_mutex;  // create/delete and the cadences they change
  std::shared_ptr<void> api_keepalive;  // route handler state, alive as long as the routes

  // Gives the scheduler the cadences of every stored definition (after create/delete).
  Status RefreshCadences();

  // On a ClickHouse cluster the store writes to the cluster and holds no events; handlers
  // read through these instead of store->Snapshot() (docs/SERVER.md, "On a ClickHouse
  // cluster").
  bool on_cluster() const { return options.cluster != nullptr; }
  // A reader holding `user_ids` (the API's ids: "device:ID" for a device): the store's
  // snapshot, or on a cluster a slice of only these users and the rows deciding their
  // identities, pulled for this request and deleted with the reader.
  Result<std::shared_ptr<const EventReader>> ReaderOfUsers(const std::vector<std::string>& user_ids) const;
  // The names a definition may use (creating a prediction or a cohort checks them): the
  // snapshot's dictionaries, or on a cluster one DISTINCT query a shard, not a pull.
  Result<std::unique_ptr<StoreNames>> NamesOfStore() const;
};

// 501 for an endpoint a cluster-backed server does not answer, saying what to use instead.
void SendNotOnCluster(httplib::Response& res, const std::string& endpoint, const std::string& instead);

// Per-request values the logger and metrics read after the handler (the HTTP server runs
// a request's handler and its logging on the same worker thread; http/http_server.h).
struct RequestInfo {
  std::chrono::steady_clock::time_point started;
  const char* route = "other";  // low-cardinality route family for metrics
  uint64_t events = 0;          // ingest: events accepted
  std::string error;            // a short reason for 4xx/5xx (never a key)
};
RequestInfo& CurrentRequest();

// JSON replies.
void SendJson(httplib::Response& res, int status, const nlohmann::json& body);
// {"error": {"code": "not_found", "message": ...}} with the status mapped from `status`.
void SendStatus(httplib::Response& res, const Status& status);
void SendError(httplib::Response& res, int http_status, const std::string& code, const std::string& message);
int HttpStatusFor(const Status& status);

// The admin key check for /api/v1, the web pages and /metrics: Authorization Bearer or
// Basic (password = key), or the session cookie of the login page (session.h). Writes
// 401/403 and returns false when not allowed. `browser` (the pages): without a key or
// session, a redirect to /login instead of 401; with the key in Authorization, a session
// cookie too, so the page's own fetches are signed in.
bool RequireAdmin(const ServerContext& ctx, const httplib::Request& req, httplib::Response& res, bool browser = false);

void RegisterIngestRoutes(Router& http, ServerContext& ctx);
// Amplitude's 429 body (throttled_* and exceeded_daily_quota_* empty: the limit is the
// server's commit queue, not a user or device), as the ingest endpoints send it.
nlohmann::json AmplitudeThrottledBody(const std::string& reason);
// "1 MB (1000000 bytes)", "32 KB (32768 bytes)": a body limit in its vendor's unit.
std::string LimitText(size_t bytes);
void RegisterApiRoutes(Router& http, ServerContext& ctx);
void RegisterWebRoutes(Router& http, ServerContext& ctx);

}  // namespace sibyl::server
