// `sibyl cohort NAME --top 20%`: export a predictive cohort, the users with the highest
// (or lowest) written-back scores, as CSV or NDJSON (docs/SCORING.md).
#include <cstdio>
#include <memory>
#include <string>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "cli/backend.h"
#include "cli/commands.h"
#include "common/file.h"
#include "pipeline/registry.h"
#include "scoring/cohort_export.h"
#include "scoring/scoring.h"
#include "store/event_store.h"

namespace sibyl {
namespace {

struct CohortFlags {
  std::string name;
  std::string top, bottom;
  double min_score = -1e300;
  std::string format;  // csv or ndjson; default csv, ndjson with --json
  std::string out;
};

std::string CsvField(const std::string& s) {
  if (s.find_first_of(",\"\n\r") == std::string::npos) return s;
  std::string out = "\"";
  for (char c : s) out += c == '"' ? std::string("\"\"") : std::string(1, c);
  return out + "\"";
}

void RunCohort(const GlobalOptions& global, const CohortFlags& flags) {
  if (!flags.top.empty() && !flags.bottom.empty()) Check(InvalidArgument("give --top or --bottom, not both"));
  const std::string format = !flags.format.empty() ? flags.format : global.json ? "ndjson" : "csv";
  if (format != "csv" && format != "ndjson")
    Check(InvalidArgument("--format \"{}\": use csv or ndjson", format));
  pipeline::PredictionRegistry registry(global.data_dir);
  Check(registry.Get(flags.name).status());
  OpenedStore opened = OpenStoreFor(global, StoreOptions{.data_dir = global.data_dir, .read_only = true});
  auto reader = opened.store->Snapshot();
  std::vector<scoring::WrittenScore> scores = scoring::ReadWrittenScores(*reader, flags.name);
  if (scores.empty())
    Check(FailedPrecondition("no scores of {} in the store yet: run `sibyl score {}` first", flags.name, flags.name));
  scoring::CohortSelection selection;
  selection.min_score = flags.min_score;
  if (!flags.top.empty() || !flags.bottom.empty()) {
    bool top = !flags.top.empty();
    auto [amount, percent] = Check(scoring::ParseCohortAmount(top ? "--top" : "--bottom", top ? flags.top : flags.bottom));
    if (percent) (top ? selection.top_percent : selection.bottom_percent) = amount;
    else (top ? selection.top_count : selection.bottom_count) = static_cast<size_t>(amount);
  }
  const size_t scored = scores.size();
  std::vector<scoring::WrittenScore> chosen = scoring::SelectCohort(std::move(scores), selection);

  std::string text;
  if (format == "csv") text = "user_id,score,percentile,model_version\n";
  for (const auto& w : chosen) {
    if (format == "csv") {
      text += fmt::format("{},{},{},{}\n", CsvField(w.user_id), w.score, w.percentile, w.version);
    } else {
      text += nlohmann::json{{"user_id", w.user_id}, {"score", w.score}, {"percentile", w.percentile},
                             {"model_version", w.version}}
                  .dump() +
              "\n";
    }
  }
  if (flags.out.empty()) {
    std::fwrite(text.data(), 1, text.size(), stdout);
  } else {
    Check(WriteFileAtomic(flags.out, text));
    if (global.json)
      std::printf("%s\n", nlohmann::json{{"out", flags.out}, {"format", format}, {"users", chosen.size()},
                                         {"scored_users", scored}}
                              .dump()
                              .c_str());
    else if (!global.quiet)
      std::fprintf(stderr, "wrote %zu of %zu scored users to %s\n", chosen.size(), scored, flags.out.c_str());
  }
}

}  // namespace

void AddCohortCommand(CLI::App& app, const GlobalOptions& global) {
  auto* cmd = app.add_subcommand(
      "cohort", "Export a predictive cohort: users with their written-back score and percentile, best first");
  auto flags = std::make_shared<CohortFlags>();
  cmd->add_option("NAME", flags->name, "prediction name")->required();
  cmd->add_option("--top", flags->top, "the best users: \"20%\" (percentile >= 80) or a number (\"500\")");
  cmd->add_option("--bottom", flags->bottom, "the worst users: \"20%\" (percentile <= 20) or a number");
  cmd->add_option("--min-score", flags->min_score, "only users scoring at least this");
  cmd->add_option("--format", flags->format, "csv or ndjson (default: csv; with --json, ndjson)");
  cmd->add_option("--out", flags->out, "write to this file instead of stdout");
  cmd->callback([&global, flags] { RunCohort(global, *flags); });
}

}  // namespace sibyl
