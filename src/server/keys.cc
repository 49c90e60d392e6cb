#include "server/keys.h"

#include <cstdlib>

#include "common/file.h"

namespace sibyl::server {
namespace {

std::string Trim(std::string_view s) {
  size_t b = 0, e = s.size();
  while (b < e && (s[b] == ' ' || s[b] == '\t' || s[b] == '\r' || s[b] == '\n')) ++b;
  while (e > b && (s[e - 1] == ' ' || s[e - 1] == '\t' || s[e - 1] == '\r' || s[e - 1] == '\n')) --e;
  return std::string(s.substr(b, e - b));
}

std::vector<std::string> SplitKeys(std::string_view text, char separator) {
  std::vector<std::string> keys;
  size_t start = 0;
  while (start <= text.size()) {
    size_t end = text.find(separator, start);
    if (end == std::string_view::npos) end = text.size();
    std::string key = Trim(text.substr(start, end - start));
    if (!key.empty() && key[0] != '#') keys.push_back(std::move(key));
    start = end + 1;
  }
  return keys;
}

}  // namespace

Result<Keys> LoadKeys(const KeySources& sources) {
  Keys keys;
  if (!sources.admin_key_file.empty()) {
    ASSIGN_OR_RETURN(std::string text, ReadFile(sources.admin_key_file));
    keys.admin = Trim(text);
  } else if (const char* env = sources.use_environment ? std::getenv("SIBYL_ADMIN_KEY") : nullptr) {
    keys.admin = Trim(env);
  }
  if (!sources.ingest_keys_file.empty()) {
    ASSIGN_OR_RETURN(std::string text, ReadFile(sources.ingest_keys_file));
    keys.ingest = SplitKeys(text, '\n');
  } else if (const char* env = sources.use_environment ? std::getenv("SIBYL_INGEST_KEYS") : nullptr) {
    keys.ingest = SplitKeys(env, ',');
  }
  if (keys.admin.empty())
    return InvalidArgument("no admin key: give --admin-key-file FILE or set SIBYL_ADMIN_KEY");
  if (keys.ingest.empty())
    return InvalidArgument("no ingest key: give --ingest-keys-file FILE or set SIBYL_INGEST_KEYS (comma-separated)");
  if (keys.admin.size() < kMinKeyLength) return InvalidArgument("the admin key is shorter than {} characters", kMinKeyLength);
  for (size_t i = 0; i < keys.ingest.size(); ++i)
    if (keys.ingest[i].size() < kMinKeyLength)
      return InvalidArgument("ingest key {} is shorter than {} characters", i + 1, kMinKeyLength);
  // Ingest keys ship inside apps, where anyone can read them: one equal to the admin key
  // would open the admin API to every user of the app.
  for (size_t i = 0; i < keys.ingest.size(); ++i)
    if (ConstantTimeEquals(keys.ingest[i], keys.admin))
      return InvalidArgument("ingest key {} equals the admin key; ingest keys ship inside apps, so the admin "
                             "key must be another one",
                             i + 1);
  return keys;
}

bool ConstantTimeEquals(std::string_view a, std::string_view b) {
  // Runs over the longer length whatever the content; only the lengths leak.
  const size_t n = std::max(a.size(), b.size());
  unsigned diff = a.size() != b.size() ? 1u : 0u;
  for (size_t i = 0; i < n; ++i) {
    const unsigned char x = i < a.size() ? static_cast<unsigned char>(a[i]) : 0;
    const unsigned char y = i < b.size() ? static_cast<unsigned char>(b[i]) : 0;
    diff |= x ^ y;
  }
  return diff == 0;
}

AuthOutcome CheckKey(std::optional<std::string_view> provided, const std::vector<std::string>& keys) {
  if (!provided || provided->empty()) return AuthOutcome::kMissing;
  bool match = false;
  for (const std::string& key : keys) match |= ConstantTimeEquals(*provided, key);
  return match ? AuthOutcome::kOk : AuthOutcome::kWrong;
}

std::optional<std::string> Base64Decode(std::string_view text) {
  auto value = [](char c) -> int {
    if (c >= 'A' && c <= 'Z') return c - 'A';
    if (c >= 'a' && c <= 'z') return c - 'a' + 26;
    if (c >= '0' && c <= '9') return c - '0' + 52;
    if (c == '+') return 62;
    if (c == '/') return 63;
    return -1;
  };
  while (!text.empty() && text.back() == '=') text.remove_suffix(1);
  std::string out;
  uint32_t buffer = 0;
  int bits = 0;
  for (char c : text) {
    int v = value(c);
    if (v < 0) return std::nullopt;
    buffer = (buffer << 6) | static_cast<uint32_t>(v);
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      out.push_back(static_cast<char>((buffer >> bits) & 0xff));
    }
  }
  return out;
}

std::optional<std::string> CredentialFromAuthorization(std::string_view header) {
  auto starts = [&](std::string_view scheme) {
    if (header.size() < scheme.size()) return false;
    for (size_t i = 0; i < scheme.size(); ++i)
      if (std::tolower(static_cast<unsigned char>(header[i])) != scheme[i]) return false;
    return true;
  };
  if (starts("bearer ")) {
    std::string key = Trim(header.substr(7));
    if (key.empty()) return std::nullopt;
    return key;
  }
  if (starts("basic ")) {
    auto decoded = Base64Decode(Trim(header.substr(6)));
    if (!decoded) return std::nullopt;
    size_t colon = decoded->find(':');
    std::string user = decoded->substr(0, colon);
    std::string pass = colon == std::string::npos ? "" : decoded->substr(colon + 1);
    if (!pass.empty()) return pass;
    if (!user.empty()) return user;
  }
  return std::nullopt;
}

}  // namespace sibyl::server
