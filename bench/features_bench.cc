// features_bench: times the three queries of src/query on a large store (not a unit test).
//
//   features_bench --data DIR                      use an existing store (e.g. after `sibyl ingest`)
//   features_bench --data DIR --users 1000000 --events 50000000
//                                                  synthesise that many events into DIR first
//                                                  (only when DIR holds no store yet)
// Reports: taxonomy, top-50 8-week counts and the whole matrix (sparse, then dense), cohort
// + labels for every user, peak RSS and the store's size. Each query runs --repeat times; the best and the first time are printed.
#include <sys/resource.h>

#include <CLI/CLI.hpp>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <functional>
#include <thread>

#include "common/memory.h"
#include "common/time.h"
#include "query/query_engine.h"
#include "store/event_store.h"

namespace sibyl {
namespace {

double PeakRssMb() {
  rusage usage{};
  getrusage(RUSAGE_SELF, &usage);
  return usage.ru_maxrss / 1024.0;
}

double CpuSeconds() {
  rusage usage{};
  getrusage(RUSAGE_SELF, &usage);
  return usage.ru_utime.tv_sec + usage.ru_stime.tv_sec + (usage.ru_utime.tv_usec + usage.ru_stime.tv_usec) / 1e6;
}

double DirectoryMb(const std::string& dir) {
  uint64_t bytes = 0;
  for (const auto& entry : std::filesystem::recursive_directory_iterator(dir))
    if (entry.is_regular_file()) bytes += entry.file_size();
  return bytes / 1e6;
}

// Deterministic synthetic events: Zipf-ish event types, a numeric and a string property,
// sessions, per-user properties, a share of anonymous devices and linked devices.
Status Synthesise(EventStore& store, uint64_t users, uint64_t events, int64_t end_ms, int days) {
  uint64_t state = 0x9E3779B97F4A7C15ull;
  auto next = [&] {
    state ^= state << 13;
    state ^= state >> 7;
    state ^= state << 17;
    return state;
  };
  constexpr int kTypes = 80;
  std::vector<std::string> type_names, categories, countries;
  for (int t = 0; t < kTypes; ++t) type_names.push_back(fmt::format("Event {:02}", t));
  for (int c = 0; c < 30; ++c) categories.push_back(fmt::format("category-{}", c));
  for (int c = 0; c < 40; ++c) countries.push_back(fmt::format("C{}", c));
  int64_t span = static_cast<int64_t>(days) * kMsPerDay;
  uint64_t per_user = std::max<uint64_t>(1, events / users);
  const uint64_t kBatchUsers = std::max<uint64_t>(1, 2'000'000 / per_user);
  uint64_t written = 0;
  for (uint64_t first = 0; first < users; first += kBatchUsers) {
    EventBatch batch;
    for (uint64_t u = first; u < std::min(users, first + kBatchUsers); ++u) {
      bool anonymous = u % 10 == 0;
      std::string_view user = anonymous ? std::string_view() : batch.Intern(fmt::format("user-{:07}", u));
      std::string_view device = batch.Intern(fmt::format("device-{:07}", u));
      int64_t user_start = end_ms - span + static_cast<int64_t>(next() % (span / 2));
      uint64_t n = per_user / 2 + next() % (per_user + 1);
      std::vector<int64_t> times(n);
      for (auto& t : times) t = user_start + static_cast<int64_t>(next() % (end_ms - user_start));
      std::sort(times.begin(), times.end());
      int64_t session = times.empty() ? 0 : times[0];
      for (size_t i = 0; i < n; ++i) {
        if (i > 0 && times[i] - times[i - 1] > 30 * 60 * 1000) session = times[i];
        ParsedEvent e;
        e.user_id = user;
        // Users log in on their device now and then: identity links.
        e.device_id = anonymous || next() % 8 == 0 ? device : std::string_view();
        // Zipf-like: the minimum of a few uniforms favours low type numbers.
        uint64_t t = std::min({next() % kTypes, next() % kTypes, next() % kTypes});
        e.event_type = batch.Intern(type_names[t]);
        e.time_ms = times[i];
        e.has_time = true;
        e.session_id = session;
        e.properties_begin = static_cast<uint32_t>(batch.properties.size());
        if (t < 3) batch.properties.push_back({batch.Intern("price"), Value::Number(double(next() % 10000) / 100)});
        if (t % 3 == 0) batch.properties.push_back({batch.Intern("category"), Value::String(batch.Intern(categories[next() % 30]))});
        e.properties_end = static_cast<uint32_t>(batch.properties.size());
        e.user_updates_begin = static_cast<uint32_t>(batch.user_updates.size());
        if (i == 0 && !anonymous) {
          batch.user_updates.push_back({UserPropertyOp::kSet, batch.Intern("country"), Value::String(batch.Intern(countries[next() % 40]))});
          batch.user_updates.push_back({UserPropertyOp::kSet, batch.Intern("plan"), Value::String(batch.Intern(next() % 4 ? "free" : "pro"))});
        }
        e.user_updates_end = static_cast<uint32_t>(batch.user_updates.size());
        batch.events.push_back(e);
      }
    }
    written += batch.events.size();
    RETURN_IF_ERROR(store.Append(batch).status());
    std::fprintf(stderr, "\rsynthesised %llu events", static_cast<unsigned long long>(written));
  }
  std::fprintf(stderr, "\n");
  return store.Checkpoint();
}

std::string only_filter;  // --only: run just the queries whose label contains this

void Time(const char* what, int repeat, const std::function<void()>& run) {
  if (!only_filter.empty() && std::string_view(what).find(only_filter) == std::string_view::npos &&
      std::string_view(what).find("everyone") == std::string_view::npos &&
      std::string_view(what) != "taxonomy")
    return;
  // CPU seconds (user + system, both threads) beside the wall time: on a shared machine
  // the wall time moves with everyone else's load, the CPU time much less.
  double best = 1e9, first = 0, best_cpu = 0;
  for (int i = 0; i < repeat; ++i) {
    double cpu_start = CpuSeconds();
    auto start = std::chrono::steady_clock::now();
    run();
    double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    if (i == 0) first = s;
    if (s < best) best_cpu = CpuSeconds() - cpu_start;
    best = std::min(best, s);
  }
  std::printf("%-48s best %7.3f s   first %7.3f s   (cpu %.3f s)\n", what, best, first, best_cpu);
}

template <typename T>
T OrDie(Result<T> r) {
  if (!r.ok()) {
    std::fprintf(stderr, "features_bench: %s\n", r.status().ToString().c_str());
    std::exit(1);
  }
  return std::move(r).value();
}

}  // namespace
}  // namespace sibyl

int main(int argc, char** argv) {
  sibyl::UseSibylHeapSettings();  // as the sibyl binary
  using namespace sibyl;
  CLI::App app{"features_bench: time the feature, label and cohort queries"};
  std::string data_dir = "bench-features-data", as_of;
  uint64_t users = 1'000'000, events = 50'000'000;
  int days = 84, repeat = 3;
  app.add_option("--data", data_dir, "store directory (synthesised into when empty)")->capture_default_str();
  app.add_option("--users", users, "users to synthesise")->capture_default_str();
  app.add_option("--events", events, "events to synthesise")->capture_default_str();
  app.add_option("--days", days, "days the synthetic events span")->capture_default_str();
  app.add_option("--as-of", as_of, "cutoff (default: the hour after the last event minus 7 days)");
  app.add_option("--repeat", repeat, "runs of each query")->capture_default_str();
  bool serial = false;
  app.add_flag("--serial", serial, "scan on one thread (to see what the second core buys)");
  app.add_option("--only", only_filter, "run only the queries whose label contains this text");
  CLI11_PARSE(app, argc, argv);

  bool fresh = !std::filesystem::exists(data_dir + "/MANIFEST") && !std::filesystem::exists(data_dir + "/wal");
  const int64_t kEnd = 1'717'200'000'000;  // 2024-06-01
  {
    StoreOptions options{.data_dir = data_dir};
    if (fresh) {
      auto store = OrDie(EventStore::Open(options));
      auto start = std::chrono::steady_clock::now();
      if (Status s = Synthesise(*store, users, events, kEnd, days); !s.ok()) {
        std::fprintf(stderr, "features_bench: %s\n", s.ToString().c_str());
        return 1;
      }
      std::printf("synthesised into %s in %.1f s\n", data_dir.c_str(),
                  std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count());
    }
  }
  StoreOptions options{.data_dir = data_dir, .read_only = true};
  auto store = OrDie(EventStore::Open(options));
  auto reader = store->Snapshot();
  double store_rss = PeakRssMb();
  int64_t cutoff = as_of.empty() ? FloorHour(reader->max_time_ms()) + kMsPerHour - 7 * kMsPerDay
                                 : FloorHour(OrDie(ParseTime(as_of)));
  std::printf("store: %llu events, %zu actors; cutoff %s; 2 scan threads max (hardware: %u)\n",
              static_cast<unsigned long long>(reader->event_count()), reader->actors().size(),
              FormatTime(cutoff).c_str(), std::thread::hardware_concurrency());
  auto engine = MakeEmbeddedQueryEngine(reader, /*parallel=*/!serial);

  UserSet everyone;
  Time("cohort: everyone seen before T", repeat, [&] { everyone = OrDie(engine->Cohort(CohortExpr::Everyone(), cutoff)); });
  std::printf("  %zu users\n", everyone.actors.size());
  Taxonomy taxonomy;
  Time("taxonomy", repeat, [&] { taxonomy = OrDie(engine->BuildTaxonomy(cutoff, TaxonomyOptions{})); });

  FeatureSpec counts;
  counts.taxonomy.event_types = taxonomy.event_types;
  counts.families = {.event_counts = true, .event_properties = false, .user_properties = false,
                     .recency = false, .sessions = false};
  FeatureSpec full;
  full.taxonomy = taxonomy;
  // Sparse first: peak RSS after them is the large-cohort path's peak (the dense runs
  // after them add a dense matrix each).
  uint64_t cells = 0;
  double sparse_mb = 0;
  size_t cols = 0;
  Time("top-50 8-week counts, every user (sparse)", repeat, [&] {
    SparseFeatureMatrix m = OrDie(engine->SparseFeatures(counts, cutoff, everyone));
    cols = m.cols();
    cells = m.stored_cells();
    sparse_mb = m.MemoryBytes() / 1e6;
  });
  std::printf("  %zu x %zu, %.1f stored cells a row, %.0f MB\n", everyone.actors.size(), cols,
              double(cells) / std::max<size_t>(1, everyone.actors.size()), sparse_mb);
  Time("whole feature matrix, every user (sparse)", repeat, [&] {
    SparseFeatureMatrix m = OrDie(engine->SparseFeatures(full, cutoff, everyone));
    cols = m.cols();
    cells = m.stored_cells();
    sparse_mb = m.MemoryBytes() / 1e6;
  });
  std::printf("  %zu x %zu, %.1f stored cells a row, %.0f MB\n", everyone.actors.size(), cols,
              double(cells) / std::max<size_t>(1, everyone.actors.size()), sparse_mb);
  // The reader's share of the whole matrix: the same block scan with a visitor that does
  // nothing (decoding the property and session columns, cutting blocks).
  {
    ScanSpec spec;
    spec.end_ms = cutoff;
    spec.with_sessions = true;
    spec.sessions_begin_ms = cutoff - 8 * kMsPerWeek;
    spec.properties_begin_ms = cutoff - 4 * kMsPerWeek;
    for (const EventPropertySpec& p : taxonomy.event_properties)
      if (auto key = reader->property_keys().Find(p.name)) spec.property_keys.push_back(*key);
    Time("reader alone: block scan, whole-matrix columns", repeat, [&] {
      OrDie(reader->ScanActorBlocks(spec, 4096, [](const EventReader::ActorBlock&) { return Status::Ok(); },
                                    !serial).ok() ? Result<int>(0) : Result<int>(Internal("scan failed")));
    });
    ScanSpec core;
    core.begin_ms = cutoff - 8 * kMsPerWeek;
    core.end_ms = cutoff;
    Time("reader alone: block scan, 8-week core columns", repeat, [&] {
      OrDie(reader->ScanActorBlocks(core, 4096, [](const EventReader::ActorBlock&) { return Status::Ok(); },
                                    !serial).ok() ? Result<int>(0) : Result<int>(Internal("scan failed")));
    });
  }
  double sparse_peak = PeakRssMb();
  std::printf("peak RSS after the sparse runs %.0f MB\n", sparse_peak);

  Time("top-50 8-week counts, every user (dense)", repeat, [&] {
    FeatureMatrix m = OrDie(engine->Features(counts, cutoff, everyone));
    cols = m.cols();
  });
  std::printf("  %zu x %zu\n", everyone.actors.size(), cols);
  double matrix_mb = 0;
  Time("whole feature matrix, every user (dense)", repeat, [&] {
    FeatureMatrix m = OrDie(engine->Features(full, cutoff, everyone));
    cols = m.cols();
    matrix_mb = m.rows() * m.cols() * 4.0 / 1e6;
  });
  std::printf("  %zu x %zu (%.0f MB dense)\n", everyone.actors.size(), cols, matrix_mb);

  CohortExpr active = OrDie(ParseCohortText(R"({"active_within_days": 30})"));
  LabelSpec label{.kind = LabelKind::kPropensity, .event = taxonomy.event_types.at(1), .horizon_ms = 7 * kMsPerDay};
  size_t members = 0;
  Time("cohort (active 30d) + labels (7d), all users", repeat, [&] {
    UserSet cohort = OrDie(engine->Cohort(active, cutoff));
    std::vector<float> y = OrDie(engine->Labels(label, cutoff, cohort));
    members = y.size();
  });
  std::printf("  %zu cohort users\n", members);
  Time("labels (7d) alone, every user", repeat, [&] { OrDie(engine->Labels(label, cutoff, everyone)); });
  // The outcome family of a filtered outcome (docs/FEATURES.md): "Event 00 where price >=
  // 50" (about half of type 0's events pass), without and with the unfiltered columns,
  // whose cost is a second scan of the event's occurrences.
  for (bool unfiltered : {false, true}) {
    FeatureSpec outcome;
    outcome.families = {.event_counts = false, .event_properties = false, .user_properties = false,
                        .recency = false, .sessions = false};
    outcome.outcome.enabled = true;
    outcome.outcome.event = "Event 00";  // Synthesise names types "Event NN"; 00 is the commonest
    outcome.outcome.where = {OrDie(ParsePropertyFilter(nlohmann::json("price >= 50")))};
    outcome.outcome.window_days = {7, 30, 90};
    outcome.outcome.horizon_days = 7;
    outcome.outcome.unfiltered = unfiltered;
    Time(unfiltered ? "outcome family, filtered outcome + unfiltered columns, every user (sparse)"
                    : "outcome family, filtered outcome, every user (sparse)",
         repeat, [&] {
           SparseFeatureMatrix m = OrDie(engine->SparseFeatures(outcome, cutoff, everyone));
           cols = m.cols();
         });
    std::printf("  %zu x %zu\n", everyone.actors.size(), cols);
  }
  std::printf("peak RSS %.0f MB (store opened: %.0f MB, %.0f MB on disk; dense matrix %.0f MB)\n",
              PeakRssMb(), store_rss, DirectoryMb(data_dir), matrix_mb);
  return 0;
}
