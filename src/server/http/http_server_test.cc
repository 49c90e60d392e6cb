#include "server/http/http_server.h"

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <future>
#include <mutex>
#include <thread>

namespace sibyl::server {
namespace {

// Handlers that wait until the test opens the gate.
class Gate {
 public:
  void Wait() {
    std::unique_lock lock(mutex_);
    ++waiting_;
    cv_.notify_all();
    cv_.wait(lock, [&] { return open_; });
  }
  void WaitForWaiters(int n) {
    std::unique_lock lock(mutex_);
    cv_.wait_for(lock, std::chrono::seconds(30), [&] { return waiting_ >= n; });
  }
  void Open() {
    std::lock_guard lock(mutex_);
    open_ = true;
    cv_.notify_all();
  }

 private:
  std::mutex mutex_;
  std::condition_variable cv_;
  int waiting_ = 0;
  bool open_ = false;
};

TEST(HttpServerTest, AFullWorkerQueueIsRefusedAtOnceWhileReservedRoutesAnswer) {
  Gate gate;
  Router router;
  router.Post("/slow", [&](const httplib::Request& req, httplib::Response& res) {
    gate.Wait();
    res.set_content(req.body, "text/plain");
  });
  RouteOptions throttled;
  throttled.refuse = [](const httplib::Request&, httplib::Response& res, Refusal why, uint64_t) {
    res.status = why == Refusal::kOverloaded ? 429 : 413;
    res.set_header("Retry-After", "1");
  };
  router.Post("/ingest", [&](const httplib::Request&, httplib::Response& res) { res.status = 200; }, throttled);
  router.Get("/healthz", [](const httplib::Request&, httplib::Response& res) { res.set_content("ok", "text/plain"); },
             {.reserved = true});
  HttpServerOptions options;
  options.workers = 1;
  options.max_queued_requests = 1;
  std::atomic<int> answered{0};
  HttpHooks hooks;
  hooks.after = [&](const httplib::Request&, const httplib::Response&) { ++answered; };
  auto server = HttpServer::Bind(router, options, hooks);
  ASSERT_TRUE(server.ok()) << server.status().ToString();
  (*server)->Start();
  const int port = (*server)->port();
  auto post = [port](const std::string& path, const std::string& body) {
    httplib::Client c("127.0.0.1", port);
    c.set_read_timeout(60);
    auto r = c.Post(path.c_str(), body, "text/plain");
    return r ? r->status : -1;
  };
  // One request runs (and waits), one waits in the queue: the queue is full.
  auto running = std::async(std::launch::async, post, "/slow", "a");
  gate.WaitForWaiters(1);
  auto queued = std::async(std::launch::async, post, "/slow", "b");
  for (int i = 0; i < 3000 && (*server)->Stats().queued_requests < 1; ++i)
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  ASSERT_EQ((*server)->Stats().queued_requests, 1u);
  EXPECT_EQ(post("/slow", "c"), 503);    // the default refusal
  EXPECT_EQ(post("/ingest", "d"), 429);  // the route's own
  httplib::Client c("127.0.0.1", port);
  auto health = c.Get("/healthz");
  ASSERT_TRUE(health);
  EXPECT_EQ(health->body, "ok");
  EXPECT_EQ((*server)->Stats().refused_overloaded, 2u);
  gate.Open();
  EXPECT_EQ(running.get(), 200);
  EXPECT_EQ(queued.get(), 200);
  (*server)->Stop();
  EXPECT_EQ(answered, 5);
}

TEST(HttpServerTest, StopAnswersTheRequestInFlightThenCloses) {
  Gate gate;
  Router router;
  router.Get("/wait", [&](const httplib::Request&, httplib::Response& res) {
    gate.Wait();
    res.set_content("done", "text/plain");
  });
  auto server = HttpServer::Bind(router, HttpServerOptions{}, HttpHooks{});
  ASSERT_TRUE(server.ok());
  (*server)->Start();
  const int port = (*server)->port();
  auto in_flight = std::async(std::launch::async, [port] {
    httplib::Client c("127.0.0.1", port);
    c.set_read_timeout(60);
    auto r = c.Get("/wait");
    return r ? r->body : std::string("no answer");
  });
  gate.WaitForWaiters(1);
  auto stopped = std::async(std::launch::async, [&] { (*server)->Stop(); });
  std::this_thread::sleep_for(std::chrono::milliseconds(100));
  gate.Open();
  stopped.get();
  EXPECT_EQ(in_flight.get(), "done");
  httplib::Client c("127.0.0.1", port);
  c.set_connection_timeout(2);
  EXPECT_FALSE(c.Get("/wait")) << "the listening socket is closed";
}

}  // namespace
}  // namespace sibyl::server
