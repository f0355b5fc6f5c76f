// LeNet with a Mixture-of-Experts layer: DeepSpeed's CIFAR-10 MoE example net, adapted to the
// input size (MNIST 1×28×28 or CIFAR 3×32×32):
//
//   conv 5×5 (C→6) → ReLU → maxpool 2 → conv 5×5 (6→16) → ReLU → maxpool 2 → flatten
//   → fc1 (16·h·w → 120) → ReLU → fc2 (120 → d) → ReLU → fc3: MoE(d) → fc4 (d → classes) → CE
//
// with h·w = 4·4 for 28×28 and 5·5 for 32×32, d = moe.hidden_size (84). DeepSpeed's example uses
// expert = nn.Linear(84, 84); troupe's experts are two-layer MLPs Linear(d, f) → act → Linear(f,
// d), so the default is f = moe.ffn_hidden_size = 84 with ReLU.
//
// Segment 0 runs the batch up to the MoE input [B, d]; segment 1 runs fc4 and the loss. The dense
// twin (use_moe = false) has no MoE layer and one segment: fc3 is the same MLP run on every input.
// Initialisation is PyTorch's default for Linear and Conv2d (U(±1/√fan_in) for weights and biases)
// from std::mt19937_64(init_seed); the MoE layer initialises itself from a seed drawn from that
// generator after the dense layers.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "models/dense_layers.hpp"
#include "models/model.hpp"
#include "models/moe/moe_config.hpp"

namespace troupe {

// DeepSpeed's example fc3 as an MoE: d = f = 84, ReLU experts, one expert, top-1.
MoEConfig lenet_default_moe_config();

struct LeNetMoEConfig {
  std::int64_t channels = 1, height = 28, width = 28, num_classes = 10;
  std::int64_t conv1_padding = 0;  // zero padding of conv1 (2 on 28×28 gives fc1 16·5·5 inputs)
  bool use_moe = true;
  MoEConfig moe = lenet_default_moe_config();  // its hidden/ffn sizes and activation shape fc3
  float aux_loss_coef = 0.01f;
  std::uint64_t init_seed = 0;
  // This process's rank in its expert-parallel group: it holds experts [ep_rank·L, (ep_rank+1)·L)
  // of moe.num_experts, L = num_experts / ep_size. Every other parameter is the same on all ranks.
  std::int64_t ep_rank = 0;

  // Throws std::invalid_argument naming the field: sizes must be ≥ 1, height and width ≥ 16 (so
  // both pools get at least 2×2), num_classes ≥ 2, aux_loss_coef finite and ≥ 0, moe valid.
  void validate() const;
  // Width of the flattened features after the second pool: 16 · h · w.
  std::int64_t flat_features() const;
};

class LeNetMoE final : public Model {
 public:
  explicit LeNetMoE(const LeNetMoEConfig& config);
  ~LeNetMoE() override;
  LeNetMoE(const LeNetMoE&) = delete;  // parameters are handed out by address
  LeNetMoE& operator=(const LeNetMoE&) = delete;

  const LeNetMoEConfig& config() const { return config_; }

  std::string name() const override;
  std::int64_t num_moe_layers() const override { return config_.use_moe ? 1 : 0; }
  MoELayer& moe_layer(std::int64_t index) override;
  float aux_loss_coef() const override { return config_.aux_loss_coef; }
  // conv1, conv2, fc1, fc2, fc3 (the MoE layer's parameters or the dense MLP's), fc4.
  std::vector<Parameter*> parameters() override;
  std::vector<Parameter*> segment_parameters(std::int64_t segment) override;

  std::unique_ptr<SegmentCache> make_cache() const override;
  Tensor forward_segment(std::int64_t segment, const Batch& batch, const Tensor& moe_output,
                         SegmentCache& cache, bool training) override;
  LossResult loss(const SegmentCache& cache) const override;
  std::shared_ptr<Model> make_replica() override;
  Tensor backward_segment(std::int64_t segment, const Batch& batch, const Tensor& grad_output,
                          SegmentCache& cache) override;

 private:
  struct Cache;

  ExecContext ctx_ = cpu_context();  // where this model's own ops run (its layers hold theirs)

  std::int64_t last_segment() const { return num_moe_layers(); }
  void check_segment(const char* function, std::int64_t segment) const;
  std::int64_t batch_size(const Batch& batch) const;
  // The layers before fc3: batch → fc3's input [B, d].
  Tensor features_forward(const Batch& batch, Cache& cache) const;
  void features_backward(const Batch& batch, const Tensor& grad_features, Cache& cache);
  // fc4 and the loss on fc3's output [B, d].
  Tensor head_forward(const Tensor& fc3_output, const Batch& batch, Cache& cache) const;
  Tensor head_backward(const Tensor& grad_output, const Batch& batch, Cache& cache);

  LeNetMoEConfig config_;
  Conv2d conv1_, conv2_;
  Linear fc1_, fc2_;
  std::unique_ptr<MoELayer> moe_;    // use_moe
  std::unique_ptr<DenseMLP> dense_;  // !use_moe
  Linear fc4_;
};

}  // namespace troupe
