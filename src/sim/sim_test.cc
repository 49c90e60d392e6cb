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
