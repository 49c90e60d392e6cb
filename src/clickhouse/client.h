// A client for one ClickHouse server's HTTP interface (cpp-httplib): statements, queries
// answered in RowBinary, inserts, and external tables (a set of ids sent along with a
// query, so a shard can filter by it without a round trip through SQL text).
//
// Requests set wait_end_of_query=1 unless they ask otherwise: the server answers only once
// the query has finished, so an error can never arrive as HTTP 200 after part of the rows
// (18.16 appends the message to a streamed body otherwise). Errors name the server.
#pragma once

#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "common/status.h"

namespace sibyl::clickhouse {

// A table of one column sent with a query: SELECT ... WHERE x IN name.
struct ExternalTable {
  std::string name;
  std::string column;
  std::string type = "String";  // a ClickHouse type whose text form the values are in
  std::vector<std::string> values;
};

class Client {
 public:
  // `endpoint`: "http://host:port". `max_threads`: the per-query thread cap sent with
  // every request (18.16 sees one core on some machines and defaults to 1).
  // `settings`: more ClickHouse settings sent with every query (e.g. max_memory_usage).
  static Result<std::unique_ptr<Client>> Connect(std::string_view endpoint, int max_threads,
                                                 std::vector<std::pair<std::string, std::string>> settings = {});
  ~Client();

  const std::string& endpoint() const { return endpoint_; }

  // Runs a statement (DDL, INSERT ... SELECT) and discards any answer.
  Status Execute(std::string_view sql) const;
  // Runs a query and returns its whole answer (small answers: counts, lists).
  Result<std::string> Query(std::string_view sql, const std::vector<ExternalTable>& tables = {}) const;
  // Runs a query and hands its answer to `receive`; `receive` returns false to stop.
  // Buffered (the default), nothing is handed over unless the query succeeded. Unbuffered,
  // bytes arrive while the server still works, and a failure after the first bytes is
  // appended to them as text: the caller must be able to tell a whole answer (a pull ends
  // with a sentinel row, slice_store.cc). A large pull is about twice as fast unbuffered:
  // buffered, the server writes the whole answer aside before sending any of it.
  Status Stream(std::string_view sql, const std::vector<ExternalTable>& tables,
                const std::function<bool(std::string_view)>& receive, bool buffered = true) const;
  // INSERT INTO `table` FORMAT RowBinary with `rows` (encoded by RowBinaryWriter).
  Status InsertRowBinary(std::string_view table, std::string_view rows) const;

 private:
  Client() = default;
  struct Impl;
  std::unique_ptr<Impl> impl_;
  std::string endpoint_;
  int max_threads_ = 2;
  std::vector<std::pair<std::string, std::string>> settings_;
};

// `s` as a ClickHouse string literal: 'it\'s'.
std::string Quote(std::string_view s);

}  // namespace sibyl::clickhouse
