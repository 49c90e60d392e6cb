// The helpers every route shares (context.h): replies, error mapping, the admin check.
#include "server/context.h"

#include <cctype>
#include <map>
#include <optional>

#include <fmt/format.h>

#include "clickhouse/cluster_names.h"
#include "clickhouse/cluster_store.h"
#include "clickhouse/slice_store.h"
#include "common/file.h"
#include "server/session.h"

namespace sibyl::server {

// The sessions of each server, beside its context: ServerContext (context.h) belongs to
// the HTTP layer. RegisterWebRoutes starts each server's store afresh, so a later server
// at the same address (tests) never sees an earlier one's sessions.
class SessionRegistry {
 public:
  static SessionStore& Get(const ServerContext& ctx, bool fresh) {
    static std::mutex mutex;
    static std::map<const ServerContext*, std::unique_ptr<SessionStore>> stores;
    std::lock_guard lock(mutex);
    std::unique_ptr<SessionStore>& store = stores[&ctx];
    if (!store || fresh) store = std::make_unique<SessionStore>();
    return *store;
  }
};

namespace {

// A slice pulled for one request: the reader keeps its private store alive and deletes it
// (and its folder under <data>/tmp) when the last reference goes.
Result<std::shared_ptr<const EventReader>> PullSlice(const ServerContext& ctx, const clickhouse::SliceSpec& spec) {
  clickhouse::SliceOptions options;
  options.temp_dir = ctx.options.data_dir + "/tmp";
  RETURN_IF_ERROR(CreateDirs(options.temp_dir));
  ASSIGN_OR_RETURN(std::unique_ptr<EventStore> slice, clickhouse::OpenSlice(*ctx.options.cluster, spec, options));
  struct Held {
    std::unique_ptr<EventStore> store;
    std::shared_ptr<const EventReader> reader;  // destroyed first: it reads the store's data
  };
  auto held = std::make_shared<Held>();
  held->store = std::move(slice);
  held->reader = held->store->Snapshot();
  const EventReader* reader = held->reader.get();
  return std::shared_ptr<const EventReader>(std::move(held), reader);
}

}  // namespace

Result<std::shared_ptr<const EventReader>> ServerContext::ReaderOfUsers(const std::vector<std::string>& user_ids) const {
  if (!on_cluster()) return store->Snapshot();
  clickhouse::SliceSpec spec;
  spec.kind = clickhouse::SliceSpec::Kind::kOwners;
  for (const std::string& id : user_ids) spec.owners.push_back(clickhouse::OwnerOfUserId(id));
  return PullSlice(*this, spec);
}

Result<std::unique_ptr<StoreNames>> ServerContext::NamesOfStore() const {
  if (on_cluster()) {
    ASSIGN_OR_RETURN(NameLists names, clickhouse::ReadStoreNames(*options.cluster));
    return std::unique_ptr<StoreNames>(std::make_unique<NameLists>(std::move(names)));
  }
  return std::unique_ptr<StoreNames>(std::make_unique<ReaderNames>(store->Snapshot()));
}

void SendNotOnCluster(httplib::Response& res, const std::string& endpoint, const std::string& instead) {
  SendError(res, 501, "not_implemented",
            fmt::format("{} is not served on a ClickHouse cluster: {} (docs/SERVER.md, \"On a ClickHouse cluster\")",
                        endpoint, instead));
}

RequestInfo& CurrentRequest() {
  thread_local RequestInfo info;
  return info;
}

void SendJson(httplib::Response& res, int status, const nlohmann::json& body) {
  res.status = status;
  res.set_content(body.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace), "application/json");
}

int HttpStatusFor(const Status& status) {
  switch (status.code()) {
    case StatusCode::kOk: return 200;
    case StatusCode::kInvalidArgument: return 400;
    case StatusCode::kUnauthenticated: return 401;
    case StatusCode::kPermissionDenied: return 403;
    case StatusCode::kNotFound: return 404;
    case StatusCode::kAlreadyExists:
    case StatusCode::kFailedPrecondition: return 409;
    case StatusCode::kResourceExhausted: return 429;
    case StatusCode::kCancelled: return 503;
    case StatusCode::kCorruption:
    case StatusCode::kIoError:
    case StatusCode::kInternal: return 500;
  }
  return 500;
}

namespace {
const char* CodeName(const Status& status) {
  switch (status.code()) {
    case StatusCode::kOk: return "ok";
    case StatusCode::kInvalidArgument: return "invalid_argument";
    case StatusCode::kNotFound: return "not_found";
    case StatusCode::kAlreadyExists: return "already_exists";
    case StatusCode::kFailedPrecondition: return "failed_precondition";
    case StatusCode::kCorruption: return "corruption";
    case StatusCode::kIoError: return "io_error";
    case StatusCode::kResourceExhausted: return "resource_exhausted";
    case StatusCode::kUnauthenticated: return "unauthenticated";
    case StatusCode::kPermissionDenied: return "permission_denied";
    case StatusCode::kCancelled: return "cancelled";
    case StatusCode::kInternal: return "internal";
  }
  return "internal";
}
}  // namespace

void SendError(httplib::Response& res, int http_status, const std::string& code, const std::string& message) {
  CurrentRequest().error = message;
  SendJson(res, http_status, {{"error", {{"code", code}, {"message", message}}}});
}

void SendStatus(httplib::Response& res, const Status& status) {
  SendError(res, HttpStatusFor(status), CodeName(status), status.message());
}

SessionStore& SessionsOf(const ServerContext& ctx) {
  return SessionRegistry::Get(ctx, /*fresh=*/false);
}

void StartSessions(const ServerContext& ctx) { SessionRegistry::Get(ctx, /*fresh=*/true); }

namespace {

bool ForwardedOverTls(const httplib::Request& req) { return req.get_header_value("X-Forwarded-Proto") == "https"; }

// A page asked for without a key: the login page, coming back here after.
void RedirectToLogin(const httplib::Request& req, httplib::Response& res) {
  std::string next = req.matches.size() > 0 ? std::string(req.matches[0]) : "/";
  std::string encoded;
  for (unsigned char c : next) {
    if (std::isalnum(c) || c == '/' || c == '-' || c == '_' || c == '.') encoded += static_cast<char>(c);
    else encoded += fmt::format("%{:02X}", c);
  }
  res.status = 303;
  res.set_header("Location", "/login?next=" + encoded);
  res.set_header("Cache-Control", "no-store");
  res.set_content("sign in at /login\n", "text/plain; charset=utf-8");
}

}  // namespace

bool RequireAdmin(const ServerContext& ctx, const httplib::Request& req, httplib::Response& res, bool browser) {
  const std::string authorization = req.get_header_value("Authorization");
  const std::string token = CookieValue(req.get_header_value("Cookie"), kSessionCookie);
  // The key in Authorization wins (the API's clients, curl, a page opened as
  // http://admin:KEY@host/); without one, a session cookie from the login page.
  if (authorization.empty() && !token.empty()) {
    if (SessionsOf(ctx).Find(token, ctx.options.clock->NowMs())) return true;
  }
  std::optional<std::string> key = CredentialFromAuthorization(authorization);
  switch (CheckKey(key ? std::optional<std::string_view>(*key) : std::nullopt, {ctx.options.keys.admin})) {
    case AuthOutcome::kOk:
      // A page loaded with the key in the URL: its own fetches cannot carry the key (fetch
      // refuses URLs with credentials), so they get a session like a login would give.
      if (browser && (token.empty() || !SessionsOf(ctx).Find(token, ctx.options.clock->NowMs()))) {
        const Session session = SessionsOf(ctx).Create(ctx.options.clock->NowMs());
        res.set_header("Set-Cookie", SessionCookie(session, ctx.options.clock->NowMs(), ForwardedOverTls(req)));
      }
      return true;
    case AuthOutcome::kMissing:
      if (browser) {
        RedirectToLogin(req, res);
        CurrentRequest().error = "not signed in";
        return false;
      }
      // An expired session's fetch must not make the browser pop its Basic dialog over
      // the page: the page sends the user to the login page instead.
      if (token.empty())
        res.set_header("WWW-Authenticate", "Basic realm=\"sibyl admin\", charset=\"UTF-8\"");
      SendError(res, 401, "unauthenticated",
                "missing admin key (Authorization: Bearer KEY, or Basic with the key as password) or session "
                "(sign in at /login)");
      return false;
    case AuthOutcome::kWrong:
      SendError(res, 403, "permission_denied", "wrong admin key");
      return false;
  }
  return false;
}

bool RequireCsrf(const ServerContext& ctx, const httplib::Request& req, httplib::Response& res) {
  // Requests carrying the key themselves are not a browser's ambient credentials.
  if (!req.get_header_value("Authorization").empty()) return true;
  const std::string token = CookieValue(req.get_header_value("Cookie"), kSessionCookie);
  std::optional<Session> session = SessionsOf(ctx).Find(token, ctx.options.clock->NowMs());
  const std::string sent = req.get_header_value("X-CSRF-Token");
  if (session && !sent.empty() && ConstantTimeEquals(sent, session->csrf_token)) return true;
  SendError(res, 403, "permission_denied",
            "missing or wrong X-CSRF-Token (a signed-in page sends the token of GET /api/v1/session)");
  return false;
}

}  // namespace sibyl::server
