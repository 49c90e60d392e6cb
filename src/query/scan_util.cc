#include "query/scan_util.h"

#include <algorithm>

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
  out.first_seen.assign(n, INT64_MAX);
  out.last_event.assign(n, INT64_MIN);
  StripedLocks locks;
  ScanSpec spec;
  spec.end_ms = cutoff_ms;
  RETURN_IF_ERROR(reader.Scan(
      spec,
      [&](const EventChunk& chunk) {
        ForEachActorRun(chunk, [&](ActorId actor, size_t begin, size_t end) {
          // Times are sorted within the run: the first and last in range bound it.
          const int64_t* t = chunk.time.data();
          while (begin < end && t[begin] >= cutoff_ms) ++begin;
          while (end > begin && t[end - 1] >= cutoff_ms) --end;
          if (begin == end || actor >= n) return;
          ActorId c = resolved[actor];
          locks.Lock(c);
          out.first_seen[c] = std::min(out.first_seen[c], t[begin]);
          out.last_event[c] = std::max(out.last_event[c], t[end - 1]);
          locks.Unlock(c);
        });
        return Status::Ok();
      },
      parallel));
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
