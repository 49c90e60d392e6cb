// `sibyl serve`: the store, the HTTP endpoints and the scheduler in one long-running
// process (src/server, docs/SERVER.md). Runs until SIGTERM or SIGINT, then shuts down
// gracefully and exits 0. On a data directory that uses a ClickHouse cluster (or with
// --clickhouse), the events go to and come from the cluster (docs/SERVER.md, "On a
// ClickHouse cluster").
#include <fmt/format.h>
#include <signal.h>

#include <cstdio>
#include <memory>
#include <string>

#include "cli/backend.h"
#include "cli/commands.h"
#include "common/time.h"
#include "server/server.h"

namespace sibyl {
namespace {

struct ServeFlags {
  std::string host = "127.0.0.1";
  int port = 8080;
  int threads = 16;
  int io_threads = 1;
  size_t max_connections = 10'000;
  size_t max_connections_per_address = 0;
  size_t max_queued_requests = 0;
  double header_timeout_seconds = 10;
  double idle_timeout_seconds = 5;
  server::KeySources keys;
  bool no_scheduler = false;
  int scheduler_workers = 1;
  int train_threads = 0;
  uint64_t max_pending_events = 200'000;
  uint64_t checkpoint_events = 1'000'000;
  double checkpoint_minutes = 10;
  bool no_request_log = false;
  double future_tolerance_hours = 24;
  std::string earliest_time = "2000-01-01";
  double idle_trim_seconds = 2;
  bool huge_pages = false;
  uint64_t test_refuse_ingest = 0;
};

void RunServe(const GlobalOptions& global, const ServeFlags& flags) {
  // The cluster is opened (and its shards checked) before anything binds: a shard that
  // is down fails the start, naming it.
  std::shared_ptr<const clickhouse::Cluster> cluster = OpenClusterIfChosen(global);
  // Block the shutdown signals in every thread (the server's threads inherit this mask);
  // this thread then waits for them with sigwait, outside any signal-handler context.
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGTERM);
  sigaddset(&signals, SIGINT);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);
  signal(SIGPIPE, SIG_IGN);  // a client hanging up mid-response is not fatal

  server::ServerOptions options;
  options.data_dir = global.data_dir;
  options.cluster = cluster;
  options.host = flags.host;
  options.port = flags.port;
  options.threads = flags.threads;
  options.io_threads = flags.io_threads;
  options.max_connections = flags.max_connections;
  options.max_connections_per_address = flags.max_connections_per_address;
  options.max_queued_requests = flags.max_queued_requests;
  if (flags.header_timeout_seconds <= 0 || flags.idle_timeout_seconds <= 0)
    throw CommandFailed(InvalidArgument("--header-timeout and --idle-timeout must be > 0"));
  options.header_timeout_ms = static_cast<int64_t>(flags.header_timeout_seconds * 1000);
  options.idle_timeout_ms = static_cast<int64_t>(flags.idle_timeout_seconds * 1000);
  options.keys = Check(server::LoadKeys(flags.keys));
  options.scheduler = !flags.no_scheduler;
  options.scheduler_workers = flags.scheduler_workers;
  options.train_threads = flags.train_threads;
  options.limits.max_pending_events = flags.max_pending_events;
  options.checkpoint_events = flags.checkpoint_events;
  options.checkpoint_every_ms = static_cast<int64_t>(flags.checkpoint_minutes * 60'000);
  options.log_requests = !flags.no_request_log;
  if (flags.future_tolerance_hours < 0) throw CommandFailed(InvalidArgument("--future-tolerance-hours must be >= 0"));
  options.limits.future_tolerance_ms = static_cast<int64_t>(flags.future_tolerance_hours * 3'600'000);
  options.limits.min_event_time_ms = Check(ParseTime(flags.earliest_time));
  if (flags.idle_trim_seconds < 0) throw CommandFailed(InvalidArgument("--idle-trim-seconds must be >= 0"));
  options.idle_trim_ms = static_cast<int64_t>(flags.idle_trim_seconds * 1000);
  options.test_refuse_ingest = flags.test_refuse_ingest;
  server::ApplyServerProcessSettings(flags.huge_pages);  // before the server allocates
  std::unique_ptr<server::Server> server = Check(server::Server::Open(options));
  Check(server->Start());
  if (!global.quiet)
    std::fprintf(stderr, "sibyl serve: listening on http://%s:%d/ (data %s%s)\n", flags.host.c_str(), server->port(),
                 global.data_dir.c_str(),
                 cluster ? fmt::format(", events on a ClickHouse cluster of {} shard(s)", cluster->shards()).c_str() : "");
  int received = 0;
  sigwait(&signals, &received);
  Check(server->Stop());
}

}  // namespace

void AddServeCommand(CLI::App& app, const GlobalOptions& global) {
  auto* cmd = app.add_subcommand(
      "serve", "Run the HTTP server: Amplitude and Segment ingest endpoints, the /api/v1 JSON API, a web page, "
               "/metrics and the scheduler that trains and scores predictions (docs/SERVER.md)");
  auto flags = std::make_shared<ServeFlags>();
  cmd->add_option("--host", flags->host, "address to bind (0.0.0.0 exposes the server to the network)")
      ->capture_default_str();
  cmd->add_option("--port", flags->port, "port (0: any free port)")->capture_default_str();
  cmd->add_option("--threads", flags->threads, "HTTP handler threads (open connections hold none)")
      ->capture_default_str();
  cmd->add_option("--io-threads", flags->io_threads, "threads running every connection's reads and writes")
      ->capture_default_str();
  cmd->add_option("--max-connections", flags->max_connections,
                  "open connections; at the cap a new one closes the connection idle longest (idle 1 s or more), "
                  "else it is answered 503 and closed")
      ->capture_default_str();
  cmd->add_option("--max-connections-per-address", flags->max_connections_per_address,
                  "open connections from one client address (0: no cap)")
      ->capture_default_str();
  cmd->add_option("--max-queued-requests", flags->max_queued_requests,
                  "requests waiting for a handler thread before new ones get 429/503 (0: 4 x --threads)")
      ->capture_default_str();
  cmd->add_option("--header-timeout", flags->header_timeout_seconds,
                  "seconds from a request's first byte to the end of its headers")
      ->capture_default_str();
  cmd->add_option("--idle-timeout", flags->idle_timeout_seconds,
                  "seconds a connection may wait for its next request")
      ->capture_default_str();
  cmd->add_option("--admin-key-file", flags->keys.admin_key_file,
                  "file holding the admin key (default: $SIBYL_ADMIN_KEY)");
  cmd->add_option("--ingest-keys-file", flags->keys.ingest_keys_file,
                  "file with the ingest keys (Amplitude api_key / Segment write key), one a line "
                  "(default: $SIBYL_INGEST_KEYS, comma-separated)");
  cmd->add_flag("--no-scheduler", flags->no_scheduler, "serve without training or scoring on a schedule");
  cmd->add_option("--scheduler-workers", flags->scheduler_workers, "runs of different predictions at once")
      ->capture_default_str();
  cmd->add_option("--train-threads", flags->train_threads, "learner threads of a training run (0: all cores)")
      ->capture_default_str();
  cmd->add_option("--max-pending-events", flags->max_pending_events,
                  "events waiting for commit before ingest answers 429")
      ->capture_default_str();
  cmd->add_option("--checkpoint-events", flags->checkpoint_events,
                  "checkpoint the store after this many acknowledged events")
      ->capture_default_str();
  cmd->add_option("--checkpoint-minutes", flags->checkpoint_minutes,
                  "checkpoint at least this often when events arrived")
      ->capture_default_str();
  cmd->add_flag("--no-request-log", flags->no_request_log, "no JSON line per request on stderr");
  cmd->add_option("--future-tolerance-hours", flags->future_tolerance_hours,
                  "refuse events timed more than this after the server's clock at arrival")
      ->capture_default_str();
  cmd->add_option("--earliest-time", flags->earliest_time,
                  "refuse events timed before this (ISO date or epoch ms)")
      ->capture_default_str();
  cmd->add_option("--idle-trim-seconds", flags->idle_trim_seconds,
                  "return freed memory to the OS after this long without requests (0: never)")
      ->capture_default_str();
  cmd->add_flag("--huge-pages", flags->huge_pages,
               "back the server's memory with transparent huge pages (faster first touch for big batch runs; "
               "memory compaction then stalls requests while the store grows)");
  cmd->add_option("--test-refuse-ingest", flags->test_refuse_ingest,
                  "for tests: answer the first N storable requests of each ingest endpoint as if the commit "
                  "queue were full (429, Retry-After, the vendor's body)");
  cmd->callback([&global, flags] { RunServe(global, *flags); });
}

}  // namespace sibyl
