// The bgnbd regime of `sibyl generate --regime bgnbd`: every user follows a known BG/NBD
// purchase process (Fader, Hardie & Lee 2005) with Gamma-Gamma spend, so the classic
// model is the right one and its fit can be checked against the truth
// (docs/SIMULATOR.md, "The bgnbd regime").
#pragma once

#include <cstdint>
#include <vector>

#include "sim/generator.h"
#include "sim/rng.h"
#include "sim/user_model.h"

namespace sibyl::sim {

struct BgNbdUser {
  // Visible attributes for the writer (platform, country, device), signup_ms = the first
  // purchase and churn_ms = the dropout time (INT64_MAX: alive at the end).
  UserModel visible;
  double lambda = 0;      // purchases per day while alive
  double dropout = 0;     // P(drop out after a repeat purchase)
  double spend_rate = 0;  // nu: a purchase's value is Gamma(spend_p, rate nu) dollars
};

// Draws the user's parameters and simulates its purchases, appending the lines inside
// the span to `events` in time order. `rng` must be the user's own stream.
BgNbdUser SimulateBgNbdUser(const SimOptions& options, uint64_t index, Rng& rng, uint32_t user_slot,
                            std::vector<SimEvent>& events);

// The true P(at least one Purchase in [cutoff, cutoff + horizon)) given the state at the
// cutoff: alive ? 1 - exp(-lambda * integral of the seasonal factor over the window) : 0
// (= 1 - exp(-lambda H) without seasonality); churn = 1 - purchase (no purchase).
Truth ComputeBgNbdTruth(const BgNbdUser& user, const BgNbdRegime& regime, int64_t cutoff_ms, int horizon_days);

}  // namespace sibyl::sim
