#include "pipeline/pipeline_test_util.h"

#include <unistd.h>

#include <atomic>
#include <filesystem>

#include "ingest/file_source.h"
#include "sim/generator.h"

namespace sibyl::pipeline::testing_util {

namespace {
sim::SimOptions DefaultSimulation(uint64_t users, int days) {
  sim::SimOptions sim;
  sim.users = users;
  sim.days = days;
  sim.seed = 7;
  sim.threads = 1;
  return sim;
}
}  // namespace

GeneratedStore::GeneratedStore(uint64_t users, int days) : GeneratedStore(DefaultSimulation(users, days)) {}

GeneratedStore::GeneratedStore(sim::SimOptions sim) {
  static std::atomic<int> counter{0};
  dir_ = (std::filesystem::temp_directory_path() /
          ("sibyl-pipeline-test-" + std::to_string(getpid()) + "-" + std::to_string(counter++)))
             .string();
  std::filesystem::remove_all(dir_);
  std::filesystem::create_directories(dir_);
  sim.out_path = dir_ + "/events.ndjson";
  auto generated = sim::Generate(sim);
  if (!generated.ok()) {
    status_ = generated.status();
    return;
  }
  auto store = EventStore::Open(StoreOptions{.data_dir = dir_ + "/data"});
  if (!store.ok()) {
    status_ = store.status();
    return;
  }
  store_ = std::move(store).value();
  FileParseOptions options;
  options.threads = 1;
  auto parsed = ParseFile(sim.out_path, options, [&](EventBatch&& batch, std::vector<IngestError>&&) {
    return store_->Append(batch).status();
  });
  if (!parsed.ok()) status_ = parsed.status();
}

GeneratedStore::~GeneratedStore() {
  store_.reset();
  std::error_code ec;
  std::filesystem::remove_all(dir_, ec);
}

PredictionDefinition PurchaseDefinition() {
  return ParsePredictionDefinition(nlohmann::json::parse(R"({
    "name": "purchase_7d", "kind": "propensity", "outcome": {"event": "Purchase"},
    "horizon_days": 7, "cohort": {"all": [{"active_within_days": 30}]}})"))
      .value();
}

PredictionDefinition ChurnDefinition() {
  return ParsePredictionDefinition(nlohmann::json::parse(R"({
    "name": "churn_14d", "kind": "churn", "horizon_days": 14,
    "cohort": {"all": [{"active_within_days": 30}]}})"))
      .value();
}

}  // namespace sibyl::pipeline::testing_util

namespace sibyl::pipeline::testing_util {
const GeneratedStore& SharedStore() {
  static GeneratedStore store;
  return store;
}
}  // namespace sibyl::pipeline::testing_util
