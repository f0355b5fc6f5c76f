// The model interface the executors drive: dense segments interleaved with MoE layers.
//
//   batch → segment 0 → MoE layer 0 → segment 1 → MoE layer 1 → … → segment L → loss
//
// A model with L MoE layers has L + 1 dense segments. Segment s < L returns the input of MoE
// layer s ([tokens, hidden]); segment L returns the loss. Everything a segment's backward needs is
// kept in a per-micro-batch SegmentCache the model creates, so several micro-batches can be in
// flight at once, and different segments may run on different threads at the same time (each
// segment touches only its own parameters and the micro-batch's cache). The MoE layers are
// driven by the executor itself (the actor runtime splits them into gate and expert-shard actors).
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "memory/tensor.hpp"
#include "models/parameter.hpp"

namespace troupe {

class MoELayer;

// One micro-batch. Image classifiers: inputs f32 [B, C, H, W], targets i32 [B].
// Language models: inputs i32 [B, T] token ids, targets i32 [B, T] (next tokens).
struct Batch {
  Tensor inputs;
  Tensor targets;
};

// A model's saved activations for one micro-batch; each model derives its own.
class SegmentCache {
 public:
  virtual ~SegmentCache() = default;
};

// What the last segment computed for one micro-batch.
struct LossResult {
  float loss = 0.0f;         // mean cross-entropy over predictions (without l_aux)
  std::int64_t correct = 0;  // predictions whose argmax equals the target
  std::int64_t count = 0;    // predictions (images, or tokens for a language model)
};

class Model {
 public:
  virtual ~Model() = default;

  virtual std::string name() const = 0;
  virtual std::int64_t num_moe_layers() const = 0;
  virtual MoELayer& moe_layer(std::int64_t index) = 0;
  // Coefficient of Σ l_aux in the training loss (DeepSpeed leaves adding it to the user).
  virtual float aux_loss_coef() const = 0;
  // Every parameter, dense and expert, in a fixed order (checkpoints and optimizers rely on it).
  virtual std::vector<Parameter*> parameters() = 0;
  // Parameters a segment owns (its gradients are written only by that segment's backward).
  virtual std::vector<Parameter*> segment_parameters(std::int64_t segment) = 0;

  virtual std::unique_ptr<SegmentCache> make_cache() const = 0;

  // Segment `segment` forward. `moe_output` is the output of MoE layer segment − 1 (ignored for
  // segment 0, which reads the batch). Returns the next MoE layer's input, or for the last segment
  // a one-element tensor holding the loss (LossResult is then available from `loss`).
  virtual Tensor forward_segment(std::int64_t segment, const Batch& batch, const Tensor& moe_output,
                                 SegmentCache& cache, bool training) = 0;
  virtual LossResult loss(const SegmentCache& cache) const = 0;

  // Segment backward. `grad_output` is the gradient of the segment's output: for the last segment
  // a one-element tensor holding d(total loss)/d(loss) (1 / micro-batches when gradients are
  // averaged over accumulation steps). Accumulates (+=) the segment's parameter gradients and
  // returns the gradient of `moe_output` (undefined for segment 0).
  virtual Tensor backward_segment(std::int64_t segment, const Batch& batch,
                                  const Tensor& grad_output, SegmentCache& cache) = 0;

  // What crosses an MoE layer beside the layer's input — a transformer's residual stream — so that
  // every stage keeps a cache of its own and the rest travels in messages. After
  // forward_segment(s), forward_carry(s, cache) goes to segment s + 1, which takes it with
  // accept_forward_carry(s + 1, its cache, carry) before its forward; after backward_segment(s),
  // backward_carry(s, cache) goes to segment s − 1, which takes it with accept_backward_carry
  // before its backward. The defaults carry nothing (the segments share no state).
  virtual Tensor forward_carry(std::int64_t segment, const SegmentCache& cache) const;
  virtual void accept_forward_carry(std::int64_t segment, SegmentCache& cache, const Tensor& carry);
  virtual Tensor backward_carry(std::int64_t segment, const SegmentCache& cache) const;
  virtual void accept_backward_carry(std::int64_t segment, SegmentCache& cache,
                                     const Tensor& carry);

  // A second instance of the same architecture whose parameter values are this model's (the same
  // storage: it only reads them) and whose gradients are its own, so a replicated stage can run a
  // segment for another micro-batch on another thread. Models that cannot be replicated throw.
  virtual std::shared_ptr<Model> make_replica();
};

// Makes every parameter value of `replica` a view of the same storage as `source`'s, in
// parameters() order (the two must have the same architecture; std::invalid_argument otherwise).
void share_parameter_values(Model& replica, Model& source);

}  // namespace troupe
