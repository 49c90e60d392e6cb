// One event as a row of the cluster's `events` table, both ways: encoding an accepted
// event (ingest) and decoding a pulled row back into an EventBatch (replay). The column
// order is EventRowColumns(); properties and user property operations travel as parallel
// arrays (key, kind, number, string), so a number and a string of the same key stay
// apart, exactly as the event said.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "clickhouse/row_binary.h"
#include "event/event.h"

namespace sibyl::clickhouse {

// "batch, row, owner, ..." in the order rows are written and read.
std::string_view EventRowColumns();

// The owner of an event: "u:<user_id>", or "d:<device_id>" without a user id (the actor
// name the embedded store gives it).
std::string OwnerOf(const ParsedEvent& e);

// Appends `e` (of `batch`) as one row. `time_ms` is the event's time, or the ingestion
// time for an event that came without one.
void EncodeEventRow(const EventBatch& batch, const ParsedEvent& e, uint64_t batch_id, uint32_t row,
                    std::string_view owner, uint64_t owner_hash, int64_t time_ms, RowBinaryWriter& out);

// The ordering key of a row: (batch, row).
struct RowKey {
  uint64_t batch = 0;
  uint32_t row = 0;
  bool operator<(const RowKey& o) const { return batch != o.batch ? batch < o.batch : row < o.row; }
};

// A row that sorts after every real one (batch = UINT64_MAX) as a SELECT of constants:
// a pull appends it, so that a stream cut by a failure on the server (which arrives as
// text after some rows) can be told from a whole answer.
std::string_view SentinelRowSelect();
inline constexpr uint64_t kSentinelBatch = UINT64_MAX;

// Reads one row from `in` into `batch` (its strings interned there) when `batch` is not
// null, else only skips it. False when the bytes end inside the row.
bool DecodeEventRow(RowBinaryReader& in, RowKey* key, EventBatch* batch);

}  // namespace sibyl::clickhouse
