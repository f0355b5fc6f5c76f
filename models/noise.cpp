// SeededNoise: splitmix64's finaliser used as a hash of (key, counter) — see noise.hpp.
#include "models/noise.hpp"

#include <cmath>
#include <stdexcept>
#include <string>

namespace troupe {
namespace {

constexpr std::uint64_t kGolden = 0x9e3779b97f4a7c15ULL;

std::uint64_t mix64(std::uint64_t z) {
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
  return z ^ (z >> 31);
}

void check_count(const char* function, std::int64_t n) {
  if (n < 0)
    throw std::invalid_argument(std::string(function) + ": n = " + std::to_string(n) +
                                ", must be ≥ 0");
}

}  // namespace

// Hashing the stream before mixing it with the seed keeps (seed, stream) and (seed', stream')
// apart even when seed ^ stream collide.
SeededNoise::SeededNoise(std::uint64_t seed, std::uint64_t stream)
    : key_(mix64(seed ^ mix64(stream + kGolden))) {}

// mix64 is a bijection, so within one stream distinct counters never give equal 64-bit values; the
// outer mix decorrelates streams whose keys differ in a few bits.
float SeededNoise::next_open_unit() {
  const std::uint64_t bits = mix64(key_ ^ mix64(counter_++ + kGolden));
  // 23 bits plus one half fit a float's 24-bit significand, so U lies strictly inside (0, 1).
  return (static_cast<float>(bits >> 41) + 0.5f) * 0x1p-23f;
}

void SeededNoise::uniform(float* out, std::int64_t n, float lo, float hi) {
  check_count("SeededNoise::uniform", n);
  if (!(lo <= hi))
    throw std::invalid_argument("SeededNoise::uniform: lo = " + std::to_string(lo) +
                                " and hi = " + std::to_string(hi) + ", need lo ≤ hi");
  for (std::int64_t i = 0; i < n; ++i) out[i] = lo + (hi - lo) * next_open_unit();
}

void SeededNoise::gumbel(float* out, std::int64_t n) {
  check_count("SeededNoise::gumbel", n);
  for (std::int64_t i = 0; i < n; ++i) out[i] = -std::log(-std::log(next_open_unit()));
}

}  // namespace troupe
