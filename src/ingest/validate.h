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

struct ValidationOptions {
  // Amplitude's default; its HTTP API lets a caller lower it with `min_id_length`.
  size_t min_id_length = 5;
  // Every id, event type, property key and string value.
  size_t max_string_length = 1024;
};

// Epoch milliseconds below this (1973-03-03) are almost surely epoch *seconds* sent by
// mistake; Amplitude's `time` is milliseconds.
inline constexpr int64_t kMinPlausibleTimeMs = 100'000'000'000;

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
