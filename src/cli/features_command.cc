// `sibyl features` (the feature matrix at a cutoff, to CSV or the binary form) and
// `sibyl cohort-size` (how many users a cohort holds at a cutoff). Both open the store
// read-only and run the queries of src/query through the embedded QueryEngine.
#include <fmt/format.h>

#include <chrono>
#include <cstdio>
#include <nlohmann/json.hpp>

#include "cli/backend.h"
#include "cli/commands.h"
#include "common/file.h"
#include "common/progress.h"
#include "common/time.h"
#include "query/query_engine.h"
#include "store/event_store.h"

namespace sibyl {
namespace {

// A read-only store (or all of a cluster, pulled) and a snapshot of it; the store outlives
// every query on the snapshot.
struct ReadOnlyStore {
  OpenedStore opened;
  std::shared_ptr<const EventReader> reader;
};

ReadOnlyStore OpenReadOnly(const GlobalOptions& global) {
  StoreOptions options{.data_dir = global.data_dir, .read_only = true};
  ReadOnlyStore opened;
  opened.opened = OpenStoreFor(global, options);
  opened.reader = opened.opened.store->Snapshot();
  return opened;
}

Result<CohortExpr> LoadCohort(const std::string& path) {
  if (path.empty()) return CohortExpr::Everyone();
  ASSIGN_OR_RETURN(std::string text, ReadFile(path));
  auto expr = ParseCohortText(text);
  if (!expr.ok()) return expr.status().WithContext(path);
  return expr;
}

double SecondsSince(std::chrono::steady_clock::time_point start) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

struct FeaturesFlags {
  std::string as_of, cohort, out, format = "csv", spec_in, spec_out;
  int top_events = 50;
  int top_properties = 10;
  int min_value_actors = TaxonomyOptions{}.min_value_actors;
};

void RunFeatures(const GlobalOptions& global, const FeaturesFlags& flags) {
  int64_t cutoff = FloorHour(Check(ParseTime(flags.as_of)));
  if (flags.format != "csv" && flags.format != "bin")
    throw CommandFailed(InvalidArgument("--format must be csv or bin, got \"{}\"", flags.format));
  CohortExpr cohort = Check(LoadCohort(flags.cohort));
  auto start = std::chrono::steady_clock::now();
  ReadOnlyStore opened = OpenReadOnly(global);
  auto engine = MakeEmbeddedQueryEngine(opened.reader);
  Progress progress("features", 4, "steps");

  UserSet users = Check(engine->Cohort(cohort, cutoff));
  progress.Update(1);
  FeatureSpec spec;
  if (!flags.spec_in.empty()) {
    std::string text = Check(ReadFile(flags.spec_in));
    auto j = nlohmann::json::parse(text, nullptr, false);
    if (j.is_discarded()) throw CommandFailed(InvalidArgument("{}: not JSON", flags.spec_in));
    spec = Check(FeatureSpecFromJson(j));
  } else {
    TaxonomyOptions options;
    options.top_events = flags.top_events;
    options.max_event_properties = flags.top_properties;
    options.min_value_actors = flags.min_value_actors;
    std::vector<std::string> events, event_props, user_props;
    CollectNames(cohort, events, event_props, user_props);
    options.required_event_types = events;
    options.required_event_properties = event_props;
    spec.taxonomy = Check(engine->BuildTaxonomy(cutoff, options));
  }
  progress.Update(2);
  double query_start = SecondsSince(start);
  FeatureMatrix matrix = Check(engine->Features(spec, cutoff, users));
  double features_s = SecondsSince(start) - query_start;
  progress.Update(3);
  std::vector<std::string> ids = engine->UserIds(users);
  if (flags.format == "csv") Check(WriteFeatureCsv(matrix, ids, flags.out));
  else Check(WriteFeatureBinary(matrix, ids, flags.out));
  if (!flags.spec_out.empty()) Check(WriteFileAtomic(flags.spec_out, ToJson(spec).dump(2) + "\n"));
  progress.Finish();

  if (global.json) {
    nlohmann::json j = {{"as_of", FormatTime(cutoff)}, {"as_of_ms", cutoff},
                        {"rows", matrix.rows()}, {"columns", matrix.cols()},
                        {"out", flags.out}, {"format", flags.format},
                        {"features_s", features_s}, {"total_s", SecondsSince(start)}};
    std::printf("%s\n", j.dump().c_str());
  } else {
    std::printf("%zu users x %zu features as of %s -> %s (%.2f s)\n", matrix.rows(), matrix.cols(),
                FormatTime(cutoff).c_str(), flags.out.c_str(), SecondsSince(start));
  }
}

}  // namespace

void AddFeaturesCommand(CLI::App& app, const GlobalOptions& global) {
  auto* cmd = app.add_subcommand(
      "features",
      "Compute the feature matrix at a cutoff: one row per cohort user, weekly event counts, "
      "event property aggregates, user properties, recency and tenure (see docs/FEATURES.md)");
  auto flags = std::make_shared<FeaturesFlags>();
  cmd->add_option("--as-of", flags->as_of, "cutoff T: ISO-8601 or epoch ms (rounded down to the hour)")
      ->required();
  cmd->add_option("--cohort", flags->cohort, "cohort JSON file (default: everyone seen before T)");
  cmd->add_option("--top-events", flags->top_events, "how many event types get columns")
      ->capture_default_str()->check(CLI::Range(1, 2000));
  cmd->add_option("--top-properties", flags->top_properties, "how many event properties get columns (the most used)")
      ->capture_default_str()
      ->check(CLI::Range(1, 1000));
  cmd->add_option("--min-value-actors", flags->min_value_actors,
                  "a value of an event property gets columns only when this many users have it (docs/FEATURES.md)")
      ->capture_default_str()
      ->check(CLI::Range(1, 1'000'000));
  cmd->add_option("--out", flags->out, "output file")->required();
  cmd->add_option("--format", flags->format, "csv or bin (docs/FORMAT.md)")->capture_default_str();
  cmd->add_option("--spec", flags->spec_in, "use this saved feature spec instead of building a taxonomy");
  cmd->add_option("--save-spec", flags->spec_out, "write the feature spec used (JSON) here");
  cmd->callback([&global, flags] { RunFeatures(global, *flags); });
}

void AddCohortSizeCommand(CLI::App& app, const GlobalOptions& global) {
  auto* cmd = app.add_subcommand("cohort-size", "Count the users of a cohort (JSON file) at a cutoff");
  auto file = std::make_shared<std::string>();
  auto as_of = std::make_shared<std::string>();
  cmd->add_option("FILE", *file, "cohort JSON file")->required();
  cmd->add_option("--as-of", *as_of, "cutoff T: ISO-8601 or epoch ms (rounded down to the hour)")->required();
  cmd->callback([&global, file, as_of] {
    int64_t cutoff = FloorHour(Check(ParseTime(*as_of)));
    CohortExpr cohort = Check(LoadCohort(*file));
    auto start = std::chrono::steady_clock::now();
    Progress progress("cohort", 1, "steps");
    ReadOnlyStore opened = OpenReadOnly(global);
    auto engine = MakeEmbeddedQueryEngine(opened.reader);
    UserSet users = Check(engine->Cohort(cohort, cutoff));
    progress.Finish();
    if (global.json) {
      nlohmann::json j = {{"as_of", FormatTime(cutoff)}, {"as_of_ms", cutoff},
                          {"users", users.actors.size()}, {"seconds", SecondsSince(start)}};
      std::printf("%s\n", j.dump().c_str());
    } else {
      std::printf("%zu users as of %s\n", users.actors.size(), FormatTime(cutoff).c_str());
    }
  });
}

}  // namespace sibyl
