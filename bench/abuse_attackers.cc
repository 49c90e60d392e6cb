#include "abuse_attackers.h"

#include <arpa/inet.h>
#include <httplib.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>
#include <zlib.h>

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <utility>

namespace sibyl::bench {

using Steady = std::chrono::steady_clock;

ConnectionHolder::ConnectionHolder(HolderOptions options) : options_(std::move(options)) {
  for (int i = 0; i < options_.idle; ++i) slots_.push_back({Slot::kIdle});
  for (int i = 0; i < options_.slowloris; ++i) slots_.push_back({i % 2 ? Slot::kSlowBody : Slot::kSlowHeader});
}

ConnectionHolder::~ConnectionHolder() { Stop(); }

void ConnectionHolder::Start() {
  epoll_ = epoll_create1(EPOLL_CLOEXEC);
  thread_ = std::thread([this] { Run(); });
}

void ConnectionHolder::Stop() {
  stop_ = true;
  if (thread_.joinable()) thread_.join();
  for (Slot& slot : slots_)
    if (slot.fd >= 0) {
      close(slot.fd);
      slot.fd = -1;
    }
  if (epoll_ >= 0) close(epoll_);
  epoll_ = -1;
  std::lock_guard lock(mutex_);
  stats_.idle_open = stats_.slowloris_open = 0;
}

HolderStats ConnectionHolder::Stats() const {
  std::lock_guard lock(mutex_);
  return stats_;
}

void ConnectionHolder::Open(Slot& slot, Steady::time_point now) {
  slot.next = now + options_.reopen_after;
  const int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_port = htons(static_cast<uint16_t>(options_.port));
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  // A blocking connect on loopback completes in the kernel (the listen backlog), whether
  // or not the server has accepted yet.
  if (fd < 0 || connect(fd, reinterpret_cast<sockaddr*>(&address), sizeof address) != 0) {
    if (fd >= 0) close(fd);
    std::lock_guard lock(mutex_);
    ++stats_.connect_errors;
    return;
  }
  const int one = 1;
  setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  epoll_event event{};
  event.events = EPOLLIN | EPOLLRDHUP;
  event.data.ptr = &slot;
  epoll_ctl(epoll_, EPOLL_CTL_ADD, fd, &event);
  slot.fd = fd;
  slot.sent = 0;
  slot.answered = false;
  slot.next = now + options_.trickle;
  std::string first;
  if (slot.kind == Slot::kSlowHeader) {
    first = "POST " + options_.slow_path + " HTTP/1.1\r\nHost: 127.0.0.1\r\n";
  } else if (slot.kind == Slot::kSlowBody) {
    first = "POST " + options_.slow_path + " HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
            "Content-Length: " + std::to_string(options_.slow_body_bytes) + "\r\n\r\n{";
  }
  if (!first.empty()) send(fd, first.data(), first.size(), MSG_NOSIGNAL);
  std::lock_guard lock(mutex_);
  ++stats_.opened;
  ++(slot.kind == Slot::kIdle ? stats_.idle_open : stats_.slowloris_open);
}

void ConnectionHolder::Drop(Slot& slot, Steady::time_point now) {
  epoll_ctl(epoll_, EPOLL_CTL_DEL, slot.fd, nullptr);
  close(slot.fd);
  slot.fd = -1;
  // Cut by a deadline: back at once, as an attacker would be. Refused: after a pause, so
  // a full server is not answered in a tight loop.
  slot.next = slot.answered ? now + options_.reopen_after : now;
  std::lock_guard lock(mutex_);
  if (!slot.answered) ++stats_.closed_by_server;
  --(slot.kind == Slot::kIdle ? stats_.idle_open : stats_.slowloris_open);
}

void ConnectionHolder::Run() {
  std::vector<epoll_event> events(256);
  char buffer[4096];
  int header = 0;
  while (!stop_) {
    const int n = epoll_wait(epoll_, events.data(), static_cast<int>(events.size()), 20);
    auto now = Steady::now();
    for (int i = 0; i < n; ++i) {
      Slot& slot = *static_cast<Slot*>(events[i].data.ptr);
      if (slot.fd < 0) continue;
      const ssize_t got = recv(slot.fd, buffer, sizeof buffer - 1, MSG_DONTWAIT);
      if (got > 0) {
        buffer[got] = 0;
        // An answer ("HTTP/1.1 503 ..."): counted once; the server closes after it.
        if (!slot.answered && std::strncmp(buffer, "HTTP/1.", 7) == 0 && got > 12) {
          slot.answered = true;
          std::lock_guard lock(mutex_);
          ++stats_.answers[std::atoi(buffer + 9)];
        }
        if (!(events[i].events & (EPOLLRDHUP | EPOLLHUP | EPOLLERR))) continue;
      } else if (got < 0 && errno == EAGAIN) {
        continue;
      }
      Drop(slot, now);
    }
    now = Steady::now();
    for (Slot& slot : slots_) {
      if (stop_) break;
      if (slot.next > now) continue;
      if (slot.fd < 0) {
        Open(slot, now);
        continue;
      }
      if (slot.kind == Slot::kIdle) {
        slot.next = Steady::time_point::max();
        continue;
      }
      std::string piece =
          slot.kind == Slot::kSlowHeader ? "X-Slow-" + std::to_string(header++) + ": 1\r\n" : std::string(" ");
      if (send(slot.fd, piece.data(), piece.size(), MSG_NOSIGNAL) < 0) {
        Drop(slot, now);
        continue;
      }
      slot.sent += piece.size();
      slot.next = now + options_.trickle;
    }
  }
}

std::string MakeGzipBomb(uint64_t inflated_bytes) {
  z_stream z{};
  deflateInit2(&z, 9, Z_DEFLATED, 15 + 16, 9, Z_DEFAULT_STRATEGY);  // 15 + 16: a gzip wrapper
  const std::string zeros(1 << 20, '\0');
  std::string out;
  char buffer[1 << 16];
  for (uint64_t done = 0; done < inflated_bytes;) {
    const uint64_t n = std::min<uint64_t>(zeros.size(), inflated_bytes - done);
    done += n;
    z.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(zeros.data()));
    z.avail_in = static_cast<uInt>(n);
    const int flush = done == inflated_bytes ? Z_FINISH : Z_NO_FLUSH;
    do {
      z.next_out = reinterpret_cast<Bytef*>(buffer);
      z.avail_out = sizeof buffer;
      deflate(&z, flush);
      out.append(buffer, sizeof buffer - z.avail_out);
    } while (z.avail_out == 0 || (flush == Z_FINISH && z.avail_in > 0));
  }
  deflateEnd(&z);
  return out;
}

Bomber::Bomber(int port, const std::string& bomb, std::vector<std::string> paths, double per_second)
    : port_(port), bomb_(bomb), paths_(std::move(paths)), per_second_(per_second) {}

Bomber::~Bomber() { Stop(); }

void Bomber::Start() {
  stop_ = false;
  thread_ = std::thread([this] { Run(); });
}

void Bomber::Stop() {
  stop_ = true;
  if (thread_.joinable()) thread_.join();
}

std::vector<BombResult> Bomber::Take() {
  std::lock_guard lock(mutex_);
  return std::exchange(results_, {});
}

void Bomber::Run() {
  const auto interval = std::chrono::duration_cast<Steady::duration>(std::chrono::duration<double>(1.0 / per_second_));
  auto next = Steady::now();
  for (size_t i = 0; !stop_; ++i) {
    std::this_thread::sleep_until(next);
    next += interval;
    // A fresh connection each time: the server closes after refusing a body.
    httplib::Client client("127.0.0.1", port_);
    client.set_read_timeout(60);
    client.set_write_timeout(60);
    const std::string& path = paths_[i % paths_.size()];
    const auto sent = Steady::now();
    auto r = client.Post(path, httplib::Headers{{"Content-Encoding", "gzip"}}, bomb_.data(), bomb_.size(),
                         "application/json");
    BombResult result{path, r ? r->status : 0,
                      std::chrono::duration<double, std::milli>(Steady::now() - sent).count()};
    std::lock_guard lock(mutex_);
    results_.push_back(std::move(result));
  }
}

}  // namespace sibyl::bench
