// Pieces of `sibyl serve` tested alone: keys and their sources, Authorization parsing,
// group commit (acknowledged = committed; the queue limit answers ResourceExhausted, not
// a growing queue), Prometheus rendering.
#include <gtest/gtest.h>

#include <fstream>
#include <thread>

#include "ingest/json_parser.h"
#include "serve_test_util.h"
#include "server/context.h"
#include "server/group_commit.h"
#include "server/keys.h"
#include "server/metrics.h"

namespace sibyl::server {
namespace {

using namespace testing_util;

TEST(KeysTest, ConstantTimeEqualsComparesWholeStrings) {
  EXPECT_TRUE(ConstantTimeEquals("abcdefgh", "abcdefgh"));
  EXPECT_FALSE(ConstantTimeEquals("abcdefgh", "abcdefgx"));
  EXPECT_FALSE(ConstantTimeEquals("abcdefgh", "abcdefghi"));
  EXPECT_FALSE(ConstantTimeEquals("", "a"));
  EXPECT_TRUE(ConstantTimeEquals("", ""));
}

TEST(KeysTest, CheckKeySaysMissingOrWrong) {
  std::vector<std::string> keys = {"first-key-1", "second-key-2"};
  EXPECT_EQ(CheckKey(std::nullopt, keys), AuthOutcome::kMissing);
  EXPECT_EQ(CheckKey(std::string_view(""), keys), AuthOutcome::kMissing);
  EXPECT_EQ(CheckKey(std::string_view("second-key-2"), keys), AuthOutcome::kOk);
  EXPECT_EQ(CheckKey(std::string_view("second-key-3"), keys), AuthOutcome::kWrong);
}

TEST(KeysTest, AuthorizationHeaders) {
  EXPECT_EQ(CredentialFromAuthorization("Bearer abc123"), "abc123");
  EXPECT_EQ(CredentialFromAuthorization("bearer   abc123 "), "abc123");
  // Segment: base64("writekey:") -> the user name.
  EXPECT_EQ(CredentialFromAuthorization("Basic d3JpdGVrZXk6"), "writekey");
  // Browser: base64("admin:secret") -> the password.
  EXPECT_EQ(CredentialFromAuthorization("Basic YWRtaW46c2VjcmV0"), "secret");
  EXPECT_EQ(CredentialFromAuthorization("Basic !!!"), std::nullopt);
  EXPECT_EQ(CredentialFromAuthorization(""), std::nullopt);
  EXPECT_EQ(CredentialFromAuthorization("Digest x"), std::nullopt);
}

TEST(KeysTest, LoadKeysFromFilesAndRefusesShortOrMissingKeys) {
  TempDir dir;
  std::ofstream(dir.Sub("admin")) << "  the-admin-key-1  \n";
  std::ofstream(dir.Sub("ingest")) << "# comment\nfirst-ingest-key\n\nsecond-ingest-key\n";
  KeySources sources{dir.Sub("admin"), dir.Sub("ingest"), false};
  auto keys = LoadKeys(sources);
  ASSERT_TRUE(keys.ok()) << keys.status().ToString();
  EXPECT_EQ(keys->admin, "the-admin-key-1");
  EXPECT_EQ(keys->ingest, (std::vector<std::string>{"first-ingest-key", "second-ingest-key"}));
  std::ofstream(dir.Sub("short")) << "short\n";
  EXPECT_FALSE(LoadKeys({dir.Sub("short"), dir.Sub("ingest"), false}).ok());
  EXPECT_FALSE(LoadKeys({"", dir.Sub("ingest"), false}).ok());
  EXPECT_FALSE(LoadKeys({dir.Sub("admin"), "", false}).ok());
  // An ingest key equal to the admin key would open the admin API from inside an app.
  std::ofstream(dir.Sub("ingest-with-admin")) << "first-ingest-key\nthe-admin-key-1\n";
  auto same = LoadKeys({dir.Sub("admin"), dir.Sub("ingest-with-admin"), false});
  ASSERT_FALSE(same.ok());
  EXPECT_NE(same.status().message().find("ingest key 2 equals the admin key"), std::string::npos)
      << same.status().message();
}

EventBatch Batch(int first, int n) {
  EventBatch batch;
  std::vector<IngestError> errors;
  EXPECT_TRUE(ParseRequestBody(AmplitudeBody("k", first, n), BodyKind::kAmplitudeEvents, batch, errors).ok());
  EXPECT_TRUE(errors.empty());
  return batch;
}

TEST(GroupCommitTest, AcknowledgesOnlyCommittedBatches) {
  TempDir dir;
  auto store = EventStore::Open(StoreOptions{.data_dir = dir.Sub("data")});
  ASSERT_TRUE(store.ok());
  GroupCommitter committer(**store, {});
  std::vector<std::thread> threads;
  std::atomic<int> acknowledged{0};
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < 5; ++i) {
        EventBatch batch = Batch((t * 5 + i) * 10, 10);
        auto r = committer.Submit(batch);
        ASSERT_TRUE(r.ok()) << r.status().ToString();
        EXPECT_EQ(r->events_written, 10u);
        ++acknowledged;
      }
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(acknowledged.load(), 20);
  EXPECT_EQ((*store)->Snapshot()->event_count(), 200u);
  EXPECT_LE(committer.commits(), 20u);
}

TEST(GroupCommitTest, FullQueueIsRefusedNotQueued) {
  TempDir dir;
  auto store = EventStore::Open(StoreOptions{.data_dir = dir.Sub("data")});
  ASSERT_TRUE(store.ok());
  GroupCommitter committer(**store, {.max_pending_events = 15});
  // Hold the store's one transaction so the committer cannot make progress.
  auto blocker = (*store)->Begin();
  ASSERT_TRUE(blocker.ok());
  EventBatch first = Batch(0, 10);
  Result<AppendResult> first_result = Status(StatusCode::kInternal, "unset");
  std::thread waiting([&] { first_result = committer.Submit(first); });
  while (committer.pending_events() == 0) std::this_thread::sleep_for(std::chrono::milliseconds(1));
  EventBatch second = Batch(10, 10);
  auto refused = committer.Submit(second);
  ASSERT_FALSE(refused.ok());
  EXPECT_EQ(refused.status().code(), StatusCode::kResourceExhausted);
  blocker->reset();  // abort the blocking transaction: the queued batch commits
  waiting.join();
  ASSERT_TRUE(first_result.ok()) << first_result.status().ToString();
  EXPECT_EQ((*store)->Snapshot()->event_count(), 10u);
  committer.Stop();
  EXPECT_EQ(committer.Submit(second).status().code(), StatusCode::kFailedPrecondition);
}

// @amplitude/analytics-node reads these keys of a 429 (analytics-core's BaseTransport
// buildResponse and Destination.handleRateLimitResponse): nothing listed per user, device
// or event means "retry everything after the flush interval".
TEST(AmplitudeResponsesTest, ThrottledBodyHasTheSdkShape) {
  nlohmann::json j = AmplitudeThrottledBody("ingest queue full");
  EXPECT_EQ(j["code"], 429);
  EXPECT_EQ(j["error"], "Too many requests: ingest queue full");
  EXPECT_TRUE(j["throttled_events"].is_array() && j["throttled_events"].empty());
  for (const char* key : {"throttled_devices", "throttled_users", "exceeded_daily_quota_devices", "exceeded_daily_quota_users"})
    EXPECT_TRUE(j[key].is_object() && j[key].empty()) << key;
  EXPECT_EQ(LimitText(1'000'000), "1 MB (1000000 bytes)");
  EXPECT_EQ(LimitText(20'000'000), "20 MB (20000000 bytes)");
  EXPECT_EQ(LimitText(32 << 10), "32 KB (32768 bytes)");
}

TEST(MetricsTest, RendersCountersHistogramsAndGauges) {
  Metrics m;
  m.DescribeCounter("x_total", "things");
  m.Add("x_total", "a=\"1\"", 2);
  m.Add("x_total", "a=\"1\"");
  m.Observe("lat_seconds", "", 0.003);
  m.Observe("lat_seconds", "", 20);
  m.AddGauge("depth", "queue depth", [] { return 4.0; });
  std::string text = m.RenderPrometheus();
  EXPECT_NE(text.find("# HELP x_total things\n# TYPE x_total counter\nx_total{a=\"1\"} 3\n"), std::string::npos) << text;
  EXPECT_NE(text.find("lat_seconds_bucket{le=\"0.005\"} 1\n"), std::string::npos) << text;
  EXPECT_NE(text.find("lat_seconds_bucket{le=\"+Inf\"} 2\n"), std::string::npos);
  EXPECT_NE(text.find("lat_seconds_count 2\n"), std::string::npos);
  EXPECT_NE(text.find("# TYPE depth gauge\ndepth 4\n"), std::string::npos);
  EXPECT_EQ(m.CounterValue("x_total", "a=\"1\""), 3);
}

TEST(MetricsTest, CountersAndLabelledFamiliesReadAtScrapeTime) {
  Metrics m;
  double commits = 7;
  m.AddCounterFunc("commits_total", "commits", [&] { return commits; });
  m.AddSampled("refused_total", "refused", "counter",
               [] { return Metrics::Samples{{"reason=\"cap\"", 1}, {"reason=\"timeout\"", 2}}; });
  commits = 9;
  std::string text = m.RenderPrometheus();
  EXPECT_NE(text.find("# HELP commits_total commits\n# TYPE commits_total counter\ncommits_total 9\n"), std::string::npos)
      << text;
  EXPECT_NE(text.find("# TYPE refused_total counter\nrefused_total{reason=\"cap\"} 1\nrefused_total{reason=\"timeout\"} 2\n"),
            std::string::npos)
      << text;
}

}  // namespace
}  // namespace sibyl::server
