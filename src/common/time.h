// Time in sibyl is epoch milliseconds (int64, UTC) everywhere, as in Amplitude's `time`.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "common/status.h"

namespace sibyl {

inline constexpr int64_t kMsPerSecond = 1000;
inline constexpr int64_t kMsPerHour = 3600 * kMsPerSecond;
inline constexpr int64_t kMsPerDay = 24 * kMsPerHour;
inline constexpr int64_t kMsPerWeek = 7 * kMsPerDay;

// Rounds down to the hour: cutoffs are hour-aligned so that training and scoring see
// windows of the same shape.
inline int64_t FloorHour(int64_t ms) {
  int64_t r = ms % kMsPerHour;
  return r < 0 ? ms - r - kMsPerHour : ms - r;
}

// Parses epoch milliseconds ("1700000000000") or ISO-8601 ("2024-03-01",
// "2024-03-01T12:00:00Z", "2024-03-01 12:00:00.250+02:00"; no zone means UTC).
Result<int64_t> ParseTime(std::string_view text);

// Parses only ISO-8601 as above (no epoch numbers).
Result<int64_t> ParseIsoTime(std::string_view text);

// "2024-03-01T12:00:00.000Z".
std::string FormatTime(int64_t ms);

// Days since 1970-01-01 for a civil date (proleptic Gregorian).
int64_t DaysFromCivil(int64_t year, unsigned month, unsigned day);

// A source of "now", injected wherever time matters so tests can drive it.
class Clock {
 public:
  virtual ~Clock() = default;
  virtual int64_t NowMs() const = 0;
};

// The real wall clock.
class SystemClock final : public Clock {
 public:
  int64_t NowMs() const override;
  static const SystemClock& Instance();
};

// A clock tests set by hand.
class ManualClock final : public Clock {
 public:
  explicit ManualClock(int64_t now_ms) : now_ms_(now_ms) {}
  int64_t NowMs() const override { return now_ms_; }
  void Set(int64_t ms) { now_ms_ = ms; }
  void Advance(int64_t ms) { now_ms_ += ms; }

 private:
  int64_t now_ms_;
};

}  // namespace sibyl
