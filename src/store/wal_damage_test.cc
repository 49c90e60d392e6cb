// Torn tail or damage (docs/FORMAT.md): what an open and `sibyl repair` do with each kind
// of bad bytes in the write-ahead log.
#include <gtest/gtest.h>

#include <cstring>
#include <filesystem>
#include <fstream>

#include "store/event_store.h"
#include "store/repair.h"
#include "store/store_test_util.h"
#include "store/wal.h"

namespace sibyl {
namespace {

struct Frame {
  uint64_t offset;
  uint64_t length;  // payload bytes
  WalRecordType type;
};

std::string Slurp(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string((std::istreambuf_iterator<char>(in)), {});
}

void Spill(const std::string& path, const std::string& bytes) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out << bytes;
}

// The frames of a format 2 log (13-byte headers), as the writer laid them out.
std::vector<Frame> Frames(const std::string& bytes) {
  std::vector<Frame> frames;
  for (size_t pos = 0; pos + 13 <= bytes.size();) {
    uint32_t length;
    std::memcpy(&length, bytes.data() + pos + 4, 4);
    frames.push_back({pos, length, static_cast<WalRecordType>(static_cast<uint8_t>(bytes[pos + 8]) & 0x7f)});
    pos += 13 + length;
  }
  return frames;
}

class WalDamageTest : public TempStoreTest {
 protected:
  static void AddEvent(EventBatch& batch, std::string_view user, int64_t time) {
    AddPlainEvent(batch, user, "View", time);
  }

  // Three committed transactions of `per_txn` events each (new users in each, so each
  // transaction also logs dictionary names); returns the log's path.
  std::string WriteThreeTransactions(int per_txn = 1) {
    auto store = EventStore::Open(options_);
    EXPECT_TRUE(store.ok()) << store.status().ToString();
    for (int t = 0; t < 3; ++t) {
      EventBatch batch;
      // Scattered times, so a large batch stays large when compressed.
      for (int i = 0; i < per_txn; ++i)
        AddEvent(batch, "user-" + std::to_string(t * 100'000 + i), (t * 100'000 + i) * 7919 % 1'000'003);
      EXPECT_TRUE((*store)->Append(batch).ok());
    }
    std::string log;
    for (const auto& entry : std::filesystem::directory_iterator(dir_ + "/wal"))
      if (std::filesystem::file_size(entry.path()) > 0) log = entry.path().string();
    return log;
  }

  Result<uint64_t> EventsAfterOpen(bool read_only = false) {
    StoreOptions options = options_;
    options.read_only = read_only;
    ASSIGN_OR_RETURN(auto store, EventStore::Open(options));
    ASSIGN_OR_RETURN(StoreStats stats, store->Stats());
    return stats.events;
  }

  // The frames of the log: dictionary, batch, commit for each transaction.
  static std::vector<Frame> CheckedFrames(const std::string& bytes) {
    std::vector<Frame> frames = Frames(bytes);
    EXPECT_EQ(frames.size(), 9u);
    return frames;
  }

};

TEST_F(WalDamageTest, RecordCutShortByACrashIsDroppedSilently) {
  std::string log = WriteThreeTransactions();
  std::string bytes = Slurp(log);
  Frame commit = CheckedFrames(bytes).back();
  // A crash while the last commit record was being appended: its header and no payload.
  Spill(log, bytes.substr(0, commit.offset + 13));
  auto events = EventsAfterOpen();
  ASSERT_TRUE(events.ok()) << events.status().ToString();
  EXPECT_EQ(*events, 2u);
  EXPECT_EQ(std::filesystem::file_size(log), commit.offset);
}

TEST_F(WalDamageTest, ZeroFilledTailIsDropped) {
  std::string log = WriteThreeTransactions();
  std::string bytes = Slurp(log);
  // A power loss after the file grew but before its new pages reached the disk.
  Spill(log, bytes + std::string(8192, '\0'));
  auto events = EventsAfterOpen();
  ASSERT_TRUE(events.ok()) << events.status().ToString();
  EXPECT_EQ(*events, 3u);
  EXPECT_EQ(std::filesystem::file_size(log), bytes.size());
}

TEST_F(WalDamageTest, UnwrittenSectorInsideTheLastRecordIsATornTail) {
  std::string log = WriteThreeTransactions(20000);
  std::string bytes = Slurp(log);
  std::vector<Frame> frames = CheckedFrames(bytes);
  // The last transaction's commit never written, and a sector of its batch record never
  // reached the disk: the batch's header is intact, its payload fails its checksum.
  Frame batch = frames[7];
  ASSERT_GT(batch.length, 1100u) << "the batch must span whole sectors";
  bytes.resize(frames[8].offset);
  uint64_t sector = (batch.offset + 13 + 511) / 512 * 512;
  ASSERT_LE(sector + 512, bytes.size());
  std::memset(bytes.data() + sector, 0, 512);
  Spill(log, bytes);
  auto events = EventsAfterOpen();
  ASSERT_TRUE(events.ok()) << events.status().ToString();
  EXPECT_EQ(*events, 40000u);
}

TEST_F(WalDamageTest, FlippedBitInTheLastSyncedRecordRefusesToOpenThenRepairKeepsTheRest) {
  std::string log = WriteThreeTransactions();
  std::string bytes = Slurp(log);
  Frame commit = CheckedFrames(bytes).back();
  std::string damaged = bytes;
  damaged.back() ^= 0x04;  // the commit's payload: a full-length record, non-zero, bad checksum
  Spill(log, damaged);
  for (bool read_only : {false, true}) {
    auto events = EventsAfterOpen(read_only);
    ASSERT_FALSE(events.ok()) << "read_only " << read_only;
    EXPECT_EQ(events.status().code(), StatusCode::kCorruption);
    const std::string& message = events.status().message();
    EXPECT_NE(message.find(log), std::string::npos) << message;
    EXPECT_NE(message.find("byte " + std::to_string(commit.offset)), std::string::npos) << message;
    EXPECT_NE(message.find("sibyl repair"), std::string::npos) << message;
  }
  EXPECT_EQ(Slurp(log), damaged);  // nothing changed, nothing set aside
  EXPECT_FALSE(std::filesystem::exists(log + ".cut-at-" + std::to_string(commit.offset)));

  auto report = RepairStore(options_);
  ASSERT_TRUE(report.ok()) << report.status().ToString();
  ASSERT_EQ(report->damaged.size(), 1u);
  EXPECT_EQ(report->damaged[0].file, log);
  EXPECT_EQ(report->damaged[0].offset, commit.offset);
  EXPECT_EQ(report->damaged[0].bytes, damaged.size() - commit.offset);
  EXPECT_FALSE(report->damaged[0].torn);
  EXPECT_EQ(report->transactions_dropped, std::vector<uint64_t>{3});
  EXPECT_EQ(report->events_dropped, 1u);  // the batch of the transaction whose commit was damaged
  EXPECT_EQ(report->events, 2u);
  ASSERT_EQ(report->kept_copies, std::vector<std::string>{log + ".before-repair"});
  EXPECT_EQ(Slurp(log + ".before-repair"), damaged);
  auto events = EventsAfterOpen();
  ASSERT_TRUE(events.ok()) << events.status().ToString();
  EXPECT_EQ(*events, 2u);
}

TEST_F(WalDamageTest, FlippedBitInAMiddleRecordRefusesToOpenThenRepairKeepsEveryOtherTransaction) {
  std::string log = WriteThreeTransactions(5);
  std::string bytes = Slurp(log);
  Frame batch = CheckedFrames(bytes)[4];  // the second transaction's batch
  ASSERT_EQ(batch.type, WalRecordType::kTxnSegments);
  bytes[batch.offset + 13 + batch.length / 2] ^= 0x10;
  Spill(log, bytes);
  auto events = EventsAfterOpen();
  ASSERT_FALSE(events.ok());
  EXPECT_EQ(events.status().code(), StatusCode::kCorruption);
  EXPECT_NE(events.status().message().find("byte " + std::to_string(batch.offset)), std::string::npos)
      << events.status().message();

  auto report = RepairStore(options_);
  ASSERT_TRUE(report.ok()) << report.status().ToString();
  ASSERT_EQ(report->damaged.size(), 1u);
  EXPECT_EQ(report->damaged[0].offset, batch.offset);
  EXPECT_EQ(report->damaged[0].bytes, 13 + batch.length);
  EXPECT_EQ(report->transactions_dropped, std::vector<uint64_t>{2});
  EXPECT_EQ(report->damaged_batches, 1u);
  EXPECT_EQ(report->intact_records_dropped, 1u);  // its commit
  EXPECT_TRUE(report->stopped_reason.empty());
  EXPECT_EQ(report->events, 10u);
  auto reopened = EventsAfterOpen();
  ASSERT_TRUE(reopened.ok()) << reopened.status().ToString();
  EXPECT_EQ(*reopened, 10u);
  // The store goes on: a new event after the repair, and a reopen sees it.
  {
    auto store = EventStore::Open(options_);
    ASSERT_TRUE(store.ok());
    EventBatch more;
    AddEvent(more, "user-new", 99);
    ASSERT_TRUE((*store)->Append(more).ok());
  }
  EXPECT_EQ(*EventsAfterOpen(), 11u);
}

TEST_F(WalDamageTest, DamagedHeaderStopsTheSalvageThere) {
  std::string log = WriteThreeTransactions();
  std::string bytes = Slurp(log);
  Frame dictionary = CheckedFrames(bytes)[3];  // the second transaction's new names
  ASSERT_EQ(dictionary.type, WalRecordType::kDictionary);
  bytes[dictionary.offset + 5] ^= 0x01;  // its length: the header checksum fails
  Spill(log, bytes);
  EXPECT_EQ(EventsAfterOpen().status().code(), StatusCode::kCorruption);
  auto report = RepairStore(options_);
  ASSERT_TRUE(report.ok()) << report.status().ToString();
  // Later batches may name actors whose names were in it: only the first transaction stays.
  EXPECT_FALSE(report->stopped_reason.empty());
  EXPECT_EQ(report->transactions_dropped, (std::vector<uint64_t>{2, 3}));
  EXPECT_EQ(report->events_dropped, 2u);
  EXPECT_EQ(report->intact_records_dropped, 5u);
  EXPECT_EQ(report->events, 1u);
  EXPECT_EQ(*EventsAfterOpen(), 1u);
}

// A kill -9 can stop an append after any byte: every prefix of the log opens, with the
// transactions whose commit record is whole.
TEST_F(WalDamageTest, EveryPrefixOfTheLogIsATornTailNeverDamage) {
  std::string log = WriteThreeTransactions();
  std::string bytes = Slurp(log);
  std::vector<Frame> frames = CheckedFrames(bytes);
  for (size_t cut = 0; cut <= bytes.size(); ++cut) {
    Spill(log, bytes.substr(0, cut));
    uint64_t committed = 0;
    for (size_t k : {2, 5, 8}) committed += frames[k].offset + 13 + frames[k].length <= cut;
    auto events = EventsAfterOpen(/*read_only=*/true);
    ASSERT_TRUE(events.ok()) << "cut at " << cut << ": " << events.status().ToString();
    EXPECT_EQ(*events, committed) << "cut at " << cut;
  }
}

// Every single flipped bit of synced records is refused, wherever it falls (headers,
// lengths, types, payloads; the first record and the last).
TEST_F(WalDamageTest, EveryFlippedBitIsRefused) {
  std::string log = WriteThreeTransactions();
  std::string bytes = Slurp(log);
  for (size_t i = 0; i < bytes.size(); ++i) {
    std::string damaged = bytes;
    damaged[i] ^= static_cast<char>(1 << (i % 8));
    Spill(log, damaged);
    auto events = EventsAfterOpen(/*read_only=*/true);
    ASSERT_FALSE(events.ok()) << "flip at byte " << i << " accepted";
    EXPECT_EQ(events.status().code(), StatusCode::kCorruption) << events.status().ToString();
  }
}

TEST_F(WalDamageTest, LogsOfFormatOneStillReplay) {
  std::string log = WriteThreeTransactions();
  std::string bytes = Slurp(log);
  // Rewrite every frame as format 1 wrote it: crc32c(type ‖ payload), length, type.
  std::string old;
  for (const Frame& f : CheckedFrames(bytes)) {
    std::string body(1, static_cast<char>(f.type));
    body.append(bytes, f.offset + 13, f.length);
    uint32_t crc = Crc32c(body);
    uint32_t length = static_cast<uint32_t>(f.length);
    old.append(reinterpret_cast<const char*>(&crc), 4);
    old.append(reinterpret_cast<const char*>(&length), 4);
    old.append(body);
  }
  Spill(log, old);
  auto events = EventsAfterOpen(/*read_only=*/true);
  ASSERT_TRUE(events.ok()) << events.status().ToString();
  EXPECT_EQ(*events, 3u);
  // A flipped bit in a format 1 record's payload is damage there too.
  old[old.size() - 1] ^= 0x01;
  Spill(log, old);
  EXPECT_EQ(EventsAfterOpen(true).status().code(), StatusCode::kCorruption);
}

}  // namespace
}  // namespace sibyl
