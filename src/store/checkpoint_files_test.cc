// The files a checkpoint writes and what an open does with the ones it does not list.
// The de-duplication index on disk (docs/FORMAT.md, "De-duplication files"): a checkpoint
// writes the ids that arrived since the previous one, and the whole index only now and
// then, so its cost follows the new events, not the window's (a server ingesting for a
// minute spent 0.3 s more on every checkpoint for each 10M ids it remembered).
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "common/file.h"
#include "store/event_store.h"
#include "store/store_test_util.h"

namespace sibyl {
namespace {

class CheckpointFilesTest : public TempStoreTest {
 protected:
  // `n` events with insert ids "id-<first>" .. "id-<first + n - 1>".
  static EventBatch Batch(int first, int n) {
    EventBatch batch;
    for (int i = first; i < first + n; ++i)
      AddPlainEvent(batch, "user-" + std::to_string(i % 13), "View", 1'000 + i, "id-" + std::to_string(i));
    return batch;
  }

  nlohmann::json Manifest() const {
    std::ifstream in(dir_ + "/MANIFEST");
    return nlohmann::json::parse(in);
  }
};

TEST_F(CheckpointFilesTest, CheckpointsWriteTheNewIdsAndRewriteTheWholeIndexOnlyNowAndThen) {
  auto store = Open();
  ASSERT_NE(store, nullptr);
  constexpr int kBatch = 1'000, kCheckpoints = 12;
  size_t most_files = 0, partial_writes = 0;
  for (int c = 0; c < kCheckpoints; ++c) {
    ASSERT_EQ(store->Append(Batch(c * kBatch, kBatch))->events_written, uint64_t{kBatch});
    ASSERT_TRUE(store->Checkpoint().ok());
    const nlohmann::json manifest = Manifest();
    const nlohmann::json& dedup = manifest["dedup"];
    const std::string written_now = "dedup-g" + manifest["generation"].dump() + "-";
    uint64_t ids = 0, ids_written_now = 0;
    for (const auto& f : dedup) {
      ids += f["ids"].get<uint64_t>();
      if (f["file"].get<std::string>().starts_with(written_now)) ids_written_now += f["ids"].get<uint64_t>();
    }
    EXPECT_EQ(ids, uint64_t((c + 1) * kBatch)) << "checkpoint " << c << ": " << dedup.dump();
    EXPECT_GE(ids_written_now, uint64_t{kBatch}) << "the new ids are written";
    partial_writes += ids_written_now < ids;
    most_files = std::max(most_files, dedup.size());
    // Every file listed is on disk, and no other.
    size_t on_disk = 0;
    for (const auto& e : std::filesystem::directory_iterator(dir_))
      on_disk += e.path().filename().string().starts_with("dedup-g");
    EXPECT_EQ(on_disk, dedup.size());
  }
  // Files merge like a binary counter (1, 2, 3, 3+1, 5, 5+1, 5+2, 5+2+1, 9 ... batches):
  // most checkpoints leave the biggest file alone.
  EXPECT_EQ(most_files, 3u);
  EXPECT_EQ(partial_writes, 7u);

  // After a reopen every id of every file is remembered: all duplicates.
  store.reset();
  store = Open();
  ASSERT_NE(store, nullptr);
  for (int c = 0; c < kCheckpoints; ++c) {
    auto r = store->Append(Batch(c * kBatch, kBatch));
    ASSERT_TRUE(r.ok());
    EXPECT_EQ(r->events_written, 0u) << "batch " << c << " was not remembered";
  }
  EXPECT_EQ(store->Append(Batch(kCheckpoints * kBatch, 5))->events_written, 5u);
}

TEST_F(CheckpointFilesTest, ExpiryRewritesTheIndexAndForgetsOldIds) {
  auto store = Open();
  ASSERT_NE(store, nullptr);
  ASSERT_EQ(store->Append(Batch(0, 500))->events_written, 500u);
  ASSERT_TRUE(store->Checkpoint().ok());
  ASSERT_EQ(store->Append(Batch(500, 100))->events_written, 100u);
  ASSERT_TRUE(store->Checkpoint().ok());
  ASSERT_EQ(Manifest()["dedup"].size(), 2u);
  // Past the window every id has expired: the next checkpoint writes an empty index whole.
  clock_.Advance(options_.dedup_window_ms + 1);
  ASSERT_EQ(store->Append(Batch(600, 10))->events_written, 10u);
  ASSERT_TRUE(store->Checkpoint().ok());
  const nlohmann::json dedup = Manifest()["dedup"];
  ASSERT_EQ(dedup.size(), 1u) << dedup.dump();
  EXPECT_EQ(dedup[0]["ids"], 10);
  store.reset();
  store = Open();
  ASSERT_NE(store, nullptr);
  EXPECT_EQ(store->Append(Batch(0, 600))->events_written, 600u) << "expired ids are new again";
  EXPECT_EQ(store->Append(Batch(600, 10))->events_written, 0u) << "ids within the window are remembered";
}

TEST_F(CheckpointFilesTest, ADamagedFileIsRefusedByName) {
  {
    auto store = Open();
    ASSERT_NE(store, nullptr);
    ASSERT_TRUE(store->Append(Batch(0, 2'000)).ok());
    ASSERT_TRUE(store->Checkpoint().ok());
  }
  const std::string path = dir_ + "/" + Manifest()["dedup"][0]["file"].get<std::string>();
  {
    std::fstream f(path, std::ios::in | std::ios::out | std::ios::binary);
    f.seekp(static_cast<std::streamoff>(std::filesystem::file_size(path) / 2));
    const char byte = static_cast<char>(f.peek());
    f.put(static_cast<char>(byte ^ 0x10));
  }
  auto store = EventStore::Open(options_);
  ASSERT_FALSE(store.ok());
  EXPECT_EQ(store.status().code(), StatusCode::kCorruption);
  EXPECT_NE(store.status().message().find(path), std::string::npos) << store.status().ToString();
  // A read-only open does not de-duplicate and does not read it.
  StoreOptions read_only = options_;
  read_only.read_only = true;
  EXPECT_TRUE(EventStore::Open(read_only).ok());
}

// A part or column file the MANIFEST does not list is deleted only when a checkpoint that
// did not finish wrote it (a later generation); any other is moved aside, never deleted
// (issue 18: a part entry lost from the manifest made the next open delete its events).
TEST_F(CheckpointFilesTest, UnlistedFilesOfEarlierCheckpointsAreMovedAsideNotDeleted) {
  {
    auto store = Open();
    ASSERT_NE(store, nullptr);
    ASSERT_TRUE(store->Append(Batch(0, 300)).ok());
    ASSERT_TRUE(store->Checkpoint().ok());
  }
  nlohmann::json manifest = Manifest();
  ASSERT_EQ(manifest["parts"].size(), 1u);
  const std::string part = manifest["parts"][0]["file"];
  const std::string part_bytes = [&] {
    std::ifstream in(dir_ + "/parts/" + part, std::ios::binary);
    return std::string(std::istreambuf_iterator<char>(in), {});
  }();
  // The entry is lost, and the manifest's checksum made to match (as a careless edit would).
  manifest["parts"] = nlohmann::json::array();
  manifest.erase("checksum");
  manifest["checksum"] = Crc32cHex(manifest.dump());
  std::ofstream(dir_ + "/MANIFEST", std::ios::trunc) << manifest.dump(1);
  // And a leftover of a checkpoint that never finished, one generation later.
  const std::string leftover = "p1-g" + std::to_string(manifest["generation"].get<int>() + 1) + "-0.seg";
  std::ofstream(dir_ + "/parts/" + leftover) << "partial";

  std::vector<std::string> notices;
  options_.on_notice = [&](std::string_view notice) { notices.emplace_back(notice); };
  auto store = Open();
  ASSERT_NE(store, nullptr);
  ASSERT_EQ(notices.size(), 1u) << "the move is said once, to the opener's notice callback";
  EXPECT_NE(notices[0].find(part), std::string::npos) << notices[0];
  EXPECT_NE(notices[0].find("lost+found"), std::string::npos) << notices[0];
  EXPECT_FALSE(std::filesystem::exists(dir_ + "/parts/" + part));
  EXPECT_FALSE(std::filesystem::exists(dir_ + "/parts/" + leftover)) << "a leftover of an unfinished checkpoint";
  const std::string aside = dir_ + "/lost+found/parts-" + part;
  ASSERT_TRUE(std::filesystem::exists(aside)) << "the unlisted part was deleted, not moved aside";
  std::ifstream in(aside, std::ios::binary);
  EXPECT_EQ(std::string(std::istreambuf_iterator<char>(in), {}), part_bytes);
}

}  // namespace
}  // namespace sibyl
