// `sibyl forecast NAME`: how many users will do the outcome, the sum of the written-back
// calibrated probabilities, with 90% and 95% intervals (src/scoring/insights.h).
#include <cstdio>
#include <memory>
#include <string>

#include <nlohmann/json.hpp>

#include "cli/backend.h"
#include "cli/commands.h"
#include "common/time.h"
#include "pipeline/registry.h"
#include "scoring/insights.h"
#include "scoring/scoring.h"
#include "store/event_store.h"

namespace sibyl {
namespace {

void RunForecast(const GlobalOptions& global, const std::string& name) {
  pipeline::PredictionRegistry registry(global.data_dir);
  pipeline::PredictionDefinition definition = Check(registry.Get(name));
  OpenedStore opened = OpenStoreFor(global, StoreOptions{.data_dir = global.data_dir, .read_only = true});
  auto reader = opened.store->Snapshot();
  const auto written = scoring::ForecastFromWrittenScores(*reader, name);
  if (!written) Check(FailedPrecondition("no scores of {} in the store yet: run `sibyl score {}` first", name, name));
  const scoring::Forecast& f = written->forecast;
  const int64_t newest = written->scores_as_of_ms;
  const bool revenue = definition.kind == pipeline::PredictionKind::kRevenue;
  if (global.json) {
    nlohmann::json j = scoring::ToJson(*written, definition);
    std::printf("%s\n", j.dump().c_str());
    return;
  }
  if (revenue) {
    std::printf("%s: expected revenue %.2f from %zu users within %d days (scores as of %s; no interval for "
                "revenue yet)\n",
                name.c_str(), f.expected, f.users, definition.horizon_days, FormatTime(newest).c_str());
    return;
  }
  std::printf("%s (%s): %.0f of %zu scored users expected (scores as of %s)\n", name.c_str(),
              pipeline::DescribeDefinition(definition).c_str(), f.expected, f.users, FormatTime(newest).c_str());
  std::printf("90%% interval %.0f - %.0f, 95%% interval %.0f - %.0f (independent users, normal approximation)\n",
              f.low90, f.high90, f.low95, f.high95);
}

}  // namespace

void AddForecastCommand(CLI::App& app, const GlobalOptions& global) {
  auto* cmd = app.add_subcommand(
      "forecast", "How many users will do the outcome: the sum of their calibrated probabilities, with intervals");
  auto name = std::make_shared<std::string>();
  cmd->add_option("NAME", *name, "prediction name")->required();
  cmd->callback([&global, name] { RunForecast(global, *name); });
}

}  // namespace sibyl
