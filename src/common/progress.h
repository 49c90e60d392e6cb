// Progress of long steps: a single updating line on a terminal, silence otherwise.
#pragma once

#include <chrono>
#include <cstdint>
#include <string>

namespace sibyl {

class Progress {
 public:
  // `label` names the step ("ingest"); `total` is the expected amount of `unit`s, or 0
  // when unknown. Output goes to stderr, and only when stderr is a terminal.
  Progress(std::string label, uint64_t total, std::string unit);
  ~Progress();
  Progress(const Progress&) = delete;
  Progress& operator=(const Progress&) = delete;

  // Reports that `done` units are complete. Cheap; redraws at most ten times a second.
  void Update(uint64_t done);
  // Clears the line.
  void Finish();

  // Forces progress output on or off regardless of the terminal (tests, --quiet).
  static void SetEnabled(bool enabled);

 private:
  std::string label_;
  uint64_t total_;
  std::string unit_;
  bool active_;
  bool drawn_ = false;
  std::chrono::steady_clock::time_point start_, last_draw_;
};

}  // namespace sibyl
