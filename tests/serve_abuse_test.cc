// What hostile or broken clients can do to `sibyl serve` (issue 18), bounded and on
// loopback: a gzip bomb is refused without inflating it, idle and half-sent connections
// cannot stop /healthz, slowloris connections are cut at the header deadline, connections
// over the cap are refused, and malformed or oversized requests are answered at once.
// Assertions are about behaviour with generous time bounds (a loaded 2-core machine).
#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>
#include <zlib.h>

#include <gtest/gtest.h>

#include <chrono>
#include <string>
#include <thread>
#include <vector>

#include "serve_test_util.h"
#include "server/metrics.h"
#include "server/http/test_compress.h"

namespace sibyl::server {
namespace {

using namespace testing_util;
using json = nlohmann::json;
using Steady = std::chrono::steady_clock;

double SecondsSince(Steady::time_point t) { return std::chrono::duration<double>(Steady::now() - t).count(); }

// A connected loopback socket (-1 on failure); closed by the destructor.
class Socket {
 public:
  explicit Socket(int port) {
    fd_ = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_port = htons(static_cast<uint16_t>(port));
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (::connect(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0) {
      ::close(fd_);
      fd_ = -1;
    }
  }
  ~Socket() {
    if (fd_ >= 0) ::close(fd_);
  }
  Socket(const Socket&) = delete;
  Socket& operator=(const Socket&) = delete;
  Socket(Socket&& o) noexcept : fd_(o.fd_) { o.fd_ = -1; }

  bool ok() const { return fd_ >= 0; }
  bool Send(const std::string& data) { return ::send(fd_, data.data(), data.size(), MSG_NOSIGNAL) == ssize_t(data.size()); }
  // Everything the server sends until it closes or `timeout_s` passes; `closed` tells which.
  std::string ReadAll(double timeout_s, bool* closed = nullptr) {
    std::string got;
    const auto deadline = Steady::now() + std::chrono::milliseconds(static_cast<int>(timeout_s * 1000));
    char buf[8192];
    while (Steady::now() < deadline) {
      pollfd p{fd_, POLLIN, 0};
      const int wait_ms = static_cast<int>(std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Steady::now()).count());
      if (::poll(&p, 1, std::max(1, wait_ms)) <= 0) continue;
      const ssize_t n = ::recv(fd_, buf, sizeof(buf), 0);
      if (n <= 0) {
        if (closed) *closed = true;
        return got;
      }
      got.append(buf, static_cast<size_t>(n));
    }
    if (closed) *closed = false;
    return got;
  }

 private:
  int fd_ = -1;
};

std::string StatusLine(const std::string& response) { return response.substr(0, response.find("\r\n")); }

std::string GzipZeros(size_t bytes) {
  z_stream z{};
  EXPECT_EQ(deflateInit2(&z, 9, Z_DEFLATED, 16 + 15, 9, Z_DEFAULT_STRATEGY), Z_OK);
  const std::string zeros(1 << 20, '\0');
  std::string out;
  std::vector<char> buf(1 << 16);
  for (size_t done = 0; done < bytes; done += zeros.size()) {
    z.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(zeros.data()));
    z.avail_in = static_cast<uInt>(zeros.size());
    const int flush = done + zeros.size() >= bytes ? Z_FINISH : Z_NO_FLUSH;
    do {
      z.next_out = reinterpret_cast<Bytef*>(buf.data());
      z.avail_out = static_cast<uInt>(buf.size());
      deflate(&z, flush);
      out.append(buf.data(), buf.size() - z.avail_out);
    } while (z.avail_out == 0);
  }
  deflateEnd(&z);
  return out;
}

class ServeAbuseTest : public ::testing::Test {
 protected:
  void StartServer(const std::function<void(ServerOptions&)>& adjust = {}) {
    ServerOptions o = TestOptions(dir_.Sub("data"));
    if (adjust) adjust(o);
    server_ = std::make_unique<TestServer>(o);
    ASSERT_TRUE(server_->status().ok()) << server_->status().ToString();
  }
  // GET /healthz on a fresh connection; the status, or -1 when no answer in `timeout_s`.
  int Healthz(int timeout_s) {
    httplib::Client c("127.0.0.1", server_->port());
    c.set_connection_timeout(timeout_s);
    c.set_read_timeout(timeout_s);
    auto r = c.Get("/healthz");
    return r ? r->status : -1;
  }

  TempDir dir_;
  std::unique_ptr<TestServer> server_;
};

// A 1 GiB run of zeros gzipped to about 1 MB: httplib inflated all of it (3.1 GB RSS).
TEST_F(ServeAbuseTest, GzipBombIs413WithoutInflatingIt) {
  StartServer();
  const std::string bomb = GzipZeros(size_t{1} << 30);
  ASSERT_LT(bomb.size(), 2'000'000u);
  const double rss_before = ReadProcessStats().resident_memory_bytes;
  for (const char* path : {"/batch", "/2/httpapi", "/v1/batch"}) {
    auto c = server_->Client();
    httplib::Headers headers = {{"Content-Encoding", "gzip"}};
    auto started = Steady::now();
    auto r = c->Post(path, headers, bomb, "application/json");
    ASSERT_TRUE(r) << path;
    EXPECT_EQ(r->status, 413) << path << ": " << r->body;
    EXPECT_LT(SecondsSince(started), 30.0) << path;
    if (std::string(path) == "/batch") {
      // The vendor's 413 (the body never reached the handler).
      json body = json::parse(r->body);
      EXPECT_EQ(body["code"], 413);
      EXPECT_EQ(body["max_payload_size_bytes"], 20'000'000);
    }
  }
  const double rss_after = ReadProcessStats().resident_memory_bytes;
  EXPECT_LT(rss_after - rss_before, 200.0 * (1 << 20)) << "RSS grew from " << rss_before << " to " << rss_after;
  EXPECT_EQ(Healthz(10), 200);
  // Counted under its route, not "other".
  auto metrics = server_->Admin()->Get("/metrics");
  ASSERT_TRUE(metrics);
  EXPECT_NE(metrics->body.find("sibyl_http_requests_total{route=\"/batch\",code=\"413\"} 1"), std::string::npos)
      << metrics->body;
}

using http_test_util::Gzip;

// Issue 18: a body sent as gzip that is not valid gzip gets a 400 saying so, with zlib's
// reason, in the shape its route's clients read: Amplitude's {"code","error"}, Segment's
// {"success":false,"message"}, the JSON API's {"error":{"code","message"}}. Nothing is stored.
TEST_F(ServeAbuseTest, InvalidGzipIs400WithTheReasonInEachVendorsShape) {
  StartServer();
  const std::string valid = Gzip(AmplitudeBody(kIngestKey, 0, 20));
  std::string bad_crc = valid;
  bad_crc[valid.size() - 8] ^= 0x55;
  const std::vector<std::pair<std::string, std::string>> cases = {
      {"not gzip at all", "incorrect header check"},
      {valid.substr(0, valid.size() / 2), "truncated (the data ends before the stream does)"},
      {bad_crc, "incorrect data check"},
      {valid + "trailing junk", "trailing garbage after the gzip data (incorrect header check)"},
  };
  auto c = server_->Client();
  c->set_bearer_token_auth(kAdminKey.c_str());
  const httplib::Headers gzip = {{"Content-Encoding", "gzip"}};
  for (const auto& [body, reason] : cases) {
    const std::string message = "request body is not valid gzip: " + reason;
    auto amplitude = c->Post("/2/httpapi", gzip, body, "application/json");
    ASSERT_TRUE(amplitude);
    EXPECT_EQ(amplitude->status, 400) << reason;
    EXPECT_EQ(json::parse(amplitude->body, nullptr, false), json({{"code", 400}, {"error", message}})) << amplitude->body;
    auto segment = c->Post("/v1/batch", gzip, body, "application/json");
    ASSERT_TRUE(segment);
    EXPECT_EQ(segment->status, 400) << reason;
    EXPECT_EQ(json::parse(segment->body, nullptr, false), json({{"success", false}, {"message", message}}))
        << segment->body;
    auto api = c->Post("/api/v1/cohorts", gzip, body, "application/json");
    ASSERT_TRUE(api);
    EXPECT_EQ(api->status, 400) << reason;
    EXPECT_EQ(json::parse(api->body, nullptr, false),
              json({{"error", {{"code", "invalid_argument"}, {"message", message}}}}))
        << api->body;
  }
  // The same body, valid, is stored: the refusals above were about the encoding alone.
  auto ok = c->Post("/2/httpapi", gzip, valid, "application/json");
  ASSERT_TRUE(ok);
  EXPECT_EQ(ok->status, 200) << ok->body;
  EXPECT_EQ(StoredEvents(dir_.Sub("data")), 20u);
  auto metrics = server_->Admin()->Get("/metrics");
  ASSERT_TRUE(metrics);
  EXPECT_NE(metrics->body.find("sibyl_ingest_errors_total{endpoint=\"/v1/batch\",code=\"400\"} 4"), std::string::npos);
  EXPECT_NE(metrics->body.find("sibyl_http_inflight_body_bytes 0"), std::string::npos);
}

TEST_F(ServeAbuseTest, IdleAndHalfSentConnectionsDoNotStopHealthz) {
  StartServer([](ServerOptions& o) { o.threads = 4; });
  std::vector<Socket> sockets;
  for (int i = 0; i < 300; ++i) {
    sockets.emplace_back(server_->port());
    ASSERT_TRUE(sockets.back().ok()) << i;
  }
  for (int i = 0; i < 50; ++i) {
    sockets.emplace_back(server_->port());
    ASSERT_TRUE(sockets.back().ok());
    ASSERT_TRUE(sockets.back().Send("GET /healthz HTTP/1.1\r\nHost: localhost\r\nX-Slow: "));
  }
  auto started = Steady::now();
  EXPECT_EQ(Healthz(10), 200);
  EXPECT_LT(SecondsSince(started), 5.0);
  // And ingest still works beside them.
  auto r = server_->Client()->Post("/2/httpapi", AmplitudeBody(kIngestKey, 0, 10), "application/json");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 200) << r->body;
}

TEST_F(ServeAbuseTest, SlowlorisIsCutAtTheHeaderDeadline) {
  StartServer([](ServerOptions& o) {
    o.header_timeout_ms = 1000;
    o.idle_timeout_ms = 1000;
  });
  std::vector<Socket> slow;
  for (int i = 0; i < 5; ++i) slow.emplace_back(server_->port());
  for (auto& s : slow) ASSERT_TRUE(s.Send("GET /healthz HTTP/1.1\r\n"));
  // One header line every 200 ms keeps every socket busy, never finishing the headers.
  auto started = Steady::now();
  int cut = 0;
  for (int round = 0; round < 150 && cut < 5; ++round) {
    cut = 0;
    for (auto& s : slow) {
      if (!s.Send("X-Slow-" + std::to_string(round) + ": 1\r\n")) ++cut;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
  }
  EXPECT_EQ(cut, 5) << "slowloris connections still open after " << SecondsSince(started) << " s";
  EXPECT_LT(SecondsSince(started), 20.0);
  EXPECT_EQ(Healthz(10), 200);
}

TEST_F(ServeAbuseTest, AtTheCapTheConnectionIdleLongestMakesRoom) {
  StartServer([](ServerOptions& o) {
    o.max_connections = 8;
    o.idle_timeout_ms = 60'000;
  });
  std::vector<Socket> held;
  for (int i = 0; i < 8; ++i) {
    held.emplace_back(server_->port());
    // Accepted one after another, so the first is the one idle longest.
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  // Only a connection idle for a second may be closed for a newcomer.
  std::this_thread::sleep_for(std::chrono::milliseconds(1100));
  // A newcomer at the cap is served: the first idle connection is closed for it.
  EXPECT_EQ(Healthz(10), 200);
  bool closed = false;
  EXPECT_EQ(held[0].ReadAll(5, &closed), "");
  EXPECT_TRUE(closed) << "the connection idle longest was not closed";
  // The others are untouched and still served.
  for (int i = 1; i < 8; ++i) {
    ASSERT_TRUE(held[i].Send("GET /healthz HTTP/1.1\r\nHost: localhost\r\n\r\n")) << i;
    std::string answer = held[i].ReadAll(0.5);
    EXPECT_EQ(StatusLine(answer), "HTTP/1.1 200 OK") << i << ": " << answer;
  }
}

TEST_F(ServeAbuseTest, ConnectionsBeyondTheCapAreRefusedWhenNoneIsIdle) {
  StartServer([](ServerOptions& o) {
    o.max_connections = 8;
    o.idle_timeout_ms = 60'000;
    o.header_timeout_ms = 60'000;
  });
  // Each has begun a request (half its headers): none is idle, none may be closed for a
  // newcomer.
  std::vector<Socket> held;
  for (int i = 0; i < 8; ++i) {
    held.emplace_back(server_->port());
    ASSERT_TRUE(held.back().Send("GET /healthz HTTP/1.1\r\nHost: localhost\r\n"));
  }
  // The 8 are accepted before the next one (the backlog is first in, first out); give the
  // server a moment to accept them all.
  std::this_thread::sleep_for(std::chrono::milliseconds(300));
  Socket extra(server_->port());
  ASSERT_TRUE(extra.ok());
  extra.Send("GET /healthz HTTP/1.1\r\nHost: localhost\r\n\r\n");
  bool closed = false;
  std::string answer = extra.ReadAll(10, &closed);
  EXPECT_TRUE(closed);
  // A 503, or a reset when the request arrived after the close: never served.
  if (!answer.empty()) {
    EXPECT_EQ(StatusLine(answer), "HTTP/1.1 503 Service Unavailable") << answer;
  }
  // The 8 requests begun are still served.
  for (auto& s : held) {
    ASSERT_TRUE(s.Send("\r\n"));
    EXPECT_EQ(StatusLine(s.ReadAll(0.5)), "HTTP/1.1 200 OK");
  }
  held.clear();
  // Once they are gone, new connections are served again.
  int status = -1;
  for (int i = 0; i < 50 && status != 200; ++i) {
    status = Healthz(5);
    if (status != 200) std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  EXPECT_EQ(status, 200);
}

TEST_F(ServeAbuseTest, MalformedContentLengthIs400AtOnce) {
  StartServer();
  for (const char* length : {"-1", "abc", "1, 2", "99999999999999999999999"}) {
    Socket s(server_->port());
    auto started = Steady::now();
    s.Send(std::string("POST /2/httpapi HTTP/1.1\r\nHost: localhost\r\nContent-Length: ") + length + "\r\n\r\n");
    bool closed = false;
    std::string answer = s.ReadAll(10, &closed);
    EXPECT_EQ(StatusLine(answer), "HTTP/1.1 400 Bad Request") << length;
    EXPECT_TRUE(closed) << length;
    EXPECT_LT(SecondsSince(started), 5.0) << length;
  }
}

TEST_F(ServeAbuseTest, OversizeBodiesAre413BeforeTheBodyIsSent) {
  StartServer();
  Socket s(server_->port());
  auto started = Steady::now();
  s.Send("POST /batch HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\nContent-Length: 50000000\r\n\r\n");
  bool closed = false;
  std::string answer = s.ReadAll(10, &closed);
  EXPECT_EQ(StatusLine(answer), "HTTP/1.1 413 Payload Too Large");
  EXPECT_LT(SecondsSince(started), 5.0);
  const size_t body_at = answer.find("\r\n\r\n");
  ASSERT_NE(body_at, std::string::npos);
  json body = json::parse(answer.substr(body_at + 4), nullptr, false);
  EXPECT_EQ(body["payload_size_bytes"], 50'000'000);
  EXPECT_EQ(body["max_payload_size"], "20 MB (20000000 bytes)");

  // A chunked body declares no size: it is refused once the bytes read pass the limit.
  Socket chunked(server_->port());
  std::string request = "POST /v1/track HTTP/1.1\r\nHost: localhost\r\nTransfer-Encoding: chunked\r\n\r\n";
  for (int i = 0; i < 10; ++i) request += "1000\r\n" + std::string(4096, 'x') + "\r\n";
  chunked.Send(request);
  answer = chunked.ReadAll(10);
  EXPECT_EQ(StatusLine(answer), "HTTP/1.1 413 Payload Too Large");
  EXPECT_NE(answer.find("\"success\":false"), std::string::npos) << answer;  // Segment's shape

  // An unknown Content-Encoding is 415; headers over 16 KB are 431.
  Socket br(server_->port());
  br.Send("POST /2/httpapi HTTP/1.1\r\nHost: localhost\r\nContent-Encoding: br\r\nContent-Length: 2\r\n\r\n{}");
  EXPECT_EQ(StatusLine(br.ReadAll(10)), "HTTP/1.1 415 Unsupported Media Type");
  Socket big(server_->port());
  big.Send("GET /healthz HTTP/1.1\r\nHost: localhost\r\nX-Big: " + std::string(20'000, 'a') + "\r\n\r\n");
  EXPECT_EQ(StatusLine(big.ReadAll(10)), "HTTP/1.1 431 Request Header Fields Too Large");
  EXPECT_EQ(Healthz(10), 200);
}

TEST_F(ServeAbuseTest, KeepAliveExpect100AndPipelining) {
  StartServer();
  Socket s(server_->port());
  const std::string body = AmplitudeBody(kIngestKey, 0, 3);
  s.Send("POST /2/httpapi HTTP/1.1\r\nHost: localhost\r\nExpect: 100-continue\r\nContent-Length: " +
         std::to_string(body.size()) + "\r\n\r\n");
  std::string got = s.ReadAll(3);
  EXPECT_EQ(StatusLine(got), "HTTP/1.1 100 Continue");
  s.Send(body);
  // Two requests in one write: both answered, in order, on the same connection.
  s.Send("GET /healthz HTTP/1.1\r\nHost: localhost\r\n\r\nGET /nope HTTP/1.1\r\nHost: localhost\r\n\r\n");
  got = s.ReadAll(3);
  const size_t ok = got.find("HTTP/1.1 200 OK");
  const size_t health = got.find("HTTP/1.1 200 OK", ok + 1);
  const size_t missing = got.find("HTTP/1.1 404 Not Found");
  EXPECT_NE(ok, std::string::npos) << got;
  EXPECT_NE(health, std::string::npos) << got;
  EXPECT_NE(missing, std::string::npos) << got;
  EXPECT_LT(health, missing);
  EXPECT_EQ(StoredEvents(dir_.Sub("data")), 3u);
}

TEST_F(ServeAbuseTest, ProcessAndCommitMetricsFollowPrometheusConventions) {
  StartServer();
  ASSERT_EQ(server_->Client()->Post("/2/httpapi", AmplitudeBody(kIngestKey, 0, 5), "application/json")->status, 200);
  auto r = server_->Admin()->Get("/metrics");
  ASSERT_TRUE(r);
  for (const char* line : {"# TYPE sibyl_ingest_commits_total counter", "sibyl_ingest_commits_total 1",
                           "# TYPE process_resident_memory_bytes gauge", "# TYPE process_cpu_seconds_total counter",
                           "# TYPE process_open_fds gauge", "# TYPE process_start_time_seconds gauge",
                           "# TYPE sibyl_http_refused_total counter", "sibyl_http_connections "})
    EXPECT_NE(r->body.find(line), std::string::npos) << line;
  EXPECT_EQ(r->body.find("sibyl_ingest_commits "), std::string::npos);
  const ProcessStats p = ReadProcessStats();
  EXPECT_GT(p.resident_memory_bytes, 1 << 20);
  EXPECT_GE(p.cpu_seconds, 0);
  EXPECT_GT(p.open_fds, 2);
  const double now = std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count();
  EXPECT_LE(p.start_time_seconds, now + 1);
  EXPECT_GT(p.start_time_seconds, now - 24 * 3600);
}

}  // namespace
}  // namespace sibyl::server
