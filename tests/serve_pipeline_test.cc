// `sibyl serve` with the scheduler wired in, on a small simulated store: creating a
// prediction queues its first train run (visible in /api/v1/runs), a manual score run
// writes scores back, and every read of them answers: real-time score, explanation, the
// user's scores, the paginated cohort, the forecast, the web pages.
#include <gtest/gtest.h>

#include <chrono>
#include <thread>

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

// Waits for run `id` to finish; its record.
json WaitForRun(httplib::Client& c, uint64_t id) {
  for (int i = 0; i < 2400; ++i) {
    json run = Json(c.Get("/api/v1/runs/" + std::to_string(id)));
    const std::string state = run.value("state", "");
    if (state == "succeeded" || state == "failed" || state == "aborted") return run;
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  return json();
}

#if defined(__SANITIZE_ADDRESS__)
constexpr uint64_t kUsers = 2400;
#else
constexpr uint64_t kUsers = 3000;
#endif

TEST(ServePipelineTest, NewPredictionTrainsThenScoresAndEveryReadAnswers) {
  TempDir dir;
  const std::string data = dir.Sub("data");
  ASSERT_TRUE(GenerateStore(dir.path(), data, kUsers, 70).ok());
  TestServer server(TestOptions(data, /*scheduler=*/true));
  ASSERT_TRUE(server.status().ok()) << server.status().ToString();
  auto c = server.Admin();

  auto created = c->Post("/api/v1/predictions", R"({"name": "purchase_7d", "kind": "propensity",
      "outcome": {"event": "Purchase"}, "horizon_days": 7, "cohort": {"all": [{"active_within_days": 30}]},
      "refresh": {"train_every_hours": 24, "score_every_hours": 1}})", "application/json");
  ASSERT_EQ(created->status, 201) << created->body;

  // The scheduler queues the first training at once; it shows in the run list.
  json train;
  for (int i = 0; i < 200 && train.is_null(); ++i) {
    const json runs = Json(c->Get("/api/v1/runs?prediction=purchase_7d"));
    for (const json& run : runs["runs"])
      if (run["kind"] == "train") train = run;
    if (train.is_null()) std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  ASSERT_FALSE(train.is_null()) << "no train run appeared";
  EXPECT_EQ(train["trigger"], "new");
  json finished = WaitForRun(*c, train["id"].get<uint64_t>());
  ASSERT_EQ(finished["state"], "succeeded") << finished.dump();
  EXPECT_EQ(finished["detail"]["version"], 1);

  // A manual full scoring run.
  auto triggered = c->Post("/api/v1/predictions/purchase_7d/score", "", "text/plain");
  ASSERT_EQ(triggered->status, 202) << triggered->body;
  json scored = WaitForRun(*c, Json(triggered)["run_id"].get<uint64_t>());
  ASSERT_EQ(scored["state"], "succeeded") << scored.dump();
  EXPECT_GT(scored["detail"]["users_scored"].get<int>(), 100);

  // The cohort, paginated: page 2 continues page 1.
  json page1 = Json(c->Get("/api/v1/predictions/purchase_7d/cohort?top=20%25&limit=10"));
  ASSERT_EQ(page1["users"].size(), 10u) << page1.dump();
  ASSERT_TRUE(page1["next_offset"].is_number());
  json page2 = Json(c->Get("/api/v1/predictions/purchase_7d/cohort?top=20%25&limit=10&offset=10"));
  ASSERT_FALSE(page2["users"].empty());
  EXPECT_GE(page1["users"][9]["score"].get<double>(), page2["users"][0]["score"].get<double>());
  EXPECT_EQ(c->Get("/api/v1/predictions/purchase_7d/cohort?top=abc")->status, 400);
  EXPECT_EQ(c->Get("/api/v1/predictions/purchase_7d/cohort?limit=-1")->status, 400);
  const std::string user = page1["users"][0]["user_id"];

  // Real-time score now and at the run's cutoff (same number as the written score).
  auto realtime = c->Get("/api/v1/predictions/purchase_7d/users/" + user + "/score");
  ASSERT_EQ(realtime->status, 200) << realtime->body;
  EXPECT_EQ(Json(realtime)["version"], 1);
  const std::string cutoff = scored["detail"]["cutoff"];
  json at_cutoff = Json(c->Get("/api/v1/predictions/purchase_7d/users/" + user + "/score?as_of=" + cutoff));
  EXPECT_NEAR(at_cutoff["score"].get<double>(), page1["users"][0]["score"].get<double>(), 1e-9);
  EXPECT_EQ(c->Get("/api/v1/predictions/purchase_7d/users/nobody-here/score")->status, 404);
  EXPECT_EQ(c->Get("/api/v1/predictions/purchase_7d/users/" + user + "/score?as_of=yesterday-ish")->status, 400);

  auto explanation = c->Get("/api/v1/predictions/purchase_7d/users/" + user + "/explanation?reasons=2");
  ASSERT_EQ(explanation->status, 200) << explanation->body;
  EXPECT_LE(Json(explanation)["up"].size(), 2u);

  json profile = Json(c->Get("/api/v1/users/" + user));
  EXPECT_NEAR(profile["scores"]["purchase_7d"]["score"].get<double>(), page1["users"][0]["score"].get<double>(), 1e-9);

  json forecast = Json(c->Get("/api/v1/predictions/purchase_7d/forecast"));
  EXPECT_GT(forecast["expected"].get<double>(), 0);
  EXPECT_LE(forecast["interval_95"][0].get<double>(), forecast["expected"].get<double>());

  json detail = Json(c->Get("/api/v1/predictions/purchase_7d"));
  EXPECT_EQ(detail["latest_version"], 1);
  EXPECT_FALSE(detail["drivers"].empty());
  EXPECT_FALSE(detail["topic_drivers"].empty());
  EXPECT_TRUE(detail["latest_score_run"].is_object());

  auto page = c->Get("/predictions/purchase_7d/report");
  ASSERT_EQ(page->status, 200);
  EXPECT_NE(page->body.find("<svg"), std::string::npos);
  EXPECT_NE(page->body.find("latest scoring run"), std::string::npos);

  auto metrics = c->Get("/metrics");
  EXPECT_NE(metrics->body.find("sibyl_runs_total{kind=\"train\",outcome=\"succeeded\"} 1"), std::string::npos);
  EXPECT_NE(metrics->body.find("sibyl_realtime_score_seconds_count"), std::string::npos);
}

}  // namespace
}  // namespace sibyl::server
