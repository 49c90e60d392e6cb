// `sibyl repair` for the embedded store: keeps every intact write-ahead-log record that
// can be applied consistently, sets the rest aside and says exactly what was dropped.
// See docs/FORMAT.md, "Torn tail or damage".
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "common/status.h"
#include "store/event_store.h"

namespace sibyl {

// Bytes of a log that repair could not keep.
struct DroppedBytes {
  std::string file;  // path of the log
  uint64_t offset = 0;
  uint64_t bytes = 0;
  std::string reason;
  bool torn = false;  // a write that was never acknowledged (dropped by any open)
};

struct StoreRepairReport {
  std::vector<DroppedBytes> damaged;  // damaged stretches and torn tails, in log order
  // Intact records dropped with the damage: batches and commits of a transaction that
  // lost a record, and everything after damage that repair cannot apply consistently.
  uint64_t intact_records_dropped = 0;
  std::vector<uint64_t> transactions_dropped;  // committed or not, ids in log order
  uint64_t events_dropped = 0;                 // in the intact batches of those
  uint64_t damaged_batches = 0;                // damaged batch records: their events are unknown
  std::string stopped_reason;                  // why nothing after the damage was kept, or empty
  std::vector<std::string> kept_copies;        // each changed log as it was, kept aside
  uint64_t events = 0;                         // in the repaired store
  bool changed() const { return !damaged.empty(); }
};

// Opens the store in `options.data_dir` for writing (it takes LOCK), replays its logs
// keeping what is intact, copies each log it drops anything from to
// `wal/NNNNNN.log.before-repair`, and checkpoints, so the store opens again without the
// damage. A store without damage is only opened and closed.
// `also_under_lock` runs after the store's repair, while LOCK is still held (the
// scheduler's run log is repaired there, so no `sibyl serve` appends to it meanwhile).
Result<StoreRepairReport> RepairStore(const StoreOptions& options,
                                      const std::function<Status()>& also_under_lock = nullptr);

}  // namespace sibyl
