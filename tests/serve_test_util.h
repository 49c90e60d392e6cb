// Helpers for the `sibyl serve` tests: temporary data directories, an in-process server
// on an ephemeral loopback port, clients with the test keys, a simulated store.
#pragma once

#include <httplib.h>
#include <unistd.h>

#include <atomic>
#include <filesystem>
#include <memory>
#include <string>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "ingest/file_source.h"
#include "server/server.h"
#include "sim/generator.h"
#include "store/event_store.h"

namespace sibyl::server::testing_util {

inline const std::string kAdminKey = "admin-key-0123456789";
inline const std::string kIngestKey = "ingest-key-0123456789";
inline const std::string kOtherIngestKey = "ingest-key-second-key";

inline Keys TestKeys() { return Keys{kAdminKey, {kIngestKey, kOtherIngestKey}}; }

class TempDir {
 public:
  TempDir() {
    std::string tmpl = (std::filesystem::temp_directory_path() / "sibyl-serve-XXXXXX").string();
    path_ = mkdtemp(tmpl.data());
  }
  ~TempDir() {
    std::error_code ec;
    std::filesystem::remove_all(path_, ec);
  }
  const std::string& path() const { return path_; }
  std::string Sub(const std::string& name) const { return path_ + "/" + name; }

 private:
  std::string path_;
};

inline ServerOptions TestOptions(const std::string& data_dir, bool scheduler = false) {
  ServerOptions o;
  o.data_dir = data_dir;
  o.port = 0;
  o.threads = 8;
  o.keys = TestKeys();
  o.scheduler = scheduler;
  o.scheduler_poll_ms = 50;
  o.retry_base_ms = 1000;
  o.train_threads = 1;
  o.log_requests = false;
  o.log = false;
  return o;
}

// An in-process server, started; stopped on destruction.
class TestServer {
 public:
  explicit TestServer(ServerOptions options) {
    auto opened = Server::Open(std::move(options));
    if (!opened.ok()) {
      status_ = opened.status();
      return;
    }
    server_ = std::move(opened).value();
    status_ = server_->Start();
  }
  ~TestServer() { Stop(); }
  void Stop() {
    if (server_) {
      EXPECT_TRUE(server_->Stop().ok());
    }
    server_.reset();
  }
  const Status& status() const { return status_; }
  int port() const { return server_->port(); }
  std::unique_ptr<httplib::Client> Client() const {
    auto c = std::make_unique<httplib::Client>("127.0.0.1", port());
    c->set_read_timeout(120);
    return c;
  }
  // A client sending the admin key as a bearer token.
  std::unique_ptr<httplib::Client> Admin() const {
    auto c = Client();
    c->set_bearer_token_auth(kAdminKey.c_str());
    return c;
  }

 private:
  Status status_;
  std::unique_ptr<Server> server_;
};

// An Amplitude HTTP V2 body with `n` events numbered from `first` (property "seq").
inline std::string AmplitudeBody(const std::string& api_key, int first, int n, const std::string& user_prefix = "user-") {
  nlohmann::json events = nlohmann::json::array();
  for (int i = first; i < first + n; ++i) {
    events.push_back({{"user_id", user_prefix + std::to_string(i % 50)}, {"event_type", "Event " + std::to_string(i % 7)},
                      {"time", 1'700'000'000'000LL + i * 1000LL}, {"insert_id", "ins-" + std::to_string(i)},
                      {"event_properties", {{"seq", i}}}});
  }
  nlohmann::json body = {{"events", events}};
  if (!api_key.empty()) body["api_key"] = api_key;
  return body.dump();
}

// Events in the store at `data_dir` (opened read-only: works while a server holds it).
inline uint64_t StoredEvents(const std::string& data_dir) {
  auto store = EventStore::Open(StoreOptions{.data_dir = data_dir, .read_only = true});
  if (!store.ok()) return 0;
  return (*store)->Snapshot()->event_count();
}

// A data directory filled by the simulator (`users` users over `days` days, seed 7).
inline Status GenerateStore(const std::string& work_dir, const std::string& data_dir, uint64_t users, int days) {
  sim::SimOptions sim;
  sim.users = users;
  sim.days = days;
  sim.seed = 7;
  sim.threads = 1;
  sim.out_path = work_dir + "/events.ndjson";
  RETURN_IF_ERROR(sim::Generate(sim).status());
  ASSIGN_OR_RETURN(auto store, EventStore::Open(StoreOptions{.data_dir = data_dir}));
  {
    ASSIGN_OR_RETURN(auto txn, store->Begin());
    FileParseOptions options;
    options.threads = 1;
    RETURN_IF_ERROR(ParseFile(sim.out_path, options, [&](EventBatch&& batch, std::vector<IngestError>&&) {
                      return txn->Add(batch).status();
                    }).status());
    RETURN_IF_ERROR(txn->Commit());
  }  // the transaction holds the store's write lock until destroyed
  return store->Checkpoint();
}

}  // namespace sibyl::server::testing_util
