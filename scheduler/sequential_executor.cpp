// Sequential executor (see sequential_executor.hpp).
#include "scheduler/sequential_executor.hpp"

#include <algorithm>
#include <cmath>
#include <thread>

#include "kernels/ops/threads.hpp"
#include "models/moe/moe_layer.hpp"
#include "models/noise.hpp"
#include "models/noise_stream.hpp"
#include "models/segment_gradients.hpp"

namespace troupe {

SequentialExecutor::SequentialExecutor(std::shared_ptr<Model> model,
                                       std::int64_t optimizer_partitions, AdamParams adam,
                                       std::uint64_t seed)
    : model_(std::move(model)),
      partitions_(partition_parameters(model_->parameters(), optimizer_partitions)),
      adam_(adam),
      seed_(seed) {}

step_result SequentialExecutor::run_step(std::int64_t step, bool training,
                                         const std::vector<Batch>& micro_batches) {
  // One process, one thread of work: the non-GEMM kernels get every core (results do not depend
  // on the count). Set per step because an actor runtime in the same process sets 1.
  ops::set_cpu_intra_op_threads(
      static_cast<int>(std::max(1u, std::thread::hardware_concurrency())));
  const std::int64_t layers = model_->num_moe_layers();
  const auto total = static_cast<std::int64_t>(micro_batches.size());
  const float loss_weight = 1.0f / static_cast<float>(total);
  step_result out;
  out.step = step;
  out.exp_counts.assign(static_cast<std::size_t>(layers), {});
  double loss_mean = 0.0, l_aux_mean = 0.0;
  for (std::int64_t m = 0; m < total; ++m) {
    const Batch& batch = micro_batches[static_cast<std::size_t>(m)];
    auto cache = model_->make_cache();
    std::vector<Tensor> inputs(static_cast<std::size_t>(layers));
    std::vector<MoEForwardState> states(static_cast<std::size_t>(layers));
    Tensor h = model_->forward_segment(0, batch, Tensor(), *cache, training);
    for (std::int64_t l = 0; l < layers; ++l) {
      const auto li = static_cast<std::size_t>(l);
      SeededNoise noise(seed_, noise_stream_id(step, m, l, training));
      inputs[li] = h;
      const MoEOutput o = model_->moe_layer(l).forward(h, training, noise, states[li]);
      l_aux_mean += o.l_aux;  // micro-batch, then layer order: as the pipeline actor sums
      auto& counts = out.exp_counts[li];
      counts.resize(o.exp_counts.size(), 0);
      for (std::size_t e = 0; e < o.exp_counts.size(); ++e) counts[e] += o.exp_counts[e];
      std::int64_t kept = 0;
      for (auto t : states[li].plan.tokens_per_expert) kept += t;
      out.dropped += states[li].plan.tokens * states[li].plan.k - kept;
      h = model_->forward_segment(l + 1, batch, o.output, *cache, training);
    }
    const LossResult loss = model_->loss(*cache);
    loss_mean += loss.loss;
    out.loss_sum += static_cast<double>(loss.loss) * static_cast<double>(loss.count);
    out.correct += loss.correct;
    out.count += loss.count;
    if (!training) continue;
    // Segment gradients are computed apart and added in micro-batch order, exactly as the actor
    // runtime's (possibly replicated) stages do (models/segment_gradients.hpp).
    std::vector<Tensor> grads;
    auto backward_segment = [&](std::int64_t segment, const Tensor& grad_output) {
      Tensor grad_input =
          backward_segment_apart(*model_, segment, batch, grad_output, *cache, grads);
      add_segment_gradients(*model_, segment, grads);
      return grad_input;
    };
    Tensor g = backward_segment(layers, Tensor::from_vector({loss_weight}, {1}));
    for (std::int64_t l = layers - 1; l >= 0; --l) {
      const auto li = static_cast<std::size_t>(l);
      g = model_->moe_layer(l).backward(g, model_->aux_loss_coef() * loss_weight, inputs[li],
                                        states[li]);
      g = backward_segment(l, g);
    }
  }
  out.loss = static_cast<float>(loss_mean / static_cast<double>(total));
  out.l_aux = static_cast<float>(l_aux_mean / static_cast<double>(total));
  return out;
}

double SequentialExecutor::apply_optimizer(std::int64_t step, float lr, float gradient_clipping) {
  std::vector<std::vector<double>> chunks;
  for (const auto& p : partitions_) chunks.push_back(p.chunk_squared_norms(p.grads()));
  const double norm = std::sqrt(sum_in_order(chunks));
  const float scale = clip_coefficient(norm, gradient_clipping);
  AdamParams hp = adam_;
  hp.lr = lr;
  for (auto& p : partitions_) p.apply(hp, step, scale, p.grads());
  return norm;
}

}  // namespace troupe
