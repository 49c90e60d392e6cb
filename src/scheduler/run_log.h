// The scheduler's durable state: one append-only file, `runs.log`, of checksummed JSON
// lines (docs/FORMAT.md, "Scheduler state"). Each line is either the latest state of one
// run or the schedule of one (prediction, kind); replay keeps the last line of each.
// Every append is fdatasync'd before the caller goes on, so what the HTTP API reported
// survives kill -9. A torn last line is dropped at open; a bad line followed by good ones
// is corruption.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <utility>

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
