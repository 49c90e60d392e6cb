// One simulated user: hidden parameters drawn at sign-up, the rate functions that drive
// sessions, purchases and churn, the simulation of the user's sessions, and the exact
// truth at a cutoff. Every rate is constant within a UTC hour, which is what makes the
// truth computable exactly (docs/SIMULATOR.md, "Truth").
#pragma once

#include <cstdint>
#include <vector>

#include "sim/generator.h"
#include "sim/rng.h"

namespace sibyl::sim {

// The user's hidden state and the visible attributes derived from it.
struct UserModel {
  uint64_t index = 0;
  int64_t signup_ms = 0;
  int64_t signup_hour = 0;  // floor(signup_ms / 1h): ages count whole hours from here
  int64_t churn_ms = 0;     // the user stops starting sessions at this time
  uint64_t device_hash = 0;

  // Visible attributes.
  uint8_t platform = 0, country = 0, favourite_category = 0, initial_plan = 0;
  uint8_t device_variant = 0;
  int utc_offset_hours = 0;
  int app_update_lag_days = 0;

  // Hidden: engagement.
  double sessions_per_day = 0;  // peak session rate
  double rise_days = 0, decay_days = 0, engagement_floor = 0;
  double session_depth = 0;     // mean number of browsing events per session
  // Hidden: purchase intent. Per-session purchase probability is
  // min(cap, conversion * cycle(t)), where cycle is a replenishment rhythm.
  double conversion = 0;
  double cycle_period_days = 0, cycle_amplitude = 0, cycle_phase_days = 0, cycle_norm = 1;
  // Hidden: churn hazard per day, before the early-life multiplier.
  double hazard_per_day = 0;
  // Partly visible through per-session event probabilities.
  double pricing_view_prob = 0, support_prob = 0, error_prob = 0, cart_affinity = 0;
  double upgrade_prob = 0;  // per session, while on the free plan
  double anonymous_sessions = 0;  // expected device-only sessions before sign-up
};

// Visible draws shared with the bgnbd regime (bgnbd_model.cc): a country (weighted), a
// favourite category (weighted), an item of a category (popular ones more often), a
// log-normal price around the category's median, a traffic source.
uint8_t DrawCountry(Rng& rng);
uint8_t DrawFavouriteCategory(Rng& rng);
uint32_t DrawItem(uint8_t category, Rng& rng);
uint32_t DrawItemPriceCents(uint8_t category, Rng& rng);
uint8_t DrawSource(Rng& rng);

// Draws the user's hidden state. `rng` must be the user's own stream.
UserModel DrawUser(const SimOptions& options, uint64_t index, Rng& rng);

// Sessions per day during UTC hour `hour` (0 before sign-up).
double SessionRate(const UserModel& user, int64_t hour);
// Probability that a session starting during `hour` contains a purchase.
double PurchaseProbability(const UserModel& user, int64_t hour);
// Churn hazard per day during `hour`.
double ChurnHazard(const UserModel& user, int64_t hour);
// An upper bound of SessionRate over all hours, for thinning.
double MaxSessionRate(const UserModel& user);

// Simulates the user from sign-up (and the anonymous sessions before it) to the end of
// the simulated span, appending the lines inside [start, end) to `events` in time order.
void SimulateUser(const SimOptions& options, const UserModel& user, Rng& rng, uint32_t user_slot,
                  std::vector<SimEvent>& events);

// The true purchase and churn probabilities for [cutoff, cutoff + horizon), given the
// hidden state at the cutoff: `events` (the user's realised history) is consulted only for
// a session already in progress at the cutoff.
Truth ComputeTruth(const UserModel& user, const std::vector<SimEvent>& events, int64_t cutoff_ms,
                   int horizon_days);

}  // namespace sibyl::sim
