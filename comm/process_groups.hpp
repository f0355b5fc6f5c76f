// Process groups: which world ranks talk to each other for each kind of traffic, as pure functions
// of the world size W, the expert-parallel size P, the tensor-parallel size T and DeepSpeed's
// `use_data_before_expert_parallel` layout flag (../shared/MOE-SPEC.md "Process groups").
//
// Tensor parallelism is the fastest-varying dimension (Megatron's order): tensor-parallel groups
// are contiguous blocks of T ranks, and the data-parallel group of tensor-parallel lane j is {j,
// j+T, j+2T, …}. Each data-parallel group (D = W/T ranks, d_0 < d_1 < …) is split P-ways:
//   - default (E + D): expert-parallel groups are contiguous runs of the data-parallel group,
//     {d_{gP}, …, d_{gP+P-1}}, and expert-data-parallel groups are strided, {d_e, d_{e+P}, …};
//   - use_data_before_expert_parallel (D + E): the roles swap, with S = D/P: expert-parallel
//     groups are strided {d_s, d_{s+S}, …} and expert-data-parallel groups contiguous
//     {d_{eS}, …, d_{eS+S-1}}.
// With T = 1 these are DeepSpeed's `_create_expert_and_data_parallel` groups; with T > 1 its
// `_get_expert_parallel_ranks` ones. Every group lists its ranks in ascending order, and a rank's
// position in the list is its rank within the group.
//
// Every process must derive the same groups, so these functions depend on nothing but their
// arguments.
#pragma once

#include <vector>

namespace troupe {

struct ParallelDims {
  int world_size = 1;
  int ep_size = 1;  // expert-parallel size P: must divide the data-parallel size W/T
  int tp_size = 1;  // tensor-parallel size T: must divide W
  bool use_data_before_expert_parallel = false;
};

enum class GroupKind {
  world,
  data_parallel,
  expert_parallel,
  expert_data_parallel,
  tensor_parallel
};

// "world", "data_parallel", ... (for logs and error messages).
const char* group_kind_name(GroupKind kind);

using RankList = std::vector<int>;

// Throws std::invalid_argument naming the value and what is allowed when a size is not positive,
// T does not divide W, or P does not divide W/T.
void validate_parallel_dims(const ParallelDims& dims);

// The data-parallel size W/T (after validation).
int data_parallel_size(const ParallelDims& dims);

// Every group of one kind, ordered by their smallest rank; together they partition the world.
std::vector<RankList> all_groups(const ParallelDims& dims, GroupKind kind);

// The group of `kind` that holds `rank`; throws std::invalid_argument when rank is outside
// [0, world_size).
RankList group_of(const ParallelDims& dims, GroupKind kind, int rank);

// A rank's group of every kind at once.
struct RankGroups {
  RankList world;
  RankList data_parallel;
  RankList expert_parallel;
  RankList expert_data_parallel;
  RankList tensor_parallel;
};
RankGroups groups_of(const ParallelDims& dims, int rank);

}  // namespace troupe
