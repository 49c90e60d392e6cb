#include "sim/user_model.h"

#include <algorithm>
#include <array>
#include <cmath>

#include "common/time.h"
#include "sim/catalogue.h"

namespace sibyl::sim {
namespace {

constexpr double kHoursPerDay = 24.0;
constexpr double kMaxPurchaseProbability = 0.9;
// Users who exist before the simulated span starts: they signed up up to this long before.
constexpr double kPreexistingShare = 0.35;
constexpr double kPreexistingMaxDays = 60;
// Share of churners who leave with a visible "farewell" session at the moment they churn
// (log out, disable notifications); the others just stop.
constexpr double kFarewellShare = 0.7;

// Session starts by local hour of day (relative; normalised to mean 1 below).
constexpr std::array<double, 24> kDiurnalRaw = {0.25, 0.15, 0.10, 0.08, 0.08, 0.12, 0.30, 0.60,
                                                0.90, 1.00, 1.05, 1.10, 1.20, 1.15, 1.10, 1.10,
                                                1.15, 1.30, 1.55, 1.75, 1.80, 1.60, 1.10, 0.60};
constexpr double kWeekendFactor = 1.15, kWeekdayFactor = 0.94;

struct Diurnal {
  std::array<double, 24> factor;
  double max_factor;
  Diurnal() {
    double sum = 0;
    for (double f : kDiurnalRaw) sum += f;
    max_factor = 0;
    for (int h = 0; h < 24; ++h) {
      factor[h] = kDiurnalRaw[h] * 24.0 / sum;
      max_factor = std::max(max_factor, factor[h]);
    }
  }
};
const Diurnal& DiurnalTable() {
  static const Diurnal table;
  return table;
}

double AgeDays(const UserModel& user, int64_t hour) {
  return static_cast<double>(hour - user.signup_hour) / kHoursPerDay;
}

// Engagement over the user's life: rises over the first days, then decays to a floor.
double Engagement(const UserModel& user, double age_days) {
  double rise = 1.0 - 0.7 * std::exp(-age_days / user.rise_days);
  double decay = user.engagement_floor + (1.0 - user.engagement_floor) * std::exp(-age_days / user.decay_days);
  return rise * decay;
}

// Early-life churn is higher: new users who do not find value leave in their first weeks.
double EarlyChurnMultiplier(int64_t age_whole_days) {
  return 1.0 + 4.0 * std::exp(-static_cast<double>(age_whole_days) / 4.0);
}

uint8_t PickCountry(Rng& rng) {
  double u = rng.Uniform(), acc = 0, total = 0;
  for (const Country& c : Countries()) total += c.weight;
  u *= total;
  auto countries = Countries();
  for (size_t i = 0; i < countries.size(); ++i) {
    acc += countries[i].weight;
    if (u < acc) return static_cast<uint8_t>(i);
  }
  return 0;
}

uint8_t PickCategory(Rng& rng) {
  double u = rng.Uniform(), acc = 0, total = 0;
  for (const Category& c : Categories()) total += c.weight;
  u *= total;
  auto categories = Categories();
  for (size_t i = 0; i < categories.size(); ++i) {
    acc += categories[i].weight;
    if (u < acc) return static_cast<uint8_t>(i);
  }
  return 0;
}

uint16_t PickBackgroundEvent(Rng& rng) {
  auto cumulative = BackgroundCumulativeWeights();
  double u = rng.Uniform();
  size_t i = std::upper_bound(cumulative.begin(), cumulative.end(), u) - cumulative.begin();
  if (i >= cumulative.size()) i = cumulative.size() - 1;
  return static_cast<uint16_t>(kFirstBackgroundEvent + i);
}

// Draws the time the user stops for good, by walking the piecewise-constant hazard one
// age-day at a time (day d of age covers hours [signup_hour + 24d, signup_hour + 24(d+1))).
int64_t DrawChurnTime(const UserModel& user, int64_t horizon_end_ms, Rng& rng) {
  double remaining = rng.Exp();
  int64_t t = user.signup_ms;
  for (int64_t day = 0;; ++day) {
    int64_t segment_end = (user.signup_hour + 24 * (day + 1)) * kMsPerHour;
    double rate = user.hazard_per_day * EarlyChurnMultiplier(day);
    double span_days = static_cast<double>(segment_end - t) / kMsPerDay;
    if (rate * span_days >= remaining) {
      return t + static_cast<int64_t>(remaining / rate * kMsPerDay);
    }
    remaining -= rate * span_days;
    t = segment_end;
    if (t >= horizon_end_ms) return INT64_MAX;
  }
}

uint32_t DrawPriceCents(uint8_t category, Rng& rng) {
  double median = Categories()[category].median_price;
  double price = median * std::exp(0.5 * rng.Normal());
  return static_cast<uint32_t>(std::max(99.0, std::round(price * 100.0) - 1.0));
}

// Builds the lines of one session in order; times are assigned as it goes.
class SessionWriter {
 public:
  SessionWriter(Rng& rng, std::vector<SimEvent>& out, int64_t start_ms,
                int64_t begin_ms, int64_t end_ms, uint32_t user_slot, uint32_t& seq, uint8_t& plan,
                bool anonymous)
      : rng_(rng), out_(out), time_(start_ms), session_(start_ms), begin_(begin_ms),
        end_(end_ms), slot_(user_slot), seq_(seq), plan_(plan), anonymous_(anonymous) {}

  SimEvent& Emit(uint16_t type) {
    if (!first_) time_ += 1000 + static_cast<int64_t>(rng_.Exp() * 34000.0);
    first_ = false;
    SimEvent& e = scratch_;
    e = SimEvent{};
    e.time_ms = time_;
    e.session_id = session_;
    e.type = type;
    e.plan = plan_;
    e.user_slot = slot_;
    e.flags = anonymous_ ? kAnonymousEvent : 0;
    pending_ = true;
    return e;
  }
  // Commits the event built by Emit (kept only inside the simulated span).
  void Commit() {
    if (!pending_) return;
    pending_ = false;
    if (scratch_.time_ms < begin_ || scratch_.time_ms >= end_) return;
    scratch_.seq = seq_++;
    out_.push_back(scratch_);
  }
  void Add(uint16_t type) {
    Emit(type);
    Commit();
  }
  void AddItemEvent(uint16_t type, uint8_t category, uint32_t item, uint32_t price, uint16_t quantity,
                    uint8_t source) {
    SimEvent& e = Emit(type);
    e.category = category;
    e.item = item;
    e.price_cents = price;
    e.quantity = quantity;
    e.source = source;
    Commit();
  }
  void AddDetail(uint16_t type, uint8_t detail, uint8_t source = 0) {
    SimEvent& e = Emit(type);
    e.detail = detail;
    e.source = source;
    Commit();
  }
  void AddIdentify() {
    SimEvent& e = Emit(kUpgradePlan);
    e.flags |= kIdentifyLine;
    Commit();
  }
  void SetPlan(uint8_t plan) { plan_ = plan; }

 private:
  Rng& rng_;
  std::vector<SimEvent>& out_;
  int64_t time_, session_, begin_, end_;
  uint32_t slot_;
  uint32_t& seq_;
  uint8_t& plan_;
  bool anonymous_;
  bool first_ = true;
  bool pending_ = false;
  SimEvent scratch_;
};

uint8_t PickItemCategory(const UserModel& user, double favourite_share, Rng& rng) {
  if (rng.Bernoulli(favourite_share)) return user.favourite_category;
  return static_cast<uint8_t>(rng.Below(static_cast<uint32_t>(Categories().size())));
}

uint32_t PickItem(uint8_t category, Rng& rng) {
  // A few hundred items per category, popular ones more often.
  uint32_t rank = static_cast<uint32_t>(std::min(999.0, std::floor(std::exp(rng.Uniform() * 6.9))));
  return category * 1000u + rank;
}

uint8_t PickSource(Rng& rng) {
  static constexpr double kCumulative[] = {0.30, 0.52, 0.68, 0.76, 0.83, 0.93, 0.98, 1.0};
  double u = rng.Uniform();
  uint8_t i = 0;
  while (i < 7 && u >= kCumulative[i]) ++i;
  return i;
}

// `purchase_p` is the session's purchase probability: users in a buying phase look at
// more items, which partly reveals the phase.
void BrowseEvent(const UserModel& user, double purchase_p, SessionWriter& session, Rng& rng) {
  double u = rng.Uniform();
  double view_share = 0.2 + std::min(0.35, 4.0 * purchase_p);
  if (u < view_share) {
    uint8_t category = PickItemCategory(user, 0.6, rng);
    session.AddItemEvent(kViewItem, category, PickItem(category, rng), DrawPriceCents(category, rng), 0,
                         PickSource(rng));
  } else if (u < view_share + 0.1) {
    session.AddDetail(kSearch, static_cast<uint8_t>(PickItemCategory(user, 0.7, rng) * 4 + rng.Below(3)));
  } else {
    session.AddDetail(PickBackgroundEvent(rng), 0, PickSource(rng));
  }
}

// One logged-in session starting at `start`: browsing mixed with the signals that
// foreshadow purchase (pricing views, cart adds) and churn (support contacts, errors),
// and a checkout funnel when the session converts.
void SimulateSession(const UserModel& user, int64_t start, const SimOptions& options, int64_t end_ms,
                     Rng& rng, uint32_t slot, uint32_t& seq, uint8_t& plan, std::vector<SimEvent>& out) {
  const int64_t hour = start / kMsPerHour;
  const double purchase_p = PurchaseProbability(user, hour);
  const bool purchase = rng.Bernoulli(purchase_p);
  SessionWriter session(rng, out, start, options.start_ms, end_ms, slot, seq, plan, false);
  session.Add(kAppOpen);

  uint32_t browse = rng.Geometric(1.0 / user.session_depth);
  if (browse > 40) browse = 40;
  // Signals are placed at random points of the browsing.
  bool pricing = rng.Bernoulli(user.pricing_view_prob);
  bool support = rng.Bernoulli(user.support_prob);
  bool error = rng.Bernoulli(user.error_prob);
  uint32_t pricing_at = rng.Below(browse + 1), support_at = rng.Below(browse + 1),
           error_at = rng.Below(browse + 1);
  for (uint32_t i = 0; i <= browse; ++i) {
    if (pricing && i == pricing_at) session.AddDetail(kViewPricing, 0, PickSource(rng));
    if (error && i == error_at) session.AddDetail(kAppError, static_cast<uint8_t>(rng.Below(6)));
    if (support && i == support_at) {
      session.AddDetail(kContactSupport, static_cast<uint8_t>(rng.Below(6)));
    }
    if (i < browse) BrowseEvent(user, purchase_p, session, rng);
  }

  if (plan == 0 && rng.Bernoulli(user.upgrade_prob)) {
    session.AddDetail(kViewPricing, 0, PickSource(rng));
    session.SetPlan(1);
    session.Add(kUpgradePlan);
    plan = 1;
    // Some apps send the change as an identify call, others only on later events.
    if (rng.Bernoulli(0.6)) session.AddIdentify();
  }

  if (purchase) {
    uint8_t category = PickItemCategory(user, 0.7, rng);
    uint32_t item = PickItem(category, rng);
    uint32_t price = DrawPriceCents(category, rng);
    uint16_t quantity = static_cast<uint16_t>(1 + rng.Geometric(0.7));
    uint8_t source = PickSource(rng);
    session.AddItemEvent(kViewItem, category, item, price, 0, source);
    session.AddItemEvent(kAddToCart, category, item, price, quantity, source);
    if (rng.Bernoulli(0.5)) session.AddItemEvent(kViewCart, category, item, price, quantity, source);
    session.AddItemEvent(kBeginCheckout, category, item, price, quantity, source);
    if (rng.Bernoulli(0.5)) session.AddItemEvent(kAddPaymentInfo, category, item, price, quantity, source);
    session.AddItemEvent(kPurchase, category, item, price, quantity, source);
  } else if (rng.Bernoulli(std::min(0.6, 5.0 * purchase_p * user.cart_affinity))) {
    // Abandoned carts: likelier when intent is high, so they partly reveal it.
    uint8_t category = PickItemCategory(user, 0.7, rng);
    uint32_t item = PickItem(category, rng);
    uint32_t price = DrawPriceCents(category, rng);
    uint8_t source = PickSource(rng);
    session.AddItemEvent(kViewItem, category, item, price, 0, source);
    session.AddItemEvent(kAddToCart, category, item, price, 1, source);
    double u = rng.Uniform();
    if (u < 0.3) {
      session.AddItemEvent(kBeginCheckout, category, item, price, 1, source);
    } else if (u < 0.45) {
      session.AddItemEvent(kRemoveFromCart, category, item, price, 1, source);
    }
  }
}

}  // namespace

uint8_t DrawCountry(Rng& rng) { return PickCountry(rng); }
uint8_t DrawFavouriteCategory(Rng& rng) { return PickCategory(rng); }
uint32_t DrawItem(uint8_t category, Rng& rng) { return PickItem(category, rng); }
uint32_t DrawItemPriceCents(uint8_t category, Rng& rng) { return DrawPriceCents(category, rng); }
uint8_t DrawSource(Rng& rng) { return PickSource(rng); }

UserModel DrawUser(const SimOptions& options, uint64_t index, Rng& rng) {
  UserModel u;
  u.index = index;
  u.device_hash = SplitMix64(options.seed * 0x51ed27ULL + index);
  const double span_days = options.days;
  double signup_days = rng.Bernoulli(kPreexistingShare) ? -rng.Uniform() * kPreexistingMaxDays
                                                        : rng.Uniform() * span_days;
  u.signup_ms = options.start_ms + static_cast<int64_t>(signup_days * kMsPerDay);
  u.signup_hour = u.signup_ms / kMsPerHour;

  double platform_u = rng.Uniform();
  u.platform = platform_u < 0.42 ? kIos : platform_u < 0.82 ? kAndroid : kWeb;
  u.country = PickCountry(rng);
  u.utc_offset_hours = Countries()[u.country].utc_offset_hours;
  u.favourite_category = PickCategory(rng);
  u.device_variant = static_cast<uint8_t>(rng.Below(4));
  u.app_update_lag_days = static_cast<int>(rng.Below(21));

  // Three hidden traits; each shows through some events, and none of them completely.
  const double intent = rng.Normal();       // appetite to buy
  const double frustration = rng.Normal();  // how badly the product serves this user
  const double vigour = rng.Normal();       // how much the user uses the app

  u.sessions_per_day = 0.55 * std::exp(0.8 * vigour - 0.2 * frustration);
  u.rise_days = rng.Uniform(1.0, 5.0);
  u.decay_days = rng.Uniform(8.0, 60.0);
  u.engagement_floor = rng.Uniform(0.15, 0.6);
  u.session_depth = rng.Uniform(3.0, 8.0);

  static constexpr double kPlatformConversion[] = {1.35, 0.75, 1.0};
  u.conversion = 0.035 * std::exp(0.8 * intent) * kPlatformConversion[u.platform] *
                 Categories()[u.favourite_category].conversion_multiplier;
  u.cycle_period_days = rng.Uniform(6.0, 30.0);
  u.cycle_amplitude = rng.Uniform(0.0, 0.8);
  u.cycle_phase_days = rng.Uniform(0.0, u.cycle_period_days);
  const double k = u.cycle_amplitude;
  u.cycle_norm = 1.0 + k * k / 4.0 + k * k * k * k / 64.0;  // E[exp(k cos)] = I0(k)

  static constexpr double kPlatformHazard[] = {0.85, 1.3, 1.1};
  u.hazard_per_day = 0.012 * std::exp(0.6 * frustration + 0.5 * rng.Normal() - 0.25 * intent) *
                     kPlatformHazard[u.platform];

  u.pricing_view_prob = std::min(0.8, 0.08 * std::exp(0.7 * intent + 0.3 * rng.Normal()));
  u.support_prob = std::min(0.8, 0.015 * std::exp(0.9 * frustration));
  u.error_prob = std::min(0.8, 0.02 * std::exp(0.6 * frustration) * (u.platform == kAndroid ? 1.6 : 1.0));
  u.cart_affinity = std::exp(0.3 * rng.Normal());
  u.upgrade_prob = std::min(0.5, 0.003 * std::exp(0.9 * intent - 0.6 * frustration));
  u.initial_plan = rng.Bernoulli(std::min(0.5, 0.08 * std::exp(0.5 * intent))) ? 1 : 0;
  u.anonymous_sessions = rng.Bernoulli(0.5) ? 1.0 + rng.Below(2) : 0.0;

  const int64_t end_ms = options.start_ms + static_cast<int64_t>(options.days) * kMsPerDay;
  u.churn_ms = DrawChurnTime(u, end_ms, rng);
  return u;
}

double SessionRate(const UserModel& user, int64_t hour) {
  if (hour < user.signup_hour) return 0;
  const Diurnal& diurnal = DiurnalTable();
  int64_t local_hour = hour + user.utc_offset_hours;
  int local_hour_of_day = static_cast<int>(((local_hour % 24) + 24) % 24);
  // 1970-01-01 was a Thursday: day 0 is Thursday, so days 2 and 3 (mod 7) are Sat and Sun.
  int64_t local_day = (local_hour >= 0 ? local_hour : local_hour - 23) / 24;
  int weekday = static_cast<int>(((local_day % 7) + 7) % 7);
  double week = (weekday == 2 || weekday == 3) ? kWeekendFactor : kWeekdayFactor;
  return user.sessions_per_day * Engagement(user, AgeDays(user, hour)) * diurnal.factor[local_hour_of_day] *
         week;
}

double MaxSessionRate(const UserModel& user) {
  return user.sessions_per_day * DiurnalTable().max_factor * kWeekendFactor;
}

double PurchaseProbability(const UserModel& user, int64_t hour) {
  double days = static_cast<double>(hour) / kHoursPerDay;
  double phase = 6.283185307179586 * (days - user.cycle_phase_days) / user.cycle_period_days;
  double cycle = std::exp(user.cycle_amplitude * std::cos(phase)) / user.cycle_norm;
  return std::min(kMaxPurchaseProbability, user.conversion * cycle);
}

double ChurnHazard(const UserModel& user, int64_t hour) {
  int64_t age_whole_days = (hour - user.signup_hour) / 24;
  return user.hazard_per_day * EarlyChurnMultiplier(std::max<int64_t>(0, age_whole_days));
}

void SimulateUser(const SimOptions& options, const UserModel& user, Rng& rng, uint32_t user_slot,
                  std::vector<SimEvent>& events) {
  const int64_t end_ms = options.start_ms + static_cast<int64_t>(options.days) * kMsPerDay;
  const size_t first = events.size();
  uint32_t seq = 0;
  uint8_t plan = user.initial_plan;

  // Anonymous visits in the days before sign-up: device_id only.
  for (int i = 0; i < static_cast<int>(user.anonymous_sessions); ++i) {
    int64_t start = user.signup_ms - kMsPerHour - static_cast<int64_t>(rng.Uniform() * 3 * kMsPerDay);
    SessionWriter session(rng, events, start, options.start_ms, end_ms, user_slot, seq, plan, true);
    session.Add(kAppOpen);
    uint32_t browse = 1 + rng.Geometric(0.35);
    for (uint32_t j = 0; j < browse && j < 12; ++j) BrowseEvent(user, 0.0, session, rng);
    if (rng.Bernoulli(0.3)) session.AddDetail(kViewPricing, 0, PickSource(rng));
  }
  {
    // The sign-up session: the first line carrying both device_id and user_id.
    SessionWriter session(rng, events, user.signup_ms, options.start_ms, end_ms, user_slot, seq, plan,
                          false);
    session.AddDetail(kSignUp, static_cast<uint8_t>(rng.Below(3)));
    if (rng.Bernoulli(0.7)) session.Add(kCompleteOnboarding);
    uint32_t browse = rng.Geometric(0.3);
    for (uint32_t j = 0; j < browse && j < 10; ++j) BrowseEvent(user, 0.0, session, rng);
  }

  // Sessions: an inhomogeneous Poisson process, drawn by thinning, until churn.
  const int64_t stop_ms = std::min(user.churn_ms, end_ms);
  const double max_rate = MaxSessionRate(user);
  double t_days = static_cast<double>(user.signup_ms) / kMsPerDay;
  const double stop_days = static_cast<double>(stop_ms) / kMsPerDay;
  while (true) {
    t_days += rng.Exp() / max_rate;
    if (t_days >= stop_days) break;
    int64_t t_ms = static_cast<int64_t>(t_days * kMsPerDay);
    if (t_ms >= stop_ms) break;
    if (rng.Uniform() * max_rate >= SessionRate(user, t_ms / kMsPerHour)) continue;
    SimulateSession(user, t_ms, options, end_ms, rng, user_slot, seq, plan, events);
  }
  if (user.churn_ms < end_ms && rng.Bernoulli(kFarewellShare)) {
    static const uint16_t kLogOut = static_cast<uint16_t>(EventTypeByName("Log Out"));
    static const uint16_t kDisableNotifications = static_cast<uint16_t>(EventTypeByName("Disable Notifications"));
    SessionWriter session(rng, events, user.churn_ms, options.start_ms, end_ms, user_slot, seq, plan, false);
    session.Add(kAppOpen);
    uint32_t browse = rng.Geometric(0.5);
    for (uint32_t j = 0; j < browse && j < 5; ++j) BrowseEvent(user, 0.0, session, rng);
    bool disable = rng.Bernoulli(0.5);
    if (disable) session.AddDetail(kDisableNotifications, 0, 0);
    if (!disable || rng.Bernoulli(0.6)) session.Add(kLogOut);
  }
  // Sessions may overlap (a quick return while a long one is open); keep time order.
  std::stable_sort(events.begin() + static_cast<std::ptrdiff_t>(first), events.end(),
                   [](const SimEvent& a, const SimEvent& b) { return a.time_ms < b.time_ms; });
}

Truth ComputeTruth(const UserModel& user, const std::vector<SimEvent>& events, int64_t cutoff_ms,
                   int horizon_days) {
  Truth truth;
  truth.horizon_days = horizon_days;
  const int64_t window_end = cutoff_ms + horizon_days * kMsPerDay;

  // A session that started before the cutoff and is still going is part of the state at T.
  bool in_progress_event = false, in_progress_purchase = false;
  for (const SimEvent& e : events) {
    if (e.session_id >= cutoff_ms || e.time_ms < cutoff_ms || e.time_ms >= window_end) continue;
    in_progress_event = true;
    if (e.type == kPurchase) in_progress_purchase = true;
  }

  // Probability of "no session before min(churn, window end)" for a Poisson process of
  // rate `rate` competing with the churn hazard, both constant within each hour:
  // P = sum over hours of P(churn in the hour before any session) + P(neither by the end).
  double quiet = 1, quiet_no_purchase = 1;  // P(alive and no session / no purchase yet)
  double churned_quiet = 0, churned_no_purchase = 0;
  if (user.churn_ms <= cutoff_ms) {
    churned_quiet = 1;
    churned_no_purchase = 1;
    quiet = quiet_no_purchase = 0;
  } else {
    for (int64_t t = cutoff_ms; t < window_end;) {
      int64_t hour = t / kMsPerHour;
      int64_t next = std::min(window_end, (hour + 1) * kMsPerHour);
      double span_days = static_cast<double>(next - t) / kMsPerDay;
      double hazard = ChurnHazard(user, hour);
      double rate = SessionRate(user, hour);
      double purchase_rate = rate * PurchaseProbability(user, hour);
      // Churning inside the window is only quiet if it comes without a farewell session.
      auto step = [&](double event_rate, double& alive_quiet, double& churned, double churn_is_quiet) {
        double total = event_rate + hazard;
        if (total <= 0) return;
        double leave = 1.0 - std::exp(-total * span_days);
        churned += alive_quiet * (hazard / total) * leave * churn_is_quiet;
        alive_quiet *= 1.0 - leave;
      };
      step(rate, quiet, churned_quiet, 1.0 - kFarewellShare);
      step(purchase_rate, quiet_no_purchase, churned_no_purchase, 1.0);
      t = next;
    }
  }
  truth.churn = in_progress_event ? 0.0 : churned_quiet + quiet;
  truth.purchase = in_progress_purchase ? 1.0 : 1.0 - (churned_no_purchase + quiet_no_purchase);
  return truth;
}

}  // namespace sibyl::sim
