// `sibyl serve` API contract: status codes and bodies of every endpoint for good and bad
// requests, the auth matrix (no key 401, wrong key 403, right key 2xx; a rejected request
// leaves the store unchanged), ingest durability across a restart. In-process server on
// an ephemeral loopback port, httplib::Client as the client.
#include <gtest/gtest.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include <chrono>
#include <string>
#include <vector>

#include "serve_test_util.h"

namespace sibyl::server {
namespace {

using namespace testing_util;
using nlohmann::json;

json Json(const httplib::Result& r) {
  if (!r) return json();
  auto j = json::parse(r->body, nullptr, false);
  return j.is_discarded() ? json() : j;
}

std::string Basic(const std::string& user, const std::string& pass) {
  static const char* kAlphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  std::string in = user + ":" + pass, out;
  int val = 0, bits = -6;
  for (unsigned char c : in) {
    val = (val << 8) + c;
    bits += 8;
    while (bits >= 0) {
      out.push_back(kAlphabet[(val >> bits) & 0x3F]);
      bits -= 6;
    }
  }
  if (bits > -6) out.push_back(kAlphabet[((val << 8) >> (bits + 8)) & 0x3F]);
  while (out.size() % 4) out.push_back('=');
  return "Basic " + out;
}

class ServeApiTest : public ::testing::Test {
 protected:
  void SetUp() override {
    server_ = std::make_unique<TestServer>(TestOptions(dir_.Sub("data")));
    ASSERT_TRUE(server_->status().ok()) << server_->status().ToString();
  }
  uint64_t Events() {
    auto r = server_->Client()->Get("/healthz");
    return Json(r).value("events", uint64_t{0});
  }
  TempDir dir_;
  std::unique_ptr<TestServer> server_;
};

TEST_F(ServeApiTest, HealthzAnswersWithoutKey) {
  auto r = server_->Client()->Get("/healthz");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 200);
  EXPECT_EQ(Json(r)["status"], "ok");
}

TEST_F(ServeApiTest, HttpApiAcknowledgesWithAmplitudeShape) {
  auto r = server_->Client()->Post("/2/httpapi", AmplitudeBody(kIngestKey, 0, 10), "application/json");
  ASSERT_TRUE(r);
  ASSERT_EQ(r->status, 200) << r->body;
  json j = Json(r);
  EXPECT_EQ(j["code"], 200);
  EXPECT_EQ(j["events_ingested"], 10);
  EXPECT_GT(j["payload_size_bytes"].get<int64_t>(), 100);
  EXPECT_GT(j["server_upload_time"].get<int64_t>(), 0);
  EXPECT_EQ(Events(), 10u);
}

TEST_F(ServeApiTest, BatchEndpointAcceptsTheSameBody) {
  auto r = server_->Client()->Post("/batch", AmplitudeBody(kOtherIngestKey, 0, 1500), "application/json");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 200) << r->body;
  EXPECT_EQ(Json(r)["events_ingested"], 1500);
}

TEST_F(ServeApiTest, InvalidEventRejectsTheWholeRequestNamingIndexFieldReason) {
  json body = json::parse(AmplitudeBody(kIngestKey, 0, 4));
  body["events"][2]["user_id"] = "null";
  body["events"][3].erase("event_type");
  auto r = server_->Client()->Post("/2/httpapi", body.dump(), "application/json");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 400);
  json j = Json(r);
  EXPECT_EQ(j["code"], 400);
  EXPECT_EQ(j["events_with_invalid_fields"]["user_id"], json::array({2}));
  EXPECT_EQ(j["events_with_missing_fields"]["event_type"], json::array({3}));
  ASSERT_EQ(j["errors"].size(), 2u);
  EXPECT_EQ(j["errors"][0]["index"], 2);
  EXPECT_EQ(j["errors"][0]["field"], "user_id");
  EXPECT_NE(j["errors"][0]["reason"].get<std::string>().find("blocked"), std::string::npos);
  EXPECT_EQ(Events(), 0u) << "a rejected request must write nothing";
}

TEST_F(ServeApiTest, MalformedBodiesAre400) {
  auto c = server_->Client();
  for (const std::string& body : {std::string("{not json"), std::string("[1,2]"), std::string("\"x\"")}) {
    auto r = c->Post("/2/httpapi", body, "application/json");
    ASSERT_TRUE(r);
    EXPECT_EQ(r->status, 400) << body;
    EXPECT_EQ(Json(r)["code"], 400);
  }
  auto r = c->Post("/2/httpapi", json{{"api_key", kIngestKey}, {"events", json::array()}}.dump(), "application/json");
  EXPECT_EQ(r->status, 400);
  EXPECT_EQ(Json(r)["missing_field"], "events");
  EXPECT_EQ(Events(), 0u);
}

TEST_F(ServeApiTest, MinIdLengthOptionIsHonoured) {
  json body = {{"api_key", kIngestKey}, {"options", {{"min_id_length", 2}}},
               {"events", {{{"user_id", "ab"}, {"event_type", "X"}, {"time", 1'700'000'000'000LL}}}}};
  auto r = server_->Client()->Post("/2/httpapi", body.dump(), "application/json");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 200) << r->body;
  body.erase("options");
  r = server_->Client()->Post("/2/httpapi", body.dump(), "application/json");
  EXPECT_EQ(r->status, 400);
}

// An Amplitude body of one event padded with properties to exactly `bytes` bytes.
std::string PaddedBody(size_t bytes) {
  json body = json::parse(AmplitudeBody(kIngestKey, 0, 1));
  json& props = body["events"][0]["event_properties"];
  props["last"] = "";
  size_t size = body.dump().size();
  for (int k = 0; size + 600 < bytes; ++k) {  // ,"pK":"<500 x>" adds 6 + key + 500 bytes
    const std::string key = "p" + std::to_string(k);
    props[key] = std::string(500, 'x');
    size += 6 + key.size() + 500;
  }
  const size_t missing = bytes - body.dump().size();
  props["last"] = std::string(missing, 'y');
  return body.dump();
}

TEST_F(ServeApiTest, LimitsAre413WithTheLimitInTheBody) {
  auto c = server_->Client();
  // 2,001 events: over Amplitude's 2,000 a request.
  auto r = c->Post("/batch", AmplitudeBody(kIngestKey, 0, 2001), "application/json");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 413);
  EXPECT_EQ(Json(r)["max_events_per_request"], 2000);
  // Over 1 MB on /2/httpapi: Amplitude's MB is 1,000,000 bytes, so a body between 10^6
  // and 2^20 bytes is too large.
  std::string body = PaddedBody(1'000'001);
  ASSERT_EQ(body.size(), 1'000'001u);
  r = c->Post("/2/httpapi", body, "application/json");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 413);
  EXPECT_EQ(Json(r)["code"], 413);
  EXPECT_EQ(Json(r)["error"], "Payload too large");
  EXPECT_EQ(Json(r)["max_payload_size_bytes"], 1'000'000);
  EXPECT_EQ(Json(r)["payload_size_bytes"], 1'000'001);
  // Exactly 1,000,000 bytes is accepted.
  body = PaddedBody(1'000'000);
  ASSERT_EQ(body.size(), 1'000'000u);
  r = c->Post("/2/httpapi", body, "application/json");
  EXPECT_EQ(r->status, 200) << r->body.substr(0, 200);
  EXPECT_EQ(Events(), 1u);
}

TEST_F(ServeApiTest, IdentifyIsFormEncodedAndSetsUserProperties) {
  auto c = server_->Client();
  ASSERT_EQ(c->Post("/2/httpapi", AmplitudeBody(kIngestKey, 0, 3), "application/json")->status, 200);
  json identification = {{"user_id", "user-1"}, {"user_properties", {{"$set", {{"plan", "pro"}}}}}};
  httplib::Params form = {{"api_key", kIngestKey}, {"identification", identification.dump()}};
  auto r = c->Post("/identify", form);
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 200) << r->body;
  EXPECT_EQ(r->body, "success");
  auto user = server_->Admin()->Get("/api/v1/users/user-1");
  ASSERT_TRUE(user);
  ASSERT_EQ(user->status, 200) << user->body;
  EXPECT_EQ(Json(user)["properties"]["plan"], "pro");
  // A large identify body (over httplib's own 8 KB form limit) still works.
  json many = json::array();
  for (int i = 0; i < 200; ++i)
    many.push_back({{"user_id", "user-" + std::to_string(i)}, {"user_properties", {{"$set", {{"tier", i}}}}}});
  r = c->Post("/identify", httplib::Params{{"api_key", kIngestKey}, {"identification", many.dump()}});
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 200) << r->body;
  // Missing identification; missing and wrong keys.
  EXPECT_EQ(c->Post("/identify", httplib::Params{{"api_key", kIngestKey}})->status, 400);
  EXPECT_EQ(c->Post("/identify", httplib::Params{{"identification", identification.dump()}})->status, 400);
  EXPECT_EQ(c->Post("/identify", httplib::Params{{"api_key", "wrong-key-123456"}, {"identification", identification.dump()}})->status, 400);
}

TEST_F(ServeApiTest, SegmentEndpointsTakeTheWriteKeyAsBasicUser) {
  auto c = server_->Client();
  httplib::Headers auth = {{"Authorization", Basic(kIngestKey, "")}};
  json track = {{"userId", "seg-user-1"}, {"event", "Signed Up"}, {"properties", {{"plan", "pro"}}},
                {"timestamp", "2024-03-01T12:00:00Z"}, {"messageId", "m-1"}};
  auto r = c->Post("/v1/track", auth, track.dump(), "application/json");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 200) << r->body;
  EXPECT_EQ(Json(r)["success"], true);
  json identify = {{"userId", "seg-user-1"}, {"traits", {{"email", "a@b.c"}}}};
  r = c->Post("/v1/identify", auth, identify.dump(), "application/json");
  EXPECT_EQ(r->status, 200) << r->body;
  json batch = {{"batch", {{{"type", "track"}, {"userId", "seg-user-2"}, {"event", "Opened"},
                            {"timestamp", "2024-03-01T12:00:00Z"}},
                           {{"type", "identify"}, {"userId", "seg-user-2"}, {"traits", {{"x", 1}}}}}}};
  r = c->Post("/v1/batch", auth, batch.dump(), "application/json");
  EXPECT_EQ(r->status, 200) << r->body;
  EXPECT_EQ(Events(), 2u);
  // A message of another type sent to /v1/track; an invalid message in a batch.
  r = c->Post("/v1/track", auth, identify.dump().replace(1, 0, "\"type\":\"identify\","), "application/json");
  EXPECT_EQ(r->status, 400);
  EXPECT_EQ(Json(r)["success"], false);
  json bad = {{"batch", {{{"type", "track"}, {"userId", "null"}, {"event", "Opened"}}}}};
  r = c->Post("/v1/batch", auth, bad.dump(), "application/json");
  EXPECT_EQ(r->status, 400);
  EXPECT_EQ(Json(r)["errors"][0]["field"], "user_id");
  // Over Segment's 32 KB for one message.
  track["properties"]["pad"] = std::string(40 << 10, 'x');
  EXPECT_EQ(c->Post("/v1/track", auth, track.dump(), "application/json")->status, 413);
  EXPECT_EQ(Events(), 2u);
}

// amplitude-js 8, Amplitude's browser SDK before analytics-browser, uploads a form to the
// endpoint's root: the key as `client`, the events as a JSON array in `e` (`timestamp` for
// `time`, `uuid` for `insert_id`: a resend after a lost answer is dropped as a duplicate),
// and takes only 200 "success" as stored. GET / stays the web app.
TEST_F(ServeApiTest, AmplitudeJsUploadsAFormToTheRoot) {
  auto c = server_->Client();
  json events = json::array({
      {{"device_id", "legacy-device-0001"}, {"user_id", "legacy-user-0001"}, {"timestamp", 1709294400000},
       {"event_id", 1}, {"session_id", 1709294400000}, {"event_type", "Clicked"}, {"uuid", "6f1c-0001"},
       {"event_properties", {{"button", "buy"}}}, {"user_properties", json::object()}, {"sequence_number", 1},
       {"library", {{"name", "amplitude-js"}, {"version", "8.21.10"}}}, {"groups", json::object()}},
      {{"device_id", "legacy-device-0001"}, {"user_id", "legacy-user-0001"}, {"timestamp", 1709294401000},
       {"event_id", 2}, {"event_type", "$identify"}, {"uuid", "6f1c-0002"}, {"event_properties", json::object()},
       {"user_properties", {{"$set", {{"era", "legacy"}}}, {"$add", {{"visits", 3}}}}}}});
  httplib::Params form = {{"client", kIngestKey}, {"e", events.dump()}, {"v", "2"},
                          {"upload_time", "1709294402000"}, {"checksum", "not-checked"}};
  auto r = c->Post("/", form);
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 200) << r->body;
  EXPECT_EQ(r->body, "success");
  EXPECT_EQ(Events(), 1u);  // the identify sets properties only
  auto user = server_->Admin()->Get("/api/v1/users/legacy-user-0001");
  ASSERT_EQ(user->status, 200) << user->body;
  EXPECT_EQ(Json(user)["properties"]["era"], "legacy");
  EXPECT_EQ(Json(user)["properties"]["visits"], 3);
  // The same upload again (its answer was lost): the event is not stored twice.
  EXPECT_EQ(c->Post("/", form)->status, 200);
  EXPECT_EQ(Events(), 1u);
  // No events, no key, a wrong key: refused, nothing stored.
  r = c->Post("/", httplib::Params{{"client", kIngestKey}});
  EXPECT_EQ(r->status, 400);
  EXPECT_EQ(Json(r)["missing_field"], "e");
  EXPECT_EQ(c->Post("/", httplib::Params{{"e", events.dump()}})->status, 400);
  EXPECT_EQ(c->Post("/", httplib::Params{{"client", "wrong-key-123456"}, {"e", events.dump()}})->status, 400);
  EXPECT_EQ(Events(), 1u);
  auto page = c->Get("/");
  ASSERT_TRUE(page);
  EXPECT_NE(page->status, 404);
}

// Browsers' SDKs post from the app's own origin (docs/SERVER.md, "Browsers"): the ingest
// endpoints answer CORS preflights and allow any origin on every answer, refusals included;
// analytics.js's short paths take text/plain with the write key in the body. The admin API
// stays same-origin. tests/web/browser_sdk_test.mjs runs the vendors' SDKs in Chromium.
TEST_F(ServeApiTest, BrowsersMayCallTheIngestEndpointsButNotTheApi) {
  auto c = server_->Client();
  for (const char* path : {"/2/httpapi", "/batch", "/v1/track", "/v1/t", "/v1/b"}) {
    auto pre = c->Options(path, {{"Origin", "https://app.example"}, {"Access-Control-Request-Method", "POST"},
                                 {"Access-Control-Request-Headers", "content-type,x-sdk"}});
    ASSERT_TRUE(pre) << path;
    EXPECT_EQ(pre->status, 204) << path;
    EXPECT_EQ(pre->get_header_value("Access-Control-Allow-Origin"), "*") << path;
    EXPECT_EQ(pre->get_header_value("Access-Control-Allow-Headers"), "content-type,x-sdk") << path;
    EXPECT_NE(pre->get_header_value("Access-Control-Allow-Methods").find("POST"), std::string::npos) << path;
  }
  json track = {{"type", "track"},         {"anonymousId", "browser-device-1"}, {"event", "Clicked"},
                {"writeKey", kIngestKey},  {"messageId", "browser-m-1"},        {"timestamp", "2024-03-01T12:00:00Z"},
                {"sentAt", "2024-03-01T12:00:01Z"}, {"_metadata", {{"bundled", {"Segment.io"}}}}};
  auto r = c->Post("/v1/t", {{"Origin", "https://app.example"}}, track.dump(), "text/plain");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 200) << r->body;
  EXPECT_EQ(r->get_header_value("Access-Control-Allow-Origin"), "*");
  json batch = {{"writeKey", kIngestKey},
                {"batch", {{{"type", "page"}, {"anonymousId", "browser-device-1"}, {"name", "Home"},
                            {"messageId", "browser-m-2"}, {"timestamp", "2024-03-01T12:00:02Z"}}}}};
  r = c->Post("/v1/b", batch.dump(), "text/plain");
  EXPECT_EQ(r->status, 200) << r->body;
  EXPECT_EQ(Events(), 2u);
  // Refusals are readable too: a wrong key, and one over the size limit (refused before
  // the handler runs).
  track["writeKey"] = "not-a-valid-key";
  r = c->Post("/v1/t", track.dump(), "text/plain");
  EXPECT_EQ(r->status, 403);
  EXPECT_EQ(r->get_header_value("Access-Control-Allow-Origin"), "*");
  r = c->Post("/v1/t", std::string(40 << 10, ' '), "text/plain");
  EXPECT_EQ(r->status, 413);
  EXPECT_EQ(r->get_header_value("Access-Control-Allow-Origin"), "*");
  // The API: no preflight, no cross-origin reads.
  EXPECT_EQ(c->Options("/api/v1/predictions", {{"Origin", "https://evil.example"}})->status, 404);
  auto api = c->Get("/api/v1/predictions", {{"Authorization", "Bearer " + std::string(kAdminKey)}});
  EXPECT_EQ(api->status, 200);
  EXPECT_FALSE(api->has_header("Access-Control-Allow-Origin"));
  EXPECT_EQ(Events(), 2u);
}

TEST_F(ServeApiTest, IngestAuthMatrixAndNothingChangesWithoutAValidKey) {
  auto c = server_->Client();
  // Amplitude: the key is in the body; a missing or wrong one is Amplitude's 400.
  for (const char* path : {"/2/httpapi", "/batch"}) {
    EXPECT_EQ(c->Post(path, AmplitudeBody("", 0, 5), "application/json")->status, 400) << path;
    EXPECT_EQ(c->Post(path, AmplitudeBody("not-a-valid-key", 0, 5), "application/json")->status, 400) << path;
    EXPECT_EQ(c->Post(path, AmplitudeBody(kAdminKey, 0, 5), "application/json")->status, 400)
        << path << ": the admin key is not an ingest key";
  }
  // Segment: HTTP Basic.
  json track = {{"userId", "seg-user-1"}, {"event", "Signed Up"}};
  for (const char* path : {"/v1/track", "/v1/batch"}) {
    std::string body = std::string(path) == "/v1/batch" ? json{{"batch", {track}}}.dump() : track.dump();
    if (std::string(path) == "/v1/batch") body = json{{"batch", {{{"type", "track"}, {"userId", "seg-user-1"}, {"event", "A"}}}}}.dump();
    EXPECT_EQ(c->Post(path, body, "application/json")->status, 401) << path;
    EXPECT_EQ(c->Post(path, {{"Authorization", Basic("wrong-write-key", "")}}, body, "application/json")->status, 403) << path;
  }
  // Segment's SDKs before analytics-node 3 send the write key in the body only.
  json keyed = {{"batch", {{{"type", "track"}, {"userId", "seg-user-1"}, {"event", "A"}}}}, {"writeKey", "wrong-write-key"}};
  EXPECT_EQ(c->Post("/v1/batch", keyed.dump(), "application/json")->status, 403);
  EXPECT_EQ(Events(), 0u);
  EXPECT_EQ(c->Post("/2/httpapi", AmplitudeBody(kIngestKey, 0, 5), "application/json")->status, 200);
  EXPECT_EQ(c->Post("/v1/track", {{"Authorization", Basic(kOtherIngestKey, "")}}, track.dump(), "application/json")->status, 200);
  keyed["writeKey"] = kIngestKey;
  EXPECT_EQ(c->Post("/v1/batch", keyed.dump(), "application/json")->status, 200);
  // With both, the header decides.
  EXPECT_EQ(c->Post("/v1/batch", {{"Authorization", Basic("wrong-write-key", "")}}, keyed.dump(), "application/json")->status, 403);
  EXPECT_EQ(Events(), 7u);
}

// @amplitude/analytics-node (analytics-core's Destination.handleInvalidResponse) reads
// the body's "code" and treats a 400 as final, without retrying, when "missing_field" is
// set or "error" starts with "Invalid API key"; @amplitude/node drops a payload whose
// "missing_field" is a string. Anything else makes them retry (12 times) and report a
// generic "exceeded retry count".
TEST_F(ServeApiTest, AmplitudeKeyErrorsAreTheVendorsFinal400) {
  auto c = server_->Client();
  for (const char* path : {"/2/httpapi", "/batch"}) {
    auto r = c->Post(path, AmplitudeBody("", 0, 3), "application/json");
    ASSERT_TRUE(r);
    EXPECT_EQ(r->status, 400) << path;
    json j = Json(r);
    EXPECT_EQ(j["code"], 400) << r->body;
    EXPECT_EQ(j["missing_field"], "api_key") << r->body;
    EXPECT_EQ(j["error"].get<std::string>().rfind("Invalid API key", 0), 0u) << r->body;
    r = c->Post(path, AmplitudeBody("not-a-valid-key-123", 0, 3), "application/json");
    EXPECT_EQ(r->status, 400) << path;
    j = Json(r);
    EXPECT_EQ(j["code"], 400);
    EXPECT_EQ(j["error"].get<std::string>().rfind("Invalid API key", 0), 0u) << r->body;
    EXPECT_EQ(r->body.find("not-a-valid-key-123"), std::string::npos) << "the key is not echoed";
  }
  json identification = {{"user_id", "user-1"}, {"user_properties", {{"$set", {{"plan", "pro"}}}}}};
  auto r = c->Post("/identify", httplib::Params{{"api_key", "wrong-key-123456"}, {"identification", identification.dump()}});
  EXPECT_EQ(r->status, 400);
  EXPECT_EQ(Json(r)["error"].get<std::string>().rfind("Invalid API key", 0), 0u) << r->body;
  // A body without "events": Amplitude's missing_field.
  r = c->Post("/2/httpapi", json{{"api_key", kIngestKey}}.dump(), "application/json");
  EXPECT_EQ(r->status, 400);
  EXPECT_EQ(Json(r)["missing_field"], "events") << r->body;
  EXPECT_EQ(Events(), 0u);
}

TEST_F(ServeApiTest, InvalidIdLengthsAreListedAsAmplitudeDoes) {
  json body = json::parse(AmplitudeBody(kIngestKey, 0, 3));
  body["events"][1]["user_id"] = "abc";
  auto r = server_->Client()->Post("/2/httpapi", body.dump(), "application/json");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 400);
  json j = Json(r);
  EXPECT_EQ(j["events_with_invalid_id_lengths"]["user_id"], json::array({1})) << r->body;
  EXPECT_TRUE(j["missing_field"].is_null()) << "per-event problems are not final for the whole payload";
}

TEST_F(ServeApiTest, SegmentSingleCallPathsForPageScreenGroupAlias) {
  auto c = server_->Client();
  httplib::Headers auth = {{"Authorization", Basic(kIngestKey, "")}};
  auto post = [&](const char* path, const json& body) {
    auto r = c->Post(path, auth, body.dump(), "application/json");
    EXPECT_TRUE(r) << path;
    return r;
  };
  auto r = post("/v1/page", {{"userId", "seg-user-1"}, {"name", "Pricing"}, {"properties", {{"path", "/pricing"}}},
                             {"timestamp", "2024-03-01T12:00:00Z"}});
  EXPECT_EQ(r->status, 200) << r->body;
  r = post("/v1/screen", {{"anonymousId", "anon-device-1"}, {"name", "Home"}, {"timestamp", "2024-03-01T12:00:01Z"}});
  EXPECT_EQ(r->status, 200) << r->body;
  EXPECT_EQ(Events(), 2u);
  r = post("/v1/group", {{"userId", "seg-user-1"}, {"groupId", "acme-inc"}, {"traits", {{"name", "Acme"}, {"plan", "enterprise"}}}});
  EXPECT_EQ(r->status, 200) << r->body;
  r = post("/v1/alias", {{"userId", "seg-user-1"}, {"previousId", "anon-device-1"}});
  EXPECT_EQ(r->status, 200) << r->body;
  EXPECT_EQ(Events(), 2u) << "group and alias are no events";
  auto user = server_->Admin()->Get("/api/v1/users/seg-user-1");
  ASSERT_EQ(user->status, 200) << user->body;
  json props = Json(user)["properties"];
  EXPECT_EQ(props["group.id"], "acme-inc") << user->body;
  EXPECT_EQ(props["group.name"], "Acme") << user->body;
  EXPECT_EQ(props["group.plan"], "enterprise") << user->body;
  EXPECT_TRUE(props["name"].is_null()) << "group traits do not overwrite the user's own";
  // A message of another type at a single-call path is refused.
  r = post("/v1/group", {{"type", "track"}, {"userId", "seg-user-1"}, {"event", "X"}});
  EXPECT_EQ(r->status, 400);
}

TEST_F(ServeApiTest, SegmentBatchStoresWhatItCanAndReportsSkippedMessages) {
  auto c = server_->Client();
  httplib::Headers auth = {{"Authorization", Basic(kIngestKey, "")}};
  json batch = {{"batch", {{{"type", "track"}, {"userId", "seg-user-2"}, {"event", "Opened"}, {"timestamp", "2024-03-01T12:00:00Z"}},
                           {{"type", "group"}, {"userId", "seg-user-2"}, {"groupId", "g-12345"}, {"traits", {{"seats", 10}}}},
                           {{"type", "futuretype"}, {"userId", "seg-user-2"}},
                           {{"type", "page"}, {"userId", "seg-user-2"}, {"name", "Docs"}, {"timestamp", "2024-03-01T12:00:02Z"}},
                           {{"type", "identify"}, {"userId", "seg-user-2"}, {"traits", {{"email", "x@y.z"}}}}}}};
  auto r = c->Post("/v1/batch", auth, batch.dump(), "application/json");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 200) << r->body;
  json j = Json(r);
  EXPECT_EQ(j["success"], true);
  EXPECT_EQ(j["skipped"], 1) << r->body;
  EXPECT_EQ(j["skipped_messages"][0]["index"], 2) << r->body;
  EXPECT_EQ(Events(), 2u);
  auto user = server_->Admin()->Get("/api/v1/users/seg-user-2");
  ASSERT_EQ(user->status, 200) << user->body;
  EXPECT_EQ(Json(user)["properties"]["group.seats"], 10);
  EXPECT_EQ(Json(user)["properties"]["email"], "x@y.z");
}

// `curl -d` sends application/x-www-form-urlencoded; Amplitude reads the JSON anyway.
TEST_F(ServeApiTest, JsonIsReadWhateverTheContentType) {
  auto c = server_->Client();
  json body = json::parse(AmplitudeBody(kIngestKey, 0, 100));  // ~13 KB: over httplib's 8 KB form limit
  ASSERT_GT(body.dump().size(), 8192u);
  for (const char* type : {"application/x-www-form-urlencoded", "text/plain", ""}) {
    auto r = c->Post("/2/httpapi", body.dump(), type);
    ASSERT_TRUE(r);
    EXPECT_EQ(r->status, 200) << type << ": " << r->body;
  }
  httplib::Headers auth = {{"Authorization", Basic(kIngestKey, "")}};
  json track = {{"userId", "seg-user-1"}, {"event", "Signed Up"}};
  for (int i = 0; i < 9; ++i) track["properties"]["p" + std::to_string(i)] = std::string(1000, 'x');
  auto r = c->Post("/v1/track", auth, track.dump(), "application/x-www-form-urlencoded");
  EXPECT_EQ(r->status, 200) << r->body;
  // Gzip bodies (Content-Encoding: gzip) are still decompressed.
  c->set_compress(true);
  r = c->Post("/2/httpapi", AmplitudeBody(kIngestKey, 1000, 50), "application/json");
  EXPECT_EQ(r->status, 200) << r->body;
  EXPECT_EQ(Json(r)["events_ingested"], 50);
}

// Sends raw bytes and returns the response's status line, or "" after `timeout_s`.
std::string RawRequest(int port, const std::string& request, int timeout_s) {
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<uint16_t>(port));
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0) {
    ::close(fd);
    return "";
  }
  timeval tv{timeout_s, 0};
  ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
  (void)!::write(fd, request.data(), request.size());
  std::string got;
  char buf[4096];
  while (got.find("\r\n") == std::string::npos) {
    ssize_t n = ::read(fd, buf, sizeof(buf));
    if (n <= 0) break;
    got.append(buf, static_cast<size_t>(n));
  }
  ::close(fd);
  return got.substr(0, got.find("\r\n"));
}

TEST_F(ServeApiTest, EmptyBodiesAreAnsweredAtOnce) {
  auto c = server_->Client();
  auto r = c->Post("/2/httpapi", "", "application/json");  // Content-Length: 0
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 400);
  EXPECT_EQ(Json(r)["code"], 400);
  httplib::Headers auth = {{"Authorization", Basic(kIngestKey, "")}};
  EXPECT_EQ(c->Post("/v1/track", auth, "", "application/json")->status, 400);
  // No Content-Length and no Transfer-Encoding: HTTP/1.1 says the body is empty.
  for (const char* path : {"/2/httpapi", "/batch", "/identify", "/v1/track", "/v1/batch"}) {
    auto started = std::chrono::steady_clock::now();
    std::string status = RawRequest(server_->port(),
                                    std::string("POST ") + path + " HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n", 10);
    const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
    EXPECT_NE(status.find(" 400"), std::string::npos) << path << ": " << status;
    EXPECT_LT(seconds, 3.0) << path;
  }
  EXPECT_EQ(Events(), 0u);
}

// One far-future event (a 2031 date, microseconds for milliseconds) would move the
// store's last event, which training defaults to, past all data.
TEST(ServeTimeBoundsTest, FarFutureAndAncientTimesAreInvalidFields) {
  TempDir dir;
  ManualClock clock(1'717'243'200'000);  // 2024-06-01T12:00:00Z
  ServerOptions options = TestOptions(dir.Sub("data"));
  options.clock = &clock;
  TestServer server(options);
  ASSERT_TRUE(server.status().ok()) << server.status().ToString();
  auto c = server.Client();
  auto body_with_times = [](const std::vector<int64_t>& times) {
    json events = json::array();
    for (size_t i = 0; i < times.size(); ++i)
      events.push_back({{"user_id", "user-" + std::to_string(100 + i)}, {"event_type", "E"}, {"time", times[i]}});
    return json{{"api_key", kIngestKey}, {"events", events}}.dump();
  };
  const int64_t now = clock.NowMs();
  // Within the day ahead, and an old time after 2000-01-01: accepted.
  auto r = c->Post("/2/httpapi", body_with_times({now, now + 23 * 3'600'000LL, 1'262'304'000'000}), "application/json");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 200) << r->body;
  // 2031, microseconds, 1999: each named by index as an invalid "time".
  r = c->Post("/2/httpapi", body_with_times({now, 1'924'992'000'000, now * 1000, 915'148'800'000, now + 25 * 3'600'000LL}),
              "application/json");
  EXPECT_EQ(r->status, 400);
  json j = Json(r);
  EXPECT_EQ(j["events_with_invalid_fields"]["time"], json::array({1, 2, 3, 4})) << r->body;
  const std::string reasons = j["errors"].dump();
  EXPECT_NE(reasons.find("microseconds"), std::string::npos) << reasons;
  EXPECT_NE(reasons.find("2000-01-01"), std::string::npos) << reasons;
  EXPECT_NE(reasons.find("future"), std::string::npos) << reasons;
  // Segment: a clear 400.
  httplib::Headers auth = {{"Authorization", Basic(kIngestKey, "")}};
  json track = {{"userId", "seg-user-1"}, {"event", "Signed Up"}, {"timestamp", "2031-01-01T00:00:00Z"}};
  r = c->Post("/v1/track", auth, track.dump(), "application/json");
  EXPECT_EQ(r->status, 400);
  EXPECT_NE(Json(r)["message"].get<std::string>().find("future"), std::string::npos) << r->body;
  EXPECT_EQ(Json(server.Client()->Get("/healthz"))["events"], 3);
}

TEST_F(ServeApiTest, AdminAuthMatrix) {
  struct Call {
    std::string method, path, body;
  };
  const std::vector<Call> calls = {
      {"GET", "/api/v1/predictions", ""},
      {"POST", "/api/v1/predictions", R"({"name":"p1","kind":"churn","horizon_days":7})"},
      {"GET", "/api/v1/predictions/p1", ""},
      {"GET", "/api/v1/runs", ""},
      {"GET", "/api/v1/users/user-1", ""},
      {"GET", "/api/v1/predictions/p1/cohort", ""},
      {"GET", "/api/v1/predictions/p1/forecast", ""},
      {"GET", "/api/v1/predictions/p1/users/user-1/score", ""},
      {"GET", "/api/v1/predictions/p1/users/user-1/explanation", ""},
      {"POST", "/api/v1/predictions/p1/train", ""},
      {"DELETE", "/api/v1/predictions/p1", ""},
      {"GET", "/metrics", ""},
      {"GET", "/", ""},
  };
  // Pages answer a request without a key by sending the browser to the login page.
  auto is_page = [](const Call& call) { return call.path == "/"; };
  ASSERT_EQ(server_->Client()->Post("/2/httpapi", AmplitudeBody(kIngestKey, 0, 5), "application/json")->status, 200);
  auto send = [&](httplib::Client& c, const Call& call) {
    if (call.method == "GET") return c.Get(call.path);
    if (call.method == "DELETE") return c.Delete(call.path);
    return c.Post(call.path, call.body, "application/json");
  };
  for (const Call& call : calls) {
    auto none = server_->Client();
    auto r = send(*none, call);
    ASSERT_TRUE(r);
    EXPECT_EQ(r->status, is_page(call) ? 303 : 401) << call.method << " " << call.path;
    auto wrong = server_->Client();
    wrong->set_bearer_token_auth(kIngestKey.c_str());  // an ingest key is not the admin key
    r = send(*wrong, call);
    EXPECT_EQ(r->status, 403) << call.method << " " << call.path;
  }
  EXPECT_EQ(Json(server_->Admin()->Get("/api/v1/predictions"))["predictions"].size(), 0u)
      << "a rejected create must not create";
  // With the key (bearer, or Basic with the key as password): not an auth failure.
  auto basic = server_->Client();
  basic->set_basic_auth("admin", kAdminKey.c_str());
  for (const Call& call : calls) {
    auto r = send(call.method == "GET" ? *basic : *server_->Admin(), call);
    ASSERT_TRUE(r);
    EXPECT_NE(r->status, 401) << call.method << " " << call.path;
    EXPECT_NE(r->status, 403) << call.method << " " << call.path;
  }
}

TEST_F(ServeApiTest, PredictionsCrudWithCliValidation) {
  auto c = server_->Admin();
  ASSERT_EQ(server_->Client()->Post("/2/httpapi", AmplitudeBody(kIngestKey, 0, 20), "application/json")->status, 200);
  auto r = c->Post("/api/v1/predictions", "{not json", "application/json");
  EXPECT_EQ(r->status, 400);
  EXPECT_EQ(Json(r)["error"]["code"], "invalid_argument");
  r = c->Post("/api/v1/predictions", R"({"name":"p1","kind":"psychic","horizon_days":7})", "application/json");
  EXPECT_EQ(r->status, 400);
  r = c->Post("/api/v1/predictions", R"({"name":"p1","kind":"propensity","horizon_days":7,"outcome":{"event":"Evnt 1"}})",
              "application/json");
  EXPECT_EQ(r->status, 400) << "unknown event type: checked against the store, an invalid definition";
  EXPECT_NE(Json(r)["error"]["message"].get<std::string>().find("Event 1"), std::string::npos) << r->body;
  const std::string good = R"({"name":"p1","kind":"propensity","horizon_days":7,"outcome":{"event":"Event 1"}})";
  r = c->Post("/api/v1/predictions", good, "application/json");
  ASSERT_EQ(r->status, 201) << r->body;
  EXPECT_EQ(Json(r)["name"], "p1");
  EXPECT_EQ(c->Post("/api/v1/predictions", good, "application/json")->status, 409);
  EXPECT_EQ(c->Post("/api/v1/predictions?replace=true", good, "application/json")->status, 201);
  r = c->Get("/api/v1/predictions");
  ASSERT_EQ(Json(r)["predictions"].size(), 1u);
  EXPECT_EQ(Json(r)["predictions"][0]["latest_version"], 0);
  r = c->Get("/api/v1/predictions/p1");
  EXPECT_EQ(r->status, 200);
  EXPECT_EQ(Json(r)["definition"]["outcome"]["event"], "Event 1");
  EXPECT_EQ(c->Get("/api/v1/predictions/nope")->status, 404);
  // Nothing trained or scored yet.
  EXPECT_EQ(c->Get("/api/v1/predictions/p1/users/user-1/score")->status, 409);
  EXPECT_EQ(c->Get("/api/v1/predictions/p1/users/user-1/explanation")->status, 409);
  EXPECT_EQ(c->Get("/api/v1/predictions/p1/cohort")->status, 409);
  EXPECT_EQ(c->Get("/api/v1/predictions/p1/forecast")->status, 409);
  EXPECT_EQ(c->Get("/api/v1/predictions/nope/forecast")->status, 404);
  // The scheduler is off in this fixture.
  EXPECT_EQ(c->Post("/api/v1/predictions/p1/train", "", "text/plain")->status, 503);
  EXPECT_EQ(c->Delete("/api/v1/predictions/p1")->status, 200);
  EXPECT_EQ(c->Delete("/api/v1/predictions/p1")->status, 404);
  EXPECT_EQ(c->Get("/api/v1/nothing-here")->status, 404);
}

TEST_F(ServeApiTest, UsersAndPageParameters) {
  auto c = server_->Admin();
  ASSERT_EQ(server_->Client()->Post("/2/httpapi", AmplitudeBody(kIngestKey, 0, 5), "application/json")->status, 200);
  EXPECT_EQ(c->Get("/api/v1/users/nobody-at-all")->status, 404);
  auto r = c->Get("/api/v1/users/user-1");
  ASSERT_EQ(r->status, 200);
  EXPECT_EQ(Json(r)["user_id"], "user-1");
  EXPECT_TRUE(Json(r)["scores"].is_object());
  EXPECT_EQ(c->Get("/api/v1/runs?limit=0")->status, 200) << "no scheduler: an empty list";
  r = c->Get("/");
  EXPECT_EQ(r->status, 200);
  EXPECT_NE(r->body.find("<form id=\"create\""), std::string::npos);
  EXPECT_EQ(r->body.find("http://"), std::string::npos) << "the page loads nothing from the network";
  EXPECT_EQ(c->Get("/predictions/nope")->status, 404);
}

TEST_F(ServeApiTest, MetricsArePrometheusText) {
  ASSERT_EQ(server_->Client()->Post("/2/httpapi", AmplitudeBody(kIngestKey, 0, 7), "application/json")->status, 200);
  ASSERT_EQ(server_->Client()->Post("/2/httpapi", AmplitudeBody("", 0, 7), "application/json")->status, 400);
  auto r = server_->Admin()->Get("/metrics");
  ASSERT_EQ(r->status, 200);
  EXPECT_NE(r->body.find("# TYPE sibyl_ingest_events_total counter"), std::string::npos);
  EXPECT_NE(r->body.find("sibyl_ingest_events_total{endpoint=\"/2/httpapi\"} 7"), std::string::npos) << r->body;
  EXPECT_NE(r->body.find("sibyl_ingest_errors_total{endpoint=\"/2/httpapi\",code=\"400\"} 1"), std::string::npos);
  EXPECT_NE(r->body.find("sibyl_ingest_queue_events 0"), std::string::npos);
  EXPECT_NE(r->body.find("sibyl_http_request_seconds_bucket"), std::string::npos);
}

TEST(ServeDurabilityTest, AcknowledgedEventsAreThereAfterRestart) {
  TempDir dir;
  const std::string data = dir.Sub("data");
  {
    TestServer server(TestOptions(data));
    ASSERT_TRUE(server.status().ok());
    for (int i = 0; i < 5; ++i)
      ASSERT_EQ(server.Client()->Post("/batch", AmplitudeBody(kIngestKey, i * 100, 100), "application/json")->status, 200);
    // Acknowledged means durable now, not at shutdown: a read-only open sees them.
    EXPECT_EQ(StoredEvents(data), 500u);
    // Re-sending the same insert_ids is acknowledged but de-duplicated.
    auto r = server.Client()->Post("/batch", AmplitudeBody(kIngestKey, 0, 100), "application/json");
    EXPECT_EQ(Json(r)["duplicates_dropped"], 100);
  }
  EXPECT_EQ(StoredEvents(data), 500u);
  TestServer again(TestOptions(data));
  ASSERT_TRUE(again.status().ok()) << again.status().ToString();
  EXPECT_EQ(Json(again.Client()->Get("/healthz"))["events"], 500);
}

TEST(ServeStartupTest, RefusesASecondServerOnTheSameDataAndMissingKeys) {
  TempDir dir;
  TestServer first(TestOptions(dir.Sub("data")));
  ASSERT_TRUE(first.status().ok());
  auto second = Server::Open(TestOptions(dir.Sub("data")));
  EXPECT_FALSE(second.ok());
  ServerOptions no_keys = TestOptions(dir.Sub("other"));
  no_keys.keys = Keys{};
  EXPECT_FALSE(Server::Open(no_keys).ok());
}

}  // namespace
}  // namespace sibyl::server
