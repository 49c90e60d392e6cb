#include "clickhouse/cluster_names.h"

#include <fmt/format.h>

#include "clickhouse/row_binary.h"

namespace sibyl::clickhouse {

Result<NameLists> ReadStoreNames(const Cluster& cluster) {
  ASSIGN_OR_RETURN(Cluster::CommitLog log, cluster.ReadCommitLog());
  const Cluster::Visibility visible = Cluster::Visible(log);
  // 0: an event type, 1: an event property key, 2: a user property key (set by an event or
  // an identify call, or a written-back score).
  const std::string sql = fmt::format(
      "SELECT DISTINCT kind, name FROM ("
      "SELECT toUInt8(0) AS kind, event_type AS name FROM {0} WHERE {2} AND is_identify = 0 "
      "UNION ALL SELECT toUInt8(1) AS kind, arrayJoin(prop_keys) AS name FROM {0} WHERE {2} "
      "UNION ALL SELECT toUInt8(2) AS kind, arrayJoin(upd_keys) AS name FROM {0} WHERE {2} "
      "UNION ALL SELECT toUInt8(2) AS kind, key AS name FROM {1} WHERE {2}"
      ") FORMAT RowBinary",
      cluster.Table("events"), cluster.Table("numbers"), visible.condition);
  const std::vector<Result<std::string>> answers =
      cluster.OnEveryShard([&](size_t s) { return cluster.shard(s).Query(sql, visible.tables); });
  std::vector<std::string> event_types, property_keys, user_properties;
  for (size_t s = 0; s < cluster.shards(); ++s) {
    RETURN_IF_ERROR(answers[s].status());
    RowBinaryReader in(*answers[s]);
    while (!in.at_end()) {
      uint8_t kind = 0;
      std::string_view name;
      if (!in.UInt8(&kind) || !in.String(&name) || kind > 2)
        return Corruption("{}: unreadable names", cluster.shard(s).endpoint());
      if (kind == 0) {
        event_types.emplace_back(name);
        continue;
      }
      property_keys.emplace_back(name);  // one name space for event and user properties
      if (kind == 2) user_properties.emplace_back(name);
    }
  }
  return NameLists(std::move(event_types), std::move(property_keys), std::move(user_properties));
}

}  // namespace sibyl::clickhouse
