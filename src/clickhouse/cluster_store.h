// The cluster as the store of a long-running writer (`sibyl serve`, docs/SERVER.md "On a
// ClickHouse cluster"): Begin() and Append() write to the cluster (cluster_writer.h), each
// transaction visible to every reader once its commit row is written, so the server's
// group commit runs unchanged on it. The shards keep the data: Checkpoint() seals the
// commit log (at most once an hour; Cluster::Seal). It holds no events itself: Snapshot() is an empty reader, since pulling the cluster
// per request is not what a server can afford; a reader pulls what it needs with OpenSlice
// (slice_store.h): one user for a real-time score, a shard for a scoring run.
#pragma once

#include <memory>
#include <string>

#include "clickhouse/cluster.h"
#include "store/event_store.h"

namespace sibyl::clickhouse {

// `cluster` must outlive the store. `temp_dir` holds the empty reader's folder (deleted
// when the store closes).
Result<std::unique_ptr<EventStore>> OpenClusterWriter(const Cluster& cluster, const std::string& temp_dir);

// The actor name the cluster places a user by, from a user id as the API and the CLI
// name it: "device:ID" for an anonymous device ("d:ID"), any other id a user ("u:ID").
std::string OwnerOfUserId(std::string_view user_id);

}  // namespace sibyl::clickhouse
