// EmbeddedStore: the EventStore that lives in a local data directory.
#pragma once

#include <algorithm>
#include <bit>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <span>
#include <string>
#include <unordered_map>
#include <vector>

#include <absl/container/flat_hash_map.h>

#include "common/time.h"
#include "store/catalog.h"
#include "store/event_store.h"
#include "store/wal.h"

namespace sibyl {

struct StoreRepairReport;
class LogSalvage;

// wal/NNNNNN.log
std::string WalName(uint64_t sequence);

// The de-duplication hash of an insert_id (persisted: stable across builds and platforms).
uint64_t HashInsertId(std::string_view id);

// Parts hold one week of events each (aligned to the epoch); staged batches are split the
// same way, so a checkpoint merges each part from just the pieces that fall in it.
inline constexpr int64_t kPartitionMs = kMsPerWeek;
// Write-ahead-log records are compressed fast: they live until the next checkpoint.
inline constexpr int kLogZstdLevel = 1;

// A batch encoded against the dictionaries, ready to log and apply.
struct StagedBatch {
  // The batch's events, one segment per time partition, in time order (BuildEncoded);
  // none for identify-only batches. Logs of older versions give one decoded segment.
  std::vector<std::shared_ptr<const Segment>> segments;
  std::vector<UserPropertyRecord> records;
  std::vector<IdentityLink> links;
  std::shared_ptr<const NumberColumnBatch> number_columns;  // may be null
  std::vector<uint64_t> dedup_hashes;
  int64_t ingested_ms = 0;
  AppendResult counts;
};

// A user property's latest value by event time (kNull: unset), and the start of that
// value's run as far as the writer knows: an equal value that arrives with an earlier time
// moves it back. docs/ARCHITECTURE.md, "User properties".
// 16 bytes, as the map's values were before the time was kept (the map holds an entry per
// property of every user): the number's bits or the string id (a value has one of them),
// the kind, whether the run's start still awaits its record (only inside a transaction),
// and the time in 56 bits (over a million years of milliseconds either way).
class UserState {
 public:
  UserState() = default;
  UserState(const StoredValue& value, int64_t time_ms)
      : payload_(value.kind == ValueKind::kString || value.kind == ValueKind::kArray ? value.string
                                                                                      : std::bit_cast<uint64_t>(value.number)),
        time_ms_(std::clamp<int64_t>(time_ms, kMinTime, kMaxTime)),
        kind_(static_cast<uint8_t>(value.kind)) {}

  StoredValue value() const {
    const auto kind = static_cast<ValueKind>(kind_);
    if (kind == ValueKind::kString || kind == ValueKind::kArray) return {kind, 0, static_cast<DictId>(payload_)};
    return {kind, std::bit_cast<double>(payload_), kNoDictId};
  }
  ValueKind kind() const { return static_cast<ValueKind>(kind_); }
  int64_t time_ms() const { return time_ms_; }
  void set_value(const StoredValue& value) { *this = UserState(value, time_ms_); }  // recorded
  // The run starts earlier than the records show: the writer owes a record at time_ms.
  bool pending() const { return pending_ != 0; }
  void MoveStartBack(int64_t time_ms) {
    time_ms_ = std::clamp<int64_t>(time_ms, kMinTime, kMaxTime);
    pending_ = 1;
  }

 private:
  static constexpr int64_t kMaxTime = (int64_t{1} << 55) - 1, kMinTime = -kMaxTime;
  uint64_t payload_ = 0;
  int64_t time_ms_ : 56 = 0;
  uint64_t kind_ : 7 = 0;
  uint64_t pending_ : 1 = 0;
};
static_assert(sizeof(UserState) == 16);

// The latest state of user properties, by (actor << 32 | key). Open addressing: the
// store's map holds one entry per property of every user (millions), where a node per
// entry would cost an allocation each and a pointer chase on every lookup.
using UserValues = absl::flat_hash_map<uint64_t, UserState>;

// Moves a property's state (`known`: it has one) past one history record. The writer and
// the replay of the log both go through it, so a reopened store decides as the live one.
inline void AdvanceUserState(UserState& state, bool known, const UserPropertyRecord& record) {
  if (!known || record.time_ms > state.time_ms()) {
    state = UserState(record.value, record.time_ms);
  } else if (record.time_ms == state.time_ms()) {
    state.set_value(record.value);  // at equal times the writer puts the winner last
  } else if (record.value == state.value()) {
    state = UserState(record.value, record.time_ms);  // the same value, known from earlier on
  }
}
inline uint64_t UserKey(ActorId actor, DictId key) { return (static_cast<uint64_t>(actor) << 32) | key; }

// A device's deciding identity link so far (LinkOverrules in reader.h).
struct DeviceOwner {
  ActorId user = 0;
  int64_t time_ms = INT64_MAX;  // none yet
};

// Changes a transaction has made to per-user state, visible to its own later batches.
struct TransactionOverlay {
  UserValues user_values;  // the states this transaction has changed
  // The earliest run the transaction has seen behind a property's latest one (values that
  // arrived out of time order with another value): a log arriving newest first records
  // each run's start once, when the run before it arrives or at commit.
  UserValues earliest_runs;
  // Slots of user_values the store had no value for: at most this many entries are added
  // to the store's map at commit, which reserves them at once.
  size_t new_user_values = 0;
  std::unordered_map<ActorId, DeviceOwner> device_owner;
  // The store's de-dup index already holds this transaction's insert_ids (so later
  // batches see them); this is its size before, to take them out again on abort.
  size_t dedup_size_before = 0;
};

class EmbeddedStore final : public EventStore {
 public:
  static Result<std::unique_ptr<EventStore>> Open(const StoreOptions& options);
  ~EmbeddedStore() override;

  Result<AppendResult> Append(const EventBatch& batch) override;
  Result<std::unique_ptr<Transaction>> Begin() override;
  std::shared_ptr<const EventReader> Snapshot() const override;
  Status Checkpoint() override;
  Result<StoreStats> Stats() const override;
  void Prepare(EventBatch& batch) const override;  // store_prepare.cc

 private:
  friend class StoreTransaction;
  friend class LogSalvage;
  friend Result<StoreRepairReport> RepairStore(const StoreOptions& options,
                                               const std::function<Status()>& also_under_lock);
  explicit EmbeddedStore(const StoreOptions& options);

  Status Load();
  Status LoadCheckpoint();
  Status ReplayLog();  // replay.cc, with the salvage of `sibyl repair`
  Status CleanUnreferencedFiles();
  // Moves `folder/name` into lost+found/ (as `folder-name`) and says so (StoreOptions::on_notice).
  Status MoveAside(const std::string& folder, const std::string& name);
  // Encodes `segment` as the part file `path` and opens it as `part`.
  Status WritePart(std::shared_ptr<const Segment> segment, const std::string& path,
                   std::shared_ptr<const Segment>& part) const;

  // Encodes `batch` against the dictionaries and the transaction's view of user state.
  Result<StagedBatch> Encode(const EventBatch& batch, TransactionOverlay& overlay);
  // The same for numbers set on known actors, as a NumberColumnBatch (store_bulk.cc).
  // Checks everything before it changes a dictionary.
  Result<StagedBatch> EncodeNumbers(const NumberPropertyUpdates& updates);
  Status LogDictionaryGrowth();
  std::string EncodeStaged(uint64_t txn, const StagedBatch& staged) const;
  // A kTxnData or kTxnSegments record.
  Result<StagedBatch> DecodeStaged(WalRecordType type, std::string_view payload, uint64_t* txn) const;
  // Applies committed batches to the in-memory state and publishes a new version. With
  // `merge_memtable` false the memtable's segments are not merged (the caller checkpoints
  // next, which merges everything once).
  void ApplyCommitted(std::vector<StagedBatch>& batches, bool merge_memtable = true);
  // Makes user_values_ the state after `records` (history records, in arrival order).
  void ApplyToUserValues(std::span<const UserPropertyRecord> records);
  Status CheckpointLocked();
  std::shared_ptr<const Version> current() const;

  StoreOptions options_;
  const uint64_t serial_;  // unique in the process: tags ids resolved by Prepare
  std::string dir_;
  int lock_fd_ = -1;
  std::shared_ptr<Catalog> catalog_;
  size_t logged_dictionary_sizes_[Catalog::kDictionaries] = {0, 0, 0, 0};

  // Latest state, for applying user property operations and linking identities.
  UserValues user_values_;  // an unset property keeps its entry (kNull) and its time
  std::unordered_map<ActorId, DeviceOwner> device_owner_;
  // Keeps `link` in device_owner_ if it decides its device before the one there.
  void NoteLink(const IdentityLink& link);
  DedupIndex dedup_;
  // The index on disk: files holding consecutive ranges of its entries in insertion order
  // (docs/FORMAT.md, "De-duplication files").
  struct DedupFile {
    std::string name;
    uint64_t ids = 0;
  };
  std::vector<DedupFile> dedup_files_;
  bool dedup_rewrite_ = true;  // the files do not match the index's order: write it whole
  // Writes the de-dup files of checkpoint `generation`; `files` becomes the new list.
  Status WriteDedupFiles(uint64_t generation, std::vector<DedupFile>& files);
  bool replaying_ = false;
  LogSalvage* salvage_ = nullptr;  // set while `sibyl repair` replays (replay.cc)

  std::unique_ptr<WalWriter> wal_;
  uint64_t wal_sequence_ = 0;   // the file appends go to
  uint64_t wal_start_ = 1;      // first log file not yet in a checkpoint
  uint64_t generation_ = 0;     // checkpoint generation
  uint64_t next_txn_ = 1;
  std::vector<std::string> part_files_;  // parallel to version parts
  // Files of the version's first number column batches (the rest are still in the log).
  std::vector<std::string> number_column_files_;

  std::mutex write_mutex_;  // one transaction, append or checkpoint at a time
  mutable std::mutex version_mutex_;
  std::shared_ptr<const Version> version_;
  std::string scratch_key_;
};

}  // namespace sibyl
