#include "sim/generator.h"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <cmath>
#include <condition_variable>
#include <cstring>
#include <iterator>
#include <memory>
#include <mutex>
#include <thread>

#include <fmt/format.h>

#include "common/time.h"
#include "sim/bgnbd_model.h"
#include "sim/catalogue.h"
#include "sim/ndjson_writer.h"
#include "sim/user_model.h"

namespace sibyl::sim {
namespace {

// Users per block. Fixed (not derived from the thread count) so that the output order,
// which is block by block, is the same for any number of threads.
constexpr uint64_t kBlockUsers = 256;

int64_t EndMs(const SimOptions& options) { return options.start_ms + int64_t{options.days} * kMsPerDay; }

// A file descriptor we write large buffers to; closes what it opened.
class OutputFile {
 public:
  static Result<std::unique_ptr<OutputFile>> Open(const std::string& path) {
    if (path == "-") return std::unique_ptr<OutputFile>(new OutputFile(path, STDOUT_FILENO, false));
    int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0) return IoError("cannot create {}: {}", path, std::strerror(errno));
    return std::unique_ptr<OutputFile>(new OutputFile(path, fd, true));
  }
  ~OutputFile() {
    if (owned_) ::close(fd_);
  }
  Status Write(std::string_view data) {
    while (!data.empty()) {
      ssize_t n = ::write(fd_, data.data(), data.size());
      if (n < 0) {
        if (errno == EINTR) continue;
        return IoError("cannot write {}: {}", path_ == "-" ? "stdout" : path_, std::strerror(errno));
      }
      data.remove_prefix(static_cast<size_t>(n));
    }
    return Status::Ok();
  }
  Status Close() {
    if (!owned_) return Status::Ok();
    owned_ = false;
    if (::close(fd_) != 0) return IoError("cannot close {}: {}", path_, std::strerror(errno));
    return Status::Ok();
  }

 private:
  OutputFile(std::string path, int fd, bool owned) : path_(std::move(path)), fd_(fd), owned_(owned) {}
  std::string path_;
  int fd_;
  bool owned_;
};

struct BlockOutput {
  std::string ndjson;
  std::string truth_csv;
  uint64_t users = 0, known_users = 0, events = 0, identifies = 0, anonymous = 0, truth_rows = 0;
  std::vector<UserHistory> histories;  // only when options.on_user is set
};

bool WantsTruth(const SimOptions& options) {
  return options.cutoff_ms >= 0 && (!options.truth_path.empty() || options.on_user);
}

std::unique_ptr<BlockOutput> SimulateBlock(const SimOptions& options, uint64_t block) {
  auto out = std::make_unique<BlockOutput>();
  const uint64_t first = block * kBlockUsers;
  const uint64_t last = std::min(options.users, first + kBlockUsers);
  const int64_t end_ms = EndMs(options);
  const bool truth = WantsTruth(options);

  std::vector<UserModel> users;
  users.reserve(last - first);
  std::vector<SimEvent> events;
  events.reserve((last - first) * 160);
  const bool bgnbd = options.regime == Regime::kBgNbd;
  for (uint64_t index = first; index < last; ++index) {
    Rng rng(options.seed, index);
    const size_t begin = events.size();
    BgNbdUser buyer;
    if (bgnbd) {
      buyer = SimulateBgNbdUser(options, index, rng, static_cast<uint32_t>(index - first), events);
      users.push_back(buyer.visible);
    } else {
      users.push_back(DrawUser(options, index, rng));
      SimulateUser(options, users.back(), rng, static_cast<uint32_t>(index - first), events);
    }
    const UserModel& user = users.back();
    if (user.signup_ms < end_ms) ++out->known_users;

    std::vector<SimEvent> own;
    if (truth || options.on_user) own.assign(events.begin() + static_cast<std::ptrdiff_t>(begin), events.end());
    std::vector<Truth> truths;
    if (truth && user.signup_ms < options.cutoff_ms) {
      for (int h : options.horizon_days) {
        truths.push_back(bgnbd ? ComputeBgNbdTruth(buyer, options.bgnbd, options.cutoff_ms, h)
                               : ComputeTruth(user, own, options.cutoff_ms, h));
      }
      if (!options.truth_path.empty()) {
        auto it = std::back_inserter(out->truth_csv);
        fmt::format_to(it, "{}", UserId(index));
        for (const Truth& t : truths) fmt::format_to(it, ",{:.6f},{:.6f}", t.purchase, t.churn);
        out->truth_csv.push_back('\n');
        ++out->truth_rows;
      }
    }
    if (options.on_user) {
      UserHistory history;
      history.index = index;
      history.signup_ms = user.signup_ms;
      history.churn_ms = user.churn_ms;
      history.platform = user.platform;
      history.country = user.country;
      history.favourite_category = user.favourite_category;
      history.events = std::move(own);
      history.truth = std::move(truths);
      history.purchase_rate_per_day = buyer.lambda;
      history.dropout_probability = buyer.dropout;
      out->histories.push_back(std::move(history));
    }
  }
  out->users = last - first;

  // The file is ordered by block, then by time within the block.
  std::sort(events.begin(), events.end(), [](const SimEvent& a, const SimEvent& b) {
    if (a.time_ms != b.time_ms) return a.time_ms < b.time_ms;
    if (a.user_slot != b.user_slot) return a.user_slot < b.user_slot;
    return a.seq < b.seq;
  });
  for (const SimEvent& e : events) {
    if (e.flags & kIdentifyLine) ++out->identifies;
    if (e.flags & kAnonymousEvent) ++out->anonymous;
  }
  out->events = events.size();
  if (!options.out_path.empty()) {
    std::vector<UserLineContext> contexts;
    contexts.reserve(users.size());
    for (const UserModel& user : users) contexts.push_back(MakeLineContext(user));
    out->ndjson.reserve(events.size() * 400 + 4096);
    for (const SimEvent& e : events) AppendEventLine(contexts[e.user_slot], e, out->ndjson);
  }
  return out;
}

}  // namespace

std::string UserId(uint64_t index) { return fmt::format("u{:08}", index); }

const char* RegimeName(Regime regime) { return regime == Regime::kBgNbd ? "bgnbd" : "app"; }

Status ValidateOptions(const SimOptions& o) {
  if (o.users == 0) return InvalidArgument("--users must be at least 1");
  if (o.users > 1'000'000'000) return InvalidArgument("--users must be at most 1000000000, got {}", o.users);
  if (o.days < 1 || o.days > 3650) return InvalidArgument("--days must be between 1 and 3650, got {}", o.days);
  if (o.start_ms < 0) return InvalidArgument("--start must not be before 1970");
  if (o.threads < 0) return InvalidArgument("--threads must not be negative");
  if (o.regime == Regime::kBgNbd) {
    const BgNbdRegime& m = o.bgnbd;
    for (double v : {m.r, m.alpha, m.a, m.b}) {
      if (!(v > 0) || !std::isfinite(v)) {
        return InvalidArgument("--bgnbd r,alpha,a,b must all be positive and finite, got {},{},{},{}", m.r, m.alpha,
                               m.a, m.b);
      }
    }
    for (double v : {m.spend_p, m.spend_q, m.spend_v}) {
      if (!(v > 0) || !std::isfinite(v)) {
        return InvalidArgument("--gamma-gamma p,q,v must all be positive and finite, got {},{},{}", m.spend_p,
                               m.spend_q, m.spend_v);
      }
    }
    if (!(m.acquisition_share > 0 && m.acquisition_share <= 1)) {
      return InvalidArgument("the acquisition share must be in (0, 1], got {}", m.acquisition_share);
    }
    if (!(m.seasonal_amplitude >= 0 && m.seasonal_amplitude < 1) || !std::isfinite(m.seasonal_peak_day)) {
      return InvalidArgument("--seasonality amplitude must be in [0, 1) and the peak day finite, got {},{}",
                             m.seasonal_amplitude, m.seasonal_peak_day);
    }
  }
  const int64_t end = EndMs(o);
  if (!o.truth_path.empty() && o.cutoff_ms < 0) return InvalidArgument("--truth needs --cutoff");
  if (o.cutoff_ms >= 0) {
    if (o.cutoff_ms <= o.start_ms || o.cutoff_ms >= end) {
      return InvalidArgument("--cutoff {} is outside the simulated span ({} to {})", FormatTime(o.cutoff_ms),
                             FormatTime(o.start_ms), FormatTime(end));
    }
    if (o.horizon_days.empty()) return InvalidArgument("--cutoff needs at least one --horizon-days");
    for (int h : o.horizon_days) {
      if (h < 1 || h > 365) return InvalidArgument("--horizon-days must be between 1 and 365, got {}", h);
      if (o.cutoff_ms + h * kMsPerDay > end) {
        return InvalidArgument("--cutoff {} plus {} days is past the end of the simulated span ({}); "
                               "use more --days or an earlier --cutoff",
                               FormatTime(o.cutoff_ms), h, FormatTime(end));
      }
    }
  } else if (!o.horizon_days.empty()) {
    return InvalidArgument("--horizon-days needs --cutoff");
  }
  return Status::Ok();
}

Result<SimSummary> Generate(const SimOptions& options) {
  RETURN_IF_ERROR(ValidateOptions(options));
  const auto started = std::chrono::steady_clock::now();
  std::unique_ptr<OutputFile> out, truth_out;
  if (!options.out_path.empty()) {
    ASSIGN_OR_RETURN(out, OutputFile::Open(options.out_path));
  }
  if (!options.truth_path.empty()) {
    ASSIGN_OR_RETURN(truth_out, OutputFile::Open(options.truth_path));
    std::string header = "user_id";
    for (int h : options.horizon_days) header += fmt::format(",purchase_{}d,churn_{}d", h, h);
    header += '\n';
    RETURN_IF_ERROR(truth_out->Write(header));
  }

  const uint64_t blocks = (options.users + kBlockUsers - 1) / kBlockUsers;
  int threads = options.threads > 0 ? options.threads : static_cast<int>(std::thread::hardware_concurrency());
  threads = std::max(1, std::min<int>(threads, static_cast<int>(std::min<uint64_t>(blocks, 256))));
  // Blocks simulated ahead of the writer are bounded so memory stays small.
  const uint64_t window = static_cast<uint64_t>(threads) * 2 + 2;

  std::mutex mu;
  std::condition_variable cv;
  std::vector<std::unique_ptr<BlockOutput>> done(blocks);
  uint64_t next_block = 0, written = 0;
  bool abort = false;

  auto worker = [&] {
    while (true) {
      uint64_t block;
      {
        std::unique_lock lock(mu);
        cv.wait(lock, [&] { return abort || next_block >= blocks || next_block < written + window; });
        if (abort || next_block >= blocks) return;
        block = next_block++;
      }
      auto result = SimulateBlock(options, block);
      {
        std::lock_guard lock(mu);
        done[block] = std::move(result);
      }
      cv.notify_all();
    }
  };
  std::vector<std::thread> pool;
  for (int i = 0; i < threads; ++i) pool.emplace_back(worker);

  SimSummary summary;
  Status status;
  for (uint64_t block = 0; block < blocks && status.ok(); ++block) {
    std::unique_ptr<BlockOutput> output;
    {
      std::unique_lock lock(mu);
      cv.wait(lock, [&] { return done[block] != nullptr; });
      output = std::move(done[block]);
    }
    if (out) status = out->Write(output->ndjson);
    if (status.ok() && truth_out) status = truth_out->Write(output->truth_csv);
    summary.users += output->users;
    summary.known_users += output->known_users;
    summary.events += output->events;
    summary.identifies += output->identifies;
    summary.anonymous_events += output->anonymous;
    summary.bytes += output->ndjson.size();
    summary.truth_rows += output->truth_rows;
    if (options.on_user) {
      for (const UserHistory& history : output->histories) options.on_user(history);
    }
    output.reset();
    {
      std::lock_guard lock(mu);
      written = block + 1;
      if (!status.ok()) abort = true;
    }
    cv.notify_all();
    if (options.on_progress) options.on_progress(summary.users, summary.events);
  }
  for (std::thread& t : pool) t.join();
  RETURN_IF_ERROR(status);
  if (out) RETURN_IF_ERROR(out->Close());
  if (truth_out) RETURN_IF_ERROR(truth_out->Close());

  summary.first_time_ms = options.start_ms;
  summary.end_time_ms = EndMs(options);
  summary.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
  return summary;
}

}  // namespace sibyl::sim
