// The de-duplication index and its compact on-disk form (docs/FORMAT.md, users file).
#include <gtest/gtest.h>

#include <bit>
#include <map>
#include <random>

#include "common/time.h"
#include "store/catalog.h"

namespace sibyl {
namespace {

TEST(DedupIndexTest, EncodedIndexReloadsEveryIdWithItsDaysLatestTime) {
  DedupIndex index;
  std::mt19937_64 random(7);
  const int64_t day0 = 19'000 * kMsPerDay;
  std::vector<std::pair<uint64_t, int64_t>> added;
  // Three ingestion days; the first is big enough for the bucketed sort, edge hashes too.
  for (int i = 0; i < 150'000; ++i) added.emplace_back(random(), day0 + 1000 + i);
  for (int i = 0; i < 500; ++i) added.emplace_back(random(), day0 + kMsPerDay + 5 * i);
  added.emplace_back(0, day0 + 2 * kMsPerDay + 7);
  added.emplace_back(UINT64_MAX, day0 + 2 * kMsPerDay + 9);
  for (const auto& [hash, at] : added) ASSERT_TRUE(index.Insert(hash, at));

  std::string bytes;
  index.EncodeTo(&bytes);
  // Elias-Fano: about 2 + 64 - log2(n) bits an id (49 here, 44 at 3M ids) instead of
  // 8 bytes and a time.
  EXPECT_LT(bytes.size(), added.size() * 49 / 8 + 64);

  DedupIndex reloaded;
  ASSERT_TRUE(reloaded.DecodeFrom(bytes, "users-g1.bin").ok());
  ASSERT_EQ(reloaded.size(), added.size());
  for (const auto& [hash, at] : added) EXPECT_TRUE(reloaded.Contains(hash)) << hash;
  EXPECT_FALSE(reloaded.Contains(12345));
  std::map<int64_t, int64_t> latest;  // day -> latest time
  for (const auto& [hash, at] : added) latest[at / kMsPerDay] = std::max(latest[at / kMsPerDay], at);
  for (const auto& [hash, at] : reloaded.entries()) EXPECT_EQ(at, latest[at / kMsPerDay]);

  // Expiry works on the reloaded times: the first day goes once its last id is too old.
  reloaded.Expire(day0 + 1000 + 150'000);
  EXPECT_EQ(reloaded.size(), 502u);
  EXPECT_FALSE(reloaded.Contains(added.front().first));
  EXPECT_TRUE(reloaded.Contains(0));
}

// A checkpoint writes only the ids inserted since the previous one: EncodeTo(from, to)
// holds exactly the entries [from, to), wherever the ends fall (inside a run of one time,
// at a run's start, across days).
TEST(DedupIndexTest, EncodingFromAnEntryHoldsExactlyTheLaterIds) {
  DedupIndex index;
  std::mt19937_64 random(11);
  const int64_t day0 = 19'200 * kMsPerDay;
  std::vector<uint64_t> hashes;
  for (int run = 0; run < 9; ++run) {
    const int64_t at = day0 + (run / 3) * kMsPerDay + run * 1000;  // three days, three runs each
    for (int i = 0; i < 100; ++i) {
      hashes.push_back(random());
      ASSERT_TRUE(index.Insert(hashes.back(), at));
    }
  }
  const std::vector<std::pair<size_t, size_t>> ranges = {{0, 900}, {1, 900}, {150, 900}, {300, 900}, {301, 900},
                                                         {899, 900}, {900, 900}, {150, 301}, {0, 1}, {299, 300}};
  for (const auto& [from, to] : ranges) {
    std::string bytes;
    index.EncodeTo(&bytes, from, to);
    DedupIndex reloaded;
    ASSERT_TRUE(reloaded.DecodeFrom(bytes, "dedup-g1.bin").ok()) << from;
    EXPECT_EQ(reloaded.size(), to - from) << from << ".." << to;
    for (size_t i = 0; i < hashes.size(); ++i)
      EXPECT_EQ(reloaded.Contains(hashes[i]), i >= from && i < to) << from << ".." << to << ": " << i;
  }
}

// A bulk load's ids share one ingestion day: they are encoded straight from the table, in
// order (the decoder refuses values out of order), after growth, aborts and an expiry.
TEST(DedupIndexTest, OneDaysIdsEncodeInOrderFromTheTable) {
  std::mt19937_64 random(9);
  const int64_t day = 19'500 * kMsPerDay;
  for (size_t n : {size_t{1}, size_t{3000}, size_t{200'000}}) {
    DedupIndex index;
    std::vector<uint64_t> hashes;
    for (size_t i = 0; i < n; ++i) hashes.push_back(random());
    hashes.push_back(UINT64_MAX);  // the last home slot: overflow past the table
    std::unique_ptr<bool[]> added(new bool[hashes.size()]);
    index.InsertMany(hashes.data(), hashes.size(), day + 10, added.get());
    index.TruncateTo(hashes.size() / 2 + 1);  // an abort: backward shifts in the table
    hashes.resize(hashes.size() / 2 + 1);
    index.Insert(42, day + 20);
    hashes.push_back(42);
    index.Expire(day);  // nothing is older: no rebuild
    std::string bytes;
    index.EncodeTo(&bytes);
    DedupIndex reloaded;
    ASSERT_TRUE(reloaded.DecodeFrom(bytes, "users-g1.bin").ok()) << n;
    ASSERT_EQ(reloaded.size(), hashes.size()) << n;
    for (uint64_t h : hashes) ASSERT_TRUE(reloaded.Contains(h)) << n;
    for (const auto& [hash, at] : reloaded.entries()) ASSERT_EQ(at, day + 20);
    // Elias-Fano's 2 + 64 - log2(n) bits an id.
    EXPECT_LT(bytes.size(), hashes.size() * (67 - std::bit_width(hashes.size())) / 8 + 64);
  }
}

// Inserts (with repeats), reservations, aborts back to an earlier size and expiries, at a few ingestion
// times, against a naive list of (hash, time): membership, size and entries agree after
// every step. (Hashes 0 and 1 are one id to the index, which keeps 0 for empty slots;
// real hashes are 64-bit, so the test's small ones start at 2.) Small hashes all share
// the first home slot (one long cluster); spread ones (a bijection of them) fill the table.
class DedupIndexModelTest : public ::testing::TestWithParam<bool> {};

TEST_P(DedupIndexModelTest, InsertTruncateAndExpireMatchANaiveList) {
  const bool spread = GetParam();
  auto hash_of = [&](uint64_t k) { return spread ? k * 0x9E3779B97F4A7C15ull : k; };
  std::mt19937_64 random(5);
  DedupIndex index;
  std::vector<std::pair<uint64_t, int64_t>> model;
  int64_t now = 1'000'000;
  for (int step = 0; step < 3000; ++step) {
    const int action = static_cast<int>(random() % 10);
    if (action < 7) {
      std::vector<uint64_t> hashes;
      for (int k = 0, n = static_cast<int>(random() % 40); k < n; ++k) hashes.push_back(hash_of(2 + random() % 5000));
      std::unique_ptr<bool[]> added(new bool[hashes.size() + 1]);
      index.InsertMany(hashes.data(), hashes.size(), now, added.get());
      for (size_t k = 0; k < hashes.size(); ++k) {
        const bool fresh = std::none_of(model.begin(), model.end(), [&](const auto& e) { return e.first == hashes[k]; });
        ASSERT_EQ(added[k], fresh) << "step " << step;
        if (fresh) model.emplace_back(hashes[k], now);
      }
      if (random() % 3 == 0) now += 1 + static_cast<int64_t>(random() % 1000);
    } else if (action == 7 && random() % 4 == 0) {
      index.Reserve(index.size() + static_cast<size_t>(random() % 20'000));  // a bulk load's hint
    } else if (action < 9) {
      const size_t size = model.empty() ? 0 : static_cast<size_t>(random() % (model.size() + 1));
      index.TruncateTo(size);
      model.resize(size);
    } else {
      const int64_t oldest = now - static_cast<int64_t>(random() % 3000);
      index.Expire(oldest);
      std::erase_if(model, [&](const auto& e) { return e.second < oldest; });
    }
    ASSERT_EQ(index.size(), model.size()) << "step " << step;
    ASSERT_EQ(index.entries(), model) << "step " << step;
    for (int probe = 0; probe < 20; ++probe) {
      const uint64_t h = hash_of(2 + random() % 5000);
      const bool in_model = std::any_of(model.begin(), model.end(), [&](const auto& e) { return e.first == h; });
      ASSERT_EQ(index.Contains(h), in_model) << "step " << step << ", hash " << h;
    }
  }
}

INSTANTIATE_TEST_SUITE_P(SmallAndSpreadHashes, DedupIndexModelTest, ::testing::Bool());

TEST(DedupIndexTest, EmptyIndexRoundTrips) {
  DedupIndex index, reloaded;
  std::string bytes;
  index.EncodeTo(&bytes);
  ASSERT_TRUE(reloaded.DecodeFrom(bytes, "x").ok());
  EXPECT_EQ(reloaded.size(), 0u);
}

TEST(DedupIndexTest, DamagedSectionIsCorruptionNotACrash) {
  DedupIndex index;
  std::mt19937_64 random(3);
  for (int i = 0; i < 1000; ++i) index.Insert(random(), 5);
  std::string bytes;
  index.EncodeTo(&bytes);
  for (size_t cut : {size_t{0}, size_t{1}, size_t{3}, bytes.size() / 2, bytes.size() - 1}) {
    DedupIndex reloaded;
    Status st = reloaded.DecodeFrom(std::string_view(bytes).substr(0, cut), "users-g2.bin");
    EXPECT_FALSE(st.ok()) << cut;
    EXPECT_NE(st.message().find("users-g2.bin"), std::string::npos);
  }
  // A flipped bit in the high part (the section's end) adds or drops an id: the count
  // no longer matches.
  std::string flipped = bytes;
  flipped[flipped.size() - 1] ^= 0x40;
  DedupIndex reloaded;
  EXPECT_FALSE(reloaded.DecodeFrom(flipped, "users-g2.bin").ok());
}

}  // namespace
}  // namespace sibyl
