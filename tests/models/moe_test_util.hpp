// Helpers shared by the MoE tests: a NoiseSource that records (and can script) every draw, and
// small random tensors.
#pragma once

#include <algorithm>
#include <cstdint>
#include <random>
#include <stdexcept>
#include <utility>
#include <vector>

#include "memory/tensor.hpp"
#include "models/noise.hpp"

namespace troupe::test {

// Records every call with the numbers it answered. Answers with the next scripted array when one
// is queued (its size must match), otherwise with SeededNoise(seed, 0).
class RecordingNoise final : public NoiseSource {
 public:
  struct Call {
    char kind;  // 'u' uniform, 'g' gumbel
    std::int64_t n;
    float lo, hi;
    std::vector<float> values;  // what the call answered
  };

  explicit RecordingNoise(std::uint64_t seed = 1) : fallback_(seed, 0) {}

  void queue(std::vector<float> values) { script_.push_back(std::move(values)); }
  const std::vector<Call>& calls() const { return calls_; }

  void uniform(float* out, std::int64_t n, float lo, float hi) override {
    if (!answer(out, n)) fallback_.uniform(out, n, lo, hi);
    calls_.push_back({'u', n, lo, hi, {out, out + n}});
  }
  void gumbel(float* out, std::int64_t n) override {
    if (!answer(out, n)) fallback_.gumbel(out, n);
    calls_.push_back({'g', n, 0.0f, 0.0f, {out, out + n}});
  }

 private:
  bool answer(float* out, std::int64_t n) {
    if (next_ >= script_.size()) return false;
    const std::vector<float>& values = script_[next_++];
    if (static_cast<std::int64_t>(values.size()) != n)
      throw std::logic_error("RecordingNoise: scripted draw has the wrong size");
    std::copy(values.begin(), values.end(), out);
    return true;
  }

  SeededNoise fallback_;
  std::vector<std::vector<float>> script_;
  std::size_t next_ = 0;
  std::vector<Call> calls_;
};

inline Tensor random_tensor(const Shape& shape, std::uint32_t seed, float scale = 1.0f) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> normal(0.0f, scale);
  Tensor t = Tensor::empty(shape);
  float* p = t.data<float>();
  for (std::int64_t i = 0; i < t.numel(); ++i) p[i] = normal(rng);
  return t;
}

}  // namespace troupe::test
