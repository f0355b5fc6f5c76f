// The local experts of an MoE layer: E_local copies of the expert MLP
// Linear(d, f) → activation → Linear(f, d), with parameters stacked along a leading expert axis so
// that any range of experts (a shard) is a contiguous slice of each parameter. A range runs as a
// grouped GEMM over the expert-major rows the dispatcher produced (Megatron's GroupedMLP).
//
// forward() is const and keeps no per-call state: activations go to the caller's
// ExpertActivations. backward() touches only the gradient slices of its range, so shards with
// disjoint ranges may run concurrently on different threads. Each expert is its own GEMM, so
// running [0, E) in one call and [0, a), [a, E) separately gives bit-identical results.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "kernels/exec_context.hpp"
#include "memory/tensor.hpp"
#include "models/moe/moe_config.hpp"
#include "models/moe/moe_init.hpp"
#include "models/parameter.hpp"

namespace troupe {

// What Experts::backward needs from one forward call.
struct ExpertActivations {
  std::int64_t first = 0, last = 0;   // the expert range that ran
  std::vector<std::int64_t> offsets;  // (last − first + 1) row offsets, relative
  Tensor rows;                        // (n, d) input rows (shared, not copied)
  Tensor hidden_pre;                  // (n, f) first linear layer's output
  Tensor hidden;                      // (n, f) activation's output
};

class Experts {
 public:
  // The local experts of rank ep_rank in its expert-parallel group: global expert ids
  // [ep_rank · E_local, (ep_rank + 1) · E_local). Parameters "<prefix>.experts.{w1,b1,w2,b2}",
  // is_expert = true, initialised U(±1/√fan_in) keyed by (init_seed, global expert id).
  Experts(const MoEConfig& config, std::uint64_t init_seed, const std::string& prefix = "moe",
          std::int64_t ep_rank = 0);

  // One more copy of the expert MLP used as a plain dense module (Residual MoE's mlp):
  // "<prefix>.residual_mlp.{w1,b1,w2,b2}", is_expert = false, its own initial values.
  static Experts residual_mlp(const MoEConfig& config, std::uint64_t init_seed,
                              const std::string& prefix = "moe");

  std::int64_t count() const { return count_; }
  Parameter& w1() { return w1_; }  // (E_local, f, d)
  Parameter& b1() { return b1_; }  // (E_local, f)
  Parameter& w2() { return w2_; }  // (E_local, d, f)
  Parameter& b2() { return b2_; }  // (E_local, d)
  std::vector<Parameter*> parameters() { return {&w1_, &b1_, &w2_, &b2_}; }

  // Runs local experts [first, last) on `rows` ((n, d)): expert first + g takes rows
  // [offsets[g], offsets[g + 1]); offsets has last − first + 1 entries, from 0 to n. Returns (n,
  // d).
  Tensor forward(std::int64_t first, std::int64_t last, const Tensor& rows,
                 const std::vector<std::int64_t>& offsets, ExpertActivations& saved) const;

  // Returns the gradient of `rows` ((n, d), fresh) and accumulates (+=) the gradients of experts
  // [first, last) only; `saved` must come from forward() on the same range.
  Tensor backward(std::int64_t first, std::int64_t last, const Tensor& grad_out_rows,
                  const ExpertActivations& saved);

 private:
  ExecContext ctx_ = cpu_context();
  Experts(const MoEConfig& config, const std::string& names, std::int64_t count,
          std::int64_t first_id, bool is_expert, std::uint64_t init_seed, InitFamily family);

  void check_range(const char* function, std::int64_t first, std::int64_t last) const;

  std::int64_t count_, hidden_, ffn_;
  Activation activation_;
  Parameter w1_, b1_, w2_, b2_;
};

}  // namespace troupe
