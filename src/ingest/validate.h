// Amplitude's acceptance rules for one parsed event, shared by every input format.
// See docs/INGEST.md for the rules and where they come from.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "event/event.h"

namespace sibyl {

// Epoch milliseconds below this (1973-03-03) are almost surely epoch *seconds* sent by
// mistake; Amplitude's `time` is milliseconds.
inline constexpr int64_t kMinPlausibleTimeMs = 100'000'000'000;
// Epoch milliseconds from this on (the year 5138) are almost surely epoch *microseconds*
// (or nanoseconds) sent by mistake. Refused whatever ValidationOptions::max_time_ms says.
inline constexpr int64_t kMaxPlausibleTimeMs = 100'000'000'000'000;
// ValidationOptions::max_time_ms when there is no other upper bound.
inline constexpr int64_t kNoMaxTimeMs = kMaxPlausibleTimeMs - 1;
// The lower bounds the receivers use (docs/INGEST.md, "Time bounds"): `sibyl serve`
// refuses times before 2000-01-01 (no SDK sends older ones live), `sibyl ingest`
// before 1990-01-01 (historical files, e.g. retail logs of the 1990s and 2000s, import).
inline constexpr int64_t kServerMinTimeMs = 946'684'800'000;  // 2000-01-01T00:00:00Z
inline constexpr int64_t kFileMinTimeMs = 631'152'000'000;    // 1990-01-01T00:00:00Z
// How far ahead of the receiver's clock an event may be by default (clock skew of the
// sending device, time zones got wrong by a few hours).
inline constexpr int64_t kDefaultFutureToleranceMs = 24 * 3'600'000LL;

struct ValidationOptions {
  // Amplitude's default; its HTTP API lets a caller lower it with `min_id_length`.
  size_t min_id_length = 5;
  // Every id, event type, property key and string value.
  size_t max_string_length = 1024;
  // Accepted event times, epoch ms, inclusive (events without a time are not checked).
  // Times below kMinPlausibleTimeMs are reported as epoch seconds and times from
  // kMaxPlausibleTimeMs on as microseconds, whatever these say. The receivers set them:
  // `sibyl serve` per request (arrival + tolerance), `sibyl ingest` once (wall clock +
  // tolerance); see docs/INGEST.md.
  int64_t min_time_ms = kMinPlausibleTimeMs;
  int64_t max_time_ms = kNoMaxTimeMs;
};

// What is wrong with an event: which field and why.
struct FieldProblem {
  std::string field;
  std::string reason;
};

// True for ids Amplitude refuses ("null", "anonymous", "-1", the all-zero UUID, ...),
// compared case-insensitively.
bool IsBlockedId(std::string_view id);

// Checks one id value (user_id, device_id); `field` names it in the problem.
std::optional<FieldProblem> CheckId(std::string_view field, std::string_view id,
                                    const ValidationOptions& options);

// Checks an event the parser has filled in: required fields, ids, time, string lengths,
// property keys. The first problem found is returned; nullopt means valid.
std::optional<FieldProblem> ValidateEvent(const ParsedEvent& event, const EventBatch& batch,
                                          const ValidationOptions& options = {});

}  // namespace sibyl
