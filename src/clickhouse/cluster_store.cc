#include "clickhouse/cluster_store.h"

#include <fmt/format.h>

#include <chrono>
#include <optional>

#include "clickhouse/cluster_writer.h"

namespace sibyl::clickhouse {
namespace {

class ClusterWriterStore final : public EventStore {
 public:
  ClusterWriterStore(const Cluster& cluster, const std::string& temp_dir) : cluster_(cluster), dir_(temp_dir, "writer") {}

  Result<AppendResult> Append(const EventBatch& batch) override { return AppendToCluster(cluster_, batch); }
  // Event batches only: scores are written by the runs that computed them, through the
  // slice they pulled (its actor names), never through this store.
  Result<std::unique_ptr<Transaction>> Begin() override {
    return BeginClusterTransaction(cluster_, WriterOptions{});
  }
  std::shared_ptr<const EventReader> Snapshot() const override { return empty_->Snapshot(); }
  // The shards keep the data; what a checkpoint does here is seal the commit log once an
  // hour, so that the list of committed batches every reader sends stays a day long
  // (docs/SCALE_OUT.md, "Sealing the commit log").
  Status Checkpoint() override {
    const auto now = std::chrono::steady_clock::now();
    if (sealed_ && now - *sealed_ < std::chrono::hours(1)) return Status::Ok();
    RETURN_IF_ERROR(cluster_.Seal(2 * Cluster::kMaxWriteAgeMs).status());
    sealed_ = now;
    return Status::Ok();
  }
  Result<StoreStats> Stats() const override { return StoreStats{}; }

  const Cluster& cluster_;
  PrivateDirectory dir_;              // declared before the store in it: removed after it
  std::unique_ptr<EventStore> empty_;
  std::optional<std::chrono::steady_clock::time_point> sealed_;
};

}  // namespace

Result<std::unique_ptr<EventStore>> OpenClusterWriter(const Cluster& cluster, const std::string& temp_dir) {
  auto store = std::make_unique<ClusterWriterStore>(cluster, temp_dir);
  StoreOptions options;
  options.data_dir = store->dir_.path();
  ASSIGN_OR_RETURN(store->empty_, EventStore::Open(options));
  return std::unique_ptr<EventStore>(std::move(store));
}

std::string OwnerOfUserId(std::string_view user_id) {
  constexpr std::string_view kDevice = "device:";
  if (user_id.starts_with(kDevice)) return "d:" + std::string(user_id.substr(kDevice.size()));
  return "u:" + std::string(user_id);
}

}  // namespace sibyl::clickhouse
