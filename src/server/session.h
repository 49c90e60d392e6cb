// Browser sign-in: a session cookie exchanged for the admin key on the login page, so the
// web pages work in every browser (a page opened as http://admin:KEY@host/ cannot call
// fetch: URLs with credentials are refused). The JSON API keeps accepting the key itself
// in Authorization. See docs/WEB.md, "Sign-in".
//
// A session is a random 256-bit token in an HttpOnly, SameSite=Strict cookie, expiring
// after kSessionTtlMs; state-changing requests made with it must also carry the session's
// CSRF token in X-CSRF-Token (the pages read it from GET /api/v1/session). Sessions live
// in the server's memory only: a restart signs everyone out.
#pragma once

#include <cstdint>
#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>

#include "server/context.h"


namespace sibyl::server {

inline constexpr const char* kSessionCookie = "sibyl_session";
inline constexpr int64_t kSessionTtlMs = 12LL * 3600 * 1000;
inline constexpr size_t kMaxSessions = 10'000;

struct Session {
  std::string token;       // the cookie's value
  std::string csrf_token;  // sent back by the page in X-CSRF-Token
  int64_t expires_ms = 0;
};

// The sessions of one server. Thread-safe. Times come from the caller (the server's
// injected clock), so tests move past an expiry without waiting.
class SessionStore {
 public:
  explicit SessionStore(int64_t ttl_ms = kSessionTtlMs) : ttl_ms_(ttl_ms) {}

  // A new session. When kMaxSessions are kept, expired ones are dropped, then the one that
  // expires soonest (a client logging in in a loop cannot grow memory without bound).
  Session Create(int64_t now_ms);
  // The live session with this token, or nullopt (unknown or expired).
  std::optional<Session> Find(std::string_view token, int64_t now_ms) const;
  void Remove(std::string_view token);
  size_t size() const;

 private:
  const int64_t ttl_ms_;
  mutable std::mutex mutex_;
  std::map<std::string, Session, std::less<>> sessions_;
};

// The sessions of the server `ctx` belongs to (kept beside the context, created on first
// use); StartSessions empties them (RegisterWebRoutes calls it for each new server).
SessionStore& SessionsOf(const ServerContext& ctx);
void StartSessions(const ServerContext& ctx);

// For state-changing routes, after RequireAdmin: a request signed in by its session
// cookie must carry the session's CSRF token in X-CSRF-Token (a request with the key in
// Authorization needs none: a browser never adds that to a cross-site request). Writes
// 403 and returns false when it does not.
bool RequireCsrf(const ServerContext& ctx, const httplib::Request& req, httplib::Response& res);

// `bytes` random bytes from the kernel (getrandom), as lowercase hex.
std::string RandomHex(size_t bytes);

// The value of cookie `name` in a Cookie header ("a=1; sibyl_session=abc"), or "".
std::string CookieValue(std::string_view cookie_header, std::string_view name);

// Set-Cookie values: the session cookie (HttpOnly, SameSite=Strict, Path=/, Max-Age), with
// Secure when the request came over TLS through a proxy; and the one that deletes it.
std::string SessionCookie(const Session& session, int64_t now_ms, bool secure);
std::string ExpiredSessionCookie(bool secure);

// application/x-www-form-urlencoded: the value of `name` in `body` (percent-decoded, '+'
// as space), or nullopt. What an HTML form posts.
std::optional<std::string> FormValue(std::string_view body, std::string_view name);

}  // namespace sibyl::server
