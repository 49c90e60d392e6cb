#include "clickhouse/cluster.h"

#include <fmt/format.h>
#include <fmt/ranges.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <future>
#include <mutex>
#include <nlohmann/json.hpp>
#include <random>
#include <sstream>

#include "clickhouse/row_binary.h"
#include "common/file.h"
#include "common/mix.h"

namespace sibyl::clickhouse {
namespace {

std::string Trim(std::string_view s) {
  while (!s.empty() && std::isspace(static_cast<unsigned char>(s.front()))) s.remove_prefix(1);
  while (!s.empty() && std::isspace(static_cast<unsigned char>(s.back()))) s.remove_suffix(1);
  return std::string(s);
}

// The time span of a commit's or a seal's events. Rows written before spans were kept
// read as has_span = 0 (the defaults): the span is then unknown, not empty.
constexpr const char* kSpanColumns[] = {"min_time Int64 DEFAULT 9223372036854775807",
                                        "max_time Int64 DEFAULT -9223372036854775808", "has_span UInt8 DEFAULT 0"};

// The tables of one shard. MergeTree parts are partitioned by month, not week: an insert
// writes one part per partition it touches, and a year of history in one ingest would
// otherwise make 52 small parts per shard per insert. Ordered by owner then time, so a
// shard's users and a hash sample of them read as ranges.
std::vector<std::string> SchemaStatements(std::string_view db) {
  return {
      fmt::format("CREATE DATABASE IF NOT EXISTS {}", db),
      fmt::format("CREATE TABLE IF NOT EXISTS {}.events ("
                  "batch UInt64, row UInt32, owner String, owner_hash UInt64, user_id String, device_id String, "
                  "event_type String, time Int64, session_id Int64, insert_id String, is_identify UInt8, "
                  "prop_keys Array(String), prop_kinds Array(UInt8), prop_nums Array(Float64), prop_strs Array(String), "
                  "upd_ops Array(UInt8), upd_keys Array(String), upd_kinds Array(UInt8), upd_nums Array(Float64), "
                  "upd_strs Array(String)"
                  ") ENGINE = MergeTree PARTITION BY toYYYYMM(toDate(intDiv(time, 1000))) ORDER BY (owner_hash, time)",
                  db),
      fmt::format("CREATE TABLE IF NOT EXISTS {}.numbers ("
                  "batch UInt64, time Int64, owner String, owner_hash UInt64, key String, value Float64"
                  ") ENGINE = MergeTree ORDER BY (owner_hash, batch)",
                  db),
      fmt::format("CREATE TABLE IF NOT EXISTS {}.commits ("
                  "batch UInt64, committed_ms Int64, rows UInt64, what String, {}) ENGINE = MergeTree ORDER BY batch",
                  db, fmt::join(kSpanColumns, ", ")),
      fmt::format("CREATE TABLE IF NOT EXISTS {}.seals ("
                  "below UInt64, sealed_ms Int64, abandoned Array(UInt64), {}) ENGINE = MergeTree ORDER BY below",
                  db, fmt::join(kSpanColumns, ", ")),
      // The first row of each (device, user) pair in each batch: a slice of a few users
      // finds the other users seen with its devices here, by the primary key, instead of
      // scanning every row's ids (docs/SCALE_OUT.md, "Reads").
      fmt::format("CREATE TABLE IF NOT EXISTS {}.links ("
                  "device_id String, user_id String, batch UInt64, row UInt32"
                  ") ENGINE = MergeTree ORDER BY (device_id, user_id, batch, row)",
                  db),
      fmt::format("CREATE TABLE IF NOT EXISTS {}.shard_info (shard UInt32, shards UInt32) ENGINE = TinyLog", db),
  };
}

}  // namespace

Result<ClusterConfig> ClusterConfig::Parse(std::string_view spec) {
  ClusterConfig config;
  std::string text(spec);
  if (!spec.starts_with("http") && std::filesystem::exists(text)) {
    ASSIGN_OR_RETURN(text, ReadFile(text));
    for (char& c : text)
      if (c == '\n') c = ',';
  }
  std::stringstream parts(text);
  std::string part;
  while (std::getline(parts, part, ',')) {
    part = Trim(part);
    if (part.empty() || part.starts_with('#')) continue;
    config.endpoints.push_back(part);
  }
  if (config.endpoints.empty())
    return InvalidArgument("no ClickHouse endpoints in \"{}\" (give http://HOST:PORT per shard, comma-separated, or "
                           "a file with one per line)", spec);
  return config;
}

Result<ClusterConfig> ClusterConfig::Load(const std::string& data_dir) {
  const std::string path = (std::filesystem::path(data_dir) / "clickhouse.json").string();
  if (!std::filesystem::exists(path)) return NotFound("{} does not exist", path);
  ASSIGN_OR_RETURN(std::string text, ReadFile(path));
  nlohmann::json j = nlohmann::json::parse(text, nullptr, false);
  if (j.is_discarded() || !j.contains("endpoints") || !j["endpoints"].is_array())
    return Corruption("{}: expected {{\"endpoints\": [...], \"database\": ...}}", path);
  ClusterConfig config;
  for (const auto& e : j["endpoints"]) {
    if (!e.is_string()) return Corruption("{}: endpoints must be strings", path);
    config.endpoints.push_back(e.get<std::string>());
  }
  config.database = j.value("database", config.database);
  config.max_threads = j.value("max_threads", config.max_threads);
  config.pull_chunk_rows = j.value("pull_chunk_rows", config.pull_chunk_rows);
  if (j.contains("settings")) {
    if (!j["settings"].is_object()) return Corruption("{}: \"settings\" must be an object", path);
    for (const auto& [key, value] : j["settings"].items())
      config.settings.emplace_back(key, value.is_string() ? value.get<std::string>() : value.dump());
  }
  if (config.endpoints.empty()) return Corruption("{}: no endpoints", path);
  return config;
}

Status ClusterConfig::Save(const std::string& data_dir) const {
  std::error_code ec;
  std::filesystem::create_directories(data_dir, ec);
  nlohmann::json j{{"endpoints", endpoints}, {"database", database}, {"max_threads", max_threads},
                   {"pull_chunk_rows", pull_chunk_rows}};
  if (!settings.empty()) {
    j["settings"] = nlohmann::json::object();
    for (const auto& [key, value] : settings) j["settings"][key] = value;
  }
  return WriteFileAtomic((std::filesystem::path(data_dir) / "clickhouse.json").string(), j.dump(2) + "\n");
}

uint64_t OwnerHash(std::string_view owner) {
  uint64_t h = 0xcbf29ce484222325ULL;
  for (unsigned char c : owner) {
    h ^= c;
    h *= 0x100000001b3ULL;
  }
  // SplitMix64's finaliser: FNV's low bits alone would split shards unevenly.
  return Mix64(h);
}

Result<std::unique_ptr<Cluster>> Cluster::Open(const ClusterConfig& config) {
  if (config.endpoints.empty()) return InvalidArgument("a ClickHouse cluster needs at least one endpoint");
  for (char c : config.database)
    if (!std::isalnum(static_cast<unsigned char>(c)) && c != '_')
      return InvalidArgument("ClickHouse database \"{}\": use letters, digits and _", config.database);
  std::unique_ptr<Cluster> cluster(new Cluster());
  cluster->config_ = config;
  for (const std::string& endpoint : config.endpoints) {
    ASSIGN_OR_RETURN(auto client, Client::Connect(endpoint, config.max_threads, config.settings));
    cluster->clients_.push_back(std::move(client));
  }
  for (size_t i = 0; i < cluster->shards(); ++i) RETURN_IF_ERROR(cluster->EnsureSchema(i));
  return cluster;
}

Status Cluster::EnsureSchema(size_t shard) const {
  const Client& client = *clients_[shard];
  // `links` came after `events`: created over a cluster that already holds events, it is
  // filled from them once (a writer of this version adds its own rows as it writes).
  ASSIGN_OR_RETURN(std::string had_links, client.Query(fmt::format("EXISTS TABLE {} FORMAT TSV", Table("links"))));
  for (const std::string& sql : SchemaStatements(config_.database)) RETURN_IF_ERROR(client.Execute(sql));
  RETURN_IF_ERROR(AddMissingColumns(shard));
  if (Trim(had_links) != "1") {
    RETURN_IF_ERROR(client.Execute(fmt::format(
        "INSERT INTO {} SELECT device_id, user_id, batch, min(row) FROM {} WHERE user_id != '' AND device_id != '' "
        "GROUP BY device_id, user_id, batch",
        Table("links"), Table("events"))));
  }
  ASSIGN_OR_RETURN(std::string info, client.Query(fmt::format("SELECT shard, shards FROM {} FORMAT TSV", Table("shard_info"))));
  if (info.empty())
    return client.Execute(fmt::format("INSERT INTO {} VALUES ({}, {})", Table("shard_info"), shard, shards()));
  unsigned was_shard = 0, was_shards = 0;
  if (std::sscanf(info.c_str(), "%u\t%u", &was_shard, &was_shards) != 2)
    return Corruption("{}: {} holds \"{}\"", client.endpoint(), Table("shard_info"), Trim(info));
  if (was_shard != shard || was_shards != shards())
    return FailedPrecondition(
        "{} is shard {} of {}, but the endpoint list makes it shard {} of {}: list the endpoints in the cluster's "
        "shard order (users are placed by a hash modulo the shard count, so it cannot change)",
        client.endpoint(), was_shard, was_shards, shard, shards());
  return Status::Ok();
}

// Columns added to tables after their first version. 18.16 has no ADD COLUMN IF NOT
// EXISTS: look first, and accept that another process added it meanwhile.
Status Cluster::AddMissingColumns(size_t shard) const {
  const Client& client = *clients_[shard];
  for (const char* table : {"commits", "seals"}) {
    auto has_column = [&]() -> Result<bool> {
      ASSIGN_OR_RETURN(std::string n, client.Query(fmt::format(
                                           "SELECT count() FROM system.columns WHERE database = {} AND table = {} "
                                           "AND name = 'has_span' FORMAT TSV",
                                           Quote(config_.database), Quote(table))));
      return Trim(n) != "0";
    };
    ASSIGN_OR_RETURN(bool present, has_column());
    if (present) continue;
    std::string columns;
    for (std::string_view column : kSpanColumns)
      columns += fmt::format("{}ADD COLUMN {}", columns.empty() ? "" : ", ", column);
    Status added = client.Execute(fmt::format("ALTER TABLE {} {}", Table(table), columns));
    if (!added.ok()) {
      ASSIGN_OR_RETURN(present, has_column());
      if (!present) return added;
    }
  }
  return Status::Ok();
}

uint64_t Cluster::NewBatchId() const {
  static std::atomic<uint64_t> last{0};
  static const uint64_t salt = std::random_device{}() & 0xfff;
  const uint64_t ms = static_cast<uint64_t>(
      std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::system_clock::now().time_since_epoch()).count());
  uint64_t id = (ms << 20) | (salt << 8);
  uint64_t prev = last.load();
  while (true) {
    const uint64_t next = std::max(id, prev + 1);
    if (last.compare_exchange_weak(prev, next)) return next;
  }
}

namespace {

int64_t NowMs() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::system_clock::now().time_since_epoch())
      .count();
}

// Unsigned integers, one a line or within one "[a,b,...]" (TSV of an array).
Result<std::vector<uint64_t>> ParseIds(std::string_view text, const std::string& where) {
  std::vector<uint64_t> ids;
  std::string copy(text);
  const char* p = copy.c_str();
  while (*p) {
    while (*p == '\n' || *p == '[' || *p == ']' || *p == ',') ++p;
    if (!*p) break;
    char* end = nullptr;
    ids.push_back(std::strtoull(p, &end, 10));
    if (end == p) return Corruption("{}: unreadable commit log", where);
    p = end;
  }
  std::sort(ids.begin(), ids.end());
  return ids;
}

}  // namespace

// How long a read of the newest seal is reused by CheckCommittable (see seal_cached_).
constexpr int64_t kSealCacheMs = 60'000;

Status Cluster::CheckCommittable(uint64_t batch) const {
  // A write that took longer than a seal leaves unsealed could be hidden by one (its rows
  // listed as abandoned), or its rows, sent after the seal, would show below it without a
  // commit: refused before a row is sent, nothing of it becomes visible.
  const int64_t age_ms = NowMs() - static_cast<int64_t>(batch >> 20);
  if (age_ms > kMaxWriteAgeMs)
    return FailedPrecondition("the write took {} h, longer than the {} h a write may take on a cluster: not committed",
                              age_ms / 3'600'000, kMaxWriteAgeMs / 3'600'000);
  const int64_t now_steady_ms = std::chrono::duration_cast<std::chrono::milliseconds>(
                                    std::chrono::steady_clock::now().time_since_epoch()).count();
  uint64_t sealed_below = 0;
  {
    std::lock_guard lock(seal_mutex_);
    if (seal_read_at_ms_ == INT64_MIN || now_steady_ms - seal_read_at_ms_ > kSealCacheMs) {
      ASSIGN_OR_RETURN(std::string sealed,
                       clients_[0]->Query(fmt::format("SELECT max(below) FROM {} FORMAT TSV", Table("seals"))));
      seal_cached_ = std::strtoull(sealed.c_str(), nullptr, 10);
      seal_read_at_ms_ = now_steady_ms;
    }
    sealed_below = seal_cached_;
  }
  if (batch < sealed_below)
    return FailedPrecondition("the write's batch is older than the commit log's seal: not committed");
  return Status::Ok();
}

Status Cluster::CommitBatch(uint64_t batch, int64_t committed_ms, uint64_t rows, std::string_view what,
                            const TimeSpan& events) const {
  return clients_[0]->Execute(fmt::format(
      "INSERT INTO {} (batch, committed_ms, rows, what, min_time, max_time, has_span) VALUES ({}, {}, {}, {}, {}, {}, 1)",
      Table("commits"), batch, committed_ms, rows, Quote(what), events.min_ms, events.max_ms));
}

namespace {

// Reads "id \t min_time \t max_time \t has_span" lines (TSV): the ids into `ids`, their
// spans added into `span`, which becomes unset if a row has none.
Status ParseSpannedIds(std::string_view text, const std::string& where, std::vector<uint64_t>* ids,
                       std::optional<TimeSpan>* span) {
  std::string copy(text);
  const char* p = copy.c_str();
  while (*p) {
    char* end = nullptr;
    const uint64_t id = std::strtoull(p, &end, 10);
    if (end == p || *end != '\t') return Corruption("{}: unreadable commit log", where);
    TimeSpan row;
    row.min_ms = std::strtoll(end + 1, &end, 10);
    row.max_ms = std::strtoll(end + 1, &end, 10);
    const long has_span = std::strtol(end + 1, &end, 10);
    if (*end != '\n' && *end != '\0') return Corruption("{}: unreadable commit log", where);
    if (ids) ids->push_back(id);
    if (has_span != 1) span->reset();
    else if (span->has_value()) (*span)->Add(row);
    p = *end ? end + 1 : end;
  }
  return Status::Ok();
}

}  // namespace

Result<Cluster::CommitLog> Cluster::ReadCommitLog() const {
  CommitLog log;
  const std::string where = clients_[0]->endpoint();
  ASSIGN_OR_RETURN(std::string sealed,
                   clients_[0]->Query(fmt::format("SELECT below, min_time, max_time, has_span FROM {} ORDER BY below "
                                                  "DESC LIMIT 1 FORMAT TSV",
                                                  Table("seals"))));
  log.sealed_span = TimeSpan{};
  std::vector<uint64_t> below;
  RETURN_IF_ERROR(ParseSpannedIds(sealed, where, &below, &log.sealed_span));
  log.sealed_below = below.empty() ? 0 : below[0];
  if (log.sealed_below > 0) {
    ASSIGN_OR_RETURN(std::string abandoned,
                     clients_[0]->Query(fmt::format("SELECT arrayJoin(abandoned) FROM {} FORMAT TSV", Table("seals"))));
    ASSIGN_OR_RETURN(log.abandoned, ParseIds(abandoned, where));
  }
  ASSIGN_OR_RETURN(std::string text, clients_[0]->Query(fmt::format(
                                         "SELECT batch, min_time, max_time, has_span FROM {} WHERE batch >= {} "
                                         "ORDER BY batch FORMAT TSV",
                                         Table("commits"), log.sealed_below)));
  log.span = log.sealed_span;
  RETURN_IF_ERROR(ParseSpannedIds(text, where, &log.committed, &log.span));
  return log;
}

Cluster::Visibility Cluster::Visible(const CommitLog& log) {
  Visibility v;
  ExternalTable committed{.name = "committed", .column = "batch", .type = "UInt64"};
  committed.values.reserve(log.committed.size());
  for (uint64_t b : log.committed) committed.values.push_back(std::to_string(b));
  v.tables.push_back(std::move(committed));
  v.condition = "batch IN committed";
  if (log.sealed_below > 0 && log.abandoned.empty()) {
    v.condition = fmt::format("(batch IN committed OR batch < {})", log.sealed_below);
  } else if (log.sealed_below > 0) {
    ExternalTable abandoned{.name = "abandoned", .column = "batch", .type = "UInt64"};
    for (uint64_t b : log.abandoned) abandoned.values.push_back(std::to_string(b));
    v.tables.push_back(std::move(abandoned));
    v.condition = fmt::format("(batch IN committed OR (batch < {} AND batch NOT IN abandoned))", log.sealed_below);
  }
  return v;
}

Result<TimeSpan> Cluster::ScanTimeSpan(const CommitLog& log, uint64_t below) const {
  const Visibility visible = Visible(log);
  const std::string sql = fmt::format(
      "SELECT count(), min(time), max(time) FROM {} WHERE {} AND batch < {} AND is_identify = 0 FORMAT RowBinary",
      Table("events"), visible.condition, below);
  const std::vector<Result<std::string>> answers =
      OnEveryShard([&](size_t s) { return clients_[s]->Query(sql, visible.tables); });
  TimeSpan span;
  for (size_t s = 0; s < shards(); ++s) {
    const Result<std::string>& answer = answers[s];
    RETURN_IF_ERROR(answer.status());
    RowBinaryReader in(*answer);
    uint64_t count = 0;
    int64_t lo = 0, hi = 0;
    if (!in.UInt64(&count) || !in.Int64(&lo) || !in.Int64(&hi))
      return Corruption("{}: unreadable time span", clients_[s]->endpoint());
    if (count > 0) span.Add(TimeSpan{lo, hi});
  }
  return span;
}

std::vector<Result<std::string>> Cluster::OnEveryShard(const std::function<Result<std::string>(size_t)>& query) const {
  std::vector<std::future<Result<std::string>>> pending;
  for (size_t s = 0; s < shards(); ++s) pending.push_back(std::async(std::launch::async, query, s));
  std::vector<Result<std::string>> answers;
  for (auto& p : pending) answers.push_back(p.get());
  return answers;
}

Result<Cluster::CommitLog> Cluster::Seal(int64_t older_than_ms) const {
  ASSIGN_OR_RETURN(CommitLog log, ReadCommitLog());
  const uint64_t below = static_cast<uint64_t>(std::max<int64_t>(0, NowMs() - older_than_ms)) << 20;
  if (below <= log.sealed_below) return log;
  // Batches in (old seal, new seal) with rows on some shard but no commit: abandoned.
  ExternalTable committed{.name = "committed", .column = "batch", .type = "UInt64"};
  for (uint64_t b : log.committed)
    if (b < below) committed.values.push_back(std::to_string(b));
  std::vector<uint64_t> abandoned;
  for (size_t s = 0; s < shards(); ++s) {
    for (const char* table : {"events", "numbers"}) {
      ASSIGN_OR_RETURN(std::string text,
                       clients_[s]->Query(fmt::format("SELECT DISTINCT batch FROM {} WHERE batch >= {} AND batch < {} "
                                                      "AND batch NOT IN committed FORMAT TSV",
                                                      Table(table), log.sealed_below, below),
                                          {committed}));
      ASSIGN_OR_RETURN(std::vector<uint64_t> ids, ParseIds(text, clients_[s]->endpoint()));
      abandoned.insert(abandoned.end(), ids.begin(), ids.end());
    }
  }
  std::sort(abandoned.begin(), abandoned.end());
  abandoned.erase(std::unique(abandoned.begin(), abandoned.end()), abandoned.end());
  std::string list;
  for (uint64_t b : abandoned) list += fmt::format("{}{}", list.empty() ? "" : ",", b);
  // The seal's span covers every visible batch below it: the old seal's and the spans of
  // the commits it seals; read from the shards once if one of those predates spans.
  std::optional<TimeSpan> span = log.sealed_span;
  ASSIGN_OR_RETURN(std::string sealed_commits,
                   clients_[0]->Query(fmt::format("SELECT batch, min_time, max_time, has_span FROM {} WHERE batch >= {} "
                                                  "AND batch < {} FORMAT TSV",
                                                  Table("commits"), log.sealed_below, below)));
  RETURN_IF_ERROR(ParseSpannedIds(sealed_commits, clients_[0]->endpoint(), nullptr, &span));
  if (!span) {
    ASSIGN_OR_RETURN(span, ScanTimeSpan(log, below));
  }
  RETURN_IF_ERROR(clients_[0]->Execute(
      fmt::format("INSERT INTO {} (below, sealed_ms, abandoned, min_time, max_time, has_span) VALUES ({}, {}, [{}], {}, "
                  "{}, 1)",
                  Table("seals"), below, NowMs(), list, span->min_ms, span->max_ms)));
  {
    // This process's own writes see its seal at once.
    std::lock_guard lock(seal_mutex_);
    seal_cached_ = std::max(seal_cached_, below);
  }
  // What the seal made garbage: the rows of the abandoned writes (their writers are gone:
  // a write older than the seal can no longer commit) and the commit rows below it
  // (readers read commits from the newest seal up). Deleted by mutations, which
  // ClickHouse runs in the background; readers hide these rows until then anyway. A
  // mutation rewrites the parts it touches, so the shards' tables are only mutated when a
  // write was abandoned, which is rare (a writer killed between its rows and its commit).
  if (!list.empty()) {
    for (size_t s = 0; s < shards(); ++s)
      for (const char* table : {"events", "numbers"})
        RETURN_IF_ERROR(clients_[s]->Execute(fmt::format("ALTER TABLE {} DELETE WHERE batch IN ({})", Table(table), list)));
  }
  RETURN_IF_ERROR(clients_[0]->Execute(fmt::format("ALTER TABLE {} DELETE WHERE batch < {}", Table("commits"), below)));
  return ReadCommitLog();
}

}  // namespace sibyl::clickhouse
