// `sibyl serve` under load, with a real HTTP client (cpp-httplib) on loopback:
//   1. sustained ingest: C client threads POST /batch bodies of 1,000 events for S seconds
//      while scoring runs of a trained prediction are triggered back to back;
//   2. real-time scoring: C client threads GET a user's real-time score, paced to R
//      requests/s in total, for S seconds; latency percentiles as the client sees them.
// The server runs in this process (its own thread pool); the store is a simulated one.
//
//   serve_bench [--users 3000] [--days 70] [--seconds 10] [--clients 4] [--rate 1000] [--dir DIR]
//               [--no-scoring]   (phase 1 without scoring runs: the HTTP and ingest path alone)
#include <httplib.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>

#include "common/memory.h"
#include "serve_fixture.h"
#include "server/server.h"

namespace {

using namespace sibyl;
using namespace sibyl::bench;
using Steady = std::chrono::steady_clock;

}  // namespace

int main(int argc, char** argv) {
  sibyl::UseSibylHeapSettings();  // as the sibyl binary
  uint64_t users = 3000;
  int days = 70, seconds = 10, clients = 4, rate = 1000, server_threads = 16;
  std::string dir;
  CLI::App app{"sibyl serve load benchmark"};
  app.add_option("--users", users);
  app.add_option("--days", days);
  app.add_option("--seconds", seconds, "per phase");
  app.add_option("--clients", clients, "client threads");
  app.add_option("--rate", rate, "real-time scoring requests/s (total)");
  app.add_option("--server-threads", server_threads);
  app.add_option("--dir", dir, "work directory (default: a temporary one, removed)");
  bool no_scoring = false;
  app.add_flag("--no-scoring", no_scoring, "phase 1 without scoring runs: the HTTP and ingest path alone");
  CLI11_PARSE(app, argc, argv);
  const bool temporary = dir.empty();
  if (temporary) dir = (std::filesystem::temp_directory_path() / ("sibyl-serve-bench-" + std::to_string(getpid()))).string();
  std::filesystem::create_directories(dir);
  if (Status st = GenerateStore(dir, users, days); !st.ok()) {
    std::fprintf(stderr, "generate: %s\n", st.ToString().c_str());
    return 1;
  }
  server::ApplyServerProcessSettings(/*huge_pages=*/false);  // as `sibyl serve`
  server::ServerOptions options;
  options.data_dir = dir + "/data";
  options.port = 0;
  options.threads = server_threads;
  options.keys = {kAdminKey, {kIngestKey}};
  options.scheduler_poll_ms = 100;
  options.log_requests = false;
  options.log = false;
  options.checkpoint_events = 1ull << 40;  // no checkpoint in the middle of the measurement
  auto opened = server::Server::Open(options);
  if (!opened.ok()) {
    std::fprintf(stderr, "open: %s\n", opened.status().ToString().c_str());
    return 1;
  }
  auto& srv = *opened;
  (void)srv->Start();
  httplib::Client admin("127.0.0.1", srv->port());
  admin.set_bearer_token_auth(kAdminKey.c_str());
  admin.set_read_timeout(300);
  auto prediction = CreateScoredPrediction(admin);
  if (!prediction.ok()) {
    std::fprintf(stderr, "%s\n", prediction.status().ToString().c_str());
    return 1;
  }
  const std::vector<std::string>& user_ids = prediction->user_ids;
  const int64_t base_time = prediction->cutoff_ms;

  // Phase 1: ingest while scoring runs go on.
  std::atomic<bool> stop{false};
  std::atomic<uint64_t> events{0}, requests{0}, refused{0}, failed{0};
  std::atomic<int> score_runs{0};
  std::vector<double> ingest_latency_ms;
  std::mutex latency_mutex;
  std::thread scorer([&] {
    httplib::Client c("127.0.0.1", srv->port());
    c.set_bearer_token_auth(kAdminKey.c_str());
    c.set_read_timeout(300);
    while (!stop && !no_scoring) {
      auto r = c.Post("/api/v1/predictions/purchase_7d/score", "", "text/plain");
      if (!r || r->status != 202) break;
      if (WaitRun(c, nlohmann::json::parse(r->body)["run_id"].get<uint64_t>(), 600)) ++score_runs;
    }
  });
  auto started = Steady::now();
  std::vector<std::thread> ingesters;
  for (int t = 0; t < clients; ++t) {
    ingesters.emplace_back([&, t] {
      httplib::Client c("127.0.0.1", srv->port());
      c.set_read_timeout(60);
      std::vector<double> local;
      for (int64_t i = 0; !stop; ++i) {
        std::string body = BatchBody(t, i, base_time - 3'600'000);
        auto sent = Steady::now();
        auto r = c.Post("/batch", body, "application/json");
        local.push_back(std::chrono::duration<double, std::milli>(Steady::now() - sent).count());
        if (r && r->status == 200) {
          events += 1000;
          ++requests;
        } else if (r && r->status == 429) {
          ++refused;
        } else {
          ++failed;
        }
      }
      std::lock_guard lock(latency_mutex);
      ingest_latency_ms.insert(ingest_latency_ms.end(), local.begin(), local.end());
    });
  }
  std::this_thread::sleep_for(std::chrono::seconds(seconds));
  stop = true;
  for (auto& t : ingesters) t.join();
  const double ingest_seconds = std::chrono::duration<double>(Steady::now() - started).count();
  scorer.join();
  nlohmann::json ingest = {{"phase", "ingest"}, {"clients", clients}, {"seconds", ingest_seconds},
                           {"events_acknowledged", events.load()}, {"requests", requests.load()},
                           {"events_per_second", static_cast<double>(events) / ingest_seconds},
                           {"refused_429", refused.load()}, {"failed", failed.load()},
                           {"scoring_runs_completed_meanwhile", score_runs.load()},
                           {"request_ms_p50", Percentile(ingest_latency_ms, 0.5)},
                           {"request_ms_p99", Percentile(ingest_latency_ms, 0.99)}};
  std::printf("%s\n", ingest.dump().c_str());

  // Phase 2: paced real-time scoring.
  std::vector<double> latency_ms, handler_ms;  // handler: ScoreUser inside the server ("seconds")
  std::atomic<uint64_t> ok{0}, errors{0};
  stop = false;
  std::vector<std::thread> scorers;
  const double per_thread_interval = static_cast<double>(clients) / rate;  // seconds between requests
  started = Steady::now();
  for (int t = 0; t < clients; ++t) {
    scorers.emplace_back([&, t] {
      httplib::Client c("127.0.0.1", srv->port());
      c.set_bearer_token_auth(kAdminKey.c_str());
      std::mt19937 rng(t);
      std::vector<double> local, local_handler;
      auto next = Steady::now();
      while (!stop) {
        next += std::chrono::duration_cast<Steady::duration>(std::chrono::duration<double>(per_thread_interval));
        std::this_thread::sleep_until(next);
        const std::string& user = user_ids[rng() % user_ids.size()];
        auto sent = Steady::now();
        auto r = c.Get("/api/v1/predictions/purchase_7d/users/" + user + "/score");
        local.push_back(std::chrono::duration<double, std::milli>(Steady::now() - sent).count());
        if (r && r->status == 200) {
          ++ok;
          local_handler.push_back(1000 * nlohmann::json::parse(r->body).value("seconds", 0.0));
        } else {
          ++errors;
        }
      }
      std::lock_guard lock(latency_mutex);
      latency_ms.insert(latency_ms.end(), local.begin(), local.end());
      handler_ms.insert(handler_ms.end(), local_handler.begin(), local_handler.end());
    });
  }
  std::this_thread::sleep_for(std::chrono::seconds(seconds));
  stop = true;
  for (auto& t : scorers) t.join();
  const double score_seconds = std::chrono::duration<double>(Steady::now() - started).count();
  nlohmann::json realtime = {{"phase", "realtime_score"}, {"clients", clients}, {"target_rate", rate},
                             {"seconds", score_seconds}, {"ok", ok.load()}, {"errors", errors.load()},
                             {"requests_per_second", static_cast<double>(ok) / score_seconds},
                             {"ms_p50", Percentile(latency_ms, 0.5)}, {"ms_p90", Percentile(latency_ms, 0.9)},
                             {"ms_p99", Percentile(latency_ms, 0.99)}, {"ms_max", Percentile(latency_ms, 1.0)},
                             {"score_user_ms_p50", Percentile(handler_ms, 0.5)},
                             {"score_user_ms_p99", Percentile(handler_ms, 0.99)},
                             {"cohort_users", user_ids.size()}};
  std::printf("%s\n", realtime.dump().c_str());
  (void)srv->Stop();
  srv.reset();
  if (temporary) std::filesystem::remove_all(dir);
  return 0;
}
