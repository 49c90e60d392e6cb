// Probabilistic purchase models for customer-lifetime value: the BG/NBD model of repeat
// purchases (Fader, Hardie & Lee 2005, "Counting your customers the easy way") and the
// Gamma-Gamma model of spend per transaction (Fader, Hardie & Lee 2005, "RFM and CLV";
// Fader & Hardie, note 025). Both are fitted by maximum likelihood in C++; no Python.
//
// Time is in days throughout (any unit works as long as it is the same everywhere: the
// fitted alpha is in that unit). See docs/ML.md, "Probabilistic purchase models".
#pragma once

#include <cstddef>
#include <nlohmann/json_fwd.hpp>
#include <span>

#include "common/status.h"

namespace sibyl::ml {

// One customer's repeat-purchase summary at a cutoff, in the paper's notation:
// x = repeat transactions (transactions after the first, a whole number), t_x = time of the
// last transaction measured from the first, T = age: cutoff minus the first transaction.
// x = 0 implies t_x = 0 (t_x is ignored then). Valid: all finite, x >= 0 whole, 0 <= t_x <= T.
struct RfmSummary {
  double x = 0, t_x = 0, T = 0;
};

// BG/NBD: while alive a customer buys at Poisson rate lambda ~ Gamma(r, rate alpha); after
// each repeat purchase it drops out for good with probability p ~ Beta(a, b).
struct BgNbdParams {
  double r, alpha, a, b;
};

struct FitOptions {
  int max_iterations = 2000;
  // Stop when an iteration lowers the objective by less than this, relative to its size
  // (the convention of scipy's L-BFGS-B `ftol`).
  double tolerance = 1e-9;
  // Ridge penalty on the log-parameters, added to the mean negative log-likelihood per
  // customer (i.e. l2_penalty * sum of log(param)^2 per unit of customer weight). Small
  // enough not to move a fit on real data measurably, large enough to keep parameters the
  // data cannot pin down (nobody repeats, all spends equal) finite. 0 disables it.
  double l2_penalty = 1e-4;
};

struct BgNbdFit {
  BgNbdParams params;
  double log_likelihood;  // sum over customers (weighted), without the penalty
  int iterations;
  bool converged;                // false: stopped at max_iterations (the params are still usable)
  size_t customers_used = 0;     // valid summaries with positive weight
  size_t customers_skipped = 0;  // invalid summaries (see RfmSummary) or weight <= 0 / NaN
};

// Maximum-likelihood fit on log-parameters by L-BFGS with an analytic gradient;
// deterministic. Invalid summaries are skipped and counted; InvalidArgument if none is
// left. Identical summaries are pooled, so the cost per iteration is O(distinct customers).
Result<BgNbdFit> FitBgNbd(std::span<const RfmSummary> customers, const FitOptions& options = {});
// Same with a weight per customer (e.g. a count of identical customers); `weights` must be
// as long as `customers`.
Result<BgNbdFit> FitBgNbd(std::span<const RfmSummary> customers, std::span<const double> weights,
                          const FitOptions& options = {});

// The predictions below assume valid parameters (all > 0) and a valid summary; otherwise
// the result is meaningless (often NaN). They are computed in log space, so large x or T
// do not overflow.

// log L(r, alpha, a, b | x, t_x, T): eq. (6) of the paper, for one customer.
double BgNbdLogLikelihood(const BgNbdParams& params, const RfmSummary& customer);
// P(alive at T | x, t_x, T). Always 1 for x = 0 (BG/NBD customers only drop out right
// after a repeat purchase).
double BgNbdProbAlive(const BgNbdParams& params, const RfmSummary& customer);
// E[Y(t) | x, t_x, T]: expected repeat purchases in (T, T + t], eq. (10).
double BgNbdExpectedTransactions(const BgNbdParams& params, const RfmSummary& customer, double t);
// P(at least one purchase in (T, T + t] | x, t_x, T) =
// P(alive) * (1 - ((alpha + T) / (alpha + T + t))^(r + x)). Exact for BG/NBD: a customer
// alive at T can only drop out after a purchase, so "alive and a Poisson event within t".
double BgNbdProbAnyWithin(const BgNbdParams& params, const RfmSummary& customer, double t);

// Gamma-Gamma: a customer's transaction values are Gamma(p, rate nu) with
// nu ~ Gamma(q, rate v) across customers, independent of the purchase process.
struct GammaGammaParams {
  double p, q, v;
};

struct GammaGammaFit {
  GammaGammaParams params;
  double log_likelihood;  // sum over customers, without the penalty
  int iterations;
  bool converged;
  size_t customers_used = 0;
  size_t customers_skipped = 0;  // frequency < 1, mean_value <= 0, or not finite
};

// Fits customers with frequency = x >= 1 repeat transactions and mean transaction value
// m_x > 0 (per customer, same index in both spans, which must be equally long). Others
// are skipped and counted; InvalidArgument if none is left.
Result<GammaGammaFit> FitGammaGamma(std::span<const double> frequency,
                                    std::span<const double> mean_value,
                                    const FitOptions& options = {});

// log f(m_x | p, q, v, x) for one customer (density of its mean value).
double GammaGammaLogLikelihood(const GammaGammaParams& params, double frequency, double mean_value);

// E[M | x, m_x] = p (v + x m_x) / (p x + q - 1); for x = 0 the population mean
// p v / (q - 1). +infinity when the denominator is <= 0 (q <= 1 - p x: the model's mean
// spend is infinite).
double GammaGammaExpectedSpend(const GammaGammaParams& params, double frequency, double mean_value);

// {"model": "bg_nbd", "r": .., "alpha": .., "a": .., "b": ..}; doubles round-trip exactly.
nlohmann::json ToJson(const BgNbdParams& params);
Result<BgNbdParams> BgNbdParamsFromJson(const nlohmann::json& json);
// {"model": "gamma_gamma", "p": .., "q": .., "v": ..}.
nlohmann::json ToJson(const GammaGammaParams& params);
Result<GammaGammaParams> GammaGammaParamsFromJson(const nlohmann::json& json);

// Gauss hypergeometric 2F1(a, b; c; z) for real parameters and 0 <= z < 1, c not a
// non-positive integer. Power series; when z is close to 1 and the series would be slow,
// the z -> 1 - z connection formula (Abramowitz & Stegun 15.3.6). Exposed for tests.
double Hypergeometric2F1(double a, double b, double c, double z);

}  // namespace sibyl::ml
