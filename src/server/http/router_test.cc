#include "server/http/router.h"

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <mutex>
#include <thread>

#include "server/http/worker_pool.h"

namespace sibyl::server {
namespace {

TEST(RouterTest, FirstMatchInOrderWithCapturesAndHeadAsGet) {
  Router router;
  int hit = 0;
  router.Get("/api/v1/runs/(\\d+)", [&](const httplib::Request&, httplib::Response&) { hit = 1; });
  router.Get("/api/v1/.*", [&](const httplib::Request&, httplib::Response&) { hit = 2; });
  router.Post("/batch", [&](const httplib::Request&, httplib::Response&) { hit = 3; }, {.max_body_bytes = 20});
  std::smatch m;
  const std::string path = "/api/v1/runs/42";
  const Router::Route* r = router.Match("GET", path, m);
  ASSERT_NE(r, nullptr);
  httplib::Request req;
  httplib::Response res;
  r->handler(req, res);
  EXPECT_EQ(hit, 1);
  EXPECT_EQ(m[1].str(), "42");
  EXPECT_NE(router.Match("HEAD", path, m), nullptr);
  const std::string other = "/api/v1/runs/x";
  router.Match("GET", other, m)->handler(req, res);
  EXPECT_EQ(hit, 2);
  EXPECT_EQ(router.Match("POST", path, m), nullptr);
  const std::string batch = "/batch";
  EXPECT_EQ(router.Match("GET", batch, m), nullptr);
  EXPECT_EQ(router.MaxBodyBytes(router.Match("POST", batch, m)), 20u);
  EXPECT_EQ(router.MaxBodyBytes(nullptr), router.default_max_body_bytes());
  // The whole path must match.
  const std::string longer = "/batch/more";
  EXPECT_EQ(router.Match("POST", longer, m), nullptr);
}

TEST(RouterTest, DecodesPathsAndQueries) {
  EXPECT_EQ(DecodeUrl("/users/a%20b+c", false), "/users/a b+c");
  EXPECT_EQ(DecodeUrl("a+b%2Bc", true), "a b+c");
  EXPECT_EQ(DecodeUrl("bad%zz%4", false), "bad%zz%4");
  httplib::Params p = ParseQuery("top=20%25&limit=5&empty=&flag&top=x");
  EXPECT_EQ(p.count("top"), 2u);
  EXPECT_EQ(p.find("top")->second, "20%");
  EXPECT_EQ(p.find("limit")->second, "5");
  EXPECT_EQ(p.find("empty")->second, "");
  EXPECT_EQ(p.find("flag")->second, "");
  EXPECT_TRUE(ParseQuery("").empty());
}

TEST(WorkerPoolTest, RefusesBeyondCapacityAndRunsWhatWasQueued) {
  WorkerPool pool(1, 2);
  std::mutex m;
  std::condition_variable cv;
  bool release = false;
  std::atomic<int> ran{0};
  auto blocker = [&] {
    std::unique_lock lock(m);
    cv.wait(lock, [&] { return release; });
    ++ran;
  };
  ASSERT_TRUE(pool.TryPost(blocker));
  // The one thread takes the blocker; two more fit in the queue, the next is refused.
  for (int i = 0; i < 1000 && pool.queued() > 0; ++i) std::this_thread::sleep_for(std::chrono::milliseconds(1));
  EXPECT_TRUE(pool.TryPost([&] { ++ran; }));
  EXPECT_TRUE(pool.TryPost([&] { ++ran; }));
  EXPECT_TRUE(pool.Full());
  EXPECT_FALSE(pool.TryPost([&] { ++ran; }));
  {
    std::lock_guard lock(m);
    release = true;
  }
  cv.notify_all();
  pool.Stop();
  EXPECT_EQ(ran.load(), 3);
  EXPECT_FALSE(pool.TryPost([] {}));
}

}  // namespace
}  // namespace sibyl::server
