#include "server_process.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <cstring>
#include <fstream>

#include <nlohmann/json.hpp>

#include "serve_fixture.h"

extern char** environ;

namespace sibyl::bench {
namespace {

constexpr size_t kLogLines = 40;

uint64_t StatusKilobytes(const std::string& text, const char* field) {
  const size_t at = text.find(field);
  if (at == std::string::npos) return 0;
  return std::strtoull(text.c_str() + at + std::strlen(field), nullptr, 10);
}

}  // namespace

Result<std::unique_ptr<ServerProcess>> ServerProcess::Start(const std::string& binary, const std::string& data_dir,
                                                            const std::vector<std::string>& args,
                                                            const std::string& log_path) {
  std::vector<std::string> argv_strings = {binary, "--data", data_dir, "--quiet", "serve", "--port", "0"};
  if (log_path.empty()) argv_strings.push_back("--no-request-log");
  argv_strings.insert(argv_strings.end(), args.begin(), args.end());
  std::vector<char*> argv;
  for (auto& a : argv_strings) argv.push_back(a.data());
  argv.push_back(nullptr);
  std::vector<std::string> env_strings = {"SIBYL_ADMIN_KEY=" + kAdminKey, "SIBYL_INGEST_KEYS=" + kIngestKey};
  for (char** e = environ; *e; ++e)
    if (std::strncmp(*e, "SIBYL_", 6) != 0) env_strings.emplace_back(*e);
  std::vector<char*> envp;
  for (auto& e : env_strings) envp.push_back(e.data());
  envp.push_back(nullptr);

  int pipe_fds[2];
  if (pipe2(pipe_fds, O_CLOEXEC) != 0) return IoError("pipe: {}", std::strerror(errno));
  std::unique_ptr<ServerProcess> p(new ServerProcess());
  const int dev_null = open("/dev/null", O_WRONLY | O_CLOEXEC);
  const pid_t parent = getpid();
  p->pid_ = fork();
  if (p->pid_ == 0) {
    // Only async-signal-safe calls until exec. The server dies with the bench (killed or
    // crashed), never left holding its port and data directory.
    prctl(PR_SET_PDEATHSIG, SIGTERM);
    if (getppid() != parent) _exit(127);
    dup2(pipe_fds[1], STDERR_FILENO);
    if (dev_null >= 0) dup2(dev_null, STDOUT_FILENO);
    execve(binary.c_str(), argv.data(), envp.data());
    _exit(127);
  }
  const int spawned = p->pid_ < 0 ? errno : 0;
  if (dev_null >= 0) close(dev_null);
  close(pipe_fds[1]);
  if (spawned != 0) {
    close(pipe_fds[0]);
    return IoError("cannot run {}: {}", binary, std::strerror(spawned));
  }
  // The log is read to its end, always: a full pipe would block the server's logging.
  p->log_reader_ = std::thread([raw = p.get(), fd = pipe_fds[0], log_path] { raw->ReadLog(fd, log_path); });
  for (int i = 0; i < 6000; ++i) {
    {
      std::lock_guard lock(p->mutex_);
      if (p->port_) return p;
    }
    if (!p->Alive()) return Internal("{} exited before it started:\n{}", binary, p->LastLog());
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  return Internal("{} did not start within 60 s:\n{}", binary, p->LastLog());
}

void ServerProcess::ReadLog(int fd, const std::string& log_path) {
  FILE* in = fdopen(fd, "r");
  FILE* copy = log_path.empty() ? nullptr : std::fopen(log_path.c_str(), "w");
  char* line = nullptr;
  size_t capacity = 0;
  ssize_t n;
  while ((n = getline(&line, &capacity, in)) > 0) {
    std::string text(line, static_cast<size_t>(n));
    if (copy) std::fwrite(line, 1, static_cast<size_t>(n), copy);
    std::lock_guard lock(mutex_);
    if (!port_ && text.find("\"started\"") != std::string::npos) {
      auto j = nlohmann::json::parse(text, nullptr, false);
      if (j.is_object() && j.value("event", "") == "started") port_ = j.value("port", 0);
    }
    log_.push_back(std::move(text));
    if (log_.size() > kLogLines) log_.pop_front();
  }
  free(line);
  fclose(in);
  if (copy) std::fclose(copy);
}

ServerProcess::~ServerProcess() { Stop(); }

bool ServerProcess::Reap(bool block) {
  if (wait_status_) return true;
  int status = 0;
  if (waitpid(pid_, &status, block ? 0 : WNOHANG) != pid_) return false;
  wait_status_ = status;
  return true;
}

bool ServerProcess::Alive() { return pid_ > 0 && !Reap(false); }

ServerProcess::Memory ServerProcess::ReadMemory() const {
  std::ifstream in("/proc/" + std::to_string(pid_) + "/status");
  const std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  return {StatusKilobytes(text, "VmRSS:") * 1024, StatusKilobytes(text, "VmHWM:") * 1024};
}

bool ServerProcess::ResetPeak() const {
  std::ofstream out("/proc/" + std::to_string(pid_) + "/clear_refs");
  out << "5";
  out.flush();
  return static_cast<bool>(out);
}

std::string ServerProcess::Stop(int grace_seconds) {
  if (pid_ <= 0) return "not started";
  if (!Reap(false)) {
    kill(pid_, SIGTERM);
    for (int i = 0; i < grace_seconds * 100 && !Reap(false); ++i)
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    if (!Reap(false)) {
      kill(pid_, SIGKILL);
      Reap(true);
    }
  }
  if (log_reader_.joinable()) log_reader_.join();
  const int status = *wait_status_;
  return WIFSIGNALED(status) ? "signal " + std::to_string(WTERMSIG(status))
                             : "exit " + std::to_string(WEXITSTATUS(status));
}

std::string ServerProcess::LastLog() const {
  std::lock_guard lock(mutex_);
  std::string text;
  for (const auto& line : log_) text += line;
  return text;
}

}  // namespace sibyl::bench
