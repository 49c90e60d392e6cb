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
#include "ingest/file_source.h"
#include "server/server.h"
#include "sim/generator.h"
#include "store/event_store.h"

namespace {

using namespace sibyl;
using Steady = std::chrono::steady_clock;
const std::string kAdmin = "bench-admin-key-0123";
const std::string kIngest = "bench-ingest-key-0123";

Status Generate(const std::string& dir, uint64_t users, int days) {
  sim::SimOptions sim;
  sim.users = users;
  sim.days = days;
  sim.seed = 7;
  sim.out_path = dir + "/events.ndjson";
  RETURN_IF_ERROR(sim::Generate(sim).status());
  ASSIGN_OR_RETURN(auto store, EventStore::Open(StoreOptions{.data_dir = dir + "/data"}));
  {
    ASSIGN_OR_RETURN(auto txn, store->Begin());
    RETURN_IF_ERROR(ParseFile(sim.out_path, FileParseOptions{}, [&](EventBatch&& b, std::vector<IngestError>&&) {
                      return txn->Add(b).status();
                    }).status());
    RETURN_IF_ERROR(txn->Commit());
  }
  return store->Checkpoint();
}

std::string Body(int thread, int64_t request, int64_t base_time) {
  std::string body = "{\"api_key\":\"" + kIngest + "\",\"events\":[";
  for (int i = 0; i < 1000; ++i) {
    const int64_t n = request * 1000 + i;
    if (i) body += ',';
    body += "{\"user_id\":\"bench-" + std::to_string(thread) + "-" + std::to_string(n % 5000) +
            "\",\"event_type\":\"Bench " + std::to_string(n % 20) + "\",\"time\":" + std::to_string(base_time + n) +
            ",\"insert_id\":\"b" + std::to_string(thread) + "-" + std::to_string(n) +
            "\",\"event_properties\":{\"price\":" + std::to_string(n % 97) + ",\"plan\":\"p" +
            std::to_string(n % 3) + "\"}}";
  }
  return body + "]}";
}

nlohmann::json GetJson(httplib::Client& c, const std::string& path) {
  auto r = c.Get(path);
  if (!r) return nullptr;
  auto j = nlohmann::json::parse(r->body, nullptr, false);
  return j.is_discarded() ? nlohmann::json() : j;
}

bool WaitRun(httplib::Client& c, uint64_t id, int seconds) {
  for (int i = 0; i < seconds * 20; ++i) {
    auto run = GetJson(c, "/api/v1/runs/" + std::to_string(id));
    std::string state = run.is_object() ? run.value("state", "") : "";
    if (state == "succeeded") return true;
    if (state == "failed" || state == "aborted") {
      std::fprintf(stderr, "run %lu %s: %s\n", static_cast<unsigned long>(id), state.c_str(), run.value("error", "").c_str());
      return false;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  return false;
}

double Percentile(std::vector<double> v, double q) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  return v[std::min(v.size() - 1, static_cast<size_t>(q * static_cast<double>(v.size())))];
}

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
  if (Status st = Generate(dir, users, days); !st.ok()) {
    std::fprintf(stderr, "generate: %s\n", st.ToString().c_str());
    return 1;
  }
  server::ServerOptions options;
  options.data_dir = dir + "/data";
  options.port = 0;
  options.threads = server_threads;
  options.keys = {kAdmin, {kIngest}};
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
  admin.set_bearer_token_auth(kAdmin.c_str());
  admin.set_read_timeout(300);
  auto created = admin.Post("/api/v1/predictions", R"({"name":"purchase_7d","kind":"propensity",
      "outcome":{"event":"Purchase"},"horizon_days":7,"cohort":{"all":[{"active_within_days":30}]}})", "application/json");
  if (!created || created->status != 201) {
    std::fprintf(stderr, "create failed\n");
    return 1;
  }
  // The first train and full score run come from the scheduler; wait for both.
  uint64_t score_run = 0;
  for (int i = 0; i < 6000 && score_run == 0; ++i) {
    auto runs = GetJson(admin, "/api/v1/runs");
    for (const auto& r : runs["runs"])
      if (r["kind"] == "score_full" && r["state"] == "succeeded") score_run = r["id"].get<uint64_t>();
    if (!score_run) std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  if (!score_run) {
    std::fprintf(stderr, "no successful scoring run\n");
    return 1;
  }
  auto cohort = GetJson(admin, "/api/v1/predictions/purchase_7d/cohort?limit=100000");
  std::vector<std::string> user_ids;
  for (const auto& u : cohort["users"]) user_ids.push_back(u["user_id"]);
  const int64_t base_time = GetJson(admin, "/api/v1/runs/" + std::to_string(score_run))["detail"]["cutoff_ms"].get<int64_t>();

  // Phase 1: ingest while scoring runs go on.
  std::atomic<bool> stop{false};
  std::atomic<uint64_t> events{0}, requests{0}, refused{0}, failed{0};
  std::atomic<int> score_runs{0};
  std::vector<double> ingest_latency_ms;
  std::mutex latency_mutex;
  std::thread scorer([&] {
    httplib::Client c("127.0.0.1", srv->port());
    c.set_bearer_token_auth(kAdmin.c_str());
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
        std::string body = Body(t, i, base_time - 3'600'000);
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
  std::vector<double> latency_ms;
  std::atomic<uint64_t> ok{0}, errors{0};
  stop = false;
  std::vector<std::thread> scorers;
  const double per_thread_interval = static_cast<double>(clients) / rate;  // seconds between requests
  started = Steady::now();
  for (int t = 0; t < clients; ++t) {
    scorers.emplace_back([&, t] {
      httplib::Client c("127.0.0.1", srv->port());
      c.set_bearer_token_auth(kAdmin.c_str());
      std::mt19937 rng(t);
      std::vector<double> local;
      auto next = Steady::now();
      while (!stop) {
        next += std::chrono::duration_cast<Steady::duration>(std::chrono::duration<double>(per_thread_interval));
        std::this_thread::sleep_until(next);
        const std::string& user = user_ids[rng() % user_ids.size()];
        auto sent = Steady::now();
        auto r = c.Get("/api/v1/predictions/purchase_7d/users/" + user + "/score");
        local.push_back(std::chrono::duration<double, std::milli>(Steady::now() - sent).count());
        if (r && r->status == 200) ++ok;
        else ++errors;
      }
      std::lock_guard lock(latency_mutex);
      latency_ms.insert(latency_ms.end(), local.begin(), local.end());
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
                             {"cohort_users", user_ids.size()}};
  std::printf("%s\n", realtime.dump().c_str());
  (void)srv->Stop();
  srv.reset();
  if (temporary) std::filesystem::remove_all(dir);
  return 0;
}
