#include "server/metrics.h"

#include <algorithm>
#include <cmath>

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
  std::lock_guard lock(mutex_);
  gauges_.push_back({name, help, std::move(read)});
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
  std::vector<std::pair<const Gauge*, double>> gauge_values;
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
    for (const Gauge& g : gauges_) gauge_values.emplace_back(&g, 0.0);
  }
  // Gauges read other components' state: outside our lock.
  for (auto& [g, v] : gauge_values) {
    v = g->read();
    out += fmt::format("# HELP {} {}\n# TYPE {} gauge\n{} {}\n", g->name, g->help, g->name, g->name, Number(v));
  }
  return out;
}

std::vector<double> LatencyBuckets() {
  return {0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10};
}

std::vector<double> RunDurationBuckets() { return {0.1, 0.5, 1, 5, 10, 30, 60, 300, 900, 3600}; }

}  // namespace sibyl::server
