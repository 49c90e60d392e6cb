// Test helpers: a store in a temporary directory, and a readable event-log format.
//
// Event logs are NDJSON, one event or identify per line, with times relative to a cutoff
// ("T-1ms", "T-3d", "T+2h", "T") or absolute epoch ms:
//   {"user_id": "alice", "event_type": "View", "time": "T-1d", "event_properties": {"price": 5}}
//   {"user_id": "alice", "identify": true, "time": "T-2d", "user_properties": {"plan": "pro"}}
//   {"device_id": "dev-1", "event_type": "View", "time": "T-3h", "session_id": 7}
// Lines starting with '#' and blank lines are ignored. A line {"header": {...}} is
// returned to the caller instead of becoming an event.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "query/feature_matrix.h"
#include "store/event_store.h"

namespace sibyl::testing_util {

class TempStore {
 public:
  TempStore();
  ~TempStore();
  EventStore& store() { return *store_; }
  std::shared_ptr<const EventReader> Snapshot() const { return store_->Snapshot(); }
  const std::string& dir() const { return dir_; }

 private:
  std::string dir_;
  ManualClock clock_{2'000'000'000'000};
  std::unique_ptr<EventStore> store_;
};

// "T-3d" etc. relative to `cutoff_ms`, or a number.
int64_t ParseTestTime(const nlohmann::json& time, int64_t cutoff_ms);

// Appends the events of `ndjson` to `batch`; returns the header object (or null).
nlohmann::json ParseEventLog(const std::string& ndjson, int64_t cutoff_ms, EventBatch& batch);

// Adds one event (or identify) given as the JSON object of the log format.
void AddLogLine(const nlohmann::json& line, int64_t cutoff_ms, EventBatch& batch);

std::string ReadTextFile(const std::string& path);

// The golden form of a matrix: each row's id, then "  column = value" for every non-zero
// cell, in column order.
std::string DescribeMatrix(const FeatureMatrix& matrix, const std::vector<std::string>& row_ids);

}  // namespace sibyl::testing_util
