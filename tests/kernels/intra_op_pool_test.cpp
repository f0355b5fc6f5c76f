// The intra-op pool and the kernels split over it: parallel_for visits every index once, and the
// parallelised permute, combine and activation kernels give bit-identical results for 1, 2 and 3
// threads (the runtime picks the count, so results must not depend on it).
#include <catch2/catch.hpp>

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <cstring>
#include <functional>
#include <random>
#include <stdexcept>
#include <vector>

#include "kernels/cpu/activation.hpp"
#include "kernels/cpu/intra_op_pool.hpp"
#include "kernels/cpu/permute.hpp"

using namespace troupe;

namespace {

std::vector<float> random_floats(std::size_t n, std::uint32_t seed, float scale) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> normal(0.0f, scale);
  std::vector<float> v(n);
  for (float& x : v) x = normal(rng);
  return v;
}

bool bit_identical(const std::vector<float>& a, const std::vector<float>& b) {
  return a.size() == b.size() && std::memcmp(a.data(), b.data(), a.size() * sizeof(float)) == 0;
}

// Runs `kernel(threads)` for 1, 2 and 3 threads on fresh copies of `init` and checks that every
// output is bit-identical to the single-threaded one.
void check_thread_independent(
    const char* name, const std::vector<std::vector<float>>& init,
    const std::function<void(std::vector<std::vector<float>>&, int)>& kernel) {
  std::vector<std::vector<float>> one = init;
  kernel(one, 1);
  for (int threads : {2, 3}) {
    std::vector<std::vector<float>> many = init;
    kernel(many, threads);
    for (std::size_t i = 0; i < one.size(); ++i) {
      INFO(name << " output " << i << " with " << threads << " threads");
      CHECK(bit_identical(one[i], many[i]));
    }
  }
}

}  // namespace

TEST_CASE("parallel_for visits every index exactly once, whatever the thread count") {
  for (int threads : {1, 2, 3, 8}) {
    for (std::int64_t n : {0, 1, 7, 1000, 100003}) {
      std::vector<std::atomic<int>> visits(static_cast<std::size_t>(n));
      cpu::parallel_for(n, 16, threads, [&](std::int64_t begin, std::int64_t end) {
        for (std::int64_t i = begin; i < end; ++i) ++visits[static_cast<std::size_t>(i)];
      });
      for (std::int64_t i = 0; i < n; ++i) REQUIRE(visits[static_cast<std::size_t>(i)] == 1);
    }
  }
}

TEST_CASE("parallel_for rethrows a chunk's exception and runs nested calls inline") {
  CHECK_THROWS_AS(cpu::parallel_for(1000, 1, 2,
                                    [](std::int64_t begin, std::int64_t) {
                                      if (begin > 0) throw std::runtime_error("chunk");
                                    }),
                  std::runtime_error);
  std::atomic<std::int64_t> total{0};
  cpu::parallel_for(4, 1, 2, [&](std::int64_t begin, std::int64_t end) {
    for (std::int64_t i = begin; i < end; ++i)
      cpu::parallel_for(100, 1, 2, [&](std::int64_t b, std::int64_t e) { total += e - b; });
  });
  CHECK(total == 400);
}

TEST_CASE("permute and combine kernels are bit-identical for 1, 2 and 3 threads") {
  // 300 tokens, k = 2, 5 experts, some choices dropped: a routing as the gate would make one.
  const std::int64_t tokens = 300, k = 2, width = 67;
  std::vector<std::int64_t> choice_row(static_cast<std::size_t>(tokens * k), -1);
  std::vector<std::int64_t> row_token;
  std::mt19937 rng(5);
  for (std::int64_t c = 0; c < tokens * k; ++c) {
    if (rng() % 7 == 0) continue;
    choice_row[c] = static_cast<std::int64_t>(row_token.size());
    row_token.push_back(c / k);
  }
  // Rows in a shuffled order, as expert-major rows are; then choice_row points back at them.
  std::shuffle(row_token.begin(), row_token.end(), rng);
  std::fill(choice_row.begin(), choice_row.end(), -1);
  for (std::size_t r = 0; r < row_token.size(); ++r) {
    std::int64_t c = row_token[r] * k;
    while (choice_row[c] >= 0) ++c;
    choice_row[c] = static_cast<std::int64_t>(r);
  }
  const auto rows = static_cast<std::int64_t>(row_token.size());
  const std::vector<float> x = random_floats(tokens * width, 1, 1.0f),
                           expert_rows = random_floats(rows * width, 2, 1.0f),
                           grad_out = random_floats(tokens * width, 3, 1.0f),
                           weight = random_floats(tokens * k, 4, 0.5f);

  check_thread_independent("permute_rows", {std::vector<float>(rows * width)}, [&](auto& o, int t) {
    cpu::permute_rows(x.data(), row_token.data(), rows, width, o[0].data(), t);
  });
  check_thread_independent("permute_rows_backward", {x}, [&](auto& o, int t) {
    cpu::permute_rows_backward(expert_rows.data(), choice_row.data(), tokens, k, width, o[0].data(),
                               t);
  });
  check_thread_independent(
      "unpermute_combine", {std::vector<float>(tokens * width)}, [&](auto& o, int t) {
        cpu::unpermute_combine(expert_rows.data(), choice_row.data(), weight.data(), tokens, k,
                               width, o[0].data(), t);
      });
  check_thread_independent("unpermute_combine_backward",
                           {std::vector<float>(rows * width), std::vector<float>(tokens * k)},
                           [&](auto& o, int t) {
                             cpu::unpermute_combine_backward(
                                 grad_out.data(), expert_rows.data(), choice_row.data(),
                                 weight.data(), tokens, k, width, o[0].data(), o[1].data(), t);
                           });
}

TEST_CASE("activation kernels are bit-identical for 1, 2 and 3 threads") {
  // Enough elements for several chunks of the pool's grain, with tails past every clamp.
  std::vector<float> x = random_floats(100003, 6, 4.0f);
  x.insert(x.end(), {0.0f, -0.0f, 30.0f, -30.0f, 88.0f, -88.0f});
  const std::vector<float> dy = random_floats(x.size(), 7, 1.0f),
                           up = random_floats(x.size(), 8, 1.0f);
  const auto n = static_cast<std::int64_t>(x.size());
  const std::vector<float> out(x.size());
  using Forward = void (*)(const float*, float*, std::int64_t, int);
  using Backward = void (*)(const float*, const float*, float*, std::int64_t, int);
  for (Forward f :
       {cpu::relu_forward, cpu::gelu_tanh_forward, cpu::gelu_erf_forward, cpu::silu_forward})
    check_thread_independent("activation forward", {out},
                             [&](auto& o, int t) { f(x.data(), o[0].data(), n, t); });
  for (Backward b :
       {cpu::relu_backward, cpu::gelu_tanh_backward, cpu::gelu_erf_backward, cpu::silu_backward})
    check_thread_independent("activation backward", {out},
                             [&](auto& o, int t) { b(x.data(), dy.data(), o[0].data(), n, t); });
  check_thread_independent("swiglu_forward", {out}, [&](auto& o, int t) {
    cpu::swiglu_forward(x.data(), up.data(), o[0].data(), n, t);
  });
  check_thread_independent("swiglu_backward", {out, out}, [&](auto& o, int t) {
    cpu::swiglu_backward(x.data(), up.data(), dy.data(), o[0].data(), o[1].data(), n, t);
  });
}
