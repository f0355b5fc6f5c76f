// Flat parameter groups and ZeRO-1 partitions: every Parameter views its group's flat buffers, a
// partition is one contiguous range of them, and the clipping norm and the Adam update come out
// bit-identical whatever the number of partitions (the chunk sums are added in chunk order).
#include <catch2/catch.hpp>

#include <cmath>
#include <cstring>
#include <random>

#include "models/optimizer_partition.hpp"

using namespace troupe;

namespace {

// Three non-expert and two expert parameters, sized so groups span several norm chunks.
struct Params {
  std::vector<Parameter> storage;
  std::vector<Parameter*> pointers;
  explicit Params(std::uint64_t seed) {
    std::mt19937_64 rng(seed);
    std::normal_distribution<float> n(0.0f, 1.0f);
    const std::vector<std::pair<Shape, bool>> shapes{
        {{7, 1001}, false}, {{3}, false}, {{4, 2500}, true}, {{2999}, false}, {{5, 1300}, true}};
    for (std::size_t i = 0; i < shapes.size(); ++i) {
      storage.push_back(make_parameter("p" + std::to_string(i), shapes[i].first, shapes[i].second));
      for (std::int64_t j = 0; j < storage.back().value.numel(); ++j) {
        storage.back().value.data<float>()[j] = n(rng);
        storage.back().grad.data<float>()[j] = n(rng);
      }
    }
    for (auto& p : storage) pointers.push_back(&p);
  }
};

bool same_bits(const Tensor& a, const Tensor& b) {
  return a.shape() == b.shape() && std::memcmp(a.raw_data(), b.raw_data(), a.nbytes()) == 0;
}

}  // namespace

TEST_CASE("flattening puts each group in one buffer that the parameters view, values kept") {
  Params ps(1);
  std::vector<Tensor> before;
  for (auto* p : ps.pointers) before.push_back(p->value.clone());
  const FlatParameterGroups flat = flatten_parameter_groups(ps.pointers);
  CHECK(flat.non_expert.numel() == 7 * 1001 + 3 + 2999);
  CHECK(flat.expert.numel() == 4 * 2500 + 5 * 1300);
  for (std::size_t i = 0; i < ps.pointers.size(); ++i) {
    CHECK(same_bits(ps.pointers[i]->value, before[i]));
    const auto& group = ps.pointers[i]->is_expert ? flat.expert : flat.non_expert;
    CHECK(ps.pointers[i]->value.storage() == group.values.storage());
    CHECK(ps.pointers[i]->grad.storage() == group.grads.storage());
  }
  // Writing through the flat buffer is writing the parameter.
  Tensor values = flat.non_expert.values;
  values.data<float>()[7 * 1001] = 42.0f;
  CHECK(ps.pointers[1]->value.data<float>()[0] == 42.0f);
  // A second flattening reuses the buffers.
  const FlatParameterGroups again = flatten_parameter_groups(ps.pointers);
  CHECK(again.expert.values.storage() == flat.expert.values.storage());
}

TEST_CASE("the clipping norm and the Adam step do not depend on the partition count") {
  std::vector<std::vector<Tensor>> results;
  std::vector<double> norms;
  for (std::int64_t partitions : {1, 2, 3, 7}) {
    INFO(partitions << " partitions");
    Params ps(2);
    auto parts = partition_parameters(ps.pointers, partitions);
    std::vector<std::vector<double>> chunks;
    for (const auto& p : parts) {
      CHECK(p.group_begin() % kGradNormChunk == 0);
      chunks.push_back(p.chunk_squared_norms(p.grads()));
    }
    const double norm = std::sqrt(sum_in_order(chunks));
    norms.push_back(norm);
    AdamParams hp;
    for (auto& p : parts) p.apply(hp, 1, clip_coefficient(norm, 1.0f), p.grads());
    std::vector<Tensor> values;
    std::int64_t uncleared = 0;
    for (auto* p : ps.pointers) {
      values.push_back(p->value.clone());
      for (std::int64_t j = 0; j < p->grad.numel(); ++j) uncleared += p->grad.data<float>()[j] != 0;
    }
    CHECK(uncleared == 0);  // the step clears the gradients it used
    results.push_back(values);
  }
  for (std::size_t r = 1; r < results.size(); ++r) {
    CHECK(norms[r] == norms[0]);  // bit for bit
    for (std::size_t i = 0; i < results[r].size(); ++i)
      CHECK(same_bits(results[r][i], results[0][i]));
  }
  CHECK(norms[0] > 1.0);  // the clip actually scaled the update
}

TEST_CASE("a partition refuses gradients that are not its range") {
  Params ps(3);
  auto parts = partition_parameters(ps.pointers, 2);
  REQUIRE(parts.size() >= 2);
  CHECK_THROWS_WITH(parts[0].apply(AdamParams{}, 1, 1.0f, parts[1].grads()),
                    Catch::Contains("was handed gradients"));
}

TEST_CASE(
    "rank ranges cut a group into equal whole chunks per rank, the last ones short or empty") {
  // 4 chunks (the last one 5 elements) over 3 ranks: 2 chunks each, so rank 2 holds nothing.
  const std::int64_t numel = 3 * kGradNormChunk + 5;
  CHECK(chunks_per_rank(numel, 3) == 2);
  CHECK(rank_range(numel, {0, 3}) == std::pair<std::int64_t, std::int64_t>{0, 2 * kGradNormChunk});
  CHECK(rank_range(numel, {1, 3}) ==
        std::pair<std::int64_t, std::int64_t>{2 * kGradNormChunk, numel});
  CHECK(rank_range(numel, {2, 3}) == std::pair<std::int64_t, std::int64_t>{numel, numel});
  CHECK(rank_range(numel, {0, 1}) == std::pair<std::int64_t, std::int64_t>{0, numel});
  CHECK_THROWS_WITH(rank_range(numel, {3, 3}), Catch::Contains("rank 3 of a group of 3"));
}

TEST_CASE("partitions over ranks tile each group, every rank splitting only its own range") {
  for (std::int64_t ranks : {2, 3}) {
    for (std::int64_t partitions : {1, 2}) {
      INFO(ranks << " ranks, " << partitions << " partitions per rank");
      std::vector<std::pair<std::int64_t, std::int64_t>> dense, expert;
      std::int64_t dense_numel = 0, expert_numel = 0;
      for (std::int64_t r = 0; r < ranks; ++r) {
        Params ps(3);
        const FlatParameterGroups flat = flatten_parameter_groups(ps.pointers);
        dense_numel = flat.non_expert.numel();
        expert_numel = flat.expert.numel();
        // The expert group is partitioned over a group of one here (its own ranks elsewhere).
        const auto parts = partition_parameters(ps.pointers, partitions, {r, ranks}, {0, 1});
        for (const auto& p : parts) {
          CHECK(p.group_begin() % kGradNormChunk == 0);
          (p.expert_group() ? expert : dense)
              .emplace_back(p.group_begin(), p.group_begin() + p.numel());
          const auto [first, last] =
              rank_range(p.expert_group() ? expert_numel : dense_numel,
                         p.expert_group() ? RankShard{} : RankShard{r, ranks});
          CHECK(p.group_begin() >= first);
          CHECK(p.group_begin() + p.numel() <= last);
        }
      }
      // Over all ranks the dense ranges tile the group in order; the experts are whole on each.
      std::int64_t covered = 0;
      for (const auto& [b, e] : dense) {
        CHECK(b == covered);
        covered = e;
      }
      CHECK(covered == dense_numel);
      std::int64_t expert_total = 0;
      for (const auto& [b, e] : expert) expert_total += e - b;
      CHECK(expert_total == ranks * expert_numel);
    }
  }
}
