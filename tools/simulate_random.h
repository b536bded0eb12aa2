// The simulator's randomness: a splitmix64 generator, Poisson counts and weighted choices, all in
// integer arithmetic so that a seed gives the same events on every platform and compiler (the std
// distributions differ between standard libraries, and floating point between FMA and non-FMA builds).
//
// Rates and factors are fixed point with 16 fraction bits (kOne == 1.0); probabilities inside the
// Poisson sampler have 62.
#pragma once

#include <cassert>
#include <cmath>
#include <cstdint>
#include <span>
#include <vector>

namespace qudao::sim {

inline constexpr std::uint64_t kOne = std::uint64_t{1} << 16;

__extension__ typedef unsigned __int128 u128;  // GCC and Clang on every 64-bit target

// splitmix64: tiny, fast and identical everywhere.
class Rng {
 public:
  explicit Rng(std::uint64_t seed) : s_(seed) {}

  std::uint64_t next() {
    std::uint64_t z = (s_ += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
  }
  // Uniform in [0, n) for n > 0: the high half of a 128-bit product (no division; bias < n / 2^64).
  std::uint64_t below(std::uint64_t n) { return static_cast<std::uint64_t>((static_cast<u128>(next()) * n) >> 64); }
  // Uniform in [lo, hi].
  std::int64_t between(std::int64_t lo, std::int64_t hi) {
    return lo + static_cast<std::int64_t>(below(static_cast<std::uint64_t>(hi - lo) + 1));
  }
  bool percent(std::uint64_t p) { return below(100) < p; }
  // True with probability threshold / 2^64 (threshold_of() makes one from a fraction).
  bool chance(std::uint64_t threshold) { return next() < threshold; }

 private:
  std::uint64_t s_;
};

// A fraction in [0, 1] as a threshold for Rng::chance. Converted once per run; the conversion of a
// double to an integer is exact, so the same flag value gives the same threshold everywhere.
inline std::uint64_t threshold_of(double p) {
  if (!(p > 0)) return 0;
  if (p >= 1) return UINT64_MAX;
  return static_cast<std::uint64_t>(std::ldexp(p, 64));
}

// Poisson counts by inversion: P(0) = e^-λ from two tables, then P(k) = P(k-1)·λ/k, summed until the
// uniform draw is passed. Means above kSmallMax are split (a sum of Poisson counts is a Poisson count
// of the summed means). Expected work: λ + 1 steps.
class Poisson {
 public:
  Poisson() : hi_(kHiSteps + 1), lo_(256) {
    // e^-(1/65536) in Q62 from its series (the x^4 term is below 2^-64), then powers of it.
    constexpr std::uint64_t kOneQ62 = std::uint64_t{1} << 62;
    const std::uint64_t e1 = kOneQ62 - (std::uint64_t{1} << 46) + (std::uint64_t{1} << 29) - 2731;
    lo_[0] = kOneQ62;
    for (std::size_t i = 1; i < lo_.size(); ++i) lo_[i] = mul_q62(lo_[i - 1], e1);
    const std::uint64_t step = mul_q62(lo_[255], e1);  // e^-(1/256)
    hi_[0] = kOneQ62;
    for (std::size_t i = 1; i < hi_.size(); ++i) hi_[i] = mul_q62(hi_[i - 1], step);
  }

  // A count with mean lambda_q16 / kOne.
  std::int64_t sample(Rng& rng, std::uint64_t lambda_q16) const {
    std::int64_t n = 0;
    for (; lambda_q16 > kSmallMax; lambda_q16 -= kSmallMax) n += small(rng, kSmallMax);
    return n + small(rng, lambda_q16);
  }

 private:
  static constexpr std::uint64_t kSmallMax = 16 * kOne;
  static constexpr std::size_t kHiSteps = kSmallMax >> 8;
  static constexpr std::int64_t kStepsMax = 200;  // far past any λ <= 16; the tail beyond is < 2^-62

  static std::uint64_t mul_q62(std::uint64_t a, std::uint64_t b) {
    return static_cast<std::uint64_t>((static_cast<u128>(a) * b + (u128{1} << 61)) >> 62);
  }

  std::int64_t small(Rng& rng, std::uint64_t lambda_q16) const {
    if (lambda_q16 == 0) return 0;
    assert(lambda_q16 <= kSmallMax);
    std::uint64_t p = mul_q62(hi_[lambda_q16 >> 8], lo_[lambda_q16 & 255]);
    const std::uint64_t u = rng.next() >> 2;
    std::uint64_t cdf = p;
    std::int64_t k = 0;
    while (u >= cdf && k < kStepsMax) {
      ++k;
      p = static_cast<std::uint64_t>((static_cast<u128>(p) * lambda_q16) / (static_cast<std::uint64_t>(k) << 16));
      if (p == 0) break;
      cdf += p;
    }
    return k;
  }

  std::vector<std::uint64_t> hi_;  // e^-(i/256), i = 0..4096, Q62
  std::vector<std::uint64_t> lo_;  // e^-(i/65536), i = 0..255, Q62
};

// Weighted choice among n items in O(1) (Vose's alias method), built in integer arithmetic so the
// table is exact. Rebuilt in place (no allocation once grown).
class AliasTable {
 public:
  // Each weight <= 2^40, at most 2^20 of them.
  void build(std::span<const std::uint64_t> weights) {
    const std::size_t n = weights.size();
    total_ = 0;
    for (std::uint64_t w : weights) total_ += w;
    cut_.resize(n);
    alias_.resize(n);
    scaled_.resize(n);
    small_.clear();
    large_.clear();
    for (std::size_t i = 0; i < n; ++i) {
      scaled_[i] = weights[i] * n;  // each bucket holds total_
      alias_[i] = static_cast<std::uint32_t>(i);
      (scaled_[i] < total_ ? small_ : large_).push_back(static_cast<std::uint32_t>(i));
    }
    while (!small_.empty() && !large_.empty()) {
      const std::uint32_t s = small_.back(), l = large_.back();
      small_.pop_back();
      large_.pop_back();
      cut_[s] = scaled_[s];
      alias_[s] = l;
      scaled_[l] -= total_ - scaled_[s];
      (scaled_[l] < total_ ? small_ : large_).push_back(l);
    }
    for (std::uint32_t i : small_) cut_[i] = total_;
    for (std::uint32_t i : large_) cut_[i] = total_;
  }

  std::uint64_t total() const { return total_; }

  // An index with probability weight / total; total() must be > 0.
  std::uint32_t sample(Rng& rng) const {
    const auto i = static_cast<std::uint32_t>(rng.below(cut_.size()));
    return rng.below(total_) < cut_[i] ? i : alias_[i];
  }

 private:
  std::uint64_t total_ = 0;
  std::vector<std::uint64_t> cut_;
  std::vector<std::uint32_t> alias_;
  std::vector<std::uint64_t> scaled_;
  std::vector<std::uint32_t> small_, large_;
};

}  // namespace qudao::sim
