// Which store a command's events come from: the embedded store in the data directory, or
// a ClickHouse cluster (docs/SCALE_OUT.md), chosen once here for every verb.
#pragma once

#include <memory>

#include "clickhouse/cluster.h"
#include "clickhouse/slice_store.h"
#include "cli/commands.h"
#include "store/event_store.h"

namespace sibyl {

// The cluster the command runs on, or null for the embedded store. Endpoints given by
// flag or environment are saved in the data directory when `save` (the first ingest).
std::unique_ptr<clickhouse::Cluster> OpenClusterIfChosen(const GlobalOptions& global, bool save = false);

// A store to read (and write scores back to). On a cluster, the slice `slice` pulled into
// a private store under <data>/tmp; `cluster` keeps the connection the slice writes through.
struct OpenedStore {
  std::unique_ptr<clickhouse::Cluster> cluster;
  std::unique_ptr<EventStore> store;
};
OpenedStore OpenStoreFor(const GlobalOptions& global, const StoreOptions& options,
                         const clickhouse::SliceSpec& slice = {});
// The same on a cluster the command already opened (null: the embedded store).
OpenedStore OpenStoreOn(const GlobalOptions& global, const StoreOptions& options, const clickhouse::SliceSpec& slice,
                        std::unique_ptr<clickhouse::Cluster> cluster);

// On a cluster, the users a training run pulls: all, or a hash sample of `percent` of them
// (train --sample), the same users every run.
clickhouse::SliceSpec SampleSlice(double percent);

// Fails a verb that does not run on a cluster yet, with what to do instead.
void RequireEmbedded(const GlobalOptions& global, std::string_view verb);

}  // namespace sibyl
