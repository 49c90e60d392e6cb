#include "server/metrics.h"

#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <limits>
#include <sstream>

#include <fmt/format.h>

namespace sibyl::server {
namespace {

std::string Braced(const std::string& labels) { return labels.empty() ? "" : "{" + labels + "}"; }

std::string WithLabel(const std::string& labels, const std::string& extra) {
  return "{" + (labels.empty() ? extra : labels + "," + extra) + "}";
}

std::string Number(double v) {
  if (std::isinf(v)) return v > 0 ? "+Inf" : "-Inf";
  if (v == std::floor(v) && std::fabs(v) < 1e15) return fmt::format("{}", static_cast<int64_t>(v));
  return fmt::format("{}", v);
}

}  // namespace

void Metrics::DescribeCounter(const std::string& name, const std::string& help) {
  std::lock_guard lock(mutex_);
  Family& f = families_[name];
  f.help = help;
  f.type = "counter";
}

void Metrics::DescribeHistogram(const std::string& name, const std::string& help, std::vector<double> bounds) {
  std::lock_guard lock(mutex_);
  Family& f = families_[name];
  f.help = help;
  f.type = "histogram";
  std::sort(bounds.begin(), bounds.end());
  f.bounds = std::move(bounds);
}

void Metrics::AddGauge(const std::string& name, const std::string& help, std::function<double()> read) {
  AddSampled(name, help, "gauge", [read = std::move(read)] { return Samples{{"", read()}}; });
}

void Metrics::AddCounterFunc(const std::string& name, const std::string& help, std::function<double()> read) {
  AddSampled(name, help, "counter", [read = std::move(read)] { return Samples{{"", read()}}; });
}

void Metrics::AddSampled(const std::string& name, const std::string& help, const std::string& type,
                         std::function<Samples()> read) {
  std::lock_guard lock(mutex_);
  gauges_.push_back({name, help, type, std::move(read)});
}

void Metrics::Add(const std::string& name, const std::string& labels, double value) {
  std::lock_guard lock(mutex_);
  Family& f = families_[name];
  if (f.type.empty()) f.type = "counter";
  f.counters[labels] += value;
}

void Metrics::Observe(const std::string& name, const std::string& labels, double value) {
  std::lock_guard lock(mutex_);
  Family& f = families_[name];
  if (f.type.empty()) {
    f.type = "histogram";
    f.bounds = LatencyBuckets();
  }
  Histogram& h = f.histograms[labels];
  if (h.counts.empty()) h.counts.assign(f.bounds.size(), 0);
  auto it = std::lower_bound(f.bounds.begin(), f.bounds.end(), value);
  if (it != f.bounds.end()) ++h.counts[it - f.bounds.begin()];
  ++h.count;
  h.sum += value;
}

double Metrics::CounterValue(const std::string& name, const std::string& labels) const {
  std::lock_guard lock(mutex_);
  auto f = families_.find(name);
  if (f == families_.end()) return 0;
  auto c = f->second.counters.find(labels);
  return c == f->second.counters.end() ? 0 : c->second;
}

std::string Metrics::RenderPrometheus() const {
  std::vector<const Gauge*> sampled;
  std::string out;
  {
    std::lock_guard lock(mutex_);
    for (const auto& [name, f] : families_) {
      if (!f.help.empty()) out += fmt::format("# HELP {} {}\n", name, f.help);
      out += fmt::format("# TYPE {} {}\n", name, f.type);
      if (f.type == "counter") {
        for (const auto& [labels, v] : f.counters) out += fmt::format("{}{} {}\n", name, Braced(labels), Number(v));
        continue;
      }
      for (const auto& [labels, h] : f.histograms) {
        uint64_t cumulative = 0;
        for (size_t i = 0; i < f.bounds.size(); ++i) {
          cumulative += h.counts[i];
          out += fmt::format("{}_bucket{} {}\n", name, WithLabel(labels, fmt::format("le=\"{}\"", Number(f.bounds[i]))),
                             cumulative);
        }
        out += fmt::format("{}_bucket{} {}\n", name, WithLabel(labels, "le=\"+Inf\""), h.count);
        out += fmt::format("{}_sum{} {}\n", name, Braced(labels), Number(h.sum));
        out += fmt::format("{}_count{} {}\n", name, Braced(labels), h.count);
      }
    }
    for (const Gauge& g : gauges_) sampled.push_back(&g);
  }
  // Sampled families read other components' state: outside our lock.
  for (const Gauge* g : sampled) {
    out += fmt::format("# HELP {} {}\n# TYPE {} {}\n", g->name, g->help, g->name, g->type);
    for (const auto& [labels, v] : g->read()) out += fmt::format("{}{} {}\n", g->name, Braced(labels), Number(v));
  }
  return out;
}

std::vector<double> LatencyBuckets() {
  return {0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10};
}

std::vector<double> RunDurationBuckets() { return {0.1, 0.5, 1, 5, 10, 30, 60, 300, 900, 3600}; }

ProcessStats ReadProcessStats() {
  ProcessStats p;
  const double ticks = static_cast<double>(sysconf(_SC_CLK_TCK));
  const double page = static_cast<double>(sysconf(_SC_PAGESIZE));
  if (std::ifstream statm("/proc/self/statm"); statm) {
    double size = 0, resident = 0;
    if (statm >> size >> resident) p.resident_memory_bytes = resident * page;
  }
  if (std::ifstream stat_file("/proc/self/stat"); stat_file) {
    std::string text((std::istreambuf_iterator<char>(stat_file)), std::istreambuf_iterator<char>());
    // Fields after the command name, which is in parentheses and may hold spaces.
    const size_t close = text.rfind(')');
    if (close != std::string::npos) {
      std::istringstream fields(text.substr(close + 2));
      std::vector<std::string> f{std::istream_iterator<std::string>(fields), std::istream_iterator<std::string>()};
      // f[0] is field 3 (state): utime is field 14, stime 15, starttime 22.
      if (f.size() > 19) {
        p.cpu_seconds = (std::stod(f[11]) + std::stod(f[12])) / ticks;
        std::ifstream proc_stat("/proc/stat");
        std::string key;
        double boot = -1;
        while (proc_stat >> key) {
          if (key == "btime") {
            proc_stat >> boot;
            break;
          }
          proc_stat.ignore(std::numeric_limits<std::streamsize>::max(), '\n');
        }
        if (boot >= 0) p.start_time_seconds = boot + std::stod(f[19]) / ticks;
      }
    }
  }
  std::error_code ec;
  double fds = 0;
  for (auto it = std::filesystem::directory_iterator("/proc/self/fd", ec); !ec && it != std::filesystem::directory_iterator();
       it.increment(ec))
    ++fds;
  if (!ec) p.open_fds = fds - 1;  // less the directory iterator's own descriptor
  return p;
}

void AddProcessMetrics(Metrics& metrics) {
  metrics.AddGauge("process_resident_memory_bytes", "resident memory size in bytes",
                   [] { return ReadProcessStats().resident_memory_bytes; });
  metrics.AddCounterFunc("process_cpu_seconds_total", "user and system CPU time spent in seconds",
                         [] { return ReadProcessStats().cpu_seconds; });
  metrics.AddGauge("process_open_fds", "open file descriptors", [] { return ReadProcessStats().open_fds; });
  metrics.AddGauge("process_start_time_seconds", "start time of the process since the Unix epoch in seconds",
                   [] { return ReadProcessStats().start_time_seconds; });
}

}  // namespace sibyl::server
