#include "store/event_store.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <fstream>
#include <mutex>
#include <set>
#include <thread>
#include <tuple>

#include "store/codec.h"
#include "store/segment.h"
#include "store/store_test_util.h"
#include "store/wal.h"

namespace sibyl {
namespace {

TEST_F(StoreTest, AppendedEventsAreVisibleWithTheirColumns) {
  auto store = Open();
  EventBatch batch;
  Add(batch, "user-b", "Purchase", 2000);
  Add(batch, "user-a", "View", 1000);
  Add(batch, "user-a", "View", 1500);
  auto r = store->Append(batch);
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(r->events_written, 3u);
  auto snap = store->Snapshot();
  EXPECT_EQ(snap->event_count(), 3u);
  EXPECT_EQ(snap->min_time_ms(), 1000);
  EXPECT_EQ(snap->max_time_ms(), 2000);
  DictId price = *snap->property_keys().Find("price");
  ScanSpec spec;
  spec.property_keys = {price};
  int chunks = 0;
  ASSERT_TRUE(snap->Scan(spec, [&](const EventChunk& c) {
    ++chunks;
    EXPECT_EQ(c.size, 3u);
    // Sorted by (actor, time): user-b was interned first, so it has the smaller id.
    EXPECT_EQ(snap->actors().name(c.actor[0]), "u:user-b");
    EXPECT_EQ(c.time[1], 1000);
    EXPECT_EQ(c.time[2], 1500);
    EXPECT_EQ(snap->event_types().name(c.event_type[1]), "View");
    EXPECT_EQ(c.properties[0].rows.size(), 3u);
    EXPECT_DOUBLE_EQ(c.properties[0].values[0].number, 0.0);
    EXPECT_DOUBLE_EQ(c.properties[0].values[2].number, 50.0);
    return Status::Ok();
  }).ok());
  EXPECT_EQ(chunks, 1);
}

TEST_F(StoreTest, SurvivesReopenFromLogAndFromCheckpoint) {
  {
    auto store = Open();
    EventBatch batch;
    for (int i = 0; i < 100; ++i) Add(batch, "user-" + std::to_string(i % 7), "View", 1000 + i * kMsPerDay);
    ASSERT_TRUE(store->Append(batch).ok());
  }
  {
    auto store = Open();  // replays the log
    EXPECT_EQ(CountEvents(*store->Snapshot()), 100u);
    Status st = store->Checkpoint();
    ASSERT_TRUE(st.ok()) << st.ToString();
    EventBatch more;
    Add(more, "user-x", "Purchase", 5);
    ASSERT_TRUE(store->Append(more).ok());
  }
  auto store = Open();  // parts plus the newer log
  auto snap = store->Snapshot();
  EXPECT_EQ(CountEvents(*snap), 101u);
  EXPECT_TRUE(snap->event_types().Find("Purchase").has_value());
  // Property values survive the part encoding.
  DictId category = *snap->property_keys().Find("category");
  ScanSpec spec;
  spec.property_keys = {category};
  uint64_t shoes = 0;
  ASSERT_TRUE(snap->Scan(spec, [&](const EventChunk& c) {
    for (const auto& v : c.properties[0].values) shoes += snap->string_values().name(v.string) == "shoes";
    return Status::Ok();
  }).ok());
  EXPECT_EQ(shoes, 101u);
}

TEST_F(StoreTest, DuplicateInsertIdsAreDroppedAndCountedWithinTheWindow) {
  auto store = Open();
  EventBatch a;
  Add(a, "user-a", "View", 1, "id-1");
  Add(a, "user-a", "View", 2, "id-1");  // same batch
  Add(a, "user-a", "View", 3, "id-2");
  auto r = store->Append(a);
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->events_written, 2u);
  EXPECT_EQ(r->duplicates_dropped, 1u);
  EventBatch b;
  Add(b, "user-a", "View", 4, "id-2");
  EXPECT_EQ(store->Append(b)->duplicates_dropped, 1u);
  // After the window (and a checkpoint that expires old ids) the id is new again.
  clock_.Advance(8 * kMsPerDay);
  ASSERT_TRUE(store->Checkpoint().ok());
  EventBatch c;
  Add(c, "user-a", "View", 5, "id-2");
  EXPECT_EQ(store->Append(c)->events_written, 1u);
  EXPECT_EQ(store->Stats()->duplicates_dropped, 2u);
  store.reset();
  EXPECT_EQ(Open()->Stats()->duplicates_dropped, 2u);
}

TEST_F(StoreTest, DeviceEventsBelongToTheLinkedUserFromTheLinkOn) {
  auto store = Open();
  EventBatch batch;
  Add(batch, "", "View", 100, "", "device-1");         // anonymous
  Add(batch, "user-a", "Sign Up", 200, "", "device-1");  // links device-1 -> user-a
  Add(batch, "user-b", "View", 300, "", "device-1");     // the earliest pair decides
  ASSERT_TRUE(store->Append(batch).ok());
  auto snap = store->Snapshot();
  ActorId device = *snap->actors().Find("d:device-1");
  ActorId user_a = *snap->actors().Find("u:user-a");
  EXPECT_EQ(snap->ResolveIdentities(200)[device], device);  // link at 200 is not before 200
  EXPECT_EQ(snap->ResolveIdentities(201)[device], user_a);
  ASSERT_EQ(snap->identity_links().size(), 1u);
}

// The event that decides a device is its earliest with a user id (on equal times, the
// user whose name sorts first), whatever order the events arrive in: each arrival order
// below, in one batch, in batches and across a reopen, resolves the device alike at every
// time, as do the per-device and per-user lookups.
TEST_F(StoreTest, TheEarliestPairDecidesADeviceInAnyArrivalOrder) {
  struct Line {
    const char* user;
    int64_t time;
  };
  const std::vector<Line> lines = {{"user-c", 500}, {"user-b", 300}, {"user-a", 300}, {"user-c", 250}, {"", 100}};
  std::vector<size_t> order = {0, 1, 2, 3, 4};
  int orders = 0;
  do {
    SCOPED_TRACE(fmt::format("order {}{}{}{}{}", order[0], order[1], order[2], order[3], order[4]));
    std::filesystem::remove_all(dir_);
    auto store = Open();
    for (size_t k = 0; k < order.size(); ++k) {
      EventBatch batch;  // one batch an event: the later ones see the store's links
      Add(batch, lines[order[k]].user, "View", lines[order[k]].time, "", "device-1");
      ASSERT_TRUE(store->Append(batch).ok());
    }
    for (int reopen = 0; reopen < 2; ++reopen) {
      auto snap = store->Snapshot();
      const ActorId device = *snap->actors().Find("d:device-1");
      const ActorId user_c = *snap->actors().Find("u:user-c");
      const ActorId user_a = *snap->actors().Find("u:user-a");
      EXPECT_EQ(snap->ResolveIdentities(250)[device], device);
      EXPECT_EQ(snap->ResolveIdentities(251)[device], user_c);  // 250: user-c's earliest
      EXPECT_EQ(snap->ResolveIdentities(10'000)[device], user_c);
      EXPECT_EQ(snap->ResolveIdentity(device, 301), user_c);
      EXPECT_EQ(snap->LinkedDevices(user_c, 251), std::vector<ActorId>{device});
      EXPECT_TRUE(snap->LinkedDevices(user_a, 10'000).empty());
      store.reset();
      store = Open();
    }
  } while (std::next_permutation(order.begin(), order.end()) && ++orders < 40);

  // Equal times: the name decides, not the arrival.
  for (bool b_first : {true, false}) {
    std::filesystem::remove_all(dir_);
    auto store = Open();
    EventBatch batch;
    Add(batch, b_first ? "user-b" : "user-a", "View", 300, "", "device-2");
    Add(batch, b_first ? "user-a" : "user-b", "View", 300, "", "device-2");
    ASSERT_TRUE(store->Append(batch).ok());
    auto snap = store->Snapshot();
    EXPECT_EQ(snap->ResolveIdentities(301)[*snap->actors().Find("d:device-2")], *snap->actors().Find("u:user-a"));
  }
}

TEST_F(StoreTest, UserPropertiesAsOfApplyOperationsInOrder) {
  auto store = Open();
  EventBatch batch;
  SetProperty(batch, "user-a", 100, UserPropertyOp::kSet, "plan", Value::String("free"));
  SetProperty(batch, "user-a", 200, UserPropertyOp::kSetOnce, "plan", Value::String("x"));
  SetProperty(batch, "user-a", 300, UserPropertyOp::kSet, "plan", Value::String("pro"));
  SetProperty(batch, "user-a", 100, UserPropertyOp::kAdd, "logins", Value::Number(2));
  SetProperty(batch, "user-a", 150, UserPropertyOp::kAdd, "logins", Value::Number(3));
  SetProperty(batch, "user-a", 100, UserPropertyOp::kAppend, "tags", Value::String("a"));
  SetProperty(batch, "user-a", 110, UserPropertyOp::kAppend, "tags", Value::Number(1));
  SetProperty(batch, "user-a", 400, UserPropertyOp::kUnset, "tags", Value::Null());
  auto r = store->Append(batch);
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->events_written, 0u);
  EXPECT_EQ(r->identify_calls, 8u);
  for (int reopen = 0; reopen < 2; ++reopen) {
    auto snap = store->Snapshot();
    ActorId a = *snap->actors().Find("u:user-a");
    auto value_of = [&](int64_t t, std::string_view key) -> std::string {
      DictId k = *snap->property_keys().Find(key);
      for (const auto& [key_id, v] : snap->UserPropertiesAsOf(a, t)) {
        if (key_id != k) continue;
        if (v.kind == ValueKind::kNumber) return std::to_string(static_cast<int>(v.number));
        return std::string(snap->string_values().name(v.string));
      }
      return "<unset>";
    };
    EXPECT_EQ(value_of(100, "plan"), "<unset>");  // set at 100 is not visible as of 100
    EXPECT_EQ(value_of(101, "plan"), "free");
    EXPECT_EQ(value_of(250, "plan"), "free");     // $setOnce did nothing
    EXPECT_EQ(value_of(301, "plan"), "pro");
    EXPECT_EQ(value_of(200, "logins"), "5");
    EXPECT_EQ(value_of(120, "tags"), "[\"a\",1]");
    EXPECT_EQ(value_of(401, "tags"), "<unset>");
    store.reset();
    store = Open();
    if (reopen == 0) {
      ASSERT_TRUE(store->Checkpoint().ok());
    }
  }
}

TEST_F(StoreTest, UnchangedUserPropertiesAreNotHistory) {
  auto store = Open();
  EventBatch batch;
  for (int i = 0; i < 10; ++i)
    SetProperty(batch, "user-a", i, UserPropertyOp::kSet, "plan", Value::String("free"));
  EXPECT_EQ(store->Append(batch)->user_property_changes, 1u);
}

TEST_F(StoreTest, UncommittedTransactionLeavesNothing) {
  {
    auto store = Open();
    auto txn = store->Begin();
    ASSERT_TRUE(txn.ok());
    EventBatch batch;
    Add(batch, "user-a", "View", 1, "id-1");
    ASSERT_TRUE((*txn)->Add(batch).ok());
    // Dropped without Commit.
  }
  auto store = Open();
  EXPECT_EQ(CountEvents(*store->Snapshot()), 0u);
  EventBatch again;
  Add(again, "user-a", "View", 1, "id-1");
  EXPECT_EQ(store->Append(again)->events_written, 1u);  // its insert_id was never seen
}

TEST_F(StoreTest, BulkTransactionIsCheckpointedIntoPartsAtCommit) {
  // More batches than kBulkLoadBatches: the commit writes parts instead of merging in memory.
  constexpr int kBatches = 70, kPerBatch = 30;
  {
    auto store = Open();
    auto txn = store->Begin();
    ASSERT_TRUE(txn.ok());
    for (int b = 0; b < kBatches; ++b) {
      EventBatch batch;
      // Users straddle batch boundaries, so the parts merge overlapping segments.
      for (int i = 0; i < kPerBatch; ++i) {
        // A tenth of a day apart: the parts span many weekly partitions.
        int64_t n = b * kPerBatch + i;
        Add(batch, fmt::format("user-{:03}", n / 45), "View", n * (kMsPerDay / 10) + n % 997,
            fmt::format("id-{}", n));
      }
      ASSERT_TRUE((*txn)->Add(batch).ok());
    }
    ASSERT_TRUE((*txn)->Commit().ok());
    auto stats = store->Stats();
    ASSERT_TRUE(stats.ok());
    EXPECT_GT(stats->parts, 0u);
    EXPECT_EQ(stats->events, uint64_t{kBatches * kPerBatch});
  }
  auto store = Open();
  auto reader = store->Snapshot();
  EXPECT_EQ(CountEvents(*reader), uint64_t{kBatches * kPerBatch});
  // Every event kept its own price (time % 1000 / 10) through the merge.
  auto price = reader->property_keys().Find("price");
  ASSERT_TRUE(price.has_value());
  uint64_t checked = 0;
  ScanSpec spec;
  spec.property_keys = {*price};
  ASSERT_TRUE(reader->Scan(spec, [&](const EventChunk& c) {
    for (const auto& column : c.properties)
      for (size_t j = 0; j < column.rows.size(); ++j) {
        EXPECT_EQ(column.values[j].number, static_cast<double>(c.time[column.rows[j]] % 1000) / 10);
        ++checked;
      }
    return Status::Ok();
  }).ok());
  EXPECT_EQ(checked, uint64_t{kBatches * kPerBatch});
}

TEST_F(StoreTest, TornLogTailIsDroppedButDamageInsideIsReported) {
  {
    auto store = Open();
    for (int i = 0; i < 3; ++i) {
      EventBatch batch;
      Add(batch, "user-a", "View", i);
      ASSERT_TRUE(store->Append(batch).ok());
    }
  }
  std::string log;
  for (const auto& entry : std::filesystem::directory_iterator(dir_ + "/wal"))
    if (std::filesystem::file_size(entry.path()) > 0) log = entry.path().string();
  ASSERT_FALSE(log.empty());
  auto size = std::filesystem::file_size(log);
  {
    // A crash mid-append: half a record of garbage at the end.
    std::ofstream out(log, std::ios::app | std::ios::binary);
    out << std::string("\x10\x00\x00\x00\xff\xff", 6);
  }
  {
    auto store = Open();
    EXPECT_EQ(CountEvents(*store->Snapshot()), 3u);
  }
  EXPECT_EQ(std::filesystem::file_size(log), size);  // cut back to the intact prefix
  {
    // The cut bytes are kept aside, in case they were a damaged acknowledged record.
    const std::string cut = log + ".cut-at-" + std::to_string(size);
    ASSERT_TRUE(std::filesystem::exists(cut));
    std::ifstream in(cut, std::ios::binary);
    std::string kept((std::istreambuf_iterator<char>(in)), {});
    EXPECT_EQ(kept, std::string("\x10\x00\x00\x00\xff\xff", 6));
  }
  {
    std::fstream f(log, std::ios::in | std::ios::out | std::ios::binary);
    f.seekp(12);  // inside the first record
    f.put('\x5a');
  }
  auto reopened = EventStore::Open(options_);
  ASSERT_FALSE(reopened.ok());
  EXPECT_EQ(reopened.status().code(), StatusCode::kCorruption);
  EXPECT_NE(reopened.status().message().find(log), std::string::npos);
}

// Stores log each batch split by week (record type 4). Logs written before that hold one
// segment per batch (type 2): one not yet checkpointed must still replay.
TEST_F(StoreTest, LogsOfOlderVersionsWithWholeBatchRecordsStillReplay) {
  constexpr int64_t kWeek = 7 * 86'400'000LL;
  {
    auto store = Open();
    EventBatch batch;
    Add(batch, "user-a", "View", 1000);  // actor 0, event type 0
    ASSERT_TRUE(store->Append(batch).ok());
  }
  std::string log;
  for (const auto& entry : std::filesystem::directory_iterator(dir_ + "/wal"))
    if (std::filesystem::file_size(entry.path()) > 0) log = entry.path().string();
  ASSERT_FALSE(log.empty());
  {
    // A type-2 record of transaction 900 with two events in weeks 0 and 3, as older
    // versions wrote it (docs/FORMAT.md), and its commit.
    auto segment = Segment::Build({{0, 0, 2000, -1, 0, 0}, {0, 0, 3 * kWeek + 5, -1, 0, 0}}, {});
    std::string payload;
    ByteWriter w(&payload);
    w.Varint(900);
    w.SignedVarint(clock_.NowMs());
    for (int i = 0; i < 4; ++i) w.Varint(0);
    w.Bytes(segment->Encode(1));
    std::string body;
    ByteWriter b(&body);
    b.Varint(0);  // user property records
    b.Varint(0);  // identity links
    b.Varint(0);  // insert_id hashes
    AppendCompressedBlock(body, 1, &payload);
    auto wal = WalWriter::Open(log);
    ASSERT_TRUE(wal.ok());
    ASSERT_TRUE((*wal)->Add(WalRecordType::kTxnData, payload).ok());
    std::string commit;
    ByteWriter(&commit).Varint(900);
    ASSERT_TRUE((*wal)->Add(WalRecordType::kTxnCommit, commit).ok());
    ASSERT_TRUE((*wal)->Sync().ok());
  }
  auto times_of = [](const EventReader& reader) {
    std::vector<int64_t> times;
    EXPECT_TRUE(reader.Scan({}, [&](const EventChunk& c) {
      times.insert(times.end(), c.time.begin(), c.time.end());
      return Status::Ok();
    }).ok());
    std::sort(times.begin(), times.end());
    return times;
  };
  const std::vector<int64_t> expected = {1000, 2000, 3 * kWeek + 5};
  {
    auto store = Open();
    EXPECT_EQ(times_of(*store->Snapshot()), expected);
    ASSERT_TRUE(store->Checkpoint().ok());
    EXPECT_EQ(times_of(*store->Snapshot()), expected);
  }
  EXPECT_EQ(times_of(*Open()->Snapshot()), expected);
}

// A batch spanning weeks is logged as one segment per week; after a restart (replay) and
// after a checkpoint, its events and properties are those appended.
TEST_F(StoreTest, BatchesSpanningWeeksReplayAndCheckpointWithTheirProperties) {
  constexpr int64_t kWeek = 7 * 86'400'000LL;
  EventBatch batch;
  std::vector<std::tuple<std::string, int64_t>> appended;
  for (int i = 0; i < 60; ++i) {
    const std::string user = "user-" + std::to_string(i % 7);
    const int64_t time = (i % 5) * kWeek + i * 1001;
    Add(batch, user, i % 2 ? "View" : "Buy", time);
    appended.emplace_back(user, time);
  }
  std::sort(appended.begin(), appended.end());
  auto events_of = [](const EventReader& reader) {
    std::vector<std::tuple<std::string, int64_t>> got;
    ScanSpec spec;
    spec.property_keys = {*reader.property_keys().Find("price")};
    EXPECT_TRUE(reader.Scan(spec, [&](const EventChunk& c) {
      for (size_t i = 0; i < c.size; ++i) {
        got.emplace_back(std::string(reader.actors().name(c.actor[i]).substr(2)), c.time[i]);
        // Add's price is (time % 1000) / 10, on every event.
        EXPECT_EQ(c.properties[0].rows.size(), c.size);
        EXPECT_EQ(c.properties[0].values[i].number, static_cast<double>(c.time[i] % 1000) / 10);
      }
      return Status::Ok();
    }).ok());
    std::sort(got.begin(), got.end());
    return got;
  };
  {
    auto store = Open();
    ASSERT_TRUE(store->Append(batch).ok());
    EXPECT_EQ(events_of(*store->Snapshot()), appended);
  }
  {
    auto store = Open();  // replayed from the log
    EXPECT_EQ(events_of(*store->Snapshot()), appended);
    ASSERT_TRUE(store->Checkpoint().ok());
    EXPECT_EQ(events_of(*store->Snapshot()), appended);
  }
  size_t parts = 0;
  for (const auto& entry : std::filesystem::directory_iterator(dir_ + "/parts")) parts += entry.is_regular_file();
  EXPECT_EQ(parts, 5u);  // one a week
  EXPECT_EQ(events_of(*Open()->Snapshot()), appended);
}

TEST_F(StoreTest, DamagedPartFileIsNamed) {
  {
    auto store = Open();
    EventBatch batch;
    for (int i = 0; i < 50; ++i) Add(batch, "user-a", "View", i);
    ASSERT_TRUE(store->Append(batch).ok());
    ASSERT_TRUE(store->Checkpoint().ok());
  }
  std::string part;
  for (const auto& entry : std::filesystem::directory_iterator(dir_ + "/parts")) part = entry.path().string();
  ASSERT_FALSE(part.empty());
  {
    std::fstream f(part, std::ios::in | std::ios::out | std::ios::binary);
    f.seekp(static_cast<std::streamoff>(std::filesystem::file_size(part) / 2));
    f.put('\x01');
  }
  auto store = EventStore::Open(options_);
  ASSERT_FALSE(store.ok());
  EXPECT_EQ(store.status().code(), StatusCode::kCorruption);
  EXPECT_NE(store.status().message().find(part), std::string::npos);
}

// A damaged MANIFEST is refused by name and changes nothing on disk (issue 18: a flipped
// digit of wal_start hid acknowledged events and the next open deleted their log; a part
// listed twice duplicated its events).
TEST_F(StoreTest, DamagedManifestIsRefusedAndNothingIsDeleted) {
  {
    auto store = Open();
    EventBatch batch;
    for (int i = 0; i < 50; ++i) Add(batch, "user-a", "View", i);
    ASSERT_TRUE(store->Append(batch).ok());
    ASSERT_TRUE(store->Checkpoint().ok());
    EventBatch more;
    for (int i = 0; i < 20; ++i) Add(more, "user-b", "View", 100 + i);
    ASSERT_TRUE(store->Append(more).ok());  // in the log only
  }
  const std::string manifest = dir_ + "/MANIFEST";
  std::string original;
  {
    std::ifstream in(manifest);
    original.assign(std::istreambuf_iterator<char>(in), {});
  }
  auto files_on_disk = [&] {
    std::vector<std::string> files;
    for (const auto& e : std::filesystem::recursive_directory_iterator(dir_)) files.push_back(e.path().string());
    std::sort(files.begin(), files.end());
    return files;
  };
  const std::vector<std::string> before = files_on_disk();
  auto damage = [&](const std::string& from, const std::string& to) {
    std::string text = original;
    const size_t at = text.find(from);
    ASSERT_NE(at, std::string::npos) << from;
    text.replace(at, from.size(), to);
    std::ofstream(manifest, std::ios::trunc) << text;
  };
  nlohmann::json parsed = nlohmann::json::parse(original);
  ASSERT_TRUE(parsed.contains("checksum"));
  const std::string wal_start = "\"wal_start\": " + parsed["wal_start"].dump();
  const std::string part = parsed["parts"][0].dump();
  for (auto [from, to] : {std::pair{wal_start, "\"wal_start\": " + std::to_string(parsed["wal_start"].get<int>() + 1)},
                          std::pair{std::string("\"parts\": ["), "\"parts\": [" + part + ","}}) {
    damage(from, to);
    auto store = EventStore::Open(options_);
    ASSERT_FALSE(store.ok()) << from;
    EXPECT_EQ(store.status().code(), StatusCode::kCorruption);
    EXPECT_NE(store.status().message().find(manifest), std::string::npos) << store.status().ToString();
    EXPECT_EQ(files_on_disk(), before) << "a refused open deletes nothing";
  }
  std::ofstream(manifest, std::ios::trunc) << original;
  auto store = Open();
  ASSERT_NE(store, nullptr);
  EXPECT_EQ(CountEvents(*store->Snapshot()), 70u);
}

TEST_F(StoreTest, SecondWriterIsRefusedButReadersAreWelcome) {
  auto store = Open();
  EventBatch batch;
  Add(batch, "user-a", "View", 1);
  ASSERT_TRUE(store->Append(batch).ok());
  auto second = EventStore::Open(options_);
  EXPECT_FALSE(second.ok());
  StoreOptions ro = options_;
  ro.read_only = true;
  auto reader = EventStore::Open(ro);
  ASSERT_TRUE(reader.ok()) << reader.status().ToString();
  EXPECT_EQ(CountEvents(*(*reader)->Snapshot()), 1u);
}

TEST_F(StoreTest, SnapshotIsStableWhileAppendsContinue) {
  auto store = Open();
  EventBatch a;
  Add(a, "user-a", "View", 1);
  ASSERT_TRUE(store->Append(a).ok());
  auto before = store->Snapshot();
  EventBatch b;
  Add(b, "user-new", "Brand New Type", 2);
  ASSERT_TRUE(store->Append(b).ok());
  EXPECT_EQ(CountEvents(*before), 1u);
  EXPECT_FALSE(before->event_types().Find("Brand New Type").has_value());
  EXPECT_EQ(CountEvents(*store->Snapshot()), 2u);
}

TEST_F(StoreTest, ActorBlocksCoverEveryEventOnceWithItsProperties) {
  auto store = Open();
  for (int round = 0; round < 3; ++round) {  // several segments: parts and memtable
    EventBatch batch;
    for (int i = 0; i < 500; ++i)
      Add(batch, "user-" + std::to_string((i * 7 + round) % 97), "View", round * kMsPerWeek + i * 1000);
    ASSERT_TRUE(store->Append(batch).ok());
    if (round < 2) {
      ASSERT_TRUE(store->Checkpoint().ok());
    }
  }
  auto snap = store->Snapshot();
  ScanSpec spec;
  spec.property_keys = {*snap->property_keys().Find("price")};
  for (uint32_t per_block : {1u, 10u, 64u, 1000u}) {
    std::mutex mutex;
    std::multiset<std::tuple<ActorId, int64_t, double>> seen;
    ASSERT_TRUE(snap->ScanActorBlocks(spec, per_block, [&](const EventReader::ActorBlock& block) {
      for (const EventChunk& c : block.chunks) {
        std::vector<double> price(c.size, -1);
        for (size_t j = 0; j < c.properties[0].rows.size(); ++j)
          price[c.properties[0].rows[j] - c.first_row] = c.properties[0].values[j].number;
        std::lock_guard lock(mutex);
        for (size_t i = 0; i < c.size; ++i) {
          EXPECT_GE(c.actor[i], block.first_actor);
          EXPECT_LT(c.actor[i], block.end_actor);
          seen.insert({c.actor[i], c.time[i], price[i]});
        }
      }
      return Status::Ok();
    }, /*parallel=*/true).ok());
    EXPECT_EQ(seen.size(), 1500u) << per_block;
    for (const auto& [actor, time, p] : seen) EXPECT_DOUBLE_EQ(p, static_cast<double>(time % 1000) / 10);
  }
}

// Scans and gathers share the process's cache of decoded part columns, each asking for
// other columns, from several threads at once: every one must see exactly the values of
// its own columns (and sessions), as one thread alone on a freshly opened store does.
TEST_F(StoreTest, ConcurrentScansAndGathersAskingForDifferentColumnsSeeTheirOwnValues) {
  {
    auto store = Open();
    for (int round = 0; round < 4; ++round) {
      EventBatch batch;
      for (int i = 0; i < 400; ++i)
        Add(batch, "user-" + std::to_string((i * 13 + round) % 89), round % 2 ? "View" : "Buy",
            round * kMsPerWeek + i * 997);
      ASSERT_TRUE(store->Append(batch).ok());
      if (round < 3) {
        ASSERT_TRUE(store->Checkpoint().ok());  // parts, decoded on demand
      }
    }
  }
  // (actor, time, price or -1, category id or -1, session mark) of every event a spec sees.
  using Row = std::tuple<ActorId, int64_t, double, int64_t, int>;
  auto rows_of = [](const EventReader& snap, const ScanSpec& spec, bool gather) {
    std::mutex mutex;
    std::multiset<Row> rows;
    const std::optional<DictId> price = snap.property_keys().Find("price");
    auto visit_chunk = [&](const EventChunk& c) {
      std::vector<double> prices(c.size, -1);
      std::vector<int64_t> categories(c.size, -1);
      for (const PropertyColumn& column : c.properties)
        for (size_t j = 0; j < column.rows.size(); ++j) {
          const size_t at = column.rows[j] - c.first_row;
          if (column.key == price) prices[at] = column.values[j].number;
          else categories[at] = column.values[j].string;
        }
      std::lock_guard lock(mutex);
      for (size_t i = 0; i < c.size; ++i)
        rows.insert({c.actor[i], c.time[i], prices[i], categories[i],
                     c.session_marks.empty() ? -1 : static_cast<int>(c.session_marks[i])});
    };
    Status status;
    if (gather) {
      std::vector<ActorId> actors(snap.actors().size());
      for (size_t a = 0; a < actors.size(); ++a) actors[a] = static_cast<ActorId>(a);
      status = snap.GatherActors(actors, spec, [&](const EventReader::ActorBlock& block) {
        for (const EventChunk& c : block.chunks) visit_chunk(c);
        return Status::Ok();
      }, /*parallel=*/true);
    } else {
      status = snap.Scan(spec, [&](const EventChunk& c) {
        visit_chunk(c);
        return Status::Ok();
      }, /*parallel=*/true);
    }
    EXPECT_TRUE(status.ok()) << status.ToString();
    return rows;
  };
  std::vector<ScanSpec> specs(4);
  std::vector<std::multiset<Row>> expected;
  {
    auto store = Open();
    auto snap = store->Snapshot();
    const DictId price = *snap->property_keys().Find("price"), category = *snap->property_keys().Find("category");
    specs[0].property_keys = {price};
    specs[1].property_keys = {category};
    specs[2].property_keys = {category, price};
    specs[2].with_sessions = true;
    specs[3].with_sessions = true;
    specs[3].properties_begin_ms = 2 * kMsPerWeek;  // older parts without properties
    specs[3].property_keys = {price};
    // One spec at a time, each on a store of its own: nothing cached from another spec.
    for (const ScanSpec& spec : specs) {
      store.reset();
      store = Open();
      expected.push_back(rows_of(*store->Snapshot(), spec, false));
    }
  }
  for (int attempt = 0; attempt < 3; ++attempt) {
    auto store = Open();
    auto snap = store->Snapshot();
    std::vector<std::multiset<Row>> seen(specs.size() * 2);
    std::vector<std::thread> threads;
    for (size_t k = 0; k < seen.size(); ++k)
      threads.emplace_back([&, k] { seen[k] = rows_of(*snap, specs[k / 2], k % 2 == 1); });
    for (auto& t : threads) t.join();
    for (size_t k = 0; k < seen.size(); ++k) {
      EXPECT_EQ(seen[k].size(), 1600u) << "spec " << k / 2;
      // A gather sees the same rows, columns and session marks as a scan.
      EXPECT_EQ(seen[k], expected[k / 2]) << "spec " << k / 2 << (k % 2 ? " (gather)" : " (scan)");
    }
  }
}

}  // namespace
}  // namespace sibyl
