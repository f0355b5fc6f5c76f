// Batcher: per-epoch orders are reproducible permutations, batches follow them, and a run resumed
// from a saved position draws exactly the batches of an uninterrupted run.
#include <catch2/catch.hpp>

#include <algorithm>
#include <cmath>
#include <memory>
#include <numeric>
#include <vector>

#include "data/batcher.hpp"

namespace {

using Indices = std::vector<std::int64_t>;

// Sample i is the input row [i, −i] and the target i, so a batch shows which samples it holds.
class IotaDataset final : public troupe::Dataset {
 public:
  explicit IotaDataset(std::int64_t n) : n_(n) {}
  std::int64_t size() const override { return n_; }
  void gather(std::span<const std::int64_t> indices, troupe::Tensor& inputs,
              troupe::Tensor& targets) const override {
    troupe::check_indices("IotaDataset", indices, n_);
    const auto n = static_cast<std::int64_t>(indices.size());
    inputs = troupe::Tensor::empty({n, 2});
    targets = troupe::Tensor::empty({n}, troupe::DType::i32);
    for (std::int64_t i = 0; i < n; ++i) {
      const auto v = indices[static_cast<std::size_t>(i)];
      inputs.data<float>()[2 * i] = static_cast<float>(v);
      inputs.data<float>()[2 * i + 1] = -static_cast<float>(v);
      targets.data<std::int32_t>()[i] = static_cast<std::int32_t>(v);
    }
  }

 private:
  std::int64_t n_;
};

troupe::Batcher make(std::int64_t n, troupe::BatcherOptions options) {
  return troupe::Batcher(std::make_shared<IotaDataset>(n), options);
}

// The samples of the next batch, checking that inputs and targets agree.
Indices next_samples(troupe::Batcher& batcher) {
  troupe::Tensor x, y;
  batcher.next(x, y);
  REQUIRE(x.size(0) == y.size(0));
  Indices out;
  for (std::int64_t i = 0; i < y.size(0); ++i) {
    const auto v = y.data<std::int32_t>()[i];
    REQUIRE(x.data<float>()[2 * i] == static_cast<float>(v));
    REQUIRE(x.data<float>()[2 * i + 1] == -static_cast<float>(v));
    out.push_back(v);
  }
  return out;
}

bool is_permutation_of_iota(Indices order) {
  std::sort(order.begin(), order.end());
  for (std::size_t i = 0; i < order.size(); ++i)
    if (order[i] != static_cast<std::int64_t>(i)) return false;
  return true;
}

}  // namespace

TEST_CASE("epoch orders: reproducible permutations, different per epoch and seed",
          "[data][batcher]") {
  auto a = make(97, {.batch_size = 8, .seed = 5});
  auto b = make(97, {.batch_size = 3, .seed = 5});  // the order does not depend on the batch size
  auto c = make(97, {.batch_size = 8, .seed = 6});
  for (std::int64_t epoch = 0; epoch < 4; ++epoch) {
    const Indices order = a.epoch_order(epoch);
    CHECK(order.size() == 97);
    CHECK(is_permutation_of_iota(order));
    CHECK(order == b.epoch_order(epoch));
    CHECK(order != c.epoch_order(epoch));
    CHECK(order != a.epoch_order(epoch + 1));
  }
  auto plain = make(9, {.batch_size = 2, .shuffle = false});
  CHECK(plain.epoch_order(3) == Indices{0, 1, 2, 3, 4, 5, 6, 7, 8});
  CHECK_THROWS_AS(a.epoch_order(-1), std::out_of_range);
}

TEST_CASE("shuffles are unbiased", "[data][batcher]") {
  // Over 2000 epochs of 5 samples, each value lands first 400 times on average (binomial, sd
  // sqrt(2000 · 0.2 · 0.8) = 17.9); ±90 is 5 sd, so an unbiased shuffle fails with probability
  // about 1e-6. The classic slip, drawing from [0, i − 1) (Sattolo's cyclic shuffle), never leaves
  // a value in place: value 0 would never come first, and the check fails by 400.
  auto batcher = make(5, {.batch_size = 1, .seed = 11});
  std::vector<int> first(5, 0);
  for (std::int64_t epoch = 0; epoch < 2000; ++epoch)
    ++first[static_cast<std::size_t>(batcher.epoch_order(epoch)[0])];
  for (int count : first) CHECK(std::abs(count - 400) <= 90);
}

TEST_CASE("batches follow the epoch order, with or without the last partial batch",
          "[data][batcher]") {
  SECTION("drop_last: 10 samples in batches of 4 give 2 batches per epoch") {
    auto batcher = make(10, {.batch_size = 4, .seed = 3});
    CHECK(batcher.batches_per_epoch() == 2);
    for (std::int64_t epoch = 0; epoch < 3; ++epoch) {
      const Indices order = batcher.epoch_order(epoch);
      CHECK(batcher.position() == troupe::BatcherPosition{epoch, 0});
      CHECK(next_samples(batcher) == Indices(order.begin(), order.begin() + 4));
      CHECK(batcher.position() == troupe::BatcherPosition{epoch, 4});
      CHECK(next_samples(batcher) == Indices(order.begin() + 4, order.begin() + 8));
    }
    CHECK(batcher.position() == troupe::BatcherPosition{3, 0});
  }
  SECTION("keep the last batch: 4, 4, then 2") {
    auto batcher = make(10, {.batch_size = 4, .seed = 3, .drop_last = false});
    CHECK(batcher.batches_per_epoch() == 3);
    const Indices order = batcher.epoch_order(0);
    Indices seen;
    for (std::size_t expected : {4u, 4u, 2u}) {
      const Indices batch = next_samples(batcher);
      CHECK(batch.size() == expected);
      seen.insert(seen.end(), batch.begin(), batch.end());
    }
    CHECK(seen == order);
    CHECK(batcher.position() == troupe::BatcherPosition{1, 0});
  }
  SECTION("limit_samples uses the first samples only") {
    auto batcher = make(50, {.batch_size = 3, .seed = 1, .drop_last = false, .limit_samples = 7});
    CHECK(batcher.samples() == 7);
    Indices seen;
    for (int i = 0; i < 3; ++i) {
      const Indices batch = next_samples(batcher);
      seen.insert(seen.end(), batch.begin(), batch.end());
    }
    CHECK(is_permutation_of_iota(seen));
  }
}

TEST_CASE("resuming from a saved position gives the same subsequent batches", "[data][batcher]") {
  const troupe::BatcherOptions options{.batch_size = 4, .seed = 99, .drop_last = false};
  auto original = make(11, options);  // 3 batches per epoch: 4, 4, 3
  for (int i = 0; i < 5; ++i) next_samples(original);
  const troupe::BatcherPosition saved = original.position();
  CHECK(saved == troupe::BatcherPosition{1, 8});

  auto resumed = make(11, options);
  resumed.seek(saved);
  for (int i = 0; i < 7; ++i) {  // across two epoch boundaries
    INFO("batch " << i);
    CHECK(next_samples(resumed) == next_samples(original));
  }
  CHECK(resumed.position() == original.position());
}

TEST_CASE("batcher errors", "[data][batcher]") {
  CHECK_THROWS_AS(make(10, {.batch_size = 0}), std::invalid_argument);
  CHECK_THROWS_AS(make(0, {.batch_size = 1}), std::invalid_argument);
  CHECK_THROWS_WITH(make(3, {.batch_size = 4}), Catch::Contains("no full batch of 4"));
  CHECK_THROWS_AS(make(10, {.batch_size = 1, .limit_samples = -1}), std::invalid_argument);
  CHECK_THROWS_AS(troupe::Batcher(nullptr, {.batch_size = 1}), std::invalid_argument);
  auto batcher = make(10, {.batch_size = 4});  // drop_last: indices 0..7 are handed out
  CHECK_THROWS_AS(batcher.seek({0, 8}), std::out_of_range);
  CHECK_THROWS_AS(batcher.seek({-1, 0}), std::out_of_range);
  CHECK_NOTHROW(batcher.seek({5, 7}));
}
