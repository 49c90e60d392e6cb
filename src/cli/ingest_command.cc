// `sibyl ingest FILE...`: parse, validate and durably append events. By default the
// whole command is one transaction: a bad line stops it and nothing is written.
#include <fmt/format.h>

#include <chrono>
#include <filesystem>
#include <nlohmann/json.hpp>

#include "cli/backend.h"
#include "cli/commands.h"
#include "clickhouse/cluster_writer.h"
#include "common/progress.h"
#include "common/time.h"
#include "ingest/csv_parser.h"
#include "ingest/file_source.h"
#include "store/event_store.h"

namespace sibyl {
namespace {

struct IngestOptions {
  std::vector<std::string> files;
  bool skip_invalid = false;
  std::string mapping;
  std::string format = "auto";
  uint64_t commit_every = 0;
  double dedup_window_days = 7;
  size_t show_errors = 10;
  double future_tolerance_hours = 24;
  std::string earliest_time = "1990-01-01";
};

struct IngestTotals {
  AppendResult appended;
  uint64_t invalid = 0;
  uint64_t acknowledged = 0;
  uint64_t skipped_rows = 0;  // CSV rows the mapping skips (no id)
  std::vector<std::string> shown_errors;
};

void RunIngest(const GlobalOptions& global, const IngestOptions& opts) {
  StoreOptions store_options;
  store_options.data_dir = global.data_dir;
  store_options.dedup_window_ms = static_cast<int64_t>(opts.dedup_window_days * kMsPerDay);
  // Into the embedded store, or into a ClickHouse cluster (docs/SCALE_OUT.md): the same
  // parsing and validation, and one transaction either way.
  std::unique_ptr<clickhouse::Cluster> cluster = OpenClusterIfChosen(global, /*save=*/true);
  std::unique_ptr<EventStore> store = cluster ? nullptr : Check(EventStore::Open(store_options));
  auto begin = [&]() -> std::unique_ptr<Transaction> {
    if (cluster) return clickhouse::BeginClusterTransaction(*cluster, clickhouse::WriterOptions{});
    return Check(store->Begin());
  };
  auto started = std::chrono::steady_clock::now();

  IngestTotals totals;
  std::unique_ptr<Transaction> txn = begin();
  // Plain NDJSON files are rarely below 400 bytes an event (generated ones are ~380 with
  // their properties, Amplitude exports more): a low estimate of the events to come, for
  // the store's de-dup index. Compressed and CSV files give no hint.
  if (opts.commit_every == 0) {
    uint64_t json_bytes = 0;
    for (const std::string& path : opts.files) {
      std::error_code ec;
      const bool plain = !path.ends_with(".gz") && !path.ends_with(".csv");
      if (auto bytes = std::filesystem::file_size(path, ec); plain && !ec) json_bytes += bytes;
    }
    txn->ExpectEvents(json_bytes / 400);
  }
  uint64_t staged_since_commit = 0;
  Progress progress("ingest", 0, "events");
  auto commit = [&] {
    Check(txn->Commit());
    totals.acknowledged = totals.appended.events_written;
    if (opts.commit_every > 0 && global.json)
      fmt::print("{}\n", nlohmann::json{{"acknowledged_events", totals.acknowledged}}.dump());
    std::fflush(stdout);
    staged_since_commit = 0;
    txn.reset();
  };

  FileParseOptions parse_options;
  // Time bounds (docs/INGEST.md): one far-future event would move the store's last event,
  // which training defaults to, past all data.
  if (opts.future_tolerance_hours < 0) throw CommandFailed(InvalidArgument("--future-tolerance-hours must be >= 0"));
  parse_options.json.validation.min_time_ms = Check(ParseTime(opts.earliest_time));
  parse_options.json.validation.max_time_ms =
      std::min(SystemClock::Instance().NowMs() + static_cast<int64_t>(opts.future_tolerance_hours * 3'600'000),
               kNoMaxTimeMs);
  if (!opts.mapping.empty()) parse_options.csv_mapping = Check(CsvMapping::FromFile(opts.mapping));
  // A mapping is only for CSV, so with one every file is CSV whatever its name (an export
  // named .txt); --format says so explicitly, and overrides the name for JSON too.
  if (opts.format == "csv" || (opts.format == "auto" && !opts.mapping.empty())) parse_options.format = FileFormat::kCsv;
  else if (opts.format == "ndjson") parse_options.format = FileFormat::kJsonLines;
  else if (opts.format == "json") parse_options.format = FileFormat::kJsonBody;
  else if (opts.format != "auto")
    throw CommandFailed(InvalidArgument("--format \"{}\": use auto, ndjson, json or csv", opts.format));
  if (parse_options.format == FileFormat::kCsv && opts.mapping.empty())
    throw CommandFailed(InvalidArgument("CSV input needs --mapping FILE (see examples/online_retail_mapping.json)"));
  // Dictionary lookups of names the store already knows happen on the parse threads.
  if (store) parse_options.prepare = [&store](EventBatch& batch) { store->Prepare(batch); };
  for (const std::string& path : opts.files) {
    Result<FileParseStats> parsed = ParseFile(path, parse_options, [&](EventBatch&& batch, std::vector<IngestError>&& errors) -> Status {
      for (const IngestError& e : errors) {
        ++totals.invalid;
        if (totals.shown_errors.size() < opts.show_errors) totals.shown_errors.push_back(e.ToString());
      }
      if (!errors.empty() && !opts.skip_invalid)
        return InvalidArgument("{}{}", errors.front().ToString(),
                               errors.size() > 1 ? fmt::format(" (and {} more in this chunk)", errors.size() - 1) : "");
      if (!txn) txn = begin();
      ASSIGN_OR_RETURN(AppendResult r, txn->Add(batch));
      totals.appended.events_written += r.events_written;
      totals.appended.duplicates_dropped += r.duplicates_dropped;
      totals.appended.identify_calls += r.identify_calls;
      totals.appended.user_property_changes += r.user_property_changes;
      totals.appended.identity_links += r.identity_links;
      staged_since_commit += batch.events.size();
      if (opts.commit_every > 0 && staged_since_commit >= opts.commit_every) commit();
      progress.Update(totals.appended.events_written);
      return Status::Ok();
    });
    if (parsed.ok()) {
      totals.skipped_rows += parsed->skipped_rows;
      continue;
    }
    const Status& st = parsed.status();
    {
      progress.Finish();
      // Everything staged since the last commit is discarded with the transaction.
      for (size_t i = 1; i < totals.shown_errors.size(); ++i)
        fmt::print(stderr, "  {}\n", totals.shown_errors[i]);
      // Short ids are Amplitude's rule (5 characters); shop exports often have shorter
      // customer numbers, which a mapping's min_id_length allows.
      const std::string id_hint = st.message().find("is shorter than") != std::string::npos
                                      ? "; for short ids in CSV, set \"min_id_length\" in the mapping (docs/INGEST.md)"
                                      : "";
      if (!st.message().empty() && st.code() == StatusCode::kInvalidArgument)
        throw CommandFailed(Status(st.code(), st.message() + id_hint + (opts.commit_every > 0 ? fmt::format(
            "; {} events were acknowledged before it", totals.acknowledged) : "; nothing was written (use --skip-invalid to ingest the valid lines)")));
      throw CommandFailed(st.WithContext(path));
    }
  }
  if (totals.appended.events_written == 0 && totals.invalid > 0) {
    progress.Finish();
    throw CommandFailed(InvalidArgument(
        "no valid events: all {} were invalid, e.g. {}", totals.invalid,
        totals.shown_errors.empty() ? std::string("-") : totals.shown_errors.front()));
  }
  if (txn) commit();
  if (store) Check(store->Checkpoint());
  progress.Finish();
  double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
  const AppendResult& a = totals.appended;
  if (global.json) {
    nlohmann::json out{{"files", opts.files.size()},
                       {"events_written", a.events_written},
                       {"duplicates_dropped", a.duplicates_dropped},
                       {"identify_calls", a.identify_calls},
                       {"user_property_changes", a.user_property_changes},
                       {"identity_links", a.identity_links},
                       {"invalid_skipped", totals.invalid},
                       {"rows_without_id_skipped", totals.skipped_rows},
                       {"invalid_examples", totals.shown_errors},
                       {"seconds", seconds},
                       {"events_per_second", seconds > 0 ? static_cast<double>(a.events_written) / seconds : 0}};
    fmt::print("{}\n", out.dump());
    return;
  }
  if (global.quiet) return;
  fmt::print("ingested {} events from {} file(s) in {:.2f} s ({:.0f} events/s)\n", a.events_written,
             opts.files.size(), seconds, seconds > 0 ? static_cast<double>(a.events_written) / seconds : 0);
  fmt::print("  duplicates dropped {}, identify calls {}, user property changes {}, identity links {}\n",
             a.duplicates_dropped, a.identify_calls, a.user_property_changes, a.identity_links);
  if (totals.skipped_rows > 0)
    fmt::print("  skipped {} CSV row(s) without an id (the mapping says so)\n", totals.skipped_rows);
  if (totals.invalid > 0) {
    fmt::print("  skipped {} invalid event(s); first ones:\n", totals.invalid);
    for (const auto& e : totals.shown_errors) fmt::print("    {}\n", e);
  }
}

// A failed ingest into a data directory it created leaves none behind (a first ingest that
// fails would otherwise leave an empty store that later commands take for data).
void Run(const GlobalOptions& global, const IngestOptions& opts) {
  std::error_code ec;
  const bool created = !std::filesystem::exists(global.data_dir, ec);
  try {
    RunIngest(global, opts);
  } catch (const CommandFailed&) {
    if (created) std::filesystem::remove_all(global.data_dir, ec);
    throw;
  }
}

}  // namespace

void AddIngestCommand(CLI::App& app, const GlobalOptions& global) {
  auto opts = std::make_shared<IngestOptions>();
  auto* cmd = app.add_subcommand(
      "ingest",
      "Load events from files: NDJSON (Amplitude events/identify, Segment messages), Amplitude "
      "or Segment request bodies, or CSV with --mapping; .gz is read directly. By default the "
      "command is all or nothing: an invalid event stops it and nothing is written.");
  cmd->add_option("files", opts->files, "input files ('-' for standard input)")->required();
  cmd->add_flag("--skip-invalid", opts->skip_invalid, "ingest the valid events and report the invalid ones");
  cmd->add_option("--mapping", opts->mapping,
                  "column mapping (JSON) for CSV input, see examples/; with it every file is read as CSV");
  cmd->add_option("--format", opts->format,
                  "auto (by name and content; CSV with --mapping), ndjson, json (one request body) or csv")
      ->capture_default_str();
  cmd->add_option("--commit-every", opts->commit_every,
                  "commit (make durable) every N events instead of once at the end; with --json "
                  "each commit prints {\"acknowledged_events\": N}");
  cmd->add_option("--dedup-window-days", opts->dedup_window_days,
                  "drop an event whose insert_id was ingested within this many days")
      ->capture_default_str();
  cmd->add_option("--future-tolerance-hours", opts->future_tolerance_hours,
                  "refuse events timed more than this after the wall clock")
      ->capture_default_str();
  cmd->add_option("--earliest-time", opts->earliest_time,
                  "refuse events timed before this (ISO date or epoch ms)")
      ->capture_default_str();
  cmd->callback([&global, opts] { Run(global, *opts); });
}

}  // namespace sibyl
