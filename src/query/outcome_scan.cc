#include "query/outcome_scan.h"

#include <algorithm>
#include <mutex>

#include "common/time.h"
#include "query/scan_util.h"

namespace sibyl::query_internal {

Result<OutcomeScanResult> ScanOutcomeDays(const EventReader& reader, const OutcomeMatch& match,
                                          int64_t begin_ms, int64_t end_ms, int64_t origin_ms,
                                          std::span<const uint32_t> row_of_actor, bool parallel) {
  OutcomeScanResult result;
  std::optional<DictId> event;
  if (!match.event.empty()) {
    event = reader.event_types().Find(match.event);
    if (!event) {
      result.known = false;  // an outcome the store has never seen happened to nobody
      return result;
    }
  }
  CompiledFilters filters = CompiledFilters::Compile(match.where, reader);
  ScanSpec scan;
  scan.begin_ms = begin_ms;
  scan.end_ms = end_ms;
  if (event) scan.event_types = {*event};
  scan.property_keys = filters.keys();
  DictId amount_key = kNoDictId;
  if (!match.amount_property.empty()) {
    amount_key = reader.property_keys().Find(match.amount_property).value_or(kNoDictId);
    if (amount_key == kNoDictId) {
      result.known = false;
      return result;
    }
    scan.property_keys.push_back(amount_key);
  }

  // The actors whose events count for a row. Few of them (a scoring block, an hourly
  // run, one user in real time): gather them by binary search instead of walking every
  // actor of the store, as the feature query does (FEATURES.md, "the gather path").
  std::vector<ActorId> counted;
  for (ActorId a = 0; a < row_of_actor.size(); ++a)
    if (row_of_actor[a] != kNoRow) counted.push_back(a);
  if (counted.empty()) return result;
  scan.first_actor = counted.front();
  scan.end_actor = counted.back() + 1;
  const bool gather = counted.size() * 16 <= row_of_actor.size();

  std::mutex mutex;
  auto visit = [&](const EventReader::ActorBlock& block) {
        std::vector<uint8_t> mask;
        std::vector<OutcomeDay> found;
        for (const EventChunk& chunk : block.chunks) {
          if (!filters.empty()) {
            std::vector<int> columns;
            for (const CompiledFilter& f : filters.filters())
              columns.push_back(f.key() == kNoDictId ? -1 : ColumnOfKey(chunk, f.key()));
            EvaluateFilters(filters, chunk, columns, mask);
          }
          // Amounts by segment row (the column is sparse); rows ascend, so the cursor only
          // moves forward across runs and events.
          const PropertyColumn* amount = nullptr;
          if (amount_key != kNoDictId) {
            int c = ColumnOfKey(chunk, amount_key);
            if (c >= 0) amount = &chunk.properties[c];
          }
          size_t amount_cursor = 0;
          ForEachActorRunIn(chunk, 0, chunk.size, [&](ActorId actor, size_t run_begin, size_t run_end) {
            uint32_t row = actor < row_of_actor.size() ? row_of_actor[actor] : kNoRow;
            if (row == kNoRow) return;
            OutcomeDay* open = nullptr;  // the run's record of the day being added to
            for (size_t i = run_begin; i < run_end; ++i) {
              const int64_t t = chunk.time[i];
              if (t < begin_ms || t >= end_ms) continue;
              if (event && chunk.event_type[i] != *event) continue;
              if (!mask.empty() && !mask[i]) continue;
              double value = 0;
              if (amount != nullptr) {
                uint32_t segment_row = chunk.first_row + static_cast<uint32_t>(i);
                while (amount_cursor < amount->rows.size() && amount->rows[amount_cursor] < segment_row)
                  ++amount_cursor;
                if (amount_cursor < amount->rows.size() && amount->rows[amount_cursor] == segment_row) {
                  const StoredValue& v = amount->values[amount_cursor];
                  if (v.kind == ValueKind::kNumber) value = v.number;
                }
              }
              const auto day = static_cast<int32_t>((origin_ms - 1 - t) / kMsPerDay);
              if (open == nullptr || open->day != day) {
                found.push_back({.row = row, .day = day, .count = 0, .amount = 0, .first_ms = t, .last_ms = t});
                open = &found.back();
              }
              open->count += 1;
              open->amount += value;
              open->last_ms = t;  // times ascend within a run
            }
          });
        }
        if (!found.empty()) {
          std::lock_guard lock(mutex);
          result.days.insert(result.days.end(), found.begin(), found.end());
        }
        return Status::Ok();
      };
  if (gather) {
    RETURN_IF_ERROR(reader.GatherActors(counted, scan, visit, parallel));
  } else {
    RETURN_IF_ERROR(reader.ScanActorBlocks(scan, kActorsPerBlock, visit, parallel));
  }

  // One record per (row, day), whatever the blocks' order: records of one row come from
  // several chunks, parts and linked devices. Sorting on every field makes the merged sums
  // independent of the order the threads finished in.
  std::sort(result.days.begin(), result.days.end(), [](const OutcomeDay& a, const OutcomeDay& b) {
    if (a.row != b.row) return a.row < b.row;
    if (a.day != b.day) return a.day > b.day;
    if (a.first_ms != b.first_ms) return a.first_ms < b.first_ms;
    if (a.last_ms != b.last_ms) return a.last_ms < b.last_ms;
    if (a.count != b.count) return a.count < b.count;
    return a.amount < b.amount;
  });
  size_t kept = 0;
  for (size_t i = 0; i < result.days.size(); ++i) {
    const OutcomeDay& d = result.days[i];
    if (kept > 0 && result.days[kept - 1].row == d.row && result.days[kept - 1].day == d.day) {
      OutcomeDay& into = result.days[kept - 1];
      into.count += d.count;
      into.amount += d.amount;
      into.first_ms = std::min(into.first_ms, d.first_ms);
      into.last_ms = std::max(into.last_ms, d.last_ms);
      continue;
    }
    result.days[kept++] = d;
  }
  result.days.resize(kept);
  return result;
}

}  // namespace sibyl::query_internal
