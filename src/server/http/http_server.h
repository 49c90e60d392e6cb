// The HTTP/1.1 server of `sibyl serve`, on Boost.Beast/Asio: one or a few I/O threads run every
// connection's reads and writes as asynchronous operations (no thread per connection),
// and a bounded pool of workers runs the handlers. Every stage has a deadline and every
// size a limit, so idle, slow or hostile clients cost a socket and a few kilobytes each,
// never a thread or unbounded memory (docs/SERVER.md, "The HTTP server").
//
//   Router router;  router.Get("/healthz", handler, {.reserved = true});
//   auto server = HttpServer::Bind(router, options, hooks);   // binds host:port
//   (*server)->Start();  ...  (*server)->Stop();
#pragma once

#include <httplib.h>

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <exception>
#include <functional>
#include <memory>
#include <string>

#include "common/status.h"
#include "server/http/router.h"

namespace sibyl::server {

struct HttpServerOptions {
  std::string host = "127.0.0.1";
  int port = 0;  // 0: any free port
  int io_threads = 1;  // one: a second doubled context switches on 2 cores (docs/SERVER.md)
  int workers = 16;                // handler threads
  size_t max_queued_requests = 0;  // waiting for a worker; 0: 4 x workers. Beyond: refused
  // Open connections. At the cap a new one closes the connection idle longest; when none
  // is idle it is answered 503 and closed.
  size_t max_connections = 10'000;
  size_t max_connections_per_address = 0;  // 0: no cap (loopback clients share one address)
  size_t max_header_bytes = 16 * 1024;     // request line and headers; beyond: 431
  // Request bodies held at once (read, queued or being handled); beyond: refused.
  size_t max_inflight_body_bytes = size_t{256} << 20;
  std::chrono::milliseconds idle_timeout{5000};     // before a request's first byte
  std::chrono::milliseconds header_timeout{10000};  // from a request's first byte to its last header
  // A body must arrive within body_timeout plus its size at min_body_bytes_per_second,
  // with no gap between reads longer than header_timeout.
  std::chrono::milliseconds body_timeout{30000};
  size_t min_body_bytes_per_second = 64 * 1024;
  std::chrono::milliseconds write_timeout{30000};   // one response
  std::chrono::milliseconds shutdown_grace{30000};  // Stop waits this long for requests in flight
};

// What the embedding server does around each request, on the thread that answers it
// (a worker, or an I/O thread for requests refused or malformed): the same places
// cpp-httplib offered as pre-routing handler, logger, exception and error handlers.
struct HttpHooks {
  std::function<void()> before;
  std::function<void(const httplib::Request&, const httplib::Response&)> after;
  std::function<void(httplib::Response&, std::exception_ptr)> exception;
  std::function<void(const httplib::Request&, httplib::Response&)> error;  // status >= 400
};

struct HttpServerStats {
  uint64_t open_connections = 0;
  uint64_t accepted_connections = 0;
  uint64_t refused_connections = 0;    // over max_connections or the per-address cap
  uint64_t refused_overloaded = 0;     // worker queue or body budget full
  uint64_t refused_too_large = 0;      // 413 and 431
  uint64_t bad_requests = 0;           // unparseable requests (400)
  uint64_t timed_out = 0;              // connections closed by a deadline
  uint64_t evicted_idle = 0;           // idle connections closed to make room at the cap
  uint64_t queued_requests = 0;        // waiting for a worker now
  uint64_t inflight_body_bytes = 0;    // now
};

class HttpServer {
 public:
  // Binds host:port. `router` must outlive the server. Nothing is served until Start.
  static Result<std::unique_ptr<HttpServer>> Bind(const Router& router, HttpServerOptions options, HttpHooks hooks);
  ~HttpServer();  // Stop()

  int port() const;
  void Start();
  // Graceful: stops accepting, closes idle connections, lets requests in flight finish
  // (up to shutdown_grace), then stops every thread. Idempotent; not from a handler.
  void Stop();
  HttpServerStats Stats() const;

  struct Impl;

 private:
  explicit HttpServer(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace sibyl::server
