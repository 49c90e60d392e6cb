// The helpers every route shares (context.h): replies, error mapping, the admin check.
#include "server/context.h"

#include <optional>

namespace sibyl::server {

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

bool RequireAdmin(const ServerContext& ctx, const httplib::Request& req, httplib::Response& res, bool browser) {
  std::optional<std::string> key = CredentialFromAuthorization(req.get_header_value("Authorization"));
  switch (CheckKey(key ? std::optional<std::string_view>(*key) : std::nullopt, {ctx.options.keys.admin})) {
    case AuthOutcome::kOk: return true;
    case AuthOutcome::kMissing:
      // Browsers then ask for the key (any user name, the key as password).
      res.set_header("WWW-Authenticate", "Basic realm=\"sibyl admin\", charset=\"UTF-8\"");
      SendError(res, 401, "unauthenticated", "missing admin key (Authorization: Bearer KEY, or Basic with the key as password)");
      return false;
    case AuthOutcome::kWrong:
      if (browser) res.set_header("WWW-Authenticate", "Basic realm=\"sibyl admin\", charset=\"UTF-8\"");
      SendError(res, 403, "permission_denied", "wrong admin key");
      return false;
  }
  return false;
}

}  // namespace sibyl::server
