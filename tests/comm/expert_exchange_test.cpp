// The token exchange's row layout: counts per peer, local expert offsets, and the block
// permutations between the peer-major order rows arrive in and the experts' expert-major order.
#include <catch2/catch.hpp>

#include "comm/expert_exchange.hpp"

using namespace troupe;

namespace {

// Rows of width 2 whose values name (peer, local expert, index within the block).
Tensor peer_major_rows(const ExpertExchange& x) {
  std::vector<float> values;
  for (int p = 0; p < x.peers; ++p)
    for (std::int64_t e = 0; e < x.local_experts; ++e)
      for (std::int64_t i = 0; i < x.recv_counts[static_cast<std::size_t>(p * x.local_experts + e)];
           ++i) {
        values.push_back(static_cast<float>(100 * p + 10 * e + i));
        values.push_back(-1.0f);
      }
  return Tensor::from_vector(values, {static_cast<std::int64_t>(values.size() / 2), 2});
}

}  // namespace

TEST_CASE("rows per peer are the runs of the gate's expert-major offsets") {
  // 4 experts over 2 ranks: experts 0-1 on peer 0, 2-3 on peer 1.
  const std::vector<std::int64_t> offsets{0, 3, 3, 7, 8};
  CHECK(rows_per_peer(offsets, 2) == std::vector<std::int64_t>{3, 5});
  CHECK(rows_per_peer(offsets, 4) == std::vector<std::int64_t>{3, 0, 4, 1});
  CHECK(rows_per_peer(offsets, 1) == std::vector<std::int64_t>{8});
  CHECK_THROWS_WITH(rows_per_peer(offsets, 3),
                    Catch::Contains("4 experts cannot be split over 3 expert-parallel ranks"));
  const Tensor counts = counts_tensor(offsets);
  REQUIRE(counts.shape() == Shape{4, 1});
  const auto* n = counts.data<std::int64_t>();
  CHECK(std::vector<std::int64_t>(n, n + 4) == std::vector<std::int64_t>{3, 0, 4, 1});
}

TEST_CASE("peer-major rows become expert-major and return to their slots") {
  ExpertExchange x;
  x.peers = 3;
  x.local_experts = 2;
  // From peer p for local expert e; zeros included (an expert nobody routes to, an empty peer).
  x.recv_counts = {2, 1, 0, 0, 1, 3};
  CHECK(x.recv_rows() == std::vector<std::int64_t>{3, 0, 4});
  CHECK(x.expert_offsets() == std::vector<std::int64_t>{0, 3, 7});

  const Tensor arrived = peer_major_rows(x);
  const Tensor experts = peer_major_to_expert_major(arrived, x);
  const auto v = experts.to_vector();
  // Expert 0: peer 0's two rows, then peer 2's one; expert 1: peer 0's one, then peer 2's three.
  const std::vector<float> first_column{0, 1, 200, 10, 210, 211, 212};
  for (std::size_t r = 0; r < first_column.size(); ++r) {
    CHECK(v[2 * r] == first_column[r]);
    CHECK(v[2 * r + 1] == -1.0f);
  }
  const Tensor back = expert_major_to_peer_major(experts, x);
  CHECK(back.to_vector() == arrived.to_vector());
}

TEST_CASE("an exchange with no rows at all, and counts that do not match the rows") {
  ExpertExchange x;
  x.peers = 2;
  x.local_experts = 1;
  x.recv_counts = {0, 0};
  const Tensor none = Tensor::empty({0, 4});
  CHECK(peer_major_to_expert_major(none, x).size(0) == 0);
  x.recv_counts = {1, 1};
  CHECK_THROWS_WITH(peer_major_to_expert_major(Tensor::zeros({3, 4}), x),
                    Catch::Contains("3 rows, but the counts add up to 2"));
}
