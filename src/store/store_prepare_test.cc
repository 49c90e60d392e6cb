// The store's prepared batches (`EventBatch` prepared off the writer's lock): ids copied
// from the previous event where names repeat, updates after a duplicate, and appends
// identical to unprepared batches.
#include "store/event_store.h"

#include <gtest/gtest.h>

#include <string>
#include <tuple>
#include <vector>

#include "store/store_test_util.h"

namespace sibyl {
namespace {

// Every event's (actor name, type name, category value) in scan order.
std::vector<std::tuple<std::string, std::string, std::string>> Rows(const EventReader& snap) {
  std::vector<std::tuple<std::string, std::string, std::string>> rows;
  ScanSpec spec;
  spec.property_keys = {*snap.property_keys().Find("category")};
  EXPECT_TRUE(snap.Scan(spec, [&](const EventChunk& c) {
    for (size_t i = 0; i < c.size; ++i) {
      std::string category;
      const PropertyColumn& column = c.properties[0];
      for (size_t k = 0; k < column.rows.size(); ++k)
        if (column.rows[k] - c.first_row == i) category = snap.string_values().name(column.values[k].string);
      rows.emplace_back(snap.actors().name(c.actor[i]), snap.event_types().name(c.event_type[i]), category);
    }
    return Status::Ok();
  }).ok());
  return rows;
}

TEST_F(StoreTest, PrepareCopiesIdsOnlyForNamesEqualToThePreviousEvents) {
  // Prepare copies the ids of names equal to those at the same place in the previous
  // event instead of looking them up: every id must still be the dictionary's own, and a
  // name that differs (or a value of another kind) at the same place must be looked up.
  auto store = Open();
  EventBatch seed;
  Add(seed, "user-a", "View", 1000);
  SetProperty(seed, "user-a", 1000, UserPropertyOp::kSet, "plan", Value::String(seed.Intern("free")));
  SetProperty(seed, "user-a", 1000, UserPropertyOp::kSet, "tier", Value::String(seed.Intern("gold")));
  ASSERT_TRUE(store->Append(seed).ok());
  EventBatch b;
  auto event = [&](std::string_view type, std::vector<std::pair<std::string_view, Value>> props,
                   std::vector<std::pair<std::string_view, Value>> updates) {
    ParsedEvent e;
    e.user_id = b.Intern("user-b");
    e.event_type = b.Intern(type);
    e.time_ms = 2000;
    e.has_time = true;
    e.properties_begin = static_cast<uint32_t>(b.properties.size());
    for (auto& [k, v] : props) b.properties.push_back({b.Intern(k), v});
    e.properties_end = static_cast<uint32_t>(b.properties.size());
    e.user_updates_begin = static_cast<uint32_t>(b.user_updates.size());
    for (auto& [k, v] : updates) b.user_updates.push_back({UserPropertyOp::kSet, b.Intern(k), v});
    e.user_updates_end = static_cast<uint32_t>(b.user_updates.size());
    b.events.push_back(e);
  };
  auto text = [&](std::string_view s) { return Value::String(b.Intern(s)); };
  event("View", {{"category", text("shoes")}, {"price", Value::Number(1)}}, {{"plan", text("free")}});
  event("View", {{"category", text("shoes")}, {"price", text("shoes")}}, {{"plan", text("free")}});
  event("Buy", {{"price", text("shoes")}, {"category", Value::Number(2)}}, {{"tier", text("gold")}});
  event("View", {{"price", text("new")}}, {{"tier", text("gold")}, {"plan", text("free")}});
  store->Prepare(b);
  auto snap = store->Snapshot();
  auto key = [&](std::string_view k) { return *snap->property_keys().Find(k); };
  auto value = [&](std::string_view v) { return *snap->string_values().Find(v); };
  const EventBatch::ResolvedIds& r = b.resolved;
  EXPECT_EQ(r.event_types, (std::vector<DictId>{*snap->event_types().Find("View"), *snap->event_types().Find("View"),
                                                kNoDictId, *snap->event_types().Find("View")}));
  EXPECT_EQ(r.property_keys, (std::vector<DictId>{key("category"), key("price"), key("category"), key("price"),
                                                  key("price"), key("category"), key("price")}));
  EXPECT_EQ(r.property_values, (std::vector<DictId>{value("shoes"), kNoDictId, value("shoes"), value("shoes"),
                                                    value("shoes"), kNoDictId, kNoDictId}));
  EXPECT_EQ(r.update_keys, (std::vector<DictId>{key("plan"), key("plan"), key("tier"), key("tier"), key("plan")}));
  EXPECT_EQ(r.update_values, (std::vector<DictId>{value("free"), value("free"), value("gold"), value("gold"),
                                                  value("free")}));
  ASSERT_TRUE(store->Append(b).ok());
}

TEST_F(StoreTest, PreparedBatchesApplyUpdatesAfterADuplicateLikeUnpreparedOnes) {
  // An event repeating the user property updates of a duplicate (dropped by the writer,
  // updates and all) must still apply them: Prepare cannot know what is a duplicate, so it
  // may share ids and bytes between events but never drop an event's updates.
  StoreOptions other_options = options_;
  other_options.data_dir = dir_ + "/unprepared";
  auto unprepared_store = EventStore::Open(other_options);
  ASSERT_TRUE(unprepared_store.ok());
  auto store = Open();
  auto batch = [](std::vector<std::tuple<std::string_view, std::string_view, int64_t>> events) {
    EventBatch b;
    for (auto& [insert_id, plan, time] : events) {
      ParsedEvent e;
      e.user_id = b.Intern("user-a");
      e.device_id = b.Intern("dev-1");
      e.event_type = b.Intern("View");
      e.insert_id = b.Intern(insert_id);
      e.time_ms = time;
      e.has_time = true;
      e.user_updates_begin = static_cast<uint32_t>(b.user_updates.size());
      b.user_updates.push_back({UserPropertyOp::kSet, b.Intern("plan"), Value::String(b.Intern(plan))});
      e.user_updates_end = static_cast<uint32_t>(b.user_updates.size());
      b.events.push_back(e);
    }
    return b;
  };
  const std::vector<std::vector<std::tuple<std::string_view, std::string_view, int64_t>>> batches = {
      {{"id-1", "free", 1000}}, {{"id-2", "pro", 2000}}, {{"id-1", "free", 1000}, {"id-3", "free", 3000}}};
  for (const auto& events : batches) {
    EventBatch prepared = batch(events), unprepared = batch(events);
    store->Prepare(prepared);
    ASSERT_TRUE(store->Append(prepared).ok());
    ASSERT_TRUE((*unprepared_store)->Append(unprepared).ok());
  }
  for (auto* s : {store.get(), unprepared_store->get()}) {
    auto snap = s->Snapshot();
    auto props = snap->UserPropertiesAsOf(*snap->actors().Find("u:user-a"), 4000);
    ASSERT_EQ(props.size(), 1u);
    EXPECT_EQ(snap->string_values().name(props[0].second.string), "free");
  }
}

TEST_F(StoreTest, PreparedBatchesAppendExactlyLikeUnpreparedOnes) {
  // A second store whose dictionaries hold other names at the same ids: ids it resolves
  // must not be trusted by the first.
  StoreOptions other_options = options_;
  other_options.data_dir = dir_ + "/other";
  auto other = EventStore::Open(other_options);
  ASSERT_TRUE(other.ok());
  EventBatch seed_other;
  Add(seed_other, "someone", "Buy", 1);   // Buy = 0, View = 1 there; the other way round here
  Add(seed_other, "someone", "View", 2);
  ASSERT_TRUE((*other)->Append(seed_other).ok());

  auto store = Open();
  EventBatch first;
  Add(first, "user-a", "View", 1000, "id-1");
  ASSERT_TRUE(store->Append(first).ok());
  auto make = [&] {
    EventBatch b;
    Add(b, "user-b", "View", 2000, "id-2");
    Add(b, "user-b", "Buy", 3000, "id-3");  // a type the store does not know yet
    SetProperty(b, "user-b", 3000, UserPropertyOp::kSet, "plan", Value::String(b.Intern("shoes")));
    return b;
  };
  EventBatch prepared = make();
  store->Prepare(prepared);
  auto snap = store->Snapshot();
  ASSERT_EQ(prepared.resolved.event_types.size(), 3u);
  EXPECT_EQ(prepared.resolved.event_types[0], *snap->event_types().Find("View"));
  EXPECT_EQ(prepared.resolved.event_types[1], kNoDictId);
  EXPECT_EQ(prepared.resolved.property_keys[1], *snap->property_keys().Find("category"));
  EXPECT_EQ(prepared.resolved.property_values[1], *snap->string_values().Find("shoes"));
  EXPECT_EQ(prepared.resolved.update_keys[0], kNoDictId);  // "plan" is new
  EXPECT_EQ(prepared.resolved.update_values[0], *snap->string_values().Find("shoes"));
  ASSERT_TRUE(store->Append(prepared).ok());
  // Insert ids hashed on the parsing thread de-duplicate like the writer's own hashes.
  EventBatch repeat;
  Add(repeat, "user-a", "View", 1000, "id-1");
  store->Prepare(repeat);
  ASSERT_EQ(repeat.resolved.insert_id_hashes.size(), 1u);
  EXPECT_EQ(store->Append(repeat)->duplicates_dropped, 1u);

  EventBatch foreign = make();
  (*other)->Prepare(foreign);
  foreign.events[0].insert_id = foreign.Intern("id-4");
  foreign.events[1].insert_id = foreign.Intern("id-5");
  ASSERT_TRUE(store->Append(foreign).ok());

  snap = store->Snapshot();
  using Row = std::tuple<std::string, std::string, std::string>;
  auto rows = Rows(*snap);  // segment by segment: sort to compare
  std::sort(rows.begin(), rows.end());
  EXPECT_EQ(rows, (std::vector<Row>{{"u:user-a", "View", "shoes"},
                                           {"u:user-b", "Buy", "shoes"},
                                           {"u:user-b", "Buy", "shoes"},
                                           {"u:user-b", "View", "shoes"},
                                           {"u:user-b", "View", "shoes"}}));
  ActorId b = *snap->actors().Find("u:user-b");
  auto props = snap->UserPropertiesAsOf(b, 4000);
  ASSERT_EQ(props.size(), 1u);
  EXPECT_EQ(snap->property_keys().name(props[0].first), "plan");
  EXPECT_EQ(snap->string_values().name(props[0].second.string), "shoes");
}

}  // namespace
}  // namespace sibyl
