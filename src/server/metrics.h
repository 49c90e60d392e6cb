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
  // A counter kept by another component (it only rises), read at scrape time.
  void AddCounterFunc(const std::string& name, const std::string& help, std::function<double()> read);
  // Samples of one family read at scrape time: (labels, value) pairs; `type` "gauge" or
  // "counter".
  using Samples = std::vector<std::pair<std::string, double>>;
  void AddSampled(const std::string& name, const std::string& help, const std::string& type,
                  std::function<Samples()> read);

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
    std::string name, help, type;
    std::function<Samples()> read;
  };
  mutable std::mutex mutex_;
  std::map<std::string, Family> families_;
  std::vector<Gauge> gauges_;
};

// Latency buckets in seconds, 0.5 ms to 10 s.
std::vector<double> LatencyBuckets();
// Run duration buckets in seconds, 0.1 s to 1 h.
std::vector<double> RunDurationBuckets();

// This process as Prometheus' process collector reports it (from /proc/self); fields are
// -1 when unreadable.
struct ProcessStats {
  double resident_memory_bytes = -1;
  double cpu_seconds = -1;  // user + system
  double open_fds = -1;
  double start_time_seconds = -1;  // since the Unix epoch
};
ProcessStats ReadProcessStats();
// Registers process_resident_memory_bytes, process_cpu_seconds_total, process_open_fds and
// process_start_time_seconds.
void AddProcessMetrics(Metrics& metrics);

}  // namespace sibyl::server
