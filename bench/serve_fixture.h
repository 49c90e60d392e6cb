// What the HTTP benchmarks (serve_bench, abuse_bench) share: a simulated store on disk, a
// trained and scored prediction behind a running server (created through the API and left
// to the scheduler, as a user would), Amplitude /batch bodies and latency percentiles.
#pragma once

#include <httplib.h>

#include <cstdint>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "common/status.h"

namespace sibyl::bench {

inline const std::string kAdminKey = "bench-admin-key-0123";
inline const std::string kIngestKey = "bench-ingest-key-0123";

// Simulates `users` over `days` (seed 7) into DIR/events.ndjson and ingests them into a
// checkpointed store at DIR/data, closed on return.
Status GenerateStore(const std::string& dir, uint64_t users, int days);

// An Amplitude `POST /batch` body of 1,000 events for ingest client `client`'s `request`-th
// request: insert_ids unique per (client, request), so nothing is dropped as a duplicate;
// 5,000 users per client, 20 event types, two properties; times from `base_time` on.
std::string BatchBody(int client, int64_t request, int64_t base_time);

// The answer's JSON; null when there was no answer, discarded when it is not JSON.
nlohmann::json GetJson(httplib::Client& client, const std::string& path);

// Polls a scheduler run until it ends; true when it succeeded.
bool WaitRun(httplib::Client& admin, uint64_t id, int seconds);

struct ScoredPrediction {
  std::string name = "purchase_7d";
  std::vector<std::string> user_ids;  // the scored cohort (real-time score targets)
  int64_t cutoff_ms = 0;              // of the first full scoring run
};

// Creates purchase_7d (propensity to Purchase within 7 days, users active in 30 days) and
// waits for the scheduler's first training and full scoring run (up to 10 minutes).
Result<ScoredPrediction> CreateScoredPrediction(httplib::Client& admin);

// The q-quantile (0..1) of `v` by rank; 0 for an empty sample.
double Percentile(std::vector<double> v, double q);

}  // namespace sibyl::bench
