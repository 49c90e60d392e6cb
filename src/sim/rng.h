// A small, fast, portable random number generator for the simulator. The standard
// library's distributions are implementation-defined, so the simulator draws everything
// through these functions: the same seed gives the same bytes with any compiler.
#pragma once

#include <cmath>
#include <cstdint>

#include "common/mix.h"

namespace sibyl::sim {

using sibyl::SplitMix64;

// xoshiro256** (Blackman & Vigna). One instance per simulated user, seeded from
// (seed, user index), so a user's history does not depend on blocks or threads.
class Rng {
 public:
  Rng(uint64_t seed, uint64_t stream) {
    uint64_t x = SplitMix64(seed ^ SplitMix64(stream + 0x1234567ULL));
    for (uint64_t& word : s_) {
      x = SplitMix64(x);
      word = x;
    }
  }

  uint64_t Next() {
    const uint64_t result = Rotl(s_[1] * 5, 7) * 9;
    const uint64_t t = s_[1] << 17;
    s_[2] ^= s_[0];
    s_[3] ^= s_[1];
    s_[1] ^= s_[2];
    s_[0] ^= s_[3];
    s_[2] ^= t;
    s_[3] = Rotl(s_[3], 45);
    return result;
  }

  // Uniform in [0, 1).
  double Uniform() { return static_cast<double>(Next() >> 11) * 0x1.0p-53; }
  // Uniform in [lo, hi).
  double Uniform(double lo, double hi) { return lo + (hi - lo) * Uniform(); }
  // Uniform integer in [0, n).
  uint32_t Below(uint32_t n) {
    return static_cast<uint32_t>((static_cast<uint64_t>(static_cast<uint32_t>(Next() >> 32)) * n) >> 32);
  }
  bool Bernoulli(double p) { return Uniform() < p; }
  // Exponential with mean 1.
  double Exp() { return -std::log1p(-Uniform()); }
  // Standard normal (Box-Muller; the second value is discarded to keep the stream simple).
  double Normal() {
    double u1 = 1.0 - Uniform();  // (0, 1]
    double u2 = Uniform();
    return std::sqrt(-2.0 * std::log(u1)) * std::cos(6.283185307179586 * u2);
  }
  // Gamma with shape k > 0 and scale 1 (Marsaglia & Tsang 2000; for k < 1 the boost
  // Gamma(k + 1) * U^(1/k)). Rate-parametrised draws divide by the rate.
  double Gamma(double k) {
    if (k < 1.0) {
      double boost = std::pow(1.0 - Uniform(), 1.0 / k);  // U in (0, 1]
      return Gamma(k + 1.0) * boost;
    }
    const double d = k - 1.0 / 3.0, c = 1.0 / std::sqrt(9.0 * d);
    while (true) {
      double x = Normal();
      double v = 1.0 + c * x;
      if (v <= 0) continue;
      v = v * v * v;
      double u = 1.0 - Uniform();  // (0, 1]
      if (u < 1.0 - 0.0331 * x * x * x * x) return d * v;
      if (std::log(u) < 0.5 * x * x + d * (1.0 - v + std::log(v))) return d * v;
    }
  }
  // Beta(a, b) as X / (X + Y) with X ~ Gamma(a), Y ~ Gamma(b).
  double Beta(double a, double b) {
    double x = Gamma(a), y = Gamma(b);
    return x + y > 0 ? x / (x + y) : 0.5;
  }
  // Number of failures before the first success, mean (1-p)/p.
  uint32_t Geometric(double p) {
    if (p >= 1.0) return 0;
    return static_cast<uint32_t>(std::floor(std::log1p(-Uniform()) / std::log1p(-p)));
  }

 private:
  static uint64_t Rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }
  uint64_t s_[4];
};

}  // namespace sibyl::sim
