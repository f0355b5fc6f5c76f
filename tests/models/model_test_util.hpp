// Helpers for the model-family tests: a runner that drives a Model end to end the way an executor
// does (segments and MoE layers in order), central finite differences, parameter lookup by name,
// and a plain SGD step.
#pragma once

#include <catch2/catch.hpp>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <random>
#include <stdexcept>
#include <string>
#include <vector>

#include "memory/tensor.hpp"
#include "models/model.hpp"
#include "models/moe/moe_layer.hpp"
#include "models/moe_test_util.hpp"
#include "models/noise.hpp"

namespace troupe::test {

// Runs segment 0, MoE layer 0, segment 1, …, segment L, and the backward in reverse. Each MoE layer
// is either the model's own (MoELayer::forward / backward with noise from a fresh
// SeededNoise(17, layer) every pass, so repeated passes route the same way) or a stand-in
// y = x ⊙ scale with a fixed random scale: the stand-in checks the segments' own backward passes
// and the residual gradients they hand each other through the cache, independently of the MoE
// layer.
class ModelRunner {
 public:
  ModelRunner(Model& model, bool real_moe)
      : output_offsets(static_cast<std::size_t>(model.num_moe_layers())),
        model_(model),
        real_moe_(real_moe),
        cache_(model.make_cache()),
        layers_(static_cast<std::size_t>(model.num_moe_layers())) {}

  // Added to MoE layer l's output when defined: finite differences with respect to the segments'
  // moe_output inputs perturb these.
  std::vector<Tensor> output_offsets;

  // The training loss: mean CE + aux_loss_coef · Σ l_aux (l_aux only with the real MoE layers).
  double forward(const Batch& batch, bool training = true) {
    Tensor moe_output;
    double aux = 0.0;
    for (std::int64_t s = 0; s <= model_.num_moe_layers(); ++s) {
      const Tensor out = model_.forward_segment(s, batch, moe_output, *cache_, training);
      if (s == model_.num_moe_layers()) {
        REQUIRE(out.numel() == 1);
        return static_cast<double>(out.to_vector()[0]) +
               static_cast<double>(model_.aux_loss_coef()) * aux;
      }
      Layer& layer = layers_[static_cast<std::size_t>(s)];
      layer.input = out;
      if (real_moe_) {
        SeededNoise noise(17, static_cast<std::uint64_t>(s));
        MoEOutput result = model_.moe_layer(s).forward(out, training, noise, layer.state);
        aux += static_cast<double>(result.l_aux);
        moe_output = result.output;
      } else {
        if (!layer.scale.defined())
          layer.scale = random_tensor(out.shape(), 900 + static_cast<std::uint32_t>(s));
        moe_output = multiply(out, layer.scale);
      }
      const Tensor& offset = output_offsets[static_cast<std::size_t>(s)];
      if (offset.defined()) moe_output = add(moe_output, offset);
    }
    throw std::logic_error("unreachable");
  }

  // Backward of forward()'s total with d(total) = dloss; accumulates parameter gradients.
  void backward(const Batch& batch, float dloss = 1.0f) {
    Tensor grad = Tensor::from_vector({dloss}, {1});
    for (std::int64_t s = model_.num_moe_layers(); s >= 0; --s) {
      grad = model_.backward_segment(s, batch, grad, *cache_);
      if (s == 0) break;
      Layer& layer = layers_[static_cast<std::size_t>(s - 1)];
      layer.output_grad = grad.clone();
      grad = real_moe_ ? model_.moe_layer(s - 1).backward(grad, model_.aux_loss_coef() * dloss,
                                                          layer.input, layer.state)
                       : multiply(grad, layer.scale);
    }
  }

  LossResult loss() const { return model_.loss(*cache_); }
  // What backward_segment(l + 1) returned: the gradient of MoE layer l's output.
  const Tensor& output_grad(std::int64_t l) const {
    return layers_[static_cast<std::size_t>(l)].output_grad;
  }
  // The stand-in's scale for layer l (defined after the first forward).
  const Tensor& stand_in_scale(std::int64_t l) const {
    return layers_[static_cast<std::size_t>(l)].scale;
  }

 private:
  struct Layer {
    Tensor input, scale, output_grad;
    MoEForwardState state;
  };

  static Tensor multiply(const Tensor& a, const Tensor& b) {
    Tensor out = Tensor::empty(a.shape());
    for (std::int64_t i = 0; i < a.numel(); ++i)
      out.data<float>()[i] = a.data<float>()[i] * b.data<float>()[i];
    return out;
  }
  static Tensor add(const Tensor& a, const Tensor& b) {
    Tensor out = Tensor::empty(a.shape());
    for (std::int64_t i = 0; i < a.numel(); ++i)
      out.data<float>()[i] = a.data<float>()[i] + b.data<float>()[i];
    return out;
  }

  Model& model_;
  bool real_moe_;
  std::unique_ptr<SegmentCache> cache_;
  std::vector<Layer> layers_;
};

inline Parameter& find_parameter(Model& model, const std::string& name) {
  for (Parameter* p : model.parameters())
    if (p->name == name) return *p;
  throw std::invalid_argument("no parameter named " + name);
}

inline void zero_all_grads(Model& model) {
  for (Parameter* p : model.parameters()) p->grad.fill(0.0f);
}

// Central difference (f(v_i + h) − f(v_i − h)) / 2h of a float tensor's or a double vector's
// element; v_i is restored afterwards.
template <class T>
double central_difference(T* v, std::int64_t i, T h, const std::function<double()>& f) {
  const T saved = v[i];
  v[i] = saved + h;
  const double plus = f();
  v[i] = saved - h;
  const double minus = f();
  v[i] = saved;
  return (plus - minus) / (2.0 * static_cast<double>(h));
}

// A few element indices of an n-element tensor: first, last, middle and `extra` random ones.
inline std::vector<std::int64_t> sample_indices(std::int64_t n, int extra, std::uint32_t seed) {
  std::vector<std::int64_t> out{0, n - 1, n / 2};
  std::mt19937 rng(seed);
  for (int i = 0; i < extra; ++i)
    out.push_back(std::uniform_int_distribution<std::int64_t>(0, n - 1)(rng));
  return out;
}

// Compares the analytic grad with difference(i) at sampled elements:
// |difference − grad| ≤ atol + rtol·|difference|. Returns how many elements were checked.
inline int check_samples(const std::string& what, const Tensor& grad, double atol, double rtol,
                         const std::function<double(std::int64_t)>& difference, int extra = 3) {
  const std::vector<float> g = grad.to_vector();
  int checked = 0;
  for (std::int64_t i : sample_indices(grad.numel(), extra, 7)) {
    const double fd = difference(i);
    INFO(what << "[" << i << "]: analytic " << g[static_cast<std::size_t>(i)] << ", central "
              << "difference " << fd);
    CHECK(std::abs(fd - g[static_cast<std::size_t>(i)]) <= atol + rtol * std::abs(fd));
    ++checked;
  }
  return checked;
}

// check_samples with central differences of f in the float tensor `value` itself.
inline int check_gradient(const std::string& what, Tensor& value, const Tensor& grad, float h,
                          double atol, double rtol, const std::function<double()>& f,
                          int extra = 3) {
  return check_samples(
      what, grad, atol, rtol,
      [&](std::int64_t i) { return central_difference(value.data<float>(), i, h, f); }, extra);
}

// Every parameter's value in double, by name: the naive references compute from (and finite
// differences perturb) these.
using ParameterValues = std::map<std::string, std::vector<double>>;
inline ParameterValues values_of(Model& model) {
  ParameterValues out;
  for (Parameter* p : model.parameters()) {
    const std::vector<float> v = p->value.to_vector();
    out[p->name] = std::vector<double>(v.begin(), v.end());
  }
  return out;
}

// check_samples with double-precision central differences of a naive reference f that reads
// `values`, against the model's gradient for every parameter in `names`.
inline int check_against_reference(Model& model, ParameterValues& values,
                                   const std::vector<std::string>& names, double h, double atol,
                                   double rtol, const std::function<double()>& f, int extra = 3) {
  int checked = 0;
  for (const std::string& name : names) {
    std::vector<double>& v = values.at(name);
    checked += check_samples(
        name, find_parameter(model, name).grad, atol, rtol,
        [&](std::int64_t i) { return central_difference(v.data(), i, h, f); }, extra);
  }
  return checked;
}

// p −= lr · grad for every parameter, then clears the gradients.
inline void sgd_step(Model& model, float lr) {
  for (Parameter* p : model.parameters()) {
    float* v = p->value.data<float>();
    float* g = p->grad.data<float>();
    for (std::int64_t i = 0; i < p->value.numel(); ++i) {
      v[i] -= lr * g[i];
      g[i] = 0.0f;
    }
  }
}

inline std::int64_t count_parameters(Model& model) {
  std::int64_t n = 0;
  for (Parameter* p : model.parameters()) n += p->value.numel();
  return n;
}

// ---- Naive double-precision layers for the references ------------------------------------------

using Vec = std::vector<double>;

// y = w · x + b, w row-major [b.size(), x.size()].
inline Vec linear(const Vec& x, const Vec& w, const Vec& b) {
  Vec y(b);
  for (std::size_t o = 0; o < y.size(); ++o)
    for (std::size_t i = 0; i < x.size(); ++i) y[o] += w[o * x.size() + i] * x[i];
  return y;
}

// GELU, GPT-2's tanh approximation.
inline Vec naive_gelu(Vec v) {
  for (double& e : v)
    e = 0.5 * e * (1.0 + std::tanh(std::sqrt(2.0 / M_PI) * (e + 0.044715 * e * e * e)));
  return v;
}

// −log softmax(logits)[target].
inline double naive_cross_entropy(const Vec& logits, std::int64_t target) {
  double top = logits[0];
  for (double l : logits) top = std::max(top, l);
  double sum = 0.0;
  for (double l : logits) sum += std::exp(l - top);
  return top + std::log(sum) - logits[static_cast<std::size_t>(target)];
}

}  // namespace troupe::test
