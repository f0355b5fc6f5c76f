// Every actor message type round-trips through CAF's binary serializer, and a TensorHandle crosses
// as its descriptor only (the bytes travel over the transport, never inside a message).
#include <catch2/catch.hpp>

#include <caf/all.hpp>

#include "actors/messages.hpp"

using namespace troupe;

namespace {

struct system_fixture {
  caf::actor_system_config cfg;
  std::unique_ptr<caf::actor_system> sys;
  system_fixture() {
    cfg.load<caf::id_block::troupe>();
    sys = std::make_unique<caf::actor_system>(cfg);
  }
  template <class T>
  T round_trip(T value) {
    caf::binary_serializer::container_type buf;
    caf::binary_serializer sink{*sys, buf};
    REQUIRE_FALSE(sink(value));
    T out{};
    caf::binary_deserializer source{*sys, buf};
    REQUIRE_FALSE(source(out));
    // Printing both with CAF's own inspector compares every field.
    CHECK(caf::deep_to_string(out) == caf::deep_to_string(value));
    return out;
  }
};

TensorHandle handle(Shape shape) {
  return TensorHandle(Tensor::zeros(shape));
}

}  // namespace

TEST_CASE_METHOD(system_fixture, "a TensorHandle serializes as its descriptor") {
  TensorHandle h = handle({3, 5});
  TensorHandle back = round_trip(h);
  REQUIRE(back.valid());
  CHECK(back.tensor().shape() == Shape{3, 5});
  CHECK(back.tensor().desc().strides == Shape{5, 1});
  CHECK(back.tensor().dtype() == DType::f32);
  CHECK_FALSE(back.tensor().defined());  // no bytes crossed
  CHECK(back.bytes() == 60);
  CHECK_FALSE(round_trip(TensorHandle()).valid());
}

TEST_CASE_METHOD(system_fixture, "every message type round-trips") {
  MicroBatchKey key{7, 3};
  TraceStamp stamp{"gate.l0", 1234};
  round_trip(key);
  const moe_stats stats{key, 2, 0.5f, {1, 2, 3}, 4};
  round_trip(stats);
  round_trip(forward_work{
      key, true, 4, handle({2, 4}), handle({2}), handle({2, 8}), {}, 0.25f, {stats}, stamp});
  round_trip(backward_work{key, handle({4, 8}), handle({4, 8}), stamp});
  round_trip(comm_dispatch{key, 4, true, 1, false, handle({5, 8}), {0, 2, 5}, stamp});
  round_trip(expert_forward{key, false, handle({5, 8}), {0, 2, 5}, stamp});
  round_trip(expert_backward{key, handle({5, 8}), stamp});
  round_trip(expert_output{key, 1, 0, true, handle({5, 8}), stamp});
  round_trip(comm_combined{key, 1, false, handle({5, 8}), stamp});
  round_trip(handle_ready{9});
  round_trip(loss_report{key, 1.25f, 30, 64, {stats}, stamp});
  round_trip(micro_batch_done{key, stamp});
  round_trip(run_step{3, true, {batch_data{handle({2}), handle({2})}}});
  round_trip(step_result{3, 0.5f, 32.0, 0.01f, 10, 20, {{1, 2}, {3, 4}}, 5});
  round_trip(next_batches{4, true});
  round_trip(batches_reply{{batch_data{handle({1}), handle({1})}}, 2, true});
  round_trip(rewind_eval{});
  round_trip(data_position{2, 640});
  round_trip(get_position{});
  round_trip(set_position{data_position{1, 64}});
  round_trip(gradient_bucket{5, {handle({10}), handle({3})}, stamp});
  round_trip(grad_norm_reply{1, {2.5, 0.25}});
  round_trip(optimizer_step{5, 1e-3f, 0.5f, {handle({4})}, stamp});
  round_trip(optimizer_done{1, 5, {2.25}});
  round_trip(offload_step{1, handle({4}), 5, 1e-3f, 1.0f, stamp});
  round_trip(get_optimizer_state{});
  round_trip(set_optimizer_state{{"exp_avg"}, {handle({4})}});
  round_trip(optimizer_state{{"exp_avg", "exp_avg_sq"}, {handle({4}), handle({4})}, true, 8192});
  round_trip(flush_trace{"trace.json"});
  round_trip(start_training{});
  round_trip(training_summary{100, 0.3f, 0.35f, 0.89f, 10000, 42.5});
}

// An actor handle serializes as (actor id, node id); writing it puts a local actor into the actor
// system's registry and reading it back looks the id up there, so within one actor system the
// handles come back as the very same actors with only CAF::core linked. A handle naming another
// node needs a proxy from the middleman (without one CAF fails with sec::no_proxy_registry): that
// is how pipeline_links will cross processes.
TEST_CASE_METHOD(system_fixture, "pipeline_links round-trips with real actor handles") {
  // The registry holds the actors alive, so they must be told to exit or the system's
  // destructor would wait for them forever, also when an assertion below throws.
  struct Actors {
    caf::actor a, b;
    ~Actors() {
      caf::anon_send_exit(a, caf::exit_reason::user_shutdown);
      caf::anon_send_exit(b, caf::exit_reason::user_shutdown);
    }
  };
  // The unused argument sidesteps a CAF 0.17.6 defect: spawning a function without arguments
  // dereferences a null shared_ptr<std::tuple<>> (harmless, but UBSan reports it).
  auto idle = [](int) { return caf::behavior{[](int) {}}; };
  const Actors actors{sys->spawn(idle, 0), sys->spawn(idle, 1)};
  const auto& [a, b] = actors;

  // The links are typed; the handles' identity is what serialization must keep.
  const auto stage = [](const caf::actor& x) { return caf::actor_cast<pipeline_stage_actor>(x); };
  const auto sink = caf::actor_cast<pipeline_sink_actor>(a);
  const pipeline_links back = round_trip(pipeline_links{stage(a), stage(b), sink});
  CHECK(back.previous.address() == a.address());
  CHECK(back.next.address() == b.address());
  CHECK(back.scheduler.address() == a.address());
  CHECK(back.previous != back.next);
  // Segment 0 has no previous actor: an invalid handle stays invalid.
  const pipeline_links first_segment = round_trip(pipeline_links{{}, stage(b), sink});
  CHECK_FALSE(first_segment.previous);
  CHECK(first_segment.next.address() == b.address());
  CHECK(first_segment.scheduler.address() == a.address());
}
