// User property values as of any time do not depend on the order their events arrive in
// (docs/ARCHITECTURE.md, "User properties"): for `$set` and `$unset`, whose values read in
// time order change from one to the next without returning to an earlier one, any arrival
// order, any cut into batches and any reopen in between give the same value as of every
// time as the naive rule "the latest value set before T" over every event.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <optional>
#include <random>
#include <string>
#include <vector>

#include "store/embedded_store.h"
#include "store/event_store.h"
#include "store/store_test_util.h"

namespace sibyl {
namespace {

// One `$set` (a value) or `$unset` (none) of "plan" for "user-a".
struct Assertion {
  int64_t time_ms;
  std::optional<std::string> value;
};

class UserPropertyOrderTest : public TempStoreTest {
 protected:
  static void AddAssertion(EventBatch& batch, const Assertion& a, std::string_view user = "user-a") {
    ParsedEvent e;
    e.user_id = batch.Intern(user);
    e.is_identify = true;
    e.time_ms = a.time_ms;
    e.has_time = true;
    e.user_updates_begin = static_cast<uint32_t>(batch.user_updates.size());
    if (a.value) batch.user_updates.push_back({UserPropertyOp::kSet, batch.Intern("plan"), Value::String(batch.Intern(*a.value))});
    else batch.user_updates.push_back({UserPropertyOp::kUnset, batch.Intern("plan"), Value::Null()});
    e.user_updates_end = static_cast<uint32_t>(batch.user_updates.size());
    batch.events.push_back(e);
  }

  // `property` ("plan") of `user` (user-a) as of `as_of_ms` in `reader` ("<unset>" when it
  // has none).
  static std::string PlanAsOf(const EventReader& reader, int64_t as_of_ms, std::string_view user = "user-a",
                              std::string_view property = "plan") {
    auto actor = reader.actors().Find(std::string("u:") + std::string(user));
    auto key = reader.property_keys().Find(property);
    if (!actor || !key) return "<unset>";
    for (const auto& [k, v] : reader.UserPropertiesAsOf(*actor, as_of_ms))
      if (k == *key) return std::string(reader.string_values().name(v.string));
    return "<unset>";
  }

  // The naive rule over every assertion: the last one strictly before T; at equal times
  // the greater value (none sorts first).
  static std::string NaiveAsOf(std::vector<Assertion> all, int64_t as_of_ms) {
    std::sort(all.begin(), all.end(), [](const Assertion& a, const Assertion& b) {
      return a.time_ms != b.time_ms ? a.time_ms < b.time_ms : a.value < b.value;
    });
    std::string value = "<unset>";
    for (const Assertion& a : all)
      if (a.time_ms < as_of_ms) value = a.value.value_or("<unset>");
    return value;
  }
};

// Runs of values in time order (free, then pro, then unset, then team), each asserted
// several times, as events that repeat a user's properties do.
std::vector<Assertion> Runs() {
  std::vector<Assertion> out;
  for (int64_t t : {100, 120, 130, 170}) out.push_back({t, "free"});
  for (int64_t t : {200, 210, 260}) out.push_back({t, "pro"});
  for (int64_t t : {300, 330}) out.push_back({t, std::nullopt});
  for (int64_t t : {400, 410, 450, 480}) out.push_back({t, "team"});
  return out;
}

TEST_F(UserPropertyOrderTest, ValuesAsOfEveryTimeAreTheSameInAnyArrivalOrder) {
  const std::vector<Assertion> runs = Runs();
  std::mt19937_64 random(5);
  for (int trial = 0; trial < 240; ++trial) {
    std::vector<Assertion> order = runs;
    if (trial == 1) std::reverse(order.begin(), order.end());
    if (trial >= 2) std::shuffle(order.begin(), order.end(), random);
    SCOPED_TRACE("trial " + std::to_string(trial));
    std::filesystem::remove_all(dir_);
    auto store = Open();
    ASSERT_NE(store, nullptr);
    // Trials alternate: one batch; one transaction of three batches; one batch per
    // assertion with a reopen (replay of the log) or a checkpoint halfway, so the state
    // the writer decides against is rebuilt.
    const size_t half = order.size() / 2;
    if (trial % 4 == 0) {
      EventBatch batch;
      for (const Assertion& a : order) AddAssertion(batch, a);
      ASSERT_TRUE(store->Append(batch).ok());
    } else if (trial % 4 == 3) {
      auto txn = std::move(store->Begin()).value();
      for (size_t from = 0; from < order.size(); from += 5) {
        EventBatch batch;
        for (size_t i = from; i < std::min(order.size(), from + 5); ++i) AddAssertion(batch, order[i]);
        ASSERT_TRUE(txn->Add(batch).ok());
      }
      ASSERT_TRUE(txn->Commit().ok());
    } else {
      for (size_t i = 0; i < order.size(); ++i) {
        if (i == half && trial % 4 == 1) {
          store.reset();
          store = Open();
        }
        if (i == half && trial % 4 == 2) {
          ASSERT_TRUE(store->Checkpoint().ok());
        }
        EventBatch batch;
        AddAssertion(batch, order[i]);
        ASSERT_TRUE(store->Append(batch).ok());
      }
    }
    for (int reopen = 0; reopen < 2; ++reopen) {
      auto snap = store->Snapshot();
      for (int64_t t = 90; t <= 500; t += 5)
        ASSERT_EQ(PlanAsOf(*snap, t), NaiveAsOf(runs, t)) << "as of " << t << (reopen ? ", reopened" : "");
      store.reset();
      store = Open();
    }
  }
}

// Events as an SDK sends them: several users, each event carrying every property of its
// user (a plan that changes in runs and a country that never does), in any order, cut
// into batches and transactions at random.
TEST_F(UserPropertyOrderTest, EventsCarryingEveryPropertyGiveTheSameValuesInAnyOrder) {
  struct Event {
    std::string user;
    int64_t time_ms;
    std::string plan, country;
  };
  std::vector<Event> events;
  const char* plans[] = {"free", "trial", "pro", "team"};
  for (int u = 0; u < 3; ++u)
    for (int64_t k = 0; k < 16; ++k)
      events.push_back({"user-" + std::to_string(u), 100 + 10 * k + u, plans[(k + u) / 5 % 4], u == 1 ? "DE" : "US"});
  auto naive = [&](const std::string& user, int64_t as_of, bool plan) {
    std::string value = "<unset>";
    int64_t latest = INT64_MIN;
    for (const Event& e : events)
      if (e.user == user && e.time_ms < as_of && e.time_ms > latest) {
        latest = e.time_ms;
        value = plan ? e.plan : e.country;
      }
    return value;
  };
  std::mt19937_64 random(9);
  for (int trial = 0; trial < 40; ++trial) {
    SCOPED_TRACE("trial " + std::to_string(trial));
    std::vector<Event> order = events;
    if (trial == 0) std::reverse(order.begin(), order.end());
    else std::shuffle(order.begin(), order.end(), random);
    std::filesystem::remove_all(dir_);
    auto store = Open();
    ASSERT_NE(store, nullptr);
    for (size_t i = 0; i < order.size();) {
      auto txn = std::move(store->Begin()).value();
      for (size_t batches = 1 + random() % 3; batches > 0 && i < order.size(); --batches) {
        EventBatch batch;
        for (size_t n = 1 + random() % 8; n > 0 && i < order.size(); --n, ++i) {
          ParsedEvent e;
          e.user_id = batch.Intern(order[i].user);
          e.is_identify = true;
          e.time_ms = order[i].time_ms;
          e.has_time = true;
          e.user_updates_begin = static_cast<uint32_t>(batch.user_updates.size());
          batch.user_updates.push_back({UserPropertyOp::kSet, batch.Intern("plan"), Value::String(batch.Intern(order[i].plan))});
          batch.user_updates.push_back({UserPropertyOp::kSet, batch.Intern("country"), Value::String(batch.Intern(order[i].country))});
          e.user_updates_end = static_cast<uint32_t>(batch.user_updates.size());
          batch.events.push_back(e);
        }
        ASSERT_TRUE(txn->Add(batch).ok());
      }
      ASSERT_TRUE(txn->Commit().ok());
      if (random() % 4 == 0) {
        txn.reset();
        store.reset();
        store = Open();
      }
    }
    auto snap = store->Snapshot();
    for (int u = 0; u < 3; ++u) {
      const std::string user = "user-" + std::to_string(u);
      for (int64_t t = 95; t <= 280; t += 3) {
        ASSERT_EQ(PlanAsOf(*snap, t, user), naive(user, t, true)) << user << " as of " << t;
        ASSERT_EQ(PlanAsOf(*snap, t, user, "country"), naive(user, t, false)) << user << " as of " << t;
      }
    }
  }
}

// In time order, a repeated value is no history: one record a run.
TEST_F(UserPropertyOrderTest, RepeatsInTimeOrderAreNotKept) {
  auto store = Open();
  EventBatch batch;
  for (const Assertion& a : Runs()) AddAssertion(batch, a);
  auto result = store->Append(batch);
  ASSERT_TRUE(result.ok());
  EXPECT_EQ(result->user_property_changes, 4u);
  EXPECT_EQ(store->Snapshot()->user_property_history().size(), 4u);
}

// Two values at one millisecond: the greater holds from then on, whichever came first,
// in one batch or two, and after a reopen.
TEST_F(UserPropertyOrderTest, TwoValuesAtOneTimeResolveTheSameWayInEitherOrder) {
  for (bool pro_first : {true, false}) {
    for (bool one_batch : {true, false}) {
      SCOPED_TRACE(std::string(pro_first ? "pro first" : "free first") + (one_batch ? ", one batch" : ", two batches"));
      std::filesystem::remove_all(dir_);
      auto store = Open();
      const std::vector<Assertion> order = pro_first ? std::vector<Assertion>{{100, "pro"}, {100, "free"}}
                                                     : std::vector<Assertion>{{100, "free"}, {100, "pro"}};
      EventBatch first;
      AddAssertion(first, order[0]);
      if (one_batch) AddAssertion(first, order[1]);
      ASSERT_TRUE(store->Append(first).ok());
      if (!one_batch) {
        EventBatch second;
        AddAssertion(second, order[1]);
        ASSERT_TRUE(store->Append(second).ok());
      }
      EXPECT_EQ(PlanAsOf(*store->Snapshot(), 101), "pro");
      // A later repeat of the winner is no change, whichever order came before.
      EventBatch later;
      AddAssertion(later, {150, "pro"});
      EXPECT_EQ(store->Append(later)->user_property_changes, 0u);
      store.reset();
      store = Open();
      EXPECT_EQ(PlanAsOf(*store->Snapshot(), 101), "pro");
      EXPECT_EQ(PlanAsOf(*store->Snapshot(), 100), "<unset>");
    }
  }
}

// A value that arrives with a time before its run's first known record moves the run's
// start back: later arrivals inside the run repeat it and are not kept (out of time order
// the store keeps a record a new earliest time, not one an event).
TEST_F(UserPropertyOrderTest, AnEarlierRepeatMovesTheRunBackSoLaterOnesAreNotKept) {
  auto store = Open();
  for (int64_t t : {500, 100, 400, 300, 200}) {
    EventBatch batch;
    AddAssertion(batch, {t, "pro"});
    ASSERT_TRUE(store->Append(batch).ok());
  }
  EXPECT_EQ(store->Snapshot()->user_property_history().size(), 2u);
  EXPECT_EQ(PlanAsOf(*store->Snapshot(), 100), "<unset>");
  EXPECT_EQ(PlanAsOf(*store->Snapshot(), 101), "pro");
}

// A log that arrives newest first, in one transaction of several batches: every event
// moves the run's start back, and the transaction records it once, at commit.
TEST_F(UserPropertyOrderTest, NewestFirstInOneTransactionCostsOneRecordARun) {
  auto store = Open();
  auto txn = std::move(store->Begin()).value();
  for (int64_t t = 1000; t > 0; t -= 100) {
    EventBatch batch;
    for (int64_t k = 0; k < 10; ++k) AddAssertion(batch, {t - 10 * k, t > 500 ? "pro" : "free"});
    ASSERT_TRUE(txn->Add(batch).ok());
  }
  ASSERT_TRUE(txn->Commit().ok());
  txn.reset();
  // pro at 1000 (its first arrival) and its start at 510, free's start at 10.
  EXPECT_EQ(store->Snapshot()->user_property_history().size(), 3u);
  for (int reopen = 0; reopen < 2; ++reopen) {
    auto snap = store->Snapshot();
    EXPECT_EQ(PlanAsOf(*snap, 10), "<unset>");
    EXPECT_EQ(PlanAsOf(*snap, 11), "free");
    EXPECT_EQ(PlanAsOf(*snap, 510), "free");
    EXPECT_EQ(PlanAsOf(*snap, 511), "pro");
    EXPECT_EQ(PlanAsOf(*snap, 2000), "pro");
    store.reset();
    store = Open();
  }
  // The reopened store's state has pro's run from 510: a repeat inside it is no change.
  EventBatch repeat;
  AddAssertion(repeat, {700, "pro"});
  EXPECT_EQ(store->Append(repeat)->user_property_changes, 0u);
}

// An event that repeats its user's previous update in the same batch is skipped only when
// it comes no earlier: an earlier one says the value held from an earlier time.
TEST_F(UserPropertyOrderTest, AnEarlierRepeatInTheSameBatchIsKept) {
  auto store = Open();
  EventBatch batch;
  AddAssertion(batch, {200, "pro"});
  AddAssertion(batch, {100, "pro"});
  ASSERT_TRUE(store->Append(batch).ok());
  EXPECT_EQ(PlanAsOf(*store->Snapshot(), 150), "pro");
}

// The compact state (16 bytes a property of every user) gives back what was put in.
TEST(UserStateTest, KeepsEveryKindOfValueAndTime) {
  const StoredValue values[] = {{}, {ValueKind::kBool, 1, kNoDictId}, {ValueKind::kNumber, -2.5e300, kNoDictId},
                                {ValueKind::kNumber, -0.0, kNoDictId}, {ValueKind::kString, 0, 4'000'000'000u},
                                {ValueKind::kArray, 0, 7}};
  for (const StoredValue& v : values) {
    for (int64_t t : {int64_t{0}, int64_t{-86'400'000}, int64_t{1'700'000'000'123}, (int64_t{1} << 55) - 1}) {
      const UserState state(v, t);
      EXPECT_EQ(state.time_ms(), t);
      EXPECT_EQ(state.kind(), v.kind);
      EXPECT_TRUE(state.value() == v) << static_cast<int>(v.kind) << " at " << t;
      EXPECT_EQ(std::signbit(state.value().number), std::signbit(v.number));
    }
  }
  // Times beyond 56 bits are clamped, keeping their order against every real time.
  EXPECT_GT(UserState({}, INT64_MAX).time_ms(), int64_t{4'102'444'800'000});
  EXPECT_LT(UserState({}, INT64_MIN).time_ms(), int64_t{-4'102'444'800'000});
}

}  // namespace
}  // namespace sibyl
