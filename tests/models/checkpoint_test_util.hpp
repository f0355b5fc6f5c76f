// Checkpoint tests' fixtures: a tiny model of two parameter groups, its optimizer state cut into
// partitions, and ways to damage a file.
#pragma once

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>
#include <vector>

#include "models/checkpoint.hpp"

namespace troupe::test {

// Two non-expert parameters (5010 elements: two norm chunks) and one expert one (9000: three).
struct TinyModel {
  Parameter w = make_parameter("w", {5000}, false);
  Parameter b = make_parameter("b", {10}, false);
  Parameter e = make_parameter("e", {9000}, true);
  std::vector<Parameter*> all() { return {&w, &b, &e}; }
  void fill(float base) {
    for (auto* p : all())
      for (std::int64_t i = 0; i < p->value.numel(); ++i)
        p->value.data<float>()[i] = base + 0.001f * static_cast<float>(i);
  }
};

inline Tensor ramp(std::int64_t n, float base) {
  Tensor t = Tensor::empty({n});
  for (std::int64_t i = 0; i < n; ++i) t.data<float>()[i] = base + static_cast<float>(i);
  return t;
}

// A group's Adam state split at `cuts` (element offsets), as partitions would hold it.
inline void add_partitions(std::vector<PartitionState>& out, bool expert, std::int64_t size,
                           const std::vector<std::int64_t>& cuts, float base) {
  const Tensor avg = ramp(size, base);
  const Tensor sq = ramp(size, base + 0.5f);
  std::vector<std::int64_t> bounds = cuts;
  bounds.insert(bounds.begin(), 0);
  bounds.push_back(size);
  for (std::size_t i = 0; i + 1 < bounds.size(); ++i)
    out.push_back({expert,
                   bounds[i],
                   {"exp_avg", "exp_avg_sq"},
                   {avg.slice_rows(bounds[i], bounds[i + 1]).clone(),
                    sq.slice_rows(bounds[i], bounds[i + 1]).clone()}});
}

inline std::vector<PartitionState> optimizer_state(float base, std::int64_t expert_pieces) {
  std::vector<PartitionState> out;
  add_partitions(out, false, 5010, {4096}, base);
  add_partitions(
      out, true, 9000,
      expert_pieces == 3 ? std::vector<std::int64_t>{4096, 8192} : std::vector<std::int64_t>{},
      base + 100.0f);
  return out;
}

inline CheckpointMeta meta_for(const std::string& run_id, std::int64_t step) {
  return CheckpointMeta{run_id, step, 1, 7 * step, 42, "tiny"};
}

inline bool same_bits(const Tensor& a, const Tensor& b) {
  return a.shape() == b.shape() && std::equal(static_cast<const char*>(a.raw_data()),
                                              static_cast<const char*>(a.raw_data()) + a.nbytes(),
                                              static_cast<const char*>(b.raw_data()));
}

inline std::string read_text(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

inline void flip_middle_16(const std::filesystem::path& path) {
  std::string bytes = read_text(path);
  const std::size_t middle = bytes.size() - (5010 + 9000) * 4;  // inside the tensor data
  for (std::size_t i = middle; i < middle + 16; ++i) bytes[i] = static_cast<char>(~bytes[i]);
  std::ofstream(path, std::ios::binary | std::ios::trunc) << bytes;
}

inline void truncate(const std::filesystem::path& path) {
  std::filesystem::resize_file(path, std::filesystem::file_size(path) - 100);
}

// Saves steps `from`..`to` of run `run_id` with parameters filled from the step number.
inline void save_steps(const std::filesystem::path& dir, TinyModel& model,
                       const std::string& run_id, std::int64_t from, std::int64_t to,
                       std::int64_t keep = 0) {
  for (std::int64_t step = from; step <= to; ++step) {
    model.fill(static_cast<float>(step));
    save_checkpoint(dir.string(), meta_for(run_id, step), model.all(),
                    optimizer_state(static_cast<float>(step), 3), keep);
  }
}
}  // namespace troupe::test
