// Evaluation shards: every rank runs the same number of batches, none empty, and together the
// ranks cover the split exactly once; one rank (or a split too small) keeps plain batches.
#include <catch2/catch.hpp>

#include <memory>

#include "data/eval_shard.hpp"

using namespace troupe;

namespace {

// Samples whose input is their index.
class IndexDataset final : public Dataset {
 public:
  explicit IndexDataset(std::int64_t n) : n_(n) {}
  std::int64_t size() const override { return n_; }
  void gather(std::span<const std::int64_t> indices, Tensor& inputs,
              Tensor& targets) const override {
    check_indices("IndexDataset", indices, n_);
    const auto count = static_cast<std::int64_t>(indices.size());
    inputs = Tensor::empty({count, 1});
    targets = Tensor::empty({count}, DType::i32);
    for (std::int64_t i = 0; i < count; ++i) {
      inputs.data<float>()[i] = static_cast<float>(indices[static_cast<std::size_t>(i)]);
      targets.data<std::int32_t>()[i] = 0;
    }
  }

 private:
  std::int64_t n_;
};

}  // namespace

TEST_CASE("eval shards: equal batch counts, sizes within one, every sample once") {
  for (std::int64_t n : {1000, 1001, 1023, 10000}) {
    for (std::int64_t ranks : {2, 3, 4}) {
      for (std::int64_t batch : {7, 256}) {
        INFO(n << " samples, " << ranks << " ranks, batch " << batch);
        auto data = std::make_shared<IndexDataset>(n);
        std::vector<int> seen(static_cast<std::size_t>(n), 0);
        std::size_t count = 0;
        for (std::int64_t r = 0; r < ranks; ++r) {
          EvalShard shard(data, batch, r, ranks);
          REQUIRE(shard.sharded());
          if (r == 0) count = shard.batches().size();
          CHECK(shard.batches().size() == count);
          std::int64_t smallest = batch, largest = 0;
          while (!shard.finished()) {
            Tensor inputs, targets;
            shard.next(inputs, targets);
            smallest = std::min(smallest, inputs.size(0));
            largest = std::max(largest, inputs.size(0));
            for (std::int64_t i = 0; i < inputs.size(0); ++i)
              ++seen[static_cast<std::size_t>(inputs.data<float>()[i])];
          }
          CHECK(smallest >= 1);
          CHECK(largest <= batch);
          CHECK(largest - smallest <= 1);
        }
        CHECK(std::count(seen.begin(), seen.end(), 1) == n);
      }
    }
  }
}

TEST_CASE("one rank, or a split too small to shard, keeps plain batches of the whole split") {
  auto data = std::make_shared<IndexDataset>(10);
  EvalShard one(data, 4, 0, 1);
  CHECK_FALSE(one.sharded());
  CHECK(one.batches() ==
        std::vector<std::pair<std::int64_t, std::int64_t>>{{0, 4}, {4, 8}, {8, 10}});
  // 10 samples over 4 ranks at batch 2: shards of 2 or 3 samples, ⌈3 / 2⌉ = 2 batches each, and
  // every shard has at least 2 samples: sharded.
  CHECK(EvalShard(data, 2, 3, 4).sharded());
  // 10 samples over 4 ranks at batch 1: 3 batches each, but a rank holds only 2 samples.
  EvalShard small(data, 1, 1, 4);
  CHECK_FALSE(small.sharded());
  CHECK(small.batches().size() == 10);
  // A pass ends, then rewinds.
  Tensor inputs, targets;
  while (!one.finished()) one.next(inputs, targets);
  CHECK_THROWS_AS(one.next(inputs, targets), std::out_of_range);
  one.rewind();
  one.next(inputs, targets);
  CHECK(inputs.size(0) == 4);
  CHECK_THROWS_AS(EvalShard(data, 0, 0, 1), std::invalid_argument);
  CHECK_THROWS_AS(EvalShard(data, 4, 2, 2), std::invalid_argument);
}
