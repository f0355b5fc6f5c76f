// Experts: grouped GEMM → activation → grouped GEMM over expert-major rows (see experts.hpp).
#include "models/moe/experts.hpp"

#include <algorithm>
#include <stdexcept>
#include <string>

#include "kernels/ops/gemm.hpp"
#include "models/dense_layers.hpp"
#include "models/moe/tensor_checks.hpp"

namespace troupe {
namespace {

// The global id of rank ep_rank's first local expert, once config and ep_rank are known valid.
std::int64_t first_local_expert(const MoEConfig& config, std::int64_t ep_rank) {
  config.validate();
  if (ep_rank < 0 || ep_rank >= config.ep_size)
    throw std::invalid_argument(
        "Experts: ep_rank = " + std::to_string(ep_rank) +
        ", allowed 0 ≤ ep_rank < ep_size = " + std::to_string(config.ep_size));
  return ep_rank * config.local_experts();
}

}  // namespace

Experts::Experts(const MoEConfig& config, std::uint64_t init_seed, const std::string& prefix,
                 std::int64_t ep_rank)
    : Experts(config, prefix + ".experts",
              config.num_experts / std::max<std::int64_t>(config.ep_size, 1),
              first_local_expert(config, ep_rank), /*is_expert=*/true, init_seed,
              InitFamily::experts) {}

Experts Experts::residual_mlp(const MoEConfig& config, std::uint64_t init_seed,
                              const std::string& prefix) {
  config.validate();
  return Experts(config, prefix + ".residual_mlp", 1, 0, /*is_expert=*/false, init_seed,
                 InitFamily::residual_mlp);
}

Experts::Experts(const MoEConfig& config, const std::string& names, std::int64_t count,
                 std::int64_t first_id, bool is_expert, std::uint64_t init_seed, InitFamily family)
    : count_(count),
      hidden_(config.hidden_size),
      ffn_(config.ffn_hidden_size),
      activation_(config.activation),
      w1_(make_parameter(names + ".w1", {count, ffn_, hidden_}, is_expert)),
      b1_(make_parameter(names + ".b1", {count, ffn_}, is_expert)),
      w2_(make_parameter(names + ".w2", {count, hidden_, ffn_}, is_expert)),
      b2_(make_parameter(names + ".b2", {count, hidden_}, is_expert)) {
  int part = 0;
  for (auto [p, fan_in] : {std::pair{&w1_, hidden_}, std::pair{&b1_, hidden_},
                           std::pair{&w2_, ffn_}, std::pair{&b2_, ffn_}}) {
    const std::int64_t per_expert = p->value.numel() / count;
    for (std::int64_t e = 0; e < count; ++e)
      init_linear_uniform(p->value.data<float>() + e * per_expert, per_expert, fan_in, init_seed,
                          family, first_id + e, part);
    ++part;
  }
}

void Experts::check_range(const char* function, std::int64_t first, std::int64_t last) const {
  if (first < 0 || last < first || last > count_)
    throw std::out_of_range(std::string(function) + ": experts [" + std::to_string(first) + ", " +
                            std::to_string(last) + ") out of range for " + std::to_string(count_) +
                            " local experts");
}

Tensor Experts::forward(std::int64_t first, std::int64_t last, const Tensor& rows,
                        const std::vector<std::int64_t>& offsets, ExpertActivations& saved) const {
  check_range("Experts::forward", first, last);
  const std::int64_t n = check_rows("Experts::forward", "rows", rows, hidden_);
  const std::int64_t groups = last - first;
  if (static_cast<std::int64_t>(offsets.size()) != groups + 1 || offsets.front() != 0 ||
      offsets.back() != n)
    throw std::invalid_argument(
        "Experts::forward: offsets must have last − first + 1 = " + std::to_string(groups + 1) +
        " entries from 0 to rows = " + std::to_string(n) + ", got " +
        std::to_string(offsets.size()) + " entries");
  for (std::int64_t g = 0; g < groups; ++g)
    if (offsets[g + 1] < offsets[g])
      throw std::invalid_argument("Experts::forward: offsets decrease at index " +
                                  std::to_string(g + 1));

  saved.first = first;
  saved.last = last;
  saved.offsets = offsets;
  saved.rows = rows;
  saved.hidden_pre = Tensor::empty({n, ffn_});
  Tensor out = Tensor::empty({n, hidden_});
  ops::grouped_linear_forward(ctx_, rows, offsets, w1_.value.slice_rows(first, last),
                              b1_.value.slice_rows(first, last), saved.hidden_pre);
  saved.hidden = apply_activation(ctx_, activation_, saved.hidden_pre);
  ops::grouped_linear_forward(ctx_, saved.hidden, offsets, w2_.value.slice_rows(first, last),
                              b2_.value.slice_rows(first, last), out);
  return out;
}

Tensor Experts::backward(std::int64_t first, std::int64_t last, const Tensor& grad_out_rows,
                         const ExpertActivations& saved) {
  check_range("Experts::backward", first, last);
  if (saved.first != first || saved.last != last || !saved.rows.defined())
    throw std::invalid_argument("Experts::backward: saved activations are for experts [" +
                                std::to_string(saved.first) + ", " + std::to_string(saved.last) +
                                "), not [" + std::to_string(first) + ", " + std::to_string(last) +
                                ")");
  const std::int64_t n = saved.rows.size(0);
  check_shape("Experts::backward", "grad_out_rows", grad_out_rows, {n, hidden_});

  Tensor grad_hidden = Tensor::empty({n, ffn_});
  ops::grouped_linear_backward(ctx_, saved.hidden, saved.offsets, w2_.value.slice_rows(first, last),
                               grad_out_rows, grad_hidden, w2_.grad.slice_rows(first, last),
                               b2_.grad.slice_rows(first, last));
  // In place: grad_hidden becomes the gradient of the first layer's output.
  activation_grad(ctx_, activation_, saved.hidden_pre, grad_hidden, grad_hidden);
  Tensor grad_rows = Tensor::empty({n, hidden_});
  ops::grouped_linear_backward(ctx_, saved.rows, saved.offsets, w1_.value.slice_rows(first, last),
                               grad_hidden, grad_rows, w1_.grad.slice_rows(first, last),
                               b1_.grad.slice_rows(first, last));
  return grad_rows;
}

}  // namespace troupe
