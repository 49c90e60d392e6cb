#include "common/time.h"

#include <chrono>
#include <charconv>

namespace sibyl {
namespace {

bool ReadInt(std::string_view text, size_t& pos, size_t digits, int64_t& out) {
  if (pos + digits > text.size()) return false;
  int64_t v = 0;
  for (size_t i = 0; i < digits; ++i) {
    char c = text[pos + i];
    if (c < '0' || c > '9') return false;
    v = v * 10 + (c - '0');
  }
  pos += digits;
  out = v;
  return true;
}

}  // namespace

int64_t DaysFromCivil(int64_t y, unsigned m, unsigned d) {
  // Howard Hinnant's days_from_civil.
  y -= m <= 2;
  const int64_t era = (y >= 0 ? y : y - 399) / 400;
  const unsigned yoe = static_cast<unsigned>(y - era * 400);
  const unsigned doy = (153 * (m > 2 ? m - 3 : m + 9) + 2) / 5 + d - 1;
  const unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
  return era * 146097 + static_cast<int64_t>(doe) - 719468;
}

Result<int64_t> ParseIsoTime(std::string_view text) {
  auto bad = [&] {
    return InvalidArgument("'{}' is not a time: expected ISO-8601 like 2024-03-01T12:00:00Z",
                           text);
  };
  size_t pos = 0;
  int64_t year, month, day, hour = 0, minute = 0, second = 0, millis = 0;
  if (!ReadInt(text, pos, 4, year) || pos >= text.size() || text[pos++] != '-' ||
      !ReadInt(text, pos, 2, month) || pos >= text.size() || text[pos++] != '-' ||
      !ReadInt(text, pos, 2, day))
    return bad();
  if (month < 1 || month > 12 || day < 1 || day > 31) return bad();
  if (pos < text.size() && (text[pos] == 'T' || text[pos] == ' ')) {
    ++pos;
    if (!ReadInt(text, pos, 2, hour) || pos >= text.size() || text[pos++] != ':' ||
        !ReadInt(text, pos, 2, minute))
      return bad();
    if (pos < text.size() && text[pos] == ':') {
      ++pos;
      if (!ReadInt(text, pos, 2, second)) return bad();
      if (pos < text.size() && text[pos] == '.') {
        ++pos;
        size_t start = pos;
        int64_t frac = 0;
        while (pos < text.size() && text[pos] >= '0' && text[pos] <= '9') {
          if (pos - start < 3) frac = frac * 10 + (text[pos] - '0');
          ++pos;
        }
        if (pos == start) return bad();
        for (size_t k = pos - start; k < 3; ++k) frac *= 10;
        millis = frac;
      }
    }
  }
  if (hour > 23 || minute > 59 || second > 60) return bad();
  int64_t offset_minutes = 0;
  if (pos < text.size()) {
    char c = text[pos];
    if (c == 'Z' || c == 'z') {
      ++pos;
    } else if (c == '+' || c == '-') {
      ++pos;
      int64_t oh, om = 0;
      if (!ReadInt(text, pos, 2, oh)) return bad();
      if (pos < text.size() && text[pos] == ':') ++pos;
      if (pos < text.size() && !ReadInt(text, pos, 2, om)) return bad();
      offset_minutes = (oh * 60 + om) * (c == '-' ? -1 : 1);
    } else {
      return bad();
    }
  }
  if (pos != text.size()) return bad();
  int64_t days = DaysFromCivil(year, static_cast<unsigned>(month), static_cast<unsigned>(day));
  return ((days * 24 + hour) * 60 + minute - offset_minutes) * 60000 + second * 1000 + millis;
}

Result<int64_t> ParseTime(std::string_view text) {
  if (!text.empty() && text.find_first_not_of("0123456789-") == std::string_view::npos &&
      text.size() > 10) {
    int64_t v = 0;
    auto [p, ec] = std::from_chars(text.data(), text.data() + text.size(), v);
    if (ec == std::errc() && p == text.data() + text.size()) {
      // Years 1 to 9999: beyond them, flooring to the hour or adding a horizon overflows
      // (as_of=-9223372036854775808 became the year 292,278,994).
      constexpr int64_t kFirst = -62'135'596'800'000, kLast = 253'402'300'799'999;
      if (v < kFirst || v > kLast)
        return InvalidArgument("time {} (epoch ms) is outside the years 1 to 9999", text);
      return v;
    }
  }
  return ParseIsoTime(text);
}

std::string FormatTime(int64_t ms) {
  int64_t days = ms >= 0 ? ms / kMsPerDay : -((-ms + kMsPerDay - 1) / kMsPerDay);
  int64_t rem = ms - days * kMsPerDay;
  // civil_from_days
  int64_t z = days + 719468;
  const int64_t era = (z >= 0 ? z : z - 146096) / 146097;
  const unsigned doe = static_cast<unsigned>(z - era * 146097);
  const unsigned yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
  int64_t y = static_cast<int64_t>(yoe) + era * 400;
  const unsigned doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
  const unsigned mp = (5 * doy + 2) / 153;
  const unsigned d = doy - (153 * mp + 2) / 5 + 1;
  const unsigned m = mp < 10 ? mp + 3 : mp - 9;
  y += m <= 2;
  return fmt::format("{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:03}Z", y, m, d, rem / kMsPerHour,
                     rem / 60000 % 60, rem / 1000 % 60, rem % 1000);
}

int64_t SystemClock::NowMs() const {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

const SystemClock& SystemClock::Instance() {
  static const SystemClock clock;
  return clock;
}

}  // namespace sibyl
