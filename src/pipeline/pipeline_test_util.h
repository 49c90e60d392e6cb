// Test helpers: a store in a temporary directory filled with simulated events.
#pragma once

#include <memory>
#include <string>

#include "pipeline/prediction.h"
#include "sim/generator.h"
#include "store/event_store.h"

namespace sibyl::pipeline::testing_util {

// Sizes that keep the suite fast, smaller still under AddressSanitizer.
#if defined(__SANITIZE_ADDRESS__)
// Enough for ~140 purchasers in the cohort: training needs 100 positives to be eligible.
inline constexpr uint64_t kTestUsers = 2400;
#else
inline constexpr uint64_t kTestUsers = 3000;
#endif
inline constexpr int kTestDays = 70;

// A data directory with `users` simulated users over `days` days (seed 7), ingested.
// Removed on destruction.
class GeneratedStore {
 public:
  explicit GeneratedStore(uint64_t users = kTestUsers, int days = kTestDays);
  // Any simulation (its out_path is replaced by one in the store's directory).
  explicit GeneratedStore(sim::SimOptions sim);
  ~GeneratedStore();
  const std::string& dir() const { return dir_; }
  std::shared_ptr<const EventReader> Snapshot() const { return store_->Snapshot(); }
  // The writer, for tests that append (scoring writes scores back).
  EventStore& store() const { return *store_; }
  const Status& status() const { return status_; }

 private:
  std::string dir_;
  std::unique_ptr<EventStore> store_;
  Status status_;
};

// "purchase_7d": propensity of "Purchase" within 7 days among users active in 30 days.
PredictionDefinition PurchaseDefinition();
// "churn_14d": no event at all within 14 days among users active in 30 days.
PredictionDefinition ChurnDefinition();

}  // namespace sibyl::pipeline::testing_util

namespace sibyl::pipeline::testing_util {
// One generated store shared by every test of the binary (generating is the slow part).
const GeneratedStore& SharedStore();
}  // namespace sibyl::pipeline::testing_util
