// Internal to the embedded queries: the qualifying events of an outcome (an event type
// with property filters, or any event; optionally an amount property) of each row in a
// time range, reduced to one record per row and day. Labels sum them over the horizon;
// the outcome feature family describes them over all history before the cutoff.
#pragma once

#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "common/status.h"
#include "query/property_filter.h"
#include "store/reader.h"

namespace sibyl::query_internal {

// What qualifies: `event` (empty: any event) with every filter of `where`; `amount` is
// the numeric property summed alongside the count (empty: none).
struct OutcomeMatch {
  std::string event;
  std::vector<PropertyFilter> where;
  std::string amount_property;
};

// One row's qualifying events on one day. Days count back from `origin_ms`:
// day = (origin - 1 - time) / 24 h, so day 0 is the 24 hours before the origin.
struct OutcomeDay {
  uint32_t row = 0;
  int32_t day = 0;
  uint32_t count = 0;
  double amount = 0;  // sum of the amount property's numbers (0 without one)
  int64_t first_ms = 0, last_ms = 0;
};

struct OutcomeScanResult {
  // False when the outcome's event type or amount property is unknown to the store: then
  // nothing qualifies and `days` is empty.
  bool known = true;
  // Sorted by (row, day descending = time ascending); one record per (row, day).
  std::vector<OutcomeDay> days;
};

// The qualifying events in [begin_ms, end_ms) of every actor whose `row_of_actor` entry
// is a row (indexed by ActorId; kNoRow: not counted). `origin_ms` >= end_ms anchors days.
Result<OutcomeScanResult> ScanOutcomeDays(const EventReader& reader, const OutcomeMatch& match,
                                          int64_t begin_ms, int64_t end_ms, int64_t origin_ms,
                                          std::span<const uint32_t> row_of_actor, bool parallel);

}  // namespace sibyl::query_internal
