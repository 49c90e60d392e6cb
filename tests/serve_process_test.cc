// `sibyl serve` as a child process: SIGTERM while clients ingest shuts down cleanly (exit
// 0, every acknowledged event stored), and kill -9 under ingest load loses no acknowledged
// event; a restarted server recovers them and serves on.
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <atomic>
#include <cstdio>
#include <mutex>
#include <set>
#include <thread>

#include "serve_test_util.h"

namespace sibyl::server {
namespace {

using namespace testing_util;

// A `sibyl serve` child with its stderr read on a thread (the "started" line gives the port).
class ServeProcess {
 public:
  explicit ServeProcess(const std::string& data) {
    int fds[2];
    EXPECT_EQ(pipe(fds), 0);
    pid_ = fork();
    if (pid_ == 0) {
      dup2(fds[1], STDERR_FILENO);
      close(fds[0]);
      setenv("SIBYL_ADMIN_KEY", kAdminKey.c_str(), 1);
      setenv("SIBYL_INGEST_KEYS", (kIngestKey + "," + kOtherIngestKey).c_str(), 1);
      std::string binary = std::string(SIBYL_BINARY_DIR) + "/sibyl";
      execl(binary.c_str(), binary.c_str(), "--data", data.c_str(), "--quiet", "serve", "--port", "0", "--threads",
            "8", "--no-scheduler", "--no-request-log", static_cast<char*>(nullptr));
      _exit(127);
    }
    close(fds[1]);
    reader_ = std::thread([this, fd = fds[0]] {
      FILE* in = fdopen(fd, "r");
      char line[8192];
      while (fgets(line, sizeof(line), in) != nullptr) {
        std::lock_guard lock(mutex_);
        log_ += line;
        auto j = nlohmann::json::parse(line, nullptr, false);
        if (!j.is_discarded() && j.value("event", "") == "started") port_ = j["port"].get<int>();
      }
      fclose(in);
    });
    for (int i = 0; i < 3000 && port() == 0; ++i) std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  ~ServeProcess() {
    if (pid_ > 0 && !reaped_) {
      kill(pid_, SIGKILL);
      Wait();
    }
    if (reader_.joinable()) reader_.join();
  }
  int port() {
    std::lock_guard lock(mutex_);
    return port_;
  }
  std::string log() {
    std::lock_guard lock(mutex_);
    return log_;
  }
  void Signal(int sig) { kill(pid_, sig); }
  int Wait() {
    int status = 0;
    waitpid(pid_, &status, 0);
    reaped_ = true;
    if (reader_.joinable()) reader_.join();
    return status;
  }

 private:
  pid_t pid_ = -1;
  bool reaped_ = false;
  std::thread reader_;
  std::mutex mutex_;
  std::string log_;
  int port_ = 0;
};

// Client threads posting /batch requests of 200 events with unique "seq" values until
// the server goes away; the seqs of every acknowledged (200) request.
class Ingesters {
 public:
  Ingesters(int port, int threads) {
    for (int t = 0; t < threads; ++t) {
      threads_.emplace_back([this, port, t] {
        httplib::Client c("127.0.0.1", port);
        c.set_read_timeout(30);
        for (int i = 0; !stop_; ++i) {
          const int first = t * 10'000'000 + i * 200;
          auto r = c.Post("/batch", AmplitudeBody(kIngestKey, first, 200), "application/json");
          if (!r) {
            if (++failures_in_a_row_ > 20) break;
            std::this_thread::sleep_for(std::chrono::milliseconds(20));
            continue;
          }
          if (r->status == 200) {
            std::lock_guard lock(mutex_);
            for (int s = first; s < first + 200; ++s) acknowledged_.insert(s);
            ++requests_;
          }
        }
      });
    }
  }
  ~Ingesters() { Join(); }
  void Join() {
    stop_ = true;
    for (auto& t : threads_)
      if (t.joinable()) t.join();
  }
  size_t requests() {
    std::lock_guard lock(mutex_);
    return requests_;
  }
  std::set<int64_t> acknowledged() {
    std::lock_guard lock(mutex_);
    return acknowledged_;
  }
  void WaitForRequests(size_t n) {
    for (int i = 0; i < 6000 && requests() < n; ++i) std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }

 private:
  std::vector<std::thread> threads_;
  std::atomic<bool> stop_{false};
  std::atomic<int> failures_in_a_row_{0};
  std::mutex mutex_;
  std::set<int64_t> acknowledged_;
  size_t requests_ = 0;
};

// The "seq" of every stored event; fails the test on a duplicate.
std::set<int64_t> StoredSeqs(const std::string& data) {
  std::set<int64_t> seen;
  auto store = EventStore::Open(StoreOptions{.data_dir = data, .read_only = true});
  EXPECT_TRUE(store.ok()) << store.status().ToString();
  if (!store.ok()) return seen;
  auto snap = (*store)->Snapshot();
  auto key = snap->property_keys().Find("seq");
  if (!key) return seen;
  ScanSpec spec;
  spec.property_keys = {*key};
  EXPECT_TRUE(snap->Scan(spec, [&](const EventChunk& c) {
                    for (const auto& v : c.properties[0].values)
                      EXPECT_TRUE(seen.insert(static_cast<int64_t>(v.number)).second) << "duplicate " << v.number;
                    return Status::Ok();
                  }).ok());
  return seen;
}

void ExpectAllStored(const std::set<int64_t>& acknowledged, const std::set<int64_t>& stored) {
  size_t missing = 0;
  for (int64_t s : acknowledged) missing += stored.count(s) == 0;
  EXPECT_EQ(missing, 0u) << "acknowledged events lost (of " << acknowledged.size() << ")";
}

TEST(ServeProcessTest, SigtermWhileIngestingExitsZeroWithEveryAcknowledgedEvent) {
  TempDir dir;
  const std::string data = dir.Sub("data");
  ServeProcess server(data);
  ASSERT_GT(server.port(), 0) << server.log();
  Ingesters clients(server.port(), 3);
  clients.WaitForRequests(30);
  server.Signal(SIGTERM);
  const int status = server.Wait();
  clients.Join();
  ASSERT_TRUE(WIFEXITED(status)) << server.log();
  EXPECT_EQ(WEXITSTATUS(status), 0) << server.log();
  EXPECT_NE(server.log().find("\"event\":\"stopped\""), std::string::npos) << server.log();
  std::set<int64_t> acknowledged = clients.acknowledged();
  EXPECT_GE(acknowledged.size(), 30u * 200);
  ExpectAllStored(acknowledged, StoredSeqs(data));
}

TEST(ServeProcessTest, KillNineUnderIngestLosesNoAcknowledgedEventAndRestartRecovers) {
  TempDir dir;
  const std::string data = dir.Sub("data");
  std::set<int64_t> acknowledged;
  {
    ServeProcess server(data);
    ASSERT_GT(server.port(), 0) << server.log();
    Ingesters clients(server.port(), 4);
    clients.WaitForRequests(40);
    server.Signal(SIGKILL);
    server.Wait();
    clients.Join();
    acknowledged = clients.acknowledged();
  }
  ASSERT_GE(acknowledged.size(), 40u * 200);
  std::set<int64_t> stored = StoredSeqs(data);
  ExpectAllStored(acknowledged, stored);

  // Restart on the same data: the server recovers the log and serves on.
  ServeProcess again(data);
  ASSERT_GT(again.port(), 0) << again.log();
  httplib::Client c("127.0.0.1", again.port());
  auto health = c.Get("/healthz");
  ASSERT_TRUE(health);
  EXPECT_EQ(nlohmann::json::parse(health->body)["events"].get<size_t>(), stored.size());
  auto r = c.Post("/batch", AmplitudeBody(kIngestKey, 90'000'000, 10), "application/json");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 200);
  again.Signal(SIGTERM);
  const int status = again.Wait();
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << again.log();
  EXPECT_EQ(StoredSeqs(data).size(), stored.size() + 10);
}

}  // namespace
}  // namespace sibyl::server
