// A small seeded PRNG and string hash with fully specified output (std::uniform_*_distribution is
// implementation-defined, so it would make synthetic catalogs and splits differ between compilers).
#pragma once
#include <cstdint>
#include <string>
#include <utility>
#include <vector>

namespace tailor {

inline uint64_t splitmix64_mix(uint64_t z) {
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}

inline uint64_t fnv1a64(const std::string& s) {
  uint64_t h = 0xCBF29CE484222325ull;
  for (unsigned char c : s) {
    h ^= c;
    h *= 0x100000001B3ull;
  }
  return h;
}

// splitmix64 (Steele, Lea, Flood 2014).
struct Rng {
  uint64_t state;
  explicit Rng(uint64_t seed) : state(seed) {}
  uint64_t next() {
    state += 0x9E3779B97F4A7C15ull;
    return splitmix64_mix(state);
  }
  // Uniform in [0, 1) with 53 random bits.
  double uniform() { return static_cast<double>(next() >> 11) * (1.0 / 9007199254740992.0); }
  double uniform(double lo, double hi) { return lo + (hi - lo) * uniform(); }
  // Uniform integer in [0, n); n > 0. The modulo bias (< n / 2^64) does not matter here.
  int below(int n) { return static_cast<int>(next() % static_cast<uint64_t>(n)); }
  bool chance(double p) { return uniform() < p; }
  template <typename T>
  T pick(const std::vector<T>& v) {
    return v[below(static_cast<int>(v.size()))];
  }
  // Fisher-Yates from the back: the one seeded shuffle (epoch orders, pre-training batches).
  template <typename T>
  void shuffle(std::vector<T>& v) {
    for (int64_t i = static_cast<int64_t>(v.size()) - 1; i > 0; --i)
      std::swap(v[i], v[next() % static_cast<uint64_t>(i + 1)]);
  }
};

}  // namespace tailor
