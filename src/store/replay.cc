// Replaying the write-ahead log at open, and `sibyl repair`'s salvage of damaged logs
// (docs/FORMAT.md, "Torn tail or damage").
#include <fmt/format.h>

#include <map>
#include <set>

#include "store/codec.h"
#include "store/embedded_store.h"
#include "store/repair.h"

namespace sibyl {

std::string WalName(uint64_t sequence) { return fmt::format("{:06}.log", sequence); }

using PendingBatches = std::map<uint64_t, std::vector<StagedBatch>>;

// What `sibyl repair` keeps of damaged logs. Transactions are contiguous in the log (a
// transaction holds the write lock from its first batch to its commit), so a damaged
// batch or commit record with an intact header belongs to the transaction in progress
// before it or, for a batch, to the one whose records come next: those are dropped and
// every other transaction is kept. Damage of any other shape (a damaged header, several
// records, a dictionary record) may have taken dictionary names that later records use,
// so nothing after it is applied.
class LogSalvage {
 public:
  LogSalvage(const EmbeddedStore& store, StoreRepairReport& report) : store_(store), report_(report) {}

  void StartFile(const std::string& path) { path_ = path; }
  bool stopped() const { return stopped_; }
  const std::set<std::string>& changed_files() const { return changed_files_; }

  Status OnDamage(const WalDamage& damage, PendingBatches& pending) {
    report_.damaged.push_back({path_, damage.offset, damage.bytes, damage.reason, false});
    changed_files_.insert(path_);
    if (stopped_) return Status::Ok();
    bool batch = damage.type == WalRecordType::kTxnData || damage.type == WalRecordType::kTxnSegments;
    if (batch) ++report_.damaged_batches;
    for (auto& [txn, batches] : pending) DropPending(txn, batches);
    pending.clear();
    if (batch) {
      taint_next_ = true;
    } else if (damage.type != WalRecordType::kTxnCommit) {
      stopped_ = true;
      report_.stopped_reason = fmt::format(
          "the damage at {} byte {} is not one batch or commit record with an intact header, so it may have "
          "held dictionary names that later records use: nothing after it was applied",
          path_, damage.offset);
    }
    return Status::Ok();
  }

  void OnTorn(uint64_t offset, uint64_t bytes, const std::string& reason) {
    report_.damaged.push_back({path_, offset, bytes, reason, true});
  }

  // Whether the record of `txn` (a batch or a commit) is dropped; counts it if so.
  bool Drops(uint64_t txn, const StagedBatch* batch) {
    if (taint_next_) {
      Taint(txn);
      taint_next_ = false;
    }
    if (!tainted_.contains(txn)) return false;
    CountDropped(batch);
    return true;
  }

  // After damage that stops the salvage: every record is dropped and counted.
  Status DropRecord(WalRecordType type, std::string_view payload) {
    changed_files_.insert(path_);
    if (type == WalRecordType::kTxnData || type == WalRecordType::kTxnSegments) {
      uint64_t txn;
      ASSIGN_OR_RETURN(StagedBatch batch, store_.DecodeStaged(type, payload, &txn));
      Taint(txn);
      CountDropped(&batch);
    } else {
      if (type == WalRecordType::kTxnCommit) Taint(ByteReader(payload).Varint());
      CountDropped(nullptr);
    }
    return Status::Ok();
  }

  // At a dictionary record that does not continue the names replayed so far.
  void Stop(uint64_t record, PendingBatches& pending) {
    stopped_ = true;
    for (auto& [txn, batches] : pending) DropPending(txn, batches);
    pending.clear();
    report_.stopped_reason = fmt::format(
        "record {} of {}, a dictionary record, does not continue the names before it: names were lost in the "
        "damage, so nothing from there on was applied",
        record, path_);
  }

 private:
  void Taint(uint64_t txn) {
    if (tainted_.insert(txn).second) report_.transactions_dropped.push_back(txn);
  }
  void CountDropped(const StagedBatch* batch) {
    ++report_.intact_records_dropped;
    if (batch)
      for (const auto& segment : batch->segments) report_.events_dropped += segment->size();
  }
  void DropPending(uint64_t txn, const std::vector<StagedBatch>& batches) {
    Taint(txn);
    for (const StagedBatch& batch : batches) CountDropped(&batch);
  }

  const EmbeddedStore& store_;
  StoreRepairReport& report_;
  std::string path_;
  bool stopped_ = false;
  bool taint_next_ = false;
  std::set<uint64_t> tainted_;
  std::set<std::string> changed_files_;
};

Status EmbeddedStore::ReplayLog() {
  wal_sequence_ = wal_start_;
  if (!FileExists(dir_ + "/wal")) return Status::Ok();
  ASSIGN_OR_RETURN(auto names, ListDir(dir_ + "/wal"));
  std::vector<uint64_t> sequences;
  for (const auto& name : names) {
    if (name.size() != 10 || name.substr(6) != ".log") continue;
    uint64_t seq = std::stoull(name.substr(0, 6));
    if (seq >= wal_start_) sequences.push_back(seq);
  }
  PendingBatches pending;
  for (size_t i = 0; i < sequences.size(); ++i) {
    std::string path = dir_ + "/wal/" + WalName(sequences[i]);
    if (salvage_) salvage_->StartFile(path);
    uint64_t records_seen = 0;
    auto visit = [&](WalRecordType type, std::string_view payload) -> Status {
      ++records_seen;
      if (salvage_ && salvage_->stopped()) return salvage_->DropRecord(type, payload);
      ByteReader r(payload);
      switch (type) {
        case WalRecordType::kDictionary: {
          // Checked whole before any name is added, so a repair that stops here leaves
          // the dictionaries as the records before made them.
          ByteReader check(payload);
          for (int d = 0; d < Catalog::kDictionaries; ++d) {
            uint64_t first = check.Varint();
            uint64_t count = check.Varint();
            if (!check.ok() || first != catalog_->dictionary(d)->size()) {
              if (!salvage_) return Corruption("{}: dictionary record out of order", path);
              salvage_->Stop(records_seen, pending);
              return salvage_->DropRecord(type, payload);
            }
            for (uint64_t k = 0; k < count && check.ok(); ++k) check.Bytes();
          }
          for (int d = 0; d < Catalog::kDictionaries; ++d) {
            r.Varint();
            uint64_t count = r.Varint();
            Dictionary* dict = catalog_->dictionary(d);
            for (uint64_t k = 0; k < count && r.ok(); ++k) dict->Intern(r.Bytes());
            logged_dictionary_sizes_[d] = dict->size();
          }
          if (!r.ok()) return Corruption("{}: truncated dictionary record", path);
          return Status::Ok();
        }
        case WalRecordType::kTxnData:
        case WalRecordType::kTxnSegments: {
          uint64_t txn;
          ASSIGN_OR_RETURN(StagedBatch staged, DecodeStaged(type, payload, &txn));
          next_txn_ = std::max(next_txn_, txn + 1);
          if (salvage_ && salvage_->Drops(txn, &staged)) return Status::Ok();
          pending[txn].push_back(std::move(staged));
          return Status::Ok();
        }
        case WalRecordType::kTxnCommit: {
          uint64_t txn = r.Varint();
          next_txn_ = std::max(next_txn_, txn + 1);
          if (salvage_ && salvage_->Drops(txn, nullptr)) return Status::Ok();
          auto it = pending.find(txn);
          if (it != pending.end()) {
            ApplyCommitted(it->second);
            pending.erase(it);
          }
          return Status::Ok();
        }
      }
      return Status::Ok();
    };
    WalDamageVisitor on_damage;
    if (salvage_) on_damage = [&](const WalDamage& damage) { return salvage_->OnDamage(damage, pending); };
    bool last = i + 1 == sequences.size();
    ASSIGN_OR_RETURN(WalReadResult read, ReadWal(path, last, visit, on_damage));
    if (read.torn_tail) {
      ASSIGN_OR_RETURN(uint64_t size, FileSize(path));
      if (salvage_) salvage_->OnTorn(read.valid_bytes, size - read.valid_bytes, read.torn_reason);
      if (!options_.read_only) {
        // A write that was never acknowledged (docs/FORMAT.md): cut off so the intact
        // records end the file. The bytes are still kept aside
        // (wal/NNNNNN.log.cut-at-OFFSET, never deleted by checkpoints), for the damage a
        // torn write cannot be told from: a synced tail truncated or zeroed on disk.
        ASSIGN_OR_RETURN(std::string whole, ReadFile(path));
        RETURN_IF_ERROR(KeepCutTail(path, whole, read.valid_bytes));
        ASSIGN_OR_RETURN(auto file, AppendFile::Open(path));
        RETURN_IF_ERROR(file->Truncate(read.valid_bytes));
      }
    }
    wal_sequence_ = sequences[i] + 1;
  }
  // Uncommitted transactions in `pending` are dropped: they were never acknowledged.
  return Status::Ok();
}

Result<StoreRepairReport> RepairStore(const StoreOptions& options, const std::function<Status()>& also_under_lock) {
  StoreOptions writable = options;
  writable.read_only = false;
  const std::string& dir = options.data_dir;
  if (!FileExists(dir + "/MANIFEST") && !FileExists(dir + "/wal"))
    return NotFound("no sibyl data in {} (pass --data)", dir);
  StoreRepairReport report;
  std::unique_ptr<EmbeddedStore> store(new EmbeddedStore(writable));
  LogSalvage salvage(*store, report);
  store->salvage_ = &salvage;
  Status loaded = store->Load();
  store->salvage_ = nullptr;
  RETURN_IF_ERROR(loaded);
  // Each log repair drops anything from is kept whole first: the report's offsets point
  // into these copies, and nothing repair leaves out is destroyed.
  for (const std::string& path : salvage.changed_files()) {
    ASSIGN_OR_RETURN(std::string bytes, ReadFile(path));
    std::string copy = path + ".before-repair";
    RETURN_IF_ERROR(WriteFileAtomic(copy, bytes));
    report.kept_copies.push_back(copy);
  }
  // The checkpoint commits the salvaged state and retires the damaged logs (their copies
  // are not log names, so no checkpoint deletes them).
  if (!salvage.changed_files().empty()) RETURN_IF_ERROR(store->Checkpoint());
  ASSIGN_OR_RETURN(StoreStats stats, store->Stats());
  report.events = stats.events;
  if (also_under_lock) RETURN_IF_ERROR(also_under_lock());
  return report;
}

}  // namespace sibyl
