// Process group layouts (see process_groups.hpp for the rules and their DeepSpeed counterparts).
#include "comm/process_groups.hpp"

#include <algorithm>
#include <stdexcept>
#include <string>

namespace troupe {

namespace {

[[noreturn]] void bad(const std::string& message) {
  throw std::invalid_argument(message);
}

// The data-parallel group of tensor-parallel lane `lane`: lane, lane+T, lane+2T, ...
RankList data_parallel_ranks(const ParallelDims& dims, int lane) {
  RankList ranks;
  for (int r = lane; r < dims.world_size; r += dims.tp_size) ranks.push_back(r);
  return ranks;
}

// Splits one data-parallel group into its expert-parallel (or expert-data-parallel) groups.
std::vector<RankList> split_data_parallel(const ParallelDims& dims, const RankList& dp,
                                          GroupKind kind) {
  const int p = dims.ep_size;
  const int d = static_cast<int>(dp.size());
  // Contiguous runs of `run` ranks, or strided groups of stride `stride`: which one each kind
  // gets depends on the layout flag.
  const bool contiguous =
      (kind == GroupKind::expert_parallel) != dims.use_data_before_expert_parallel;
  const int group_size = kind == GroupKind::expert_parallel ? p : d / p;
  const int groups = d / group_size;
  std::vector<RankList> out(groups);
  for (int g = 0; g < groups; ++g) {
    for (int i = 0; i < group_size; ++i) {
      out[g].push_back(contiguous ? dp[g * group_size + i] : dp[g + i * groups]);
    }
  }
  return out;
}

}  // namespace

const char* group_kind_name(GroupKind kind) {
  switch (kind) {
    case GroupKind::world:
      return "world";
    case GroupKind::data_parallel:
      return "data_parallel";
    case GroupKind::expert_parallel:
      return "expert_parallel";
    case GroupKind::expert_data_parallel:
      return "expert_data_parallel";
    case GroupKind::tensor_parallel:
      return "tensor_parallel";
  }
  return "unknown";
}

void validate_parallel_dims(const ParallelDims& dims) {
  if (dims.world_size < 1) {
    bad("world size " + std::to_string(dims.world_size) + " is not allowed: it must be >= 1");
  }
  if (dims.tp_size < 1 || dims.world_size % dims.tp_size != 0) {
    bad("tensor-parallel size " + std::to_string(dims.tp_size) +
        " is not allowed: it must be >= 1 and divide the world size " +
        std::to_string(dims.world_size));
  }
  const int dp = dims.world_size / dims.tp_size;
  if (dims.ep_size < 1 || dp % dims.ep_size != 0) {
    bad("ep_size " + std::to_string(dims.ep_size) +
        " is not allowed: it must be >= 1 and divide the data-parallel size " + std::to_string(dp) +
        " (world size " + std::to_string(dims.world_size) + " / tensor-parallel size " +
        std::to_string(dims.tp_size) + ")");
  }
}

int data_parallel_size(const ParallelDims& dims) {
  validate_parallel_dims(dims);
  return dims.world_size / dims.tp_size;
}

std::vector<RankList> all_groups(const ParallelDims& dims, GroupKind kind) {
  validate_parallel_dims(dims);
  const int w = dims.world_size;
  const int t = dims.tp_size;
  std::vector<RankList> out;
  switch (kind) {
    case GroupKind::world: {
      RankList all(w);
      for (int r = 0; r < w; ++r) all[r] = r;
      out.push_back(std::move(all));
      break;
    }
    case GroupKind::tensor_parallel:
      for (int start = 0; start < w; start += t) {
        RankList group;
        for (int r = start; r < start + t; ++r) group.push_back(r);
        out.push_back(std::move(group));
      }
      break;
    case GroupKind::data_parallel:
      for (int lane = 0; lane < t; ++lane) out.push_back(data_parallel_ranks(dims, lane));
      break;
    case GroupKind::expert_parallel:
    case GroupKind::expert_data_parallel:
      for (int lane = 0; lane < t; ++lane) {
        for (auto& group : split_data_parallel(dims, data_parallel_ranks(dims, lane), kind)) {
          out.push_back(std::move(group));
        }
      }
      break;
  }
  std::sort(out.begin(), out.end(),
            [](const RankList& a, const RankList& b) { return a.front() < b.front(); });
  return out;
}

RankList group_of(const ParallelDims& dims, GroupKind kind, int rank) {
  validate_parallel_dims(dims);
  if (rank < 0 || rank >= dims.world_size) {
    bad("rank " + std::to_string(rank) + " is not allowed: it must be in [0, " +
        std::to_string(dims.world_size) + ")");
  }
  for (auto& group : all_groups(dims, kind)) {
    if (std::find(group.begin(), group.end(), rank) != group.end()) return group;
  }
  bad(std::string("rank ") + std::to_string(rank) + " is in no " + group_kind_name(kind) +
      " group");  // unreachable: the groups of a kind partition the world
}

RankGroups groups_of(const ParallelDims& dims, int rank) {
  return {group_of(dims, GroupKind::world, rank), group_of(dims, GroupKind::data_parallel, rank),
          group_of(dims, GroupKind::expert_parallel, rank),
          group_of(dims, GroupKind::expert_data_parallel, rank),
          group_of(dims, GroupKind::tensor_parallel, rank)};
}

}  // namespace troupe
