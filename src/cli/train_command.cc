// `sibyl train NAME`: train a new version of a prediction at T_train = floor_hour(as_of - H)
// (src/pipeline/train_run.h, docs/PREDICTIONS.md).
#include <cstdio>
#include <memory>
#include <optional>
#include <string>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "cli/backend.h"
#include "cli/commands.h"
#include "cli/train_flags.h"
#include "common/progress.h"
#include "common/time.h"
#include "pipeline/registry.h"
#include "pipeline/train_run.h"
#include "pipeline/training_set.h"
#include "store/event_store.h"

namespace sibyl {

namespace {

void RunTrain(const GlobalOptions& global, const std::string& name, const TrainFlags& flags) {
  pipeline::PredictionRegistry registry(global.data_dir);
  pipeline::PredictionDefinition definition = Check(registry.Get(name));
  pipeline::TrainRequest request = MakeTrainRequest(flags);
  StoreOptions options{.data_dir = global.data_dir, .read_only = true};
  OpenedStore opened = OpenStoreFor(global, options, SampleSlice(flags.sample_percent));
  auto reader = opened.store->Snapshot();
  const bool default_as_of = !request.as_of_ms.has_value();
  const int64_t now = SystemClock::Instance().NowMs();
  if (default_as_of && reader->event_count() > 0) request.as_of_ms = pipeline::DefaultAsOf(*reader, now);
  const bool capped = default_as_of && reader->event_count() > 0 && reader->max_time_ms() > now;
  if (!global.json && !global.quiet && request.as_of_ms) {
    std::fprintf(stderr, "as of %s%s; training cutoff T_train = %s (labels in the %d days after it)\n",
                 FormatTime(*request.as_of_ms).c_str(),
                 capped          ? fmt::format(" (now: the store's last event, {}, is in the future)",
                                               FormatTime(reader->max_time_ms()))
                                       .c_str()
                 : default_as_of ? " (the store's last event)"
                                 : "",
                 FormatTime(pipeline::TrainCutoff(*request.as_of_ms, definition.horizon_days)).c_str(),
                 definition.horizon_days);
  }
  auto progress = std::make_shared<StageProgress>("train " + name);
  request.on_stage = [progress](std::string_view stage) { (*progress)(stage); };
  pipeline::TrainedVersion trained = Check(pipeline::TrainPrediction(registry, *reader, definition, request));
  progress->Finish();

  const nlohmann::json& s = trained.summary;
  if (global.json) {
    std::printf("%s\n", s.dump().c_str());
    return;
  }
  const nlohmann::json& m = s["metrics"];
  std::printf("trained %s version %d: %s on %zu rows x %zu features (%zu positives), %.1f s\n", name.c_str(),
              trained.version, s.value("model_type", "").c_str(), s["rows"].value("total", size_t{0}),
              s.value("features", size_t{0}), s["rows"].value("positives", size_t{0}),
              s.value("total_seconds", 0.0));
  if (const auto& f = s["fallback"]; f.is_object()) {
    std::printf("no supervised model: %s\nscores come from the BG/NBD model (%s); no held-out quality to report\n",
                f.value("reason", "").c_str(), s.value("outcome_model", "").c_str());
  } else if (m.contains("roc_auc")) {
    std::printf("held-out quality: %s (AUC %.3f, log loss %.4f, ECE %.4f, top-decile lift %.2fx, base rate %.4f)\n",
                m.value("grade", "").c_str(), m.value("roc_auc", 0.0), m.value("log_loss", 0.0), m.value("ece", 0.0),
                m.value("lift_top_decile", 0.0), m.value("base_rate", 0.0));
  } else {
    std::printf("held-out quality: %s (Spearman %.3f, MAE %.4f, R^2 %.3f)\n", m.value("grade", "").c_str(),
                m.value("spearman", 0.0), m.value("mae", 0.0), m.value("r2", 0.0));
  }
  std::string stages;
  for (const auto& t : s["stage_times"])
    stages += fmt::format("{}{} {:.2f}s", stages.empty() ? "" : ", ", t["stage"].get<std::string>(),
                          t["seconds"].get<double>());
  std::printf("stages: %s\n", stages.c_str());
  std::printf("saved in %s (sibyl predict show %s)\n", trained.dir.c_str(), name.c_str());
}

}  // namespace

void AddTrainCommand(CLI::App& app, const GlobalOptions& global) {
  auto* cmd = app.add_subcommand(
      "train", "Train a new version of a prediction: cohort, labels and features at T_train = floor_hour(as_of - H), "
               "eligibility checks, three candidates, calibration, held-out quality and drivers");
  auto name = std::make_shared<std::string>();
  auto flags = std::make_shared<TrainFlags>();
  cmd->add_option("NAME", *name, "prediction name")->required();
  // The rule's numbers come from the options' defaults, so the help cannot drift from them.
  const pipeline::TrainingSetOptions stacking;
  const std::string stack_help = fmt::format(
      "earlier weekly cutoffs stacked for more examples: K, or auto (up to {} weeks while the rows are fewer than "
      "{}; small cohorts, under {} rows, up to {} weeks while every label window starts within {} days of the "
      "as-of time: {} weeks for 30 days, {} for 90)",
      stacking.auto_stack_max, stacking.auto_stack_rows, stacking.auto_deep_stack_rows, stacking.auto_deep_stack_max,
      stacking.auto_stack_span_days, pipeline::AutoStackWeeks(30, stacking), pipeline::AutoStackWeeks(90, stacking));
  cmd->add_option("--stack", flags->stack, stack_help)->capture_default_str();
  AddTrainFlags(*cmd, *flags);
  cmd->callback([&global, name, flags] { RunTrain(global, *name, *flags); });
}

}  // namespace sibyl
