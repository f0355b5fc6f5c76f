// Sources of random numbers for training-time noise (gate jitter, RSample and top-2 Gumbel noise,
// Random Token Selection priorities) and parameter initialisation.
//
// Layers take a NoiseSource& instead of owning a generator, so that nothing random is hidden in a
// layer object: the runtime hands each (step, micro-batch, layer) its own stream, and tests inject
// the exact numbers they want.
#pragma once

#include <cstdint>

namespace troupe {

class NoiseSource {
 public:
  virtual ~NoiseSource() = default;
  // n samples of U(lo, hi).
  virtual void uniform(float* out, std::int64_t n, float lo, float hi) = 0;
  // n samples of Gumbel(0, 1) = −log(−log U), U ~ U(0, 1).
  virtual void gumbel(float* out, std::int64_t n) = 0;
};

// Counter-based generator: the i-th number drawn is a hash of (seed, stream, i), so a stream's
// numbers do not depend on any other stream or on the order in which streams are used, and
// drawing n then m numbers gives the same values as drawing n + m at once.
class SeededNoise final : public NoiseSource {
 public:
  SeededNoise(std::uint64_t seed, std::uint64_t stream);

  // Samples are lo + (hi − lo)·U with U = (m + ½)·2⁻²³ for a random 23-bit m: U is never 0 or 1,
  // so the Gumbel transform stays finite. Throws std::invalid_argument when n < 0 or !(lo ≤ hi).
  void uniform(float* out, std::int64_t n, float lo, float hi) override;
  void gumbel(float* out, std::int64_t n) override;

  std::uint64_t drawn() const { return counter_; }

 private:
  float next_open_unit();

  std::uint64_t key_;
  std::uint64_t counter_ = 0;
};

}  // namespace troupe
