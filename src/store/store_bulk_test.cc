// Transaction::SetNumbers, the bulk write of numbers as user properties (scoring's
// write-back), against the identify-event path it stands for; and the latest user
// property values both paths decide against.
#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>
#include <map>
#include <random>
#include <tuple>

#include "store/event_store.h"

namespace sibyl {
namespace {

class StoreBulkTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string tmpl = (std::filesystem::temp_directory_path() / "sibyl-bulk-XXXXXX").string();
    root_ = mkdtemp(tmpl.data());
  }
  void TearDown() override { std::filesystem::remove_all(root_); }

  std::unique_ptr<EventStore> Open(const std::string& name) {
    StoreOptions options;
    options.data_dir = root_ + "/" + name;
    options.clock = &clock_;
    auto store = EventStore::Open(options);
    EXPECT_TRUE(store.ok()) << store.status().ToString();
    return store.ok() ? std::move(store).value() : nullptr;
  }

  // One event per user, so that the actors exist (in this order in both stores).
  static EventBatch Visits(const std::vector<std::string>& users) {
    EventBatch batch;
    for (size_t i = 0; i < users.size(); ++i) {
      ParsedEvent e;
      e.user_id = batch.Intern(users[i]);
      e.event_type = batch.Intern("Visit");
      e.time_ms = 1000 + static_cast<int64_t>(i);
      e.has_time = true;
      batch.events.push_back(e);
    }
    return batch;
  }

  // The same numbers as identify events with `$set`s.
  static EventBatch AsIdentifies(const std::vector<std::string>& users, int64_t time,
                                 const std::vector<std::pair<std::string, std::vector<double>>>& columns) {
    EventBatch batch;
    for (size_t i = 0; i < users.size(); ++i) {
      ParsedEvent e;
      e.user_id = batch.Intern(users[i]);
      e.is_identify = true;
      e.time_ms = time;
      e.has_time = true;
      e.user_updates_begin = static_cast<uint32_t>(batch.user_updates.size());
      for (const auto& [key, values] : columns)
        batch.user_updates.push_back({UserPropertyOp::kSet, batch.Intern(key), Value::Number(values[i])});
      e.user_updates_end = static_cast<uint32_t>(batch.user_updates.size());
      batch.events.push_back(e);
    }
    return batch;
  }

  static Result<AppendResult> SetNumbers(EventStore& store, const std::vector<ActorId>& actors, int64_t time,
                                         const std::vector<std::pair<std::string, std::vector<double>>>& columns) {
    NumberPropertyUpdates updates;
    updates.time_ms = time;
    updates.actors = actors;
    for (const auto& [key, values] : columns) updates.columns.emplace_back(key, values);
    ASSIGN_OR_RETURN(auto txn, store.Begin());
    ASSIGN_OR_RETURN(AppendResult result, txn->SetNumbers(updates));
    RETURN_IF_ERROR(txn->Commit());
    return result;
  }

  using HistoryRow = std::tuple<std::string, int64_t, ValueKind, double>;  // name, time, value
  // Every actor's property history, by actor id.
  static std::vector<std::vector<HistoryRow>> Histories(const EventStore& store) {
    auto snap = store.Snapshot();
    std::vector<std::vector<HistoryRow>> out;
    for (ActorId a = 0; a < snap->actors().size(); ++a) {
      auto& rows = out.emplace_back();
      for (const UserPropertyRecord& r : snap->UserPropertyHistoryOf(a))
        rows.emplace_back(std::string(snap->property_keys().name(r.key)), r.time_ms, r.value.kind, r.value.number);
    }
    return out;
  }

  std::string root_;
  ManualClock clock_{1'700'000'000'000};
};

TEST_F(StoreBulkTest, SetNumbersRecordsWhatIdentifySetsWouldBeforeAndAfterRestart) {
  const std::vector<std::string> users = {"user-1", "user-2", "user-3", "user-4"};
  const std::vector<std::pair<std::string, std::vector<double>>> first = {
      {"sibyl.p.score", {0.1, 0.2, 0.3, 0.4}}, {"sibyl.p.version", {1, 1, 1, 1}}};
  // The second run changes two scores and no version: unchanged values make no history.
  const std::vector<std::pair<std::string, std::vector<double>>> second = {
      {"sibyl.p.score", {0.1, 0.25, 0.3, 0.45}}, {"sibyl.p.version", {1, 1, 1, 1}}};

  auto events = Open("events");
  ASSERT_TRUE(events->Append(Visits(users)).ok());
  auto r1 = events->Append(AsIdentifies(users, 5000, first));
  auto r2 = events->Append(AsIdentifies(users, 9000, second));
  ASSERT_TRUE(r1.ok() && r2.ok());

  auto bulk = Open("bulk");
  ASSERT_TRUE(bulk->Append(Visits(users)).ok());
  std::vector<ActorId> actors;
  for (const auto& u : users) actors.push_back(*bulk->Snapshot()->actors().Find("u:" + u));
  auto b1 = SetNumbers(*bulk, actors, 5000, first);
  auto b2 = SetNumbers(*bulk, actors, 9000, second);
  ASSERT_TRUE(b1.ok() && b2.ok()) << b1.status().ToString() << b2.status().ToString();
  EXPECT_EQ(b1->user_property_changes, r1->user_property_changes);
  EXPECT_EQ(b2->user_property_changes, 2u);
  EXPECT_EQ(b2->identify_calls, r2->identify_calls);

  auto expected = Histories(*events);
  ASSERT_EQ(expected[actors[1]].size(), 3u);  // score 0.2, version 1, score 0.25
  EXPECT_EQ(Histories(*bulk), expected);
  bulk.reset();
  bulk = Open("bulk");  // replayed from the log
  EXPECT_EQ(Histories(*bulk), expected);
  ASSERT_TRUE(bulk->Checkpoint().ok());
  bulk.reset();
  bulk = Open("bulk");  // read from the checkpoint
  EXPECT_EQ(Histories(*bulk), expected);
}

TEST_F(StoreBulkTest, RefusedRequestsChangeNothingAndNameTheRowOrColumn) {
  auto store = Open("store");
  ASSERT_TRUE(store->Append(Visits({"user-1", "user-2"})).ok());
  auto snap = store->Snapshot();
  const std::vector<ActorId> actors = {*snap->actors().Find("u:user-1"), *snap->actors().Find("u:user-2")};
  const std::vector<ActorId> unknown = {actors[0], 99};
  const std::vector<double> good = {1, 2}, nan = {1, std::nan("")}, short_column = {1};

  auto txn = std::move(store->Begin()).value();
  auto refuse = [&](std::span<const ActorId> ids, std::string key, std::span<const double> values,
                    std::string_view expected) {
    NumberPropertyUpdates updates;
    updates.time_ms = 10;
    updates.actors = ids;
    updates.columns = {{"fine", good}, {std::move(key), values}};
    auto result = txn->SetNumbers(updates);
    ASSERT_FALSE(result.ok());
    EXPECT_EQ(result.status().code(), StatusCode::kInvalidArgument);
    EXPECT_NE(result.status().message().find(expected), std::string::npos) << result.status().message();
  };
  refuse(unknown, "bad", good, "row 1: actor 99 is not in the store");
  refuse(actors, "bad", nan, "column 1 (\"bad\"), row 1: value is not finite");
  refuse(actors, "bad", short_column, "column 1 (\"bad\"): 1 values for 2 actors");
  refuse(actors, "", good, "column 1: property name");

  // The transaction goes on after a refusal, and only the accepted request lands.
  NumberPropertyUpdates ok;
  ok.time_ms = 10;
  ok.actors = actors;
  ok.columns = {{"accepted", good}};
  ASSERT_TRUE(txn->SetNumbers(ok).ok());
  ASSERT_TRUE(txn->Commit().ok());
  snap = store->Snapshot();
  EXPECT_FALSE(snap->property_keys().Find("bad").has_value());
  EXPECT_FALSE(snap->property_keys().Find("fine").has_value());
  EXPECT_EQ(snap->user_property_history().size(), 2u);
}

// The latest value of every user property (what $setOnce, $add, $unset and unchanged
// `$set`s are decided against) must match a naive model through unsets and re-sets, a
// transaction's own earlier batches, abandoned transactions, replay and checkpoints. The
// history records only changes, so comparing histories compares every decision made.
TEST_F(StoreBulkTest, LatestValuesMatchANaiveModelThroughUnsetsRestartsAndCheckpoints) {
  const std::vector<std::string> users = {"user-0", "user-1", "user-2", "user-3", "user-4"};
  const std::vector<std::string> keys = {"k0", "k1", "k2"};
  auto store = Open("store");
  ASSERT_TRUE(store->Append(Visits(users)).ok());
  std::vector<ActorId> actors;
  for (const auto& u : users) actors.push_back(*store->Snapshot()->actors().Find("u:" + u));

  // The model: latest (kind, number) by (user, key), and the history it implies.
  std::map<std::pair<size_t, std::string>, std::pair<ValueKind, double>> latest;
  std::vector<std::vector<HistoryRow>> expected(store->Snapshot()->actors().size());
  auto model_set = [&](size_t user, const std::string& key, int64_t time, ValueKind kind, double number) {
    auto [it, fresh] = latest.try_emplace({user, key}, kind, number);
    if (!fresh && it->second == std::pair(kind, number)) return;
    it->second = {kind, number};
    expected[actors[user]].emplace_back(key, time, kind, number);
  };
  auto model_unset = [&](size_t user, const std::string& key, int64_t time) {
    if (latest.erase({user, key})) expected[actors[user]].emplace_back(key, time, ValueKind::kNull, 0);
  };

  std::mt19937 random(7);
  auto pick = [&](size_t n) { return static_cast<size_t>(random() % n); };
  int64_t time = 10'000;
  for (int round = 0; round < 60; ++round) {
    // One round in five is abandoned: the store must be as if it never began.
    const bool abandon = pick(5) == 0;
    auto txn = std::move(store->Begin()).value();
    for (size_t step = 0, steps = 1 + pick(4); step < steps; ++step) {
      if (pick(2) == 0) {
        // Numbers (few distinct ones, so unchanged values are common) on some actors.
        std::vector<ActorId> ids;
        std::vector<size_t> who;
        for (size_t u = 0; u < users.size(); ++u) {
          if (pick(2) != 0) continue;
          ids.push_back(actors[u]);
          who.push_back(u);
        }
        const std::string& key = keys[pick(keys.size())];
        std::vector<double> values;
        for (size_t i = 0; i < ids.size(); ++i) values.push_back(1 + pick(3));
        NumberPropertyUpdates updates;
        updates.time_ms = ++time;
        updates.actors = ids;
        updates.columns = {{key, values}};
        ASSERT_TRUE(txn->SetNumbers(updates).ok());
        if (!abandon) {
          for (size_t i = 0; i < who.size(); ++i) model_set(who[i], key, time, ValueKind::kNumber, values[i]);
        }
        continue;
      }
      EventBatch batch;
      for (int n = 0; n < 8; ++n) {
        const size_t user = pick(users.size());
        const std::string& key = keys[pick(keys.size())];
        const double number = 1 + pick(3);
        const bool as_bool = pick(4) == 0;  // true is not the number 1
        ParsedEvent e;
        e.user_id = batch.Intern(users[user]);
        e.is_identify = true;
        e.time_ms = ++time;
        e.has_time = true;
        e.user_updates_begin = static_cast<uint32_t>(batch.user_updates.size());
        const auto previous = latest.find({user, key});
        switch (pick(4)) {
          case 0:
            batch.user_updates.push_back({UserPropertyOp::kUnset, batch.Intern(key), Value::Null()});
            if (!abandon) model_unset(user, key, time);
            break;
          case 1:
            batch.user_updates.push_back({UserPropertyOp::kSetOnce, batch.Intern(key), Value::Number(number)});
            if (!abandon && previous == latest.end()) model_set(user, key, time, ValueKind::kNumber, number);
            break;
          case 2: {
            batch.user_updates.push_back({UserPropertyOp::kAdd, batch.Intern(key), Value::Number(number)});
            const bool counts = previous != latest.end() && previous->second.first == ValueKind::kNumber;
            if (!abandon) model_set(user, key, time, ValueKind::kNumber, (counts ? previous->second.second : 0) + number);
            break;
          }
          default:
            batch.user_updates.push_back({UserPropertyOp::kSet, batch.Intern(key),
                                          as_bool ? Value::Bool(true) : Value::Number(number)});
            if (!abandon) model_set(user, key, time, as_bool ? ValueKind::kBool : ValueKind::kNumber, as_bool ? 1 : number);
        }
        e.user_updates_end = static_cast<uint32_t>(batch.user_updates.size());
        batch.events.push_back(e);
      }
      ASSERT_TRUE(txn->Add(batch).ok());
    }
    if (!abandon) {
      ASSERT_TRUE(txn->Commit().ok());
    }
    txn.reset();
    ASSERT_EQ(Histories(*store), expected) << "round " << round;
    // Then the state is rebuilt: from the log, or from a checkpoint (plus the log after it).
    if (round % 7 == 3) {
      store.reset();
      store = Open("store");
    } else if (round % 11 == 5) {
      ASSERT_TRUE(store->Checkpoint().ok());
      store.reset();
      store = Open("store");
    }
  }
  auto snap = store->Snapshot();
  size_t set = 0;
  for (size_t u = 0; u < users.size(); ++u)
    for (const auto& [key, value] : snap->UserPropertiesAsOf(actors[u], INT64_MAX)) {
      auto it = latest.find({u, std::string(snap->property_keys().name(key))});
      ASSERT_NE(it, latest.end());
      EXPECT_EQ(std::pair(value.kind, value.number), it->second);
      ++set;
    }
  EXPECT_EQ(set, latest.size());
}

}  // namespace
}  // namespace sibyl
