#include "ml/linear_model.h"

#include <algorithm>
#include <cmath>
#include <deque>
#include <limits>
#include <thread>

namespace sibyl::ml {
namespace {

// Rows are processed in fixed chunks whose partial sums are added in chunk order, so the
// fitted coefficients do not depend on the number of threads.
constexpr size_t kChunkRows = 4096;
constexpr double kPoissonExpansionFrom = 50;

double Softplus(double m) { return m > 0 ? m + std::log1p(std::exp(-m)) : std::log1p(std::exp(m)); }
double Sigmoid(double m) { return 1.0 / (1.0 + std::exp(-m)); }

template <typename Fn>
void ForEachChunk(size_t num_chunks, int num_threads, Fn&& fn) {
  const int workers = static_cast<int>(std::min<size_t>(num_threads, num_chunks));
  if (workers <= 1) {
    for (size_t c = 0; c < num_chunks; ++c) fn(c);
    return;
  }
  std::vector<std::thread> threads;
  for (int t = 0; t < workers; ++t) {
    threads.emplace_back([&, t] {
      for (size_t c = t; c < num_chunks; c += workers) fn(c);
    });
  }
  for (auto& thread : threads) thread.join();
}

// The fit rows in compressed sparse form: per row, the columns with a non-zero value
// (NaN already replaced by the column mean), constant columns left out. Event features
// are mostly zero counts and flags, so one pass over this touches a small share of the
// dense matrix; centring is folded into the offset and the gradient (sum of d * mean).
struct SparseRows {
  std::vector<size_t> starts;     // num_rows + 1
  std::vector<uint32_t> columns;
  std::vector<float> values;
};

// The value a column enters the model as (LinearOptions::log_transform); NaN stays NaN.
inline float Transformed(float x, bool log_transform) {
  return log_transform ? std::copysign(std::log1p(std::fabs(x)), x) : x;
}

SparseRows ToSparse(const Dataset& data, std::span<const uint32_t> rows,
                    const std::vector<double>& means, const std::vector<double>& scales, bool log_transform) {
  const size_t p = means.size();
  SparseRows out;
  out.starts.reserve(rows.size() + 1);
  out.starts.push_back(0);
  for (uint32_t r : rows) {
    const float* x = data.row(r);
    for (size_t j = 0; j < p; ++j) {
      if (scales[j] <= 0) continue;
      const float v = std::isnan(x[j]) ? static_cast<float>(means[j]) : Transformed(x[j], log_transform);
      if (v == 0.0f) continue;
      out.columns.push_back(static_cast<uint32_t>(j));
      out.values.push_back(v);
    }
    out.starts.push_back(out.values.size());
  }
  return out;
}

// Logistic (labels 0/1), least squares (standardised amounts) or Poisson quasi-likelihood
// with a log link (amounts divided by their mean: the intercept starts at 0 and the penalty
// and tolerance mean the same for any currency).
enum class Loss { kLogistic, kSquared, kPoisson };

// The objective: weighted mean loss plus the ridge penalty, over the standardised
// coefficients w (size p) and the intercept b (last entry of theta).
class Objective {
 public:
  Objective(const SparseRows& sparse, size_t num_rows, std::span<const float> weights,
            std::vector<double> targets, const std::vector<double>& means,
            const std::vector<double>& scales, double l2, Loss loss, int num_threads)
      : sparse_(sparse), num_rows_(num_rows), weights_(weights), targets_(std::move(targets)),
        means_(means), scales_(scales), l2_(l2), loss_(loss), num_threads_(num_threads) {
    total_weight_ = 0;
    for (size_t i = 0; i < num_rows_; ++i) total_weight_ += weights_.empty() ? 1.0 : weights_[i];
  }

  // Returns the objective at theta and writes its gradient.
  double Evaluate(const std::vector<double>& theta, std::vector<double>& gradient) const {
    const size_t p = means_.size();
    std::vector<double> a(p);  // coefficients on the raw scale
    double offset = theta[p];
    for (size_t j = 0; j < p; ++j) {
      a[j] = scales_[j] > 0 ? theta[j] / scales_[j] : 0;
      offset -= a[j] * means_[j];
    }
    const size_t num_chunks = (num_rows_ + kChunkRows - 1) / kChunkRows;
    std::vector<double> chunk_loss(num_chunks, 0), chunk_dsum(num_chunks, 0);
    std::vector<std::vector<double>> chunk_grad(num_chunks);
    ForEachChunk(num_chunks, num_threads_, [&](size_t c) {
      std::vector<double>& grad = chunk_grad[c];
      grad.assign(p, 0);
      double loss = 0, dsum = 0;
      const size_t end = std::min(num_rows_, (c + 1) * kChunkRows);
      const uint32_t* columns = sparse_.columns.data();
      const float* values = sparse_.values.data();
      for (size_t i = c * kChunkRows; i < end; ++i) {
        const size_t begin = sparse_.starts[i], stop = sparse_.starts[i + 1];
        double margin = offset;
        for (size_t k = begin; k < stop; ++k) margin += a[columns[k]] * values[k];
        const double w = weights_.empty() ? 1.0 : weights_[i];
        const double y = targets_[i];
        double d;
        if (loss_ == Loss::kLogistic) {
          loss += w * (Softplus(margin) - y * margin);
          d = w * (Sigmoid(margin) - y);
        } else if (loss_ == Loss::kPoisson) {
          // e^m - y m; past m = 50 (e^50 times the mean amount, which no optimum comes near)
          // its second-order expansion, so a wild trial step of the line search gives a
          // large finite loss and the objective stays convex.
          double mu, slope;
          if (margin <= kPoissonExpansionFrom) {
            mu = slope = std::exp(margin);
          } else {
            const double e = std::exp(kPoissonExpansionFrom), dm = margin - kPoissonExpansionFrom;
            mu = e * (1 + dm + 0.5 * dm * dm);
            slope = e * (1 + dm);
          }
          loss += w * (mu - y * margin);
          d = w * (slope - y);
        } else {
          loss += w * 0.5 * (margin - y) * (margin - y);
          d = w * (margin - y);
        }
        dsum += d;
        for (size_t k = begin; k < stop; ++k) grad[columns[k]] += d * values[k];
      }
      chunk_loss[c] = loss;
      chunk_dsum[c] = dsum;
    });
    double loss = 0, dsum = 0;
    std::vector<double> gx(p, 0);
    for (size_t c = 0; c < num_chunks; ++c) {
      loss += chunk_loss[c];
      dsum += chunk_dsum[c];
      for (size_t j = 0; j < p; ++j) gx[j] += chunk_grad[c][j];
    }
    gradient.assign(p + 1, 0);
    double objective = loss / total_weight_;
    for (size_t j = 0; j < p; ++j) {
      if (scales_[j] > 0) {
        gradient[j] = (gx[j] - means_[j] * dsum) / scales_[j] / total_weight_ + l2_ * theta[j];
      }
      objective += 0.5 * l2_ * theta[j] * theta[j];
    }
    gradient[p] = dsum / total_weight_;
    return objective;
  }

 private:
  const SparseRows& sparse_;
  size_t num_rows_;
  std::span<const float> weights_;
  std::vector<double> targets_;
  const std::vector<double>& means_;
  const std::vector<double>& scales_;
  double l2_;
  Loss loss_;
  int num_threads_;
  double total_weight_;
};

// Log-scale terms (bias last) to amounts that add up to exp(min(their sum, max_margin)),
// each term keeping its sign and share: t_j * exp(b) * (exp(T) - 1) / T, with
// (exp(T) - 1) / T -> 1 at T = 0.
void ToAmountTerms(std::span<double> terms, double max_margin) {
  const size_t p = terms.size() - 1;
  double total = 0;
  for (size_t j = 0; j < p; ++j) total += terms[j];
  const double bias = std::min(terms[p], max_margin);
  // Beyond the bound the terms shrink alike, so that they still add up to the amount.
  const double capped = std::min(total, max_margin - bias);
  const double per_unit = std::exp(bias) * (std::abs(total) < 1e-12 ? 1.0 : std::expm1(capped) / total);
  for (size_t j = 0; j < p; ++j) terms[j] *= per_unit;
  terms[p] = std::exp(bias);
}

double Dot(const std::vector<double>& a, const std::vector<double>& b) {
  double s = 0;
  for (size_t i = 0; i < a.size(); ++i) s += a[i] * b[i];
  return s;
}

// Limited-memory BFGS with a backtracking (Armijo) line search. Returns iterations used.
// `converged` says whether it stopped on the tolerance (or at a zero gradient) rather than
// at the iteration cap or a failed line search.
int MinimiseLbfgs(const Objective& objective, std::vector<double>& theta, int max_iterations,
                  double tolerance, double& final_value, bool& converged) {
  converged = false;
  constexpr size_t kHistory = 10;
  const size_t n = theta.size();
  std::vector<double> gradient, next_gradient, direction(n), next(n);
  double value = objective.Evaluate(theta, gradient);
  std::deque<std::vector<double>> s_history, y_history;
  int iteration = 0;
  for (; iteration < max_iterations; ++iteration) {
    // Two-loop recursion: direction = -H * gradient.
    direction = gradient;
    std::vector<double> alpha(s_history.size());
    for (size_t k = s_history.size(); k-- > 0;) {
      alpha[k] = Dot(s_history[k], direction) / Dot(y_history[k], s_history[k]);
      for (size_t i = 0; i < n; ++i) direction[i] -= alpha[k] * y_history[k][i];
    }
    if (!s_history.empty()) {
      double gamma = Dot(s_history.back(), y_history.back()) / Dot(y_history.back(), y_history.back());
      for (double& d : direction) d *= gamma;
    } else {
      double norm = std::sqrt(Dot(gradient, gradient));
      if (norm == 0) {
        converged = true;
        break;
      }
      for (double& d : direction) d /= std::max(1.0, norm);
    }
    for (size_t k = 0; k < s_history.size(); ++k) {
      double beta = Dot(y_history[k], direction) / Dot(y_history[k], s_history[k]);
      for (size_t i = 0; i < n; ++i) direction[i] += s_history[k][i] * (alpha[k] - beta);
    }
    for (double& d : direction) d = -d;
    double slope = Dot(gradient, direction);
    if (slope >= 0) {  // not a descent direction: restart from steepest descent
      s_history.clear();
      y_history.clear();
      for (size_t i = 0; i < n; ++i) direction[i] = -gradient[i];
      slope = Dot(gradient, direction);
      if (slope >= 0) break;
    }
    double step = 1, next_value = 0;
    bool accepted = false;
    for (int tries = 0; tries < 40; ++tries, step *= 0.5) {
      for (size_t i = 0; i < n; ++i) next[i] = theta[i] + step * direction[i];
      next_value = objective.Evaluate(next, next_gradient);
      if (next_value <= value + 1e-4 * step * slope) {
        accepted = true;
        break;
      }
    }
    if (!accepted) break;
    std::vector<double> s(n), y(n);
    for (size_t i = 0; i < n; ++i) {
      s[i] = next[i] - theta[i];
      y[i] = next_gradient[i] - gradient[i];
    }
    if (Dot(s, y) > 1e-12) {
      s_history.push_back(std::move(s));
      y_history.push_back(std::move(y));
      if (s_history.size() > kHistory) {
        s_history.pop_front();
        y_history.pop_front();
      }
    }
    const double improvement = (value - next_value) / std::max({std::abs(value), std::abs(next_value), 1e-12});
    theta.swap(next);
    gradient.swap(next_gradient);
    value = next_value;
    if (improvement < tolerance) {
      ++iteration;
      converged = true;
      break;
    }
  }
  final_value = value;
  return iteration;
}

}  // namespace

Result<std::unique_ptr<LinearModel>> LinearModel::Train(const Dataset& data,
                                                        std::span<const uint32_t> rows,
                                                        std::span<const float> row_weights,
                                                        const LinearOptions& options) {
  if (rows.empty()) return InvalidArgument("linear model: no training rows");
  if (!row_weights.empty() && row_weights.size() != rows.size()) {
    return InvalidArgument("linear model: {} weights for {} rows", row_weights.size(), rows.size());
  }
  const size_t p = data.num_columns();
  auto model = std::make_unique<LinearModel>();
  model->task_ = data.kind;
  model->log_transform_ = options.log_transform;

  // Column means and standard deviations (NaN skipped), by Welford's update.
  std::vector<double> mean(p, 0), m2(p, 0);
  std::vector<size_t> count(p, 0);
  for (uint32_t r : rows) {
    const float* x = data.row(r);
    for (size_t j = 0; j < p; ++j) {
      if (std::isnan(x[j])) continue;
      const double v = Transformed(x[j], options.log_transform);
      ++count[j];
      double delta = v - mean[j];
      mean[j] += delta / count[j];
      m2[j] += delta * (v - mean[j]);
    }
  }
  model->means_ = mean;
  model->scales_.assign(p, 0);
  for (size_t j = 0; j < p; ++j) {
    double sd = count[j] > 1 ? std::sqrt(m2[j] / count[j]) : 0;
    // Relative threshold: a column whose spread is rounding noise is constant.
    model->scales_[j] = sd > 1e-9 * std::max(1.0, std::abs(mean[j])) ? sd : 0;
  }
  if (!options.only_columns.empty()) {
    std::vector<double> kept(p, 0);
    for (uint32_t j : options.only_columns)
      if (j < p) kept[j] = model->scales_[j];
    model->scales_ = std::move(kept);
  }

  // Targets: labels for classification; for regression standardised amounts (identity
  // link) or amounts over their mean (log link), so that the same penalty and tolerance
  // fit every currency scale.
  std::vector<double> targets(rows.size());
  double weight_sum = 0, target_mean = 0, target_sd = 1;
  bool any_negative = false;
  for (size_t i = 0; i < rows.size(); ++i) {
    double w = row_weights.empty() ? 1.0 : row_weights[i];
    weight_sum += w;
    target_mean += w * data.labels[rows[i]];
    any_negative |= data.labels[rows[i]] < 0;
  }
  target_mean /= weight_sum;
  const bool regression = data.kind == TaskKind::kRegression;
  using AmountLink = LinearOptions::AmountLink;
  if (regression && options.amount_link == AmountLink::kLog && (any_negative || !(target_mean > 0)))
    return InvalidArgument("linear model: a log link needs amounts >= 0 with a positive mean");
  model->log_link_ = regression && options.amount_link != AmountLink::kIdentity && !any_negative && target_mean > 0;
  if (model->log_link_) {
    for (size_t i = 0; i < rows.size(); ++i) targets[i] = data.labels[rows[i]] / target_mean;
  } else if (regression) {
    double var = 0;
    for (size_t i = 0; i < rows.size(); ++i) {
      double w = row_weights.empty() ? 1.0 : row_weights[i];
      double d = data.labels[rows[i]] - target_mean;
      var += w * d * d;
    }
    target_sd = var > 0 ? std::sqrt(var / weight_sum) : 1;
    for (size_t i = 0; i < rows.size(); ++i) targets[i] = (data.labels[rows[i]] - target_mean) / target_sd;
  } else {
    for (size_t i = 0; i < rows.size(); ++i) targets[i] = data.labels[rows[i]];
  }

  std::vector<double> theta(p + 1, 0);
  if (data.kind == TaskKind::kClassification) {
    double rate = std::clamp(target_mean, 1e-6, 1 - 1e-6);
    theta[p] = std::log(rate / (1 - rate));
  }
  const SparseRows sparse = ToSparse(data, rows, model->means_, model->scales_, options.log_transform);
  const Loss loss = !regression ? Loss::kLogistic : model->log_link_ ? Loss::kPoisson : Loss::kSquared;
  Objective objective(sparse, rows.size(), row_weights, std::move(targets), model->means_,
                      model->scales_, options.l2, loss, ResolveThreads(options.num_threads));
  double final_value = 0;
  bool converged = false;
  int iterations =
      MinimiseLbfgs(objective, theta, options.max_iterations, options.tolerance, final_value, converged);

  const bool standardised = regression && !model->log_link_;
  const double scale = standardised ? target_sd : 1.0;
  model->coefficients_.assign(theta.begin(), theta.begin() + p);
  for (double& c : model->coefficients_) c *= scale;
  model->intercept_ = standardised     ? theta[p] * scale + target_mean
                      : model->log_link_ ? theta[p] + std::log(target_mean)
                                         : theta[p];
  model->summary_ = {{"params", {{"l2", options.l2}, {"max_iterations", options.max_iterations},
                                 {"tolerance", options.tolerance}}},
                     {"log_transform", options.log_transform},
                     {"iterations", iterations},
                     {"converged", converged},
                     {"objective", final_value}};
  if (regression) model->summary_["link"] = model->log_link_ ? "log" : "identity";
  if (model->log_link_) {
    // The largest amount the model predicts is the largest it predicts for a row it was
    // fitted on. Through the exponential, a user whose columns lie beyond every fit row's
    // (a coefficient learned without the few largest customers, a count no one reached)
    // would otherwise be carried to hundreds of times any amount seen (docs/ML.md,
    // "Amounts").
    double max_margin = -std::numeric_limits<double>::infinity();
    for (uint32_t r : rows) max_margin = std::max(max_margin, model->Margin(data.row(r)));
    model->max_margin_ = std::min(max_margin, kMaxLogAmount);
    model->summary_["max_amount"] = std::exp(model->max_margin_);
  }
  return model;
}

double LinearModel::Margin(const float* row) const {
  double margin = intercept_;
  for (size_t j = 0; j < means_.size(); ++j) {
    if (scales_[j] > 0 && !std::isnan(row[j])) {
      margin += coefficients_[j] * (Transformed(row[j], log_transform_) - means_[j]) / scales_[j];
    }
  }
  return margin;
}

Result<std::vector<double>> LinearModel::PredictMargin(std::span<const float> rows) const {
  const size_t p = means_.size();
  if (rows.size() % p != 0) return InvalidArgument("row data is not a whole number of rows");
  std::vector<double> margins(rows.size() / p);
  for (size_t r = 0; r < margins.size(); ++r) margins[r] = Margin(rows.data() + r * p);
  if (log_link_)
    for (double& m : margins) m = std::exp(std::min(m, max_margin_));
  return margins;
}

Result<std::vector<double>> LinearModel::Contributions(std::span<const float> rows) const {
  const size_t p = means_.size();
  if (rows.size() % p != 0) return InvalidArgument("row data is not a whole number of rows");
  const size_t n = rows.size() / p;
  std::vector<double> out(n * (p + 1), 0);
  for (size_t r = 0; r < n; ++r) {
    const float* x = rows.data() + r * p;
    double* c = out.data() + r * (p + 1);
    for (size_t j = 0; j < p; ++j) {
      if (scales_[j] > 0 && !std::isnan(x[j]))
        c[j] = coefficients_[j] * (Transformed(x[j], log_transform_) - means_[j]) / scales_[j];
    }
    c[p] = intercept_;
    if (log_link_) ToAmountTerms(std::span<double>(c, p + 1), max_margin_);
  }
  return out;
}

Result<std::string> LinearModel::Serialize() const {
  nlohmann::json j = {{"format", "sibyl-linear-v1"},
                      {"task", TaskKindName(task_)},
                      {"log_transform", log_transform_},
                      {"link", log_link_ ? "log" : "identity"},
                      {"means", means_},
                      {"scales", scales_},
                      {"coefficients", coefficients_},
                      {"intercept", intercept_}};
  if (log_link_) j["max_margin"] = max_margin_;
  return j.dump();
}

Result<std::unique_ptr<LinearModel>> LinearModel::Load(std::string_view bytes) {
  auto model = std::make_unique<LinearModel>();
  try {
    nlohmann::json j = nlohmann::json::parse(bytes);
    if (j.at("format") != "sibyl-linear-v1") return Corruption("linear model: unknown format");
    model->task_ = j.at("task") == "regression" ? TaskKind::kRegression : TaskKind::kClassification;
    model->log_transform_ = j.value("log_transform", false);
    const std::string link = j.value("link", "identity");
    if (link != "identity" && link != "log") return Corruption("linear model: unknown link '{}'", link);
    model->log_link_ = link == "log";
    if (model->log_link_ && model->task_ != TaskKind::kRegression)
      return Corruption("linear model: a log link on a classifier");
    model->means_ = j.at("means").get<std::vector<double>>();
    model->scales_ = j.at("scales").get<std::vector<double>>();
    model->coefficients_ = j.at("coefficients").get<std::vector<double>>();
    model->intercept_ = j.at("intercept").get<double>();
    // Models written before the bound: the old limit, e^700.
    model->max_margin_ = std::min(j.value("max_margin", kMaxLogAmount), kMaxLogAmount);
  } catch (const nlohmann::json::exception& e) {
    return Corruption("linear model: {}", e.what());
  }
  const size_t p = model->means_.size();
  if (model->scales_.size() != p || model->coefficients_.size() != p || p == 0) {
    return Corruption("linear model: inconsistent sizes");
  }
  return model;
}

}  // namespace sibyl::ml
