#include "server/session.h"

#include <sys/random.h>

#include <algorithm>
#include <cerrno>
#include <stdexcept>

#include <fmt/format.h>

namespace sibyl::server {

std::string RandomHex(size_t bytes) {
  std::string raw(bytes, '\0');
  size_t filled = 0;
  while (filled < bytes) {
    ssize_t n = getrandom(raw.data() + filled, bytes - filled, 0);
    // getrandom blocks only before the kernel's pool is seeded, and fails only on a
    // programming error: a session without entropy must not be handed out.
    if (n < 0) {
      if (errno == EINTR) continue;
      throw std::runtime_error("getrandom failed");
    }
    filled += static_cast<size_t>(n);
  }
  static constexpr char kDigits[] = "0123456789abcdef";
  std::string hex(bytes * 2, '0');
  for (size_t i = 0; i < bytes; ++i) {
    hex[2 * i] = kDigits[static_cast<unsigned char>(raw[i]) >> 4];
    hex[2 * i + 1] = kDigits[static_cast<unsigned char>(raw[i]) & 15];
  }
  return hex;
}

Session SessionStore::Create(int64_t now) {
  Session s{RandomHex(32), RandomHex(32), now + ttl_ms_};
  std::lock_guard lock(mutex_);
  // Expired sessions are never found, so they are swept only when the store is full: a
  // sweep per sign-in would make a full store quadratic.
  if (sessions_.size() >= kMaxSessions)
    std::erase_if(sessions_, [now](const auto& entry) { return entry.second.expires_ms <= now; });
  while (sessions_.size() >= kMaxSessions) {
    auto soonest = std::min_element(sessions_.begin(), sessions_.end(), [](const auto& a, const auto& b) {
      return a.second.expires_ms < b.second.expires_ms;
    });
    sessions_.erase(soonest);
  }
  sessions_.emplace(s.token, s);
  return s;
}

std::optional<Session> SessionStore::Find(std::string_view token, int64_t now_ms) const {
  if (token.empty()) return std::nullopt;
  std::lock_guard lock(mutex_);
  auto it = sessions_.find(token);
  if (it == sessions_.end() || it->second.expires_ms <= now_ms) return std::nullopt;
  return it->second;
}

void SessionStore::Remove(std::string_view token) {
  std::lock_guard lock(mutex_);
  if (auto it = sessions_.find(token); it != sessions_.end()) sessions_.erase(it);
}

size_t SessionStore::size() const {
  std::lock_guard lock(mutex_);
  return sessions_.size();
}

std::string CookieValue(std::string_view header, std::string_view name) {
  while (!header.empty()) {
    size_t end = header.find(';');
    std::string_view pair = header.substr(0, end);
    header = end == std::string_view::npos ? std::string_view() : header.substr(end + 1);
    while (!pair.empty() && pair.front() == ' ') pair.remove_prefix(1);
    size_t eq = pair.find('=');
    if (eq != std::string_view::npos && pair.substr(0, eq) == name) return std::string(pair.substr(eq + 1));
  }
  return "";
}

std::string SessionCookie(const Session& session, int64_t now_ms, bool secure) {
  return fmt::format("{}={}; Path=/; Max-Age={}; HttpOnly; SameSite=Strict{}", kSessionCookie, session.token,
                     std::max<int64_t>(0, (session.expires_ms - now_ms) / 1000), secure ? "; Secure" : "");
}

std::string ExpiredSessionCookie(bool secure) {
  return fmt::format("{}=; Path=/; Max-Age=0; HttpOnly; SameSite=Strict{}", kSessionCookie, secure ? "; Secure" : "");
}

namespace {
int HexDigit(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

std::string FormDecode(std::string_view s) {
  std::string out;
  out.reserve(s.size());
  for (size_t i = 0; i < s.size(); ++i) {
    if (s[i] == '+') {
      out += ' ';
    } else if (s[i] == '%' && i + 2 < s.size() && HexDigit(s[i + 1]) >= 0 && HexDigit(s[i + 2]) >= 0) {
      out += static_cast<char>(HexDigit(s[i + 1]) * 16 + HexDigit(s[i + 2]));
      i += 2;
    } else {
      out += s[i];
    }
  }
  return out;
}
}  // namespace

std::optional<std::string> FormValue(std::string_view body, std::string_view name) {
  while (!body.empty()) {
    size_t end = body.find('&');
    std::string_view pair = body.substr(0, end);
    body = end == std::string_view::npos ? std::string_view() : body.substr(end + 1);
    size_t eq = pair.find('=');
    if (FormDecode(pair.substr(0, eq)) == name)
      return eq == std::string_view::npos ? std::string() : FormDecode(pair.substr(eq + 1));
  }
  return std::nullopt;
}

}  // namespace sibyl::server
