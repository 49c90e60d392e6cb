// Structured logs: one JSON object a line on stderr (a request, a run, a lifecycle event).
// Callers never put keys or Authorization headers in a line.
#pragma once

#include <cstdio>

#include <nlohmann/json.hpp>

namespace sibyl::server {

class JsonLog {
 public:
  explicit JsonLog(std::FILE* out = stderr, bool enabled = true) : out_(out), enabled_(enabled) {}
  // Adds "ts" (ISO-8601 UTC) and writes `line` whole, so concurrent lines never interleave.
  void Write(nlohmann::json line);
  void Flush();
  bool enabled() const { return enabled_; }

 private:
  std::FILE* out_;
  bool enabled_;
};

}  // namespace sibyl::server
