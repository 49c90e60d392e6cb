// Who may do what: ingest keys (Amplitude api_key, Segment write key) and one admin key
// for everything else. Keys come from files or the environment, never the command line
// (where `ps` would show them), and are never logged. See docs/SERVER.md, "Security".
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/status.h"

namespace sibyl::server {

struct Keys {
  std::string admin;                 // /api/v1, the web pages, /metrics
  std::vector<std::string> ingest;   // Amplitude api_key / Segment write key
};

// Where keys come from. Files win over the environment.
struct KeySources {
  std::string admin_key_file;    // one line: the admin key
  std::string ingest_keys_file;  // one key a line; blank lines and lines starting with # skipped
  // Environment: SIBYL_ADMIN_KEY, SIBYL_INGEST_KEYS (comma-separated).
  bool use_environment = true;
};

// Reads the keys. InvalidArgument when there is no admin key or no ingest key, or a key
// is shorter than kMinKeyLength (a typo'd empty variable must not open the server).
inline constexpr size_t kMinKeyLength = 8;
Result<Keys> LoadKeys(const KeySources& sources);

// Equal strings, in time that does not depend on where they first differ.
bool ConstantTimeEquals(std::string_view a, std::string_view b);

enum class AuthOutcome { kOk, kMissing, kWrong };

// `provided` against every key of `keys` (all compared, whatever matches).
AuthOutcome CheckKey(std::optional<std::string_view> provided, const std::vector<std::string>& keys);

// Standard base64 (RFC 4648), padding optional; nullopt on bad input.
std::optional<std::string> Base64Decode(std::string_view text);

// The credential an Authorization header carries: "Bearer K" -> K; "Basic b64(user:pass)"
// -> pass, or user when pass is empty (Segment sends the write key as the user name).
std::optional<std::string> CredentialFromAuthorization(std::string_view header);

}  // namespace sibyl::server
