// The interface a Batcher draws samples from: a fixed number of samples, any subset of which can be
// copied out as one batch of tensors. Datasets are immutable once built, so one may be shared by a
// data actor's batcher and evaluation at the same time.
#pragma once

#include <cstdint>
#include <span>

#include "memory/tensor.hpp"

namespace troupe {

class Dataset {
 public:
  virtual ~Dataset() = default;

  virtual std::int64_t size() const = 0;

  // Writes fresh tensors holding samples `indices` (each in [0, size()), in that order):
  // inputs [n, ...sample shape] and targets [n, ...target shape]. Fresh, so that batches in flight
  // never share memory. Throws std::out_of_range for an index outside the dataset.
  virtual void gather(std::span<const std::int64_t> indices, Tensor& inputs,
                      Tensor& targets) const = 0;
};

// Checks every index against a dataset of `size` samples; throws std::out_of_range naming `who`.
void check_indices(const char* who, std::span<const std::int64_t> indices, std::int64_t size);

}  // namespace troupe
