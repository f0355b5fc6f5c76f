// Per-epoch shuffled batching with resumable positions.
#include "data/batcher.hpp"

#include <algorithm>
#include <limits>
#include <numeric>
#include <random>
#include <span>
#include <stdexcept>
#include <string>

namespace troupe {

namespace {

// Uniform in [0, bound) by rejection: the engine's 2^64 outputs are cut to a multiple of `bound`.
std::uint64_t uniform_below(std::mt19937_64& engine, std::uint64_t bound) {
  const std::uint64_t limit =
      std::numeric_limits<std::uint64_t>::max() - std::numeric_limits<std::uint64_t>::max() % bound;
  std::uint64_t draw = 0;
  do draw = engine();
  while (draw >= limit);
  return draw % bound;
}

}  // namespace

Batcher::Batcher(std::shared_ptr<const Dataset> dataset, BatcherOptions options)
    : dataset_(std::move(dataset)), options_(options) {
  if (!dataset_) throw std::invalid_argument("Batcher: dataset is null");
  if (options_.batch_size < 1)
    throw std::invalid_argument("Batcher: batch_size must be >= 1, got " +
                                std::to_string(options_.batch_size));
  if (options_.limit_samples < 0)
    throw std::invalid_argument("Batcher: limit_samples must be >= 0 (0 = all), got " +
                                std::to_string(options_.limit_samples));
  samples_ = dataset_->size();
  if (options_.limit_samples > 0) samples_ = std::min(samples_, options_.limit_samples);
  if (samples_ == 0) throw std::invalid_argument("Batcher: the dataset is empty");
  if (options_.drop_last && samples_ < options_.batch_size)
    throw std::invalid_argument("Batcher: " + std::to_string(samples_) +
                                " samples hold no full batch of " +
                                std::to_string(options_.batch_size) +
                                " (drop_last); use a smaller batch or drop_last = false");
}

std::int64_t Batcher::batches_per_epoch() const {
  const std::int64_t b = options_.batch_size;
  return options_.drop_last ? samples_ / b : (samples_ + b - 1) / b;
}

std::int64_t Batcher::epoch_end() const {
  return options_.drop_last ? samples_ / options_.batch_size * options_.batch_size : samples_;
}

void Batcher::seek(BatcherPosition position) {
  if (position.epoch < 0 || position.index < 0 || position.index >= epoch_end())
    throw std::out_of_range("Batcher::seek: position (epoch " + std::to_string(position.epoch) +
                            ", index " + std::to_string(position.index) +
                            ") needs epoch >= 0 and index in [0, " + std::to_string(epoch_end()) +
                            ")");
  position_ = position;
}

std::vector<std::int64_t> Batcher::epoch_order(std::int64_t epoch) const {
  if (epoch < 0)
    throw std::out_of_range("Batcher::epoch_order: epoch must be >= 0, got " +
                            std::to_string(epoch));
  std::vector<std::int64_t> order(static_cast<std::size_t>(samples_));
  std::iota(order.begin(), order.end(), std::int64_t{0});
  if (!options_.shuffle) return order;
  const auto e = static_cast<std::uint64_t>(epoch);
  std::seed_seq seq{static_cast<std::uint32_t>(options_.seed),
                    static_cast<std::uint32_t>(options_.seed >> 32), static_cast<std::uint32_t>(e),
                    static_cast<std::uint32_t>(e >> 32)};
  std::mt19937_64 engine(seq);
  for (std::size_t i = order.size(); i > 1; --i)
    std::swap(order[i - 1], order[uniform_below(engine, i)]);
  return order;
}

void Batcher::load_order(std::int64_t epoch) {
  if (order_epoch_ == epoch) return;
  order_ = epoch_order(epoch);
  order_epoch_ = epoch;
}

void Batcher::next(Tensor& inputs, Tensor& targets) {
  load_order(position_.epoch);
  const std::int64_t count = std::min(options_.batch_size, epoch_end() - position_.index);
  dataset_->gather(std::span<const std::int64_t>(order_).subspan(
                       static_cast<std::size_t>(position_.index), static_cast<std::size_t>(count)),
                   inputs, targets);
  advance(count);
}

void Batcher::skip() {
  advance(std::min(options_.batch_size, epoch_end() - position_.index));
}

void Batcher::advance(std::int64_t count) {
  position_.index += count;
  if (position_.index == epoch_end()) position_ = {position_.epoch + 1, 0};
}

}  // namespace troupe
