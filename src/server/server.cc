#include "server/server.h"

#include <sys/prctl.h>
#include <sys/resource.h>

#include <chrono>
#include <condition_variable>
#include <filesystem>
#include <thread>

#include <fmt/format.h>

#include "clickhouse/cluster_store.h"
#include "common/file.h"
#include "common/memory.h"
#include "server/context.h"
#include "server/http/http_server.h"
#include "server/idle_trim.h"

namespace sibyl::server {

Status ServerContext::RefreshCadences() {
  if (!scheduler) return Status::Ok();
  std::lock_guard lock(predictions_mutex);
  ASSIGN_OR_RETURN(std::vector<pipeline::PredictionDefinition> definitions, registry.List());
  std::vector<scheduler::Cadence> cadences;
  for (const auto& d : definitions)
    cadences.push_back(scheduler::CadenceFromHours(d.name, d.train_every_hours, d.score_every_hours));
  scheduler->SetCadences(std::move(cadences));
  return Status::Ok();
}

// Descriptors the server needs beside its connections: the store's log and part files,
// training and scoring runs' files, the listening socket.
constexpr size_t kDescriptorsBesideConnections = 256;

// Raises the soft descriptor limit to the hard one (a distribution's default soft limit,
// 1,024, would fail accept() with EMFILE before the connection cap is reached, and the
// refusal path could not even answer), then lowers the connection cap to what fits.
size_t FitConnectionsToDescriptorLimit(size_t wanted, JsonLog& log) {
  rlimit limit{};
  if (getrlimit(RLIMIT_NOFILE, &limit) != 0) return wanted;
  if (limit.rlim_cur != RLIM_INFINITY && (limit.rlim_max == RLIM_INFINITY || limit.rlim_cur < limit.rlim_max)) {
    rlimit raised = limit;
    raised.rlim_cur = limit.rlim_max;
    if (setrlimit(RLIMIT_NOFILE, &raised) == 0) limit = raised;
  }
  if (limit.rlim_cur == RLIM_INFINITY || limit.rlim_cur >= wanted + kDescriptorsBesideConnections) return wanted;
  const size_t fits = limit.rlim_cur > 2 * kDescriptorsBesideConnections
                          ? static_cast<size_t>(limit.rlim_cur) - kDescriptorsBesideConnections
                          : static_cast<size_t>(limit.rlim_cur) / 2;
  log.Write({{"event", "connection_cap_lowered"}, {"wanted", wanted}, {"max_connections", fits},
             {"reason", fmt::format("the descriptor limit (RLIMIT_NOFILE) is {}", limit.rlim_cur)}});
  return fits;
}

// ---- the server ----

struct Server::Impl {
  explicit Impl(ServerOptions options) : ctx(std::move(options)) {}

  ServerContext ctx;
  Router router;
  std::unique_ptr<IdleTrimmer> trimmer;  // null when idle_trim_ms is 0
  std::unique_ptr<HttpServer> http;  // after ctx, router and trimmer, which its threads use
  int port = 0;
  std::thread maintenance;
  std::mutex mutex;
  std::condition_variable wake;
  bool started = false;
  bool stopping = false;
  bool stopped = false;
  std::chrono::steady_clock::time_point last_checkpoint = std::chrono::steady_clock::now();

  Status Checkpoint(const char* why) {
    const uint64_t events = ctx.events_since_checkpoint.exchange(0);
    // On a cluster every acknowledged batch is already on the shards: the store's
    // checkpoint only seals the commit log, at most once an hour (clickhouse/cluster_store.h).
    auto begun = std::chrono::steady_clock::now();
    Status st = ctx.store->Checkpoint();
    const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - begun).count();
    last_checkpoint = std::chrono::steady_clock::now();
    ctx.metrics.Add("sibyl_checkpoints_total", fmt::format("outcome=\"{}\"", st.ok() ? "succeeded" : "failed"));
    nlohmann::json line = {{"event", ctx.on_cluster() ? "cluster_maintenance" : "checkpoint"}, {"reason", why},
                           {"events", events}, {"seconds", seconds}};
    if (!st.ok()) line["error"] = st.ToString();
    ctx.log.Write(line);
    return st;
  }

  // Returns freed heap pages to the OS (jemalloc's purge in release builds, glibc's
  // malloc_trim(0) otherwise: common/memory.h), logging what it gave back.
  void TrimHeap() {
    const auto begun = std::chrono::steady_clock::now();
    const double before = ReadProcessStats().resident_memory_bytes;
    ReleaseFreeHeapMemory();
    const double after = ReadProcessStats().resident_memory_bytes;
    const double ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - begun).count();
    if (ctx.options.log)
      ctx.log.Write({{"event", "memory_trim"}, {"rss_before_mb", before / (1 << 20)},
                     {"rss_after_mb", after / (1 << 20)}, {"ms", ms}});
  }

  void MaintenanceLoop() {
    std::unique_lock lock(mutex);
    while (!stopping) {
      // Twice a second: the idle trimmer's timer (checkpoints need far less).
      wake.wait_for(lock, std::chrono::milliseconds(500));
      if (stopping) break;
      if (trimmer) {
        const bool scheduler_busy =
            ctx.scheduler && (ctx.scheduler->RunningCount() > 0 || ctx.scheduler->QueueDepth() > 0);
        lock.unlock();
        trimmer->Poll(std::chrono::steady_clock::now(), scheduler_busy);
        lock.lock();
        if (stopping) break;
      }
      const uint64_t events = ctx.events_since_checkpoint.load();
      const auto age = std::chrono::steady_clock::now() - last_checkpoint;
      const bool by_size = events >= ctx.options.checkpoint_events;
      const bool by_time = events > 0 && age >= std::chrono::milliseconds(ctx.options.checkpoint_every_ms);
      if (!by_size && !by_time) continue;
      lock.unlock();
      (void)Checkpoint(by_size ? "wal_events" : "interval");
      lock.lock();
    }
  }

  // On the reserved worker: they answer while ingest keeps every other worker busy.
  void RegisterOps() {
    router.Get("/healthz", [this](const httplib::Request&, httplib::Response& res) {
      CurrentRequest().route = "healthz";
      // On a cluster the events are counted by nobody here (a count would query every
      // shard, and liveness must not wait for them): null, with the backend named.
      nlohmann::json events = ctx.on_cluster() ? nlohmann::json() : nlohmann::json(ctx.store->Snapshot()->event_count());
      nlohmann::json body = {{"status", "ok"}, {"events", events}, {"scheduler", ctx.scheduler ? "running" : "disabled"}};
      if (ctx.on_cluster()) body["backend"] = "clickhouse";
      SendJson(res, 200, body);
    }, {.reserved = true});
    router.Get("/metrics", [this](const httplib::Request& req, httplib::Response& res) {
      CurrentRequest().route = "metrics";
      if (!RequireAdmin(ctx, req, res)) return;
      res.status = 200;
      res.set_content(ctx.metrics.RenderPrometheus(), "text/plain; version=0.0.4");
    }, {.reserved = true});
  }

  void DescribeMetrics() {
    Metrics& m = ctx.metrics;
    m.DescribeCounter("sibyl_http_requests_total", "HTTP requests by route family and status code");
    m.DescribeHistogram("sibyl_http_request_seconds", "HTTP request latency by route family", LatencyBuckets());
    m.DescribeCounter("sibyl_ingest_requests_total", "ingest requests received, by endpoint");
    m.DescribeCounter("sibyl_ingest_events_total", "events acknowledged (durable), by endpoint");
    m.DescribeCounter("sibyl_ingest_duplicates_total", "acknowledged events dropped as duplicate insert_ids");
    m.DescribeCounter("sibyl_ingest_bytes_total", "request body bytes of acknowledged ingest requests");
    m.DescribeCounter("sibyl_ingest_errors_total", "rejected ingest requests, by endpoint and status code");
    m.DescribeCounter("sibyl_ingest_invalid_events_total", "invalid events in rejected requests");
    m.DescribeCounter("sibyl_runs_total", "finished scheduler runs by kind and outcome");
    m.DescribeHistogram("sibyl_run_duration_seconds", "scheduler run durations by kind and outcome",
                        RunDurationBuckets());
    m.DescribeHistogram("sibyl_realtime_score_seconds", "real-time score of one user, inside the handler",
                        LatencyBuckets());
    m.DescribeCounter("sibyl_checkpoints_total", "store checkpoints by outcome");
    m.AddCounterFunc("sibyl_memory_trims_total", "times freed heap memory was returned to the OS after an idle spell",
                     [this] { return trimmer ? static_cast<double>(trimmer->trims()) : 0.0; });
    m.AddGauge("sibyl_ingest_queue_events", "events waiting for group commit",
               [this] { return static_cast<double>(ctx.committer->pending_events()); });
    m.AddCounterFunc("sibyl_ingest_commits_total", "store transactions committed by group commit",
                     [this] { return static_cast<double>(ctx.committer->commits()); });
    m.AddGauge("sibyl_scheduler_queue_depth", "scheduler runs queued",
               [this] { return ctx.scheduler ? static_cast<double>(ctx.scheduler->QueueDepth()) : 0.0; });
    m.AddGauge("sibyl_scheduler_running", "scheduler runs in progress",
               [this] { return ctx.scheduler ? static_cast<double>(ctx.scheduler->RunningCount()) : 0.0; });
    if (!ctx.on_cluster()) {  // the cluster's events are not counted here (healthz)
      m.AddGauge("sibyl_store_events", "events in the store",
                 [this] { return static_cast<double>(ctx.store->Snapshot()->event_count()); });
      m.AddGauge("sibyl_wal_events_since_checkpoint", "events acknowledged since the last checkpoint",
                 [this] { return static_cast<double>(ctx.events_since_checkpoint.load()); });
    }
    m.AddGauge("sibyl_http_connections", "open HTTP connections",
               [this] { return static_cast<double>(http->Stats().open_connections); });
    m.AddGauge("sibyl_http_queued_requests", "requests read and waiting for a handler thread",
               [this] { return static_cast<double>(http->Stats().queued_requests); });
    m.AddGauge("sibyl_http_inflight_body_bytes", "request body bytes held (read, queued or being handled)",
               [this] { return static_cast<double>(http->Stats().inflight_body_bytes); });
    m.AddCounterFunc("sibyl_http_connections_total", "HTTP connections accepted",
                     [this] { return static_cast<double>(http->Stats().accepted_connections); });
    m.AddSampled("sibyl_http_refused_total", "requests and connections the HTTP server refused or cut, by reason",
                 "counter", [this] {
                   const HttpServerStats st = http->Stats();
                   return Metrics::Samples{{"reason=\"connection_cap\"", static_cast<double>(st.refused_connections)},
                                           {"reason=\"overloaded\"", static_cast<double>(st.refused_overloaded)},
                                           {"reason=\"too_large\"", static_cast<double>(st.refused_too_large)},
                                           {"reason=\"malformed\"", static_cast<double>(st.bad_requests)},
                                           {"reason=\"timeout\"", static_cast<double>(st.timed_out)},
                                           {"reason=\"idle_at_cap\"", static_cast<double>(st.evicted_idle)}};
                 });
    AddProcessMetrics(m);
  }
};

Server::Server(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}

Server::~Server() { (void)Stop(); }

int Server::port() const { return impl_->port; }

void ApplyServerProcessSettings(bool huge_pages) {
  if (!huge_pages) prctl(PR_SET_THP_DISABLE, 1, 0, 0, 0);
  SetPrefaultStep(size_t{2} << 20);
}

Result<std::unique_ptr<Server>> Server::Open(ServerOptions options) {
  auto impl = std::make_unique<Impl>(std::move(options));
  ServerContext& ctx = impl->ctx;
  const ServerOptions& o = ctx.options;
  if (o.keys.admin.empty() || o.keys.ingest.empty()) return InvalidArgument("the server needs an admin key and an ingest key");
  if (o.cluster) {
    // Events go to the cluster; the data directory keeps predictions, models and runs.
    RETURN_IF_ERROR(CreateDirs(o.data_dir + "/tmp"));
    ASSIGN_OR_RETURN(ctx.store, clickhouse::OpenClusterWriter(*o.cluster, o.data_dir + "/tmp"));
  } else {
    StoreOptions store_options;
    store_options.data_dir = o.data_dir;
    store_options.clock = o.clock;
    store_options.on_notice = [&log = ctx.log](std::string_view notice) {
      log.Write({{"event", "store_notice"}, {"message", notice}});
    };
    ASSIGN_OR_RETURN(ctx.store, EventStore::Open(store_options));
  }
  ctx.committer = std::make_unique<GroupCommitter>(
      *ctx.store, GroupCommitOptions{.max_pending_events = o.limits.max_pending_events});
  ctx.models = std::make_unique<ModelCache>(o.data_dir);
  JobRunnerOptions runner_options;
  runner_options.train_threads = o.train_threads;
  ModelCache* models = ctx.models.get();
  runner_options.on_model_change = [models](const std::string& name) { models->Invalidate(name); };
  runner_options.cluster = o.cluster;
  runner_options.temp_dir = o.data_dir + "/tmp";
  ctx.runner = std::make_unique<ServerJobRunner>(o.data_dir, *ctx.store, ctx.metrics, ctx.log, runner_options);
  if (o.scheduler) {
    scheduler::SchedulerOptions so;
    so.state_dir = (std::filesystem::path(o.data_dir) / "scheduler").string();
    so.workers = o.scheduler_workers;
    so.retry_base_ms = o.retry_base_ms;
    ASSIGN_OR_RETURN(ctx.scheduler, scheduler::Scheduler::Open(so, *o.clock, *ctx.runner));
    RETURN_IF_ERROR(ctx.RefreshCadences());
  }
  Impl* raw = impl.get();
  if (o.idle_trim_ms > 0)
    impl->trimmer = std::make_unique<IdleTrimmer>(std::chrono::milliseconds(o.idle_trim_ms), [raw] { raw->TrimHeap(); });
  impl->DescribeMetrics();

  // What httplib's pre-routing handler, logger, exception and error handlers did: every
  // answer, refusals included, is counted and logged on the thread that wrote it.
  HttpHooks hooks;
  hooks.before = [raw] {
    RequestInfo& info = CurrentRequest();
    info = RequestInfo{};
    info.started = std::chrono::steady_clock::now();
    if (raw->trimmer) raw->trimmer->Begin(info.started);
  };
  hooks.after = [raw](const httplib::Request& req, const httplib::Response& res) {
    RequestInfo& info = CurrentRequest();
    if (raw->trimmer) raw->trimmer->End(std::chrono::steady_clock::now());
    const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - info.started).count();
    raw->ctx.metrics.Add("sibyl_http_requests_total", fmt::format("route=\"{}\",code=\"{}\"", info.route, res.status));
    raw->ctx.metrics.Observe("sibyl_http_request_seconds", fmt::format("route=\"{}\"", info.route), seconds);
    if (!raw->ctx.options.log_requests) return;
    // The path, never the query string or headers (no keys in logs).
    nlohmann::json line = {{"event", "request"}, {"method", req.method}, {"path", req.path},
                           {"route", info.route}, {"status", res.status}, {"ms", seconds * 1000},
                           {"bytes_in", req.body.size()}, {"remote", req.remote_addr}};
    if (info.events) line["events"] = info.events;
    if (!info.error.empty()) line["error"] = info.error;
    raw->ctx.log.Write(std::move(line));
  };
  hooks.exception = [](httplib::Response& res, std::exception_ptr ep) {
    std::string what = "internal error";
    try {
      if (ep) std::rethrow_exception(ep);
    } catch (const std::exception& e) {
      what = e.what();
    } catch (...) {
    }
    SendError(res, 500, "internal", what);
  };
  hooks.error = [](const httplib::Request& req, httplib::Response& res) {
    // Requests refused before a handler ran carry no route label: name their family.
    if (std::string_view(CurrentRequest().route) == "other" && req.path.starts_with("/api/"))
      CurrentRequest().route = "api_other";
    if (!res.body.empty()) return;
    if (res.status == 404) SendError(res, 404, "not_found", "no such endpoint");
    else if (res.status == 413) SendError(res, 413, "payload_too_large", "the request body is too large");
  };
  impl->router.set_default_max_body_bytes(o.limits.api_max_body_bytes);
  impl->RegisterOps();
  RegisterIngestRoutes(impl->router, ctx);
  RegisterApiRoutes(impl->router, ctx);
  RegisterWebRoutes(impl->router, ctx);

  HttpServerOptions http;
  http.host = o.host;
  http.port = o.port;
  http.io_threads = o.io_threads;
  http.workers = std::max(2, o.threads);
  http.max_queued_requests = o.max_queued_requests;
  http.max_connections = FitConnectionsToDescriptorLimit(o.max_connections, ctx.log);
  http.max_connections_per_address = o.max_connections_per_address;
  http.max_inflight_body_bytes = o.max_inflight_body_bytes;
  http.idle_timeout = std::chrono::milliseconds(o.idle_timeout_ms);
  http.header_timeout = std::chrono::milliseconds(o.header_timeout_ms);
  http.body_timeout = std::chrono::milliseconds(o.body_timeout_ms);
  http.write_timeout = std::chrono::milliseconds(o.write_timeout_ms);
  ASSIGN_OR_RETURN(impl->http, HttpServer::Bind(impl->router, std::move(http), std::move(hooks)));
  impl->port = impl->http->port();
  return std::unique_ptr<Server>(new Server(std::move(impl)));
}

Status Server::Start() {
  Impl& s = *impl_;
  std::lock_guard lock(s.mutex);
  if (s.started) return FailedPrecondition("already started");
  s.started = true;
  if (s.ctx.scheduler) s.ctx.scheduler->Start(s.ctx.options.scheduler_poll_ms);
  s.http->Start();
  s.maintenance = std::thread([&s] { s.MaintenanceLoop(); });
  s.ctx.log.Write({{"event", "started"}, {"host", s.ctx.options.host}, {"port", s.port},
                   {"data", s.ctx.options.data_dir}, {"threads", s.ctx.options.threads},
                   {"scheduler", s.ctx.scheduler != nullptr}});
  return Status::Ok();
}

Status Server::Stop() {
  Impl& s = *impl_;
  {
    std::lock_guard lock(s.mutex);
    if (s.stopped) return Status::Ok();
    s.stopped = true;
    s.stopping = true;
    s.wake.notify_all();
  }
  s.ctx.log.Write({{"event", "stopping"}});
  // Stops accepting; requests in flight are answered (their events committed) first.
  s.http->Stop();
  if (s.maintenance.joinable()) s.maintenance.join();
  if (s.ctx.scheduler) s.ctx.scheduler->Stop(/*abort_running=*/true);
  s.ctx.committer->Stop();
  Status st = s.Checkpoint("shutdown");
  s.ctx.log.Write({{"event", "stopped"}, {"checkpoint", st.ok() ? "ok" : st.ToString()}});
  s.ctx.log.Flush();
  return st;
}

}  // namespace sibyl::server
