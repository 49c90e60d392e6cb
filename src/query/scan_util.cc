#include "query/scan_util.h"

#include <algorithm>

#include "common/memory.h"

namespace sibyl::query_internal {

RowMap MakeRowMap(std::span<const ActorId> resolved, std::span<const ActorId> rows) {
  RowMap map;
  std::vector<uint32_t> row_of_canonical(resolved.size(), kNoRow);
  for (uint32_t r = 0; r < rows.size(); ++r)
    if (rows[r] < resolved.size()) row_of_canonical[rows[r]] = r;
  map.row_of_actor.resize(resolved.size());
  for (size_t a = 0; a < resolved.size(); ++a) {
    ActorId canonical = resolved[a];
    map.row_of_actor[a] = canonical < resolved.size() ? row_of_canonical[canonical] : kNoRow;
  }
  return map;
}

Status ComputeActivity(const EventReader& reader, std::span<const ActorId> resolved,
                       int64_t cutoff_ms, bool parallel, Activity& out) {
  size_t n = resolved.size();
  // Each block writes the times of its own actors only (no locks); linked devices are
  // folded into their users after the scan.
  ResizePrefaulted(out.first_seen, n);
  ResizePrefaulted(out.last_event, n);
  std::fill(out.first_seen.begin(), out.first_seen.end(), INT64_MAX);
  std::fill(out.last_event.begin(), out.last_event.end(), INT64_MIN);
  ScanSpec spec;
  spec.end_ms = cutoff_ms;
  RETURN_IF_ERROR(reader.ScanActorBlocks(
      spec, kActorsPerBlock,
      [&](const EventReader::ActorBlock& block) {
        for (const EventChunk& chunk : block.chunks) {
          const int64_t* t = chunk.time.data();
          ForEachActorRunIn(chunk, 0, chunk.size, [&](ActorId actor, size_t begin, size_t end) {
            // Times are sorted within the run: the first and last in range bound it.
            while (end > begin && t[end - 1] >= cutoff_ms) --end;
            if (begin == end || actor >= n) return;
            out.first_seen[actor] = std::min(out.first_seen[actor], t[begin]);
            out.last_event[actor] = std::max(out.last_event[actor], t[end - 1]);
          });
        }
        return Status::Ok();
      },
      parallel));
  for (size_t a = 0; a < n; ++a) {
    ActorId c = resolved[a];
    if (c == a || c >= n || out.first_seen[a] == INT64_MAX) continue;
    out.first_seen[c] = std::min(out.first_seen[c], out.first_seen[a]);
    out.last_event[c] = std::max(out.last_event[c], out.last_event[a]);
  }
  for (const UserPropertyRecord& r : reader.user_property_history()) {
    if (r.time_ms >= cutoff_ms || r.actor >= n) continue;
    ActorId c = resolved[r.actor];
    out.first_seen[c] = std::min(out.first_seen[c], r.time_ms);
  }
  return Status::Ok();
}

int ColumnOfKey(const EventChunk& chunk, DictId key) {
  for (size_t i = 0; i < chunk.properties.size(); ++i)
    if (chunk.properties[i].key == key) return static_cast<int>(i);
  return -1;
}

}  // namespace sibyl::query_internal
