// Issue 18's abuse benchmark: one `sibyl serve` child process on loopback, with a trained
// and scored prediction (serve_fixture.h), takes ingest at full speed (C keep-alive
// clients posting Amplitude /batch bodies of 1,000 events) while /healthz (a fresh
// connection each, as a load balancer checks) and the real-time score endpoint
// (keep-alive) are probed at steady rates. After an unmeasured warm-up, phases, each
// measured for S seconds:
//   base    ingest and probes alone
//   attack  the same, while 1,000 idle connections, 50 slowloris connections (headers or
//           body trickled) and gzip bombs (1 GiB of zeros, 1.04 MB) at the ingest endpoints
//           hit the server
//   base    again, so the attack's throughput is compared with the phases around it (the
//           faster of the two: the machine's load drifts; docs/BENCHMARKS.md)
//   bombs   the bombs alone, on a server otherwise idle: the RSS growth they cause
// Printed per phase: latency p50/p99 of /healthz and real-time scores, ingest events/s,
// answers by status, the server's RSS (VmRSS at the start, VmHWM peak) and its refusal
// counters; then the targets, met or not. The server runs as a child so that its
// memory and its crash are its own.
//
//   abuse_bench [--users 3000] [--days 70] [--seconds 10] [--warmup 45] [--clients 4] [--score-rate 200]
//               [--healthz-rate 20] [--idle 1000] [--slowloris 50] [--bombs-per-second 4]
//               [--max-connections 0 (the default cap)] [--server-arg=--flag=value ...] [--json]
#include <httplib.h>
#include <signal.h>
#include <sys/resource.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <map>
#include <mutex>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>

#include "abuse_attackers.h"
#include "serve_fixture.h"
#include "server_process.h"

namespace {

using namespace sibyl;
using namespace sibyl::bench;
using Steady = std::chrono::steady_clock;
using Json = nlohmann::json;

// The human report: stdout, or stderr when stdout carries --json.
FILE* report_out = stdout;

double Ms(Steady::duration d) { return std::chrono::duration<double, std::milli>(d).count(); }
double Mb(uint64_t bytes) { return static_cast<double>(bytes) / (1 << 20); }

// Requests of one kind, by phase: latencies, answers by status ("200", "429", "no answer")
// and the events acknowledged. Samples are filed under the phase current when they end;
// between phases (-1) nothing is kept.
class Recorder {
 public:
  struct Series {
    std::vector<double> ms;
    std::map<std::string, uint64_t> answers;
    uint64_t events = 0;
  };
  void Add(int phase, double ms, const httplib::Result& r, uint64_t events_if_ok) {
    if (phase < 0) return;
    std::lock_guard lock(mutex_);
    Series& s = series_[phase];
    s.ms.push_back(ms);
    ++s.answers[r ? std::to_string(r->status) : "no answer (" + httplib::to_string(r.error()) + ")"];
    if (r && r->status == 200) s.events += events_if_ok;
  }
  Series Get(int phase) {
    std::lock_guard lock(mutex_);
    return series_[phase];
  }

 private:
  std::mutex mutex_;
  std::map<int, Series> series_;
};

// The legitimate clients, running from Start to Stop; what they see is filed by `phase`.
struct Load {
  int port = 0;
  int clients = 4, score_clients = 2;
  double score_rate = 200, healthz_rate = 20;
  int64_t base_time = 0;
  const std::vector<std::string>* users = nullptr;
  std::string prediction;

  std::atomic<int> phase{-1};
  std::atomic<bool> stop{false};
  Recorder ingest, healthz, score;
  std::vector<std::thread> threads;

  void Start() {
    for (int t = 0; t < clients; ++t) threads.emplace_back([this, t] { Ingest(t); });
    for (int t = 0; t < score_clients; ++t)
      threads.emplace_back([this, t] { Paced(score_rate / score_clients, t, /*healthz=*/false); });
    threads.emplace_back([this] { Paced(healthz_rate, 0, /*healthz=*/true); });
  }
  void Stop() {
    stop = true;
    for (auto& t : threads) t.join();
    threads.clear();
  }

  void Ingest(int t) {
    httplib::Client c("127.0.0.1", port);
    c.set_keep_alive(true);
    c.set_read_timeout(60);
    c.set_write_timeout(60);
    for (int64_t i = 0; !stop; ++i) {
      const std::string body = BatchBody(t, i, base_time - 3'600'000);
      const auto sent = Steady::now();
      auto r = c.Post("/batch", body, "application/json");
      ingest.Add(phase, Ms(Steady::now() - sent), r, 1000);
      // A refusal says when to come back; without the pause a refused client would spin.
      if (!r || r->status != 200) std::this_thread::sleep_for(std::chrono::milliseconds(r ? 100 : 1000));
    }
  }

  // Requests at a steady rate; latency from when each was due, not when it was sent, so a
  // stall counts for every request it held back (no coordinated omission).
  void Paced(double rate, int seed, bool is_healthz) {
    httplib::Client c("127.0.0.1", port);
    c.set_keep_alive(!is_healthz);  // /healthz: a fresh connection each time
    c.set_bearer_token_auth(kAdminKey.c_str());
    c.set_read_timeout(30);
    std::mt19937 rng(seed);
    const auto interval = std::chrono::duration_cast<Steady::duration>(std::chrono::duration<double>(1.0 / rate));
    auto due = Steady::now();
    while (!stop) {
      std::this_thread::sleep_until(due);
      const std::string path = is_healthz ? std::string("/healthz")
                                          : "/api/v1/predictions/" + prediction + "/users/" +
                                                (*users)[rng() % users->size()] + "/score";
      auto r = c.Get(path);
      (is_healthz ? healthz : score).Add(phase, Ms(Steady::now() - due), r, 0);
      due += interval;
      if (Steady::now() - due > std::chrono::seconds(1)) due = Steady::now();  // after a long stall
    }
  }
};

// The server's counters of refused requests and its open connections, from /metrics.
struct ServerCounters {
  std::map<std::string, double> refused;  // sibyl_http_refused_total by reason
  double connections = -1;
  double inflight_body_bytes = -1;  // request bodies held now (budget: 256 MiB)
};

ServerCounters Scrape(int port) {
  httplib::Client c("127.0.0.1", port);
  c.set_bearer_token_auth(kAdminKey.c_str());
  c.set_read_timeout(30);
  ServerCounters counters;
  auto r = c.Get("/metrics");
  if (!r || r->status != 200) return counters;
  const std::string prefix = "sibyl_http_refused_total{reason=\"";
  size_t at = 0;
  while (at < r->body.size()) {
    size_t end = r->body.find('\n', at);
    if (end == std::string::npos) end = r->body.size();
    const std::string line = r->body.substr(at, end - at);
    at = end + 1;
    if (line.rfind(prefix, 0) == 0) {
      const size_t quote = line.find('"', prefix.size());
      counters.refused[line.substr(prefix.size(), quote - prefix.size())] = std::atof(line.c_str() + line.rfind(' '));
    } else if (line.rfind("sibyl_http_connections ", 0) == 0) {
      counters.connections = std::atof(line.c_str() + line.rfind(' '));
    } else if (line.rfind("sibyl_http_inflight_body_bytes ", 0) == 0) {
      counters.inflight_body_bytes = std::atof(line.c_str() + line.rfind(' '));
    }
  }
  return counters;
}

Json LatencyJson(const Recorder::Series& s) {
  return {{"requests", s.ms.size()},     {"ms_p50", Percentile(s.ms, 0.5)}, {"ms_p99", Percentile(s.ms, 0.99)},
          {"ms_max", Percentile(s.ms, 1)}, {"answers", s.answers}};
}

Json BombsJson(const std::vector<BombResult>& bombs) {
  std::map<std::string, std::map<std::string, uint64_t>> answers;
  std::vector<double> ms;
  for (const auto& b : bombs) {
    ++answers[b.path][b.status ? std::to_string(b.status) : "no answer"];
    ms.push_back(b.ms);
  }
  return {{"sent", bombs.size()}, {"answers", answers}, {"ms_p50", Percentile(ms, 0.5)}, {"ms_max", Percentile(ms, 1)}};
}

struct PhaseClock {
  Steady::time_point started;
  ServerProcess::Memory at_start;
  ServerCounters counters;
};

PhaseClock BeginPhase(ServerProcess& server) {
  PhaseClock clock;
  clock.counters = Scrape(server.port());
  server.ResetPeak();
  clock.at_start = server.ReadMemory();
  clock.started = Steady::now();
  return clock;
}

// The server-side half of a phase's report: memory and refusals since BeginPhase.
Json EndPhase(ServerProcess& server, const PhaseClock& clock, const std::string& name) {
  const double seconds = std::chrono::duration<double>(Steady::now() - clock.started).count();
  const auto memory = server.ReadMemory();
  const auto counters = Scrape(server.port());
  Json refused = Json::object();
  for (const auto& [reason, n] : counters.refused) {
    auto before = clock.counters.refused.find(reason);
    refused[reason] = n - (before == clock.counters.refused.end() ? 0 : before->second);
  }
  return {{"phase", name},
          {"seconds", seconds},
          {"rss_mb_start", Mb(clock.at_start.rss_bytes)},
          {"rss_mb_end", Mb(memory.rss_bytes)},
          {"rss_mb_peak", Mb(memory.peak_bytes)},
          {"rss_mb_growth", Mb(memory.peak_bytes) - Mb(clock.at_start.rss_bytes)},
          {"server_refused", refused}};
}

void RaiseDescriptorLimit() {
  rlimit limit{};
  getrlimit(RLIMIT_NOFILE, &limit);
  limit.rlim_cur = limit.rlim_max;  // the attackers' sockets; the child inherits it too
  setrlimit(RLIMIT_NOFILE, &limit);
}

void Print(const Json& phase) {
  auto answers = [](const Json& a) {
    std::string text;
    for (auto& [k, v] : a.items()) text += (text.empty() ? "" : ", ") + k + ": " + std::to_string(v.get<uint64_t>());
    return text;
  };
  std::fprintf(report_out, "[%s] %.1f s", phase["phase"].get<std::string>().c_str(), phase["seconds"].get<double>());
  if (phase.contains("ingest"))
    std::fprintf(report_out, "  ingest %.0f events/s (request p50 %.1f ms; %s)\n", phase["ingest"]["events_per_second"].get<double>(),
                 phase["ingest"]["ms_p50"].get<double>(), answers(phase["ingest"]["answers"]).c_str());
  else
    std::fprintf(report_out, "\n");
  for (const char* kind : {"healthz", "score"})
    if (phase.contains(kind))
      std::fprintf(report_out, "  %-8s p50 %.2f ms  p99 %.2f ms  max %.1f ms  (%s)\n", kind, phase[kind]["ms_p50"].get<double>(),
                   phase[kind]["ms_p99"].get<double>(), phase[kind]["ms_max"].get<double>(),
                   answers(phase[kind]["answers"]).c_str());
  if (phase.contains("bombs")) std::fprintf(report_out, "  bombs    %s\n", phase["bombs"].dump().c_str());
  if (phase.contains("attackers")) std::fprintf(report_out, "  attack   %s\n", phase["attackers"].dump().c_str());
  std::fprintf(report_out, "  server   RSS %.0f MB at the start, peak %.0f MB (+%.0f MB); refused %s\n",
               phase["rss_mb_start"].get<double>(), phase["rss_mb_peak"].get<double>(),
               phase["rss_mb_growth"].get<double>(), phase["server_refused"].dump().c_str());
}

}  // namespace

int main(int argc, char** argv) {
  uint64_t users = 3000;
  int days = 70, seconds = 10, warmup = 45, clients = 4, score_clients = 2, idle = 1000, slowloris = 50, bomb_seconds = 5;
  double score_rate = 200, healthz_rate = 20, bombs_per_second = 4;
  uint64_t slow_body_bytes = 20'000'000, max_connections = 0;
  std::string dir, binary = SIBYL_BINARY, server_log;
  std::vector<std::string> server_args;
  bool json = false;
  CLI::App app{"sibyl serve under abuse (issue 18): idle, slowloris and gzip-bomb attackers beside full-speed ingest"};
  app.add_option("--sibyl", binary, "the sibyl binary")->capture_default_str();
  app.add_option("--users", users)->capture_default_str();
  app.add_option("--days", days)->capture_default_str();
  app.add_option("--seconds", seconds, "measured seconds of each ingest phase")->capture_default_str();
  app.add_option("--warmup", warmup, "unmeasured seconds of ingest and probes first")->capture_default_str();
  app.add_option("--clients", clients, "keep-alive ingest clients")->capture_default_str();
  app.add_option("--score-rate", score_rate, "real-time score requests/s")->capture_default_str();
  app.add_option("--score-clients", score_clients)->capture_default_str();
  app.add_option("--healthz-rate", healthz_rate, "/healthz requests/s (a fresh connection each)")->capture_default_str();
  app.add_option("--idle", idle, "idle connections held during the attack")->capture_default_str();
  app.add_option("--slowloris", slowloris, "slowloris connections (half headers, half body)")->capture_default_str();
  app.add_option("--slowloris-body-bytes", slow_body_bytes, "Content-Length the body tricklers declare")
      ->capture_default_str();
  app.add_option("--bombs-per-second", bombs_per_second)->capture_default_str();
  app.add_option("--bomb-seconds", bomb_seconds, "the bombs-alone phase")->capture_default_str();
  app.add_option("--max-connections", max_connections, "the server's --max-connections (0: its default, 1,024)")
      ->capture_default_str();
  app.add_option("--server-arg", server_args, "passed to `sibyl serve` (repeat: --server-arg=--threads=8)");
  app.add_option("--server-log", server_log, "the server's log, with a line per request, copied to this file");
  app.add_option("--dir", dir, "work directory (default: a temporary one, removed)");
  app.add_flag("--json", json, "one JSON object on stdout");
  CLI11_PARSE(app, argc, argv);
  if (json) report_out = stderr;
  signal(SIGPIPE, SIG_IGN);
  RaiseDescriptorLimit();

  const bool temporary = dir.empty();
  if (temporary) dir = (std::filesystem::temp_directory_path() / ("sibyl-abuse-bench-" + std::to_string(getpid()))).string();
  std::filesystem::create_directories(dir);
  std::fprintf(stderr, "generating %lu users over %d days...\n", static_cast<unsigned long>(users), days);
  if (Status st = GenerateStore(dir, users, days); !st.ok()) {
    std::fprintf(stderr, "generate: %s\n", st.ToString().c_str());
    return 1;
  }
  const std::string bomb = MakeGzipBomb(uint64_t{1} << 30);
  if (max_connections) server_args.push_back("--max-connections=" + std::to_string(max_connections));
  auto started = ServerProcess::Start(binary, dir + "/data", server_args, server_log);
  if (!started.ok()) {
    std::fprintf(stderr, "%s\n", started.status().ToString().c_str());
    return 1;
  }
  ServerProcess& server = **started;
  httplib::Client admin("127.0.0.1", server.port());
  admin.set_bearer_token_auth(kAdminKey.c_str());
  admin.set_read_timeout(300);
  std::fprintf(stderr, "server pid %d on port %d; training and scoring purchase_7d...\n", server.pid(), server.port());
  auto prediction = CreateScoredPrediction(admin);
  if (!prediction.ok()) {
    std::fprintf(stderr, "%s\n%s", prediction.status().ToString().c_str(), server.LastLog().c_str());
    return 1;
  }

  Load load;
  load.port = server.port();
  load.clients = clients;
  load.score_clients = score_clients;
  load.score_rate = score_rate;
  load.healthz_rate = healthz_rate;
  load.base_time = prediction->cutoff_ms;
  load.users = &prediction->user_ids;
  load.prediction = prediction->name;
  load.Start();
  // Unmeasured: while a fresh server's RSS grows (about 1.7 GB in the first 40 s here: the
  // store's de-dup table and the current week's partition rebuilt at each checkpoint), the
  // store faults in fresh memory by the hundred MB and real-time scores stall for as long
  // (BENCHMARKS.md, Abuse benchmark); the phases compare a server past that, so that what
  // differs between them is the attack.
  std::fprintf(stderr, "warming up for %d s...\n", warmup);
  std::this_thread::sleep_for(std::chrono::seconds(warmup));

  const std::vector<std::string> bomb_paths = {"/batch", "/2/httpapi", "/v1/batch"};
  std::vector<Json> phases;
  bool crashed = false;
  auto ingest_phase = [&](int index, const std::string& name, bool attack) {
    std::unique_ptr<ConnectionHolder> holder;
    std::unique_ptr<Bomber> bomber;
    if (attack) {
      holder = std::make_unique<ConnectionHolder>(HolderOptions{.port = server.port(), .idle = idle,
                                                                .slowloris = slowloris, .slow_body_bytes = slow_body_bytes});
      holder->Start();
      if (bombs_per_second > 0) {
        bomber = std::make_unique<Bomber>(server.port(), bomb, bomb_paths, bombs_per_second);
        bomber->Start();
      }
      // Measured once the attackers hold their connections (or after 5 s).
      for (int i = 0; i < 50; ++i) {
        const auto s = holder->Stats();
        if (s.idle_open + s.slowloris_open >= idle + slowloris) break;
        std::this_thread::sleep_for(std::chrono::milliseconds(100));
      }
      if (bomber) bomber->Take();
    }
    PhaseClock clock = BeginPhase(server);
    const HolderStats holder_before = holder ? holder->Stats() : HolderStats{};
    load.phase = index;
    double min_connections = 1e18, max_connections_seen = 0, max_inflight = 0;
    int min_held = idle + slowloris;
    for (int s = 0; s < seconds; ++s) {
      std::this_thread::sleep_for(std::chrono::seconds(1));
      if (!server.Alive()) crashed = true;
      if (!attack || crashed) continue;
      const ServerCounters now = Scrape(server.port());
      min_connections = std::min(min_connections, now.connections);
      max_connections_seen = std::max(max_connections_seen, now.connections);
      max_inflight = std::max(max_inflight, now.inflight_body_bytes);
      const auto h = holder->Stats();
      min_held = std::min(min_held, h.idle_open + h.slowloris_open);
    }
    load.phase = -1;
    Json report = EndPhase(server, clock, name);
    const auto ingest = load.ingest.Get(index);
    report["ingest"] = LatencyJson(ingest);
    report["ingest"]["events"] = ingest.events;
    report["ingest"]["events_per_second"] = static_cast<double>(ingest.events) / report["seconds"].get<double>();
    report["healthz"] = LatencyJson(load.healthz.Get(index));
    report["score"] = LatencyJson(load.score.Get(index));
    if (attack) {
      if (bomber) {
        report["bombs"] = BombsJson(bomber->Take());
        bomber->Stop();
      }
      const HolderStats h = holder->Stats();
      Json answers = Json::object();
      for (const auto& [status, n] : h.answers) {
        const auto before = holder_before.answers.find(status);
        answers[std::to_string(status)] = n - (before == holder_before.answers.end() ? 0 : before->second);
      }
      report["attackers"] = {{"held_min", min_held},
                             {"server_connections_min", min_connections},
                             {"server_connections_max", max_connections_seen},
                             {"server_inflight_body_mb_max", Mb(static_cast<uint64_t>(max_inflight))},
                             {"opened", h.opened - holder_before.opened},
                             {"closed_by_server", h.closed_by_server - holder_before.closed_by_server},
                             {"connect_errors", h.connect_errors - holder_before.connect_errors},
                             {"answers", answers}};
      holder->Stop();
      std::this_thread::sleep_for(std::chrono::seconds(1));  // the server sees them close
    }
    Print(report);
    phases.push_back(std::move(report));
  };
  ingest_phase(0, "base", false);
  ingest_phase(1, "attack", true);
  ingest_phase(2, "base", false);
  load.Stop();

  // The bombs alone, once the server has settled (the last commits and checkpoint of the
  // ingest phases can still grow RSS for a few seconds; up to 30 s, until VmRSS holds
  // within 1 MB for 2 s), so that the growth is theirs.
  for (int i = 0, steady = 0; i < 300 && steady < 20; ++i) {
    const uint64_t before = server.ReadMemory().rss_bytes;
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
    const uint64_t after = server.ReadMemory().rss_bytes;
    steady = std::max(before, after) - std::min(before, after) < (1u << 20) ? steady + 1 : 0;
  }
  {
    PhaseClock clock = BeginPhase(server);
    Bomber bomber(server.port(), bomb, bomb_paths, std::max(bombs_per_second, 1.0));
    bomber.Start();
    std::this_thread::sleep_for(std::chrono::seconds(bomb_seconds));
    bomber.Stop();
    if (!server.Alive()) crashed = true;
    Json report = EndPhase(server, clock, "bombs");
    report["bombs"] = BombsJson(bomber.Take());
    Print(report);
    phases.push_back(std::move(report));
  }

  const std::string exit = crashed ? "crashed" : server.Stop();
  if (crashed) std::fprintf(stderr, "the server died:\n%s", server.LastLog().c_str());
  const Json& attack = phases[1];
  // Against the faster of the two runs around it: a store growth spell (BENCHMARKS.md) in
  // one of them must not make the attack look cheap.
  const double base_eps =
      std::max(phases[0]["ingest"]["events_per_second"].get<double>(), phases[2]["ingest"]["events_per_second"].get<double>());
  const double ratio = base_eps > 0 ? attack["ingest"]["events_per_second"].get<double>() / base_eps : 0;
  // A refused probe (503 at the connection cap, say) is a miss whatever its latency.
  auto all_ok = [](const Json& probe) {
    return probe["answers"].size() == 1 && probe["answers"].contains("200");
  };
  Json targets = {
      {"healthz_p99_ms", {{"value", attack["healthz"]["ms_p99"]}, {"target", 50}, {"all_200", all_ok(attack["healthz"])}}},
      {"score_p99_ms", {{"value", attack["score"]["ms_p99"]}, {"target", 10}, {"all_200", all_ok(attack["score"])}}},
      {"ingest_ratio", {{"value", ratio}, {"target", 0.8}}},
      {"bomb_rss_growth_mb", {{"value", phases[3]["rss_mb_growth"]}, {"target", 64}}},
      {"no_crash", {{"value", exit == "exit 0"}, {"server_exit", exit}}}};
  for (auto& [name, t] : targets.items())
    t["met"] = name == "no_crash" ? t["value"].get<bool>()
               : name == "ingest_ratio" ? t["value"].get<double>() >= t["target"].get<double>()
                                        : t["value"].get<double>() <= t["target"].get<double>() &&
                                              t.value("all_200", true);
  std::fprintf(report_out, "targets (attack phase):\n");
  for (auto& [name, t] : targets.items())
    std::fprintf(report_out, "  %-20s %-12s %s\n", name.c_str(), t["value"].dump().c_str(), t["met"].get<bool>() ? "met" : "NOT MET");
  if (json) {
    Json out = {{"phases", phases}, {"targets", targets}, {"base_events_per_second", base_eps},
                {"options", {{"users", users}, {"days", days}, {"seconds", seconds}, {"warmup", warmup}, {"clients", clients},
                             {"score_rate", score_rate}, {"healthz_rate", healthz_rate}, {"idle", idle},
                             {"slowloris", slowloris}, {"slowloris_body_bytes", slow_body_bytes},
                             {"bombs_per_second", bombs_per_second}, {"bomb_bytes", bomb.size()},
                             {"max_connections", max_connections}, {"server_args", server_args}}}};
    std::printf("%s\n", out.dump().c_str());
  }
  if (temporary) std::filesystem::remove_all(dir);
  return crashed ? 2 : 0;
}
