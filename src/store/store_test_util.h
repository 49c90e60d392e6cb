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

}  // namespace sibyl
