// sim_check: measures what the simulator's ground truth makes possible (issue 4,
// "Accuracy"). It simulates users in memory, builds at a cutoff T
//   - labels: Purchase in [T, T+7d); no event at all in [T, T+14d),
//   - a recency + frequency baseline and rich per-user features (8 weekly counts per
//     event type, category interest, plan, platform, tenure),
// fits logistic regressions on half the users, and prints, on the other half of the
// users active in the 30 days before T: the base rates, the AUC of the true
// probabilities, of the baseline and of the rich model, and the truth's calibration.
//
//   sim_check [--users 100000] [--days 90] [--seed 1] [--threads 0]
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <numeric>
#include <string>
#include <vector>

#include <xgboost/c_api.h>

#include "common/time.h"
#include "sim/catalogue.h"
#include "sim/generator.h"
#include "sim/rng.h"

namespace {

using sibyl::kMsPerDay;
namespace sim = sibyl::sim;

struct Row {
  std::vector<float> rf;    // recency, frequency
  std::vector<float> rich;  // everything visible
  double truth_purchase = 0, truth_churn = 0;
  int purchased = 0, churned = 0;
  bool test = false;
};

double Auc(const std::vector<double>& score, const std::vector<int>& label) {
  std::vector<size_t> order(score.size());
  std::iota(order.begin(), order.end(), 0);
  std::sort(order.begin(), order.end(), [&](size_t a, size_t b) { return score[a] < score[b]; });
  double rank_sum = 0, positives = 0;
  for (size_t i = 0; i < order.size();) {
    size_t j = i;
    while (j < order.size() && score[order[j]] == score[order[i]]) ++j;
    double mid_rank = (i + j + 1) / 2.0;  // 1-based average rank of the tie group
    for (size_t k = i; k < j; ++k) {
      if (label[order[k]]) {
        rank_sum += mid_rank;
        positives += 1;
      }
    }
    i = j;
  }
  double negatives = score.size() - positives;
  if (positives == 0 || negatives == 0) return 0.5;
  return (rank_sum - positives * (positives + 1) / 2) / (positives * negatives);
}

// Logistic regression on standardised features, full-batch Adam with a little L2.
std::vector<double> FitAndScore(const std::vector<std::vector<float>>& train_x, const std::vector<int>& train_y,
                                const std::vector<std::vector<float>>& test_x, int iterations) {
  const size_t d = train_x.empty() ? 0 : train_x[0].size();
  std::vector<double> mean(d, 0), sd(d, 0);
  for (const auto& x : train_x) for (size_t j = 0; j < d; ++j) mean[j] += x[j];
  for (double& m : mean) m /= train_x.size();
  for (const auto& x : train_x) for (size_t j = 0; j < d; ++j) sd[j] += (x[j] - mean[j]) * (x[j] - mean[j]);
  for (double& s : sd) s = std::sqrt(s / train_x.size()) + 1e-9;
  std::vector<double> w(d + 1, 0), m1(d + 1, 0), m2(d + 1, 0), grad(d + 1);
  const double lr = 0.05, l2 = 3e-3;
  for (int it = 1; it <= iterations; ++it) {
    std::fill(grad.begin(), grad.end(), 0);
    for (size_t i = 0; i < train_x.size(); ++i) {
      double z = w[d];
      for (size_t j = 0; j < d; ++j) z += w[j] * (train_x[i][j] - mean[j]) / sd[j];
      double err = 1 / (1 + std::exp(-z)) - train_y[i];
      for (size_t j = 0; j < d; ++j) grad[j] += err * (train_x[i][j] - mean[j]) / sd[j];
      grad[d] += err;
    }
    for (size_t j = 0; j <= d; ++j) {
      double g = grad[j] / train_x.size() + (j < d ? l2 * w[j] : 0);
      m1[j] = 0.9 * m1[j] + 0.1 * g;
      m2[j] = 0.999 * m2[j] + 0.001 * g * g;
      double mh = m1[j] / (1 - std::pow(0.9, it)), vh = m2[j] / (1 - std::pow(0.999, it));
      w[j] -= lr * mh / (std::sqrt(vh) + 1e-8);
    }
  }
  std::vector<double> scores;
  for (const auto& x : test_x) {
    double z = w[d];
    for (size_t j = 0; j < d; ++j) z += w[j] * (x[j] - mean[j]) / sd[j];
    scores.push_back(z);
  }
  return scores;
}

// Gradient-boosted trees (XGBoost), standing in for what sibyl's trainer can reach.
std::vector<double> BoostAndScore(const std::vector<std::vector<float>>& train_x, const std::vector<int>& train_y,
                                  const std::vector<std::vector<float>>& test_x) {
  auto flatten = [](const std::vector<std::vector<float>>& rows) {
    std::vector<float> flat;
    for (const auto& r : rows) flat.insert(flat.end(), r.begin(), r.end());
    return flat;
  };
  const size_t d = train_x[0].size();
  std::vector<float> train_flat = flatten(train_x), test_flat = flatten(test_x);
  std::vector<float> labels(train_y.begin(), train_y.end());
  DMatrixHandle train, test;
  XGDMatrixCreateFromMat(train_flat.data(), train_x.size(), d, -1e30f, &train);
  XGDMatrixSetFloatInfo(train, "label", labels.data(), labels.size());
  XGDMatrixCreateFromMat(test_flat.data(), test_x.size(), d, -1e30f, &test);
  BoosterHandle booster;
  XGBoosterCreate(&train, 1, &booster);
  XGBoosterSetParam(booster, "objective", "binary:logistic");
  XGBoosterSetParam(booster, "eta", "0.05");
  XGBoosterSetParam(booster, "max_depth", "5");
  XGBoosterSetParam(booster, "subsample", "0.8");
  XGBoosterSetParam(booster, "colsample_bytree", "0.5");
  XGBoosterSetParam(booster, "min_child_weight", "5");
  XGBoosterSetParam(booster, "nthread", "2");
  XGBoosterSetParam(booster, "seed", "1");
  for (int it = 0; it < 300; ++it) XGBoosterUpdateOneIter(booster, it, train);
  bst_ulong n = 0;
  const float* out = nullptr;
  XGBoosterPredict(booster, test, 0, 0, 0, &n, &out);
  std::vector<double> scores(out, out + n);
  XGBoosterFree(booster);
  XGDMatrixFree(train);
  XGDMatrixFree(test);
  return scores;
}

void Report(const char* name, const std::vector<Row>& rows, bool purchase) {
  std::vector<std::vector<float>> train_rf, train_rich, test_rf, test_rich;
  std::vector<int> train_y, test_y;
  std::vector<double> truth;
  for (const Row& r : rows) {
    int y = purchase ? r.purchased : r.churned;
    if (r.test) {
      test_rf.push_back(r.rf);
      test_rich.push_back(r.rich);
      test_y.push_back(y);
      truth.push_back(purchase ? r.truth_purchase : r.truth_churn);
    } else {
      train_rf.push_back(r.rf);
      train_rich.push_back(r.rich);
      train_y.push_back(y);
    }
  }
  double base = std::accumulate(test_y.begin(), test_y.end(), 0.0) / test_y.size();
  double mean_truth = std::accumulate(truth.begin(), truth.end(), 0.0) / truth.size();
  double auc_truth = Auc(truth, test_y);
  double auc_rf = Auc(FitAndScore(train_rf, train_y, test_rf, 300), test_y);
  double auc_rich = Auc(FitAndScore(train_rich, train_y, test_rich, 120), test_y);
  double auc_trees = Auc(BoostAndScore(train_rich, train_y, test_rich), test_y);
  const double gap = std::max(1e-9, auc_truth - auc_rf);
  std::printf("%-12s held-out users %zu  base rate %.4f  mean truth %.4f\n", name, test_y.size(), base, mean_truth);
  std::printf("%-12s AUC truth %.4f  recency+frequency LR %.4f  gap %.4f\n", name, auc_truth, auc_rf,
              auc_truth - auc_rf);
  std::printf("%-12s AUC rich-feature LR %.4f (closes %.0f%% of the gap)  rich-feature XGBoost %.4f (closes %.0f%%)\n",
              name, auc_rich, 100.0 * (auc_rich - auc_rf) / gap, auc_trees, 100.0 * (auc_trees - auc_rf) / gap);
  // Calibration of the truth by deciles of the truth.
  std::vector<size_t> order(truth.size());
  std::iota(order.begin(), order.end(), 0);
  std::sort(order.begin(), order.end(), [&](size_t a, size_t b) { return truth[a] < truth[b]; });
  std::printf("%-12s truth deciles (mean truth / realised):", name);
  for (int dec = 0; dec < 10; ++dec) {
    size_t lo = order.size() * dec / 10, hi = order.size() * (dec + 1) / 10;
    double t = 0, y = 0;
    for (size_t k = lo; k < hi; ++k) {
      t += truth[order[k]];
      y += test_y[order[k]];
    }
    std::printf(" %.3f/%.3f", t / (hi - lo), y / (hi - lo));
  }
  std::printf("\n");
}

}  // namespace

int main(int argc, char** argv) {
  sim::SimOptions options;
  options.users = 100000;
  options.days = 90;
  options.out_path = "";
  for (int i = 1; i + 1 < argc; i += 2) {
    std::string flag = argv[i];
    if (flag == "--users") options.users = std::strtoull(argv[i + 1], nullptr, 10);
    else if (flag == "--days") options.days = std::atoi(argv[i + 1]);
    else if (flag == "--seed") options.seed = std::strtoull(argv[i + 1], nullptr, 10);
    else if (flag == "--threads") options.threads = std::atoi(argv[i + 1]);
    else {
      std::fprintf(stderr, "usage: sim_check [--users N] [--days D] [--seed S] [--threads T]\n");
      return 2;
    }
  }
  const int64_t cutoff = options.start_ms + (options.days - 14) * kMsPerDay;
  options.cutoff_ms = cutoff;
  options.horizon_days = {7, 14};

  const size_t types = sim::EventTypeCount();
  const size_t categories = sim::Categories().size();
  constexpr int kWeeks = 8;
  std::vector<Row> rows;
  uint64_t events = 0;
  options.on_user = [&](const sim::UserHistory& user) {
    events += user.events.size();
    if (user.truth.empty()) return;
    int64_t last = -1;
    int count_30d = 0, count_all = 0;
    bool purchased = false, active_after = false;
    std::vector<float> weekly(types * kWeeks, 0), category_views(categories, 0);
    uint8_t plan = 0;
    double price_sum = 0, price_n = 0;
    for (const sim::SimEvent& e : user.events) {
      if (e.flags & (sim::kAnonymousEvent | sim::kIdentifyLine)) {
        if (e.time_ms < cutoff && (e.flags & sim::kIdentifyLine)) plan = e.plan;
        continue;
      }
      if (e.time_ms < cutoff) {
        last = e.time_ms;
        ++count_all;
        plan = e.plan;
        if (e.time_ms >= cutoff - 30 * kMsPerDay) ++count_30d;
        int64_t week = (cutoff - 1 - e.time_ms) / (7 * kMsPerDay);
        if (week < kWeeks) {
          weekly[e.type * kWeeks + week] += 1;
          if (e.type == sim::kViewItem) {
            category_views[e.category] += 1;
            price_sum += e.price_cents / 100.0;
            price_n += 1;
          }
        }
      } else {
        if (e.time_ms < cutoff + 14 * kMsPerDay) active_after = true;
        if (e.type == sim::kPurchase && e.time_ms < cutoff + 7 * kMsPerDay) purchased = true;
      }
    }
    if (last < cutoff - 30 * kMsPerDay) return;  // cohort: active in the last 30 days
    Row row;
    double recency_days = static_cast<double>(cutoff - last) / kMsPerDay;
    row.rf = {static_cast<float>(std::log1p(recency_days)), static_cast<float>(std::log1p(count_30d)),
              static_cast<float>(std::log1p(count_all))};
    row.rich = row.rf;
    // The 50 most frequent types: the model's types, then the head of the long tail.
    for (size_t t = 0; t < std::min<size_t>(types, 50); ++t) {
      for (int w = 0; w < kWeeks; ++w) row.rich.push_back(std::log1p(weekly[t * kWeeks + w]));
    }
    for (float c : category_views) row.rich.push_back(std::log1p(c));
    row.rich.push_back(plan);
    row.rich.push_back(user.platform == sim::kIos);
    row.rich.push_back(user.platform == sim::kAndroid);
    row.rich.push_back(static_cast<float>(std::log1p(static_cast<double>(cutoff - user.signup_ms) / kMsPerDay)));
    row.rich.push_back(static_cast<float>(price_n ? std::log(price_sum / price_n) : 0));
    row.truth_purchase = user.truth[0].purchase;
    row.truth_churn = user.truth[1].churn;
    row.purchased = purchased;
    row.churned = !active_after;
    row.test = (sim::SplitMix64(user.index) & 1) != 0;
    rows.push_back(std::move(row));
  };
  auto summary = sim::Generate(options);
  if (!summary.ok()) {
    std::fprintf(stderr, "sim_check: %s\n", summary.status().ToString().c_str());
    return 1;
  }
  std::printf("users %llu, events %llu, cutoff %s, cohort (active in the 30 days before) %zu\n",
              static_cast<unsigned long long>(summary->users), static_cast<unsigned long long>(events),
              sibyl::FormatTime(cutoff).c_str(), rows.size());
  Report("purchase_7d", rows, true);
  Report("churn_14d", rows, false);
  return 0;
}
