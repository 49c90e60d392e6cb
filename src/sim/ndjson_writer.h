// Formats simulated events as Amplitude-shaped NDJSON lines, appending to a block
// buffer without allocating per event. All strings come from the catalogue and need no
// JSON escaping.
#pragma once

#include <cstdint>
#include <string>

#include "sim/generator.h"
#include "sim/user_model.h"

namespace sibyl::sim {

// What every line of one user shares, formatted once per user.
struct UserLineContext {
  char user_id[24];
  uint32_t user_id_len = 0;
  char device_id[24];
  uint32_t device_id_len = 0;
  const UserModel* user = nullptr;
};

UserLineContext MakeLineContext(const UserModel& user);

// Appends one line (with its trailing newline) for `event` to `out`.
void AppendEventLine(const UserLineContext& context, const SimEvent& event, std::string& out);

}  // namespace sibyl::sim
