// `sibyl score NAME [--as-of T] [--active-within 1h]`: score the prediction's cohort (or
// its recently active users) with the latest trained version and write the scores back
// as user properties (src/scoring/score_run.h, docs/SCORING.md).
#include <cstdio>
#include <filesystem>
#include <memory>
#include <string>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "cli/backend.h"
#include "cli/commands.h"
#include "clickhouse/cluster_writer.h"
#include "common/file.h"
#include "common/progress.h"
#include "common/time.h"
#include "pipeline/registry.h"
#include "scoring/score_run.h"
#include "store/event_store.h"

namespace sibyl {
namespace {

struct ScoreFlags {
  std::string name;
  std::string as_of;
  std::string active_within;
  int version = 0;
  size_t block_users = scoring::ScoreRequest{}.users_per_block;
  bool dry_run = false;
  std::string shard;  // "i/N" on a cluster
  size_t workers = 1;  // a full run on a cluster: shards open at once
};

// "2/4" as (1, 4): the second of four shards.
std::pair<size_t, size_t> ParseShard(const std::string& text) {
  unsigned i = 0, n = 0;
  char tail = 0;
  if (std::sscanf(text.c_str(), "%u/%u%c", &i, &n, &tail) != 2 || n == 0 || i == 0 || i > n)
    throw CommandFailed(InvalidArgument("--shard \"{}\": use i/N with 1 <= i <= N (\"1/2\")", text));
  return {i - 1, n};
}

// "90m", "1h", "2d", "1w" (a bare number is hours).
Result<int64_t> ParseWindow(const std::string& text) {
  if (text.empty()) return InvalidArgument("empty --active-within");
  char unit = text.back();
  int64_t scale = kMsPerHour;
  std::string digits = text;
  if (unit < '0' || unit > '9') {
    digits.pop_back();
    switch (unit) {
      case 'm': scale = 60 * kMsPerSecond; break;
      case 'h': scale = kMsPerHour; break;
      case 'd': scale = kMsPerDay; break;
      case 'w': scale = kMsPerWeek; break;
      default: return InvalidArgument("--active-within \"{}\": use a number with m, h, d or w (\"1h\")", text);
    }
  }
  char* end = nullptr;
  double n = std::strtod(digits.c_str(), &end);
  if (digits.empty() || *end != '\0' || !(n > 0))
    return InvalidArgument("--active-within \"{}\": use a positive number with m, h, d or w (\"1h\")", text);
  return static_cast<int64_t>(n * scale);
}

void PrintScoreRun(const GlobalOptions& global, const ScoreFlags& flags, const scoring::ScoreRunResult& run);

void RunScore(const GlobalOptions& global, const ScoreFlags& flags) {
  pipeline::PredictionRegistry registry(global.data_dir);
  Check(registry.Get(flags.name).status());
  scoring::ScoreRequest request;
  if (!flags.as_of.empty()) request.as_of_ms = Check(ParseTime(flags.as_of));
  if (!flags.active_within.empty()) request.active_within_ms = Check(ParseWindow(flags.active_within));
  if (flags.version > 0) request.version = flags.version;
  request.users_per_block = flags.block_users;
  request.write_back = !flags.dry_run;
  std::unique_ptr<clickhouse::Cluster> cluster = OpenClusterIfChosen(global);
  if (cluster && flags.shard.empty() && flags.active_within.empty()) {
    // A full run on a cluster: one shard's users at a time (--workers at once), percentiles
    // over all of them, one write-back (docs/SCALE_OUT.md).
    scoring::ScoreParts parts;
    parts.count = cluster->shards();
    parts.workers = flags.workers;
    const std::string temp_dir = (std::filesystem::path(global.data_dir) / "tmp").string();
    Check(CreateDirs(temp_dir));
    parts.open = [&](size_t i) -> Result<std::unique_ptr<EventStore>> {
      clickhouse::SliceSpec slice{.kind = clickhouse::SliceSpec::Kind::kShard, .shard = i};
      clickhouse::SliceStats stats;
      auto store = clickhouse::OpenSlice(*cluster, slice, clickhouse::SliceOptions{.temp_dir = temp_dir}, &stats);
      if (store.ok() && !global.quiet)
        std::fprintf(stderr, "pulled %llu rows (%.1f MB) of %s in %.2f s: %llu users owned\n",
                     static_cast<unsigned long long>(stats.rows_pulled), stats.bytes_pulled / 1e6,
                     slice.Describe(cluster->shards()).c_str(), stats.pull_seconds,
                     static_cast<unsigned long long>(stats.owned_actors));
      return store;
    };
    parts.begin_write = [&](std::function<std::string(ActorId)> names) -> Result<std::unique_ptr<Transaction>> {
      return clickhouse::BeginClusterTransaction(*cluster, {.actor_name = std::move(names), .what = "scores"});
    };
    if (flags.dry_run) request.write_back = false;
    Progress progress("score " + flags.name + " shard by shard", parts.count, "shards");
    auto open_part = parts.open;
    parts.open = [&progress, open_part](size_t i) {
      progress.Update(i);
      return open_part(i);
    };
    scoring::ScoreRunResult run = Check(scoring::RunScoringInParts(registry, flags.name, request, parts));
    progress.Finish();
    PrintScoreRun(global, flags, run);
    return;
  }
  clickhouse::SliceSpec slice;
  if (!flags.shard.empty()) {
    auto [shard, shards] = ParseShard(flags.shard);
    slice.kind = clickhouse::SliceSpec::Kind::kShard;
    slice.shard = shard;
    request.shard = flags.shard;
    if (!cluster) throw CommandFailed(InvalidArgument("--shard needs a ClickHouse cluster (--backend clickhouse)"));
    if (cluster->shards() != shards)
      throw CommandFailed(InvalidArgument("--shard {}: the cluster has {} shards", flags.shard, cluster->shards()));
  }
  OpenedStore opened = OpenStoreOn(global, StoreOptions{.data_dir = global.data_dir, .read_only = flags.dry_run},
                                   slice, std::move(cluster));
  scoring::ScoreRunResult run = Check(scoring::RunScoring(registry, *opened.store, flags.name, request));
  PrintScoreRun(global, flags, run);
}

void PrintScoreRun(const GlobalOptions& global, const ScoreFlags& flags, const scoring::ScoreRunResult& run) {
  const nlohmann::json& r = run.record;
  if (global.json) {
    nlohmann::json out = r;
    out.erase("quantiles");  // long; in the run file
    if (!run.run_file.empty()) out["run_file"] = run.run_file;
    std::printf("%s\n", out.dump().c_str());
    return;
  }
  const nlohmann::json& s = r["score_summary"];
  std::printf("scored %zu users of %s (version %d, %s run) as of %s in %.2f s%s\n", r["users_scored"].get<size_t>(),
              flags.name.c_str(), r["version"].get<int>(), r["kind"].get<std::string>().c_str(),
              r["cutoff"].get<std::string>().c_str(), r["seconds"].value("total", 0.0),
              flags.dry_run ? " (dry run: nothing written)" : "");
  if (s.value("users", 0) > 0)
    std::printf("scores: mean %.4f, p10 %.4f, median %.4f, p90 %.4f, max %.4f\n", s.value("mean", 0.0),
                s.value("p10", 0.0), s.value("p50", 0.0), s.value("p90", 0.0), s.value("max", 0.0));
  std::string stages;
  for (const auto& [stage, seconds] : r["seconds"].items())
    if (stage != "total") stages += fmt::format("{}{} {:.2f}s", stages.empty() ? "" : ", ", stage, seconds.get<double>());
  std::printf("stages: %s\n", stages.c_str());
  if (r.contains("drift")) {
    const nlohmann::json& d = r["drift"];
    std::printf("drift since training (%s): score PSI %.3f%s; %zu features with PSI > %.1f",
                d["reference"].get<std::string>().c_str(), d["score_psi"].get<double>(),
                d["score_shifted"].get<bool>() ? " (the score distribution moved)" : "",
                d["flagged_features"].size(), d["threshold"].get<double>());
    size_t shown = 0;
    for (const auto& f : d["flagged_features"]) {
      if (shown++ == 3) { std::printf(", ..."); break; }
      std::printf("%s %s", shown == 1 ? ":" : ",", f.get<std::string>().c_str());
    }
    std::printf("\n");
  }
  if (!flags.dry_run)
    std::printf("written as sibyl.%s.score / .percentile / .model_version at %s; run record %s\n",
                flags.name.c_str(), r["cutoff"].get<std::string>().c_str(), run.run_file.c_str());
}

}  // namespace

void AddScoreCommand(CLI::App& app, const GlobalOptions& global) {
  auto* cmd = app.add_subcommand(
      "score", "Score a prediction's cohort with its latest version at T and write the scores back as user "
               "properties sibyl.NAME.score / .percentile / .model_version");
  auto flags = std::make_shared<ScoreFlags>();
  cmd->add_option("NAME", flags->name, "prediction name")->required();
  cmd->add_option("--as-of", flags->as_of,
                  "cutoff T (floored to the hour; default: the start of the hour of the store's last event)");
  cmd->add_option("--active-within", flags->active_within,
                  "hourly run: only cohort users active in this window before T (\"1h\", \"30m\", \"2d\")");
  cmd->add_option("--version", flags->version, "trained version to use (default: the latest)");
  cmd->add_option("--block-users", flags->block_users, "users per feature block (bounds memory)")
      ->capture_default_str();
  cmd->add_flag("--dry-run", flags->dry_run, "score but write nothing (no write-back, no run record)");
  cmd->add_option("--shard", flags->shard,
                  "on a ClickHouse cluster: score only the users of shard i of N (\"1/2\"), with percentiles on the "
                  "scale of the newest full run; run one per shard, on as many machines");
  cmd->add_option("--workers", flags->workers,
                  "a full run on a ClickHouse cluster scores one shard at a time: this many at once")
      ->check(CLI::Range(1, 64))
      ->capture_default_str();
  cmd->callback([&global, flags] { RunScore(global, *flags); });
}

}  // namespace sibyl
