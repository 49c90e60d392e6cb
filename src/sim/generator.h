// The event simulator behind `sibyl generate`: a deterministic model of an e-commerce-like
// app that writes Amplitude-shaped NDJSON and, for a cutoff and horizons, each user's true
// probability of purchasing and of churning as the simulation knows it. The model, the
// output format and order are documented in docs/SIMULATOR.md.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "common/status.h"

namespace sibyl::sim {

// 2024-01-01T00:00:00Z: the default start, fixed so that outputs are reproducible.
inline constexpr int64_t kDefaultStartMs = 1704067200000;

// What the simulated users do (docs/SIMULATOR.md).
enum class Regime {
  kApp,    // the e-commerce app (the default): sessions, funnels, churn, hidden traits
  kBgNbd,  // every user is a BG/NBD buyer (Fader, Hardie & Lee 2005), spend Gamma-Gamma
};
// "app", "bgnbd".
const char* RegimeName(Regime regime);

// The bgnbd regime's parameters. Time is in days: while alive a user buys at Poisson rate
// lambda ~ Gamma(shape r, rate alpha) per day and drops out for good after each repeat
// purchase with probability p ~ Beta(a, b). Defaults: the CDNow fit of the paper
// (r 0.243, alpha 4.414 weeks = 30.9 days, a 0.793, b 2.426). Each purchase's value is
// Gamma(shape spend_p, rate nu) dollars with nu ~ Gamma(shape spend_q, rate spend_v) per
// user (Gamma-Gamma; defaults: the CDNow fit of Fader, Hardie & Lee 2005, "RFM and CLV").
struct BgNbdRegime {
  double r = 0.243, alpha = 30.9, a = 0.793, b = 2.426;
  double spend_p = 6.25, spend_q = 3.74, spend_v = 15.44;
  // First purchases are uniform over this leading share of the span.
  double acquisition_share = 0.5;
  // Seasonality of the purchase rate: lambda(t) = lambda (1 + A cos(2 pi (t - peak) / year))
  // with t the day of the year, A in [0, 1). A = 0 (the default) is the paper's
  // stationary process and draws exactly the same numbers as before it existed.
  double seasonal_amplitude = 0;
  double seasonal_peak_day = 330;  // day of the year (0 = 1 January): late November
};

struct SimOptions {
  Regime regime = Regime::kApp;
  BgNbdRegime bgnbd;  // used when regime == kBgNbd
  uint64_t users = 10000;
  int days = 90;
  uint64_t seed = 1;
  int64_t start_ms = kDefaultStartMs;
  // NDJSON destination: a path, "-" for stdout, or "" to simulate without writing
  // (tests and the check tool, which read users through `on_user`).
  std::string out_path = "-";
  // Ground truth: written when `truth_path` is set; needs a cutoff inside
  // [start, start + days) and horizons with cutoff + horizon <= start + days.
  std::string truth_path;
  int64_t cutoff_ms = -1;  // -1: none
  std::vector<int> horizon_days;
  // Worker threads; 0 means one per core. The output does not depend on it.
  int threads = 0;
  // Called after each block of users is simulated, before its lines are written, with
  // the block's `done` users so far; used for progress.
  std::function<void(uint64_t users_done, uint64_t events_done)> on_progress;
  // Called once per user, in user order, with the user's events and truth (see below).
  // Only for tools and tests: it keeps every user's events in memory per block.
  std::function<void(const struct UserHistory&)> on_user;
};

// Checks the options; the error names the flag that is wrong.
Status ValidateOptions(const SimOptions& options);

struct SimSummary {
  uint64_t users = 0;       // users simulated
  uint64_t known_users = 0; // users with a user_id in the output (signed up before the end)
  uint64_t events = 0;      // lines written, identify lines included
  uint64_t identifies = 0;  // of which $identify lines
  uint64_t anonymous_events = 0;  // of which device-only (before sign-up)
  uint64_t bytes = 0;       // NDJSON bytes
  uint64_t truth_rows = 0;  // users in the truth file
  int64_t first_time_ms = 0, end_time_ms = 0;  // the simulated span [start, end)
  double seconds = 0;       // wall time of the run
};

// Runs the simulation and writes its outputs.
Result<SimSummary> Generate(const SimOptions& options);

// ---- In-memory view of one simulated user, for tools and tests ----

// One emitted line, compactly. `type` indexes the catalogue (catalogue.h).
struct SimEvent {
  int64_t time_ms = 0;
  int64_t session_id = 0;   // session start in ms (Amplitude's convention)
  uint32_t price_cents = 0; // item price for commerce events
  uint32_t item = 0;        // item number for commerce events
  uint32_t seq = 0;         // order of emission within the user
  uint32_t user_slot = 0;   // the user's index within its block (for ordering)
  uint16_t type = 0;
  uint16_t quantity = 0;
  uint8_t category = 0;
  uint8_t source = 0;
  uint8_t plan = 0;         // the user's plan when the event happened (0 free, 1 pro)
  uint8_t flags = 0;        // kAnonymousEvent, kIdentifyLine
  uint8_t detail = 0;       // type-specific choice (support topic, search term, ...)
};
inline constexpr uint8_t kAnonymousEvent = 1;  // device_id only, before sign-up
inline constexpr uint8_t kIdentifyLine = 2;    // an "$identify" line setting the plan

// The true probabilities for one horizon, conditional on the full hidden state at the
// cutoff (including whether the user has already churned and any session in progress).
struct Truth {
  int horizon_days = 0;
  double purchase = 0;  // P(at least one Purchase in [T, T+H))
  double churn = 0;     // P(no event at all in [T, T+H))
};

struct UserHistory {
  uint64_t index = 0;        // user number; user_id is "u" + 8 digits of it
  int64_t signup_ms = 0;
  int64_t churn_ms = 0;      // hidden: when the user stops for good (may be after the end)
  uint8_t platform = 0, country = 0, favourite_category = 0;
  std::vector<SimEvent> events;  // emitted lines of this user, time-ordered
  std::vector<Truth> truth;      // one per horizon, empty if not signed up at the cutoff
  // bgnbd regime only (hidden): the purchase rate per day and the dropout probability.
  // There signup_ms is the first purchase and churn_ms the purchase after which the user
  // dropped out (INT64_MAX if still alive at the end).
  double purchase_rate_per_day = 0;
  double dropout_probability = 0;
};

// "u00012345" for index 12345.
std::string UserId(uint64_t index);

}  // namespace sibyl::sim
