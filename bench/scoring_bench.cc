// scoring_bench: the scoring paths of issue 5 in one process, on an ingested store with a
// trained prediction (not a unit test):
//   1. a full run (cohort, features in blocks, model + calibration, write-back, no drift),
//      then the same again (the daily steady state: properties exist, pages are warm),
//   2. an hourly run (--active-within, default 1h) with write-back,
//   3. real-time ScoreUser of --requests users picked evenly from the full run: latency
//      percentiles on one thread, then requests per second on --threads threads.
// Each stage prints wall and CPU seconds (user + system of the whole process) and the run
// record's stage times. The store is opened once; opening it is not timed.
//
//   scoring_bench --data DIR --prediction NAME [--as-of T] [--active-within-ms MS]
//                 [--requests N] [--threads N] [--no-write-back] [--check-native]
//
// --check-native (before the runs): the full run's feature matrix scored by the native tree
// walk and by XGBoost itself; the bench fails unless every margin is equal.
#include <sys/resource.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <thread>

#include "common/memory.h"
#include "common/time.h"
#include "scoring/score_run.h"
#include "scoring/scoring.h"
#include "store/event_store.h"
#include "query/query_engine.h"

namespace {

using namespace sibyl;

double CpuSeconds() {
  rusage usage{};
  getrusage(RUSAGE_SELF, &usage);
  return usage.ru_utime.tv_sec + usage.ru_stime.tv_sec + (usage.ru_utime.tv_usec + usage.ru_stime.tv_usec) / 1e6;
}

double PeakRssMb() {
  rusage usage{};
  getrusage(RUSAGE_SELF, &usage);
  return usage.ru_maxrss / 1024.0;
}

template <typename T>
T OrDie(Result<T> r) {
  if (!r.ok()) {
    std::fprintf(stderr, "scoring_bench: %s\n", r.status().ToString().c_str());
    std::exit(1);
  }
  return std::move(r).value();
}

struct Timer {
  double wall_start = 0, cpu_start = CpuSeconds();
  std::chrono::steady_clock::time_point start = std::chrono::steady_clock::now();
  void Print(const char* what) const {
    double wall = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    std::printf("%-34s wall %8.3f s   cpu %8.3f s\n", what, wall, CpuSeconds() - cpu_start);
  }
};

}  // namespace

int main(int argc, char** argv) {
  sibyl::UseSibylHeapSettings();  // as the sibyl binary
  CLI::App app{"scoring_bench: full, hourly and real-time scoring on one store"};
  std::string data_dir, name, as_of;
  int64_t active_within_ms = kMsPerHour;
  size_t requests = 2000;
  int threads = 2;
  bool no_write_back = false, check_native = false;
  size_t block_users = scoring::ScoreRequest{}.users_per_block;
  app.add_option("--data", data_dir, "store directory with a trained prediction")->required();
  app.add_option("--prediction", name, "prediction name")->required();
  app.add_option("--as-of", as_of, "scoring cutoff (default: the store's)");
  app.add_option("--active-within-ms", active_within_ms, "window of the hourly run")->capture_default_str();
  app.add_option("--requests", requests, "real-time requests")->capture_default_str();
  app.add_option("--threads", threads, "threads for the real-time throughput run")->capture_default_str();
  app.add_option("--block-users", block_users, "users per feature block")->capture_default_str();
  app.add_flag("--no-write-back", no_write_back, "score without writing (the hourly run then needs an earlier full run on record)");
  app.add_flag("--check-native", check_native, "compare the native tree walk with XGBoost on every row first");
  CLI11_PARSE(app, argc, argv);

  auto store = OrDie(EventStore::Open(StoreOptions{.data_dir = data_dir, .read_only = no_write_back}));
  pipeline::PredictionRegistry registry(data_dir);
  std::optional<int64_t> cutoff;
  if (!as_of.empty()) cutoff = FloorHour(OrDie(ParseTime(as_of)));
  std::printf("store: %llu events, %zu actors; peak RSS after open %.0f MB\n",
              static_cast<unsigned long long>(store->Snapshot()->event_count()), store->Snapshot()->actors().size(),
              PeakRssMb());

  {
    scoring::ScoringModel model = OrDie(scoring::LoadScoringModel(registry, name));
    const auto& predictor = model.sparse_predictor;
    std::printf("tree walk: %s\n", !predictor ? "none (linear model)"
                                    : predictor->native() ? "native"
                                                          : ("XGBoost: " + predictor->why_not_native()).c_str());
    if (check_native && predictor) {
      auto reader = store->Snapshot();
      const int64_t at = cutoff ? *cutoff : scoring::DefaultScoringCutoff(*reader);
      auto engine = MakeEmbeddedQueryEngine(reader);
      UserSet users = OrDie(engine->Cohort(model.cohort, at));
      auto matrix = OrDie(engine->SparseFeatures(model.spec, at, users));
      size_t differ = 0;
      Timer native, xgb;
      auto mine = OrDie(predictor->Margins(matrix, 0, matrix.rows()));
      native.Print("check: native margins");
      Timer t;
      auto theirs = OrDie(predictor->XgboostMargins(matrix, 0, matrix.rows()));
      t.Print("check: XGBoost margins");
      for (size_t r = 0; r < matrix.rows(); ++r) differ += !(mine[r] == theirs[r]);
      std::printf("check: %zu rows, %zu margins differ\n", matrix.rows(), differ);
      if (differ != 0) return 1;
    }
  }
  scoring::ScoreRequest full;
  full.as_of_ms = cutoff;
  full.drift = false;
  full.write_back = !no_write_back;
  full.users_per_block = block_users;
  Timer t1;
  auto run = OrDie(scoring::RunScoring(registry, *store, name, full));
  t1.Print("full run");
  std::printf("  %zu users; stages (wall) %s\n  stages (cpu) %s\n  peak RSS after each stage (MB) %s\n",
              run.scores.size(), run.record["seconds"].dump().c_str(), run.record["cpu_seconds"].dump().c_str(),
              run.record["peak_rss_mb"].dump().c_str());

  // The daily steady state: the same users scored again in the same process, whose
  // written properties now exist (values are overwritten, no map grows) and whose heap
  // keeps the pages the first run faulted in.
  {
    Timer again;
    auto second = OrDie(scoring::RunScoring(registry, *store, name, full));
    again.Print("full run (again)");
    std::printf("  %zu users; stages (wall) %s\n  peak RSS after each stage (MB) %s\n", second.scores.size(),
                second.record["seconds"].dump().c_str(), second.record["peak_rss_mb"].dump().c_str());
  }

  // The first hourly run of a process decodes the property and session columns of the
  // parts it gathers from; a resident scheduler keeps them, so the second run is its
  // steady state.
  scoring::ScoreRequest hourly = full;
  hourly.active_within_ms = active_within_ms;
  for (const char* what : {"hourly run (first in process)", "hourly run (again)"}) {
    Timer t2;
    auto active = OrDie(scoring::RunScoring(registry, *store, name, hourly));
    t2.Print(what);
    std::printf("  %zu users active within %lld ms; stages (wall) %s\n  stages (cpu) %s\n", active.scores.size(),
                static_cast<long long>(active_within_ms), active.record["seconds"].dump().c_str(),
                active.record["cpu_seconds"].dump().c_str());
  }

  scoring::ScoringModel model = OrDie(scoring::LoadScoringModel(registry, name));
  auto quantiles = run.record.contains("quantiles") ? run.record["quantiles"].get<std::vector<double>>()
                                                    : std::vector<double>{};
  const int64_t at = run.record["cutoff_ms"].get<int64_t>();
  auto reader = store->Snapshot();
  const std::vector<std::string> user_ids = MakeEmbeddedQueryEngine(reader)->UserIds(UserSet{at, run.actors});
  std::vector<std::string> users;
  size_t stride = std::max<size_t>(1, user_ids.size() / std::max<size_t>(1, requests));
  for (size_t i = 0; i < user_ids.size() && users.size() < requests; i += stride) users.push_back(user_ids[i]);
  {
    Timer warm;
    OrDie(scoring::ScoreUser(*reader, model, users.at(0), at, quantiles));
    warm.Print("real-time: first request (warm-up)");
  }
  std::vector<double> latency;
  size_t mismatches = 0;
  std::vector<size_t> index_of(users.size());
  Timer t3;
  for (size_t i = 0; i < users.size(); ++i) {
    auto start = std::chrono::steady_clock::now();
    auto one = OrDie(scoring::ScoreUser(*reader, model, users[i], at, quantiles));
    latency.push_back(std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count());
    if (one.score != run.scores[i * stride]) ++mismatches;
  }
  t3.Print("real-time: one thread");
  std::sort(latency.begin(), latency.end());
  auto pct = [&](double q) { return 1e3 * latency[static_cast<size_t>(q * (latency.size() - 1))]; };
  std::printf("  %zu requests: p50 %.3f ms, p90 %.3f ms, p99 %.3f ms, max %.3f ms; %zu differ from the full run\n",
              latency.size(), pct(0.5), pct(0.9), pct(0.99), pct(1.0), mismatches);

  // Throughput: every thread takes the next request; each request takes a fresh snapshot,
  // as the server does.
  std::atomic<size_t> next{0};
  std::vector<std::vector<double>> per_thread(threads);
  Timer t4;
  std::vector<std::thread> pool;
  for (int t = 0; t < threads; ++t)
    pool.emplace_back([&, t] {
      for (size_t i; (i = next.fetch_add(1)) < users.size();) {
        auto start = std::chrono::steady_clock::now();
        auto snapshot = store->Snapshot();
        OrDie(scoring::ScoreUser(*snapshot, model, users[i], at, quantiles));
        per_thread[t].push_back(std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count());
      }
    });
  for (auto& th : pool) th.join();
  double wall = std::chrono::duration<double>(std::chrono::steady_clock::now() - t4.start).count();
  t4.Print("real-time: threads, fresh snapshots");
  latency.clear();
  for (auto& v : per_thread) latency.insert(latency.end(), v.begin(), v.end());
  std::sort(latency.begin(), latency.end());
  std::printf("  %d threads: %.0f requests/s; p50 %.3f ms, p99 %.3f ms, max %.3f ms\n", threads,
              users.size() / wall, pct(0.5), pct(0.99), pct(1.0));
  std::printf("peak RSS %.0f MB\n", PeakRssMb());
  return 0;
}
