// `sibyl predict create|list|show|delete`: prediction definitions in the data directory
// and what their trained versions look like (src/pipeline, docs/PREDICTIONS.md).
#include <cstdio>
#include <memory>
#include <string>
#include <vector>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "cli/backend.h"
#include "clickhouse/cluster_names.h"
#include "cli/commands.h"
#include "common/file.h"
#include "common/time.h"
#include "ml/drivers.h"
#include "ml/report_html.h"
#include "pipeline/feature_words.h"
#include "pipeline/prediction.h"
#include "pipeline/registry.h"
#include "pipeline/train_run.h"
#include "store/event_store.h"

namespace sibyl {
namespace {

using pipeline::PredictionDefinition;
using pipeline::PredictionRegistry;

struct CreateFlags {
  std::string name_arg, file, name, kind, event, cohort, revenue_property;
  std::vector<std::string> where;
  int horizon_days = 0, active_within_days = 0, train_every_hours = 0, score_every_hours = 0;
  bool replace = false;
};

Result<nlohmann::json> ParseJsonArg(const std::string& text, const std::string& what) {
  std::string body = text;
  if (!text.empty() && text[0] == '@') {
    ASSIGN_OR_RETURN(body, ReadFile(text.substr(1)));
  }
  auto j = nlohmann::json::parse(body, nullptr, false);
  if (j.is_discarded()) return InvalidArgument("{} is not valid JSON: {}", what, text);
  return j;
}

// The definition JSON from --file, with any flags laid over it.
Result<nlohmann::json> DefinitionJson(const CreateFlags& f) {
  nlohmann::json j = nlohmann::json::object();
  if (!f.file.empty()) {
    ASSIGN_OR_RETURN(std::string text, ReadFile(f.file == "-" ? "/dev/stdin" : f.file));
    j = nlohmann::json::parse(text, nullptr, false);
    if (j.is_discarded() || !j.is_object()) return InvalidArgument("{}: not a JSON object", f.file);
  }
  if (!f.name_arg.empty()) j["name"] = f.name_arg;
  if (!f.name.empty()) j["name"] = f.name;
  if (!f.kind.empty()) j["kind"] = f.kind;
  if (!f.event.empty()) j["outcome"]["event"] = f.event;
  if (!f.where.empty()) j["outcome"]["where"] = f.where;  // compact "plan = pro" filters
  if (f.horizon_days != 0) j["horizon_days"] = f.horizon_days;
  if (!f.revenue_property.empty()) j["revenue_property"] = f.revenue_property;
  if (!f.cohort.empty()) {
    ASSIGN_OR_RETURN(j["cohort"], ParseJsonArg(f.cohort, "--cohort"));
  }
  if (f.active_within_days > 0) {
    nlohmann::json active = {{"active_within_days", f.active_within_days}};
    if (j.contains("cohort")) j["cohort"] = {{"all", {j["cohort"], active}}};
    else j["cohort"] = {{"all", {active}}};
  }
  if (f.train_every_hours > 0) j["refresh"]["train_every_hours"] = f.train_every_hours;
  if (f.score_every_hours > 0) j["refresh"]["score_every_hours"] = f.score_every_hours;
  return j;
}

void RunCreate(const GlobalOptions& global, const CreateFlags& flags) {
  nlohmann::json j = Check(DefinitionJson(flags));
  PredictionDefinition definition = Check(pipeline::ParsePredictionDefinition(j));
  {
    StoreOptions options{.data_dir = global.data_dir, .read_only = true};
    if (auto cluster = OpenClusterIfChosen(global)) {
      // The names only, not a pull of every event (clickhouse/cluster_names.h).
      Check(pipeline::ValidateAgainstStore(definition, Check(clickhouse::ReadStoreNames(*cluster))));
    } else {
      auto store = EventStore::Open(options);
      if (!store.ok()) {
        throw CommandFailed(store.status().WithContext(
            fmt::format("cannot check the names against the store in {}", global.data_dir)));
      }
      Check(pipeline::ValidateAgainstStore(definition, *(*store)->Snapshot()));
    }
  }
  PredictionRegistry registry(global.data_dir);
  Check(registry.Create(definition, flags.replace));
  if (global.json) {
    std::printf("%s\n", pipeline::ToJson(definition).dump().c_str());
  } else {
    std::printf("created prediction %s: %s, %s\n", definition.name.c_str(),
                pipeline::PredictionKindName(definition.kind), pipeline::DescribeDefinition(definition).c_str());
    std::printf("next: sibyl train %s\n", definition.name.c_str());
  }
}

// The newest version's summary, or null.
nlohmann::json LatestSummary(const PredictionRegistry& registry, const std::string& name, int* version_out) {
  auto versions = registry.Versions(name);
  if (!versions.ok() || versions->empty()) return nullptr;
  const int v = versions->back();
  if (version_out) *version_out = v;
  auto summary = pipeline::ReadVersionSummary(registry, name, v);
  return summary.ok() ? *summary : nlohmann::json();
}

std::string QualityWords(const nlohmann::json& metrics) {
  if (!metrics.is_object()) return "not trained";
  // A BG/NBD stand-in (no labels) has nothing measured.
  if (metrics.value("count", size_t{1}) == 0) return "BG/NBD, not measured";
  if (metrics.contains("roc_auc"))
    return fmt::format("{} (AUC {:.3f})", metrics.value("grade", ""), metrics.value("roc_auc", 0.0));
  return fmt::format("{} (Spearman {:.3f})", metrics.value("grade", ""), metrics.value("spearman", 0.0));
}

void RunList(const GlobalOptions& global) {
  PredictionRegistry registry(global.data_dir);
  auto definitions = Check(registry.List());
  nlohmann::json out = nlohmann::json::array();
  for (const PredictionDefinition& d : definitions) {
    int version = 0;
    nlohmann::json latest = LatestSummary(registry, d.name, &version);
    nlohmann::json row = {{"name", d.name}, {"kind", pipeline::PredictionKindName(d.kind)},
                          {"horizon_days", d.horizon_days}, {"description", pipeline::DescribeDefinition(d)},
                          {"latest_version", version}};
    if (latest.is_object()) row["metrics"] = latest["metrics"];
    out.push_back(row);
  }
  if (global.json) {
    std::printf("%s\n", out.dump().c_str());
    return;
  }
  if (out.empty()) {
    std::printf("no predictions yet (sibyl predict create --help)\n");
    return;
  }
  std::printf("%-24s %-10s %-8s %-8s %s\n", "name", "kind", "horizon", "version", "quality");
  for (const auto& row : out) {
    std::printf("%-24s %-10s %-8s %-8s %s\n", row["name"].get<std::string>().c_str(),
                row["kind"].get<std::string>().c_str(), fmt::format("{}d", row["horizon_days"].get<int>()).c_str(),
                row["latest_version"].get<int>() ? std::to_string(row["latest_version"].get<int>()).c_str() : "-",
                QualityWords(row.value("metrics", nlohmann::json())).c_str());
  }
}

struct ShowFlags {
  std::string name, html;
  int version = 0;
  int drivers = 10;
};

void PrintClassificationMetrics(const nlohmann::json& m) {
  std::printf("  grade           %s\n", m.value("grade", "").c_str());
  std::printf("  ROC AUC         %.4f", m.value("roc_auc", 0.0));
  if (auto interval = m.find("roc_auc_interval"); interval != m.end() && interval->size() == 2)
    std::printf("  (95%% interval over users %.4f-%.4f: differences inside it are noise)",
                (*interval)[0].get<double>(), (*interval)[1].get<double>());
  std::printf("\n");
  std::printf("  PR AUC          %.4f\n", m.value("pr_auc", 0.0));
  std::printf("  log loss        %.4f\n", m.value("log_loss", 0.0));
  std::printf("  Brier score     %.4f\n", m.value("brier", 0.0));
  std::printf("  calibration     ECE %.4f (10 bins)", m.value("ece", 0.0));
  if (auto floor = m.find("ece_floor"); floor != m.end() && floor->is_number())
    std::printf("  (a calibrated model would show about %.4f on these users: an ECE near that is noise)",
                floor->get<double>());
  std::printf("\n");
  std::printf("  top-decile lift %.2fx\n", m.value("lift_top_decile", 0.0));
  std::printf("  base rate       %.4f (%zu of %zu held-out users)\n", m.value("base_rate", 0.0),
              m.value("positives", size_t{0}), m.value("count", size_t{0}));
}

void PrintRegressionMetrics(const nlohmann::json& m) {
  std::printf("  grade           %s\n", m.value("grade", "").c_str());
  std::printf("  Spearman        %.4f\n", m.value("spearman", 0.0));
  std::printf("  MAE             %.4f\n", m.value("mae", 0.0));
  std::printf("  RMSE            %.4f\n", m.value("rmse", 0.0));
  std::printf("  R^2             %.4f\n", m.value("r2", 0.0));
  if (m.contains("top_decile_share")) {
    std::printf("  top 10%%         the tenth predicted highest hold %.1f%% of the actual amount\n",
                100 * m["top_decile_share"].get<double>());
  }
  std::printf("  mean actual     %.4f over %zu held-out users\n", m.value("mean_actual", 0.0),
              m.value("count", size_t{0}));
}

void RunShow(const GlobalOptions& global, const ShowFlags& flags) {
  PredictionRegistry registry(global.data_dir);
  PredictionDefinition definition = Check(registry.Get(flags.name));
  std::vector<int> versions = Check(registry.Versions(flags.name));
  nlohmann::json out = {{"definition", pipeline::ToJson(definition)}, {"versions", nlohmann::json::array()}};
  for (int v : versions) {
    auto summary = pipeline::ReadVersionSummary(registry, flags.name, v);
    if (!summary.ok()) {  // a damaged version.json is shown with its error, naming the file
      out["versions"].push_back({{"version", v}, {"error", summary.status().message()}});
      continue;
    }
    nlohmann::json& s = *summary;
    out["versions"].push_back({{"version", v}, {"trained_at", s["trained_at"]},
                               {"train_cutoff", s["data_window"]["train_cutoff"]},
                               {"model_type", s["model_type"]}, {"metrics", s["metrics"]}});
  }
  const int version = flags.version ? flags.version : (versions.empty() ? 0 : versions.back());
  std::optional<pipeline::LoadedVersion> loaded;
  if (version) {
    loaded = Check(pipeline::LoadVersion(registry, flags.name, version));
    out["shown_version"] = version;
    out["summary"] = loaded->summary;
    out["drivers"] = pipeline::DriversJson(loaded->bundle);
    out["topic_drivers"] = pipeline::TopicDriversJson(loaded->bundle);
    out["candidates"] = loaded->bundle.candidates;
  }
  if (!flags.html.empty()) {
    if (!loaded) throw CommandFailed(FailedPrecondition("prediction \"{}\" has no trained version yet: sibyl train {}",
                                                        flags.name, flags.name));
    const ml::ReportInput input = pipeline::ReportInputOf(
        *loaded, fmt::format("{} (version {}): {}", flags.name, version, pipeline::DescribeDefinition(definition)));
    Check(WriteFileAtomic(flags.html, ml::RenderReportHtml(input)));
    out["html"] = flags.html;
  }
  if (global.json) {
    std::printf("%s\n", out.dump().c_str());
    return;
  }

  std::printf("%s: %s %s\n", definition.name.c_str(), pipeline::PredictionKindName(definition.kind),
              pipeline::DescribeDefinition(definition).c_str());
  std::printf("cohort: %s\n", definition.cohort.dump().c_str());
  if (!loaded) {
    std::printf("not trained yet: sibyl train %s\n", definition.name.c_str());
    return;
  }
  const nlohmann::json& s = loaded->summary;
  const nlohmann::json& w = s["data_window"];
  std::printf("\nversion %d, trained %s; training cutoff %s (as of %s), %zu cutoff(s); %zu rows x %zu features\n",
              version, s.value("trained_at", "").c_str(), w.value("train_cutoff", "").c_str(),
              w.value("as_of", "").c_str(), w["cutoffs"].size(), s["rows"].value("total", size_t{0}),
              s.value("features", size_t{0}));
  std::printf("winner: %s; held-out users: %zu\n", s.value("model_type", "").c_str(),
              s["rows"].value("test", size_t{0}));
  const std::string selection = loaded->bundle.parameters.value("selection", std::string());
  if (const auto& f = s["fallback"]; f.is_object()) {
    std::printf("\nno supervised model: %s\nscores come from the BG/NBD model (%s); there are no labels, so no "
                "held-out quality\n",
                f.value("reason", "").c_str(), s.value("outcome_model", "").c_str());
  } else {
    const nlohmann::json cv = loaded->bundle.parameters.value("cross_validation", nlohmann::json::object());
    // "every cutoff" / "newest cutoff"; bundles before session 20 chose where they calibrated.
    const std::string calibrated_on = cv.value("calibrated_on", std::string("every cutoff"));
    const std::string selected_on = cv.value("selected_on", calibrated_on);
    auto rows_of = [](const std::string& where) { return where == "every cutoff" ? where : "the " + where; };
    std::printf("\nquality on held-out users%s\n",
                selection.empty() ? ""
                                  : fmt::format(" (out of fold: {}; chosen on {}'s rows, calibrated on {}'s scores)",
                                                selection, rows_of(selected_on), rows_of(calibrated_on))
                                        .c_str());
    if (loaded->bundle.task == ml::TaskKind::kRegression) PrintRegressionMetrics(s["metrics"]);
    else PrintClassificationMetrics(s["metrics"]);
    const nlohmann::json final_model = loaded->bundle.parameters.value("final_model", nlohmann::json::object());
    if (final_model.value("fitted_on", std::string()) == "fit and held-out users")
      std::printf("final model: the winner fitted again on the fit and held-out users (%zu rows) and calibrated "
                  "again; the quality above is the winner's before, on users it had not seen\n",
                  final_model.value("rows", size_t{0}));
    else if (final_model.value("fitted_on", std::string()) == "fold models")
      std::printf("final model: the mean of the winner's %d fold models, the ones whose out-of-fold scores are "
                  "measured above\n",
                  final_model.value("folds", 0));
    // Revenue has no seasonal shift (probabilities only): its record has an empty note.
    if (const std::string note = s.value("seasonal_shift", nlohmann::json::object()).value("note", "");
        !note.empty())
      std::printf("seasonal shift of the scores: %s\n", note.c_str());
  }

  std::printf("\ncandidates\n");
  for (const auto& c : loaded->bundle.candidates) {
    // Chosen on another loss than the one shown (every stacked cutoff's rows): say which.
    const nlohmann::json metrics = c.value("metrics", nlohmann::json::object());
    const std::string chosen_on = c.contains("selection_loss")
                                      ? fmt::format("  ({} {:.4f} on every cutoff)", ml::SelectionLossName(metrics),
                                                    c["selection_loss"].get<double>())
                                      : std::string();
    const std::string model = c.value("model", "");
    if (c.contains("error")) {
      std::printf("  %-24s failed: %s\n", model.c_str(), c["error"].get<std::string>().c_str());
    } else if (c["metrics"].value("count", size_t{1}) == 0) {
      std::printf("  %-24s no labels to measure it on%s\n", model.c_str(),
                  c.value("selected", false) ? "  <- selected" : "");
    } else if (c["metrics"].contains("roc_auc")) {
      std::printf("  %-24s AUC %.4f  log loss %.4f  ECE %.4f%s  %.1f s%s\n", model.c_str(),
                  c["metrics"].value("roc_auc", 0.0), c["metrics"].value("log_loss", 0.0),
                  c["metrics"].value("ece", 0.0), chosen_on.c_str(), c.value("train_seconds", 0.0),
                  c.value("selected", false) ? "  <- selected" : "");
    } else {
      const std::string deviance_text =
          metrics.contains("poisson_deviance")
              ? fmt::format("  Poisson deviance {:.4f}", metrics["poisson_deviance"].get<double>())
              : "";
      std::printf("  %-24s Spearman %.4f  RMSE %.4f%s%s  %.1f s%s\n", model.c_str(),
                  c["metrics"].value("spearman", 0.0), c["metrics"].value("rmse", 0.0), deviance_text.c_str(),
                  chosen_on.c_str(), c.value("train_seconds", 0.0), c.value("selected", false) ? "  <- selected" : "");
    }
  }
  const char* unit = loaded->bundle.task == ml::TaskKind::kRegression ? "amount" : "log-odds";
  if (!out["topic_drivers"].empty()) {
    // Behaviours first: a column's own sign can mislead among collinear columns.
    std::printf("\ndrivers by behaviour (mean |SHAP| of the behaviour's columns summed, in %s)\n", unit);
    int shown = 0;
    for (const auto& d : out["topic_drivers"]) {
      if (shown++ >= flags.drivers) break;
      std::printf("  %6.3f  %-44s led by %s: %s\n", d["importance"].get<double>(), d["topic"].get<std::string>().c_str(),
                  d["words"].get<std::string>().c_str(), d["direction_words"].get<std::string>().c_str());
    }
  }
  std::printf("\ndrivers by column (mean |SHAP| in %s)\n", unit);
  int shown = 0;
  for (const auto& d : out["drivers"]) {
    if (shown++ >= flags.drivers) break;
    std::printf("  %6.3f  %-52s %s\n", d["importance"].get<double>(), d["words"].get<std::string>().c_str(),
                d["direction_words"].get<std::string>().c_str());
  }
  std::printf("\nversions\n");
  for (const auto& v : out["versions"]) {
    if (v.contains("error")) {
      std::printf("  %3d  unreadable: %s\n", v["version"].get<int>(), v["error"].get<std::string>().c_str());
      continue;
    }
    std::printf("  %3d  trained %s  cutoff %s  %-24s %s\n", v["version"].get<int>(),
                v.value("trained_at", "").c_str(), v.value("train_cutoff", "").c_str(),
                v.value("model_type", "").c_str(), QualityWords(v["metrics"]).c_str());
  }
  if (!flags.html.empty()) std::printf("\nreport page: %s\n", flags.html.c_str());
}

}  // namespace

void AddPredictCommand(CLI::App& app, const GlobalOptions& global) {
  auto* predict = app.add_subcommand("predict", "Define predictions and look at their trained versions "
                                                "(see docs/PREDICTIONS.md)");
  predict->require_subcommand(1);

  auto create_flags = std::make_shared<CreateFlags>();
  auto* create = predict->add_subcommand(
      "create", "Define a prediction from a JSON file (--file) and/or flags; names are checked against the store");
  CreateFlags& c = *create_flags;
  create->add_option("NAME", c.name_arg, "prediction name (letters, digits, _ and -)");
  create->add_option("--file", c.file, "definition JSON file ('-' for stdin); flags override its fields");
  create->add_option("--name", c.name, "prediction name");
  create->add_option("--kind", c.kind, "propensity, churn or revenue");
  create->add_option("--event", c.event, "outcome event type (propensity: required; churn: default any event)");
  create->add_option("--where", c.where, "outcome event property filter, e.g. 'plan = pro' (repeatable)");
  create->add_option("--horizon-days", c.horizon_days, "horizon H in days (1..365)");
  create->add_option("--revenue-property", c.revenue_property, "revenue: the numeric event property to sum");
  create->add_option("--cohort", c.cohort, "starting cohort as JSON, or @FILE (default: everyone)");
  create->add_option("--active-within-days", c.active_within_days, "cohort: only users active in the last N days");
  create->add_option("--train-every-hours", c.train_every_hours, "refresh: retrain every N hours (default 24)");
  create->add_option("--score-every-hours", c.score_every_hours, "refresh: rescore every N hours (default 1)");
  create->add_flag("--replace", c.replace, "replace an existing definition (its versions are kept)");
  create->callback([&global, create_flags] { RunCreate(global, *create_flags); });

  auto* list = predict->add_subcommand("list", "List the predictions and their latest quality");
  list->callback([&global] { RunList(global); });

  auto show_flags = std::make_shared<ShowFlags>();
  auto* show = predict->add_subcommand(
      "show", "A prediction's definition, quality on held-out users, drivers and versions");
  show->add_option("NAME", show_flags->name, "prediction name")->required();
  show->add_option("--version", show_flags->version, "version to show (default: the latest)");
  show->add_option("--drivers", show_flags->drivers, "how many drivers to print")->capture_default_str();
  show->add_option("--html", show_flags->html, "also write a self-contained report page (HTML) here");
  show->callback([&global, show_flags] { RunShow(global, *show_flags); });

  auto delete_name = std::make_shared<std::string>();
  auto* del = predict->add_subcommand("delete", "Delete a prediction and all its trained versions");
  del->add_option("NAME", *delete_name, "prediction name")->required();
  del->callback([&global, delete_name] {
    PredictionRegistry registry(global.data_dir);
    Check(registry.Delete(*delete_name));
    if (global.json) std::printf("%s\n", nlohmann::json{{"deleted", *delete_name}}.dump().c_str());
    else std::printf("deleted prediction %s\n", delete_name->c_str());
  });
}

}  // namespace sibyl
