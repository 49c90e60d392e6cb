// The vendor ingest endpoints: Amplitude HTTP V2 (/2/httpapi), batch (/batch) and identify
// (/identify); Segment track, identify, page, screen, group, alias and batch (/v1/...).
// Each request is checked in this order: empty body (400), size (413), key (Amplitude:
// 400 "Invalid API key"; Segment: 401/403), body (400, every bad event named), event
// count (413), then queued for group commit (429 when the queue is full) and acknowledged
// only once its transaction is durable. A rejected request writes nothing. Answers are
// shaped as the vendor's own, so their SDKs understand them (docs/SERVER.md).
#include <simdjson.h>

#include <atomic>
#include <chrono>
#include <cstdlib>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <fmt/format.h>

#include "ingest/json_parser.h"
#include "server/context.h"

namespace sibyl::server {
namespace {

enum class Vendor { kAmplitude, kSegment };

struct Endpoint {
  const char* path;
  Vendor vendor;
  BodyKind kind;
  size_t max_body_bytes;
  const char* segment_type = nullptr;  // /v1/track, /v1/page, ...: the message type the path implies
  // amplitude-js's upload (POST /): a form with the key as `client` and the events as `e`.
  bool legacy_upload = false;
  // The same endpoint at the path analytics.js (Segment's browser SDK) posts to: the
  // type's first letter (/v1/t), and /v1/b for batches.
  const char* browser_path = nullptr;
};

// What the Amplitude envelope says besides the events.
struct Envelope {
  std::optional<std::string> api_key;
  std::optional<std::string> write_key;  // Segment's, when it comes in the body
  std::optional<int64_t> min_id_length;
  bool has_events = false;  // an "events" key (its value is checked by the full parse)
};

// Reads api_key and options.min_id_length from an Amplitude body (or Segment's writeKey)
// without building the events (the full parse comes after the key check).
// InvalidArgument when the body is not a JSON object.
Result<Envelope> ReadEnvelope(const std::string& body) {
  thread_local simdjson::ondemand::parser parser;
  simdjson::padded_string padded(body);
  simdjson::ondemand::document doc;
  if (parser.iterate(padded).get(doc)) return InvalidArgument("the body is not valid JSON");
  simdjson::ondemand::object object;
  if (doc.get_object().get(object)) return InvalidArgument("the body is not a JSON object");
  Envelope envelope;
  for (auto field : object) {
    std::string_view key;
    if (field.unescaped_key().get(key)) return InvalidArgument("the body is not valid JSON");
    if (key == "api_key") {
      std::string_view value;
      if (field.value().get_string().get(value) == simdjson::SUCCESS) envelope.api_key = std::string(value);
    } else if (key == "writeKey") {
      std::string_view value;
      if (field.value().get_string().get(value) == simdjson::SUCCESS) envelope.write_key = std::string(value);
    } else if (key == "events") {
      envelope.has_events = true;
    } else if (key == "options") {
      simdjson::ondemand::object options;
      if (field.value().get_object().get(options) != simdjson::SUCCESS) continue;
      for (auto option : options) {
        std::string_view name;
        if (option.unescaped_key().get(name)) break;
        int64_t n;
        if (name == "min_id_length" && option.value().get_int64().get(n) == simdjson::SUCCESS) envelope.min_id_length = n;
      }
    }
  }
  return envelope;
}

// application/x-www-form-urlencoded: "a=1&b=%7B%7D" -> {a: 1, b: {}}.
std::map<std::string, std::string> ParseForm(std::string_view body) {
  auto decode = [](std::string_view s) {
    std::string out;
    out.reserve(s.size());
    for (size_t i = 0; i < s.size(); ++i) {
      if (s[i] == '+') {
        out.push_back(' ');
      } else if (s[i] == '%' && i + 2 < s.size() + 0 && std::isxdigit(static_cast<unsigned char>(s[i + 1])) &&
                 std::isxdigit(static_cast<unsigned char>(s[i + 2]))) {
        out.push_back(static_cast<char>(std::stoi(std::string(s.substr(i + 1, 2)), nullptr, 16)));
        i += 2;
      } else {
        out.push_back(s[i]);
      }
    }
    return out;
  };
  std::map<std::string, std::string> form;
  size_t start = 0;
  while (start < body.size()) {
    size_t end = body.find('&', start);
    if (end == std::string_view::npos) end = body.size();
    std::string_view pair = body.substr(start, end - start);
    size_t eq = pair.find('=');
    if (!pair.empty()) form[decode(pair.substr(0, eq))] = eq == std::string_view::npos ? "" : decode(pair.substr(eq + 1));
    start = end + 1;
  }
  return form;
}

bool IsMissingReason(const IngestError& e) {
  return e.reason.find("is required") != std::string::npos || e.reason.find("needs a user_id") != std::string::npos;
}

bool IsIdLengthReason(const IngestError& e) {
  return (e.field == "user_id" || e.field == "device_id") && e.reason.find("is shorter than") != std::string::npos;
}

nlohmann::json ErrorList(const std::vector<IngestError>& errors, size_t limit = 100) {
  nlohmann::json list = nlohmann::json::array();
  for (size_t i = 0; i < errors.size() && i < limit; ++i) {
    nlohmann::json e = {{"field", errors[i].field}, {"reason", errors[i].reason}, {"message", errors[i].ToString()}};
    if (errors[i].in_array) e["index"] = errors[i].position.index;
    list.push_back(std::move(e));
  }
  return list;
}

class IngestHandler {
 public:
  IngestHandler(ServerContext& ctx, Endpoint endpoint) : ctx_(ctx), ep_(endpoint) {
    if (ctx.options.test_refuse_ingest > 0)
      refuse_left_ = std::make_shared<std::atomic<int64_t>>(static_cast<int64_t>(ctx.options.test_refuse_ingest));
  }

  // A request the server refused without running the handler: over the body limit
  // (`body_bytes`: declared, or what was read or inflated when the limit was passed), a
  // body that is not valid gzip/deflate, or the server is full (worker queue or memory
  // budget). Counted and answered as the handler would, in the vendor's shape.
  void Refuse(httplib::Response& res, const Refused& refused) {
    CurrentRequest().route = ep_.path;
    ctx_.metrics.Add("sibyl_ingest_requests_total", fmt::format("endpoint=\"{}\"", ep_.path));
    switch (refused.why) {
      case Refusal::kTooLarge: return TooLarge(res, refused.body_bytes);
      case Refusal::kBadEncoding: return Fail(res, 400, refused.message);
      case Refusal::kOverloaded: return Throttled(res, "the server's request queue is full; retry later");
    }
  }

  // `body_bytes`: the body's full size.
  void operator()(const httplib::Request& req, httplib::Response& res, const std::string& body, size_t body_bytes) {
    CurrentRequest().route = ep_.path;
    const std::string endpoint_label = fmt::format("endpoint=\"{}\"", ep_.path);
    ctx_.metrics.Add("sibyl_ingest_requests_total", endpoint_label);
    if (body_bytes == 0) return Fail(res, 400, "Invalid request: the request body is empty");
    if (body_bytes > ep_.max_body_bytes) return TooLarge(res, body_bytes);

    // The key, and for Amplitude the body's options.
    std::optional<std::string> key;
    std::string events_text;
    JsonParseOptions parse_options;
    // Times from min_event_time_ms to the arrival time plus the tolerance (docs/INGEST.md).
    parse_options.validation.min_time_ms = ctx_.options.limits.min_event_time_ms;
    parse_options.validation.max_time_ms =
        std::min(ctx_.options.clock->NowMs() + ctx_.options.limits.future_tolerance_ms, kNoMaxTimeMs);
    bool has_events = true;
    if (ep_.vendor == Vendor::kSegment) {
      key = CredentialFromAuthorization(req.get_header_value("Authorization"));
      // Segment's SDKs before analytics-node 3 send the write key in the body only
      // (`"writeKey"` beside `"batch"`), not as HTTP Basic: the header wins when both come.
      if (!key) {
        auto envelope = ReadEnvelope(body);
        if (!envelope.ok()) return Fail(res, 400, "Invalid JSON request body: " + envelope.status().message());
        key = envelope->write_key;
      }
    } else if (ep_.kind == BodyKind::kAmplitudeIdentify) {
      auto form = ParseForm(body);
      if (auto it = form.find("api_key"); it != form.end()) key = it->second;
      if (auto it = form.find("identification"); it != form.end()) events_text = std::move(it->second);
    } else if (ep_.legacy_upload) {
      // amplitude-js 8 and before (Amplitude's browser SDK until analytics-browser): the
      // events as a JSON array in `e` (HTTP V2's fields, `timestamp` for `time` and `uuid`
      // for `insert_id`), v, upload_time and an MD5 checksum of them, which is not checked
      // (it guards nothing the key does not: the page ships the key).
      auto form = ParseForm(body);
      if (auto it = form.find("client"); it != form.end()) key = it->second;
      if (auto it = form.find("e"); it != form.end()) events_text = "{\"events\":" + it->second + "}";
      has_events = !events_text.empty();
    } else {
      auto envelope = ReadEnvelope(body);
      if (!envelope.ok()) return Fail(res, 400, "Invalid JSON request body: " + envelope.status().message());
      key = envelope->api_key;
      has_events = envelope->has_events;
      if (envelope->min_id_length) {
        if (*envelope->min_id_length < 1 || *envelope->min_id_length > 1024)
          return Fail(res, 400, "options.min_id_length must be between 1 and 1024");
        parse_options.validation.min_id_length = static_cast<size_t>(*envelope->min_id_length);
      }
    }
    // Amplitude answers a missing or wrong api_key with 400 and an error starting "Invalid
    // API key", which its SDKs take as final (no retries); a missing one also names the
    // field. The key is never echoed.
    switch (CheckKey(key ? std::optional<std::string_view>(*key) : std::nullopt, ctx_.options.keys.ingest)) {
      case AuthOutcome::kMissing:
        if (ep_.vendor == Vendor::kSegment)
          return Fail(res, 401, "missing write key (HTTP Basic user name, or \"writeKey\" in the body)");
        return Fail(res, 400, "Invalid API key: the request has no api_key", {{"missing_field", "api_key"}});
      case AuthOutcome::kWrong:
        if (ep_.vendor == Vendor::kSegment) return Fail(res, 403, "invalid write key");
        return Fail(res, 400, "Invalid API key: the api_key is not an ingest key of this server");
      case AuthOutcome::kOk: break;
    }
    if (!has_events)
      return Fail(res, 400, "Request missing required field", {{"missing_field", ep_.legacy_upload ? "e" : "events"}});

    // Parse and validate every event; any error rejects the whole request.
    EventBatch batch;
    std::vector<IngestError> errors;
    Status parsed;
    if (ep_.kind == BodyKind::kAmplitudeIdentify || ep_.legacy_upload) {  // forms: the events were a field
      if (events_text.empty())
        return Fail(res, 400, "Request missing required field", {{"missing_field", "identification"}});
      parsed = ParseRequestBody(std::move(events_text), ep_.kind, batch, errors, parse_options);
    } else if (ep_.segment_type != nullptr) {
      auto text = WithSegmentType(body);
      if (!text.ok()) return Fail(res, 400, text.status().message());
      parsed = ParseRequestBody(std::move(*text), ep_.kind, batch, errors, parse_options);
    } else {
      parsed = ParseRequestBody(body, ep_.kind, batch, errors, parse_options);
    }
    if (!parsed.ok()) return Fail(res, 400, "Invalid JSON request body: " + parsed.message());
    const size_t received = batch.events.size() + errors.size();
    if (received > ctx_.options.limits.max_events_per_request) {
      return Fail(res, 413, "Too many events in one request",
                  {{"events", received}, {"max_events_per_request", ctx_.options.limits.max_events_per_request}});
    }
    // A Segment message of a type sibyl does not use never fails its batch: it is skipped,
    // counted and reported in the answer.
    nlohmann::json skipped = nlohmann::json::array();
    if (ep_.vendor == Vendor::kSegment) {
      std::erase_if(errors, [&](const IngestError& e) {
        if (!e.unsupported_type) return false;
        skipped.push_back({{"index", e.position.index}, {"reason", e.reason}});
        return true;
      });
    }
    if (!errors.empty()) return InvalidEvents(res, errors);
    if (ep_.vendor == Vendor::kAmplitude && ep_.kind == BodyKind::kAmplitudeEvents && batch.events.empty())
      return Fail(res, 400, "Request missing required field", {{"missing_field", "events"}});
    if (!skipped.empty()) ctx_.metrics.Add("sibyl_ingest_skipped_messages_total", endpoint_label, static_cast<double>(skipped.size()));
    nlohmann::json segment_ok = {{"success", true}};
    if (!skipped.empty()) {
      segment_ok["skipped"] = skipped.size();
      segment_ok["skipped_messages"] = std::move(skipped);
    }
    if (ep_.vendor == Vendor::kSegment && batch.events.empty()) return SendJson(res, 200, segment_ok);  // all skipped

    // `serve --test-refuse-ingest N` (tests only, docs/SERVER.md): the first N requests of
    // each endpoint that would be stored get exactly a full commit queue's answer, so the
    // SDK tests can watch a client retry without filling the queue for real.
    if (refuse_left_ && refuse_left_->load() > 0 && refuse_left_->fetch_sub(1) > 0)
      return Throttled(res, fmt::format("ingest queue full ({} events waiting for commit, limit {})",
                                        ctx_.committer->pending_events(), ctx_.options.limits.max_pending_events));
    auto committed = ctx_.committer->Submit(batch);
    if (!committed.ok()) {
      const Status& st = committed.status();
      if (st.code() == StatusCode::kResourceExhausted) return Throttled(res, st.message());
      if (st.code() == StatusCode::kFailedPrecondition) return Fail(res, 503, st.message());
      return Fail(res, 500, "not stored: " + st.ToString());
    }
    const AppendResult& r = *committed;
    ctx_.events_since_checkpoint += r.events_written;
    ctx_.metrics.Add("sibyl_ingest_events_total", endpoint_label, static_cast<double>(batch.events.size()));
    ctx_.metrics.Add("sibyl_ingest_duplicates_total", endpoint_label, static_cast<double>(r.duplicates_dropped));
    ctx_.metrics.Add("sibyl_ingest_bytes_total", endpoint_label, static_cast<double>(body.size()));
    CurrentRequest().events = batch.events.size();
    if (ep_.vendor == Vendor::kSegment) return SendJson(res, 200, segment_ok);
    if (ep_.kind == BodyKind::kAmplitudeIdentify || ep_.legacy_upload) {  // what both SDKs compare the answer with
      res.set_content("success", "text/plain");
      res.status = 200;
      return;
    }
    SendJson(res, 200, {{"code", 200}, {"events_ingested", batch.events.size()},
                        {"payload_size_bytes", body.size()},
                        {"server_upload_time", ctx_.options.clock->NowMs()},
                        {"duplicates_dropped", r.duplicates_dropped}});
  }

 private:
  void TooLarge(httplib::Response& res, uint64_t body_bytes) {
    Fail(res, 413, "Payload too large",
         {{"payload_size_bytes", body_bytes}, {"max_payload_size_bytes", ep_.max_body_bytes},
          {"max_payload_size", LimitText(ep_.max_body_bytes)}});
  }

  // 429 with Retry-After, in the vendor's shape (the SDKs resend after their interval;
  // Segment's browser SDK reads X-RateLimit-Reset, in seconds, as its wait).
  void Throttled(httplib::Response& res, const std::string& reason) {
    res.set_header("Retry-After", "1");
    if (ep_.vendor == Vendor::kSegment) {
      res.set_header("X-RateLimit-Reset", "1");
      return Fail(res, 429, "Too many requests: " + reason, {{"retry_after_seconds", 1}});
    }
    nlohmann::json body = AmplitudeThrottledBody(reason);
    const std::string error = body["error"];
    body.erase("code");
    body.erase("error");
    Fail(res, 429, error, std::move(body));
  }

  // /v1/track and /v1/identify bodies are one message whose type the path gives; Segment's
  // HTTP API does not require "type" in them, our parser does.
  Result<std::string> WithSegmentType(const std::string& body) const {
    auto j = nlohmann::json::parse(body, nullptr, false);
    if (j.is_discarded() || !j.is_object()) return InvalidArgument("Invalid JSON request body: not a JSON object");
    if (j.contains("type")) {
      if (!j["type"].is_string() || j["type"].get<std::string>() != ep_.segment_type)
        return InvalidArgument("a {} message was sent to {}", j["type"].dump(), ep_.path);
      return body;
    }
    j["type"] = ep_.segment_type;
    return j.dump();
  }

  void InvalidEvents(httplib::Response& res, const std::vector<IngestError>& errors) {
    CurrentRequest().error = errors.front().ToString();
    ctx_.metrics.Add("sibyl_ingest_errors_total", fmt::format("endpoint=\"{}\",code=\"400\"", ep_.path));
    ctx_.metrics.Add("sibyl_ingest_invalid_events_total", fmt::format("endpoint=\"{}\"", ep_.path),
                     static_cast<double>(errors.size()));
    nlohmann::json list = ErrorList(errors);
    if (ep_.vendor == Vendor::kSegment) {
      return SendJson(res, 400, {{"success", false}, {"message", errors.front().ToString()}, {"errors", list}});
    }
    // Amplitude's shape: field -> indices of the events, split into missing and invalid.
    // The SDKs drop the events listed in these maps and resend the rest.
    nlohmann::json invalid = nlohmann::json::object(), missing = nlohmann::json::object(),
                   id_lengths = nlohmann::json::object();
    for (const IngestError& e : errors) {
      if (!e.in_array) continue;
      nlohmann::json& target = IsMissingReason(e) ? missing : IsIdLengthReason(e) ? id_lengths : invalid;
      target[e.field.empty() ? "event" : e.field].push_back(e.position.index);
    }
    SendJson(res, 400, {{"code", 400}, {"error", "Invalid field values on some events; nothing was stored"},
                        {"events_with_invalid_fields", invalid}, {"events_with_missing_fields", missing},
                        {"events_with_invalid_id_lengths", id_lengths},
                        {"errors", list}, {"invalid_events", errors.size()}});
  }

  void Fail(httplib::Response& res, int status, const std::string& message, nlohmann::json extra = nlohmann::json::object()) {
    CurrentRequest().error = message;
    ctx_.metrics.Add("sibyl_ingest_errors_total", fmt::format("endpoint=\"{}\",code=\"{}\"", ep_.path, status));
    if (ep_.vendor == Vendor::kSegment) {
      nlohmann::json body = {{"success", false}, {"message", message}};
      body.update(extra);
      return SendJson(res, status, body);
    }
    nlohmann::json body = {{"code", status}, {"error", message}};
    body.update(extra);
    SendJson(res, status, body);
  }

  ServerContext& ctx_;
  Endpoint ep_;
  // --test-refuse-ingest: refusals left at this endpoint (shared by the handler's copies).
  std::shared_ptr<std::atomic<int64_t>> refuse_left_;
};

}  // namespace

nlohmann::json AmplitudeThrottledBody(const std::string& reason) {
  return {{"code", 429},
          {"error", "Too many requests: " + reason},
          {"throttled_devices", nlohmann::json::object()},
          {"throttled_users", nlohmann::json::object()},
          {"throttled_events", nlohmann::json::array()},
          {"exceeded_daily_quota_devices", nlohmann::json::object()},
          {"exceeded_daily_quota_users", nlohmann::json::object()},
          {"retry_after_seconds", 1}};
}

std::string LimitText(size_t bytes) {
  if (bytes % 1'000'000 == 0) return fmt::format("{} MB ({} bytes)", bytes / 1'000'000, bytes);
  if (bytes % 1024 == 0) return fmt::format("{} KB ({} bytes)", bytes / 1024, bytes);
  return fmt::format("{} bytes", bytes);
}

// Browsers' SDKs call the ingest endpoints from the app's own origin: Amplitude's browser
// SDK posts application/json (a CORS preflight first), Segment's analytics.js posts
// text/plain (no preflight, but its answer is readable only with Access-Control-Allow-
// Origin, and unread answers count as failures that it resends). The vendors' own
// endpoints allow any origin; so do these, and only these: they are authenticated by a
// write key in the body or the Authorization header, never by a cookie, so no credentials
// are allowed and `*` suffices. The admin API and the web app stay same-origin.
void AllowAnyOrigin(httplib::Response& res) {
  res.set_header("Access-Control-Allow-Origin", "*");
  res.set_header("Access-Control-Expose-Headers", "Retry-After, X-RateLimit-Reset");
}

void AnswerPreflight(const httplib::Request& req, httplib::Response& res) {
  AllowAnyOrigin(res);
  res.set_header("Access-Control-Allow-Methods", "POST, OPTIONS");
  // The headers the browser asks for (Content-Type, Authorization, Content-Encoding, an
  // SDK's own), else the ones the vendors' SDKs send.
  const std::string asked = req.get_header_value("Access-Control-Request-Headers");
  res.set_header("Access-Control-Allow-Headers",
                 asked.empty() ? "Content-Type, Authorization, Content-Encoding, Accept" : asked);
  res.set_header("Access-Control-Max-Age", "86400");
  res.status = 204;
}

void RegisterIngestRoutes(Router& http, ServerContext& ctx) {
  const IngestLimits& l = ctx.options.limits;
  const Endpoint endpoints[] = {
      {"/2/httpapi", Vendor::kAmplitude, BodyKind::kAmplitudeEvents, l.httpapi_max_body_bytes},
      {"/batch", Vendor::kAmplitude, BodyKind::kAmplitudeEvents, l.batch_max_body_bytes},
      {"/identify", Vendor::kAmplitude, BodyKind::kAmplitudeIdentify, l.identify_max_body_bytes},
      {"/", Vendor::kAmplitude, BodyKind::kAmplitudeEvents, l.httpapi_max_body_bytes, nullptr, true},
      {"/v1/track", Vendor::kSegment, BodyKind::kSegment, l.segment_max_body_bytes, "track", false, "/v1/t"},
      {"/v1/identify", Vendor::kSegment, BodyKind::kSegment, l.segment_max_body_bytes, "identify", false, "/v1/i"},
      {"/v1/page", Vendor::kSegment, BodyKind::kSegment, l.segment_max_body_bytes, "page", false, "/v1/p"},
      {"/v1/screen", Vendor::kSegment, BodyKind::kSegment, l.segment_max_body_bytes, "screen", false, "/v1/s"},
      {"/v1/group", Vendor::kSegment, BodyKind::kSegment, l.segment_max_body_bytes, "group", false, "/v1/g"},
      {"/v1/alias", Vendor::kSegment, BodyKind::kSegment, l.segment_max_body_bytes, "alias", false, "/v1/a"},
      {"/v1/batch", Vendor::kSegment, BodyKind::kSegment, l.segment_batch_max_body_bytes, nullptr, false, "/v1/b"},
  };
  for (const Endpoint& ep : endpoints) {
    // The server reads the body whatever its content type (httplib's server parsed
    // application/x-www-form-urlencoded, what `curl -d` sends, as a form), inflates it,
    // and refuses it over the endpoint's limit before reading it when Content-Length
    // says so; the refusal carries the vendor's 413 (or 429 when the server is full).
    // A POST with neither Content-Length nor Transfer-Encoding has an empty body
    // (RFC 9112 6.3) and is answered at once.
    IngestHandler handler(ctx, ep);
    RouteOptions options;
    options.max_body_bytes = ep.max_body_bytes;
    options.refuse = [handler](const httplib::Request&, httplib::Response& res, const Refused& refused) mutable {
      handler.Refuse(res, refused);
      AllowAnyOrigin(res);
    };
    auto post = [handler](const httplib::Request& req, httplib::Response& res) mutable {
      handler(req, res, req.body, req.body.size());
      AllowAnyOrigin(res);
    };
    for (const char* path : {ep.path, ep.browser_path}) {
      if (path == nullptr) continue;
      http.Post(path, post, options);
      http.Options(path, AnswerPreflight, RouteOptions{.max_body_bytes = 0});
    }
  }
}

}  // namespace sibyl::server
