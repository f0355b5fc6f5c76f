// Dense building blocks the model families share (LeNet-MoE, GPT): parameter initialisation
// (PyTorch's and GPT-2's), linear, convolution, LayerNorm and two-layer MLP layers, activations,
// max-pooling and the cross-entropy head, each with an explicit forward and backward over
// row-major activations.
//
// As everywhere in troupe, backward passes accumulate (+=) parameter gradients, so micro-batches
// add into one buffer, and return freshly allocated activation gradients. Forward passes return
// fresh tensors too: a segment's cache keeps them for the backward while the executor may still
// hold the segment's output.
#pragma once

#include <cstdint>
#include <random>
#include <stdexcept>
#include <string>
#include <vector>

#include "kernels/exec_context.hpp"
#include "memory/tensor.hpp"
#include "models/activation_kind.hpp"
#include "models/model.hpp"
#include "models/parameter.hpp"

namespace troupe {

// U(−bound, bound) and N(0, std²) fills drawn in element order from `rng`.
void init_uniform(Tensor& tensor, float bound, std::mt19937_64& rng);
void init_normal(Tensor& tensor, float std, std::mt19937_64& rng);

// Checks that `tensor` is a defined, contiguous host tensor of `dtype` and `shape`; otherwise
// throws std::invalid_argument naming `what` (e.g. "LeNetMoE: batch.inputs").
void require_tensor(const Tensor& tensor, DType dtype, const Shape& shape, const std::string& what);

// Every layer runs its kernels through the ops layer on its own execution context (ctx_, the CPU
// by default), so no layer names a backend.

// y = x · wᵀ + b with w [out, in] (PyTorch's layout) and b [out] (optional).
class Linear {
 public:
  Linear(const std::string& name, std::int64_t in, std::int64_t out, bool bias);

  std::int64_t in() const { return in_; }
  std::int64_t out() const { return out_; }
  Parameter& weight() { return weight_; }
  Parameter& bias() { return bias_; }  // value undefined when the layer has no bias

  // PyTorch's default (kaiming_uniform with a = √5): weight and bias U(±1/√in).
  void init_pytorch(std::mt19937_64& rng);
  // GPT-2's: weight N(0, std²), bias 0.
  void init_normal(float std, std::mt19937_64& rng);
  void append_parameters(std::vector<Parameter*>& out);

  // x [rows, in] → [rows, out].
  Tensor forward(const Tensor& x) const;
  // Returns dx [rows, in] (undefined when need_dx is false); accumulates the weight and bias grads.
  Tensor backward(const Tensor& x, const Tensor& dy, bool need_dx = true);

 private:
  ExecContext ctx_ = cpu_context();
  std::int64_t in_, out_;
  Parameter weight_;
  Parameter bias_;
};

// 2-D convolution, stride 1, zero padding `padding` on each side, with bias: weight [OC, C, K, K],
// bias [OC].
class Conv2d {
 public:
  Conv2d(const std::string& name, std::int64_t in_channels, std::int64_t out_channels,
         std::int64_t kernel, std::int64_t padding = 0);

  Parameter& weight() { return weight_; }
  Parameter& bias() { return bias_; }

  // PyTorch's default: weight and bias U(±1/√(C·K·K)).
  void init_pytorch(std::mt19937_64& rng);
  void append_parameters(std::vector<Parameter*>& out);

  // x [N, C, H, W] → [N, OC, H + 2·padding − K + 1, W + 2·padding − K + 1].
  Tensor forward(const Tensor& x) const;
  Tensor backward(const Tensor& x, const Tensor& dy, bool need_dx);

 private:
  ExecContext ctx_ = cpu_context();
  std::int64_t in_channels_, out_channels_, kernel_, padding_;
  Parameter weight_;
  Parameter bias_;
};

// What LayerNorm's backward needs from its forward.
struct LayerNormActivations {
  Tensor y;     // [rows, width], the output
  Tensor mean;  // [rows]
  Tensor rstd;  // [rows]
};

// LayerNorm over the last axis (eps 1e-5, PyTorch's default); gamma starts at 1 and beta at 0.
class LayerNorm {
 public:
  LayerNorm(const std::string& name, std::int64_t width);

  Parameter& gamma() { return gamma_; }
  Parameter& beta() { return beta_; }
  void append_parameters(std::vector<Parameter*>& out);

  // x [rows, width]; returns acts.y.
  Tensor forward(const Tensor& x, LayerNormActivations& acts) const;
  Tensor backward(const Tensor& x, const LayerNormActivations& acts, const Tensor& dy);

 private:
  ExecContext ctx_ = cpu_context();
  std::int64_t width_;
  Parameter gamma_;
  Parameter beta_;
};

// What DenseMLP's backward needs from its forward.
struct MLPActivations {
  Tensor hidden;  // [rows, f] first linear layer's output
  Tensor active;  // [rows, f] the activation's output
};

// Linear(d, f) → activation → Linear(f, d), both with bias: the dense twin of an MoE expert
// (MoELayer's Experts have the same shape) and GPT's dense FFN.
class DenseMLP {
 public:
  DenseMLP(const std::string& name, std::int64_t width, std::int64_t hidden, Activation activation);

  Linear& fc() { return fc_; }
  Linear& proj() { return proj_; }
  void append_parameters(std::vector<Parameter*>& out);

  Tensor forward(const Tensor& x, MLPActivations& acts) const;
  Tensor backward(const Tensor& x, const MLPActivations& acts, const Tensor& dy);

 private:
  ExecContext ctx_ = cpu_context();
  Linear fc_, proj_;
  Activation activation_;
};

// Element-wise activation of x (any shape), and dx = dy · f'(x).
// This is where the model's choice of activation meets the ops layer's one op per function.
Tensor apply_activation(const ExecContext& ctx, Activation activation, const Tensor& x);
Tensor activation_grad(const ExecContext& ctx, Activation activation, const Tensor& x,
                       const Tensor& dy);
// The same into dx (x's shape), which may be dy itself: the kernels are element-wise, and
// overwriting dy saves a buffer the size of the activations and a pass over fresh memory.
void activation_grad(const ExecContext& ctx, Activation activation, const Tensor& x,
                     const Tensor& dy, const Tensor& dx);

// 2 × 2 max-pooling of x [N, C, H, W] (stride 2; an odd last row or column is ignored);
// `argmax` receives the positions the backward routes gradients to.
Tensor max_pool2(const ExecContext& ctx, const Tensor& x, Tensor& argmax);
Tensor max_pool2_grad(const ExecContext& ctx, const Tensor& x, const Tensor& argmax,
                      const Tensor& dy);

// Mean softmax cross-entropy of logits [rows, classes] against targets (i32, `rows` elements in
// any shape), with the argmax hit count. Keeps the softmax in `probs` for the backward.
LossResult cross_entropy(const ExecContext& ctx, const Tensor& logits, const Tensor& targets,
                         Tensor& probs);
// d logits = (probs − onehot(targets)) · dloss / rows.
Tensor cross_entropy_grad(const ExecContext& ctx, const Tensor& probs, const Tensor& targets,
                          float dloss);

// A model's own cache type behind a SegmentCache (C may be const); a cache made by another model
// throws std::invalid_argument naming `function`.
// (`function` is a C string: a std::string parameter would make GCC 13 warn that the returned
// reference may dangle from the temporary built for it.)
template <class C, class S>
C& cache_cast(S& cache, const char* function) {
  auto* typed = dynamic_cast<C*>(&cache);
  if (typed == nullptr)
    throw std::invalid_argument(std::string(function) +
                                ": the cache was not made by this model's make_cache");
  return *typed;
}

// The one-element tensor a last segment returns, and the d(loss) a last segment's backward
// receives (checked to be one f32 element; `what` names the caller in the message).
Tensor loss_tensor(float loss);
float loss_gradient(const Tensor& grad_output, const std::string& what);

}  // namespace troupe
