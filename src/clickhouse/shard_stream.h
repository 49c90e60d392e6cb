// One shard's part of a pull (docs/SCALE_OUT.md, "Reads: a slice"): its event rows in
// (batch, row) order, streamed by a thread a few blocks ahead of the merge, and the plan
// that cuts a big answer into chunks the server can sort within its memory limit.
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "clickhouse/client.h"
#include "clickhouse/event_rows.h"
#include "common/status.h"

namespace sibyl::clickhouse {

// Complete rows of one shard's answer, as the bytes arrived, with where each row starts.
struct RowBlock {
  std::string bytes;
  std::vector<uint32_t> starts;
  std::vector<RowKey> keys;
};

// Runs `queries` on one shard, one after the other, and hands their rows out in blocks.
// Each query must answer RowBinary event rows ordered by (batch, row) and end with the
// sentinel row (SentinelRowSelect), which tells a whole answer from one the server cut
// short; the queries' rows must follow one another in (batch, row) order. A row out of
// that order fails the stream (the merge relies on it).
class ShardStream {
 public:
  ShardStream(const Client& client, std::vector<std::string> queries, std::vector<ExternalTable> tables);
  ~ShardStream();

  // The next block, or null at the end (then status() says whether the answers were whole).
  std::unique_ptr<RowBlock> Next();
  Status status();
  uint64_t bytes() const { return bytes_; }

 private:
  static constexpr size_t kBlockBytes = 4 << 20;
  static constexpr size_t kBlocksAhead = 4;

  void Run();
  Status RunQuery(const std::string& sql);
  // Moves the complete rows at the front of `pending` into a block; keeps the rest.
  bool Emit(std::string& pending);

  const Client& client_;
  std::vector<std::string> queries_;
  std::vector<ExternalTable> tables_;
  std::thread thread_;
  std::mutex mutex_;
  std::condition_variable changed_;
  std::deque<std::unique_ptr<RowBlock>> blocks_;
  bool done_ = false, cancelled_ = false;
  // Only the stream thread touches these.
  bool saw_sentinel_ = false;
  std::optional<RowKey> last_key_;
  Status order_;  // set when a row came out of order
  Status status_;
  std::atomic<uint64_t> bytes_{0};
};

// Where a pull of `table`'s rows passing `where` (with `tables` sent along) on `client`
// is cut so that each chunk holds about `chunk_rows` rows: ascending (batch, row) keys,
// each the first key of a chunk after the first. Empty when the rows fit one chunk (then
// one query counted them). One `sibyl ingest` is one batch of any size, so a key
// may fall inside a batch (its rows are cut by their row numbers).
Result<std::vector<RowKey>> PlanPullChunks(const Client& client, std::string_view table, std::string_view where,
                                           const std::vector<ExternalTable>& tables, uint64_t chunk_rows);

// The condition selecting keys in [from, to) (either end open when absent).
std::string KeyRange(const std::optional<RowKey>& from, const std::optional<RowKey>& to);

}  // namespace sibyl::clickhouse
