// Process metrics rendered in the Prometheus text format (GET /metrics): counters,
// histograms and gauges read at scrape time. Names and meanings: docs/SERVER.md.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <mutex>
#include <string>
#include <vector>

namespace sibyl::server {

class Metrics {
 public:
  // Declares a metric family (its # HELP line). Undeclared names are rendered untyped.
  void DescribeCounter(const std::string& name, const std::string& help);
  void DescribeHistogram(const std::string& name, const std::string& help, std::vector<double> bucket_bounds);
  // A gauge whose value `read` returns at scrape time.
  void AddGauge(const std::string& name, const std::string& help, std::function<double()> read);

  // `labels` is Prometheus label text without braces: `endpoint="/batch",code="200"`.
  void Add(const std::string& name, const std::string& labels, double value = 1);
  void Observe(const std::string& name, const std::string& labels, double value);

  // A counter's current value (tests, logs); 0 when never added.
  double CounterValue(const std::string& name, const std::string& labels) const;

  std::string RenderPrometheus() const;

 private:
  struct Histogram {
    std::vector<uint64_t> counts;  // per bucket bound, not cumulative
    uint64_t count = 0;
    double sum = 0;
  };
  struct Family {
    std::string help;
    std::string type;  // counter, histogram
    std::vector<double> bounds;
    std::map<std::string, double> counters;       // by labels
    std::map<std::string, Histogram> histograms;  // by labels
  };
  struct Gauge {
    std::string name, help;
    std::function<double()> read;
  };
  mutable std::mutex mutex_;
  std::map<std::string, Family> families_;
  std::vector<Gauge> gauges_;
};

// Latency buckets in seconds, 0.5 ms to 10 s.
std::vector<double> LatencyBuckets();
// Run duration buckets in seconds, 0.1 s to 1 h.
std::vector<double> RunDurationBuckets();

}  // namespace sibyl::server
