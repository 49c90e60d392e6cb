#include "cli/backend.h"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <filesystem>

#include "common/file.h"
#include "common/progress.h"

namespace sibyl {

std::unique_ptr<clickhouse::Cluster> OpenClusterIfChosen(const GlobalOptions& global, bool save) {
  const bool has_file = std::filesystem::exists(std::filesystem::path(global.data_dir) / "clickhouse.json");
  std::string backend = global.backend;
  if (backend.empty()) backend = (has_file || !global.clickhouse.empty()) ? "clickhouse" : "embedded";
  if (backend == "embedded") return nullptr;
  if (backend != "clickhouse")
    throw CommandFailed(InvalidArgument("--backend \"{}\": use embedded or clickhouse", backend));
  // One data directory, one place for events: a directory that holds an embedded store
  // would otherwise look empty to every command, its events silently left out.
  if (!has_file && std::filesystem::exists(std::filesystem::path(global.data_dir) / "MANIFEST"))
    throw CommandFailed(FailedPrecondition(
        "{} holds an embedded store; use another data directory for the ClickHouse cluster (or --backend embedded)",
        global.data_dir));
  clickhouse::ClusterConfig config;
  if (!global.clickhouse.empty()) {
    config = Check(clickhouse::ClusterConfig::Parse(global.clickhouse));
    if (has_file) {
      clickhouse::ClusterConfig saved = Check(clickhouse::ClusterConfig::Load(global.data_dir));
      config.database = saved.database;
      config.max_threads = saved.max_threads;
      config.settings = saved.settings;
    }
  } else if (has_file) {
    config = Check(clickhouse::ClusterConfig::Load(global.data_dir));
  } else {
    throw CommandFailed(InvalidArgument(
        "--backend clickhouse needs the cluster's endpoints: --clickhouse http://HOST:PORT,... (or "
        "$SIBYL_CLICKHOUSE, or a data directory that an ingest into the cluster created)"));
  }
  auto cluster = Check(clickhouse::Cluster::Open(config));
  // Written when endpoints are new (the first ingest) or given again; not on every command.
  if (save || !global.clickhouse.empty()) Check(config.Save(global.data_dir));
  return cluster;
}

OpenedStore OpenStoreFor(const GlobalOptions& global, const StoreOptions& options, const clickhouse::SliceSpec& slice) {
  return OpenStoreOn(global, options, slice, OpenClusterIfChosen(global));
}

OpenedStore OpenStoreOn(const GlobalOptions& global, const StoreOptions& options, const clickhouse::SliceSpec& slice,
                        std::unique_ptr<clickhouse::Cluster> cluster) {
  OpenedStore opened;
  opened.cluster = std::move(cluster);
  if (!opened.cluster) {
    // The embedded store holds every user: a slice of named users is all of it.
    if (slice.kind == clickhouse::SliceSpec::Kind::kShard || slice.sample_buckets < clickhouse::kSampleBuckets)
      throw CommandFailed(InvalidArgument("--shard and --sample need a ClickHouse cluster (--backend clickhouse)"));
    opened.store = Check(EventStore::Open(options));
    return opened;
  }
  clickhouse::SliceOptions slice_options;
  slice_options.temp_dir = (std::filesystem::path(global.data_dir) / "tmp").string();
  Check(CreateDirs(slice_options.temp_dir));
  Progress progress(fmt::format("pull {} from {} shard(s)", slice.Describe(opened.cluster->shards()),
                                opened.cluster->shards()),
                    0, "rows");
  slice_options.on_progress = [&progress](std::string_view, uint64_t rows) { progress.Update(rows); };
  clickhouse::SliceStats stats;
  opened.store = Check(clickhouse::OpenSlice(*opened.cluster, slice, slice_options, &stats));
  progress.Finish();
  // On stderr, so that --json output stays one document; benchmarks read it.
  if (!global.quiet)
    std::fprintf(stderr, "pulled %llu rows (%.1f MB) of %s from %zu shard(s) in %.2f s: %llu users owned\n",
                 static_cast<unsigned long long>(stats.rows_pulled), stats.bytes_pulled / 1e6,
                 slice.Describe(opened.cluster->shards()).c_str(), opened.cluster->shards(), stats.pull_seconds,
                 static_cast<unsigned long long>(stats.owned_actors));
  return opened;
}

clickhouse::SliceSpec SampleSlice(double percent) {
  clickhouse::SliceSpec slice;
  slice.sample_buckets = static_cast<uint32_t>(std::clamp<double>(
      std::round(percent / 100.0 * clickhouse::kSampleBuckets), 1, clickhouse::kSampleBuckets));
  return slice;
}

void RequireEmbedded(const GlobalOptions& global, std::string_view verb) {
  if (OpenClusterIfChosen(global))
    throw CommandFailed(FailedPrecondition(
        "`sibyl {}` does not run on a ClickHouse cluster yet (docs/SCALE_OUT.md lists what does)", verb));
}

}  // namespace sibyl
