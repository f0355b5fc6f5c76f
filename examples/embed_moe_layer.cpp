// Embedding troupe's MoE actors in your own CAF 0.17.6 program (walked through in
// docs/EMBEDDING.md): one MoE layer as a gate actor and two expert shard actors, spawned in this
// program's actor_system and driven by this program's own actor, which plays every neighbour the
// gate has (previous stage, next stage and scheduler). The actors' results are checked bit for bit
// against MoELayer::forward / backward called directly on an identical layer.
//
// Usage: troupe_example_embed_moe_layer [trace.json]
//   With a path, the actors' spans and messages are also written there as a Chrome trace.
// Exit status 0 when the actors and the direct calls agree exactly, 1 otherwise.
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <iostream>
#include <limits>
#include <memory>
#include <random>
#include <stdexcept>
#include <string>
#include <vector>

#include <caf/all.hpp>

#include "actors/actor_context.hpp"
#include "actors/comm_actor.hpp"
#include "actors/expert_shard_actor.hpp"
#include "actors/gate_actor.hpp"
#include "actors/messages.hpp"
#include "actors/protocols.hpp"
#include "models/model.hpp"
#include "models/moe/moe_layer.hpp"
#include "models/noise.hpp"
#include "models/noise_stream.hpp"
#include "scheduler/actor_runtime.hpp"
#include "trace/trace_recorder.hpp"

namespace {

using namespace troupe;

constexpr std::uint64_t kInitSeed = 11;     // parameter initialisation, shared by both layers
constexpr std::uint64_t kNoiseSeed = 2024;  // routing noise: the gate's seed
constexpr std::int64_t kStep = 1;
constexpr std::int64_t kMicroBatches = 2;  // two in flight at once, as in a pipeline
constexpr std::int64_t kTokens = 7;        // odd, so shards get uneven row counts
constexpr std::int64_t kShards = 2;
constexpr float kLossWeight = 1.0f / kMicroBatches;  // what the pipeline puts in forward_work
// A healthy run answers within milliseconds; this only turns a lost message into an error.
constexpr auto kReceiveTimeout = std::chrono::seconds(30);

MoEConfig layer_config() {
  MoEConfig c;
  c.hidden_size = 6;
  c.ffn_hidden_size = 10;
  c.num_experts = 4;
  c.k = 2;  // top-2 with second-expert sampling: the routing draws Gumbel noise
  // C = ceil(7 / 4 · 0.75 · 2) = 3 slots per expert, 12 in all for 14 choices: some are dropped.
  c.capacity_factor = 0.75;
  c.min_capacity = 2;
  return c;
}

// The smallest troupe::Model the gate and shard actors accept: one MoE layer and nothing else.
// The dense segments around it belong to the embedding program, which feeds the layer itself, so
// the segment calls are never made here.
class OneLayerModel final : public Model {
 public:
  OneLayerModel(const MoEConfig& config, std::uint64_t init_seed) : layer_(config, init_seed) {}

  std::string name() const override { return "one_moe_layer"; }
  std::int64_t num_moe_layers() const override { return 1; }
  MoELayer& moe_layer(std::int64_t index) override {
    if (index != 0)
      throw std::out_of_range("OneLayerModel::moe_layer: index = " + std::to_string(index) +
                              "; the model has one MoE layer, index 0");
    return layer_;
  }
  float aux_loss_coef() const override { return 0.01f; }
  std::vector<Parameter*> parameters() override { return layer_.parameters(); }
  std::vector<Parameter*> segment_parameters(std::int64_t) override { return {}; }

  std::unique_ptr<SegmentCache> make_cache() const override { not_used(); }
  Tensor forward_segment(std::int64_t, const Batch&, const Tensor&, SegmentCache&, bool) override {
    not_used();
  }
  LossResult loss(const SegmentCache&) const override { not_used(); }
  Tensor backward_segment(std::int64_t, const Batch&, const Tensor&, SegmentCache&) override {
    not_used();
  }

 private:
  [[noreturn]] static void not_used() { throw std::logic_error("not used"); }

  MoELayer layer_;
};

Tensor random_tensor(const Shape& shape, std::uint32_t seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> normal(0.0f, 1.0f);
  Tensor t = Tensor::empty(shape);
  for (std::int64_t i = 0; i < t.numel(); ++i) t.data<float>()[i] = normal(rng);
  return t;
}

// max |a − b|; infinity when the shapes differ (a missing or misshapen result is a mismatch).
float max_abs_diff(const Tensor& a, const Tensor& b) {
  if (!a.defined() || !b.defined() || a.shape() != b.shape())
    return std::numeric_limits<float>::infinity();
  const std::vector<float> x = a.to_vector(), y = b.to_vector();
  float m = 0.0f;
  for (std::size_t i = 0; i < x.size(); ++i) m = std::max(m, std::abs(x[i] - y[i]));
  return m;
}

float max_abs(const Tensor& a) {
  float m = 0.0f;
  for (float v : a.to_vector()) m = std::max(m, std::abs(v));
  return m;
}

// What the layer computed for each micro-batch, by whichever path.
struct LayerResults {
  std::vector<Tensor> output;      // forward output (S, d)
  std::vector<Tensor> grad_input;  // backward output (S, d)
  std::vector<moe_stats> stats;
};

// The user's side of the protocol. `self` is an ordinary scoped_actor of this program: it is the
// gate's `previous`, `next` and `scheduler`, so everything the gate sends comes back here.
class Driver {
 public:
  Driver(caf::actor_system& system, std::shared_ptr<TraceRecorder> recorder)
      : self_(system), context_{"user", std::move(recorder)} {}

  // Blocks until `count` messages have been handled by `handlers`. A monitored actor that stops
  // (down_msg) or a silent mailbox ends the wait with an exception naming the cause.
  template <class... Handlers>
  void receive(std::int64_t count, Handlers... handlers) {
    std::string error;
    for (std::int64_t i = 0; i < count && error.empty(); ++i)
      self_->receive(
          handlers...,
          [&](const caf::down_msg& down) {
            error = "an MoE actor stopped: " + self_->home_system().render(down.reason);
          },
          caf::after(kReceiveTimeout) >>
              [&] { error = "no message from the MoE actors for 30 s"; });
    if (!error.empty()) throw std::runtime_error(error);
  }

  caf::scoped_actor& self() { return self_; }
  const ActorContext& context() const { return context_; }

 private:
  caf::scoped_actor self_;
  ActorContext context_;
};

// Sends every actor an exit message when it goes out of scope, also when an error unwinds the
// stack: a live actor would make the actor_system's destructor wait forever.
class StopOnExit {
 public:
  explicit StopOnExit(const std::vector<caf::actor_addr>& actors) : actors_(actors) {}
  ~StopOnExit() {
    for (const auto& a : actors_) caf::anon_send_exit(a, caf::exit_reason::user_shutdown);
  }
  StopOnExit(const StopOnExit&) = delete;
  StopOnExit& operator=(const StopOnExit&) = delete;

 private:
  const std::vector<caf::actor_addr>& actors_;
};

LayerResults run_actors(caf::actor_system& system, const std::shared_ptr<Model>& model,
                        const std::vector<Tensor>& inputs, const std::vector<Tensor>& gradients,
                        const std::shared_ptr<TraceRecorder>& recorder) {
  // One shard actor per contiguous range of experts, the comm actor that moves rows to them and
  // back, then the gate.
  LayerShards shards;
  const auto ranges = shard_expert_ranges(model->moe_layer(0).experts().count(), kShards);
  for (std::int64_t j = 0; j < kShards; ++j) {
    const ExpertShardSpec spec{0, j, ranges[static_cast<std::size_t>(j)].first,
                               ranges[static_cast<std::size_t>(j)].second};
    shards.specs.push_back(spec);
    shards.actors.push_back(spawn_expert_shard_actor(
        system, model, spec, ActorContext{"expert_shard.l0.s" + std::to_string(j), recorder}));
  }
  const comm_actor comm = spawn_comm_actor(system, CommActorSpec{kMicroBatches, {shards}},
                                           ActorContext{"comm.ep", recorder});
  const gate_actor gate = spawn_gate_actor(system, model, 0, comm, RoutingNoise{kNoiseSeed},
                                           ActorContext{"gate.l0", recorder});
  // The actors' addresses, to monitor and stop them whatever their interfaces; the typed handles
  // above keep them alive.
  std::vector<caf::actor_addr> actors;
  for (const auto& shard : shards.actors) actors.push_back(shard.address());
  actors.push_back(comm.address());
  actors.push_back(gate.address());
  const StopOnExit stop_on_exit(actors);

  Driver driver(system, recorder);
  auto& self = driver.self();
  for (const auto& a : actors) self->monitor(a);
  // Messages from one sender arrive in the order sent, so the links come before any work.
  // A blocking actor has no typed interface: it is cast to the ones the gate sends to, and
  // receives forward_work and backward_work below.
  const caf::actor us = self;
  self->send(gate, pipeline_links{caf::actor_cast<pipeline_stage_actor>(us),
                                  caf::actor_cast<pipeline_stage_actor>(us),
                                  caf::actor_cast<pipeline_sink_actor>(us)});

  LayerResults got;
  got.output.resize(inputs.size());
  got.grad_input.resize(inputs.size());
  got.stats.resize(inputs.size());
  const auto slot = [&](const MicroBatchKey& key) {
    if (key.step != kStep || key.micro_batch < 0 || key.micro_batch >= kMicroBatches)
      throw std::runtime_error("unexpected micro-batch (step " + std::to_string(key.step) + ", " +
                               std::to_string(key.micro_batch) + ")");
    return static_cast<std::size_t>(key.micro_batch);
  };

  // Forward: both micro-batches go in before either comes out.
  for (std::int64_t m = 0; m < kMicroBatches; ++m) {
    forward_work work;
    work.key = MicroBatchKey{kStep, m};
    work.training = true;
    work.micro_batches = kMicroBatches;
    work.activation = TensorHandle(inputs[static_cast<std::size_t>(m)]);
    work.loss_weight = kLossWeight;
    work.stamp = driver.context().stamp();
    self->send(gate, std::move(work));
  }
  driver.receive(kMicroBatches, [&](const forward_work& out) {
    driver.context().received(out.stamp, "forward_work", out.key.micro_batch,
                              out.activation.bytes());
    got.output[slot(out.key)] = out.activation.tensor();
    if (out.stats.size() != 1) throw std::runtime_error("expected the layer's statistics");
    got.stats[slot(out.key)] = out.stats.front();
  });

  // Backward: in micro-batch order within the step (the actors check it).
  for (std::int64_t m = 0; m < kMicroBatches; ++m)
    self->send(gate, backward_work{MicroBatchKey{kStep, m},
                                   TensorHandle(gradients[static_cast<std::size_t>(m)]),
                                   {},
                                   driver.context().stamp()});
  driver.receive(kMicroBatches, [&](const backward_work& back) {
    driver.context().received(back.stamp, "backward_work", back.key.micro_batch,
                              back.gradient.bytes());
    got.grad_input[slot(back.key)] = back.gradient.tensor();
  });

  // Shutdown: stop every actor and wait until each is gone (its down_msg), so nothing of theirs
  // runs past this point. The handles (ours, and the gate's to its shards and to `self`) go when
  // this function returns, before the actor_system's destructor waits for its actors.
  for (const auto& a : actors) self->send_exit(a, caf::exit_reason::user_shutdown);
  std::int64_t stopped = 0;
  for (std::size_t i = 0; i < actors.size(); ++i)
    self->receive([&](const caf::down_msg&) { ++stopped; }, caf::after(kReceiveTimeout) >> [] {});
  if (stopped != static_cast<std::int64_t>(actors.size()))
    throw std::runtime_error("shutdown: only " + std::to_string(stopped) + " of " +
                             std::to_string(actors.size()) + " actors stopped");
  return got;
}

// The same computation through the layer's own forward / backward, with the noise streams the
// gate uses and the backward passes in the same order, so gradients accumulate identically.
LayerResults run_direct(MoELayer& layer, float aux_loss_coef, const std::vector<Tensor>& inputs,
                        const std::vector<Tensor>& gradients) {
  LayerResults want;
  std::vector<MoEForwardState> states(inputs.size());
  for (std::int64_t m = 0; m < kMicroBatches; ++m) {
    const auto i = static_cast<std::size_t>(m);
    SeededNoise noise(kNoiseSeed, noise_stream_id(kStep, m, 0, true));
    const MoEOutput out = layer.forward(inputs[i], true, noise, states[i]);
    std::int64_t kept = 0;
    for (auto t : states[i].plan.tokens_per_expert) kept += t;
    want.output.push_back(out.output);
    want.stats.push_back(moe_stats{MicroBatchKey{kStep, m}, 0, out.l_aux, out.exp_counts,
                                   states[i].plan.tokens * states[i].plan.k - kept});
  }
  for (std::int64_t m = 0; m < kMicroBatches; ++m) {
    const auto i = static_cast<std::size_t>(m);
    want.grad_input.push_back(
        layer.backward(gradients[i], aux_loss_coef * kLossWeight, inputs[i], states[i]));
  }
  return want;
}

std::string join(const std::vector<std::int64_t>& v) {
  std::string s;
  for (auto x : v) s += (s.empty() ? "" : " ") + std::to_string(x);
  return "[" + s + "]";
}

int run(const std::string& trace_path) {
  const MoEConfig config = layer_config();
  auto model = std::make_shared<OneLayerModel>(config, kInitSeed);
  MoELayer direct(config, kInitSeed);  // the reference: an identical, separate layer

  std::vector<Tensor> inputs, gradients;
  for (std::int64_t m = 0; m < kMicroBatches; ++m) {
    inputs.push_back(
        random_tensor({kTokens, config.hidden_size}, static_cast<std::uint32_t>(10 + m)));
    gradients.push_back(
        random_tensor({kTokens, config.hidden_size}, static_cast<std::uint32_t>(20 + m)));
  }
  auto recorder = trace_path.empty() ? nullptr : std::make_shared<TraceRecorder>("embed_moe_layer");

  caf::actor_system_config cfg;
  cfg.load<caf::id_block::troupe>();  // troupe's message types (actors/messages.hpp)
  caf::actor_system system(cfg);
  const LayerResults got = run_actors(system, model, inputs, gradients, recorder);
  const LayerResults want = run_direct(direct, model->aux_loss_coef(), inputs, gradients);

  float output_diff = 0.0f, grad_input_diff = 0.0f, param_grad_diff = 0.0f;
  bool stats_equal = true, nonzero = true;
  std::cout << "troupe embed_moe_layer: 1 MoE layer, " << config.num_experts
            << " experts (k = " << config.k << ") on " << kShards << " expert shard actors, "
            << kMicroBatches << " micro-batches in flight\n";
  for (std::size_t i = 0; i < inputs.size(); ++i) {
    const moe_stats& s = got.stats[i];
    std::cout << "  micro-batch " << i << ": tokens " << kTokens << " x hidden "
              << config.hidden_size << ", exp_counts " << join(s.exp_counts) << ", dropped "
              << s.dropped << ", l_aux " << s.l_aux << "\n";
    output_diff = std::max(output_diff, max_abs_diff(got.output[i], want.output[i]));
    grad_input_diff =
        std::max(grad_input_diff, max_abs_diff(got.grad_input[i], want.grad_input[i]));
    stats_equal = stats_equal && s.exp_counts == want.stats[i].exp_counts &&
                  s.dropped == want.stats[i].dropped && s.l_aux == want.stats[i].l_aux;
    // An all-zero result would agree with itself and prove nothing.
    nonzero = nonzero && max_abs(want.output[i]) > 0.0f && max_abs(want.grad_input[i]) > 0.0f;
  }
  const auto actor_params = model->parameters(), direct_params = direct.parameters();
  for (std::size_t p = 0; p < actor_params.size(); ++p) {
    param_grad_diff =
        std::max(param_grad_diff, max_abs_diff(actor_params[p]->grad, direct_params[p]->grad));
    nonzero = nonzero && max_abs(direct_params[p]->grad) > 0.0f;
  }
  std::cout << "  max |actors - direct|: output " << output_diff << ", input gradient "
            << grad_input_diff << ", parameter gradients " << param_grad_diff << " ("
            << actor_params.size() << " tensors)\n"
            << "  moe_stats equal to the direct forward's: " << (stats_equal ? "yes" : "NO")
            << "\n";
  if (recorder) {
    recorder->write_chrome_trace(trace_path);
    std::cout << "  trace written to " << trace_path << "\n";
  }
  const bool ok = output_diff == 0.0f && grad_input_diff == 0.0f && param_grad_diff == 0.0f &&
                  stats_equal && nonzero;
  std::cout
      << (ok ? "OK: the actors reproduce MoELayer::forward / backward exactly\n"
             : "MISMATCH: the actors and the direct calls disagree (or a result is all zero)\n");
  return ok ? 0 : 1;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc > 2) {
    std::cerr << "usage: " << argv[0] << " [trace.json]\n";
    return 2;
  }
  try {
    return run(argc == 2 ? argv[1] : "");
  } catch (const std::exception& e) {
    std::cerr << "embed_moe_layer: " << e.what() << "\n";
    return 1;
  }
}
