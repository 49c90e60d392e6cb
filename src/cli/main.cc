// sibyl: predictive insights for product event data. One binary, many verbs.
#include <cstdio>
#include <cstdlib>

#include "cli/commands.h"
#include "common/memory.h"
#include "common/progress.h"

namespace sibyl {

int ExitCodeFor(const Status& status) {
  switch (status.code()) {
    case StatusCode::kOk: return 0;
    case StatusCode::kInvalidArgument: return 2;
    case StatusCode::kNotFound: return 3;
    case StatusCode::kAlreadyExists: return 4;
    case StatusCode::kFailedPrecondition: return 5;
    case StatusCode::kCorruption: return 6;
    case StatusCode::kIoError: return 7;
    case StatusCode::kResourceExhausted: return 8;
    case StatusCode::kUnauthenticated:
    case StatusCode::kPermissionDenied: return 9;
    case StatusCode::kCancelled: return 10;
    case StatusCode::kInternal: return 70;
  }
  return 1;
}

}  // namespace sibyl

int main(int argc, char** argv) {
  sibyl::UseSibylHeapSettings();
  using namespace sibyl;
  CLI::App app{"sibyl: predictive insights for product event data"};
  app.require_subcommand(1);
  app.fallthrough();  // global flags also work after the verb: `sibyl stats --json`
  app.set_version_flag("--version", "sibyl 0.1");
  GlobalOptions global;
  if (const char* env = std::getenv("SIBYL_DATA")) global.data_dir = env;
  if (global.data_dir.empty()) global.data_dir = "sibyl-data";
  app.add_option("--data", global.data_dir, "data directory (default: $SIBYL_DATA or ./sibyl-data)");
  app.add_flag("--json", global.json, "print results as JSON on stdout");
  app.add_flag("--quiet", global.quiet, "no progress output");
  if (const char* env = std::getenv("SIBYL_BACKEND")) global.backend = env;
  if (const char* env = std::getenv("SIBYL_CLICKHOUSE")) global.clickhouse = env;
  app.add_option("--backend", global.backend,
                 "where events live: embedded (default) or clickhouse (default when the data directory names a "
                 "cluster; $SIBYL_BACKEND)");
  app.add_option("--clickhouse", global.clickhouse,
                 "the ClickHouse cluster: http://HOST:PORT per shard, comma-separated, or a file with one per line "
                 "(scripts/cluster.sh writes DIR/endpoints; $SIBYL_CLICKHOUSE); saved in the data directory");
  app.parse_complete_callback([&] {
    if (global.quiet) Progress::SetEnabled(false);
  });

  AddGenerateCommand(app, global);
  AddIngestCommand(app, global);
  AddStatsCommand(app, global);
  AddFeaturesCommand(app, global);
  AddCohortSizeCommand(app, global);
  AddPredictCommand(app, global);
  AddTrainCommand(app, global);
  AddBacktestCommand(app, global);
  AddScoreCommand(app, global);
  AddCohortCommand(app, global);
  AddExplainCommand(app, global);
  AddForecastCommand(app, global);
  AddServeCommand(app, global);
  AddRepairCommand(app, global);

  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    // --help and --version exit 0; every usage error (unknown flag or verb, a missing
    // argument) is invalid input, exit 2, as the README lists, not CLI11's own codes.
    return app.exit(e) == 0 ? 0 : 2;
  } catch (const CommandFailed& e) {
    std::fprintf(stderr, "sibyl: %s\n", e.status.ToString().c_str());
    return ExitCodeFor(e.status);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "sibyl: internal error: %s\n", e.what());
    return 70;
  }
  return 0;
}
