// Process group layouts (comm/process_groups.hpp) against the examples in MOE-SPEC.md and in
// DeepSpeed's deepspeed/utils/groups.py docstrings.
#include <catch2/catch.hpp>

#include <set>
#include <stdexcept>

#include "comm/process_groups.hpp"

using namespace troupe;

namespace {

// Every rank appears in exactly one group of the kind.
void check_partition(const ParallelDims& dims, GroupKind kind) {
  std::multiset<int> seen;
  for (const auto& group : all_groups(dims, kind)) seen.insert(group.begin(), group.end());
  REQUIRE(static_cast<int>(seen.size()) == dims.world_size);
  for (int r = 0; r < dims.world_size; ++r) CHECK(seen.count(r) == 1);
}

}  // namespace

TEST_CASE("world 16 with ep 2: contiguous expert-parallel, strided expert-data-parallel") {
  const ParallelDims dims{16, 2};
  CHECK(
      all_groups(dims, GroupKind::expert_parallel) ==
      std::vector<RankList>{{0, 1}, {2, 3}, {4, 5}, {6, 7}, {8, 9}, {10, 11}, {12, 13}, {14, 15}});
  CHECK(all_groups(dims, GroupKind::expert_data_parallel) ==
        std::vector<RankList>{{0, 2, 4, 6, 8, 10, 12, 14}, {1, 3, 5, 7, 9, 11, 13, 15}});
  CHECK(all_groups(dims, GroupKind::data_parallel) ==
        std::vector<RankList>{{0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15}});
  CHECK(all_groups(dims, GroupKind::world) == all_groups(dims, GroupKind::data_parallel));
  CHECK(all_groups(dims, GroupKind::tensor_parallel).size() == 16);  // singletons

  const auto groups = groups_of(dims, 5);
  CHECK(groups.expert_parallel == RankList{4, 5});
  CHECK(groups.expert_data_parallel == RankList{1, 3, 5, 7, 9, 11, 13, 15});
  CHECK(groups.tensor_parallel == RankList{5});
  CHECK(groups.world.size() == 16);
}

TEST_CASE("world 16 with tp 2 and ep 4: groups split within each tensor-parallel lane") {
  const ParallelDims dims{16, 4, 2};
  CHECK(data_parallel_size(dims) == 8);
  CHECK(
      all_groups(dims, GroupKind::tensor_parallel) ==
      std::vector<RankList>{{0, 1}, {2, 3}, {4, 5}, {6, 7}, {8, 9}, {10, 11}, {12, 13}, {14, 15}});
  CHECK(all_groups(dims, GroupKind::data_parallel) ==
        std::vector<RankList>{{0, 2, 4, 6, 8, 10, 12, 14}, {1, 3, 5, 7, 9, 11, 13, 15}});
  CHECK(all_groups(dims, GroupKind::expert_parallel) ==
        std::vector<RankList>{{0, 2, 4, 6}, {1, 3, 5, 7}, {8, 10, 12, 14}, {9, 11, 13, 15}});
  CHECK(
      all_groups(dims, GroupKind::expert_data_parallel) ==
      std::vector<RankList>{{0, 8}, {1, 9}, {2, 10}, {3, 11}, {4, 12}, {5, 13}, {6, 14}, {7, 15}});

  const auto groups = groups_of(dims, 11);
  CHECK(groups.tensor_parallel == RankList{10, 11});
  CHECK(groups.data_parallel == RankList{1, 3, 5, 7, 9, 11, 13, 15});
  CHECK(groups.expert_parallel == RankList{9, 11, 13, 15});
  CHECK(groups.expert_data_parallel == RankList{3, 11});
}

TEST_CASE("use_data_before_expert_parallel swaps the roles: strided experts, contiguous data") {
  const ParallelDims dims{16, 2, 1, true};
  CHECK(
      all_groups(dims, GroupKind::expert_parallel) ==
      std::vector<RankList>{{0, 8}, {1, 9}, {2, 10}, {3, 11}, {4, 12}, {5, 13}, {6, 14}, {7, 15}});
  CHECK(all_groups(dims, GroupKind::expert_data_parallel) ==
        std::vector<RankList>{{0, 1, 2, 3, 4, 5, 6, 7}, {8, 9, 10, 11, 12, 13, 14, 15}});
  CHECK(group_of(dims, GroupKind::expert_parallel, 9) == RankList{1, 9});

  // With tensor parallelism too (world 16, tp 2, ep 4: each lane's 8 ranks, S = 2).
  const ParallelDims tp{16, 4, 2, true};
  CHECK(all_groups(tp, GroupKind::expert_parallel) ==
        std::vector<RankList>{{0, 4, 8, 12}, {1, 5, 9, 13}, {2, 6, 10, 14}, {3, 7, 11, 15}});
  CHECK(
      all_groups(tp, GroupKind::expert_data_parallel) ==
      std::vector<RankList>{{0, 2}, {1, 3}, {4, 6}, {5, 7}, {8, 10}, {9, 11}, {12, 14}, {13, 15}});
}

TEST_CASE("every kind partitions the world for assorted layouts") {
  for (const ParallelDims& dims :
       {ParallelDims{1, 1}, ParallelDims{4, 4}, ParallelDims{6, 3}, ParallelDims{12, 2, 3},
        ParallelDims{12, 3, 2, true}, ParallelDims{8, 1, 8}}) {
    for (GroupKind kind : {GroupKind::world, GroupKind::data_parallel, GroupKind::expert_parallel,
                           GroupKind::expert_data_parallel, GroupKind::tensor_parallel}) {
      INFO(group_kind_name(kind) << " W=" << dims.world_size << " P=" << dims.ep_size
                                 << " T=" << dims.tp_size);
      check_partition(dims, kind);
    }
    // An expert-parallel group and an expert-data-parallel group meet in exactly one rank.
    for (int r = 0; r < dims.world_size; ++r) {
      const auto g = groups_of(dims, r);
      CHECK(static_cast<int>(g.expert_parallel.size()) == dims.ep_size);
      CHECK(static_cast<int>(g.expert_parallel.size() * g.expert_data_parallel.size()) ==
            data_parallel_size(dims));
    }
  }
}

TEST_CASE("sizes that do not divide are refused with the value and what is allowed") {
  CHECK_THROWS_WITH(
      validate_parallel_dims({16, 3}),
      Catch::Contains("ep_size 3") && Catch::Contains("divide the data-parallel size 16"));
  CHECK_THROWS_WITH(validate_parallel_dims({16, 4, 3}),
                    Catch::Contains("tensor-parallel size 3") && Catch::Contains("world size 16"));
  CHECK_THROWS_WITH(validate_parallel_dims({16, 16, 2}),
                    Catch::Contains("ep_size 16") && Catch::Contains("data-parallel size 8"));
  CHECK_THROWS_WITH(validate_parallel_dims({0, 1}), Catch::Contains("world size 0"));
  CHECK_THROWS_WITH(validate_parallel_dims({4, 0}), Catch::Contains("ep_size 0"));
  CHECK_THROWS_WITH(group_of({4, 2}, GroupKind::world, 4), Catch::Contains("rank 4"));
  CHECK_THROWS_AS(all_groups({8, 3}, GroupKind::expert_parallel), std::invalid_argument);
}
