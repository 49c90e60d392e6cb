// The ClickHouse backend's pieces that the end-to-end parity test (parity_test.sh) cannot
// reach: the RowBinary codec and event rows both ways, the owner hash (it places users on
// shards, so it must never change), the commit protocol when a shard dies between two
// inserts of one write, and the check that refuses a reordered endpoint list.
#include <fmt/format.h>
#include <set>

#include <gtest/gtest.h>

#include <algorithm>
#include <csignal>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <random>
#include <thread>

#include "clickhouse/cluster.h"
#include "clickhouse/cluster_writer.h"
#include "clickhouse/event_rows.h"
#include "clickhouse/row_binary.h"
#include "clickhouse/shard_stream.h"
#include "clickhouse/slice_store.h"

namespace sibyl::clickhouse {
namespace {

namespace fs = std::filesystem;

EventBatch MakeEvents(int users, int per_user, int64_t start_ms) {
  EventBatch batch;
  for (int u = 0; u < users; ++u) {
    for (int i = 0; i < per_user; ++i) {
      ParsedEvent e;
      e.user_id = batch.Intern("user-" + std::to_string(u));
      e.device_id = batch.Intern("device-" + std::to_string(u));
      e.event_type = batch.Intern(i % 3 == 0 ? "Purchase" : "View");
      e.insert_id = batch.Intern(std::to_string(start_ms) + "-" + std::to_string(u) + "-" + std::to_string(i));
      e.time_ms = start_ms + (u * per_user + i) * 60'000;
      e.has_time = true;
      e.session_id = e.time_ms / 3'600'000;
      e.properties_begin = static_cast<uint32_t>(batch.properties.size());
      batch.properties.push_back({batch.Intern("price"), Value::Number(1.5 * i)});
      batch.properties.push_back({batch.Intern("plan"), Value::String(batch.Intern(i % 2 ? "pro" : "free"))});
      batch.properties.push_back({batch.Intern("tags"), Value::Array(batch.Intern("[\"a\",1]"))});
      batch.properties.push_back({batch.Intern("ok"), Value::Bool(i % 2 == 0)});
      e.properties_end = static_cast<uint32_t>(batch.properties.size());
      e.user_updates_begin = static_cast<uint32_t>(batch.user_updates.size());
      batch.user_updates.push_back({UserPropertyOp::kAdd, batch.Intern("visits"), Value::Number(1)});
      batch.user_updates.push_back({UserPropertyOp::kUnset, batch.Intern("trial"), Value::Null()});
      e.user_updates_end = static_cast<uint32_t>(batch.user_updates.size());
      batch.events.push_back(e);
    }
  }
  return batch;
}

TEST(RowBinaryTest, ValuesRoundTripAndTruncationIsReported) {
  std::string bytes;
  RowBinaryWriter out(&bytes);
  out.UInt8(7);
  out.UInt32(123456);
  out.UInt64(UINT64_MAX);
  out.Int64(-42);
  out.Float64(0.25);
  out.String(std::string(300, 'x'));  // a two-byte length
  out.VarUInt(1ULL << 40);
  RowBinaryReader in(bytes);
  uint8_t a; uint32_t b; uint64_t c, g; int64_t d; double e; std::string_view f;
  ASSERT_TRUE(in.UInt8(&a) && in.UInt32(&b) && in.UInt64(&c) && in.Int64(&d) && in.Float64(&e) && in.String(&f) &&
              in.VarUInt(&g));
  EXPECT_EQ(a, 7);
  EXPECT_EQ(b, 123456u);
  EXPECT_EQ(c, UINT64_MAX);
  EXPECT_EQ(d, -42);
  EXPECT_EQ(e, 0.25);
  EXPECT_EQ(f, std::string(300, 'x'));
  EXPECT_EQ(g, 1ULL << 40);
  EXPECT_TRUE(in.at_end());
  // Every cut inside the string fails the read instead of reading past the end.
  for (size_t cut = 1 + 4 + 8 + 8 + 8; cut < bytes.size() - 6; ++cut) {
    RowBinaryReader partial(std::string_view(bytes).substr(0, cut));
    ASSERT_TRUE(partial.UInt8(&a) && partial.UInt32(&b) && partial.UInt64(&c) && partial.Int64(&d) &&
                partial.Float64(&e));
    EXPECT_FALSE(partial.String(&f)) << cut;
  }
}

TEST(EventRowsTest, AnEventRoundTripsWithEveryValueKind) {
  EventBatch batch = MakeEvents(2, 2, 1'700'000'000'000);
  std::string bytes;
  RowBinaryWriter out(&bytes);
  for (uint32_t i = 0; i < batch.events.size(); ++i) {
    const ParsedEvent& e = batch.events[i];
    EncodeEventRow(batch, e, 99, i, OwnerOf(e), OwnerHash(OwnerOf(e)), e.time_ms, out);
  }
  EventBatch back;
  RowBinaryReader in(bytes);
  for (uint32_t i = 0; i < batch.events.size(); ++i) {
    RowKey key;
    ASSERT_TRUE(DecodeEventRow(in, &key, &back));
    EXPECT_EQ(key.batch, 99u);
    EXPECT_EQ(key.row, i);
  }
  EXPECT_TRUE(in.at_end());
  ASSERT_EQ(back.events.size(), batch.events.size());
  for (size_t i = 0; i < batch.events.size(); ++i) {
    const ParsedEvent &a = batch.events[i], &b = back.events[i];
    EXPECT_EQ(a.user_id, b.user_id);
    EXPECT_EQ(a.device_id, b.device_id);
    EXPECT_EQ(a.event_type, b.event_type);
    EXPECT_EQ(a.insert_id, b.insert_id);
    EXPECT_EQ(a.time_ms, b.time_ms);
    EXPECT_EQ(a.session_id, b.session_id);
    auto pa = batch.PropertiesOf(a), pb = back.PropertiesOf(b);
    ASSERT_EQ(pa.size(), pb.size());
    for (size_t k = 0; k < pa.size(); ++k) {
      EXPECT_EQ(pa[k].key, pb[k].key);
      EXPECT_EQ(pa[k].value.kind, pb[k].value.kind);
      EXPECT_EQ(pa[k].value.number, pb[k].value.number);
      EXPECT_EQ(pa[k].value.boolean, pb[k].value.boolean);
      EXPECT_EQ(pa[k].value.text, pb[k].value.text);
    }
    auto ua = batch.UserUpdatesOf(a), ub = back.UserUpdatesOf(b);
    ASSERT_EQ(ua.size(), ub.size());
    for (size_t k = 0; k < ua.size(); ++k) {
      EXPECT_EQ(ua[k].op, ub[k].op);
      EXPECT_EQ(ua[k].key, ub[k].key);
      EXPECT_EQ(ua[k].value.kind, ub[k].value.kind);
    }
  }
  // A row cut anywhere reads as incomplete.
  for (size_t cut = 0; cut + 1 < bytes.size() / batch.events.size(); cut += 7) {
    RowBinaryReader partial(std::string_view(bytes).substr(0, cut));
    RowKey key;
    EXPECT_FALSE(DecodeEventRow(partial, &key, nullptr)) << cut;
  }
}

// Users are placed by this hash on clusters that already hold data: a change would send
// a user's new events to another shard than its old ones. The constants were computed
// independently (FNV-1a 64 then splitmix64's finaliser, in Python).
TEST(OwnerHashTest, IsStable) {
  EXPECT_EQ(OwnerHash(""), 0xf52a15e9a9b5e89bULL) << std::hex << OwnerHash("");
  EXPECT_EQ(OwnerHash("u:alice"), 0x88d003a8f740f35aULL) << std::hex << OwnerHash("u:alice");
  // And it spreads users evenly over 2 shards.
  int shard0 = 0;
  for (int i = 0; i < 10000; ++i) shard0 += OwnerHash("u:" + std::to_string(i)) % 2 == 0;
  EXPECT_NEAR(shard0, 5000, 200);
}

// A 2-shard cluster from scripts/cluster.sh for the tests below.
class ClusterTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = new std::string((fs::temp_directory_path() / ("sibyl-cluster-test-" + std::to_string(getpid()))).string());
    // Below 32768, where Linux does not pick ports for outgoing connections; another port
    // if a server could not bind (another process took it first).
    std::mt19937 rng(std::random_device{}());
    for (int attempt = 0; attempt < 3; ++attempt) {
      base_ = 20000 + static_cast<int>(rng() % 1200) * 10;
      const std::string cmd = std::string(SIBYL_SOURCE_DIR) + "/scripts/cluster.sh start 2 --base-port " +
                              std::to_string(base_) + " --dir " + *dir_ + " >/dev/null";
      if (std::system(cmd.c_str()) == 0) return;
      std::system((std::string(SIBYL_SOURCE_DIR) + "/scripts/cluster.sh stop --wipe --dir " + *dir_ + " >/dev/null").c_str());
    }
    FAIL() << "could not start a 2-shard cluster";
  }
  static void TearDownTestSuite() {
    Run("stop --wipe");
    fs::remove_all(*dir_);
    delete dir_;
  }
  static void Run(const std::string& args) {
    const std::string cmd = std::string(SIBYL_SOURCE_DIR) + "/scripts/cluster.sh " + args + " --dir " + *dir_ + " >/dev/null";
    ASSERT_EQ(std::system(cmd.c_str()), 0) << cmd;
  }
  static ClusterConfig Config() { return ClusterConfig::Parse(*dir_ + "/endpoints").value(); }
  static SliceOptions Slices() {
    SliceOptions options;
    options.temp_dir = *dir_ + "/slices";
    fs::create_directories(options.temp_dir);
    return options;
  }
  static uint64_t VisibleEvents(const Cluster& cluster) {
    auto slice = OpenSlice(cluster, SliceSpec{}, Slices());
    EXPECT_TRUE(slice.ok()) << slice.status().ToString();
    return slice.ok() ? (*slice)->Snapshot()->event_count() : 0;
  }
  static std::string* dir_;
  static int base_;
};
std::string* ClusterTest::dir_ = nullptr;
int ClusterTest::base_ = 0;

TEST_F(ClusterTest, AShardDyingMidWriteLeavesNothingVisible) {
  auto cluster = Cluster::Open(Config());
  ASSERT_TRUE(cluster.ok()) << cluster.status().ToString();
  auto first = BeginClusterTransaction(**cluster, WriterOptions{});
  ASSERT_TRUE(first->Add(MakeEvents(20, 5, 1'700'000'000'000)).ok());
  ASSERT_TRUE(first->Commit().ok());
  const uint64_t before = VisibleEvents(**cluster);
  EXPECT_EQ(before, 100u);

  // Shard 0 takes its rows, then shard 1 is gone when the commit sends its part.
  auto txn = BeginClusterTransaction(**cluster, WriterOptions{});
  ASSERT_TRUE(txn->Add(MakeEvents(40, 5, 1'700'100'000'000)).ok());
  std::ifstream pid_file(*dir_ + "/shard1/server.pid");
  pid_t pid = 0;
  pid_file >> pid;
  ASSERT_GT(pid, 0);
  ASSERT_EQ(kill(pid, SIGKILL), 0);
  std::this_thread::sleep_for(std::chrono::milliseconds(500));
  Status st = txn->Commit();
  EXPECT_FALSE(st.ok());
  EXPECT_NE(st.message().find("127.0.0.1:" + std::to_string(base_ + 10)), std::string::npos) << st.message();

  Run("start 2 --base-port " + std::to_string(base_));  // restarts the dead shard
  auto reopened = Cluster::Open(Config());
  ASSERT_TRUE(reopened.ok()) << reopened.status().ToString();
  auto rows0 = (*reopened)->shard(0).Query("SELECT count() FROM sibyl.events FORMAT TSV");
  ASSERT_TRUE(rows0.ok());
  EXPECT_GT(std::stoull(*rows0), before / 2 + 40) << "shard 0 should hold the uncommitted rows";
  EXPECT_EQ(VisibleEvents(**reopened), before);
}

// A failure on the server after rows have been sent (here: a result row limit) arrives as
// text after them; the pull must report it, not replay a cut answer.
TEST_F(ClusterTest, APullCutByTheServerFails) {
  auto cluster = Cluster::Open(Config());
  ASSERT_TRUE(cluster.ok()) << cluster.status().ToString();
  auto txn = BeginClusterTransaction(**cluster, WriterOptions{});
  ASSERT_TRUE(txn->Add(MakeEvents(600, 80, 1'700'200'000'000)).ok());
  ASSERT_TRUE(txn->Commit().ok());
  ClusterConfig limited = Config();
  // Each shard holds ~24,000 of the rows: past the server's 1 MB response buffer, the first
  // rows have been sent when the limit is hit.
  limited.settings = {{"max_result_rows", "20000"}, {"result_overflow_mode", "throw"}, {"max_block_size", "500"}};
  auto cut = Cluster::Open(limited);
  ASSERT_TRUE(cut.ok());
  auto slice = OpenSlice(**cut, SliceSpec{}, Slices());
  ASSERT_FALSE(slice.ok()) << "a cut answer was taken for a whole one";
  EXPECT_NE(slice.status().message().find("stopped answering a pull"), std::string::npos) << slice.status().message();
  EXPECT_NE(slice.status().message().find("Limit for result exceeded"), std::string::npos) << slice.status().message();
}

// Every actor's name and events, by dense id: equal only when the replay met the actors
// and their events in the same order.
std::vector<std::string> StoreDigest(const EventStore& store) {
  std::shared_ptr<const EventReader> reader = store.Snapshot();
  std::vector<std::string> out;
  for (ActorId a = 0; a < reader->actors().size(); ++a) {
    std::string line = fmt::format("{}:", reader->actors().name(a));
    EXPECT_TRUE(reader
                    ->ScanActor(a, INT64_MIN, INT64_MAX,
                                [&](int64_t time, DictId type) {
                                  line += fmt::format(" {}@{}", reader->event_types().name(type), time);
                                })
                    .ok());
    out.push_back(std::move(line));
  }
  return out;
}

// A big part of a pull is asked for in (batch, row) ranges, each sorted by the server on
// its own; the chunks, cut between batches and inside one big batch, replay exactly the
// events of one query, in the same order, for the whole store and for one shard's slice.
// So does a replay committed in steps, resent events dropped as in one commit.
TEST_F(ClusterTest, APullInChunksReplaysTheSameEventsInTheSameOrder) {
  auto cluster = Cluster::Open(Config());
  ASSERT_TRUE(cluster.ok()) << cluster.status().ToString();
  auto big = BeginClusterTransaction(**cluster, WriterOptions{});  // one batch of 3,000 rows
  ASSERT_TRUE(big->Add(MakeEvents(100, 30, 1'701'000'000'000)).ok());
  ASSERT_TRUE(big->Commit().ok());
  for (int i = 0; i < 6; ++i) {  // and small ones
    auto small = BeginClusterTransaction(**cluster, WriterOptions{});
    ASSERT_TRUE(small->Add(MakeEvents(7 + i, 3, 1'701'100'000'000 + i * 10'000'000)).ok());
    ASSERT_TRUE(small->Commit().ok());
  }
  // A resend of some of the big batch's events (the same insert ids): the replay must drop
  // them however it is committed.
  auto resend = BeginClusterTransaction(**cluster, WriterOptions{});
  ASSERT_TRUE(resend->Add(MakeEvents(9, 30, 1'701'000'000'000)).ok());
  ASSERT_TRUE(resend->Commit().ok());
  ClusterConfig chunked_config = Config();
  chunked_config.pull_chunk_rows = 997;
  auto chunked = Cluster::Open(chunked_config);
  ASSERT_TRUE(chunked.ok());
  ClusterConfig one_config = Config();
  one_config.pull_chunk_rows = 0;
  auto one = Cluster::Open(one_config);
  ASSERT_TRUE(one.ok());
  // And the replay committed (written out as parts) every 613 rows, across batches and
  // inside the big one, against one commit of every row.
  SliceOptions whole_replay = Slices();
  whole_replay.replay_step_rows = UINT64_MAX;
  SliceOptions stepped_replay = Slices();
  stepped_replay.replay_step_rows = 613;
  for (const SliceSpec& spec : {SliceSpec{}, SliceSpec{.kind = SliceSpec::Kind::kShard, .shard = 1}}) {
    SliceStats one_stats, chunked_stats, stepped_stats;
    auto a = OpenSlice(**one, spec, whole_replay, &one_stats);
    auto b = OpenSlice(**chunked, spec, whole_replay, &chunked_stats);
    auto c = OpenSlice(**one, spec, stepped_replay, &stepped_stats);
    ASSERT_TRUE(a.ok()) << a.status().ToString();
    ASSERT_TRUE(b.ok()) << b.status().ToString();
    ASSERT_TRUE(c.ok()) << c.status().ToString();
    EXPECT_GT(one_stats.rows_pulled, 1500u);
    EXPECT_EQ(chunked_stats.rows_pulled, one_stats.rows_pulled);
    EXPECT_EQ(stepped_stats.rows_pulled, one_stats.rows_pulled);
    const std::vector<std::string> digest = StoreDigest(**a);
    EXPECT_EQ(StoreDigest(**b), digest) << spec.Describe(2);
    EXPECT_EQ(StoreDigest(**c), digest) << spec.Describe(2);
    const uint64_t dropped = (*a)->Stats()->duplicates_dropped;
    if (spec.kind == SliceSpec::Kind::kAll) {
      EXPECT_EQ(dropped, 9u * 30u);
    }
    EXPECT_EQ((*c)->Stats()->duplicates_dropped, dropped);
    EXPECT_GT((*c)->Stats()->parts, 1u) << "the stepped replay wrote no parts along the way";
  }
  // The plan cuts the big batch by row number and stays within the chunk size elsewhere.
  auto cuts = PlanPullChunks((*cluster)->shard(0), "sibyl.events", "1", {}, 997);
  ASSERT_TRUE(cuts.ok()) << cuts.status().ToString();
  EXPECT_GT(cuts->size(), 10u);
  EXPECT_TRUE(std::is_sorted(cuts->begin(), cuts->end()));
  EXPECT_TRUE(std::any_of(cuts->begin(), cuts->end(), [](const RowKey& k) { return k.row > 0; }))
      << "no cut inside the big batch";
}

TEST_F(ClusterTest, AReorderedEndpointListIsRefused) {
  ASSERT_TRUE(Cluster::Open(Config()).ok());
  ClusterConfig swapped = Config();
  std::swap(swapped.endpoints[0], swapped.endpoints[1]);
  auto cluster = Cluster::Open(swapped);
  ASSERT_FALSE(cluster.ok());
  EXPECT_EQ(cluster.status().code(), StatusCode::kFailedPrecondition);
  EXPECT_NE(cluster.status().message().find("shard order"), std::string::npos) << cluster.status().message();
}

// What a store knows of one owner: its events, and each device linked to it with the
// link's time and the device's events.
std::string OwnerDigest(const EventStore& store, const std::string& owner) {
  std::shared_ptr<const EventReader> reader = store.Snapshot();
  std::optional<DictId> actor = reader->actors().Find(owner);
  if (!actor) return owner + ": unknown";
  auto events_of = [&](ActorId a) {
    std::string line;
    EXPECT_TRUE(reader
                    ->ScanActor(a, INT64_MIN, INT64_MAX,
                                [&](int64_t time, DictId type) {
                                  line += fmt::format(" {}@{}", reader->event_types().name(type), time);
                                })
                    .ok());
    return line;
  };
  std::string out = fmt::format("{}:{}", owner, events_of(*actor));
  // The devices this owner holds (or, for a device, who holds it), by their deciding
  // link: a store may also keep links that an earlier event overruled.
  std::set<ActorId> devices;
  for (const IdentityLink& link : reader->identity_links())
    if (link.user == *actor || link.device == *actor) devices.insert(link.device);
  for (ActorId device : devices) {
    const ActorId holder = reader->ResolveIdentity(device, INT64_MAX);
    if (holder != *actor && device != *actor) continue;
    int64_t since = INT64_MAX;
    for (const IdentityLink& link : reader->LinksOfDevice(device))
      if (link.user == holder) since = std::min(since, link.time_ms);
    out += fmt::format(" | {} -> {} at {}:{}", reader->actors().name(device), reader->actors().name(holder), since,
                       events_of(device));
  }
  return out;
}

// A slice of a few named users finds the rows that decide their identities by primary keys
// (their own and their devices' owner hashes, `links` for the other users seen with their
// devices) and knows what a slice of the whole cluster knows of them: a device first
// linked to another user stays that user's.
TEST_F(ClusterTest, ANamedUsersSliceFindsItsIdentitiesThroughTheLinksTable) {
  auto cluster = Cluster::Open(Config());
  ASSERT_TRUE(cluster.ok()) << cluster.status().ToString();
  int64_t t = 1'702'000'000'000;
  auto add = [&t](EventBatch& batch, const std::string& user, const std::string& device) {
    ParsedEvent e;
    if (!user.empty()) e.user_id = batch.Intern(user);
    e.device_id = batch.Intern(device);
    e.event_type = batch.Intern(user.empty() ? "Anonymous View" : "View");
    e.insert_id = batch.Intern("links-test-" + std::to_string(t));
    e.time_ms = t;
    t += 60'000;
    e.has_time = true;
    batch.events.push_back(e);
  };
  auto write = [&](const EventBatch& batch) {
    auto txn = BeginClusterTransaction(**cluster, WriterOptions{});
    ASSERT_TRUE(txn->Add(batch).ok());
    ASSERT_TRUE(txn->Commit().ok());
  };
  EventBatch first, second, third;
  add(first, "", "shared");  // anonymous, then alice links it first
  add(first, "", "shared");
  add(first, "alice-l", "shared");
  add(first, "alice-l", "shared");
  add(first, "", "solo");
  add(first, "bob-l", "solo");
  write(first);
  add(second, "", "shared");
  add(second, "carol-l", "shared");  // too late: the device stays alice's
  add(second, "carol-l", "phone");
  add(second, "", "phone");
  write(second);
  add(third, "alice-l", "shared");  // the pair again, in a later write
  add(third, "", "tablet");
  add(third, "carol-l", "tablet");
  write(third);
  // Earlier events that arrive later decide (store/reader.h, LinkDecidesBefore): dave's
  // tablet event comes before carol's, in a later write; erin's phone events arrive late
  // first, then one before carol's, in the same write (its `links` row is the first).
  const int64_t t0 = 1'702'000'000'000;
  EventBatch fourth;
  auto add_at = [&](EventBatch& batch, const std::string& user, const std::string& device, int64_t at) {
    const int64_t next = t;
    t = at;
    add(batch, user, device);
    t = next + 60'000;
  };
  add_at(fourth, "dave-l", "tablet", t0 + 11 * 60'000 + 30'000);
  add_at(fourth, "erin-l", "phone", t0 + 20 * 60'000);
  add_at(fourth, "erin-l", "phone", t0 + 7 * 60'000 + 30'000);
  write(fourth);
  uint64_t link_rows = 0;
  for (size_t s = 0; s < 2; ++s) {
    auto n = (*cluster)->shard(s).Query(
        "SELECT count() FROM sibyl.links WHERE device_id IN ('shared', 'solo', 'phone', 'tablet') FORMAT TSV");
    ASSERT_TRUE(n.ok()) << n.status().ToString();
    link_rows += std::strtoull(n->c_str(), nullptr, 10);
  }
  EXPECT_EQ(link_rows, 8u) << "one links row per (device, user) pair per write";

  auto whole = OpenSlice(**cluster, SliceSpec{}, Slices());
  ASSERT_TRUE(whole.ok()) << whole.status().ToString();
  for (const std::string owner : {"u:alice-l", "u:bob-l", "u:carol-l", "u:dave-l", "u:erin-l", "d:shared", "d:solo",
                                  "d:phone", "d:tablet"}) {
    SliceStats stats;
    auto named = OpenSlice(**cluster, SliceSpec{.kind = SliceSpec::Kind::kOwners, .owners = {owner}}, Slices(), &stats);
    ASSERT_TRUE(named.ok()) << named.status().ToString();
    EXPECT_EQ(OwnerDigest(**named, owner), OwnerDigest(**whole, owner));
    EXPECT_LT(stats.rows_pulled, 15u) << owner << ": the pull read more than its identities need";
  }
  // The slices of a shard run (`score --shard i/N`) pull each other user's earliest row
  // of a pair by a scan, not through `links`: each owner looks the same in its shard's.
  for (size_t shard = 0; shard < (*cluster)->shards(); ++shard) {
    auto slice = OpenSlice(**cluster, SliceSpec{.kind = SliceSpec::Kind::kShard, .shard = shard}, Slices());
    ASSERT_TRUE(slice.ok()) << slice.status().ToString();
    std::shared_ptr<const EventReader> reader = (*slice)->Snapshot();
    for (const std::string owner : {"u:alice-l", "u:bob-l", "u:carol-l", "u:dave-l", "u:erin-l", "d:shared",
                                    "d:solo", "d:phone", "d:tablet"}) {
      std::optional<DictId> actor = reader->actors().Find(owner);
      if (!actor || !reader->Owns(*actor)) continue;
      EXPECT_EQ(OwnerDigest(**slice, owner), OwnerDigest(**whole, owner)) << "shard " << shard;
    }
  }
  EXPECT_NE(OwnerDigest(**whole, "u:alice-l").find("d:shared -> u:alice-l"), std::string::npos)
      << OwnerDigest(**whole, "u:alice-l");
  EXPECT_EQ(OwnerDigest(**whole, "u:carol-l").find("d:shared"), std::string::npos) << OwnerDigest(**whole, "u:carol-l");
  EXPECT_NE(OwnerDigest(**whole, "u:dave-l").find("d:tablet -> u:dave-l"), std::string::npos)
      << OwnerDigest(**whole, "u:dave-l");
  EXPECT_NE(OwnerDigest(**whole, "u:erin-l").find("d:phone -> u:erin-l"), std::string::npos)
      << OwnerDigest(**whole, "u:erin-l");
  EXPECT_EQ(OwnerDigest(**whole, "u:carol-l").find("d:tablet"), std::string::npos) << OwnerDigest(**whole, "u:carol-l");
  EXPECT_EQ(OwnerDigest(**whole, "u:carol-l").find("d:phone"), std::string::npos) << OwnerDigest(**whole, "u:carol-l");
}

// Sealing the commit log: below the seal every batch is visible without being listed, but
// for the writes that never committed; a write older than the seal cannot commit. Last:
// it seals the batches of the tests before it too (their uncommitted rows stay hidden).
TEST_F(ClusterTest, ASealKeepsCommittedBatchesVisibleAndDeletesAbandonedRows) {
  auto cluster = Cluster::Open(Config());
  ASSERT_TRUE(cluster.ok()) << cluster.status().ToString();
  auto committed = BeginClusterTransaction(**cluster, WriterOptions{});
  ASSERT_TRUE(committed->Add(MakeEvents(10, 3, 1'700'300'000'000)).ok());
  ASSERT_TRUE(committed->Commit().ok());
  auto late = BeginClusterTransaction(**cluster, WriterOptions{});  // its batch id is taken now
  ASSERT_TRUE(late->Add(MakeEvents(3, 1, 1'700'500'000'000)).ok());
  // A row of a write that never committed (what a writer dying before its commit row leaves).
  const uint64_t ghost = (*cluster)->NewBatchId();
  ASSERT_TRUE((*cluster)->shard(1).Execute(fmt::format(
      "INSERT INTO sibyl.events (batch, row, owner, owner_hash, user_id, event_type, time) "
      "VALUES ({}, 0, 'u:ghost', 12345, 'ghost', 'View', 1900000000000)", ghost)).ok());
  const uint64_t visible = VisibleEvents(**cluster);
  auto before = (*cluster)->ReadCommitLog();
  ASSERT_TRUE(before.ok());
  EXPECT_EQ(before->sealed_below, 0u);
  EXPECT_GE(before->committed.size(), 1u);
  // The commit rows' spans give the visible events' span without a scan (the ghost row at
  // 1900000000000, later than every other, is not visible, so not in it).
  auto scanned = (*cluster)->ScanTimeSpan(*before);
  ASSERT_TRUE(scanned.ok()) << scanned.status().ToString();
  ASSERT_TRUE(before->span.has_value());
  EXPECT_EQ(before->span->min_ms, scanned->min_ms);
  EXPECT_EQ(before->span->max_ms, scanned->max_ms);
  EXPECT_LT(scanned->max_ms, 1'900'000'000'000);
  // A commit row written before spans were kept (no span columns): the span is unknown
  // and read from the shards, and the seal over it records it again.
  const uint64_t legacy = (*cluster)->NewBatchId();
  ASSERT_TRUE((*cluster)->shard(0).Execute(fmt::format(
      "INSERT INTO sibyl.events (batch, row, owner, owner_hash, user_id, event_type, time) "
      "VALUES ({}, 0, 'u:legacy', 4242, 'legacy', 'View', 1600000000000)", legacy)).ok());
  ASSERT_TRUE((*cluster)->shard(0).Execute(fmt::format(
      "INSERT INTO sibyl.commits (batch, committed_ms, rows, what) VALUES ({}, 0, 1, 'events')", legacy)).ok());
  auto with_legacy = (*cluster)->ReadCommitLog();
  ASSERT_TRUE(with_legacy.ok());
  EXPECT_FALSE(with_legacy->span.has_value());
  auto legacy_slice = OpenSlice(**cluster, SliceSpec{}, Slices());
  ASSERT_TRUE(legacy_slice.ok());
  EXPECT_EQ((*legacy_slice)->Snapshot()->min_time_ms(), 1'600'000'000'000);
  const uint64_t visible_with_legacy = VisibleEvents(**cluster);
  EXPECT_EQ(visible_with_legacy, visible + 1);

  std::this_thread::sleep_for(std::chrono::milliseconds(5));
  auto sealed = (*cluster)->Seal(0);
  ASSERT_TRUE(sealed.ok()) << sealed.status().ToString();
  EXPECT_GT(sealed->sealed_below, ghost);
  EXPECT_TRUE(sealed->committed.empty()) << "every commit is below the seal: none is listed";
  EXPECT_TRUE(std::binary_search(sealed->abandoned.begin(), sealed->abandoned.end(), ghost))
      << "the uncommitted write is not listed as abandoned";
  EXPECT_EQ(VisibleEvents(**cluster), visible_with_legacy) << "the seal changed what is visible";
  ASSERT_TRUE(sealed->span.has_value());
  EXPECT_EQ(sealed->span->min_ms, 1'600'000'000'000);
  EXPECT_EQ(sealed->span->max_ms, scanned->max_ms);
  // The abandoned write's rows and the commit rows below the seal are deleted (by
  // mutations, in the background: waited for up to 30 s).
  auto count = [&](size_t shard, const std::string& query) -> uint64_t {
    auto text = (*cluster)->shard(shard).Query(query + " FORMAT TSV");
    return text.ok() ? std::strtoull(text->c_str(), nullptr, 10) : UINT64_MAX;
  };
  const std::string ghost_rows = fmt::format("SELECT count() FROM sibyl.events WHERE batch = {}", ghost);
  const std::string old_commits = fmt::format("SELECT count() FROM sibyl.commits WHERE batch < {}", sealed->sealed_below);
  for (int i = 0; i < 300 && (count(1, ghost_rows) != 0 || count(0, old_commits) != 0); ++i)
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  EXPECT_EQ(count(1, ghost_rows), 0u) << "the abandoned write's rows were not deleted";
  EXPECT_EQ(count(0, old_commits), 0u) << "the commit rows below the seal were not deleted";
  EXPECT_EQ(VisibleEvents(**cluster), visible_with_legacy) << "deleting garbage changed what is visible";

  // A write whose batch id is older than the seal is refused and stays invisible.
  Status st = late->Commit();
  EXPECT_EQ(st.code(), StatusCode::kFailedPrecondition) << st.ToString();
  EXPECT_EQ(VisibleEvents(**cluster), visible_with_legacy);
  // Writes after the seal are listed and visible as before.
  auto after = BeginClusterTransaction(**cluster, WriterOptions{});
  ASSERT_TRUE(after->Add(MakeEvents(4, 2, 1'700'700'000'000)).ok());
  ASSERT_TRUE(after->Commit().ok());
  auto log = (*cluster)->ReadCommitLog();
  ASSERT_TRUE(log.ok());
  EXPECT_EQ(log->committed.size(), 1u);
  EXPECT_EQ(VisibleEvents(**cluster), visible_with_legacy + 8);
  ASSERT_TRUE(log->span.has_value()) << "the seal and the commit after it both have spans";
  EXPECT_EQ(log->span->min_ms, 1'600'000'000'000);
}

}  // namespace
}  // namespace sibyl::clickhouse
