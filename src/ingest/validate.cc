#include "ingest/validate.h"

#include <array>

#include <fmt/format.h>

#include "common/time.h"

namespace sibyl {
namespace {

// Amplitude's invalid ids (docs/INGEST.md cites the source). Lower case; compared
// case-insensitively.
constexpr std::array<std::string_view, 14> kBlockedIds = {
    "null",    "none",    "nil",   "undefined", "anonymous", "-1",
    "0",       "00000000-0000-0000-0000-000000000000",    "lmy47d",
    "unknown", "empty",   "(null)", "default",  "guest",
};

bool EqualsLowerAscii(std::string_view text, std::string_view lower) {
  if (text.size() != lower.size()) return false;
  for (size_t i = 0; i < text.size(); ++i) {
    char c = text[i];
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
    if (c != lower[i]) return false;
  }
  return true;
}

// Error messages quote the offending value, shortened so a 1 MB string does not make a
// 1 MB error line.
std::string Quote(std::string_view value) {
  constexpr size_t kMax = 60;
  if (value.size() <= kMax) return fmt::format("\"{}\"", value);
  return fmt::format("\"{}...\"", value.substr(0, kMax));
}

std::optional<FieldProblem> CheckLength(std::string_view field, std::string_view value,
                                        const ValidationOptions& options) {
  if (value.size() <= options.max_string_length) return std::nullopt;
  return FieldProblem{std::string(field),
                      fmt::format("is {} characters long; at most {} are allowed",
                                  value.size(), options.max_string_length)};
}

std::optional<FieldProblem> CheckProperty(std::string_view group, std::string_view key,
                                          const Value& value,
                                          const ValidationOptions& options) {
  if (key.empty()) return FieldProblem{std::string(group), "has an empty property name"};
  if (key.size() > options.max_string_length) {
    return FieldProblem{std::string(group),
                        fmt::format("property name {} is {} characters long; at most {} are "
                                    "allowed",
                                    Quote(key), key.size(), options.max_string_length)};
  }
  // The field name is only built for an actual problem: this runs for every property.
  if (value.kind == ValueKind::kString && value.text.size() > options.max_string_length) {
    return CheckLength(fmt::format("{}.{}", group, key), value.text, options);
  }
  return std::nullopt;
}

}  // namespace

bool IsBlockedId(std::string_view id) {
  for (std::string_view blocked : kBlockedIds) {
    if (EqualsLowerAscii(id, blocked)) return true;
  }
  return false;
}

std::optional<FieldProblem> CheckId(std::string_view field, std::string_view id,
                                    const ValidationOptions& options) {
  if (IsBlockedId(id)) {
    return FieldProblem{std::string(field), fmt::format("{} is a blocked id value", Quote(id))};
  }
  if (id.size() < options.min_id_length) {
    return FieldProblem{std::string(field),
                        fmt::format("{} is shorter than {} characters", Quote(id),
                                    options.min_id_length)};
  }
  return CheckLength(field, id, options);
}

std::optional<FieldProblem> ValidateEvent(const ParsedEvent& event, const EventBatch& batch,
                                          const ValidationOptions& options) {
  if (event.user_id.empty() && event.device_id.empty()) {
    return FieldProblem{"user_id", "an event needs a user_id or a device_id"};
  }
  if (!event.user_id.empty()) {
    if (auto p = CheckId("user_id", event.user_id, options)) return p;
  }
  if (!event.device_id.empty()) {
    if (auto p = CheckId("device_id", event.device_id, options)) return p;
  }
  if (!event.is_identify) {
    if (event.event_type.empty()) return FieldProblem{"event_type", "is required"};
    if (auto p = CheckLength("event_type", event.event_type, options)) return p;
  }
  if (auto p = CheckLength("insert_id", event.insert_id, options)) return p;
  if (event.has_time) {
    if (event.time_ms < 0) {
      return FieldProblem{"time", fmt::format("{} is negative", event.time_ms)};
    }
    if (event.time_ms < kMinPlausibleTimeMs) {
      return FieldProblem{"time",
                          fmt::format("{} looks like epoch seconds; time must be epoch "
                                      "milliseconds",
                                      event.time_ms)};
    }
    if (event.time_ms >= kMaxPlausibleTimeMs) {
      return FieldProblem{"time",
                          fmt::format("{} looks like epoch microseconds (or nanoseconds); "
                                      "time must be epoch milliseconds",
                                      event.time_ms)};
    }
    if (event.time_ms < options.min_time_ms) {
      return FieldProblem{"time", fmt::format("{} ({}) is before {}, the earliest time accepted",
                                              event.time_ms, FormatTime(event.time_ms),
                                              FormatTime(options.min_time_ms))};
    }
    if (event.time_ms > options.max_time_ms) {
      return FieldProblem{"time", fmt::format("{} ({}) is in the future: after {}, the latest "
                                              "time accepted (the receiver's clock plus its "
                                              "tolerance)",
                                              event.time_ms, FormatTime(event.time_ms),
                                              FormatTime(options.max_time_ms))};
    }
  }
  for (const Property& p : batch.PropertiesOf(event)) {
    if (auto problem = CheckProperty("event_properties", p.key, p.value, options)) {
      return problem;
    }
  }
  for (const UserPropertyUpdate& u : batch.UserUpdatesOf(event)) {
    if (auto problem = CheckProperty("user_properties", u.key, u.value, options)) {
      return problem;
    }
  }
  return std::nullopt;
}

}  // namespace sibyl
