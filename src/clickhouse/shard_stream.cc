#include "clickhouse/shard_stream.h"

#include <fmt/format.h>

#include <cstdlib>

#include "clickhouse/row_binary.h"

namespace sibyl::clickhouse {

ShardStream::ShardStream(const Client& client, std::vector<std::string> queries, std::vector<ExternalTable> tables)
    : client_(client), queries_(std::move(queries)), tables_(std::move(tables)) {
  thread_ = std::thread([this] { Run(); });
}

ShardStream::~ShardStream() {
  {
    std::lock_guard lock(mutex_);
    cancelled_ = true;
  }
  changed_.notify_all();
  thread_.join();
}

std::unique_ptr<RowBlock> ShardStream::Next() {
  std::unique_lock lock(mutex_);
  changed_.wait(lock, [this] { return !blocks_.empty() || done_; });
  if (blocks_.empty()) return nullptr;
  auto block = std::move(blocks_.front());
  blocks_.pop_front();
  changed_.notify_all();
  return block;
}

Status ShardStream::status() {
  std::lock_guard lock(mutex_);
  return status_;
}

void ShardStream::Run() {
  Status st;
  for (const std::string& sql : queries_) {
    st = RunQuery(sql);
    if (!st.ok()) break;
    std::lock_guard lock(mutex_);
    if (cancelled_) break;
  }
  std::lock_guard lock(mutex_);
  if (status_.ok()) status_ = st;
  done_ = true;
  changed_.notify_all();
}

Status ShardStream::RunQuery(const std::string& sql) {
  std::string pending;
  saw_sentinel_ = false;
  Status st = client_.Stream(
      sql, tables_,
      [&](std::string_view data) {
        bytes_ += data.size();
        pending.append(data);
        if (pending.size() >= kBlockBytes) return Emit(pending);
        return true;
      },
      /*buffered=*/false);
  if (st.ok()) Emit(pending);
  if (!order_.ok()) return order_;
  // The answer is whole when its last row is the sentinel and nothing follows it; a
  // failure on the server mid-answer shows as its message after the last whole row.
  if (st.ok() && (!pending.empty() || !saw_sentinel_))
    st = Status(StatusCode::kIoError,
                fmt::format("{} stopped answering a pull after {} bytes: {}", client_.endpoint(), bytes_.load(),
                            pending.empty() ? std::string("no end row") : pending.substr(0, 300)));
  return st;
}

bool ShardStream::Emit(std::string& pending) {
  auto block = std::make_unique<RowBlock>();
  RowBinaryReader in(pending);
  size_t end = 0;
  RowKey key;
  while (!saw_sentinel_) {
    const size_t start = in.position();
    if (!DecodeEventRow(in, &key, nullptr)) break;
    end = in.position();
    if (key.batch == kSentinelBatch) {
      saw_sentinel_ = true;
      break;
    }
    if (last_key_ && key < *last_key_) {
      order_ = Internal("{} sent row ({}, {}) after ({}, {}): a pull's rows must come in (batch, row) order",
                        client_.endpoint(), key.batch, key.row, last_key_->batch, last_key_->row);
      return false;
    }
    last_key_ = key;
    block->starts.push_back(static_cast<uint32_t>(start));
    block->keys.push_back(key);
  }
  if (block->keys.empty()) {
    pending.erase(0, end);
    return true;
  }
  block->bytes = pending.substr(0, end);
  pending.erase(0, end);
  std::unique_lock lock(mutex_);
  changed_.wait(lock, [this] { return blocks_.size() < kBlocksAhead || cancelled_; });
  if (cancelled_) return false;
  blocks_.push_back(std::move(block));
  changed_.notify_all();
  return true;
}

std::string KeyRange(const std::optional<RowKey>& from, const std::optional<RowKey>& to) {
  std::string out = "1";
  if (from)
    out = from->row == 0 ? fmt::format("batch >= {}", from->batch)
                         : fmt::format("(batch > {0} OR (batch = {0} AND row >= {1}))", from->batch, from->row);
  if (to)
    out += " AND " + (to->row == 0 ? fmt::format("batch < {}", to->batch)
                                   : fmt::format("(batch < {0} OR (batch = {0} AND row < {1}))", to->batch, to->row));
  return out;
}

namespace {

// (key, count) pairs of a "SELECT key, count() ... FORMAT TSV" answer.
Result<std::vector<std::pair<uint64_t, uint64_t>>> ParseCounts(const std::string& text, std::string_view where) {
  std::vector<std::pair<uint64_t, uint64_t>> out;
  const char* p = text.c_str();
  while (*p) {
    char* end = nullptr;
    const uint64_t key = std::strtoull(p, &end, 10);
    if (end == p || *end != '\t') return Corruption("{}: unreadable row counts", where);
    p = end + 1;
    const uint64_t count = std::strtoull(p, &end, 10);
    if (end == p) return Corruption("{}: unreadable row counts", where);
    out.emplace_back(key, count);
    p = *end == '\n' ? end + 1 : end;
  }
  return out;
}

}  // namespace

Result<std::vector<RowKey>> PlanPullChunks(const Client& client, std::string_view table, std::string_view where,
                                           const std::vector<ExternalTable>& tables, uint64_t chunk_rows) {
  if (chunk_rows == 0) return std::vector<RowKey>{};

  // Rows are counted by spans of batch ids (2^40 ids, about 17 minutes of batches: a
  // year is 30,000 spans), then, in a span too big for one chunk, by batch, then in a
  // batch too big for one chunk (a big `sibyl ingest`), by row number. Chunks are closed
  // greedily, so each holds at most chunk_rows rows but for a piece of a batch's rows.
  constexpr int kSpanBits = 40;
  std::vector<RowKey> cuts;
  uint64_t in_chunk = 0;
  auto add = [&](RowKey start, uint64_t rows) {
    if (in_chunk > 0 && in_chunk + rows > chunk_rows) {
      cuts.push_back(start);
      in_chunk = 0;
    }
    in_chunk += rows;
  };
  const std::string endpoint = client.endpoint();
  ASSIGN_OR_RETURN(std::string span_text,
                   client.Query(fmt::format("SELECT intDiv(batch, {0}) AS span, count() FROM {1} WHERE {2} "
                                            "GROUP BY span ORDER BY span FORMAT TSV",
                                            uint64_t{1} << kSpanBits, table, where),
                                tables));
  ASSIGN_OR_RETURN(auto spans, ParseCounts(span_text, endpoint));
  uint64_t total = 0;
  for (const auto& span : spans) total += span.second;
  if (total <= chunk_rows) return std::vector<RowKey>{};
  for (const auto& [span, span_rows] : spans) {
    const uint64_t span_start = span << kSpanBits;
    if (span_rows <= chunk_rows) {
      add({span_start, 0}, span_rows);
      continue;
    }
    ASSIGN_OR_RETURN(std::string batch_text,
                     client.Query(fmt::format("SELECT batch, count() FROM {} WHERE ({}) AND intDiv(batch, {}) = {} "
                                              "GROUP BY batch ORDER BY batch FORMAT TSV",
                                              table, where, uint64_t{1} << kSpanBits, span),
                                  tables));
    ASSIGN_OR_RETURN(auto batches, ParseCounts(batch_text, endpoint));
    for (const auto& [batch, batch_rows] : batches) {
      if (batch_rows <= chunk_rows) {
        add({batch, 0}, batch_rows);
        continue;
      }
      ASSIGN_OR_RETURN(std::string range_text,
                       client.Query(fmt::format("SELECT min(row), max(row) FROM {} WHERE ({}) AND batch = {} FORMAT TSV",
                                                table, where, batch),
                                    tables));
      char* end = nullptr;
      const uint64_t first = std::strtoull(range_text.c_str(), &end, 10);
      const uint64_t last = std::strtoull(end, nullptr, 10);
      // A shard holds a hash-spread share of the batch's row numbers: even pieces of the
      // number range hold about even shares of its rows.
      const uint64_t pieces = (batch_rows + chunk_rows - 1) / chunk_rows;
      const uint64_t width = std::max<uint64_t>(1, (last - first + pieces) / pieces);
      for (uint64_t p = 0; p < pieces && first + p * width <= last; ++p)
        add({batch, static_cast<uint32_t>(first + p * width)}, batch_rows / pieces);
    }
  }
  return cuts;
}

}  // namespace sibyl::clickhouse
