// Per-micro-batch segment gradients (see segment_gradients.hpp).
#include "models/segment_gradients.hpp"

#include <stdexcept>

#include "kernels/ops/reduce.hpp"

namespace troupe {

Tensor backward_segment_apart(Model& model, std::int64_t segment, const Batch& batch,
                              const Tensor& grad_output, SegmentCache& cache,
                              std::vector<Tensor>& grads) {
  const auto params = model.segment_parameters(segment);
  std::vector<Tensor> kept;
  kept.reserve(params.size());
  for (auto* p : params) {
    kept.push_back(p->grad);
    p->grad = Tensor::zeros(p->grad.shape(), p->grad.dtype());
  }
  Tensor grad_input;
  try {
    grad_input = model.backward_segment(segment, batch, grad_output, cache);
  } catch (...) {
    for (std::size_t i = 0; i < params.size(); ++i) params[i]->grad = kept[i];
    throw;
  }
  grads.clear();
  for (std::size_t i = 0; i < params.size(); ++i) {
    grads.push_back(params[i]->grad);
    params[i]->grad = kept[i];
  }
  return grad_input;
}

void add_segment_gradients(Model& model, std::int64_t segment, const std::vector<Tensor>& grads) {
  const auto params = model.segment_parameters(segment);
  if (params.size() != grads.size())
    throw std::invalid_argument("add_segment_gradients: " + std::to_string(grads.size()) +
                                " gradients for " + std::to_string(params.size()) +
                                " parameters of segment " + std::to_string(segment));
  const ExecContext ctx = cpu_context();
  for (std::size_t i = 0; i < params.size(); ++i)
    ops::add(ctx, params[i]->grad, grads[i], params[i]->grad);
}

}  // namespace troupe
