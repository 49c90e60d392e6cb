// The de-duplication index and its compact on-disk form (docs/FORMAT.md, users file).
#include <gtest/gtest.h>

#include <bit>
#include <map>
#include <random>
#include <unordered_set>

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

// Hashes as insert_ids give them (64-bit, well spread), from a counter: splitmix64.
uint64_t Spread(uint64_t k) {
  uint64_t z = k * 0x9E3779B97F4A7C15ull;
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}

// The model test at the scale where segments grow many times: ~100K ids, a third of them
// crowded into two segments (one the last, whose overflow is the table's end) so those
// double a dozen times, and some sharing a segment's last home slot (clusters that
// overflow past it). Aborts go back across growths, expiries drop whole runs, and every
// few steps encoding [from, to) and decoding it gives back exactly those ids, each with its
// day's latest time. The naive list keeps a set beside it for membership.
TEST(DedupIndexTest, LargeHistoryAcrossSegmentGrowthsMatchesANaiveList) {
  std::mt19937_64 random(21);
  constexpr int kShift = 64 - DedupIndex::kSegmentBits;
  auto fresh_hash = [&]() -> uint64_t {
    const uint64_t r = random();
    switch (r % 10) {
      case 0: return (uint64_t{7} << kShift) | (random() >> DedupIndex::kSegmentBits);  // one segment
      case 1: return (~uint64_t{0} << kShift) | (random() >> DedupIndex::kSegmentBits);  // the last one
      case 2: return ((random() % 8 + 100) << kShift) | ((~uint64_t{0} >> DedupIndex::kSegmentBits) - random() % 64);
      default: return random();
    }
  };
  DedupIndex index;
  std::vector<std::pair<uint64_t, int64_t>> model;
  std::unordered_set<uint64_t> members;
  int64_t now = 19'300 * kMsPerDay;
  size_t truncations_across_growth = 0;
  for (int step = 0; step < 600; ++step) {
    const int action = static_cast<int>(random() % 20);
    if (action < 13) {
      // A batch: mostly new ids, some already stored, some repeated within the batch.
      std::vector<uint64_t> hashes;
      for (int k = 0, n = static_cast<int>(random() % 1200); k < n; ++k) {
        const uint64_t pick = random() % 10;
        if (pick == 0 && !model.empty()) hashes.push_back(model[random() % model.size()].first);
        else if (pick == 1 && !hashes.empty()) hashes.push_back(hashes[random() % hashes.size()]);
        else hashes.push_back(fresh_hash());
      }
      std::unique_ptr<bool[]> added(new bool[hashes.size() + 1]);
      index.InsertMany(hashes.data(), hashes.size(), now, added.get());
      for (size_t k = 0; k < hashes.size(); ++k) {
        const bool fresh = members.insert(hashes[k]).second;
        ASSERT_EQ(added[k], fresh) << "step " << step;
        if (fresh) model.emplace_back(hashes[k], now);
      }
      now += static_cast<int64_t>(random() % (kMsPerDay / 64));
    } else if (action < 15) {
      // An abort of a big transaction: it grew segments; going back keeps them grown.
      const size_t before = model.size();
      const size_t growths = index.shape().growths;
      std::vector<uint64_t> hashes;
      for (int k = 0; k < 3000; ++k) hashes.push_back(fresh_hash());
      std::unique_ptr<bool[]> added(new bool[hashes.size()]);
      index.InsertMany(hashes.data(), hashes.size(), now, added.get());
      truncations_across_growth += index.shape().growths > growths;
      index.TruncateTo(before);
      for (size_t k = 0; k < hashes.size(); ++k) ASSERT_EQ(index.Contains(hashes[k]), members.contains(hashes[k]));
    } else if (action == 15) {
      const size_t size = model.size() - static_cast<size_t>(random() % (std::min<size_t>(model.size(), 5000) + 1));
      index.TruncateTo(size);
      for (size_t k = size; k < model.size(); ++k) members.erase(model[k].first);
      model.resize(size);
    } else if (action == 16) {
      const int64_t oldest = now - kMsPerDay - static_cast<int64_t>(random() % (2 * kMsPerDay));
      index.Expire(oldest);
      std::erase_if(model, [&](const auto& e) {
        if (e.second >= oldest) return false;
        members.erase(e.first);
        return true;
      });
    } else if (action == 17) {
      index.Reserve(index.size() + static_cast<size_t>(random() % 200'000));
    } else {
      const size_t from = model.empty() || random() % 3 == 0 ? 0 : static_cast<size_t>(random() % model.size());
      const size_t to = random() % 3 == 0 ? model.size() : from + static_cast<size_t>(random() % (model.size() - from + 1));
      std::string bytes;
      index.EncodeTo(&bytes, from, to);
      DedupIndex reloaded;
      ASSERT_TRUE(reloaded.DecodeFrom(bytes, "dedup-g1-0.bin").ok()) << "step " << step;
      ASSERT_EQ(reloaded.size(), to - from) << "step " << step;
      std::map<int64_t, int64_t> latest;  // day -> latest time in [from, to)
      for (size_t k = from; k < to; ++k) latest[model[k].second / kMsPerDay] = std::max(latest[model[k].second / kMsPerDay], model[k].second);
      for (size_t k = from; k < to; ++k) ASSERT_TRUE(reloaded.Contains(model[k].first)) << "step " << step;
      for (const auto& [hash, at] : reloaded.entries()) ASSERT_EQ(at, latest[at / kMsPerDay]) << "step " << step;
      for (size_t k = 0; k < from; ++k) ASSERT_FALSE(reloaded.Contains(model[k].first)) << "step " << step;
    }
    ASSERT_EQ(index.size(), model.size()) << "step " << step;
    if (step % 10 == 0) {
      ASSERT_EQ(index.entries(), model) << "step " << step;
    }
    for (int probe = 0; probe < 200 && !model.empty(); ++probe)
      ASSERT_TRUE(index.Contains(model[random() % model.size()].first)) << "step " << step;
    for (int probe = 0; probe < 200; ++probe) {
      const uint64_t h = fresh_hash();
      ASSERT_EQ(index.Contains(h), members.contains(h)) << "step " << step;
    }
  }
  ASSERT_EQ(index.entries(), model);
  // What the test meant to cover did happen: big ones, and aborts across growth steps.
  EXPECT_GT(model.size(), 30'000u);
  EXPECT_GT(index.shape().growths, 5 * (size_t{1} << DedupIndex::kSegmentBits));
  EXPECT_GT(truncations_across_growth, 5u);
}

// Hashes at the segments' edges and clusters that overflow past a segment's last home
// slot: a one-day encoding reads them from the table in ascending order (decoding puts
// them back in the order read, and refuses values out of order).
TEST(DedupIndexTest, SegmentEdgesAndOverflowsEncodeInAscendingOrder) {
  constexpr int kShift = 64 - DedupIndex::kSegmentBits;
  const uint64_t low_mask = ~uint64_t{0} >> DedupIndex::kSegmentBits;
  std::vector<uint64_t> hashes = {0, 2, UINT64_MAX, UINT64_MAX - 1};
  for (uint64_t segment : {uint64_t{0}, uint64_t{1}, uint64_t{2}, uint64_t{1000}, (uint64_t{1} << DedupIndex::kSegmentBits) - 1}) {
    hashes.push_back(segment << kShift);                   // a segment's first hash
    for (uint64_t k = 0; k < 40; ++k) hashes.push_back((segment << kShift) | (low_mask - k));  // its last home slot
  }
  std::mt19937_64 random(13);
  for (int k = 0; k < 20'000; ++k) hashes.push_back(random());
  std::vector<uint64_t> sorted = hashes;
  std::sort(sorted.begin(), sorted.end());
  sorted.erase(std::unique(sorted.begin(), sorted.end()), sorted.end());
  for (bool reserve : {false, true}) {
    DedupIndex index;
    if (reserve) index.Reserve(hashes.size());
    std::unique_ptr<bool[]> added(new bool[hashes.size()]);
    index.InsertMany(hashes.data(), hashes.size(), 5, added.get());
    std::string bytes;
    index.EncodeTo(&bytes);
    DedupIndex reloaded;
    ASSERT_TRUE(reloaded.DecodeFrom(bytes, "dedup-g1-0.bin").ok());
    std::vector<uint64_t> read;
    for (const auto& [hash, at] : reloaded.entries()) read.push_back(hash);
    // Hash 0 is stored as 1: it comes back as 1 (one id to the index, as ever).
    std::vector<uint64_t> expected = sorted;
    expected.front() = 1;
    EXPECT_EQ(read, expected) << "reserve " << reserve;
  }
}

// The encoding depends on the ids and their times, not on how the table came to hold
// them: grown a doubling at a time, reserved (too big) up front, or with other ids
// inserted and aborted in between.
TEST(DedupIndexTest, EncodingDoesNotDependOnTheTablesHistory) {
  std::vector<uint64_t> hashes;
  for (uint64_t k = 0; k < 300'000; ++k) hashes.push_back(Spread(k));
  std::unique_ptr<bool[]> added(new bool[hashes.size()]);
  DedupIndex grown, reserved, aborted;
  for (size_t at = 0; at < hashes.size(); at += 1000) grown.InsertMany(&hashes[at], 1000, 77, added.get());
  reserved.Reserve(4 * hashes.size());  // far more than it gets
  reserved.InsertMany(hashes.data(), hashes.size(), 77, added.get());
  for (size_t at = 0; at < hashes.size(); at += 1000) {
    std::vector<uint64_t> other;
    for (uint64_t k = 0; k < 2000; ++k) other.push_back(Spread(1'000'000 + at * 2 + k));
    aborted.InsertMany(other.data(), other.size(), 77, added.get());
    aborted.TruncateTo(at);
    aborted.InsertMany(&hashes[at], 1000, 77, added.get());
  }
  std::string a, b, c;
  grown.EncodeTo(&a);
  reserved.EncodeTo(&b);
  aborted.EncodeTo(&c);
  EXPECT_EQ(a, b);
  EXPECT_EQ(a, c);
  EXPECT_NE(grown.shape().slots, reserved.shape().slots);  // the tables do differ
}

// Issue 18: the index grows in bounded steps. 2M well-spread ids in batches of 1,000 (as
// a server's commits insert them): no growth step rehashes more than a few times the
// average segment (a single table's last doubling moved 1.5M), no segment is big, and
// memory per id is what one table took (at most 8/3 slots an id, 3/4 load before
// doubling) but for the segments' overflow room.
TEST(DedupIndexTest, GrowthStepsAreBoundedBySegment) {
  constexpr size_t kIds = 2'000'000, kSegments = size_t{1} << DedupIndex::kSegmentBits;
  DedupIndex index;
  std::vector<uint64_t> hashes(1000);
  std::unique_ptr<bool[]> added(new bool[hashes.size()]);
  for (size_t at = 0; at < kIds; at += hashes.size()) {
    for (size_t k = 0; k < hashes.size(); ++k) hashes[k] = Spread(at + k);
    index.InsertMany(hashes.data(), hashes.size(), static_cast<int64_t>(at), added.get());
  }
  ASSERT_EQ(index.size(), kIds);
  const DedupIndex::Shape shape = index.shape();
  EXPECT_LE(shape.largest_growth, 2 * kIds / kSegments);
  EXPECT_LE(shape.largest_segment_slots, 4 * kIds / kSegments);
  EXPECT_LE(shape.slots, kIds * 8 / 3 + kSegments * 64);
  EXPECT_GT(shape.growths, kSegments * 6);  // every segment doubled its way up

  // A bulk load's reservation sizes each segment once: few double during the load.
  DedupIndex reserved;
  reserved.Reserve(kIds);
  const size_t growths = reserved.shape().growths;
  for (size_t at = 0; at < kIds; at += hashes.size()) {
    for (size_t k = 0; k < hashes.size(); ++k) hashes[k] = Spread(at + k);
    reserved.InsertMany(hashes.data(), hashes.size(), 5, added.get());
  }
  EXPECT_LE(reserved.shape().growths - growths, kSegments / 100);
  EXPECT_LE(reserved.shape().slots, kIds * 8 / 3 + kSegments * 64);
}

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
