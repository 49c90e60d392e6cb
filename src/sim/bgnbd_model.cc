#include "sim/bgnbd_model.h"

#include <algorithm>
#include <cmath>

#include "common/time.h"
#include "sim/catalogue.h"

namespace sibyl::sim {
namespace {

// A purchase session: App Open, 1-6 View Item (the last one the bought item), Add to
// Cart, Purchase. The Purchase is at `purchase_ms` exactly (the BG/NBD event); the other
// lines come before it, 1 s + Exp(34 s) apart, as in the app regime.
void EmitPurchaseSession(const BgNbdUser& user, int64_t purchase_ms, const SimOptions& options, int64_t end_ms,
                         Rng& rng, uint32_t slot, uint32_t& seq, std::vector<SimEvent>& out) {
  const UserModel& visible = user.visible;
  // The purchase's value (Gamma-Gamma), at least one cent.
  const double value = rng.Gamma(options.bgnbd.spend_p) / user.spend_rate;
  const uint32_t value_cents =
      static_cast<uint32_t>(std::clamp(std::round(value * 100.0), 1.0, 4.0e9));
  const uint8_t category = rng.Bernoulli(0.7) ? visible.favourite_category
                                              : static_cast<uint8_t>(rng.Below(static_cast<uint32_t>(Categories().size())));
  const uint32_t item = DrawItem(category, rng);
  const uint8_t source = DrawSource(rng);
  const uint32_t browsed = std::min<uint32_t>(5, rng.Geometric(0.5));

  SimEvent lines[10];  // App Open, up to 5 browsed items, View Item, Add to Cart, Purchase
  int n = 0;
  auto add = [&](uint16_t type) -> SimEvent& {
    SimEvent& e = lines[n++];
    e = SimEvent{};
    e.type = type;
    e.user_slot = slot;
    e.plan = visible.initial_plan;
    return e;
  };
  add(kAppOpen).source = source;
  for (uint32_t i = 0; i < browsed; ++i) {
    uint8_t c = rng.Bernoulli(0.6) ? visible.favourite_category
                                   : static_cast<uint8_t>(rng.Below(static_cast<uint32_t>(Categories().size())));
    SimEvent& e = add(kViewItem);
    e.category = c;
    e.item = DrawItem(c, rng);
    e.price_cents = DrawItemPriceCents(c, rng);
    e.source = DrawSource(rng);
  }
  for (uint16_t type : {kViewItem, kAddToCart, kPurchase}) {
    SimEvent& e = add(type);
    e.category = category;
    e.item = item;
    e.price_cents = value_cents;
    e.quantity = type == kViewItem ? 0 : 1;
    e.source = source;
  }
  // Times backwards from the purchase.
  lines[n - 1].time_ms = purchase_ms;
  for (int i = n - 2; i >= 0; --i) {
    lines[i].time_ms = lines[i + 1].time_ms - 1000 - static_cast<int64_t>(rng.Exp() * 34000.0);
  }
  for (int i = 0; i < n; ++i) {
    lines[i].session_id = lines[0].time_ms;
    if (lines[i].time_ms < options.start_ms || lines[i].time_ms >= end_ms) continue;
    lines[i].seq = seq++;
    out.push_back(lines[i]);
  }
}

constexpr double kYearDays = 365.25;

// The seasonal multiplier of the purchase rate at `ms` (1 without seasonality).
double SeasonalFactor(const BgNbdRegime& m, double ms) {
  if (m.seasonal_amplitude == 0) return 1.0;
  const double day = ms / kMsPerDay;  // days since 1970-01-01, a year starts within a day of it
  const double phase = 2 * M_PI * (day - m.seasonal_peak_day) / kYearDays;
  return 1.0 + m.seasonal_amplitude * std::cos(phase);
}

// The integral of SeasonalFactor over [from, to) (ms), in days.
double SeasonalDays(const BgNbdRegime& m, double from_ms, double to_ms) {
  const double days = (to_ms - from_ms) / kMsPerDay;
  if (m.seasonal_amplitude == 0) return days;
  auto antiderivative = [&](double ms) {
    return std::sin(2 * M_PI * (ms / kMsPerDay - m.seasonal_peak_day) / kYearDays) * kYearDays / (2 * M_PI);
  };
  return days + m.seasonal_amplitude * (antiderivative(to_ms) - antiderivative(from_ms));
}

}  // namespace

BgNbdUser SimulateBgNbdUser(const SimOptions& options, uint64_t index, Rng& rng, uint32_t user_slot,
                            std::vector<SimEvent>& events) {
  const BgNbdRegime& m = options.bgnbd;
  const int64_t end_ms = options.start_ms + static_cast<int64_t>(options.days) * kMsPerDay;
  BgNbdUser user;
  UserModel& v = user.visible;
  v.index = index;
  v.device_hash = SplitMix64(options.seed * 0x51ed27ULL + index);
  double platform_u = rng.Uniform();
  v.platform = platform_u < 0.42 ? kIos : platform_u < 0.82 ? kAndroid : kWeb;
  v.country = DrawCountry(rng);
  v.utc_offset_hours = Countries()[v.country].utc_offset_hours;
  v.favourite_category = DrawFavouriteCategory(rng);
  v.device_variant = static_cast<uint8_t>(rng.Below(4));
  v.app_update_lag_days = static_cast<int>(rng.Below(21));
  v.initial_plan = 0;

  // The hidden BG/NBD state.
  user.lambda = rng.Gamma(m.r) / m.alpha;
  user.dropout = rng.Beta(m.a, m.b);
  user.spend_rate = rng.Gamma(m.spend_q) / m.spend_v;
  if (!(user.spend_rate > 0)) user.spend_rate = 1e-300;  // Gamma underflow: huge spends, clamped
  const double acquisition_ms = m.acquisition_share * options.days * kMsPerDay;
  v.signup_ms = options.start_ms + static_cast<int64_t>(rng.Uniform() * acquisition_ms);
  v.signup_hour = v.signup_ms / kMsPerHour;
  v.churn_ms = INT64_MAX;

  // The first purchase, then repeat purchases at rate lambda until dropout or the end.
  const size_t first = events.size();
  uint32_t seq = 0;
  EmitPurchaseSession(user, v.signup_ms, options, end_ms, rng, user_slot, seq, events);
  double t_ms = static_cast<double>(v.signup_ms);
  // With seasonality, candidate events at the peak rate lambda (1 + A) are kept with
  // probability factor / (1 + A) (thinning), which gives the seasonal Poisson process.
  const double peak_factor = 1.0 + m.seasonal_amplitude;
  while (user.lambda > 0) {
    t_ms += rng.Exp() / (user.lambda * peak_factor) * kMsPerDay;
    if (t_ms >= static_cast<double>(end_ms)) break;
    if (m.seasonal_amplitude != 0 && !rng.Bernoulli(SeasonalFactor(m, t_ms) / peak_factor)) continue;
    const int64_t purchase_ms = static_cast<int64_t>(t_ms);
    EmitPurchaseSession(user, purchase_ms, options, end_ms, rng, user_slot, seq, events);
    if (rng.Bernoulli(user.dropout)) {
      v.churn_ms = purchase_ms;
      break;
    }
  }
  // Sessions may overlap (two purchases minutes apart); keep time order.
  std::stable_sort(events.begin() + static_cast<std::ptrdiff_t>(first), events.end(),
                   [](const SimEvent& a, const SimEvent& b) { return a.time_ms < b.time_ms; });
  return user;
}

Truth ComputeBgNbdTruth(const BgNbdUser& user, const BgNbdRegime& regime, int64_t cutoff_ms, int horizon_days) {
  Truth truth;
  truth.horizon_days = horizon_days;
  // Dropout happens right after a purchase; a user whose dropout purchase is at or after
  // the cutoff is alive at it (and that purchase is the next Poisson event).
  const bool alive = user.visible.churn_ms >= cutoff_ms;
  const double cutoff = static_cast<double>(cutoff_ms);
  const double exposure_days = SeasonalDays(regime, cutoff, cutoff + static_cast<double>(horizon_days) * kMsPerDay);
  truth.purchase = alive ? -std::expm1(-user.lambda * exposure_days) : 0.0;
  truth.churn = 1.0 - truth.purchase;
  return truth;
}

}  // namespace sibyl::sim
