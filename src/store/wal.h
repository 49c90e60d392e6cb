// The write-ahead log: framed, checksummed records appended to wal/NNNNNN.log files.
// A commit is durable once its record is fdatasync'ed. See docs/FORMAT.md.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>

#include "common/file.h"
#include "common/status.h"

namespace sibyl {

enum class WalRecordType : uint8_t {
  kDictionary = 1,  // new dictionary names; applied whatever happens to transactions
  kTxnData = 2,     // one staged batch of a transaction
  kTxnCommit = 3,   // the transaction's batches become visible
  kTxnSegments = 4, // one staged batch of a transaction, its events split by time partition
};

class WalWriter {
 public:
  static Result<std::unique_ptr<WalWriter>> Open(const std::string& path);
  Status Add(WalRecordType type, std::string_view payload);  // buffered in the OS
  Status Sync();
  uint64_t size() const { return file_->size(); }

 private:
  explicit WalWriter(std::unique_ptr<AppendFile> file) : file_(std::move(file)) {}
  std::unique_ptr<AppendFile> file_;
  std::string frame_;
};

// Reads every intact record of one log file in order. A damaged record at the end of the
// last file is a write that was never acknowledged (a crash mid-append): reading stops
// there and `valid_bytes` says where the intact prefix ends. Damage followed by intact
// records is corruption and is reported with the file name and offset.
struct WalReadResult {
  uint64_t valid_bytes = 0;
  bool torn_tail = false;
};
Result<WalReadResult> ReadWal(const std::string& path,
                              const std::function<Status(WalRecordType, std::string_view)>& visit);

}  // namespace sibyl
