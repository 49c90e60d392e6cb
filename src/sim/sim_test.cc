#include <gtest/gtest.h>

#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <map>
#include <set>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "common/file.h"
#include "common/time.h"
#include "ml/clv.h"
#include "sim/catalogue.h"
#include "sim/generator.h"

namespace sibyl::sim {
namespace {

std::string TempPath(const std::string& name) {
  return fmt::format("/tmp/sibyl_sim_test_{}_{}", ::getpid(), name);
}

SimOptions SmallOptions(uint64_t users = 600, int days = 40) {
  SimOptions o;
  o.users = users;
  o.days = days;
  o.seed = 7;
  o.out_path = "";
  return o;
}

std::string GenerateToString(SimOptions options, const std::string& name) {
  options.out_path = TempPath(name);
  auto summary = Generate(options);
  EXPECT_TRUE(summary.ok()) << summary.status().ToString();
  auto text = ReadFile(options.out_path);
  EXPECT_TRUE(text.ok());
  EXPECT_EQ(text->size(), summary->bytes);
  (void)RemoveFile(options.out_path);
  return text.ok() ? *text : std::string();
}

std::vector<UserHistory> Simulate(SimOptions options) {
  std::vector<UserHistory> users;
  options.on_user = [&](const UserHistory& u) { users.push_back(u); };
  auto summary = Generate(options);
  EXPECT_TRUE(summary.ok()) << summary.status().ToString();
  return users;
}

TEST(Generate, SameSeedSameBytesForAnyThreadCount) {
  SimOptions o = SmallOptions();
  o.cutoff_ms = o.start_ms + 20 * kMsPerDay;
  o.horizon_days = {7};
  o.truth_path = TempPath("truth1");
  o.threads = 1;
  std::string one = GenerateToString(o, "t1");
  auto truth_one = ReadFile(o.truth_path);
  o.threads = 3;
  o.truth_path = TempPath("truth3");
  std::string three = GenerateToString(o, "t3");
  auto truth_three = ReadFile(o.truth_path);
  ASSERT_TRUE(truth_one.ok() && truth_three.ok());
  EXPECT_GT(one.size(), 10000u);
  EXPECT_TRUE(one == three) << "thread count changed the output";
  EXPECT_TRUE(*truth_one == *truth_three);
  o.seed = 8;
  EXPECT_NE(GenerateToString(o, "s8"), one);
  (void)RemoveFile(TempPath("truth1"));
  (void)RemoveFile(TempPath("truth3"));
}

TEST(Generate, LinesAreAmplitudeShapedJsonOrderedByBlockThenTime) {
  std::string text = GenerateToString(SmallOptions(250, 30), "shape");
  size_t lines = 0, purchases = 0;
  int64_t previous_time = 0;
  for (size_t pos = 0; pos < text.size();) {
    size_t end = text.find('\n', pos);
    ASSERT_NE(end, std::string::npos) << "last line lacks a newline";
    auto j = nlohmann::json::parse(text.substr(pos, end - pos));
    pos = end + 1;
    ++lines;
    ASSERT_TRUE(j.contains("device_id"));
    ASSERT_TRUE(j["time"].is_number_integer());
    ASSERT_TRUE(j["insert_id"].is_string());
    int64_t t = j["time"];
    EXPECT_GE(t, previous_time) << "250 users are one block of 256, so the file is in time order";
    previous_time = t;
    if (j["event_type"] == "Purchase") {
      ++purchases;
      EXPECT_TRUE(j["revenue"].is_number());
      EXPECT_GT(j["event_properties"]["price"].get<double>(), 0.0);
      EXPECT_TRUE(j["event_properties"]["category"].is_string());
    }
  }
  EXPECT_GT(lines, 1000u);
  EXPECT_GT(purchases, 0u);
}

TEST(Generate, AnonymousDevicesAreLinkedToUsersAndPlansChangeByIdentify) {
  std::string text = GenerateToString(SmallOptions(400, 40), "identity");
  std::set<std::string> anonymous_devices, linked_devices;
  size_t identifies = 0;
  std::map<std::string, std::set<std::string>> plans_by_user;
  for (size_t pos = 0; pos < text.size();) {
    size_t end = text.find('\n', pos);
    auto j = nlohmann::json::parse(text.substr(pos, end - pos));
    pos = end + 1;
    std::string device = j["device_id"];
    if (!j.contains("user_id")) {
      anonymous_devices.insert(device);
      continue;
    }
    linked_devices.insert(device);
    if (j["event_type"] == "$identify") {
      ++identifies;
      EXPECT_EQ(j["user_properties"]["$set"]["plan"], "pro");
      continue;
    }
    plans_by_user[j["user_id"]].insert(j["user_properties"]["plan"].get<std::string>());
  }
  ASSERT_GT(anonymous_devices.size(), 20u);
  size_t linked = 0;
  for (const std::string& d : anonymous_devices) linked += linked_devices.count(d);
  EXPECT_GT(linked, anonymous_devices.size() / 2) << "anonymous devices should later carry a user_id";
  EXPECT_GT(identifies, 0u);
  size_t changed = 0;
  for (const auto& [user, plans] : plans_by_user) changed += plans.size() > 1;
  EXPECT_GT(changed, 0u) << "some users should move from free to pro";
}

TEST(Generate, EventTypeFrequenciesHaveALongZipfLikeTail) {
  std::vector<uint64_t> counts(EventTypeCount(), 0);
  uint64_t total = 0;
  for (const UserHistory& u : Simulate(SmallOptions(1500, 60))) {
    for (const SimEvent& e : u.events) {
      if (e.flags & kIdentifyLine) continue;
      ++counts[e.type];
      ++total;
    }
  }
  size_t seen = std::count_if(counts.begin(), counts.end(), [](uint64_t c) { return c > 0; });
  EXPECT_GE(seen, 90u);
  std::vector<uint64_t> sorted = counts;
  std::sort(sorted.rbegin(), sorted.rend());
  EXPECT_GT(sorted[0], total / 10) << "the head should be heavy";
  EXPECT_LT(sorted[80], total / 1000) << "the tail should be rare";
  // Slope of log(frequency) against log(rank) over ranks 2..64: Zipf-like means about -1.
  double sx = 0, sy = 0, sxx = 0, sxy = 0;
  int n = 0;
  for (int r = 2; r <= 64; ++r) {
    if (sorted[r - 1] == 0) continue;
    double x = std::log(r), y = std::log(static_cast<double>(sorted[r - 1]));
    sx += x, sy += y, sxx += x * x, sxy += x * y, ++n;
  }
  double slope = (n * sxy - sx * sy) / (n * sxx - sx * sx);
  EXPECT_LT(slope, -0.7);
  EXPECT_GT(slope, -2.5);
}

TEST(Generate, ChurnedUsersStopEntirely) {
  size_t churned = 0;
  for (const UserHistory& u : Simulate(SmallOptions(800, 40))) {
    if (u.churn_ms == INT64_MAX) continue;
    ++churned;
    for (const SimEvent& e : u.events) {
      // No session starts after churning; one open at that moment (or the farewell
      // session at the churn time itself) may still end after it.
      EXPECT_LE(e.session_id, std::max(u.churn_ms, u.signup_ms)) << "user " << u.index;
    }
  }
  EXPECT_GT(churned, 100u);
}

// The truth is the model's exact probability, so over many users its mean must match
// the realised rate, overall and within groups ranked by the truth.
TEST(Truth, MatchesRealisedOutcomesInExpectationAndByQuintile) {
  SimOptions o = SmallOptions(6000, 40);
  o.cutoff_ms = o.start_ms + 26 * kMsPerDay;
  o.horizon_days = {7, 14};
  struct Row { double purchase, churn; int purchased, churned; };
  std::vector<Row> rows;
  for (const UserHistory& u : Simulate(o)) {
    if (u.signup_ms >= o.cutoff_ms) {
      EXPECT_TRUE(u.truth.empty());
      continue;
    }
    ASSERT_EQ(u.truth.size(), 2u);
    bool purchased = false, active = false;
    for (const SimEvent& e : u.events) {
      if (e.time_ms < o.cutoff_ms) continue;
      if (e.time_ms < o.cutoff_ms + 14 * kMsPerDay) active = true;
      if (e.type == kPurchase && !(e.flags & kIdentifyLine) && e.time_ms < o.cutoff_ms + 7 * kMsPerDay) {
        purchased = true;
      }
    }
    rows.push_back({u.truth[0].purchase, u.truth[1].churn, purchased, !active});
  }
  ASSERT_GT(rows.size(), 3000u);
  auto check = [&](auto truth_of, auto label_of, const char* what) {
    std::sort(rows.begin(), rows.end(), [&](const Row& a, const Row& b) { return truth_of(a) < truth_of(b); });
    double all_truth = 0, all_label = 0;
    for (const Row& r : rows) all_truth += truth_of(r), all_label += label_of(r);
    double n = rows.size(), p = all_truth / n;
    EXPECT_NEAR(all_label / n, p, 4 * std::sqrt(p * (1 - p) / n) + 0.002) << what;
    for (int q = 0; q < 5; ++q) {
      size_t lo = rows.size() * q / 5, hi = rows.size() * (q + 1) / 5;
      double t = 0, y = 0;
      for (size_t k = lo; k < hi; ++k) t += truth_of(rows[k]), y += label_of(rows[k]);
      double m = hi - lo, pq = t / m;
      EXPECT_NEAR(y / m, pq, 4 * std::sqrt(std::max(pq * (1 - pq), 0.002) / m) + 0.003) << what << " quintile " << q;
    }
  };
  check([](const Row& r) { return r.purchase; }, [](const Row& r) { return r.purchased; }, "purchase in 7 days");
  check([](const Row& r) { return r.churn; }, [](const Row& r) { return r.churned; }, "no event in 14 days");
}

// ---- The bgnbd regime ----

SimOptions BgNbdOptions(uint64_t users, int days) {
  SimOptions o = SmallOptions(users, days);
  o.regime = Regime::kBgNbd;
  return o;
}

int64_t EndOf(const SimOptions& o) { return o.start_ms + int64_t{o.days} * kMsPerDay; }

// Purchase times of one user, in order.
std::vector<int64_t> PurchaseTimes(const UserHistory& u) {
  std::vector<int64_t> out;
  for (const SimEvent& e : u.events)
    if (e.type == kPurchase) out.push_back(e.time_ms);
  return out;
}

TEST(BgNbd, SameSeedSameBytesForAnyThreadCount) {
  SimOptions o = BgNbdOptions(2000, 120);
  o.cutoff_ms = o.start_ms + 90 * kMsPerDay;
  o.horizon_days = {7, 30};
  o.truth_path = TempPath("bg_truth1");
  o.threads = 1;
  std::string one = GenerateToString(o, "bg1");
  auto truth_one = ReadFile(o.truth_path);
  o.threads = 3;
  o.truth_path = TempPath("bg_truth3");
  std::string three = GenerateToString(o, "bg3");
  auto truth_three = ReadFile(o.truth_path);
  ASSERT_TRUE(truth_one.ok() && truth_three.ok());
  EXPECT_GT(one.size(), 100000u);
  EXPECT_TRUE(one == three) << "thread count changed the output";
  EXPECT_TRUE(*truth_one == *truth_three);
  EXPECT_EQ(truth_one->substr(0, truth_one->find('\n')), "user_id,purchase_7d,churn_7d,purchase_30d,churn_30d");
  o.seed = 8;
  EXPECT_NE(GenerateToString(o, "bg8"), one);
  o.regime = Regime::kApp;
  o.seed = 7;
  EXPECT_NE(GenerateToString(o, "bgapp"), one);
  (void)RemoveFile(TempPath("bg_truth1"));
  (void)RemoveFile(TempPath("bg_truth3"));
}

TEST(BgNbd, LinesArePurchaseSessionsWithGammaGammaRevenue) {
  SimOptions o = BgNbdOptions(3000, 365);
  std::string text = GenerateToString(o, "bgshape");
  std::map<std::string, size_t> types;
  double revenue = 0;
  size_t purchases = 0;
  std::set<std::string> buyers;
  for (size_t pos = 0; pos < text.size();) {
    size_t end = text.find('\n', pos);
    ASSERT_NE(end, std::string::npos);
    auto j = nlohmann::json::parse(text.substr(pos, end - pos));
    pos = end + 1;
    ASSERT_TRUE(j.contains("user_id"));
    std::string type = j["event_type"];
    ++types[type];
    int64_t t = j["time"];
    EXPECT_GE(t, o.start_ms);
    EXPECT_LT(t, EndOf(o));
    if (type == "Purchase") {
      ++purchases;
      buyers.insert(j["user_id"]);
      revenue += j["revenue"].get<double>();
      EXPECT_EQ(j["event_properties"]["price"].get<double>(), j["revenue"].get<double>());
    }
  }
  EXPECT_EQ(types.size(), 4u) << "App Open, View Item, Add to Cart, Purchase";
  EXPECT_EQ(types["Add to Cart"], purchases);
  EXPECT_GE(types["App Open"] + 5, purchases);
  EXPECT_EQ(buyers.size(), o.users) << "everyone buys once at least";
  // Gamma-Gamma: E[value] = p v / (q - 1) = 35.2 dollars.
  const BgNbdRegime& m = o.bgnbd;
  EXPECT_NEAR(revenue / purchases, m.spend_p * m.spend_v / (m.spend_q - 1), 4.0);
}

TEST(BgNbd, PurchaseRateAndDropoutMatchTheParameters) {
  SimOptions o = BgNbdOptions(20000, 365);
  const BgNbdRegime& m = o.bgnbd;
  const int64_t end = EndOf(o);
  double lambda_sum = 0, p_sum = 0, repeats = 0, expected_repeats = 0, deaths = 0, expected_deaths = 0;
  size_t users = 0;
  for (const UserHistory& u : Simulate(o)) {
    ++users;
    lambda_sum += u.purchase_rate_per_day;
    p_sum += u.dropout_probability;
    std::vector<int64_t> times = PurchaseTimes(u);
    ASSERT_FALSE(times.empty());
    ASSERT_EQ(times.front(), u.signup_ms) << "the first purchase starts the user's clock";
    EXPECT_LT(u.signup_ms, o.start_ms + (end - o.start_ms) / 2) << "first purchases in the first half";
    const double x = static_cast<double>(times.size() - 1);
    const bool dead = u.churn_ms != INT64_MAX;
    if (dead) {
      EXPECT_EQ(times.back(), u.churn_ms) << "dropout right after the last purchase";
      EXPECT_GT(times.size(), 1u) << "only after a repeat purchase";
    }
    // Optional stopping: E[repeats] = lambda * time alive, E[deaths] = p * repeats.
    const double alive_days = static_cast<double>((dead ? u.churn_ms : end) - u.signup_ms) / kMsPerDay;
    repeats += x;
    expected_repeats += u.purchase_rate_per_day * alive_days;
    deaths += dead;
    expected_deaths += u.dropout_probability * x;
  }
  ASSERT_EQ(users, o.users);
  const double n = static_cast<double>(users);
  // lambda ~ Gamma(r, alpha): mean r / alpha, relative sd of the mean 1 / sqrt(r n).
  EXPECT_NEAR(lambda_sum / n / (m.r / m.alpha), 1.0, 5.0 / std::sqrt(m.r * n));
  // p ~ Beta(a, b): mean a / (a + b).
  const double p_mean = m.a / (m.a + m.b);
  const double p_sd = std::sqrt(m.a * m.b / ((m.a + m.b) * (m.a + m.b) * (m.a + m.b + 1)));
  EXPECT_NEAR(p_sum / n, p_mean, 5.0 * p_sd / std::sqrt(n));
  EXPECT_GT(repeats, 10000);
  EXPECT_NEAR(repeats, expected_repeats, 5.0 * std::sqrt(expected_repeats));
  EXPECT_GT(deaths, 2000);
  EXPECT_NEAR(deaths, expected_deaths, 5.0 * std::sqrt(expected_deaths));
}

TEST(BgNbd, TruthIsTheLatentStatesProbabilityAndCalibrated) {
  SimOptions o = BgNbdOptions(20000, 200);
  o.cutoff_ms = o.start_ms + 170 * kMsPerDay;
  o.horizon_days = {7, 30};
  size_t rows = 0, dead = 0;
  double truth_sum = 0, realised = 0;
  for (const UserHistory& u : Simulate(o)) {
    if (u.signup_ms >= o.cutoff_ms) {
      EXPECT_TRUE(u.truth.empty());
      continue;
    }
    ASSERT_EQ(u.truth.size(), 2u);
    ++rows;
    const bool alive = u.churn_ms >= o.cutoff_ms;
    dead += !alive;
    for (const Truth& t : u.truth) {
      EXPECT_GE(t.purchase, 0.0);
      EXPECT_LE(t.purchase, 1.0);
      EXPECT_NEAR(t.purchase + t.churn, 1.0, 1e-12);
      if (!alive) {
        EXPECT_EQ(t.purchase, 0.0) << "dead users never buy again";
      } else {
        EXPECT_NEAR(t.purchase, 1.0 - std::exp(-u.purchase_rate_per_day * t.horizon_days), 1e-12);
      }
    }
    EXPECT_LE(u.truth[0].purchase, u.truth[1].purchase);
    bool bought = false;
    for (int64_t t : PurchaseTimes(u)) bought |= t >= o.cutoff_ms && t < o.cutoff_ms + 30 * kMsPerDay;
    truth_sum += u.truth[1].purchase;
    realised += bought;
  }
  EXPECT_EQ(rows, o.users) << "first purchases are all in the first half, before the cutoff";
  EXPECT_GT(dead, rows / 10);
  const double p = truth_sum / rows;
  EXPECT_NEAR(realised / rows, p, 4 * std::sqrt(p * (1 - p) / rows));
}

// With seasonality the truth integrates the seasonal rate over the window, and realised
// purchases follow it: the same calibration check as above, at a cutoff where the rate
// climbs, plus more repeat purchases in the month around the peak than around the trough.
TEST(BgNbd, SeasonalRateFollowsTheSeasonAndTheTruthIntegratesIt) {
  SimOptions o = BgNbdOptions(20000, 400);
  o.start_ms = ParseTime("2024-01-01").value();
  o.bgnbd.seasonal_amplitude = 0.8;  // peak: day 330, late November; trough late May
  o.cutoff_ms = ParseTime("2024-09-27").value();
  o.horizon_days = {30};
  double truth_sum = 0, realised = 0, stationary_sum = 0;
  size_t rows = 0, near_peak = 0, near_trough = 0;
  const int64_t peak = ParseTime("2024-11-26").value(), trough = ParseTime("2024-05-27").value();
  for (const UserHistory& u : Simulate(o)) {
    const std::vector<int64_t> times = PurchaseTimes(u);
    for (size_t i = 1; i < times.size(); ++i) {
      near_peak += std::abs(times[i] - peak) < 15 * kMsPerDay;
      near_trough += std::abs(times[i] - trough) < 15 * kMsPerDay;
    }
    if (u.truth.empty()) continue;
    ++rows;
    bool bought = false;
    for (int64_t t : times) bought |= t >= o.cutoff_ms && t < o.cutoff_ms + 30 * kMsPerDay;
    realised += bought;
    truth_sum += u.truth[0].purchase;
    if (u.churn_ms >= o.cutoff_ms) stationary_sum += -std::expm1(-u.purchase_rate_per_day * 30);
  }
  const double p = truth_sum / rows;
  EXPECT_NEAR(realised / rows, p, 4 * std::sqrt(p * (1 - p) / rows));
  EXPECT_GT(truth_sum, 1.2 * stationary_sum) << "the window after the cutoff is in the high season";
  // Rates 1.8x vs 0.2x of the mean at the peak and trough; deaths between the two lower
  // the peak's count, so only ask for more than twice.
  EXPECT_GT(near_peak, 2 * near_trough) << near_peak << " near the peak, " << near_trough << " near the trough";
}

// The regime is BG/NBD, so the fit on the users' (x, t_x, T) at a cutoff finds the
// parameters again (loosely: a and b are the least identified).
TEST(BgNbd, FitRecoversTheParameters) {
  SimOptions o = BgNbdOptions(20000, 365);
  const int64_t cutoff = o.start_ms + 335 * kMsPerDay;
  std::vector<ml::RfmSummary> customers;
  for (const UserHistory& u : Simulate(o)) {
    std::vector<int64_t> times;
    for (int64_t t : PurchaseTimes(u))
      if (t < cutoff) times.push_back(t);
    ASSERT_FALSE(times.empty());
    ml::RfmSummary c;
    c.x = static_cast<double>(times.size() - 1);
    c.t_x = static_cast<double>(times.back() - times.front()) / kMsPerDay;
    c.T = static_cast<double>(cutoff - times.front()) / kMsPerDay;
    customers.push_back(c);
  }
  auto fit = ml::FitBgNbd(customers);
  ASSERT_TRUE(fit.ok()) << fit.status().ToString();
  const ml::BgNbdParams& got = fit->params;
  const BgNbdRegime& m = o.bgnbd;
  std::printf("BG/NBD fit on %zu users: r %.4f (true %.4f), alpha %.3f (%.3f), a %.4f (%.4f), b %.4f (%.4f)\n",
              customers.size(), got.r, m.r, got.alpha, m.alpha, got.a, m.a, got.b, m.b);
  EXPECT_NEAR(got.r / m.r, 1.0, 0.15);
  EXPECT_NEAR(got.alpha / m.alpha, 1.0, 0.2);
  EXPECT_NEAR(got.a / m.a, 1.0, 0.35);
  EXPECT_NEAR(got.b / m.b, 1.0, 0.35);
  EXPECT_NEAR(got.a / (got.a + got.b) / (m.a / (m.a + m.b)), 1.0, 0.1) << "the mean dropout is well identified";
}

TEST(BgNbd, InvalidParametersNameTheFlag) {
  SimOptions o = BgNbdOptions(10, 30);
  EXPECT_TRUE(ValidateOptions(o).ok());
  o.bgnbd.alpha = 0;
  EXPECT_NE(ValidateOptions(o).message().find("--bgnbd"), std::string::npos);
  o = BgNbdOptions(10, 30);
  o.bgnbd.spend_q = -1;
  EXPECT_NE(ValidateOptions(o).message().find("--gamma-gamma"), std::string::npos);
}

TEST(Options, InvalidOptionsNameTheFlag) {
  SimOptions o = SmallOptions();
  o.users = 0;
  EXPECT_NE(ValidateOptions(o).message().find("--users"), std::string::npos);
  o = SmallOptions();
  o.days = 0;
  EXPECT_NE(ValidateOptions(o).message().find("--days"), std::string::npos);
  o = SmallOptions();
  o.truth_path = "/tmp/x";
  EXPECT_NE(ValidateOptions(o).message().find("--cutoff"), std::string::npos);
  o = SmallOptions(100, 30);
  o.cutoff_ms = o.start_ms + 25 * kMsPerDay;
  o.horizon_days = {7};
  Status past_end = ValidateOptions(o);
  EXPECT_EQ(past_end.code(), StatusCode::kInvalidArgument);
  EXPECT_NE(past_end.message().find("past the end"), std::string::npos);
  o.cutoff_ms = o.start_ms - kMsPerDay;
  EXPECT_NE(ValidateOptions(o).message().find("outside"), std::string::npos);
  o.cutoff_ms = o.start_ms + 10 * kMsPerDay;
  o.horizon_days = {};
  EXPECT_NE(ValidateOptions(o).message().find("--horizon-days"), std::string::npos);
  o.horizon_days = {7};
  EXPECT_TRUE(ValidateOptions(o).ok());
  auto unwritable = SmallOptions(10, 10);
  unwritable.out_path = "/nonexistent-dir/x.ndjson";
  EXPECT_EQ(Generate(unwritable).status().code(), StatusCode::kIoError);
}

}  // namespace
}  // namespace sibyl::sim
