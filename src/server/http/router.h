// The route table of the HTTP server (http_server.h): handlers registered by method and
// regular expression, as cpp-httplib's server took them, so the route files did not
// change when the server did. Request and response are cpp-httplib's structs, used as
// plain data: the server fills `method`, `path` (percent-decoded), `target`, `headers`,
// `params` (the query string), `body` (already inflated, within the route's limit),
// `matches` (over `path`) and `remote_addr`, and reads `status`, `headers` and `body`.
#pragma once

#include <httplib.h>

#include <cstddef>
#include <cstdint>
#include <functional>
#include <optional>
#include <regex>
#include <string>
#include <string_view>
#include <vector>

namespace sibyl::server {

using HttpHandler = std::function<void(const httplib::Request&, httplib::Response&)>;

// Why the server answers a request without running its handler.
enum class Refusal {
  kTooLarge,     // the body (declared, read or inflated) is over the route's limit
  kOverloaded,   // the worker queue or the in-flight body budget is full
  kBadEncoding,  // the body is not valid data of its Content-Encoding (a 400)
};
struct Refused {
  Refusal why = Refusal::kOverloaded;
  uint64_t body_bytes = 0;  // the size known when refusing (declared, read or inflated so far)
  std::string message;      // kBadEncoding: "request body is not valid gzip: <zlib's reason>"
};
// Writes the answer to a refused request (e.g. a vendor's 400, 413 or 429 body).
using RefusalHandler = std::function<void(const httplib::Request&, httplib::Response&, const Refused&)>;

struct RouteOptions {
  // The largest body accepted, after inflating; unset: the router's default.
  std::optional<size_t> max_body_bytes;
  // Answers refusals; unset: the JSON API's error shape (400, 413, or 503 with Retry-After).
  RefusalHandler refuse;
  // Runs on a reserved worker so it answers while every ordinary worker is busy
  // (/healthz, /metrics). Only for handlers that never block for long.
  bool reserved = false;
};

class Router {
 public:
  struct Route {
    std::string method;
    std::regex pattern;
    HttpHandler handler;
    RouteOptions options;
  };

  // `pattern` must match the whole decoded path. Routes are tried in registration order;
  // GET routes also answer HEAD (without the body).
  Router& Get(const std::string& pattern, HttpHandler handler, RouteOptions options = {});
  Router& Post(const std::string& pattern, HttpHandler handler, RouteOptions options = {});
  Router& Put(const std::string& pattern, HttpHandler handler, RouteOptions options = {});
  Router& Delete(const std::string& pattern, HttpHandler handler, RouteOptions options = {});
  // CORS preflights (the ingest endpoints answer browsers' SDKs).
  Router& Options(const std::string& pattern, HttpHandler handler, RouteOptions options = {});

  // The first route matching, its captures in `matches` (which refers into `path`: keep
  // that string alive and unmoved while `matches` is used). Null when none matches.
  const Route* Match(std::string_view method, const std::string& path, std::smatch& matches) const;

  size_t default_max_body_bytes() const { return default_max_body_bytes_; }
  void set_default_max_body_bytes(size_t bytes) { default_max_body_bytes_ = bytes; }
  size_t MaxBodyBytes(const Route* route) const {
    return route && route->options.max_body_bytes ? *route->options.max_body_bytes : default_max_body_bytes_;
  }

 private:
  Router& Add(const char* method, const std::string& pattern, HttpHandler handler, RouteOptions options);

  std::vector<Route> routes_;
  size_t default_max_body_bytes_ = 1'000'000;
};

// Percent-decoding of a path (`plus_as_space` false) or a query component (true).
// Invalid escapes are kept as they are.
std::string DecodeUrl(std::string_view text, bool plus_as_space);
// "a=1&b=x%20y&a=2" -> {a: 1, b: "x y", a: 2}.
httplib::Params ParseQuery(std::string_view query);

}  // namespace sibyl::server
