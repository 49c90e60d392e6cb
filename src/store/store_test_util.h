// The store tests' shared fixture: a fresh temporary directory, a manual clock, and the
// options that open a store there.
#pragma once

#include <gtest/gtest.h>
#include <stdlib.h>  // mkdtemp

#include <filesystem>
#include <memory>
#include <string>
#include <string_view>

#include "common/time.h"
#include "store/event_store.h"

namespace sibyl {

class TempStoreTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string pattern = (std::filesystem::temp_directory_path() / "sibyl-store-XXXXXX").string();
    dir_ = mkdtemp(pattern.data());
    options_.data_dir = dir_;
    options_.clock = &clock_;
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }

  // Opens the store of options_ (or of `options`); null, with the failure reported, if it
  // cannot be opened.
  std::unique_ptr<EventStore> Open() { return Open(options_); }
  static std::unique_ptr<EventStore> Open(const StoreOptions& options) {
    auto store = EventStore::Open(options);
    EXPECT_TRUE(store.ok()) << store.status().ToString();
    return store.ok() ? std::move(store).value() : nullptr;
  }

  // Appends an event with no properties and no user property changes to `batch`.
  static void AddPlainEvent(EventBatch& batch, std::string_view user, std::string_view type, int64_t time_ms,
                            std::string_view insert_id = "") {
    ParsedEvent e;
    e.user_id = batch.Intern(user);
    e.event_type = batch.Intern(type);
    e.insert_id = batch.Intern(insert_id);
    e.time_ms = time_ms;
    e.has_time = true;
    e.properties_begin = e.properties_end = static_cast<uint32_t>(batch.properties.size());
    e.user_updates_begin = e.user_updates_end = static_cast<uint32_t>(batch.user_updates.size());
    batch.events.push_back(e);
  }

  std::string dir_;
  ManualClock clock_{1'700'000'000'000};
  StoreOptions options_;
};

// TempStoreTest with events that carry properties (price, category), property records and
// a count of the events a reader sees.
class StoreTest : public TempStoreTest {
 protected:
  // Adds an event to `batch`: props as (key, number) pairs.
  static void Add(EventBatch& batch, std::string_view user, std::string_view type, int64_t time,
                  std::string_view insert_id = "", std::string_view device = "") {
    ParsedEvent e;
    e.user_id = batch.Intern(user);
    e.device_id = batch.Intern(device);
    e.event_type = batch.Intern(type);
    e.insert_id = batch.Intern(insert_id);
    e.time_ms = time;
    e.has_time = true;
    e.properties_begin = static_cast<uint32_t>(batch.properties.size());
    batch.properties.push_back({batch.Intern("price"), Value::Number(static_cast<double>(time % 1000) / 10)});
    batch.properties.push_back({batch.Intern("category"), Value::String(batch.Intern("shoes"))});
    e.properties_end = static_cast<uint32_t>(batch.properties.size());
    e.user_updates_begin = e.user_updates_end = static_cast<uint32_t>(batch.user_updates.size());
    batch.events.push_back(e);
  }

  static void SetProperty(EventBatch& batch, std::string_view user, int64_t time,
                          UserPropertyOp op, std::string_view key, Value value) {
    ParsedEvent e;
    e.user_id = batch.Intern(user);
    e.is_identify = true;
    e.time_ms = time;
    e.has_time = true;
    e.user_updates_begin = static_cast<uint32_t>(batch.user_updates.size());
    batch.user_updates.push_back({op, batch.Intern(key), value});
    e.user_updates_end = static_cast<uint32_t>(batch.user_updates.size());
    batch.events.push_back(e);
  }

  static uint64_t CountEvents(const EventReader& reader) {
    uint64_t n = 0;
    EXPECT_TRUE(reader.Scan({}, [&](const EventChunk& c) { n += c.size; return Status::Ok(); }).ok());
    return n;
  }

};

}  // namespace sibyl
