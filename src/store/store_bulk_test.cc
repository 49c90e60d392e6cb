// Transaction::SetNumbers, the bulk write of numbers as user properties (scoring's
// write-back) into number columns, against the identify-event path it stands for; and
// the latest user property values that events' operations decide against.
#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <map>
#include <random>
#include <tuple>

#include "store/event_store.h"
#include "store/store_test_util.h"

namespace sibyl {
namespace {

// Two stores side by side under the fixture's directory.
class StoreBulkTest : public TempStoreTest {
 protected:
  std::unique_ptr<EventStore> Open(const std::string& name) {
    StoreOptions options = options_;
    options.data_dir = dir_ + "/" + name;
    return TempStoreTest::Open(options);
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

  // Every actor's user properties as of `as_of` (name, kind, number).
  using Value3 = std::tuple<std::string, ValueKind, double>;
  static std::vector<std::vector<Value3>> PropertiesAsOf(const EventStore& store, int64_t as_of) {
    auto snap = store.Snapshot();
    std::vector<std::vector<Value3>> out;
    for (ActorId a = 0; a < snap->actors().size(); ++a) {
      auto& rows = out.emplace_back();
      for (const auto& [key, value] : snap->UserPropertiesAsOf(a, as_of))
        rows.emplace_back(std::string(snap->property_keys().name(key)), value.kind, value.number);
      std::sort(rows.begin(), rows.end());
    }
    return out;
  }
};

TEST_F(StoreBulkTest, SetNumbersGivesTheValuesIdentifySetsWouldAsOfAnyTimeAcrossRestartsAndCheckpoints) {
  const std::vector<std::string> users = {"user-1", "user-2", "user-3", "user-4"};
  const std::vector<std::pair<std::string, std::vector<double>>> first = {
      {"sibyl.p.score", {0.1, 0.2, 0.3, 0.4}}, {"sibyl.p.version", {1, 1, 1, 1}}};
  const std::vector<std::pair<std::string, std::vector<double>>> second = {
      {"sibyl.p.score", {0.1, 0.25, 0.3, 0.45}}, {"sibyl.p.version", {2, 2, 2, 2}}};

  auto events = Open("events");
  ASSERT_TRUE(events->Append(Visits(users)).ok());
  ASSERT_TRUE(events->Append(AsIdentifies(users, 5000, first)).ok());
  ASSERT_TRUE(events->Append(AsIdentifies(users, 9000, second)).ok());

  auto bulk = Open("bulk");
  ASSERT_TRUE(bulk->Append(Visits(users)).ok());
  std::vector<ActorId> actors;
  for (const auto& u : users) actors.push_back(*bulk->Snapshot()->actors().Find("u:" + u));
  auto b1 = SetNumbers(*bulk, actors, 5000, first);
  auto b2 = SetNumbers(*bulk, actors, 9000, second);
  ASSERT_TRUE(b1.ok() && b2.ok()) << b1.status().ToString() << b2.status().ToString();
  // Every value is written (as columns), changed or not.
  EXPECT_EQ(b1->user_property_changes, 8u);
  EXPECT_EQ(b2->identify_calls, 4u);

  auto check = [&](const char* when) {
    auto snap = bulk->Snapshot();
    EXPECT_TRUE(snap->user_property_history().empty()) << when;
    ASSERT_EQ(snap->number_columns().size(), 2u) << when;
    const NumberColumnBatch& batch = *snap->number_columns()[1];
    EXPECT_EQ(batch.time_ms, 9000);
    EXPECT_EQ(batch.actors, actors);
    ASSERT_EQ(batch.columns.size(), 2u);
    EXPECT_EQ(batch.columns[0].values, second[0].second);
    EXPECT_EQ(batch.columns[1].values, std::vector<double>{2});  // shared by all: kept once
    for (int64_t as_of : {int64_t{0}, int64_t{5000}, int64_t{5001}, int64_t{9000}, int64_t{9001}, INT64_MAX})
      EXPECT_EQ(PropertiesAsOf(*bulk, as_of), PropertiesAsOf(*events, as_of)) << when << ", as of " << as_of;
  };
  check("after commit");
  bulk.reset();
  bulk = Open("bulk");
  check("replayed from the log");
  ASSERT_TRUE(bulk->Checkpoint().ok());
  bulk.reset();
  bulk = Open("bulk");
  check("read from the checkpoint");
  // A later checkpoint keeps the batches' files as they are.
  const std::string columns_dir = dir_ + "/bulk/columns";
  std::vector<std::string> files;
  for (const auto& entry : std::filesystem::directory_iterator(columns_dir)) files.push_back(entry.path().string());
  std::sort(files.begin(), files.end());
  ASSERT_EQ(files.size(), 2u);
  auto written = std::filesystem::last_write_time(files[0]);
  ASSERT_TRUE(bulk->Append(Visits({"user-5"})).ok());
  ASSERT_TRUE(events->Append(Visits({"user-5"})).ok());
  ASSERT_TRUE(bulk->Checkpoint().ok());
  EXPECT_EQ(std::filesystem::last_write_time(files[0]), written);
  bulk.reset();
  bulk = Open("bulk");
  check("after a second checkpoint");
  bulk.reset();

  // A damaged column file is named.
  {
    std::fstream f(files[1], std::ios::in | std::ios::out | std::ios::binary);
    f.seekp(-3, std::ios::end);
    f.put('\x7f');
  }
  StoreOptions options;
  options.data_dir = dir_ + "/bulk";
  auto damaged = EventStore::Open(options);
  ASSERT_FALSE(damaged.ok());
  EXPECT_EQ(damaged.status().code(), StatusCode::kCorruption);
  EXPECT_NE(damaged.status().message().find(files[1]), std::string::npos) << damaged.status().message();
}

TEST_F(StoreBulkTest, AColumnValueWinsOverARecordOfTheSameTimeAndLosesToALaterOne) {
  auto store = Open("store");
  ASSERT_TRUE(store->Append(Visits({"user-1"})).ok());
  const std::vector<ActorId> actors = {*store->Snapshot()->actors().Find("u:user-1")};
  ASSERT_TRUE(store->Append(AsIdentifies({"user-1"}, 5000, {{"score", {1}}})).ok());
  ASSERT_TRUE(SetNumbers(*store, actors, 5000, {{"score", {2}}}).ok());
  ASSERT_TRUE(store->Append(AsIdentifies({"user-1"}, 6000, {{"score", {3}}})).ok());
  ASSERT_TRUE(SetNumbers(*store, actors, 7000, {{"score", {4}}}).ok());
  ASSERT_TRUE(SetNumbers(*store, actors, 7000, {{"score", {5}}}).ok());  // same time: the later batch
  auto value_as_of = [&](int64_t t) {
    auto values = store->Snapshot()->UserPropertiesAsOf(actors[0], t);
    return values.empty() ? -1.0 : values[0].second.number;
  };
  EXPECT_EQ(value_as_of(5000), -1.0);
  EXPECT_EQ(value_as_of(5001), 2.0);
  EXPECT_EQ(value_as_of(6001), 3.0);
  EXPECT_EQ(value_as_of(7001), 5.0);
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
  refuse(actors, "fine", good, "column 1 (\"fine\"): the same property as column 0");
  const std::vector<ActorId> backwards = {actors[1], actors[0]};
  refuse(backwards, "bad", good, "row 1: actor 0 after actor 1: actors must be ascending and distinct");

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
  EXPECT_TRUE(snap->user_property_history().empty());
  ASSERT_EQ(snap->number_columns().size(), 1u);
  EXPECT_EQ(snap->number_columns()[0]->columns.size(), 1u);
}

// The latest value of every user property (what $setOnce, $add, $unset and unchanged
// `$set`s are decided against) must match a naive model through unsets and re-sets, a
// transaction's own earlier batches, abandoned transactions, replay and checkpoints. The
// history records only changes, so comparing histories compares every decision made.
// Number columns on the same keys are interleaved: events' operations never see them, and
// the values as of any time are the later of the two (the model's rule, reader.h).
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
    // An unset is kept even of a value never set (an earlier set may arrive later); an
    // unset property keeps its state.
    auto [it, fresh] = latest.try_emplace({user, key}, ValueKind::kNull, 0);
    if (!fresh && it->second.first == ValueKind::kNull) return;
    it->second = {ValueKind::kNull, 0};
    expected[actors[user]].emplace_back(key, time, ValueKind::kNull, 0);
  };
  // Column writes by (user, key), in commit order (times only grow here).
  std::map<std::pair<size_t, std::string>, std::vector<std::pair<int64_t, double>>> columns;
  // The model's values of every actor as of `as_of`: the last record or the last column
  // write before it, whichever is later.
  auto model_as_of = [&](int64_t as_of) {
    std::vector<std::vector<Value3>> out(expected.size());
    for (size_t u = 0; u < users.size(); ++u)
      for (const std::string& key : keys) {
        const HistoryRow* record = nullptr;
        for (const HistoryRow& row : expected[actors[u]])
          if (std::get<0>(row) == key && std::get<1>(row) < as_of) record = &row;
        const std::pair<int64_t, double>* column = nullptr;
        for (const auto& write : columns[{u, key}])
          if (write.first < as_of) column = &write;
        if (column && (!record || column->first >= std::get<1>(*record))) {
          out[actors[u]].emplace_back(key, ValueKind::kNumber, column->second);
        } else if (record && std::get<2>(*record) != ValueKind::kNull) {
          out[actors[u]].emplace_back(key, std::get<2>(*record), std::get<3>(*record));
        }
      }
    for (auto& rows : out) std::sort(rows.begin(), rows.end());
    return out;
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
          for (size_t i = 0; i < who.size(); ++i) columns[{who[i], key}].emplace_back(time, values[i]);
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
            if (!abandon && (previous == latest.end() || previous->second.first == ValueKind::kNull))
              model_set(user, key, time, ValueKind::kNumber, number);
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
    const int64_t some_time = 10'000 + static_cast<int64_t>(pick(static_cast<size_t>(time - 10'000 + 2)));
    ASSERT_EQ(PropertiesAsOf(*store, INT64_MAX), model_as_of(INT64_MAX)) << "round " << round;
    ASSERT_EQ(PropertiesAsOf(*store, some_time), model_as_of(some_time)) << "round " << round << ", as of " << some_time;
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
  size_t column_writes = 0;
  for (const auto& [slot, writes] : columns) column_writes += writes.size();
  EXPECT_GT(column_writes, 0u);  // the run did interleave columns
  EXPECT_GT(store->Snapshot()->number_columns().size(), 0u);
}

}  // namespace
}  // namespace sibyl
