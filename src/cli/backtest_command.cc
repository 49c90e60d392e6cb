// `sibyl backtest NAME --cutoffs K`: how would this prediction's models have done at K
// earlier cutoffs, against what then happened and against the recency-frequency baseline
// (src/pipeline/backtest.h). The results are kept in the prediction's backtests/ folder,
// where the server's API and the workspace page read them.
#include <cmath>
#include <cstdio>
#include <memory>
#include <string>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "cli/backend.h"
#include "cli/commands.h"
#include "cli/train_flags.h"
#include "common/time.h"
#include "pipeline/backtest.h"
#include "pipeline/registry.h"
#include "store/event_store.h"

namespace sibyl {
namespace {

struct BacktestFlags {
  std::string name;
  int cutoffs = 4;
  int step_days = 7;
  TrainFlags train;
};

void RunBacktest(const GlobalOptions& global, const BacktestFlags& flags) {
  pipeline::PredictionRegistry registry(global.data_dir);
  pipeline::PredictionDefinition definition = Check(registry.Get(flags.name));
  pipeline::BacktestOptions options;
  options.cutoffs = flags.cutoffs;
  options.step_days = flags.step_days;
  options.train = MakeTrainRequest(flags.train);
  StoreOptions store_options{.data_dir = global.data_dir, .read_only = true};
  OpenedStore opened = OpenStoreFor(global, store_options, SampleSlice(flags.train.sample_percent));
  auto reader = opened.store->Snapshot();
  auto progress = std::make_shared<StageProgress>("backtest " + flags.name);
  options.train.on_stage = [progress](std::string_view stage) { (*progress)(stage); };
  auto rows = Check(pipeline::RunBacktest(*reader, definition, options));
  progress->Finish();
  const std::string kept =
      Check(pipeline::SaveBacktest(registry, definition, options, rows, SystemClock::Instance().NowMs()));

  size_t failed = 0;
  for (const auto& r : rows) failed += !r.error.empty();
  if (global.json) {
    std::printf("%s\n", pipeline::BacktestToJson(definition, rows).dump().c_str());
  } else {
    const bool revenue = definition.kind == pipeline::PredictionKind::kRevenue;
    std::printf("backtest of %s (%s): each model trained as of the evaluation cutoff E (training cutoff "
                "E - %dd), scored at E, compared with [E, E + %dd)\n",
                flags.name.c_str(), pipeline::DescribeDefinition(definition).c_str(), definition.horizon_days,
                definition.horizon_days);
    if (revenue) {
      std::printf("%-22s %8s %10s %10s %10s %10s %9s %8s %8s  %s\n", "evaluation cutoff E", "users", "mean", "predicted",
                  "MAE", "RMSE", "Spearman", "top 10%", "RF top", "model");
    } else {
      std::printf("%-22s %8s %9s %8s %9s %8s %8s %9s %9s  %s\n", "evaluation cutoff E", "users", "base rate",
                  "AUC", "log loss", "ECE", "lift", "mean p", "RF AUC", "model");
    }
    for (const auto& r : rows) {
      const std::string e = FormatTime(r.eval_cutoff_ms).substr(0, 16);
      if (!r.error.empty()) {
        std::printf("%-22s failed: %s\n", e.c_str(), r.error.c_str());
      } else if (revenue) {
        auto share = [](double s) { return std::isfinite(s) ? fmt::format("{:.1f}%", 100 * s) : std::string("-"); };
        std::printf("%-22s %8llu %10.3f %10.3f %10.3f %10.3f %9.4f %8s %8s  %s\n", e.c_str(),
                    static_cast<unsigned long long>(r.users), r.base_rate, r.mean_score, r.mae, r.rmse, r.spearman,
                    share(r.top_decile_share).c_str(),
                    r.baseline_error.empty() ? share(r.baseline_top_decile_share).c_str() : "-",
                    r.model_type.c_str());
      } else {
        std::printf("%-22s %8llu %9.4f %8.4f %9.4f %8.4f %7.2fx %9.4f %9s  %s\n", e.c_str(),
                    static_cast<unsigned long long>(r.users), r.base_rate, r.roc_auc, r.log_loss, r.ece,
                    r.lift_top_decile, r.mean_score,
                    r.baseline_error.empty() ? fmt::format("{:.4f}", r.baseline_roc_auc).c_str() : "-",
                    r.model_type.c_str());
      }
    }
  }
  if (!global.json)
    std::printf("%s: the recency-frequency baseline on the same users (docs/PREDICTIONS.md)\nkept in %s\n",
                definition.kind == pipeline::PredictionKind::kRevenue
                    ? "top 10%: share of the actual amount held by the tenth predicted highest; RF top"
                    : "RF AUC",
                kept.c_str());
  if (failed == rows.size())
    throw CommandFailed(FailedPrecondition("no backtest cutoff could be trained ({} failed)", failed));
}

}  // namespace

void AddBacktestCommand(CLI::App& app, const GlobalOptions& global) {
  auto* cmd = app.add_subcommand(
      "backtest", "Train a prediction as of K earlier weekly cutoffs and report how each model's scores did "
                  "against what then happened (AUC, log loss, ECE, base rate per cutoff)");
  auto flags = std::make_shared<BacktestFlags>();
  cmd->add_option("NAME", flags->name, "prediction name")->required();
  cmd->add_option("--cutoffs", flags->cutoffs, "how many evaluation cutoffs")->capture_default_str();
  cmd->add_option("--step-days", flags->step_days, "days between evaluation cutoffs")->capture_default_str();
  AddTrainFlags(*cmd, flags->train);
  cmd->callback([&global, flags] { RunBacktest(global, *flags); });
}

}  // namespace sibyl
