// IngestError: one rejected event (or line, or request), named so a human can find it.
#pragma once

#include <string>
#include <string_view>

#include <fmt/format.h>

#include "event/event.h"

namespace sibyl {

struct IngestError {
  SourcePosition position;
  std::string source;   // file name; empty for a request body ("batch index i")
  bool in_array = false;  // position.index is meaningful (element of a JSON array)
  std::string field;    // "user_id", "event_properties.color", "" for the whole line
  std::string reason;   // "\"null\" is a blocked id value"
  // A Segment message of a type sibyl does not use (not track, identify, page, screen,
  // group or alias): receivers may skip it instead of failing its batch.
  bool unsupported_type = false;

  // `events.ndjson:17: field "user_id": "null" is a blocked id value`,
  // `batch index 3: field "time": ...`, `body.json:1: batch index 2: ...`.
  std::string ToString() const;
};

}  // namespace sibyl

template <>
struct fmt::formatter<sibyl::IngestError> : fmt::formatter<std::string_view> {
  template <typename FormatContext>
  auto format(const sibyl::IngestError& e, FormatContext& ctx) const {
    return fmt::formatter<std::string_view>::format(e.ToString(), ctx);
  }
};
