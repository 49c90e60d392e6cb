// The scheduler's durable state: one append-only file, `runs.log`, of checksummed JSON
// lines (docs/FORMAT.md, "Scheduler state"). Each line is either the latest state of one
// run or the schedule of one (prediction, kind); replay keeps the last line of each.
// Every append is fdatasync'd before the caller goes on, so what the HTTP API reported
// survives kill -9. A torn last line (cut short, or zero-filled sectors) is dropped at
// open; damage to a synced line is a corruption error naming the file and offset, and
// `sibyl repair` (RunLog::Repair) keeps every intact line.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "common/file.h"
#include "common/status.h"
#include "scheduler/scheduler.h"

namespace sibyl::scheduler {

// Where the cadence of one (prediction, kind) stands. Both empty means "forgotten": the
// prediction was removed, and if it comes back it is new.
struct ScheduleState {
  // Due time of the last run queued by the cadence: the next is due at anchor + interval.
  std::optional<int64_t> anchor_ms;
  // The `now_ms` given to the last successful run (the next score_active's since_ms).
  std::optional<int64_t> last_success_ms;
  bool empty() const { return !anchor_ms && !last_success_ms; }
};

using ScheduleKey = std::pair<std::string, JobKind>;
using ScheduleMap = std::map<ScheduleKey, ScheduleState>;
using RunMap = std::map<uint64_t, RunRecord>;  // by id, i.e. in creation order

// Bytes of runs.log that are not an intact line.
struct RunLogDamage {
  uint64_t offset = 0;
  uint64_t bytes = 0;
  std::string reason;
};

// What RunLog::Repair did.
struct RunLogRepair {
  std::string path;
  std::vector<RunLogDamage> damaged;  // dropped: each a stretch of one or more lines
  std::optional<RunLogDamage> torn;   // a torn tail, left for the next open to cut
  size_t lines_kept = 0;
  std::string kept_copy;  // runs.log.before-repair, when anything was dropped
};

class RunLog {
 public:
  struct Replayed {
    RunMap runs;            // latest state of every run in the file
    ScheduleMap schedules;  // non-empty schedule states
    size_t records = 0;     // lines in the file after open
    bool dropped_torn_tail = false;
  };
  struct Opened {
    std::unique_ptr<RunLog> log;
    Replayed state;
  };

  // Creates `dir` if missing, replays `dir/runs.log` and truncates a torn tail.
  static Result<Opened> Open(const std::string& dir);

  // Keeps every intact line of `dir/runs.log` (each is the latest state of one run or
  // schedule, so any subset replays consistently) after copying the file whole to
  // runs.log.before-repair; does nothing when no line is damaged. Not while the
  // scheduler runs (`sibyl repair` holds the store's LOCK, as `sibyl serve` does).
  static Result<RunLogRepair> Repair(const std::string& dir);

  Status AppendRun(const RunRecord& run);
  Status AppendSchedule(const ScheduleKey& key, const ScheduleState& state);
  // Replaces the file by one holding exactly `runs` and `schedules` (atomic rename), so
  // the history stays bounded.
  Status Rewrite(const RunMap& runs, const ScheduleMap& schedules);

  size_t records() const { return records_; }
  const std::string& path() const { return path_; }

 private:
  RunLog(std::string path, std::unique_ptr<AppendFile> file, size_t records)
      : path_(std::move(path)), file_(std::move(file)), records_(records) {}
  Status AppendLine(const std::string& json_text);

  std::string path_;
  std::unique_ptr<AppendFile> file_;
  size_t records_;
};

}  // namespace sibyl::scheduler
