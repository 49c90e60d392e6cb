#include "scheduler/run_log.h"

#include <fmt/format.h>

#include <optional>
#include <string_view>
#include <vector>

namespace sibyl::scheduler {

std::string_view JobKindName(JobKind kind) {
  switch (kind) {
    case JobKind::kTrain:
      return "train";
    case JobKind::kScoreActive:
      return "score_active";
    case JobKind::kScoreFull:
      return "score_full";
  }
  return "unknown";
}

std::optional<JobKind> ParseJobKind(std::string_view name) {
  for (JobKind kind : {JobKind::kTrain, JobKind::kScoreActive, JobKind::kScoreFull}) {
    if (JobKindName(kind) == name) return kind;
  }
  return std::nullopt;
}

nlohmann::json ToJson(const RunRecord& run) {
  return nlohmann::json{{"id", run.id},
                        {"prediction", run.prediction},
                        {"kind", JobKindName(run.kind)},
                        {"trigger", run.trigger},
                        {"attempt", run.attempt},
                        {"due_ms", run.due_ms},
                        {"started_ms", run.started_ms},
                        {"finished_ms", run.finished_ms},
                        {"state", run.state},
                        {"error", run.error},
                        {"detail", run.detail}};
}

Result<RunRecord> RunRecordFromJson(const nlohmann::json& j) {
  try {
    RunRecord run;
    run.id = j.at("id").get<uint64_t>();
    run.prediction = j.at("prediction").get<std::string>();
    auto kind = ParseJobKind(j.at("kind").get<std::string>());
    if (!kind) return InvalidArgument("run {}: unknown kind {}", run.id, j.at("kind").dump());
    run.kind = *kind;
    run.trigger = j.at("trigger").get<std::string>();
    run.attempt = j.at("attempt").get<int>();
    run.due_ms = j.at("due_ms").get<int64_t>();
    run.started_ms = j.at("started_ms").get<int64_t>();
    run.finished_ms = j.at("finished_ms").get<int64_t>();
    run.state = j.at("state").get<std::string>();
    run.error = j.at("error").get<std::string>();
    run.detail = j.value("detail", nlohmann::json());
    return run;
  } catch (const nlohmann::json::exception& e) {
    return InvalidArgument("run record: {}", e.what());
  }
}

namespace {

constexpr std::string_view kLogName = "runs.log";

nlohmann::json OptionalMs(const std::optional<int64_t>& ms) {
  return ms ? nlohmann::json(*ms) : nlohmann::json(nullptr);
}

std::optional<int64_t> ReadOptionalMs(const nlohmann::json& j, const char* key) {
  auto it = j.find(key);
  if (it == j.end() || it->is_null()) return std::nullopt;
  return it->get<int64_t>();
}

nlohmann::json ScheduleJson(const ScheduleKey& key, const ScheduleState& state) {
  return nlohmann::json{{"type", "schedule"},
                        {"prediction", key.first},
                        {"kind", JobKindName(key.second)},
                        {"anchor_ms", OptionalMs(state.anchor_ms)},
                        {"last_success_ms", OptionalMs(state.last_success_ms)}};
}

nlohmann::json RunJson(const RunRecord& run) {
  nlohmann::json j = ToJson(run);
  j["type"] = "run";
  return j;
}

// "<crc32c of the JSON, 8 hex digits> <JSON>\n". dump() escapes control characters, so
// a record never contains a newline.
std::string EncodeLine(const std::string& json_text) {
  return fmt::format("{:08x} {}\n", Crc32c(json_text), json_text);
}

// Applies one decoded record to the replay state.
Status ApplyRecord(const nlohmann::json& j, RunLog::Replayed& state) {
  try {
    const std::string type = j.at("type").get<std::string>();
    if (type == "run") {
      ASSIGN_OR_RETURN(RunRecord run, RunRecordFromJson(j));
      state.runs[run.id] = std::move(run);
      return Status::Ok();
    }
    if (type == "schedule") {
      auto kind = ParseJobKind(j.at("kind").get<std::string>());
      if (!kind) return InvalidArgument("unknown kind {}", j.at("kind").dump());
      ScheduleKey key{j.at("prediction").get<std::string>(), *kind};
      ScheduleState schedule{ReadOptionalMs(j, "anchor_ms"), ReadOptionalMs(j, "last_success_ms")};
      if (schedule.empty()) {
        state.schedules.erase(key);
      } else {
        state.schedules[key] = schedule;
      }
      return Status::Ok();
    }
    return InvalidArgument("unknown record type \"{}\"", type);
  } catch (const nlohmann::json::exception& e) {
    return InvalidArgument("{}", e.what());
  }
}

// Decodes one line (without its newline); InvalidArgument when it is damaged.
Result<nlohmann::json> DecodeLine(std::string_view line) {
  if (line.size() < 10 || line[8] != ' ') return InvalidArgument("short or malformed line");
  uint32_t expected = 0;
  for (char c : line.substr(0, 8)) {
    int digit = (c >= '0' && c <= '9') ? c - '0' : (c >= 'a' && c <= 'f') ? c - 'a' + 10 : -1;
    if (digit < 0) return InvalidArgument("bad checksum field");
    expected = expected * 16 + static_cast<uint32_t>(digit);
  }
  std::string_view text = line.substr(9);
  if (Crc32c(text) != expected) return InvalidArgument("checksum mismatch");
  nlohmann::json j = nlohmann::json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded()) return InvalidArgument("not JSON");
  return j;
}

// The file's lines sorted into intact records (applied to `state`), damage and a torn
// tail. Appends are synced one line at a time, so a crash can only cut the last line
// short, and a power loss can only leave zero-filled sectors after the last synced line;
// a bad line with intact lines after it, or a complete non-zero line failing its checksum
// at the end, is damage to a synced line (docs/FORMAT.md, "Torn tail or damage").
struct LineScan {
  std::string kept;                // the intact lines, as they are in the file
  std::vector<RunLogDamage> damage;
  std::optional<RunLogDamage> torn;
  uint64_t intact_end = 0;         // the end of the last intact line
};

Status CheckLine(std::string_view line, RunLog::Replayed& state) {
  ASSIGN_OR_RETURN(nlohmann::json j, DecodeLine(line));
  return ApplyRecord(j, state);
}

bool IntactLine(std::string_view line) {
  RunLog::Replayed scratch;
  return CheckLine(line, scratch).ok();
}

LineScan ScanLines(std::string_view data, RunLog::Replayed& state) {
  LineScan scan;
  size_t pos = 0;
  while (pos < data.size()) {
    size_t newline = data.find('\n', pos);
    if (newline != std::string_view::npos) {
      Status applied = CheckLine(data.substr(pos, newline - pos), state);
      if (applied.ok()) {
        scan.kept.append(data.substr(pos, newline + 1 - pos));
        ++state.records;
        pos = newline + 1;
        scan.intact_end = pos;
        continue;
      }
    }
    // A bad line: intact lines after it make it damage.
    size_t resume = std::string_view::npos;
    for (size_t next = newline; next != std::string_view::npos && next + 1 < data.size();
         next = data.find('\n', next + 1)) {
      size_t end = data.find('\n', next + 1);
      if (end != std::string_view::npos && IntactLine(data.substr(next + 1, end - next - 1))) {
        resume = next + 1;
        break;
      }
    }
    if (resume != std::string_view::npos) {
      scan.damage.push_back({pos, resume - pos, "damaged line followed by intact lines"});
      pos = resume;
      continue;
    }
    std::string_view rest = data.substr(pos);
    RunLogDamage bad{pos, rest.size(), ""};
    if (rest.find_first_not_of('\0') == std::string_view::npos) {
      bad.reason = "zero-filled to the end of the file (never written)";
      scan.torn = bad;
    } else if (newline == std::string_view::npos) {
      // Only a damaged newline makes a complete line look cut short.
      if (rest.size() > 10 && IntactLine(rest.substr(0, rest.size() - 1))) {
        bad.reason = "the last line's newline is damaged";
        scan.damage.push_back(bad);
      } else {
        bad.reason = "a line cut short";
        scan.torn = bad;
      }
    } else if (HasUnwrittenSector(data, pos, data.size())) {
      bad.reason = "zero-filled sectors (never written)";
      scan.torn = bad;
    } else {
      bad.reason = "checksum mismatch in a complete line";
      scan.damage.push_back(bad);
    }
    break;
  }
  return scan;
}

}  // namespace

Result<RunLog::Opened> RunLog::Open(const std::string& dir) {
  RETURN_IF_ERROR(CreateDirs(dir));
  const std::string path = dir + "/" + std::string(kLogName);
  Replayed state;
  LineScan scan;
  std::string data;
  if (FileExists(path)) {
    ASSIGN_OR_RETURN(data, ReadFile(path));
    scan = ScanLines(data, state);
  }
  if (!scan.damage.empty()) {
    const RunLogDamage& d = scan.damage.front();
    return Corruption(
        "{}: damaged record at byte {} ({}; {} bytes): the run history was not loaded and nothing was "
        "changed; run `sibyl repair` to keep every intact line and set the damaged bytes aside",
        path, d.offset, d.reason, d.bytes);
  }
  ASSIGN_OR_RETURN(auto file, AppendFile::Open(path));
  if (scan.torn) {
    // A write that was never acknowledged. Its bytes are still kept in
    // runs.log.cut-at-OFFSET (never removed), for the damage a torn write cannot be told
    // from: a synced line truncated or zeroed on disk.
    RETURN_IF_ERROR(KeepCutTail(path, data, scan.intact_end));
    RETURN_IF_ERROR(file->Truncate(scan.intact_end));
    state.dropped_torn_tail = true;
  }
  RETURN_IF_ERROR(SyncDir(dir));
  Opened opened;
  opened.log = std::unique_ptr<RunLog>(new RunLog(path, std::move(file), state.records));
  opened.state = std::move(state);
  return opened;
}

Result<RunLogRepair> RunLog::Repair(const std::string& dir) {
  const std::string path = dir + "/" + std::string(kLogName);
  RunLogRepair report;
  report.path = path;
  if (!FileExists(path)) return report;
  ASSIGN_OR_RETURN(std::string data, ReadFile(path));
  Replayed state;
  LineScan scan = ScanLines(data, state);
  report.damaged = scan.damage;
  report.torn = scan.torn;
  report.lines_kept = state.records;
  if (scan.damage.empty()) return report;  // a torn tail alone is the next open's to cut
  // The file as it was is kept whole: the report's offsets point into the copy.
  report.kept_copy = path + ".before-repair";
  RETURN_IF_ERROR(WriteFileAtomic(report.kept_copy, data));
  RETURN_IF_ERROR(WriteFileAtomic(path, scan.kept));
  return report;
}

Status RunLog::AppendLine(const std::string& json_text) {
  if (!file_) return IoError("{}: not open (a compaction failed to reopen it)", path_);
  RETURN_IF_ERROR(file_->Append(EncodeLine(json_text)));
  RETURN_IF_ERROR(file_->Sync());
  ++records_;
  return Status::Ok();
}

Status RunLog::AppendRun(const RunRecord& run) { return AppendLine(RunJson(run).dump()); }

Status RunLog::AppendSchedule(const ScheduleKey& key, const ScheduleState& state) {
  return AppendLine(ScheduleJson(key, state).dump());
}

Status RunLog::Rewrite(const RunMap& runs, const ScheduleMap& schedules) {
  std::string data;
  size_t records = 0;
  for (const auto& [key, state] : schedules) {
    if (state.empty()) continue;
    data += EncodeLine(ScheduleJson(key, state).dump());
    ++records;
  }
  for (const auto& [id, run] : runs) {
    data += EncodeLine(RunJson(run).dump());
    ++records;
  }
  RETURN_IF_ERROR(WriteFileAtomic(path_, data));
  // The rename replaced the file under the open descriptor: append to the new one.
  file_.reset();
  ASSIGN_OR_RETURN(file_, AppendFile::Open(path_));
  records_ = records;
  return Status::Ok();
}

}  // namespace sibyl::scheduler
