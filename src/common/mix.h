// SplitMix64 (Steele, Lea & Flood 2014; Vigna's constants): the one 64-bit mixer that the
// simulator's seeds, the split's user hash, the metrics' bootstrap and the shard choice all
// use. Plain integer arithmetic, so every platform and compiler gives the same numbers (the
// standard library's distributions are implementation-defined); what each caller derives
// from it is part of a stored format or a reproducible result, so these must not change.
#pragma once

#include <cstdint>

namespace sibyl {

inline constexpr uint64_t kGoldenGamma = 0x9e3779b97f4a7c15ULL;

// The finaliser alone: a bijection that spreads every input bit over the output.
constexpr uint64_t Mix64(uint64_t z) {
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
  return z ^ (z >> 31);
}

// One SplitMix64 step from `x`: used to derive independent seeds and to hash ids.
constexpr uint64_t SplitMix64(uint64_t x) { return Mix64(x + kGoldenGamma); }

// SplitMix64 as a stream of numbers.
class SplitMix64Stream {
 public:
  explicit SplitMix64Stream(uint64_t state) : state_(state) {}
  uint64_t Next() { return Mix64(state_ += kGoldenGamma); }
  double Unit() { return static_cast<double>(Next() >> 11) * 0x1.0p-53; }  // [0, 1)

 private:
  uint64_t state_;
};

}  // namespace sibyl
