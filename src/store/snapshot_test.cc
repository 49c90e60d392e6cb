// The sorted logs of snapshots at the sizes where they are counting-sorted (a store
// opened with millions of history records), against a plain stable sort, and through the
// store across commits large enough to be re-sorted into the base.
#include "store/snapshot.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <filesystem>
#include <random>
#include <string>

#include "store/event_store.h"

namespace sibyl {
namespace {

bool SameRecord(const UserPropertyRecord& a, const UserPropertyRecord& b) {
  return a.actor == b.actor && a.time_ms == b.time_ms && a.key == b.key && a.value.number == b.value.number;
}

TEST(SnapshotSortTest, LargeLogsAreSortedAsAStableSortWouldAtEverySize) {
  std::mt19937 rng(7);
  for (size_t n : {size_t{10}, size_t{5000}, size_t{70'000}, size_t{300'000}}) {
    std::vector<UserPropertyRecord> history(n);
    std::vector<IdentityLink> links(n);
    for (size_t i = 0; i < n; ++i) {
      // Few distinct times per actor, so equal (actor, time) keys are common: their
      // arrival order (value = i) must survive.
      history[i].actor = static_cast<ActorId>(rng() % 4000);
      history[i].time_ms = static_cast<int64_t>(rng() % 20);
      history[i].key = static_cast<DictId>(rng() % 3);
      history[i].value.number = static_cast<double>(i);
      links[i] = {static_cast<ActorId>(rng() % 3000), static_cast<ActorId>(rng() % 2000), static_cast<int64_t>(i)};
    }
    std::vector<UserPropertyRecord> expected = history;
    std::stable_sort(expected.begin(), expected.end(), [](const auto& a, const auto& b) {
      return a.actor != b.actor ? a.actor < b.actor : a.time_ms < b.time_ms;
    });
    std::vector<UserPropertyRecord> sorted = store_internal::SortedHistory(history);
    ASSERT_EQ(sorted.size(), n);
    for (size_t i = 0; i < n; ++i) ASSERT_TRUE(SameRecord(sorted[i], expected[i])) << "n " << n << " at " << i;

    for (bool by_user : {false, true}) {
      std::vector<IdentityLink> want = links;
      std::stable_sort(want.begin(), want.end(), [&](const IdentityLink& a, const IdentityLink& b) {
        return by_user ? a.user < b.user : a.device < b.device;
      });
      std::vector<IdentityLink> got =
          by_user ? store_internal::SortedLinksByUser(links) : store_internal::SortedLinksByDevice(links);
      ASSERT_EQ(got.size(), n);
      for (size_t i = 0; i < n; ++i)
        ASSERT_TRUE(got[i].device == want[i].device && got[i].user == want[i].user && got[i].time_ms == want[i].time_ms)
            << "n " << n << " by_user " << by_user << " at " << i;
    }
  }
}

// Commits of tens of thousands of updates (past the counting-sort size, and past an
// eighth of the base so the delta is re-sorted into it): after each, the whole history
// is sorted by (actor, time) with equal times in arrival order (the values count up),
// per-actor lookups equal its slices, and older snapshots keep their own prefix.
TEST(SnapshotSortTest, HistoryStaysSortedInArrivalOrderAcrossLargeCommits) {
  std::string tmpl = (std::filesystem::temp_directory_path() / "sibyl-snapshot-XXXXXX").string();
  std::string dir = mkdtemp(tmpl.data());
  {
    auto opened = EventStore::Open(StoreOptions{.data_dir = dir});
    ASSERT_TRUE(opened.ok()) << opened.status().ToString();
    std::unique_ptr<EventStore> store = std::move(opened).value();
    std::mt19937 rng(11);
    double counter = 0;
    std::vector<std::shared_ptr<const EventReader>> snapshots;
    std::vector<size_t> sizes;
    for (int commit = 0; commit < 4; ++commit) {
      EventBatch batch;
      std::vector<std::string> users;
      const size_t updates = commit == 2 ? 500 : 40'000;  // one small commit: a delta
      for (size_t i = 0; i < updates; ++i) users.push_back("user-" + std::to_string(rng() % 3000));
      for (size_t i = 0; i < updates; ++i) {
        ParsedEvent e;
        e.user_id = batch.Intern(users[i]);
        e.is_identify = true;
        e.time_ms = 1'700'000'000'000 + static_cast<int64_t>(rng() % 8) * 1000;
        e.has_time = true;
        e.user_updates_begin = static_cast<uint32_t>(batch.user_updates.size());
        batch.user_updates.push_back({UserPropertyOp::kSet, batch.Intern("n"), Value::Number(++counter)});
        e.user_updates_end = static_cast<uint32_t>(batch.user_updates.size());
        batch.events.push_back(e);
      }
      ASSERT_TRUE(store->Append(batch).ok());
      auto reader = store->Snapshot();
      snapshots.push_back(reader);
      std::span<const UserPropertyRecord> history = reader->user_property_history();
      sizes.push_back(history.size());
      ASSERT_EQ(history.size(), static_cast<size_t>(counter));
      for (size_t i = 1; i < history.size(); ++i) {
        const UserPropertyRecord &a = history[i - 1], &b = history[i];
        ASSERT_TRUE(a.actor < b.actor || (a.actor == b.actor && a.time_ms < b.time_ms) ||
                    (a.actor == b.actor && a.time_ms == b.time_ms && a.value.number < b.value.number))
            << "commit " << commit << " at " << i;
      }
      size_t i = 0;
      while (i < history.size()) {
        size_t j = i;
        while (j < history.size() && history[j].actor == history[i].actor) ++j;
        std::vector<UserPropertyRecord> mine = reader->UserPropertyHistoryOf(history[i].actor);
        ASSERT_EQ(mine.size(), j - i);
        for (size_t k = i; k < j; ++k) ASSERT_TRUE(SameRecord(mine[k - i], history[k]));
        i = j;
      }
    }
    for (size_t k = 0; k < snapshots.size(); ++k) EXPECT_EQ(snapshots[k]->user_property_history().size(), sizes[k]);
  }
  std::filesystem::remove_all(dir);
}

}  // namespace
}  // namespace sibyl
