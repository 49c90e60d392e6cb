// `sibyl explain NAME USER`: a user's score and percentile and the three strongest reasons
// each way, from per-user SHAP contributions (src/scoring/insights.h, docs/SCORING.md).
#include <cstdio>
#include <memory>
#include <string>

#include <nlohmann/json.hpp>

#include "cli/backend.h"
#include "cli/commands.h"
#include "common/time.h"
#include "pipeline/registry.h"
#include "scoring/insights.h"
#include "scoring/score_run.h"
#include "store/event_store.h"

namespace sibyl {
namespace {

struct ExplainFlags {
  std::string name, user, as_of;
  int reasons = 3;
};

void RunExplain(const GlobalOptions& global, const ExplainFlags& flags) {
  pipeline::PredictionRegistry registry(global.data_dir);
  Check(registry.Get(flags.name).status());
  scoring::ScoringModel model = Check(scoring::LoadScoringModel(registry, flags.name));
  // On a cluster only this user's rows (and those deciding its identity) are pulled.
  clickhouse::SliceSpec slice;
  slice.kind = clickhouse::SliceSpec::Kind::kOwners;
  slice.owners = {flags.user.starts_with("device:") ? "d:" + flags.user.substr(7) : "u:" + flags.user};
  OpenedStore opened = OpenStoreFor(global, StoreOptions{.data_dir = global.data_dir, .read_only = true}, slice);
  auto reader = opened.store->Snapshot();
  // Percentiles on the scale of the newest full run of this version; the cutoff matches
  // the user's written-back score (scoring::ExplanationCutoff) unless --as-of is given.
  int64_t cutoff = scoring::ExplanationCutoff(registry, *reader, model, flags.user);
  std::vector<double> quantiles;
  if (auto full = scoring::LatestFullRun(registry, flags.name, model.version); full.ok())
    quantiles = (*full)["quantiles"].get<std::vector<double>>();
  if (!flags.as_of.empty()) cutoff = FloorHour(Check(ParseTime(flags.as_of)));
  scoring::UserScore user = Check(scoring::ScoreUser(*reader, model, flags.user, cutoff, quantiles));
  scoring::Explanation e = Check(scoring::Explain(model, std::move(user), static_cast<size_t>(flags.reasons)));
  if (global.json) {
    nlohmann::json j = scoring::ToJson(e);
    j["prediction"] = flags.name;
    j["cutoff"] = FormatTime(cutoff);
    std::printf("%s\n", j.dump().c_str());
    return;
  }
  const bool revenue = model.regression();
  std::printf("%s for %s as of %s (version %d): %s %.4g", flags.name.c_str(), flags.user.c_str(),
              FormatTime(cutoff).c_str(), model.version, revenue ? "predicted revenue" : "probability", e.user.score);
  if (e.user.percentile) std::printf(", percentile %.1f", *e.user.percentile);
  if (!e.user.in_cohort) std::printf(" (not in the prediction's cohort at T)");
  std::printf("\n");
  const char* unit = revenue ? "" : " log-odds";
  std::printf("raising it:\n");
  if (e.up.empty()) std::printf("  (nothing)\n");
  for (const auto& r : e.up) std::printf("  %-60s +%.3f%s\n", r.words.c_str(), r.contribution, unit);
  std::printf("lowering it:\n");
  if (e.down.empty()) std::printf("  (nothing)\n");
  for (const auto& r : e.down) std::printf("  %-60s %.3f%s\n", r.words.c_str(), r.contribution, unit);
}

}  // namespace

void AddExplainCommand(CLI::App& app, const GlobalOptions& global) {
  auto* cmd = app.add_subcommand(
      "explain", "Why a user scores as they do: score, percentile and the strongest reasons up and down");
  auto flags = std::make_shared<ExplainFlags>();
  cmd->add_option("NAME", flags->name, "prediction name")->required();
  cmd->add_option("USER", flags->user, "user id (\"device:<id>\" for an anonymous device)")->required();
  cmd->add_option("--as-of", flags->as_of, "cutoff T (default: the T of the user's written score, else of the latest full run)");
  cmd->add_option("--reasons", flags->reasons, "reasons each way")->capture_default_str();
  cmd->callback([&global, flags] { RunExplain(global, *flags); });
}

}  // namespace sibyl
