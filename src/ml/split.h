// Deterministic user-level sampling and splitting. Which slice a row lands in is a pure
// function of its user key, the seed and the set of users, so reruns on the same data
// split identically and a user never appears on two sides.
#pragma once

#include <cstdint>
#include <vector>

#include "common/status.h"
#include "ml/dataset.h"

namespace sibyl::ml {

struct SplitOptions {
  uint64_t seed = 42;
  // Share of users held out for the reported metrics (and for choosing the winner).
  double test_fraction = 0.2;
  // Share of the remaining (training-side) users kept away from model fitting: they
  // drive early stopping and fit the isotonic calibration.
  double validation_fraction = 0.2;
  // At most this many users take part at all (the article's 5 million cap). Users are
  // kept in order of a seeded hash of their key, so the sample is deterministic.
  uint64_t max_users = 5'000'000;
};

// Row indices (ascending) of each slice.
struct Split {
  std::vector<uint32_t> fit_rows;         // the model learns from these
  std::vector<uint32_t> validation_rows;  // early stopping + calibration fitting
  std::vector<uint32_t> test_rows;        // held-out users: metrics and selection only
  uint64_t num_users = 0;                 // distinct users before the cap
  uint64_t num_users_sampled_out = 0;     // dropped by max_users
};

// Splits users stratified by whether they have any positive label (for regression: any
// label > 0). Within each stratum users are ordered by a seeded 64-bit hash of the key;
// the first round(test_fraction * n) go to test, the next round(validation_fraction *
// rest) to validation, the rest to fit.
Result<Split> SplitByUser(const Dataset& data, const SplitOptions& options);

// A well-mixed 64-bit hash (SplitMix64 finaliser) of `key` salted with `salt`.
uint64_t MixHash(uint64_t key, uint64_t salt);

}  // namespace sibyl::ml
