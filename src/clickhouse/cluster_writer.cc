#include "clickhouse/cluster_writer.h"

#include <fmt/format.h>

#include <filesystem>
#include <random>
#include <unordered_set>
#include <thread>

#include "clickhouse/event_rows.h"
#include "clickhouse/row_binary.h"

namespace sibyl::clickhouse {
namespace {

class ClusterTransaction final : public Transaction {
 public:
  ClusterTransaction(const Cluster& cluster, WriterOptions options)
      : cluster_(cluster), options_(std::move(options)), batch_(cluster.NewBatchId()),
        events_(cluster.shards()), numbers_(cluster.shards()), links_(cluster.shards()) {}

  Result<AppendResult> Add(const EventBatch& batch) override {
    RETURN_IF_ERROR(state_);
    AppendResult result;
    const int64_t now = options_.clock->NowMs();
    if (batch.events.size() > UINT32_MAX - next_row_)
      return state_ = ResourceExhausted("one write into the cluster holds at most {} events: commit more often "
                                        "(ingest --commit-every)", UINT32_MAX);
    std::string_view last_device, last_user;  // of the previous event (views into `batch`)
    for (const ParsedEvent& e : batch.events) {
      const std::string owner = OwnerOf(e);
      const uint64_t hash = OwnerHash(owner);
      const size_t shard = hash % cluster_.shards();
      const uint32_t row = next_row_++;
      const int64_t time_ms = e.has_time ? e.time_ms : now;
      RowBinaryWriter out(&events_[shard]);
      EncodeEventRow(batch, e, batch_, row, owner, hash, time_ms, out);
      // The first row of each (device, user) pair in this write, beside it on its shard.
      // A user's events mostly come in runs from one device: a repeat of the previous
      // event's pair needs no lookup.
      const bool repeat = e.device_id == last_device && e.user_id == last_user;
      last_device = e.device_id;
      last_user = e.user_id;
      if (!repeat && !e.user_id.empty() && !e.device_id.empty() &&
          linked_.insert(fmt::format("{}{}{}", e.device_id, '\0', e.user_id)).second) {
        RowBinaryWriter link(&links_[shard]);
        link.String(e.device_id);
        link.String(e.user_id);
        link.UInt64(batch_);
        link.UInt32(row);
      }
      if (e.is_identify) {
        ++result.identify_calls;
      } else {
        ++result.events_written;
        span_.Add(time_ms);
      }
      ++rows_;
      if (events_[shard].size() >= options_.flush_bytes) {
        Status st = Flush(shard);
        if (!st.ok()) return state_ = st;
      }
    }
    return result;
  }

  Result<AppendResult> SetNumbers(const NumberPropertyUpdates& updates) override {
    RETURN_IF_ERROR(state_);
    if (!options_.actor_name) return FailedPrecondition("this cluster transaction cannot name actors");
    for (const auto& [name, values] : updates.columns)
      if (values.size() != updates.actors.size())
        return InvalidArgument("number column {} has {} values for {} actors", name, values.size(), updates.actors.size());
    for (size_t i = 0; i < updates.actors.size(); ++i) {
      const std::string owner = options_.actor_name(updates.actors[i]);
      const uint64_t hash = OwnerHash(owner);
      std::string& buffer = numbers_[hash % cluster_.shards()];
      RowBinaryWriter out(&buffer);
      for (const auto& [name, values] : updates.columns) {
        out.UInt64(batch_);
        out.Int64(updates.time_ms);
        out.String(owner);
        out.UInt64(hash);
        out.String(name);
        out.Float64(values[i]);
        ++rows_;
      }
    }
    return AppendResult{.user_property_changes = updates.actors.size() * updates.columns.size()};
  }

  Status Commit() override {
    RETURN_IF_ERROR(state_);
    if (Status st = cluster_.CheckCommittable(batch_); !st.ok()) return state_ = st;
    // The shards take their rows at once: each parses, sorts and compresses its own.
    std::vector<Status> flushed(cluster_.shards());
    {
      std::vector<std::jthread> senders;
      for (size_t shard = 0; shard < cluster_.shards(); ++shard)
        senders.emplace_back([this, shard, &flushed] { flushed[shard] = Flush(shard); });
    }
    for (const Status& st : flushed)
      if (!st.ok()) return state_ = st;
    state_ = FailedPrecondition("the transaction was committed");
    return cluster_.CommitBatch(batch_, options_.clock->NowMs(), rows_, options_.what, span_);
  }

 private:
  // Sends one shard's buffered rows. Touches only that shard's buffers, so shards flush
  // on threads of their own.
  Status Flush(size_t shard) {
    const Client& client = cluster_.shard(shard);
    if (!events_[shard].empty()) {
      RETURN_IF_ERROR(client.InsertRowBinary(
          fmt::format("{} ({})", cluster_.Table("events"), EventRowColumns()), events_[shard]));
      events_[shard].clear();
    }
    if (!numbers_[shard].empty()) {
      RETURN_IF_ERROR(client.InsertRowBinary(cluster_.Table("numbers"), numbers_[shard]));
      numbers_[shard].clear();
    }
    if (!links_[shard].empty()) {
      RETURN_IF_ERROR(client.InsertRowBinary(cluster_.Table("links"), links_[shard]));
      links_[shard].clear();
    }
    return Status::Ok();
  }

  const Cluster& cluster_;
  WriterOptions options_;
  uint64_t batch_;
  uint32_t next_row_ = 0;
  uint64_t rows_ = 0;
  std::vector<std::string> events_, numbers_, links_;  // RowBinary per shard, not yet sent
  std::unordered_set<std::string> linked_;  // "device\0user" of the pairs seen in this write
  TimeSpan span_;                           // of this write's events
  Status state_;  // the first failure: every later call repeats it
};

}  // namespace

std::unique_ptr<Transaction> BeginClusterTransaction(const Cluster& cluster, WriterOptions options) {
  return std::make_unique<ClusterTransaction>(cluster, std::move(options));
}

Result<AppendResult> AppendToCluster(const Cluster& cluster, const EventBatch& batch) {
  auto txn = BeginClusterTransaction(cluster, WriterOptions{});
  ASSIGN_OR_RETURN(AppendResult result, txn->Add(batch));
  RETURN_IF_ERROR(txn->Commit());
  return result;
}

PrivateDirectory::PrivateDirectory(const std::string& temp_dir, std::string_view prefix) {
  std::mt19937_64 rng(std::random_device{}());
  path_ = (std::filesystem::path(temp_dir) / fmt::format("{}-{:016x}", prefix, rng())).string();
}

PrivateDirectory::~PrivateDirectory() {
  std::error_code ec;
  std::filesystem::remove_all(path_, ec);
}

}  // namespace sibyl::clickhouse
