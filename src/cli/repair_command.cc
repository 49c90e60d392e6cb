// `sibyl repair`: after a store or the scheduler's run log refused to open because of
// damage, keeps every intact record, sets the damaged bytes aside (nothing is deleted)
// and reports exactly what was dropped. docs/FORMAT.md, "Torn tail or damage".
#include <fmt/format.h>
#include <fmt/ranges.h>

#include <filesystem>
#include <nlohmann/json.hpp>

#include "cli/commands.h"
#include "scheduler/run_log.h"
#include "store/repair.h"

namespace sibyl {
namespace {

nlohmann::json RepairJson(const StoreRepairReport& store, const scheduler::RunLogRepair& runs) {
  nlohmann::json s;
  s["repaired"] = !store.kept_copies.empty();
  s["events"] = store.events;
  s["damaged"] = nlohmann::json::array();
  for (const DroppedBytes& d : store.damaged)
    s["damaged"].push_back(
        {{"file", d.file}, {"offset", d.offset}, {"bytes", d.bytes}, {"reason", d.reason}, {"torn", d.torn}});
  s["transactions_dropped"] = store.transactions_dropped;
  s["events_dropped"] = store.events_dropped;
  s["damaged_batches"] = store.damaged_batches;
  s["intact_records_dropped"] = store.intact_records_dropped;
  s["stopped_reason"] = store.stopped_reason.empty() ? nlohmann::json(nullptr) : nlohmann::json(store.stopped_reason);
  s["kept_copies"] = store.kept_copies;
  nlohmann::json r;
  r["file"] = runs.path;
  r["repaired"] = !runs.kept_copy.empty();
  r["damaged"] = nlohmann::json::array();
  for (const auto& d : runs.damaged)
    r["damaged"].push_back({{"offset", d.offset}, {"bytes", d.bytes}, {"reason", d.reason}});
  r["torn"] = runs.torn ? nlohmann::json{{"offset", runs.torn->offset}, {"bytes", runs.torn->bytes},
                                          {"reason", runs.torn->reason}}
                        : nlohmann::json(nullptr);
  r["lines_kept"] = runs.lines_kept;
  r["kept_copy"] = runs.kept_copy.empty() ? nlohmann::json(nullptr) : nlohmann::json(runs.kept_copy);
  return {{"store", s}, {"runs_log", r}};
}

void PrintRepair(const StoreRepairReport& store, const scheduler::RunLogRepair& runs) {
  if (store.damaged.empty()) {
    fmt::print("store: nothing to repair ({} events)\n", store.events);
  } else {
    fmt::print("store: {} ({} events now)\n", store.kept_copies.empty() ? "only a torn tail, dropped" : "repaired",
               store.events);
    for (const DroppedBytes& d : store.damaged)
      fmt::print("  {}  {} byte {}, {} bytes: {}\n", d.torn ? "torn   " : "damaged", d.file, d.offset, d.bytes,
                 d.torn ? d.reason + " (never acknowledged)" : d.reason);
    if (!store.transactions_dropped.empty())
      fmt::print("  dropped {} transaction(s) ({}): {} events in their intact batches, {} damaged batch(es) whose "
                 "events are unknown, {} intact record(s)\n",
                 store.transactions_dropped.size(), fmt::join(store.transactions_dropped, ", "),
                 store.events_dropped, store.damaged_batches, store.intact_records_dropped);
    else if (store.damaged_batches > 0)
      fmt::print("  {} damaged batch(es) of transactions never committed\n", store.damaged_batches);
    if (!store.stopped_reason.empty()) fmt::print("  {}\n", store.stopped_reason);
    for (const std::string& copy : store.kept_copies) fmt::print("  kept as it was: {}\n", copy);
  }
  if (runs.damaged.empty()) {
    fmt::print("scheduler run log: nothing to repair{}\n", runs.torn ? " (a torn last line, cut at the next open)" : "");
    return;
  }
  fmt::print("scheduler run log: repaired ({} lines kept)\n", runs.lines_kept);
  for (const auto& d : runs.damaged)
    fmt::print("  damaged  {} byte {}, {} bytes: {}\n", runs.path, d.offset, d.bytes, d.reason);
  if (runs.torn)
    fmt::print("  torn     {} byte {}, {} bytes: {} (never acknowledged)\n", runs.path, runs.torn->offset,
               runs.torn->bytes, runs.torn->reason);
  fmt::print("  kept as it was: {}\n", runs.kept_copy);
}

}  // namespace

void AddRepairCommand(CLI::App& app, const GlobalOptions& global) {
  auto* cmd = app.add_subcommand(
      "repair",
      "After a store or the scheduler's run log refused to open because of damage (exit 6): keep every intact "
      "write-ahead-log record and run-log line, set the damaged bytes aside (each changed file is kept whole as "
      "FILE.before-repair; nothing is deleted) and report exactly what was dropped. A torn tail (a write never "
      "acknowledged) is dropped as any open drops it. Exit codes: 0 repaired or nothing to repair, 3 no data in "
      "--data, 5 the store is in use (stop `sibyl serve` or `sibyl ingest` first), 7 I/O error");
  cmd->callback([&global] {
    StoreOptions options;
    options.data_dir = global.data_dir;
    scheduler::RunLogRepair runs;
    std::string scheduler_dir = (std::filesystem::path(global.data_dir) / "scheduler").string();
    StoreRepairReport store = Check(RepairStore(options, [&]() -> Status {
      ASSIGN_OR_RETURN(runs, scheduler::RunLog::Repair(scheduler_dir));
      return Status::Ok();
    }));
    if (global.json) {
      fmt::print("{}\n", RepairJson(store, runs).dump(2));
    } else {
      PrintRepair(store, runs);
    }
  });
}

}  // namespace sibyl
