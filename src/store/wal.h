// The write-ahead log: framed, checksummed records appended to wal/NNNNNN.log files.
// A commit is durable once its record is fdatasync'ed. See docs/FORMAT.md.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
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

// Bytes of a log that are not an intact record, and are not a torn write either: they
// may hold acknowledged data (docs/FORMAT.md, "Torn tail or damage").
struct WalDamage {
  uint64_t offset = 0;  // where the damaged bytes start
  uint64_t bytes = 0;   // up to the next intact record, or the end of the file
  std::string reason;
  // Set when the bytes are exactly one record whose header is intact (only its payload
  // is damaged): then what was lost is known to be that one record of this type.
  std::optional<WalRecordType> type;
};

struct WalReadResult {
  uint64_t valid_bytes = 0;  // where the intact records end (before a torn tail)
  bool torn_tail = false;    // a write that was never acknowledged follows them
  std::string torn_reason;
};

// Reads every intact record of one log file in order. The tail of the last file
// (`last_file`) may be a torn write, which ends the reading (`torn_tail`). Anything
// else that is not an intact record is damage: without `on_damage` it is a corruption
// error naming the file, the byte offset and the reason; with it, `on_damage` is told
// and reading goes on at the next intact record (`sibyl repair`).
using WalVisitor = std::function<Status(WalRecordType, std::string_view)>;
using WalDamageVisitor = std::function<Status(const WalDamage&)>;
Result<WalReadResult> ReadWal(const std::string& path, bool last_file, const WalVisitor& visit,
                              const WalDamageVisitor& on_damage = nullptr);

}  // namespace sibyl
