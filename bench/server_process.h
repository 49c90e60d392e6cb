// A `sibyl serve` child process for benchmarks that must see the server alone: its memory
// (/proc/PID/status), its exit (a crash is a result, not the end of the benchmark) and
// its own descriptor table, apart from the clients attacking it.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <deque>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "common/status.h"

namespace sibyl::bench {

class ServerProcess {
 public:
  // Runs `binary --data DATA_DIR --quiet serve --port 0 --no-request-log ARGS...` with the
  // bench keys (serve_fixture.h) in its environment; returns once its `started` log line
  // names the port (up to 60 s). With `log_path`, the request log is on and every line the
  // server writes is copied there (for finding where a slow request spent its time).
  static Result<std::unique_ptr<ServerProcess>> Start(const std::string& binary, const std::string& data_dir,
                                                      const std::vector<std::string>& args,
                                                      const std::string& log_path = "");
  ~ServerProcess();  // Stop()

  int port() const { return port_; }
  pid_t pid() const { return pid_; }

  // False once the process has exited, for whatever reason.
  bool Alive();

  struct Memory {
    uint64_t rss_bytes = 0;   // VmRSS
    uint64_t peak_bytes = 0;  // VmHWM: the peak since start or the last ResetPeak
  };
  Memory ReadMemory() const;
  // Resets VmHWM to the current RSS (`echo 5 > /proc/PID/clear_refs`, Linux 4.0+), so a
  // phase's peak is its own; false when the kernel refuses.
  bool ResetPeak() const;

  // SIGTERM, SIGKILL after `grace_seconds`; "exit N" or "signal N" (also when it had
  // exited on its own before).
  std::string Stop(int grace_seconds = 60);
  // The last lines it wrote to stderr (its log): for the report when it died.
  std::string LastLog() const;

 private:
  ServerProcess() = default;
  void ReadLog(int fd, const std::string& log_path);
  bool Reap(bool block);

  pid_t pid_ = -1;
  int port_ = 0;
  std::optional<int> wait_status_;
  std::thread log_reader_;
  mutable std::mutex mutex_;  // guards log_ and port_ while starting
  std::deque<std::string> log_;
};

}  // namespace sibyl::bench
