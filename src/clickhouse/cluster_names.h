// The names a definition may use, as the cluster knows them (query/store_names.h): event
// types, property keys and user property keys of the visible rows, by one DISTINCT query a
// shard, instead of a pull of every event (`sibyl predict create`, the server's create and
// cohort routes). A few seconds' scan of three columns on a 25M-row shard, where the pull
// took minutes and a whole machine's memory.
#pragma once

#include "clickhouse/cluster.h"
#include "query/store_names.h"

namespace sibyl::clickhouse {

Result<NameLists> ReadStoreNames(const Cluster& cluster);

}  // namespace sibyl::clickhouse
