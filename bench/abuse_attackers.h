// The hostile clients of abuse_bench, each on threads of its own:
//  - ConnectionHolder keeps N idle connections and M slowloris connections open against a
//    server on loopback (one epoll thread for all of them), opening a new one whenever the
//    server closes one (idle and header deadlines) or refuses it (connection cap), so the
//    server faces the full count the whole time.
//  - Bomber sends gzip bombs to the ingest endpoints at a steady rate.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <map>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

namespace sibyl::bench {

struct HolderOptions {
  int port = 0;
  int idle = 1000;  // connected, never send a byte
  // Slowloris: half send a request line and then one header line per `trickle`, never
  // ending the headers; the other half send complete headers declaring
  // `slow_body_bytes` and then one body byte per `trickle`.
  int slowloris = 50;
  uint64_t slow_body_bytes = 20'000'000;
  std::string slow_path = "/batch";
  std::chrono::milliseconds trickle{1000};
  // A connection the server refused (503 over the cap, 429) is opened again after this
  // pause; one it closed (a deadline), at once.
  std::chrono::milliseconds reopen_after{100};
};

struct HolderStats {
  uint64_t opened = 0;            // connections made (connect succeeded)
  uint64_t connect_errors = 0;    // connect() failed
  uint64_t closed_by_server = 0;  // closed with no answer (deadlines)
  std::map<int, uint64_t> answers;  // statuses the server answered on them (503: over the cap)
  int idle_open = 0, slowloris_open = 0;  // connected now (from the client's side)
};

class ConnectionHolder {
 public:
  explicit ConnectionHolder(HolderOptions options);
  ~ConnectionHolder();  // Stop()
  void Start();
  void Stop();  // closes every connection
  HolderStats Stats() const;

 private:
  struct Slot {
    enum Kind { kIdle, kSlowHeader, kSlowBody } kind;
    int fd = -1;
    std::chrono::steady_clock::time_point next;  // next trickle, or when to reopen
    uint64_t sent = 0;
    bool answered = false;
  };
  void Run();
  void Open(Slot& slot, std::chrono::steady_clock::time_point now);
  void Drop(Slot& slot, std::chrono::steady_clock::time_point now);

  const HolderOptions options_;
  std::vector<Slot> slots_;
  int epoll_ = -1;
  std::atomic<bool> stop_{false};
  std::thread thread_;
  mutable std::mutex mutex_;  // guards stats_
  HolderStats stats_;
};

// A gzip bomb: `inflated_bytes` zeros as one gzip member at level 9 (1 GiB: 1.04 MB).
std::string MakeGzipBomb(uint64_t inflated_bytes);

struct BombResult {
  std::string path;
  int status = 0;  // 0: no answer
  double ms = 0;
};

// Sends `bomb` with Content-Encoding: gzip to each of `paths` in turn, `per_second` in
// all, from one thread (a bomb's answer takes milliseconds; a slower one delays the next).
class Bomber {
 public:
  Bomber(int port, const std::string& bomb, std::vector<std::string> paths, double per_second);
  ~Bomber();  // Stop()
  void Start();
  void Stop();
  std::vector<BombResult> Take();  // the results since the last Take

 private:
  void Run();
  const int port_;
  const std::string& bomb_;
  const std::vector<std::string> paths_;
  const double per_second_;
  std::atomic<bool> stop_{false};
  std::thread thread_;
  std::mutex mutex_;
  std::vector<BombResult> results_;
};

}  // namespace sibyl::bench
