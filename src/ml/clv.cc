#include "ml/clv.h"

#include <algorithm>
#include <cmath>
#include <deque>
#include <functional>
#include <limits>
#include <nlohmann/json.hpp>
#include <numeric>
#include <string>
#include <tuple>
#include <utility>
#include <vector>

namespace sibyl::ml {
namespace {

constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();
constexpr double kInf = std::numeric_limits<double>::infinity();

// ---------------------------------------------------------------------------------------
// Special functions

// psi(x) for x > 0: recurrence up to x >= 6, then the asymptotic series (error < 1e-13).
double Digamma(double x) {
  double result = 0;
  while (x < 6) {
    result -= 1 / x;
    x += 1;
  }
  const double f = 1 / (x * x);
  return result + std::log(x) - 0.5 / x -
         f * (1.0 / 12 - f * (1.0 / 120 - f * (1.0 / 252 - f * (1.0 / 240 - f / 132))));
}

bool IsPoleOfGamma(double x) { return x <= 0 && x == std::floor(x); }

// Sign of Gamma(x) for x not a pole: negative on (-1, 0), (-3, -2), ...
double GammaSign(double x) {
  if (x > 0) return 1;
  return static_cast<long long>(std::floor(x)) % 2 == 0 ? 1 : -1;
}

// prod Gamma(numerator) / prod Gamma(denominator) * exp(log_factor), in log space so
// that large arguments do not overflow. A pole in the denominator makes it 0.
double GammaRatio(std::initializer_list<double> numerator,
                  std::initializer_list<double> denominator, double log_factor) {
  double log_value = log_factor, sign = 1;
  for (double d : denominator) {
    if (IsPoleOfGamma(d)) return 0;
    log_value -= std::lgamma(d);
    sign *= GammaSign(d);
  }
  for (double n : numerator) {
    log_value += std::lgamma(n);
    sign *= GammaSign(n);
  }
  return sign * std::exp(log_value);
}

// Sums the 2F1 power series; false if it has not converged within max_terms. Converged
// means the last term is negligible and the term ratio has settled below 1 (a term can be
// small by accident while a parameter + k is near 0).
bool SumHypergeometricSeries(double a, double b, double c, double z, int max_terms,
                             double* sum_out) {
  double term = 1, sum = 1;
  for (int k = 0; k < max_terms; ++k) {
    const double ratio = (a + k) * (b + k) / ((c + k) * (k + 1)) * z;
    term *= ratio;
    sum += term;
    if (term == 0 || (std::abs(term) <= 1e-17 * std::abs(sum) && std::abs(ratio) < 1)) {
      *sum_out = sum;
      return true;
    }
  }
  return false;
}

// Abramowitz & Stegun 15.3.6: 2F1 at z from two series at 1 - z. Needs c - a - b not an
// integer; near one, the average at c +- 1e-5 (the function is smooth in c, the two
// Gamma-ratio terms are what blow up).
double HypergeometricNearOne(double a, double b, double c, double z) {
  const double s = c - a - b;
  if (std::abs(s - std::round(s)) < 1e-6) {
    constexpr double kShift = 1e-5;
    return 0.5 * (HypergeometricNearOne(a, b, c + kShift, z) +
                  HypergeometricNearOne(a, b, c - kShift, z));
  }
  const double w = 1 - z;
  double first = 0, second = 0;
  if (!SumHypergeometricSeries(a, b, 1 - s, w, 100000, &first) ||
      !SumHypergeometricSeries(c - a, c - b, 1 + s, w, 100000, &second)) {
    return kNaN;
  }
  return GammaRatio({c, s}, {c - a, c - b}, 0) * first +
         GammaRatio({c, -s}, {a, b}, s * std::log(w)) * second;
}

// ---------------------------------------------------------------------------------------
// Optimiser: L-BFGS with Armijo backtracking, on unconstrained log-parameters.

// Returns the objective at theta and writes its gradient; +inf (or NaN) if theta is out
// of the region where the objective can be evaluated.
using Objective = std::function<double(const std::vector<double>&, std::vector<double>&)>;

struct Minimum {
  std::vector<double> theta;
  double value;
  int iterations;
  bool converged;
};

double Dot(const std::vector<double>& u, const std::vector<double>& v) {
  return std::inner_product(u.begin(), u.end(), v.begin(), 0.0);
}
double MaxAbs(const std::vector<double>& v) {
  double m = 0;
  for (double e : v) m = std::max(m, std::abs(e));
  return m;
}

Minimum MinimizeLbfgs(const Objective& objective, std::vector<double> theta, int max_iterations,
                      double tolerance) {
  constexpr size_t kHistory = 8;
  // No log-parameter moves by more than this in one step: a poor early direction must not
  // send a parameter to exp(+-700).
  constexpr double kMaxLogStep = 2;
  const size_t n = theta.size();
  std::vector<double> grad(n), trial(n), trial_grad(n), direction(n);
  double value = objective(theta, grad);
  Minimum result{theta, value, 0, false};
  if (!std::isfinite(value)) return result;

  struct Pair {
    std::vector<double> s, y;
    double rho;
  };
  std::deque<Pair> history;
  int iteration = 0;
  while (iteration < max_iterations) {
    if (MaxAbs(grad) <= 1e-12) {
      result.converged = true;
      break;
    }
    // Two-loop recursion: direction = -H grad.
    direction = grad;
    std::vector<double> alphas(history.size());
    for (size_t i = history.size(); i-- > 0;) {
      alphas[i] = history[i].rho * Dot(history[i].s, direction);
      for (size_t j = 0; j < n; ++j) direction[j] -= alphas[i] * history[i].y[j];
    }
    if (!history.empty()) {
      const Pair& last = history.back();
      const double scale = Dot(last.s, last.y) / Dot(last.y, last.y);
      for (double& d : direction) d *= scale;
    }
    for (size_t i = 0; i < history.size(); ++i) {
      const double beta = history[i].rho * Dot(history[i].y, direction);
      for (size_t j = 0; j < n; ++j) direction[j] += (alphas[i] - beta) * history[i].s[j];
    }
    for (double& d : direction) d = -d;
    double slope = Dot(grad, direction);
    if (!(slope < 0)) {
      history.clear();
      for (size_t j = 0; j < n; ++j) direction[j] = -grad[j];
      slope = -Dot(grad, grad);
    }

    double step = std::min(1.0, kMaxLogStep / MaxAbs(direction));
    double trial_value = kInf;
    bool accepted = false;
    for (int attempt = 0; attempt < 60; ++attempt) {
      for (size_t j = 0; j < n; ++j) trial[j] = theta[j] + step * direction[j];
      trial_value = objective(trial, trial_grad);
      if (std::isfinite(trial_value) && trial_value <= value + 1e-4 * step * slope) {
        accepted = true;
        break;
      }
      step *= 0.5;
    }
    ++iteration;
    if (!accepted) {
      if (!history.empty()) {  // the quasi-Newton model may be stale: retry downhill
        history.clear();
        continue;
      }
      // No decrease even along the gradient: we are at the floor of rounding noise.
      result.converged = MaxAbs(grad) <= 1e-6 * std::max(1.0, std::abs(value));
      break;
    }
    Pair pair{std::vector<double>(n), std::vector<double>(n), 0};
    for (size_t j = 0; j < n; ++j) {
      pair.s[j] = trial[j] - theta[j];
      pair.y[j] = trial_grad[j] - grad[j];
    }
    const double sy = Dot(pair.s, pair.y);
    if (sy > 1e-12 * Dot(pair.y, pair.y)) {
      pair.rho = 1 / sy;
      history.push_back(std::move(pair));
      if (history.size() > kHistory) history.pop_front();
    }
    const double decrease = value - trial_value;
    const double size = std::max({std::abs(value), std::abs(trial_value), 1.0});
    theta = trial;
    grad = trial_grad;
    value = trial_value;
    if (decrease <= tolerance * size) {
      result.converged = true;
      break;
    }
  }
  result.theta = theta;
  result.value = value;
  result.iterations = iteration;
  return result;
}

// Minimises from `start`, then restarts from the result with a fresh quasi-Newton memory
// until a restart no longer improves: the relative-decrease test can fire on one short
// step, and a restart costs a few evaluations.
Minimum MinimizeWithRestarts(const Objective& objective, std::vector<double> start,
                             const FitOptions& options) {
  Minimum best =
      MinimizeLbfgs(objective, std::move(start), options.max_iterations, options.tolerance);
  for (int restart = 0; restart < 5 && best.converged; ++restart) {
    const int remaining = options.max_iterations - best.iterations;
    if (remaining <= 0) break;
    Minimum again = MinimizeLbfgs(objective, best.theta, remaining, options.tolerance);
    const int total = best.iterations + again.iterations;
    const bool improved =
        again.value < best.value - options.tolerance * std::max(1.0, std::abs(best.value));
    if (again.value < best.value) best = std::move(again);
    best.iterations = total;
    if (!improved) break;
  }
  if (best.iterations >= options.max_iterations) best.converged = false;
  return best;
}

// Parameters beyond exp(+-kMaxLogParam) are treated as out of range (objective +inf).
constexpr double kMaxLogParam = 40;

bool InRange(const std::vector<double>& theta) {
  for (double t : theta) {
    if (!(std::abs(t) <= kMaxLogParam)) return false;
  }
  return true;
}

double Penalty(const std::vector<double>& theta, double l2, std::vector<double>& grad) {
  double penalty = 0;
  for (size_t j = 0; j < theta.size(); ++j) {
    penalty += l2 * theta[j] * theta[j];
    grad[j] += 2 * l2 * theta[j];
  }
  return penalty;
}

// ---------------------------------------------------------------------------------------
// BG/NBD

bool IsValid(const RfmSummary& c) {
  return std::isfinite(c.x) && std::isfinite(c.t_x) && std::isfinite(c.T) && c.x >= 0 &&
         c.x == std::floor(c.x) && c.t_x >= 0 && c.t_x <= c.T;
}

// Pooled customers grouped by x, so that the Gamma-function terms (which depend on x
// only) are evaluated once per distinct x per iteration.
struct BgNbdData {
  struct Group {
    double x, weight;
    size_t begin, end;
  };
  std::vector<Group> groups;
  std::vector<double> t_x, T, weight;
  double total_weight = 0;
};

// log(a / (b + x - 1)) + (r + x) log((alpha + T) / (alpha + t_x)): the log of the ratio
// of the dropped-out-after-t_x term to the still-alive term of the likelihood (x > 0).
double LogDropoutOdds(const BgNbdParams& p, const RfmSummary& c) {
  return std::log(p.a) - std::log(p.b + c.x - 1) +
         (p.r + c.x) * (std::log(p.alpha + c.T) - std::log(p.alpha + c.t_x));
}

double Softplus(double d) { return std::max(d, 0.0) + std::log1p(std::exp(-std::abs(d))); }

// Mean negative log-likelihood per unit weight plus the penalty, and its gradient, at
// theta = log(r, alpha, a, b).
double BgNbdObjective(const BgNbdData& data, double l2, const std::vector<double>& theta,
                      std::vector<double>& grad, double* log_likelihood = nullptr) {
  if (!InRange(theta)) return kInf;
  const double r = std::exp(theta[0]), alpha = std::exp(theta[1]);
  const double a = std::exp(theta[2]), b = std::exp(theta[3]);
  const double log_alpha = theta[1];
  const double psi_r = Digamma(r), psi_b = Digamma(b), psi_ab = Digamma(a + b);
  const double lg_r = std::lgamma(r), lg_b = std::lgamma(b), lg_ab = std::lgamma(a + b);
  double ll = 0, d_r = 0, d_alpha = 0, d_a = 0, d_b = 0;  // derivatives in the raw params
  for (const BgNbdData::Group& g : data.groups) {
    const double x = g.x, w_group = g.weight, rx = r + x;
    ll += w_group * (std::lgamma(rx) - lg_r + r * log_alpha + lg_ab + std::lgamma(b + x) - lg_b -
                     std::lgamma(a + b + x));
    d_r += w_group * (Digamma(rx) - psi_r + log_alpha);
    d_alpha += w_group * r / alpha;
    const double psi_abx = Digamma(a + b + x);
    d_a += w_group * (psi_ab - psi_abx);
    d_b += w_group * (psi_ab + Digamma(b + x) - psi_b - psi_abx);
    if (x == 0) {
      for (size_t i = g.begin; i < g.end; ++i) {
        const double w = data.weight[i], log_T = std::log(alpha + data.T[i]);
        ll -= w * rx * log_T;
        d_r -= w * log_T;
        d_alpha -= w * rx / (alpha + data.T[i]);
      }
      continue;
    }
    const double log_a_ratio = std::log(a) - std::log(b + x - 1);
    double dropout_weight = 0;  // sum of w * P(dropped out | data, params)
    for (size_t i = g.begin; i < g.end; ++i) {
      const double w = data.weight[i];
      const double log_T = std::log(alpha + data.T[i]), log_tx = std::log(alpha + data.t_x[i]);
      const double odds = log_a_ratio + rx * (log_T - log_tx);
      const double e = std::exp(-std::abs(odds));
      const double dropped = odds > 0 ? 1 / (1 + e) : e / (1 + e);
      ll += w * (std::max(odds, 0.0) + std::log1p(e) - rx * log_T);
      d_r += w * (dropped * (log_T - log_tx) - log_T);
      const double inv_T = 1 / (alpha + data.T[i]), inv_tx = 1 / (alpha + data.t_x[i]);
      d_alpha += w * rx * (dropped * (inv_T - inv_tx) - inv_T);
      dropout_weight += w * dropped;
    }
    d_a += dropout_weight / a;
    d_b -= dropout_weight / (b + x - 1);
  }
  if (log_likelihood != nullptr) *log_likelihood = ll;
  const double scale = -1 / data.total_weight;
  grad = {scale * d_r * r, scale * d_alpha * alpha, scale * d_a * a, scale * d_b * b};
  return scale * ll + Penalty(theta, l2, grad);
}

// f(at) by cubic Lagrange interpolation from f at center +- step, center +- 2 step.
double InterpolateAcross(double center, double step, double at,
                         const std::function<double(double)>& f) {
  constexpr double kNodes[4] = {-2, -1, 1, 2};
  const double s = (at - center) / step;
  double sum = 0;
  for (int i = 0; i < 4; ++i) {
    double weight = 1;
    for (int j = 0; j < 4; ++j) {
      if (j != i) weight *= (s - kNodes[j]) / (kNodes[i] - kNodes[j]);
    }
    sum += weight * f(center + kNodes[i] * step);
  }
  return sum;
}

// E[Y(t) | alive at T] = C / (a - 1) * (1 - 2F1(A, a - 1; C; -u)) with A = r + x,
// C = a + b + x - 1, u = t / (alpha + T): eq. (10) after the Pfaff transformation
// (1 - z)^A 2F1(A, b + x; C; z) = 2F1(A, a - 1; C; -u), z = u / (1 + u).
double ExpectedIfAlive(double A, double a, double b_plus_x, double u) {
  const double C = a + b_plus_x - 1;
  if (u <= 0.5) {
    // The series of (1 - 2F1) has no leading 1 to cancel, and the factor (a - 1) of each
    // term cancels against the division: no precision loss for small t or a near 1.
    double term = A * u, sum = term;  // k = 1 term, times C
    for (int k = 1; k < 100000; ++k) {
      term *= -(A + k) * (a + k - 1) / ((C + k) * (k + 1)) * u;
      sum += term;
      if (std::abs(term) <= 1e-17 * std::abs(sum)) break;
    }
    return sum;
  }
  // a = 1 and C = 0 are removable singularities of the closed form, where it cancels
  // badly: interpolate instead from four points just outside (the function is smooth
  // there; cubic, so the error is of order kShift^4).
  constexpr double kNear = 1e-4, kShift = 2e-4;  // the shifted points are not "near"
  if (std::abs(a - 1) < kNear) {
    return InterpolateAcross(
        1, kShift, a, [&](double shifted_a) { return ExpectedIfAlive(A, shifted_a, b_plus_x, u); });
  }
  if (std::abs(C) < kNear) {  // C = 0 at b + x = 1 - a
    return InterpolateAcross(1 - a, kShift, b_plus_x, [&](double shifted_b_plus_x) {
      return ExpectedIfAlive(A, a, shifted_b_plus_x, u);
    });
  }
  // Second Pfaff transformation: 2F1(A, a - 1; C; -u) = (1 + u)^(1 - a) 2F1(C - A, a - 1; C; z).
  const double z = u / (1 + u);
  const double g = std::exp((1 - a) * std::log1p(u)) * Hypergeometric2F1(C - A, a - 1, C, z);
  return C * (1 - g) / (a - 1);
}

Result<BgNbdFit> FitBgNbdImpl(std::span<const RfmSummary> customers,
                              std::span<const double> weights, const FitOptions& options) {
  if (!weights.empty() && weights.size() != customers.size()) {
    return InvalidArgument("BG/NBD fit: {} customers but {} weights", customers.size(),
                           weights.size());
  }
  struct Row {
    double x, t_x, T, w;
  };
  std::vector<Row> rows;
  rows.reserve(customers.size());
  for (size_t i = 0; i < customers.size(); ++i) {
    const double w = weights.empty() ? 1.0 : weights[i];
    if (!IsValid(customers[i]) || !(w > 0) || !std::isfinite(w)) continue;
    const RfmSummary& c = customers[i];
    rows.push_back({c.x, c.x == 0 ? 0.0 : c.t_x, c.T, w});
  }
  BgNbdFit fit{};
  fit.customers_used = rows.size();
  fit.customers_skipped = customers.size() - rows.size();
  if (rows.empty()) {
    return InvalidArgument("BG/NBD fit: no valid customer summary among {} ({} skipped)",
                           customers.size(), fit.customers_skipped);
  }
  std::sort(rows.begin(), rows.end(), [](const Row& l, const Row& r) {
    return std::tie(l.x, l.t_x, l.T) < std::tie(r.x, r.t_x, r.T);
  });
  BgNbdData data;
  double sum_x = 0, sum_T = 0;
  for (const Row& row : rows) {
    data.total_weight += row.w;
    sum_x += row.w * row.x;
    sum_T += row.w * row.T;
    if (!data.T.empty() && data.groups.back().x == row.x && data.t_x.back() == row.t_x &&
        data.T.back() == row.T) {
      data.weight.back() += row.w;
      data.groups.back().weight += row.w;
      continue;
    }
    if (data.groups.empty() || data.groups.back().x != row.x) {
      data.groups.push_back({row.x, 0, data.T.size(), data.T.size()});
    }
    data.t_x.push_back(row.t_x);
    data.T.push_back(row.T);
    data.weight.push_back(row.w);
    data.groups.back().weight += row.w;
    data.groups.back().end = data.T.size();
  }

  // Start: r = 1 and alpha matching the mean purchase rate (one pseudo-purchase and one
  // time unit added, so nobody repeating or T = 0 stay finite); dropout a = 1, b = 2.
  const double alpha0 = (sum_T + data.total_weight) / (sum_x + data.total_weight);
  const std::vector<double> start = {0.0, std::log(std::clamp(alpha0, 1e-6, 1e12)), 0.0,
                                     std::log(2.0)};
  const Objective objective = [&](const std::vector<double>& theta, std::vector<double>& grad) {
    return BgNbdObjective(data, options.l2_penalty, theta, grad);
  };
  const Minimum minimum = MinimizeWithRestarts(objective, start, options);
  if (!std::isfinite(minimum.value)) {
    return Internal("BG/NBD fit: the likelihood is not finite at the start point");
  }
  std::vector<double> grad(4);
  BgNbdObjective(data, options.l2_penalty, minimum.theta, grad, &fit.log_likelihood);
  fit.params = {std::exp(minimum.theta[0]), std::exp(minimum.theta[1]), std::exp(minimum.theta[2]),
                std::exp(minimum.theta[3])};
  fit.iterations = minimum.iterations;
  fit.converged = minimum.converged;
  return fit;
}

// ---------------------------------------------------------------------------------------
// Gamma-Gamma

struct SpendData {
  struct Group {
    double x, weight;
    size_t begin, end;
  };
  std::vector<Group> groups;
  std::vector<double> mean, log_mean, weight;
  double total_weight = 0;
};

// theta = log(p, q, v).
double GammaGammaObjective(const SpendData& data, double l2, const std::vector<double>& theta,
                           std::vector<double>& grad, double* log_likelihood = nullptr) {
  if (!InRange(theta)) return kInf;
  const double p = std::exp(theta[0]), q = std::exp(theta[1]), v = std::exp(theta[2]);
  const double log_v = theta[2], lg_q = std::lgamma(q), psi_q = Digamma(q);
  double ll = 0, d_p = 0, d_q = 0, d_v = 0;
  for (const SpendData::Group& g : data.groups) {
    const double x = g.x, px = p * x, shape = px + q, log_x = std::log(x);
    const double psi_shape = Digamma(shape);
    ll += g.weight * (std::lgamma(shape) - std::lgamma(px) - lg_q + q * log_v + px * log_x);
    d_p += g.weight * x * (psi_shape - Digamma(px) + log_x);
    d_q += g.weight * (psi_shape - psi_q + log_v);
    d_v += g.weight * q / v;
    for (size_t i = g.begin; i < g.end; ++i) {
      const double w = data.weight[i], total = v + x * data.mean[i];
      const double log_total = std::log(total);
      ll += w * ((px - 1) * data.log_mean[i] - shape * log_total);
      d_p += w * x * (data.log_mean[i] - log_total);
      d_q -= w * log_total;
      d_v -= w * shape / total;
    }
  }
  if (log_likelihood != nullptr) *log_likelihood = ll;
  const double scale = -1 / data.total_weight;
  grad = {scale * d_p * p, scale * d_q * q, scale * d_v * v};
  return scale * ll + Penalty(theta, l2, grad);
}

// JSON helpers.
Result<double> PositiveField(const nlohmann::json& json, const char* model, const char* key) {
  auto it = json.find(key);
  if (it == json.end() || !it->is_number()) {
    return InvalidArgument("{} parameters: \"{}\" is missing or not a number", model, key);
  }
  const double value = it->get<double>();
  if (!(value > 0) || !std::isfinite(value)) {
    return InvalidArgument("{} parameters: \"{}\" = {} must be positive and finite", model, key,
                           value);
  }
  return value;
}

Status CheckModelTag(const nlohmann::json& json, const char* model) {
  if (!json.is_object()) return InvalidArgument("{} parameters: not a JSON object", model);
  auto it = json.find("model");
  if (it != json.end() && !(it->is_string() && it->get<std::string>() == model)) {
    return InvalidArgument("{} parameters: \"model\" is {}", model, it->dump());
  }
  return Status::Ok();
}

}  // namespace

double Hypergeometric2F1(double a, double b, double c, double z) {
  if (z == 0) return 1;
  if (!(z > 0 && z < 1) || IsPoleOfGamma(c)) return kNaN;
  // Below 0.9 the series converges at least as fast as 0.9^k; above, try a bounded number
  // of terms (enough when c is large) and otherwise go through 1 - z.
  double sum = 0;
  if (SumHypergeometricSeries(a, b, c, z, z <= 0.9 ? 1000000 : 2000, &sum)) return sum;
  return HypergeometricNearOne(a, b, c, z);
}

Result<BgNbdFit> FitBgNbd(std::span<const RfmSummary> customers, const FitOptions& options) {
  return FitBgNbdImpl(customers, {}, options);
}

Result<BgNbdFit> FitBgNbd(std::span<const RfmSummary> customers, std::span<const double> weights,
                          const FitOptions& options) {
  if (weights.size() != customers.size()) {
    return InvalidArgument("BG/NBD fit: {} customers but {} weights", customers.size(),
                           weights.size());
  }
  return FitBgNbdImpl(customers, weights, options);
}

double BgNbdLogLikelihood(const BgNbdParams& p, const RfmSummary& c) {
  const double x = c.x, rx = p.r + x;
  const double base = std::lgamma(rx) - std::lgamma(p.r) + p.r * std::log(p.alpha) +
                      std::lgamma(p.a + p.b) + std::lgamma(p.b + x) - std::lgamma(p.b) -
                      std::lgamma(p.a + p.b + x) - rx * std::log(p.alpha + c.T);
  return x > 0 ? base + Softplus(LogDropoutOdds(p, c)) : base;
}

double BgNbdProbAlive(const BgNbdParams& p, const RfmSummary& c) {
  if (c.x == 0) return 1;
  const double odds = LogDropoutOdds(p, c);  // log P(dead) / P(alive)
  return odds > 0 ? std::exp(-odds) / (1 + std::exp(-odds)) : 1 / (1 + std::exp(odds));
}

double BgNbdExpectedTransactions(const BgNbdParams& p, const RfmSummary& c, double t) {
  if (t <= 0) return 0;
  return BgNbdProbAlive(p, c) * ExpectedIfAlive(p.r + c.x, p.a, p.b + c.x, t / (p.alpha + c.T));
}

double BgNbdProbAnyWithin(const BgNbdParams& p, const RfmSummary& c, double t) {
  if (t <= 0) return 0;
  return BgNbdProbAlive(p, c) * -std::expm1(-(p.r + c.x) * std::log1p(t / (p.alpha + c.T)));
}

Result<GammaGammaFit> FitGammaGamma(std::span<const double> frequency,
                                    std::span<const double> mean_value, const FitOptions& options) {
  if (frequency.size() != mean_value.size()) {
    return InvalidArgument("Gamma-Gamma fit: {} frequencies but {} mean values", frequency.size(),
                           mean_value.size());
  }
  std::vector<std::pair<double, double>> rows;  // (x, m_x)
  rows.reserve(frequency.size());
  for (size_t i = 0; i < frequency.size(); ++i) {
    const double x = frequency[i], m = mean_value[i];
    if (std::isfinite(x) && x >= 1 && std::isfinite(m) && m > 0) rows.emplace_back(x, m);
  }
  GammaGammaFit fit{};
  fit.customers_used = rows.size();
  fit.customers_skipped = frequency.size() - rows.size();
  if (rows.empty()) {
    return InvalidArgument(
        "Gamma-Gamma fit: no customer with >= 1 repeat transaction and a positive mean value "
        "among {}",
        frequency.size());
  }
  std::sort(rows.begin(), rows.end());
  SpendData data;
  double sum_mean = 0;
  for (const auto& [x, m] : rows) {
    data.total_weight += 1;
    sum_mean += m;
    if (!data.mean.empty() && data.groups.back().x == x && data.mean.back() == m) {
      data.weight.back() += 1;
      data.groups.back().weight += 1;
      continue;
    }
    if (data.groups.empty() || data.groups.back().x != x) {
      data.groups.push_back({x, 0, data.mean.size(), data.mean.size()});
    }
    data.mean.push_back(m);
    data.log_mean.push_back(std::log(m));
    data.weight.push_back(1);
    data.groups.back().weight += 1;
    data.groups.back().end = data.mean.size();
  }

  const Objective objective = [&](const std::vector<double>& theta, std::vector<double>& grad) {
    return GammaGammaObjective(data, options.l2_penalty, theta, grad);
  };
  // q and v trade off against each other along a long curved valley; a few starting
  // points with the population mean spend p v / (q - 1) matched to the data guard against
  // stopping early on it. Deterministic; the best wins.
  const double average = sum_mean / data.total_weight;
  Minimum best{{}, kInf, 0, false};
  int total_iterations = 0;
  for (const auto& [p0, q0] : {std::pair{1.0, 2.0}, std::pair{4.0, 4.0}, std::pair{20.0, 20.0}}) {
    const double v0 = average * (q0 - 1) / p0;
    Minimum candidate =
        MinimizeWithRestarts(objective, {std::log(p0), std::log(q0), std::log(v0)}, options);
    total_iterations += candidate.iterations;
    if (candidate.value < best.value) best = std::move(candidate);
  }
  if (!std::isfinite(best.value)) {
    return Internal("Gamma-Gamma fit: the likelihood is not finite at any start point");
  }
  std::vector<double> grad(3);
  GammaGammaObjective(data, options.l2_penalty, best.theta, grad, &fit.log_likelihood);
  fit.params = {std::exp(best.theta[0]), std::exp(best.theta[1]), std::exp(best.theta[2])};
  fit.iterations = total_iterations;
  fit.converged = best.converged;
  return fit;
}

double GammaGammaLogLikelihood(const GammaGammaParams& params, double frequency,
                               double mean_value) {
  const double px = params.p * frequency, shape = px + params.q;
  return std::lgamma(shape) - std::lgamma(px) - std::lgamma(params.q) +
         params.q * std::log(params.v) + (px - 1) * std::log(mean_value) +
         px * std::log(frequency) - shape * std::log(params.v + frequency * mean_value);
}

double GammaGammaExpectedSpend(const GammaGammaParams& params, double frequency,
                               double mean_value) {
  const double x = frequency > 0 ? frequency : 0;
  const double denominator = params.p * x + params.q - 1;
  if (!(denominator > 0)) return kInf;
  return params.p * (params.v + x * (x > 0 ? mean_value : 0)) / denominator;
}

nlohmann::json ToJson(const BgNbdParams& params) {
  return {{"model", "bg_nbd"},
          {"r", params.r},
          {"alpha", params.alpha},
          {"a", params.a},
          {"b", params.b}};
}

Result<BgNbdParams> BgNbdParamsFromJson(const nlohmann::json& json) {
  RETURN_IF_ERROR(CheckModelTag(json, "bg_nbd"));
  BgNbdParams params{};
  ASSIGN_OR_RETURN(params.r, PositiveField(json, "bg_nbd", "r"));
  ASSIGN_OR_RETURN(params.alpha, PositiveField(json, "bg_nbd", "alpha"));
  ASSIGN_OR_RETURN(params.a, PositiveField(json, "bg_nbd", "a"));
  ASSIGN_OR_RETURN(params.b, PositiveField(json, "bg_nbd", "b"));
  return params;
}

nlohmann::json ToJson(const GammaGammaParams& params) {
  return {{"model", "gamma_gamma"}, {"p", params.p}, {"q", params.q}, {"v", params.v}};
}

Result<GammaGammaParams> GammaGammaParamsFromJson(const nlohmann::json& json) {
  RETURN_IF_ERROR(CheckModelTag(json, "gamma_gamma"));
  GammaGammaParams params{};
  ASSIGN_OR_RETURN(params.p, PositiveField(json, "gamma_gamma", "p"));
  ASSIGN_OR_RETURN(params.q, PositiveField(json, "gamma_gamma", "q"));
  ASSIGN_OR_RETURN(params.v, PositiveField(json, "gamma_gamma", "v"));
  return params;
}

}  // namespace sibyl::ml
