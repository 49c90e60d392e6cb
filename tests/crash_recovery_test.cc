// Crash recovery: a child `sibyl ingest` is killed with SIGKILL mid-stream; after a
// restart every acknowledged event is there exactly once and nothing half-written shows.
#include <fcntl.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <set>

#include "store/event_store.h"

namespace sibyl {
namespace {

constexpr int kEvents = 120'000;
constexpr int kCommitEvery = 1'000;

std::string MakeInput(const std::string& dir) {
  std::string path = dir + "/events.ndjson";
  std::ofstream out(path);
  for (int i = 0; i < kEvents; ++i) {
    out << R"({"user_id":"user-)" << (i % 977) << R"(","event_type":"Event )" << (i % 13)
        << R"(","time":)" << (1'700'000'000'000LL + i * 1000LL) << R"(,"insert_id":"ins-)" << i
        << R"(","event_properties":{"seq":)" << i << "}}\n";
  }
  return path;
}

// Runs `sibyl ingest` on `input`, kills it after `kill_after_acks` acknowledgements (or
// lets it finish when 0) and returns the last acknowledged count it printed.
uint64_t RunAndKill(const std::string& data, const std::string& input, int kill_after_acks) {
  int pipe_fds[2];
  EXPECT_EQ(pipe(pipe_fds), 0);
  pid_t pid = fork();
  if (pid == 0) {
    dup2(pipe_fds[1], STDOUT_FILENO);
    close(pipe_fds[0]);
    std::string binary = std::string(SIBYL_BINARY_DIR) + "/sibyl";
    std::string every = std::to_string(kCommitEvery);
    execl(binary.c_str(), binary.c_str(), "--data", data.c_str(), "--json", "--quiet", "ingest",
          input.c_str(), "--commit-every", every.c_str(), static_cast<char*>(nullptr));
    _exit(127);
  }
  close(pipe_fds[1]);
  FILE* out = fdopen(pipe_fds[0], "r");
  uint64_t acknowledged = 0;
  int acks = 0;
  char line[4096];
  bool killed = false;
  while (fgets(line, sizeof(line), out) != nullptr) {
    unsigned long long n;
    if (sscanf(line, "{\"acknowledged_events\":%llu}", &n) == 1) {
      acknowledged = n;
      if (kill_after_acks > 0 && ++acks == kill_after_acks && !killed) {
        kill(pid, SIGKILL);
        killed = true;
      }
    }
  }
  fclose(out);
  int status = 0;
  waitpid(pid, &status, 0);
  if (kill_after_acks == 0) {
    EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0);
  }
  return acknowledged;
}

std::set<double> SequenceNumbers(const std::string& data) {
  StoreOptions options;
  options.data_dir = data;
  options.read_only = true;
  auto store = EventStore::Open(options);
  EXPECT_TRUE(store.ok()) << store.status().ToString();
  auto snap = (*store)->Snapshot();
  std::set<double> seen;
  auto key = snap->property_keys().Find("seq");
  if (!key) return seen;
  ScanSpec spec;
  spec.property_keys = {*key};
  uint64_t rows = 0;
  EXPECT_TRUE(snap->Scan(spec, [&](const EventChunk& c) {
    rows += c.size;
    for (const auto& v : c.properties[0].values) EXPECT_TRUE(seen.insert(v.number).second) << "duplicate " << v.number;
    return Status::Ok();
  }).ok());
  EXPECT_EQ(rows, seen.size());
  return seen;
}

TEST(CrashRecoveryTest, AcknowledgedEventsSurviveKillNineExactlyOnce) {
  std::string tmpl = (std::filesystem::temp_directory_path() / "sibyl-crash-XXXXXX").string();
  std::string dir = mkdtemp(tmpl.data());
  std::string input = MakeInput(dir);
  std::string data = dir + "/data";
  uint64_t total_acknowledged = 0;
  for (int round = 0; round < 3; ++round) {
    uint64_t acknowledged = RunAndKill(data, input, 3 + round * 7);
    // The first round starts from nothing; later rounds re-send events already stored,
    // which de-duplication drops, so their acknowledgements count only new events.
    total_acknowledged += acknowledged;
    std::set<double> seen = SequenceNumbers(data);
    EXPECT_GE(seen.size(), total_acknowledged) << "round " << round;
    // Commits are whole: what is stored is a prefix of the file, ending on a commit.
    ASSERT_FALSE(seen.empty());
    EXPECT_EQ(*seen.rbegin() + 1, static_cast<double>(seen.size())) << "a gap: not a prefix";
    total_acknowledged = seen.size();
  }
  // Finally send everything again, to completion: each event exactly once.
  RunAndKill(data, input, 0);
  std::set<double> seen = SequenceNumbers(data);
  EXPECT_EQ(seen.size(), static_cast<size_t>(kEvents));
  std::filesystem::remove_all(dir);
}

}  // namespace
}  // namespace sibyl
