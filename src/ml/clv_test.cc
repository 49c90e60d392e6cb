#include "ml/clv.h"

#include <gtest/gtest.h>

#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <limits>
#include <nlohmann/json.hpp>
#include <vector>

namespace sibyl::ml {
namespace {

// The CDNow estimates of the BG/NBD paper (time in weeks).
constexpr BgNbdParams kCdnow{0.243, 4.414, 0.793, 2.426};

// ---------------------------------------------------------------------------------------
// Independent reference computations (nothing here calls the code under test).

// 2F1 by plain summation in long double, for z well inside the unit disc.
double DirectHypergeometric(double a, double b, double c, double z, int terms = 2000000) {
  long double term = 1, sum = 1;
  for (int k = 0; k < terms; ++k) {
    term *= (a + k) * (b + k) / ((c + k) * (k + 1.0L)) * z;
    sum += term;
  }
  return static_cast<double>(sum);
}

// E[Y(t) | alive at T] as the integral over the posterior dropout probability,
// p ~ Beta(a, b + x): E[(1 - ((alpha + T) / (alpha + T + p t))^(r + x)) / p]. Given lambda
// and p, an alive customer makes (1 - exp(-lambda p t)) / p purchases in t on average;
// lambda integrates out in closed form. Tanh-sinh quadrature copes with the endpoint
// singularities of the Beta density.
double ExpectedIfAliveByQuadrature(const BgNbdParams& p, const RfmSummary& c, double t) {
  const double A = p.r + c.x, beta = p.b + c.x, u = t / (p.alpha + c.T);
  const double log_beta_fn = std::lgamma(p.a) + std::lgamma(beta) - std::lgamma(p.a + beta);
  const double h = 0.01;
  double sum = 0;
  for (int k = -500; k <= 500; ++k) {
    const double s = k * h, e = M_PI * std::sinh(s);
    const double prob = 1 / (1 + std::exp(-e)), complement = 1 / (1 + std::exp(e));
    if (prob == 0 || complement == 0) continue;
    const double value = -std::expm1(-A * std::log1p(prob * u)) / prob;
    // dp/ds = pi cosh(s) p (1 - p).
    const double log_weight = p.a * std::log(prob) + beta * std::log(complement) - log_beta_fn;
    sum += value * M_PI * std::cosh(s) * std::exp(log_weight);
  }
  return sum * h;
}

double ProbAliveByHand(const BgNbdParams& p, const RfmSummary& c) {
  if (c.x == 0) return 1;
  return 1 / (1 + p.a / (p.b + c.x - 1) * std::pow((p.alpha + c.T) / (p.alpha + c.t_x), p.r + c.x));
}

// Deterministic random numbers for simulated customers.
class Rng {
 public:
  explicit Rng(uint64_t seed) : state_(seed) {}
  uint64_t Next() {  // SplitMix64
    uint64_t z = (state_ += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
  }
  double Uniform() { return (static_cast<double>(Next() >> 11) + 0.5) * 0x1.0p-53; }
  double Normal() { return std::sqrt(-2 * std::log(Uniform())) * std::cos(2 * M_PI * Uniform()); }
  double Exponential(double rate) { return -std::log(Uniform()) / rate; }
  // Marsaglia & Tsang (2000); shape < 1 through Gamma(shape + 1) * U^(1 / shape).
  double Gamma(double shape, double rate) {
    if (shape < 1) return Gamma(shape + 1, rate) * std::pow(Uniform(), 1 / shape);
    const double d = shape - 1.0 / 3, c = 1 / std::sqrt(9 * d);
    while (true) {
      double z, v;
      do {
        z = Normal();
        v = 1 + c * z;
      } while (v <= 0);
      v = v * v * v;
      if (std::log(Uniform()) < 0.5 * z * z + d - d * v + d * std::log(v)) return d * v / rate;
    }
  }
  double Beta(double a, double b) {
    const double x = Gamma(a, 1), y = Gamma(b, 1);
    return x / (x + y);
  }

 private:
  uint64_t state_;
};

// One BG/NBD customer observed for T days after its first purchase: Poisson purchases at
// rate lambda, and after each repeat purchase a dropout with probability p.
RfmSummary SimulateCustomer(const BgNbdParams& params, double T, Rng& rng) {
  const double lambda = rng.Gamma(params.r, params.alpha);
  const double p = rng.Beta(params.a, params.b);
  RfmSummary c{0, 0, T};
  double now = 0;
  while (true) {
    now += rng.Exponential(lambda);
    if (now > T) break;
    c.x += 1;
    c.t_x = now;
    if (rng.Uniform() < p) break;
  }
  return c;
}

std::vector<RfmSummary> SimulateCustomers(const BgNbdParams& params, int n, uint64_t seed) {
  Rng rng(seed);
  std::vector<RfmSummary> customers;
  customers.reserve(n);
  for (int i = 0; i < n; ++i) {
    const double T = 30 + 510 * rng.Uniform();  // first purchases spread over 17 months
    customers.push_back(SimulateCustomer(params, T, rng));
  }
  return customers;
}

double TotalLogLikelihood(const BgNbdParams& params, const std::vector<RfmSummary>& customers) {
  double sum = 0;
  for (const RfmSummary& c : customers) sum += BgNbdLogLikelihood(params, c);
  return sum;
}

double RelativeError(double got, double want) { return std::abs(got - want) / want; }

// ---------------------------------------------------------------------------------------
// Closed forms against hand arithmetic

TEST(BgNbdTest, LogLikelihoodMatchesPaperFormulaByHand) {
  const auto [r, alpha, a, b] = kCdnow;
  // x = 2: Gamma(r + 2) / Gamma(r) = r (r + 1), Gamma(b + 2) / Gamma(b) = b (b + 1),
  // Gamma(a + b) / Gamma(a + b + 2) = 1 / ((a + b)(a + b + 1)).
  {
    const RfmSummary c{2, 30.43, 38.86};
    const double A1 = r * (r + 1) * std::pow(alpha, r);
    const double A2 = b * (b + 1) / ((a + b) * (a + b + 1));
    const double A3 = std::pow(alpha + c.T, -(r + 2));
    const double A4 = a / (b + 1) * std::pow(alpha + c.t_x, -(r + 2));
    EXPECT_NEAR(BgNbdLogLikelihood(kCdnow, c), std::log(A1 * A2 * (A3 + A4)), 1e-12);
  }
  {  // x = 0: only (alpha / (alpha + T))^r is left.
    const RfmSummary c{0, 0, 38.86};
    EXPECT_NEAR(BgNbdLogLikelihood(kCdnow, c), r * std::log(alpha / (alpha + c.T)), 1e-12);
  }
  {  // x = 1, last purchase early.
    const RfmSummary c{1, 1.71, 38.86};
    const double A1 = r * std::pow(alpha, r), A2 = b / (a + b);
    const double A3 = std::pow(alpha + c.T, -(r + 1)),
                 A4 = a / b * std::pow(alpha + c.t_x, -(r + 1));
    EXPECT_NEAR(BgNbdLogLikelihood(kCdnow, c), std::log(A1 * A2 * (A3 + A4)), 1e-12);
  }
}

TEST(BgNbdTest, ProbAliveMatchesFormulaByHand) {
  const RfmSummary recent{2, 30.43, 38.86}, early{1, 1.71, 38.86}, none{0, 0, 38.86};
  EXPECT_NEAR(BgNbdProbAlive(kCdnow, recent), ProbAliveByHand(kCdnow, recent), 1e-14);
  EXPECT_NEAR(BgNbdProbAlive(kCdnow, early), ProbAliveByHand(kCdnow, early), 1e-14);
  EXPECT_EQ(BgNbdProbAlive(kCdnow, none), 1.0);
  // Hand arithmetic for x = 1: 1 / (1 + 0.793 / 2.426 * (43.274 / 6.124)^1.243).
  EXPECT_NEAR(BgNbdProbAlive(kCdnow, early),
              1 / (1 + 0.793 / 2.426 * std::pow(43.274 / 6.124, 1.243)), 1e-14);
  EXPECT_LT(BgNbdProbAlive(kCdnow, early), BgNbdProbAlive(kCdnow, recent));
  // Many purchases long ago: almost surely gone, and no underflow to NaN.
  const double gone = BgNbdProbAlive(kCdnow, RfmSummary{500, 10, 2000});
  EXPECT_GE(gone, 0);
  EXPECT_LT(gone, 1e-100);
}

TEST(BgNbdTest, ExpectedTransactionsMatchesPublishedCdnowExample) {
  // Fader, Hardie & Lee (2005): the customer with x = 2, t_x = 30.43, T = 38.86 weeks
  // is expected to make 1.226 purchases in the next 39 weeks (also asserted by the
  // lifetimes package's test against Hardie's spreadsheet, to 0.001).
  EXPECT_NEAR(BgNbdExpectedTransactions(kCdnow, {2, 30.43, 38.86}, 39), 1.226, 1e-3);
}

TEST(BgNbdTest, ExpectedTransactionsMatchesEquation10ByHand) {
  const auto [r, alpha, a, b] = kCdnow;
  for (const RfmSummary& c :
       {RfmSummary{2, 30.43, 38.86}, RfmSummary{0, 0, 38.86}, RfmSummary{7, 20, 50}}) {
    for (double t : {1.0, 10.0, 39.0, 80.0}) {
      const double x = c.x, z = t / (alpha + c.T + t);
      const double bracket = 1 - std::pow((alpha + c.T) / (alpha + c.T + t), r + x) *
                                     DirectHypergeometric(r + x, b + x, a + b + x - 1, z);
      const double want = (a + b + x - 1) / (a - 1) * bracket * ProbAliveByHand(kCdnow, c);
      EXPECT_NEAR(BgNbdExpectedTransactions(kCdnow, c, t), want, 1e-9 * std::max(1.0, want))
          << "x=" << x << " T=" << c.T << " t=" << t;
    }
  }
}

TEST(BgNbdTest, ExpectedTransactionsMatchesQuadratureAcrossRegimes) {
  // Horizons far beyond the customer's age (z near 1), a near the removable singularity
  // at a = 1, a + b + x - 1 near 0 (the other one), a large a, and a heavy buyer.
  const std::vector<BgNbdParams> params = {kCdnow,
                                           {0.5, 20, 1.00003, 2.5},
                                           {0.5, 20, 0.99998, 0.3},
                                           {0.5, 20, 0.7, 0.30003},
                                           {2.0, 10, 6.0, 1.5},
                                           {0.05, 200, 0.4, 8}};
  const std::vector<RfmSummary> customers = {
      {0, 0, 0}, {0, 0, 30}, {1, 5, 400}, {3, 90, 100}, {60, 300, 310}};
  for (const BgNbdParams& p : params) {
    for (const RfmSummary& c : customers) {
      for (double t : {0.5, 7.0, 90.0, 365.0, 5000.0}) {
        const double want = BgNbdProbAlive(p, c) * ExpectedIfAliveByQuadrature(p, c, t);
        const double got = BgNbdExpectedTransactions(p, c, t);
        EXPECT_NEAR(got, want, 1e-9 * std::max(1.0, want))
            << "a=" << p.a << " b=" << p.b << " x=" << c.x << " T=" << c.T << " t=" << t;
      }
    }
  }
}

TEST(BgNbdTest, ProbAnyWithinMatchesFormulaAndBounds) {
  const RfmSummary c{2, 30.43, 38.86};
  const double want = ProbAliveByHand(kCdnow, c) *
                      (1 - std::pow((4.414 + 38.86) / (4.414 + 38.86 + 10), 0.243 + 2));
  EXPECT_NEAR(BgNbdProbAnyWithin(kCdnow, c, 10), want, 1e-14);
  EXPECT_EQ(BgNbdProbAnyWithin(kCdnow, c, 0), 0);
  double previous = 0;
  for (double t = 1; t < 1e5; t *= 2) {  // increasing in t, never above P(alive)
    const double prob = BgNbdProbAnyWithin(kCdnow, c, t);
    EXPECT_GT(prob, previous);
    EXPECT_LE(prob, BgNbdProbAlive(kCdnow, c));
    EXPECT_LE(prob, BgNbdExpectedTransactions(kCdnow, c, t) + 1e-12);  // P(N >= 1) <= E[N]
    previous = prob;
  }
}

TEST(ClvHypergeometricTest, ClosedFormsAndDirectSums) {
  // 2F1(a, b; b; z) = (1 - z)^-a.
  for (double z : {0.1, 0.5, 0.89, 0.95, 0.999}) {
    EXPECT_NEAR(Hypergeometric2F1(1.7, 2.3, 2.3, z), std::pow(1 - z, -1.7),
                1e-9 * std::pow(1 - z, -1.7))
        << z;
  }
  // 2F1(1, 1; 2; z) = -log(1 - z) / z: c - a - b = 0, the integer case of the z -> 1 - z
  // formula.
  for (double z : {0.3, 0.92, 0.999, 0.999999}) {
    EXPECT_NEAR(Hypergeometric2F1(1, 1, 2, z), -std::log1p(-z) / z, 1e-8 * -std::log1p(-z) / z)
        << z;
  }
  // 2F1(1/2, 1/2; 3/2; z^2) = asin(z) / z.
  EXPECT_NEAR(Hypergeometric2F1(0.5, 0.5, 1.5, 0.98 * 0.98), std::asin(0.98) / 0.98, 1e-10);
  // Plain summation where it converges (slowly) near 1, including c - a - b < 0.
  for (double z : {0.6, 0.93, 0.97}) {
    for (auto [a, b, c] : {std::tuple{0.5, 1.7, 2.3}, std::tuple{2.5, 3.2, 1.3},
                           std::tuple{-0.4, 3.1, 1.9}, std::tuple{12.0, 2.6, 30.5}}) {
      const double want = DirectHypergeometric(a, b, c, z);
      EXPECT_NEAR(Hypergeometric2F1(a, b, c, z), want, 1e-9 * std::abs(want))
          << a << " " << b << " " << c << " " << z;
    }
  }
}

// ---------------------------------------------------------------------------------------
// Fitting

TEST(BgNbdTest, RecoversSimulatedParameters) {
  const BgNbdParams truth{0.5, 20, 0.8, 2.5};  // alpha in days: ~9 purchases a year
  const std::vector<RfmSummary> customers = SimulateCustomers(truth, 30000, 17);
  auto fit = FitBgNbd(customers);
  ASSERT_TRUE(fit.ok()) << fit.status().ToString();
  const BgNbdParams& got = fit->params;
  std::printf("BG/NBD fit: r=%.4f alpha=%.3f a=%.4f b=%.4f, %d iterations, ll %.2f vs %.2f\n",
              got.r, got.alpha, got.a, got.b, fit->iterations, fit->log_likelihood,
              TotalLogLikelihood(truth, customers));
  EXPECT_TRUE(fit->converged);
  EXPECT_EQ(fit->customers_used, 30000u);
  EXPECT_LT(RelativeError(got.r, truth.r), 0.08);
  EXPECT_LT(RelativeError(got.alpha, truth.alpha), 0.10);
  EXPECT_LT(RelativeError(got.a, truth.a), 0.20);
  EXPECT_LT(RelativeError(got.b, truth.b), 0.20);
  // The maximum of the likelihood is at least as high as at the truth (the penalty costs
  // far less than the sampling noise in between), and the reported value is the sum.
  EXPECT_GE(fit->log_likelihood, TotalLogLikelihood(truth, customers));
  EXPECT_NEAR(fit->log_likelihood, TotalLogLikelihood(got, customers),
              1e-9 * std::abs(fit->log_likelihood));
}

TEST(BgNbdTest, WeightsEqualRepeatedCustomers) {
  const std::vector<RfmSummary> customers = SimulateCustomers({0.7, 15, 1.2, 3}, 4000, 5);
  std::vector<RfmSummary> doubled = customers;
  doubled.insert(doubled.end(), customers.begin(), customers.end());
  const std::vector<double> twos(customers.size(), 2.0);
  auto weighted = FitBgNbd(customers, twos);
  auto repeated = FitBgNbd(doubled);
  ASSERT_TRUE(weighted.ok() && repeated.ok());
  EXPECT_NEAR(weighted->params.r, repeated->params.r, 1e-6 * repeated->params.r);
  EXPECT_NEAR(weighted->params.b, repeated->params.b, 1e-6 * repeated->params.b);
  EXPECT_NEAR(weighted->log_likelihood, repeated->log_likelihood, 1e-6);
  EXPECT_FALSE(FitBgNbd(customers, std::vector<double>(3, 1.0)).ok());  // length mismatch
}

TEST(BgNbdTest, FitsHundredThousandCustomersQuickly) {
  const std::vector<RfmSummary> customers = SimulateCustomers({0.3, 25, 0.7, 3}, 100000, 99);
  const auto start = std::chrono::steady_clock::now();
  auto fit = FitBgNbd(customers);
  const double seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  ASSERT_TRUE(fit.ok());
  std::printf("BG/NBD fit of 100k customers: %.3f s, %d iterations\n", seconds, fit->iterations);
  EXPECT_TRUE(fit->converged);
  EXPECT_LT(seconds, 2.0);  // typically far less; loose because the machine is shared
}

TEST(BgNbdTest, StopsAtIterationCapWithoutError) {
  const std::vector<RfmSummary> customers = SimulateCustomers({0.5, 20, 0.8, 2.5}, 2000, 3);
  FitOptions options;
  options.max_iterations = 2;
  auto fit = FitBgNbd(customers, options);
  ASSERT_TRUE(fit.ok());
  EXPECT_FALSE(fit->converged);
  EXPECT_LE(fit->iterations, 2);
  EXPECT_TRUE(std::isfinite(fit->params.r) && std::isfinite(fit->params.b));
}

TEST(BgNbdTest, RejectsEmptyAndInvalidInput) {
  EXPECT_EQ(FitBgNbd(std::vector<RfmSummary>{}).status().code(), StatusCode::kInvalidArgument);
  const double nan = std::numeric_limits<double>::quiet_NaN();
  const std::vector<RfmSummary> invalid = {{-1, 0, 10}, {2, 11, 10}, {nan, 0, 5},
                                           {1, 2, nan}, {1.5, 2, 5}, {1, -2, 5}};
  auto fit = FitBgNbd(invalid);
  EXPECT_EQ(fit.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(fit.status().message().find("no valid"), std::string::npos);

  std::vector<RfmSummary> mixed = SimulateCustomers({0.5, 20, 0.8, 2.5}, 1000, 8);
  mixed.insert(mixed.end(), invalid.begin(), invalid.end());
  auto partial = FitBgNbd(mixed);
  ASSERT_TRUE(partial.ok());
  EXPECT_EQ(partial->customers_used, 1000u);
  EXPECT_EQ(partial->customers_skipped, invalid.size());
}

TEST(BgNbdTest, NobodyRepeatsGivesFiniteParameters) {
  std::vector<RfmSummary> customers;
  for (int i = 0; i < 5000; ++i) customers.push_back({0, 0, 10.0 + i % 300});
  auto fit = FitBgNbd(customers);
  ASSERT_TRUE(fit.ok());
  const BgNbdParams& p = fit->params;
  std::printf("nobody repeats: r=%.3g alpha=%.3g a=%.3g b=%.3g converged=%d\n", p.r, p.alpha, p.a,
              p.b, fit->converged);
  EXPECT_TRUE(fit->converged);
  for (double v : {p.r, p.alpha, p.a, p.b}) EXPECT_TRUE(std::isfinite(v) && v > 0);
  // The data say nothing about dropout: the penalty pulls a and b to 1 (to within what
  // the relative-decrease stopping rule resolves on such a flat objective).
  EXPECT_NEAR(p.a, 1, 0.01);
  EXPECT_NEAR(p.b, 1, 0.01);
  const RfmSummary someone{0, 0, 100};
  const double alive = BgNbdProbAlive(p, someone);
  EXPECT_GE(alive, 0);
  EXPECT_LE(alive, 1);
  const double expected = BgNbdExpectedTransactions(p, someone, 30);
  EXPECT_TRUE(std::isfinite(expected));
  EXPECT_GE(expected, 0);
  EXPECT_LT(expected, 0.05);  // nobody bought again, so hardly anybody will
}

// ---------------------------------------------------------------------------------------
// Gamma-Gamma

TEST(GammaGammaTest, ExpectedSpendByHand) {
  const GammaGammaParams p{6.25, 3.74, 15.44};  // the CDNow spend estimates
  EXPECT_NEAR(GammaGammaExpectedSpend(p, 2, 30), 6.25 * (15.44 + 2 * 30) / (6.25 * 2 + 3.74 - 1),
              1e-12);
  EXPECT_NEAR(GammaGammaExpectedSpend(p, 0, 0), 6.25 * 15.44 / 2.74, 1e-12);
  // A lot of history pulls the estimate towards the customer's own mean.
  EXPECT_NEAR(GammaGammaExpectedSpend(p, 1000, 50), 50, 0.5);
  EXPECT_EQ(GammaGammaExpectedSpend({0.1, 0.5, 1}, 0, 0), std::numeric_limits<double>::infinity());
}

TEST(GammaGammaTest, RecoversSimulatedParameters) {
  const GammaGammaParams truth{6, 4, 15};
  Rng rng(23);
  std::vector<double> frequency, mean_value;
  for (int i = 0; i < 30000; ++i) {
    const double x = 1 + static_cast<int>(8 * rng.Uniform());  // 1..8 repeat purchases
    const double nu = rng.Gamma(truth.q, truth.v);
    // The mean of x Gamma(p, nu) values is Gamma(p x, x nu).
    frequency.push_back(x);
    mean_value.push_back(rng.Gamma(truth.p * x, x * nu));
  }
  frequency.push_back(0);  // no repeat purchase: skipped
  mean_value.push_back(0);
  auto fit = FitGammaGamma(frequency, mean_value);
  ASSERT_TRUE(fit.ok()) << fit.status().ToString();
  const GammaGammaParams& got = fit->params;
  double true_ll = 0;
  for (size_t i = 0; i + 1 < frequency.size(); ++i) {
    true_ll += GammaGammaLogLikelihood(truth, frequency[i], mean_value[i]);
  }
  std::printf("Gamma-Gamma fit: p=%.3f q=%.3f v=%.3f, %d iterations, ll %.2f vs %.2f\n", got.p,
              got.q, got.v, fit->iterations, fit->log_likelihood, true_ll);
  EXPECT_TRUE(fit->converged);
  EXPECT_EQ(fit->customers_skipped, 1u);
  EXPECT_LT(RelativeError(got.p, truth.p), 0.05);
  EXPECT_LT(RelativeError(got.q, truth.q), 0.15);
  EXPECT_LT(RelativeError(got.v, truth.v), 0.20);
  // The population mean spend p v / (q - 1) is pinned down much better than q and v.
  EXPECT_LT(RelativeError(GammaGammaExpectedSpend(got, 0, 0), GammaGammaExpectedSpend(truth, 0, 0)),
            0.03);
  EXPECT_GE(fit->log_likelihood, true_ll);
}

TEST(GammaGammaTest, DegenerateInput) {
  EXPECT_EQ(FitGammaGamma({}, {}).status().code(), StatusCode::kInvalidArgument);
  const std::vector<double> zeros = {0, 0, 0}, values = {10, 20, 30};
  EXPECT_EQ(FitGammaGamma(zeros, values).status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(FitGammaGamma(values, std::vector<double>{1, 2}).status().code(),
            StatusCode::kInvalidArgument);
  // Everybody spends exactly the same: no spread to learn from, but finite parameters and
  // a prediction at the common value.
  const std::vector<double> x(500, 3.0), same(500, 25.0);
  auto fit = FitGammaGamma(x, same);
  ASSERT_TRUE(fit.ok());
  for (double v : {fit->params.p, fit->params.q, fit->params.v}) EXPECT_TRUE(std::isfinite(v));
  EXPECT_NEAR(GammaGammaExpectedSpend(fit->params, 3, 25), 25, 2.5);
}

TEST(ClvJsonTest, RoundTrips) {
  const BgNbdParams bg{0.24300000000000001, 4.4139999, 0.793, 2.426};
  auto back = BgNbdParamsFromJson(nlohmann::json::parse(ToJson(bg).dump()));
  ASSERT_TRUE(back.ok());
  EXPECT_EQ(back->r, bg.r);
  EXPECT_EQ(back->alpha, bg.alpha);
  EXPECT_EQ(back->a, bg.a);
  EXPECT_EQ(back->b, bg.b);
  const GammaGammaParams gg{6.25, 3.74, 15.44};
  auto gg_back = GammaGammaParamsFromJson(nlohmann::json::parse(ToJson(gg).dump()));
  ASSERT_TRUE(gg_back.ok());
  EXPECT_EQ(gg_back->p, gg.p);
  EXPECT_EQ(gg_back->q, gg.q);
  EXPECT_EQ(gg_back->v, gg.v);

  EXPECT_FALSE(BgNbdParamsFromJson(ToJson(gg)).ok());  // wrong model
  nlohmann::json negative = ToJson(bg);
  negative["b"] = -1;
  EXPECT_EQ(BgNbdParamsFromJson(negative).status().code(), StatusCode::kInvalidArgument);
  EXPECT_FALSE(GammaGammaParamsFromJson(nlohmann::json{{"p", 1}, {"q", 2}}).ok());
  EXPECT_FALSE(GammaGammaParamsFromJson(nlohmann::json::array()).ok());
}

}  // namespace
}  // namespace sibyl::ml
