// The sibyl verbs. Each Add*Command registers one subcommand (its flags, --help text and
// handler) on the root app; main() composes them. Handlers report failures by throwing
// CommandFailed, which main maps to a one-line message and an exit code.
#pragma once

#include <CLI/CLI.hpp>

#include <stdexcept>
#include <string>

#include "common/status.h"

namespace sibyl {

// Options shared by every verb.
struct GlobalOptions {
  std::string data_dir;  // --data, else $SIBYL_DATA, else ./sibyl-data
  bool json = false;     // --json: machine-readable output on stdout
  bool quiet = false;    // --quiet: no progress
  // Where events live (docs/SCALE_OUT.md): --backend, else $SIBYL_BACKEND, else
  // "clickhouse" when the data directory names a cluster (clickhouse.json), else
  // "embedded". --clickhouse / $SIBYL_CLICKHOUSE: the cluster's endpoints.
  std::string backend;
  std::string clickhouse;
};

// Thrown by handlers to end the command with a Status (mapped to an exit code in main).
struct CommandFailed : std::runtime_error {
  explicit CommandFailed(Status s) : std::runtime_error(s.ToString()), status(std::move(s)) {}
  Status status;
};

// Throws CommandFailed if `status` is not OK.
inline void Check(const Status& status) {
  if (!status.ok()) throw CommandFailed(status);
}
template <typename T>
T Check(Result<T> result) {
  if (!result.ok()) throw CommandFailed(result.status());
  return std::move(result).value();
}

// One exit code per StatusCode, in one place.
int ExitCodeFor(const Status& status);

void AddGenerateCommand(CLI::App& app, const GlobalOptions& global);
void AddIngestCommand(CLI::App& app, const GlobalOptions& global);
void AddStatsCommand(CLI::App& app, const GlobalOptions& global);
void AddFeaturesCommand(CLI::App& app, const GlobalOptions& global);
void AddCohortSizeCommand(CLI::App& app, const GlobalOptions& global);
void AddPredictCommand(CLI::App& app, const GlobalOptions& global);
void AddTrainCommand(CLI::App& app, const GlobalOptions& global);
void AddBacktestCommand(CLI::App& app, const GlobalOptions& global);
void AddScoreCommand(CLI::App& app, const GlobalOptions& global);
void AddCohortCommand(CLI::App& app, const GlobalOptions& global);
void AddExplainCommand(CLI::App& app, const GlobalOptions& global);
void AddForecastCommand(CLI::App& app, const GlobalOptions& global);
void AddServeCommand(CLI::App& app, const GlobalOptions& global);
void AddRepairCommand(CLI::App& app, const GlobalOptions& global);

}  // namespace sibyl
