// Dense layers shared by the model families (see dense_layers.hpp).
#include "models/dense_layers.hpp"

#include <cmath>
#include <stdexcept>

#include "kernels/ops/activation.hpp"
#include "kernels/ops/conv.hpp"
#include "kernels/ops/gemm.hpp"
#include "kernels/ops/loss.hpp"
#include "kernels/ops/norm.hpp"

namespace troupe {
namespace {

constexpr float kLayerNormEps = 1e-5f;

// Returns `value` after checking it; parameters are sized through this so that a bad size gets
// this message rather than Tensor's.
std::int64_t positive(const std::string& layer, const char* field, std::int64_t value) {
  if (value < 1)
    throw std::invalid_argument(layer + ": " + field + " = " + std::to_string(value) +
                                ", must be >= 1");
  return value;
}

}  // namespace

void init_uniform(Tensor& tensor, float bound, std::mt19937_64& rng) {
  std::uniform_real_distribution<float> dist(-bound, bound);
  float* p = tensor.data<float>();
  for (std::int64_t i = 0; i < tensor.numel(); ++i) p[i] = dist(rng);
}

void init_normal(Tensor& tensor, float std, std::mt19937_64& rng) {
  std::normal_distribution<float> dist(0.0f, std);
  float* p = tensor.data<float>();
  for (std::int64_t i = 0; i < tensor.numel(); ++i) p[i] = dist(rng);
}

void require_tensor(const Tensor& tensor, DType dtype, const Shape& shape,
                    const std::string& what) {
  const std::string expected =
      "expected a contiguous host " + std::string(dtype_name(dtype)) + " " + shape_string(shape);
  if (!tensor.defined()) throw std::invalid_argument(what + ": tensor is undefined, " + expected);
  if (tensor.dtype() != dtype || tensor.shape() != shape || !tensor.desc().is_contiguous() ||
      !tensor.device().is_host())
    throw std::invalid_argument(what + ": got " + std::string(dtype_name(tensor.dtype())) + " " +
                                shape_string(tensor.shape()) + " on " + to_string(tensor.device()) +
                                ", " + expected);
}

// ---- Linear ------------------------------------------------------------------------------------

Linear::Linear(const std::string& name, std::int64_t in, std::int64_t out, bool bias)
    : in_(in),
      out_(out),
      weight_(make_parameter(
          name + ".weight",
          {positive("Linear " + name, "out", out), positive("Linear " + name, "in", in)}, false)) {
  if (bias) bias_ = make_parameter(name + ".bias", {out}, false);
}

void Linear::init_pytorch(std::mt19937_64& rng) {
  const float bound = 1.0f / std::sqrt(static_cast<float>(in_));
  init_uniform(weight_.value, bound, rng);
  if (bias_.value.defined()) init_uniform(bias_.value, bound, rng);
}

void Linear::init_normal(float std, std::mt19937_64& rng) {
  troupe::init_normal(weight_.value, std, rng);
  if (bias_.value.defined()) bias_.value.fill(0.0f);
}

void Linear::append_parameters(std::vector<Parameter*>& out) {
  out.push_back(&weight_);
  if (bias_.value.defined()) out.push_back(&bias_);
}

Tensor Linear::forward(const Tensor& x) const {
  const std::int64_t rows = x.dim() == 2 ? x.size(0) : 0;
  require_tensor(x, DType::f32, {rows, in_}, weight_.name + " input");
  Tensor y = Tensor::empty({rows, out_});
  ops::linear_forward(ctx_, x, weight_.value, bias_.value, y);
  return y;
}

Tensor Linear::backward(const Tensor& x, const Tensor& dy, bool need_dx) {
  const std::int64_t rows = x.size(0);
  require_tensor(dy, DType::f32, {rows, out_}, weight_.name + " output gradient");
  Tensor dx = need_dx ? Tensor::empty({rows, in_}) : Tensor();
  ops::linear_backward(ctx_, x, weight_.value, dy, dx, weight_.grad, bias_.grad);
  return dx;
}

// ---- Conv2d ------------------------------------------------------------------------------------

Conv2d::Conv2d(const std::string& name, std::int64_t in_channels, std::int64_t out_channels,
               std::int64_t kernel, std::int64_t padding)
    : in_channels_(in_channels),
      out_channels_(out_channels),
      kernel_(kernel),
      padding_(padding),
      weight_(make_parameter(name + ".weight",
                             {positive("Conv2d " + name, "out_channels", out_channels),
                              positive("Conv2d " + name, "in_channels", in_channels),
                              positive("Conv2d " + name, "kernel", kernel), kernel},
                             false)),
      bias_(make_parameter(name + ".bias", {out_channels}, false)) {}

void Conv2d::init_pytorch(std::mt19937_64& rng) {
  const float bound = 1.0f / std::sqrt(static_cast<float>(in_channels_ * kernel_ * kernel_));
  init_uniform(weight_.value, bound, rng);
  init_uniform(bias_.value, bound, rng);
}

void Conv2d::append_parameters(std::vector<Parameter*>& out) {
  out.push_back(&weight_);
  out.push_back(&bias_);
}

Tensor Conv2d::forward(const Tensor& x) const {
  if (x.dim() != 4 || x.size(1) != in_channels_)
    throw std::invalid_argument(weight_.name + " input: shape " + shape_string(x.shape()) +
                                ", expected [N, " + std::to_string(in_channels_) + ", H, W]");
  Tensor y = Tensor::empty({x.size(0), out_channels_, x.size(2) + 2 * padding_ - kernel_ + 1,
                            x.size(3) + 2 * padding_ - kernel_ + 1});
  ops::conv2d_forward(ctx_, x, weight_.value, bias_.value, y, padding_);
  return y;
}

Tensor Conv2d::backward(const Tensor& x, const Tensor& dy, bool need_dx) {
  require_tensor(dy, DType::f32,
                 {x.size(0), out_channels_, x.size(2) + 2 * padding_ - kernel_ + 1,
                  x.size(3) + 2 * padding_ - kernel_ + 1},
                 weight_.name + " output gradient");
  Tensor dx = need_dx ? Tensor::empty(x.shape()) : Tensor();
  ops::conv2d_backward(ctx_, x, weight_.value, dy, dx, weight_.grad, bias_.grad, padding_);
  return dx;
}

// ---- LayerNorm ---------------------------------------------------------------------------------

LayerNorm::LayerNorm(const std::string& name, std::int64_t width)
    : width_(width),
      gamma_(
          make_parameter(name + ".weight", {positive("LayerNorm " + name, "width", width)}, false)),
      beta_(make_parameter(name + ".bias", {width}, false)) {
  gamma_.value.fill(1.0f);
}

void LayerNorm::append_parameters(std::vector<Parameter*>& out) {
  out.push_back(&gamma_);
  out.push_back(&beta_);
}

Tensor LayerNorm::forward(const Tensor& x, LayerNormActivations& acts) const {
  const std::int64_t rows = x.dim() == 2 ? x.size(0) : 0;
  require_tensor(x, DType::f32, {rows, width_}, gamma_.name + " input");
  acts.y = Tensor::empty({rows, width_});
  acts.mean = Tensor::empty({rows});
  acts.rstd = Tensor::empty({rows});
  ops::layernorm_forward(ctx_, x, gamma_.value, beta_.value, acts.y, acts.mean, acts.rstd,
                         kLayerNormEps);
  return acts.y;
}

Tensor LayerNorm::backward(const Tensor& x, const LayerNormActivations& acts, const Tensor& dy) {
  const std::int64_t rows = x.size(0);
  require_tensor(dy, DType::f32, {rows, width_}, gamma_.name + " output gradient");
  Tensor dx = Tensor::empty({rows, width_});
  ops::layernorm_backward(ctx_, x, gamma_.value, acts.mean, acts.rstd, dy, dx, gamma_.grad,
                          beta_.grad);
  return dx;
}

// ---- DenseMLP ----------------------------------------------------------------------------------

DenseMLP::DenseMLP(const std::string& name, std::int64_t width, std::int64_t hidden,
                   Activation activation)
    : fc_(name + ".fc", width, hidden, true),
      proj_(name + ".proj", hidden, width, true),
      activation_(activation) {}

void DenseMLP::append_parameters(std::vector<Parameter*>& out) {
  fc_.append_parameters(out);
  proj_.append_parameters(out);
}

Tensor DenseMLP::forward(const Tensor& x, MLPActivations& acts) const {
  acts.hidden = fc_.forward(x);
  acts.active = apply_activation(ctx_, activation_, acts.hidden);
  return proj_.forward(acts.active);
}

Tensor DenseMLP::backward(const Tensor& x, const MLPActivations& acts, const Tensor& dy) {
  const Tensor d_active = proj_.backward(acts.active, dy);
  return fc_.backward(x, activation_grad(ctx_, activation_, acts.hidden, d_active));
}

// ---- Element-wise and pooling ------------------------------------------------------------------

Tensor apply_activation(const ExecContext& ctx, Activation activation, const Tensor& x) {
  Tensor y = Tensor::empty(x.shape());
  switch (activation) {
    case Activation::relu:
      ops::relu_forward(ctx, x, y);
      break;
    case Activation::gelu_tanh:
      ops::gelu_tanh_forward(ctx, x, y);
      break;
    case Activation::gelu_erf:
      ops::gelu_erf_forward(ctx, x, y);
      break;
    case Activation::silu:
      ops::silu_forward(ctx, x, y);
      break;
  }
  return y;
}

Tensor activation_grad(const ExecContext& ctx, Activation activation, const Tensor& x,
                       const Tensor& dy) {
  require_tensor(dy, DType::f32, x.shape(), "activation_grad: dy");
  Tensor dx = Tensor::empty(x.shape());
  activation_grad(ctx, activation, x, dy, dx);
  return dx;
}

void activation_grad(const ExecContext& ctx, Activation activation, const Tensor& x,
                     const Tensor& dy, const Tensor& dx) {
  switch (activation) {
    case Activation::relu:
      ops::relu_backward(ctx, x, dy, dx);
      break;
    case Activation::gelu_tanh:
      ops::gelu_tanh_backward(ctx, x, dy, dx);
      break;
    case Activation::gelu_erf:
      ops::gelu_erf_backward(ctx, x, dy, dx);
      break;
    case Activation::silu:
      ops::silu_backward(ctx, x, dy, dx);
      break;
  }
}

Tensor max_pool2(const ExecContext& ctx, const Tensor& x, Tensor& argmax) {
  const Shape out_shape{x.size(0), x.size(1), x.size(2) / 2, x.size(3) / 2};
  Tensor y = Tensor::empty(out_shape);
  argmax = Tensor::empty(out_shape, DType::i32);
  ops::maxpool2d_forward(ctx, x, y, argmax, 2);
  return y;
}

Tensor max_pool2_grad(const ExecContext& ctx, const Tensor& x, const Tensor& argmax,
                      const Tensor& dy) {
  require_tensor(dy, DType::f32, argmax.shape(), "max_pool2_grad: dy");
  // The kernel overwrites all of dx (zero except at the maxima), so it needs no zero fill.
  Tensor dx = Tensor::empty(x.shape());
  ops::maxpool2d_backward(ctx, dy, argmax, dx, 2);
  return dx;
}

// ---- Loss --------------------------------------------------------------------------------------

LossResult cross_entropy(const ExecContext& ctx, const Tensor& logits, const Tensor& targets,
                         Tensor& probs) {
  const std::int64_t rows = logits.size(0), classes = logits.size(1);
  require_tensor(targets, DType::i32, targets.shape(), "cross_entropy: targets");
  if (targets.numel() != rows)
    throw std::invalid_argument("cross_entropy: targets hold " + std::to_string(targets.numel()) +
                                " elements for " + std::to_string(rows) + " rows of logits");
  probs = Tensor::empty({rows, classes});
  LossResult result;
  result.loss = ops::cross_entropy_forward(ctx, logits, targets, probs);
  result.correct = ops::count_correct(ctx, logits, targets);
  result.count = rows;
  return result;
}

Tensor cross_entropy_grad(const ExecContext& ctx, const Tensor& probs, const Tensor& targets,
                          float dloss) {
  const std::int64_t rows = probs.size(0), classes = probs.size(1);
  Tensor dlogits = Tensor::empty({rows, classes});
  ops::cross_entropy_backward(ctx, probs, targets, dlogits, dloss / static_cast<float>(rows));
  return dlogits;
}

Tensor loss_tensor(float loss) {
  return Tensor::from_vector({loss}, {1});
}

float loss_gradient(const Tensor& grad_output, const std::string& what) {
  if (!grad_output.defined() || grad_output.dtype() != DType::f32 || grad_output.numel() != 1)
    throw std::invalid_argument(what +
                                ": grad_output of the last segment must be one f32 element "
                                "holding d(total loss)/d(loss), got " +
                                (grad_output.defined()
                                     ? shape_string(grad_output.shape()) + " " +
                                           std::string(dtype_name(grad_output.dtype()))
                                     : std::string("an undefined tensor")));
  return grad_output.to_vector()[0];
}

}  // namespace troupe
