// `sibyl serve`: one process holding the event store, an HTTP server (Boost.Beast, in
// server/http/) and the scheduler. Ingest endpoints at the vendors' paths, the /api/v1 JSON API, a web page,
// /healthz and /metrics. See docs/SERVER.md.
//
//   auto server = Server::Open(options);   // opens the store, the scheduler, binds the port
//   (*server)->Start();                    // serves on its own threads
//   ...                                    // until SIGTERM, say
//   (*server)->Stop();                     // graceful: see Stop
#pragma once

#include <cstdint>
#include <memory>
#include <string>

#include "common/status.h"
#include "common/time.h"
#include "ingest/validate.h"
#include "server/keys.h"

namespace sibyl::clickhouse {
class Cluster;
}

namespace sibyl::server {

// Per-endpoint request limits (docs/SERVER.md, "Ingest endpoints"): the vendors' documented
// ones, in the units each vendor uses. Amplitude's MB is decimal (1 MB = 1,000,000 bytes);
// Segment's SDKs count a KB as 1,024 bytes (32 KB a message, batches kept under 500 KB).
struct IngestLimits {
  size_t httpapi_max_body_bytes = 1'000'000;        // POST /2/httpapi: 1 MB
  size_t batch_max_body_bytes = 20'000'000;         // POST /batch: 20 MB
  size_t identify_max_body_bytes = 1'000'000;       // POST /identify: 1 MB
  size_t max_events_per_request = 2000;             // Amplitude: 2,000 events a request
  size_t segment_max_body_bytes = 32 << 10;         // POST /v1/track, /v1/page, ...: 32 KB = 32,768 bytes
  size_t segment_batch_max_body_bytes = 500 << 10;  // POST /v1/batch: 500 KB = 512,000 bytes
  size_t api_max_body_bytes = 1'000'000;            // /api/v1 request bodies
  uint64_t max_pending_events = 200'000;            // waiting for commit; beyond: 429
  // Event times accepted (docs/INGEST.md, "Time bounds"): not before this, and not more
  // than the tolerance after the server's clock when the request arrives.
  int64_t min_event_time_ms = kServerMinTimeMs;             // 2000-01-01
  int64_t future_tolerance_ms = kDefaultFutureToleranceMs;  // 24 h
};

struct ServerOptions {
  std::string data_dir = "sibyl-data";
  // Null: the embedded store in data_dir. Else the events live on this ClickHouse cluster
  // (docs/SERVER.md, "On a ClickHouse cluster"); data_dir keeps predictions, models, runs.
  std::shared_ptr<const clickhouse::Cluster> cluster;
  std::string host = "127.0.0.1";
  int port = 8080;  // 0: any free port (see Server::port)
  int threads = 16;  // HTTP handler threads (connections hold none: they wait on the I/O threads)
  // The HTTP server's own limits (docs/SERVER.md, "The HTTP server").
  int io_threads = 1;                       // threads running every connection's reads and writes
  // Open connections (an idle one costs ~6 KB and a descriptor); at the cap a newcomer
  // closes the connection idle longest, or gets 503. Lowered to fit RLIMIT_NOFILE.
  size_t max_connections = 10'000;
  size_t max_connections_per_address = 0;   // 0: no cap
  size_t max_queued_requests = 0;           // waiting for a handler thread; 0: 4 x threads; beyond: 429/503
  size_t max_inflight_body_bytes = size_t{256} << 20;  // request bodies held at once; beyond: 429/503
  int64_t idle_timeout_ms = 5'000;          // keep-alive: before a request's first byte
  int64_t header_timeout_ms = 10'000;       // first byte to the end of the headers
  int64_t body_timeout_ms = 30'000;         // plus the body's size at 64 KB/s
  int64_t write_timeout_ms = 30'000;        // one response
  Keys keys;
  IngestLimits limits;
  // Scheduler: started unless disabled (tests of the HTTP layer alone).
  bool scheduler = true;
  int64_t scheduler_poll_ms = 1000;
  int scheduler_workers = 1;
  int64_t retry_base_ms = 60'000;
  int train_threads = 0;
  // Periodic checkpoint: when this many events were acknowledged since the last one, or
  // this long has passed with any, the write-ahead log is written out as parts.
  uint64_t checkpoint_events = 1'000'000;
  int64_t checkpoint_every_ms = 10 * 60 * 1000;
  // Freed heap memory is handed back to the OS once the server has been idle this long (no
  // request in flight or started, no scheduler run), once per idle period; 0: never
  // (docs/SERVER.md, "Memory after bursts").
  int64_t idle_trim_ms = 2000;
  // Fault injection for tests (`serve --test-refuse-ingest N`): the first N requests of
  // each ingest endpoint that would be stored are answered as if the commit queue were
  // full (429, Retry-After, the vendor's body) and store nothing.
  uint64_t test_refuse_ingest = 0;
  bool log_requests = true;  // one JSON line a request on stderr
  bool log = true;           // lifecycle and run lines
  const Clock* clock = &SystemClock::Instance();
};

class Server {
 public:
  // Opens the store in options.data_dir (taking its writer lock), the scheduler's history,
  // and binds host:port. Nothing is served until Start.
  static Result<std::unique_ptr<Server>> Open(ServerOptions options);
  ~Server();  // Stop()

  int port() const;
  // Serves on background threads; returns at once.
  Status Start();
  // Graceful shutdown: stop accepting, finish in-flight requests (every acknowledged
  // event is already durable), stop the scheduler (running jobs are told to abort and
  // waited for), commit anything queued, checkpoint the store, flush the log.
  // Idempotent; safe from any thread but a request handler.
  Status Stop();

  struct Impl;

 private:
  explicit Server(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

// Memory settings for a process whose main job is a Server, set once by its main before
// the server allocates (`sibyl serve`, serve_bench). Process-wide, so Server::Open does not
// set them: transparent huge pages off unless `huge_pages` (with the kernel's usual
// `defrag=madvise`, a fault in a huge-page region compacts memory synchronously, and while
// the store grew by 1-2 GB real-time scores stalled for up to a second; from then on the
// threads fault memory in 4 KB pages whatever the allocator asks), and large buffers
// prefaulted 2 MB at a time, so a reader never waits behind one writer's fault of a whole
// table (docs/SERVER.md, "Huge pages").
void ApplyServerProcessSettings(bool huge_pages);

}  // namespace sibyl::server
