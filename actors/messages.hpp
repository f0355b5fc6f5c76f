// Every message the troupe actors exchange, in one CAF type-id block.
//
// Messages carry TensorHandles, never tensor bytes: inside a process a handle is one shared
// pointer. When a message is serialized (to cross processes) a handle writes only its descriptor
// (shape, strides, dtype, device); the bytes travel over the collective transport. Each message
// names its micro-batch (step, micro_batch) and carries a TraceStamp so the receiver can record
// the message as a flow event (sender track, send time).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include <caf/all.hpp>

#include "memory/tensor_handle.hpp"
#include "models/model.hpp"

namespace troupe {

// Identifies one micro-batch of one optimizer step. `phase` orders collective issue in the
// multi-rank runtime: (step, micro_batch, layer, phase).
struct MicroBatchKey {
  std::int64_t step = 0;
  std::int64_t micro_batch = 0;
  friend bool operator==(const MicroBatchKey&, const MicroBatchKey&) = default;
  friend auto operator<=>(const MicroBatchKey&, const MicroBatchKey&) = default;
};

// Who sent a message and when (µs on the trace clock); empty `from` when tracing is off.
struct TraceStamp {
  std::string from;
  double sent_us = 0.0;
};

// ---- the micro-batch pipeline ------------------------------------------------------------------

// Gate → scheduler (piggybacked on the forward messages, see forward_work::stats): routing
// statistics of one micro-batch of one layer.
struct moe_stats {
  MicroBatchKey key;
  std::int64_t layer = 0;
  float l_aux = 0.0f;
  std::vector<std::int64_t> exp_counts;  // tokens requested per expert (before drops)
  std::int64_t dropped = 0;              // choices dropped for capacity
};

// Forward input of a dense segment or an MoE layer: the previous stage's output activation.
// The batch travels along so every segment can read its inputs and targets.
struct forward_work {
  MicroBatchKey key;
  bool training = true;
  std::int64_t micro_batches = 1;  // in this round (the comm actors' schedule needs the shape)
  TensorHandle inputs;             // the micro-batch's inputs (segment 0 reads them)
  TensorHandle targets;            // the micro-batch's targets (the last segment reads them)
  TensorHandle activation;         // output of the previous stage (undefined for segment 0)
  // What else the next segment needs from the previous one (Model::forward_carry: a
  // transformer's residual stream); the gates pass it through. Caches stay with their stages.
  TensorHandle carry;
  // d(step loss) / d(this micro-batch's loss): 1 / micro-batches, so gradients are averaged over
  // gradient accumulation steps as DeepSpeed does.
  float loss_weight = 1.0f;
  // Statistics of the MoE layers passed so far; the last segment hands them to the scheduler
  // with the loss, so they cost no message of their own.
  std::vector<moe_stats> stats;
  TraceStamp stamp;
};

struct backward_work;
struct loss_report;
struct micro_batch_done;
// The two interfaces a pipeline actor's links name (actors/protocols.hpp has the others): what a
// dense stage and a gate both accept, and what the scheduler accepts from the stages.
using pipeline_stage_actor =
    caf::typed_actor<caf::reacts_to<forward_work>, caf::reacts_to<backward_work>>;
using pipeline_sink_actor =
    caf::typed_actor<caf::reacts_to<loss_report>, caf::reacts_to<micro_batch_done>>;

// Scheduler → pipeline actor, once after spawning: its neighbours in the chain
// segment 0 → gate 0 → segment 1 → … and who collects results.
struct pipeline_links {
  pipeline_stage_actor previous;  // receives this actor's backward output (invalid for segment 0)
  pipeline_stage_actor next;  // receives this actor's forward output (invalid for the last segment)
  pipeline_sink_actor scheduler;  // receives loss_report and micro_batch_done
};

// Backward input: the gradient of the receiving stage's output.
struct backward_work {
  MicroBatchKey key;
  TensorHandle gradient;
  TensorHandle carry;  // Model::backward_carry, passed through the gates to the segment before
  TraceStamp stamp;
};

// Gate → comm actor: move these expert-major rows to the experts that own them (forward: token
// rows; backward: gradients of the expert outputs). `expert_offsets` has local experts + 1
// entries: expert e's rows are [expert_offsets[e], expert_offsets[e + 1]). Across an
// expert-parallel group this is the all-to-all; the comm actor issues it when the round's
// collective schedule reaches (micro-batch, layer, phase).
struct comm_dispatch {
  MicroBatchKey key;
  std::int64_t micro_batches = 1;  // round shape, for the schedule
  bool training = true;
  std::int64_t layer = 0;
  bool backward = false;
  TensorHandle rows;
  std::vector<std::int64_t> expert_offsets;
  TraceStamp stamp;
};

// Comm actor → expert shard: run local experts [first, last) of the shard on `rows`
// (expert-major, `offsets` relative to the shard, last − first + 1 entries). The shard answers
// with expert_output holding a tensor it owns.
struct expert_forward {
  MicroBatchKey key;
  bool training = true;
  TensorHandle rows;
  std::vector<std::int64_t> offsets;
  TraceStamp stamp;
};

// Comm actor → expert shard: gradient of the shard's output rows; the shard accumulates its
// experts' parameter gradients and answers with the gradient of its input rows.
struct expert_backward {
  MicroBatchKey key;
  TensorHandle grad_output;
  TraceStamp stamp;
};

// Expert shard → comm actor: the shard's result for one direction of one micro-batch.
struct expert_output {
  MicroBatchKey key;
  std::int64_t layer = 0;
  std::int64_t shard = 0;
  bool backward = false;
  TensorHandle rows;  // [shard rows, d], owned by the shard
  TraceStamp stamp;
};

// Comm actor → gate: every expert's result for the gate's rows, expert-major as dispatched
// (the reverse all-to-all's output across ranks).
struct comm_combined {
  MicroBatchKey key;
  std::int64_t layer = 0;
  bool backward = false;
  TensorHandle rows;
  TraceStamp stamp;
};

// Stage replica → the stage's owner: one micro-batch's gradients of the segment's parameters, in
// segment_parameters() order, computed apart (models/segment_gradients.hpp); the owner adds them
// in micro-batch order.
struct segment_gradients {
  MicroBatchKey key;
  std::vector<TensorHandle> gradients;
  TraceStamp stamp;
};

// Last segment → scheduler: the micro-batch's loss (cross-entropy only, without l_aux) and the
// statistics of every MoE layer it passed.
struct loss_report {
  MicroBatchKey key;
  float loss = 0.0f;
  std::int64_t correct = 0;
  std::int64_t count = 0;
  std::vector<moe_stats> stats;
  TraceStamp stamp;
};

// Segment 0 → scheduler: the micro-batch's backward pass has reached the input. A training
// micro-batch is complete when this and its loss_report (with every layer's statistics) have
// both arrived, in whichever order; an evaluation micro-batch with its loss_report.
struct micro_batch_done {
  MicroBatchKey key;
  TraceStamp stamp;
};

// Completion source → actor: something the actor asked to watch (by `token`) has become ready
// (actors/completion_source.hpp).
struct handle_ready {
  std::uint64_t token = 0;
};

// A micro-batch's data as the data actor hands it out.
struct batch_data {
  TensorHandle inputs;
  TensorHandle targets;
};

// Trainer → scheduler: run one step (training: forward + backward of every micro-batch; or
// evaluation: forward only) over these micro-batches.
struct run_step {
  std::int64_t step = 0;
  bool training = true;
  std::vector<batch_data> micro_batches;
};

// Scheduler → trainer: what the step computed.
struct step_result {
  std::int64_t step = 0;
  float loss = 0.0f;      // mean cross-entropy over micro-batches
  double loss_sum = 0.0;  // Σ over micro-batches of (mean loss × predictions): exact eval means
  float l_aux = 0.0f;     // mean over micro-batches of Σ_layers l_aux
  std::int64_t correct = 0;
  std::int64_t count = 0;
  std::vector<std::vector<std::int64_t>> exp_counts;  // [layer][expert], summed over micro-batches
  std::int64_t dropped = 0;
};

// ---- data
// ----------------------------------------------------------------------------------------

// Trainer → data actor: the next `count` training micro-batches (or evaluation batches).
struct next_batches {
  std::int64_t count = 0;
  bool evaluation = false;
};
struct batches_reply {
  std::vector<batch_data> batches;
  std::int64_t epoch = 0;       // epoch of the last batch handed out
  bool epoch_finished = false;  // evaluation: the split is exhausted
  // Evaluation: how many data-parallel ranks share the split (each evaluating its shard, so the
  // totals are their sum); 1: this rank evaluates all of it (data/eval_shard.hpp).
  std::int64_t eval_shards = 1;
};
// Trainer → data actor: restart the evaluation split from its beginning.
struct rewind_eval {};
// Data reader position, for checkpoints.
struct data_position {
  std::int64_t epoch = 0;
  std::int64_t index = 0;
};
struct get_position {};
struct set_position {
  data_position position;
};

// ---- optimizer
// -----------------------------------------------------------------------------------

// Trainer → the comm actor of a gradient group's communicator, once the step's gradients are
// complete: sum each buffer over the group, in rank order and in place, then multiply it by
// `scale`. Non-expert gradients are reduced over the data-parallel group and expert gradients over
// the expert-data-parallel group, both with scale = 1 / data-parallel size, so that gradients do
// not depend on ep_size (MOE-SPEC). Reply: gradients_reduced, or an error naming the failed
// collective (a dead peer).
// With ZeRO stage 1 over the group's ranks (`scatter`) the sum is a reduce-scatter instead: only
// this rank's range of each buffer (rank_range over the communicator,
// models/optimizer_partition.hpp) receives the scaled sum, the range its optimizer partitions
// update; the rest of the buffer is cleared for the next step's accumulation. The bits of that
// range equal an all-reduce's.
struct reduce_gradients {
  std::int64_t step = 0;
  std::vector<TensorHandle> buffers;  // the group's flat gradient buffer (or its buckets)
  float scale = 1.0f;
  TraceStamp stamp;
  bool scatter = false;
};
struct gradients_reduced {
  std::int64_t step = 0;
};

// Trainer → a comm actor: this rank's values, the same count on every rank of the group. Reply:
// every rank's values, in rank order (an all-gather of their bits). Uses: the global gradient
// norm (Σ g² of the experts a rank holds, gathered over the expert-parallel group so that each
// expert is counted once and every rank adds the same numbers in the same order; with ZeRO over
// ranks, every rank's norm-chunk sums) and the checkpoint confirmations (each shard's CRC-32,
// gathered over the world).
struct gather_values {
  std::int64_t step = 0;
  std::vector<double> values;
};
struct values_gathered {
  std::vector<double> values;  // rank 0's, then rank 1's, ...
};

// Trainer → the comm actor of a group whose optimizer state is partitioned over its ranks (ZeRO
// stage 1), after the optimizer step: every rank's range of each flat value buffer is all-gathered
// into every rank's buffer, so all ranks start the next step with the same parameters. Reply:
// parameters_gathered, or an error naming the failed collective.
struct gather_parameters {
  std::int64_t step = 0;
  std::vector<TensorHandle> buffers;  // the group's flat value buffer
  TraceStamp stamp;
};
struct parameters_gathered {
  std::int64_t step = 0;
};

// Communicator → comm actor (sent from the backend's progress thread): collective `token` has
// finished, or failed with `error`.
struct collective_finished {
  std::uint64_t token = 0;
  bool failed = false;
  std::string error;
};

// Trainer → optimizer partition, before optimizer_step and only when clipping needs the global
// norm first: the step's gradients are complete; `gradients` holds one handle, the partition's
// range of its group's flat gradient buffer. Reply: Σ g² of each norm chunk, in order
// (models/optimizer_partition.hpp).
struct gradient_bucket {
  std::int64_t step = 0;
  std::vector<TensorHandle> gradients;
  TraceStamp stamp;
};
struct grad_norm_reply {
  std::int64_t partition = 0;
  std::vector<double> chunk_squared_norms;
};

// Trainer → optimizer partition: apply Adam / AdamW with this learning rate to the gradients in
// `gradients` (one handle: the partition's range of the group's flat gradient buffer), multiplied
// by grad_scale (clipping); the partition updates exactly what it is handed. Without clipping this
// is the step's only round trip to the partitions: the reply carries the chunks' Σ g² of the
// gradients as they were, for the logged gradient norm.
struct optimizer_step {
  std::int64_t step = 0;
  float lr = 0.0f;
  float grad_scale = 1.0f;
  std::vector<TensorHandle> gradients;
  TraceStamp stamp;
};
struct optimizer_done {
  std::int64_t partition = 0;
  std::int64_t step = 0;
  std::vector<double> chunk_squared_norms;  // before the update, before grad_scale
};

// Optimizer partition → offload manager (ZeRO-Offload): run this partition's step on host
// threads with the state the manager keeps in host memory. On a GPU run the gradients are
// copied to pinned host memory first and the parameters copied back after; on a CPU run the
// handles already point at host memory.
struct offload_step {
  std::int64_t partition = 0;
  TensorHandle gradients;  // the partition's gradient range
  std::int64_t step = 0;
  float lr = 0.0f;
  float grad_scale = 1.0f;
  TraceStamp stamp;
};

// Checkpoints: any optimizer state owner returns its state tensors by name.
struct get_optimizer_state {};
struct set_optimizer_state {
  std::vector<std::string> names;
  std::vector<TensorHandle> tensors;
};
struct optimizer_state {
  std::vector<std::string> names;
  std::vector<TensorHandle> tensors;
  // Where the tensors lie: the owner's range of its parameter group's flat buffer (checkpoints
  // store whole groups, so a run can resume with another partition count).
  bool expert_group = false;
  std::int64_t group_begin = 0;
};

// ---- training ----------------------------------------------------------------------------------

// Caller → trainer: train to the configured number of steps, then evaluate.
struct start_training {};
// Trainer → caller, when training has finished.
struct training_summary {
  std::int64_t steps = 0;
  float final_train_loss = 0.0f;
  float eval_loss = 0.0f;       // mean cross-entropy (nats) over the evaluation split
  float eval_accuracy = 0.0f;   // fraction of correct predictions
  std::int64_t eval_count = 0;  // predictions evaluated
  double wall_seconds = 0.0;
  bool stopped = false;    // ended early by stop_requested (no final evaluation)
  std::string checkpoint;  // the newest checkpoint the run wrote; empty = none
};

// ---- tracing
// -------------------------------------------------------------------------------------

// Any actor → trace actor: write the trace recorded so far to `path` (Chrome-trace JSON).
struct flush_trace {
  std::string path;
};

// ---- inspect functions (CAF 0.17 style)
// ------------------------------------------------------------

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, TensorDesc& x) {
  auto dtype = static_cast<std::uint8_t>(x.dtype);
  auto device_kind = static_cast<std::uint8_t>(x.device.kind);
  auto device_index = static_cast<std::int32_t>(x.device.index);
  auto load = caf::meta::load_callback([&]() -> caf::error {
    x.dtype = static_cast<DType>(dtype);
    x.device = Device{static_cast<DeviceKind>(device_kind), device_index};
    return caf::none;
  });
  return f(caf::meta::type_name("TensorDesc"), x.shape, x.strides, dtype, device_kind, device_index,
           x.offset, load);
}

// A handle serializes as its descriptor; a deserialized handle describes the tensor (shape,
// dtype, device) and holds no bytes until the transport delivers them.
template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, TensorHandle& x) {
  bool present = x.valid();
  TensorDesc desc = present ? x.tensor().desc() : TensorDesc{};
  auto load = caf::meta::load_callback([&]() -> caf::error {
    x = present ? TensorHandle(Tensor(desc, nullptr)) : TensorHandle();
    return caf::none;
  });
  return f(caf::meta::type_name("TensorHandle"), present, desc, load);
}

#define TROUPE_INSPECT(type, ...)                                  \
  template <class Inspector>                                       \
  typename Inspector::result_type inspect(Inspector& f, type& x) { \
    return f(caf::meta::type_name(#type), __VA_ARGS__);            \
  }

TROUPE_INSPECT(MicroBatchKey, x.step, x.micro_batch)
TROUPE_INSPECT(TraceStamp, x.from, x.sent_us)
TROUPE_INSPECT(moe_stats, x.key, x.layer, x.l_aux, x.exp_counts, x.dropped)
TROUPE_INSPECT(forward_work, x.key, x.training, x.micro_batches, x.inputs, x.targets, x.activation,
               x.carry, x.loss_weight, x.stats, x.stamp)
TROUPE_INSPECT(pipeline_links, x.previous, x.next, x.scheduler)
TROUPE_INSPECT(backward_work, x.key, x.gradient, x.carry, x.stamp)
TROUPE_INSPECT(comm_dispatch, x.key, x.micro_batches, x.training, x.layer, x.backward, x.rows,
               x.expert_offsets, x.stamp)
TROUPE_INSPECT(expert_forward, x.key, x.training, x.rows, x.offsets, x.stamp)
TROUPE_INSPECT(expert_backward, x.key, x.grad_output, x.stamp)
TROUPE_INSPECT(expert_output, x.key, x.layer, x.shard, x.backward, x.rows, x.stamp)
TROUPE_INSPECT(comm_combined, x.key, x.layer, x.backward, x.rows, x.stamp)
TROUPE_INSPECT(segment_gradients, x.key, x.gradients, x.stamp)
TROUPE_INSPECT(loss_report, x.key, x.loss, x.correct, x.count, x.stats, x.stamp)
TROUPE_INSPECT(micro_batch_done, x.key, x.stamp)
TROUPE_INSPECT(handle_ready, x.token)
TROUPE_INSPECT(batch_data, x.inputs, x.targets)
TROUPE_INSPECT(run_step, x.step, x.training, x.micro_batches)
TROUPE_INSPECT(step_result, x.step, x.loss, x.loss_sum, x.l_aux, x.correct, x.count, x.exp_counts,
               x.dropped)
TROUPE_INSPECT(next_batches, x.count, x.evaluation)
TROUPE_INSPECT(batches_reply, x.batches, x.epoch, x.epoch_finished, x.eval_shards)
TROUPE_INSPECT(data_position, x.epoch, x.index)
TROUPE_INSPECT(set_position, x.position)
TROUPE_INSPECT(reduce_gradients, x.step, x.buffers, x.scale, x.stamp, x.scatter)
TROUPE_INSPECT(gather_parameters, x.step, x.buffers, x.stamp)
TROUPE_INSPECT(parameters_gathered, x.step)
TROUPE_INSPECT(gradients_reduced, x.step)
TROUPE_INSPECT(gather_values, x.step, x.values)
TROUPE_INSPECT(values_gathered, x.values)
TROUPE_INSPECT(collective_finished, x.token, x.failed, x.error)
TROUPE_INSPECT(gradient_bucket, x.step, x.gradients, x.stamp)
TROUPE_INSPECT(grad_norm_reply, x.partition, x.chunk_squared_norms)
TROUPE_INSPECT(optimizer_step, x.step, x.lr, x.grad_scale, x.gradients, x.stamp)
TROUPE_INSPECT(optimizer_done, x.partition, x.step, x.chunk_squared_norms)
TROUPE_INSPECT(offload_step, x.partition, x.gradients, x.step, x.lr, x.grad_scale, x.stamp)
TROUPE_INSPECT(set_optimizer_state, x.names, x.tensors)
TROUPE_INSPECT(optimizer_state, x.names, x.tensors, x.expert_group, x.group_begin)
TROUPE_INSPECT(flush_trace, x.path)
TROUPE_INSPECT(training_summary, x.steps, x.final_train_loss, x.eval_loss, x.eval_accuracy,
               x.eval_count, x.wall_seconds, x.stopped, x.checkpoint)

// Messages without fields.
template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, rewind_eval&) {
  return f(caf::meta::type_name("rewind_eval"));
}
template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, get_position&) {
  return f(caf::meta::type_name("get_position"));
}
template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, start_training&) {
  return f(caf::meta::type_name("start_training"));
}
template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, get_optimizer_state&) {
  return f(caf::meta::type_name("get_optimizer_state"));
}

#undef TROUPE_INSPECT

}  // namespace troupe

CAF_BEGIN_TYPE_ID_BLOCK(troupe, caf::first_custom_type_id)
CAF_ADD_TYPE_ID(troupe, (troupe::TensorHandle))
CAF_ADD_TYPE_ID(troupe, (troupe::MicroBatchKey))
CAF_ADD_TYPE_ID(troupe, (troupe::forward_work))
CAF_ADD_TYPE_ID(troupe, (troupe::pipeline_links))
CAF_ADD_TYPE_ID(troupe, (troupe::backward_work))
CAF_ADD_TYPE_ID(troupe, (troupe::expert_forward))
CAF_ADD_TYPE_ID(troupe, (troupe::expert_backward))
CAF_ADD_TYPE_ID(troupe, (troupe::comm_dispatch))
CAF_ADD_TYPE_ID(troupe, (troupe::expert_output))
CAF_ADD_TYPE_ID(troupe, (troupe::comm_combined))
CAF_ADD_TYPE_ID(troupe, (troupe::moe_stats))
CAF_ADD_TYPE_ID(troupe, (troupe::segment_gradients))
CAF_ADD_TYPE_ID(troupe, (troupe::loss_report))
CAF_ADD_TYPE_ID(troupe, (troupe::micro_batch_done))
CAF_ADD_TYPE_ID(troupe, (troupe::handle_ready))
CAF_ADD_TYPE_ID(troupe, (troupe::batch_data))
CAF_ADD_TYPE_ID(troupe, (troupe::run_step))
CAF_ADD_TYPE_ID(troupe, (troupe::step_result))
CAF_ADD_TYPE_ID(troupe, (troupe::next_batches))
CAF_ADD_TYPE_ID(troupe, (troupe::batches_reply))
CAF_ADD_TYPE_ID(troupe, (troupe::rewind_eval))
CAF_ADD_TYPE_ID(troupe, (troupe::data_position))
CAF_ADD_TYPE_ID(troupe, (troupe::get_position))
CAF_ADD_TYPE_ID(troupe, (troupe::set_position))
CAF_ADD_TYPE_ID(troupe, (troupe::reduce_gradients))
CAF_ADD_TYPE_ID(troupe, (troupe::gradients_reduced))
CAF_ADD_TYPE_ID(troupe, (troupe::gather_parameters))
CAF_ADD_TYPE_ID(troupe, (troupe::parameters_gathered))
CAF_ADD_TYPE_ID(troupe, (troupe::gather_values))
CAF_ADD_TYPE_ID(troupe, (troupe::values_gathered))
CAF_ADD_TYPE_ID(troupe, (troupe::collective_finished))
CAF_ADD_TYPE_ID(troupe, (troupe::gradient_bucket))
CAF_ADD_TYPE_ID(troupe, (troupe::grad_norm_reply))
CAF_ADD_TYPE_ID(troupe, (troupe::optimizer_step))
CAF_ADD_TYPE_ID(troupe, (troupe::optimizer_done))
CAF_ADD_TYPE_ID(troupe, (troupe::offload_step))
CAF_ADD_TYPE_ID(troupe, (troupe::get_optimizer_state))
CAF_ADD_TYPE_ID(troupe, (troupe::set_optimizer_state))
CAF_ADD_TYPE_ID(troupe, (troupe::optimizer_state))
CAF_ADD_TYPE_ID(troupe, (troupe::flush_trace))
CAF_ADD_TYPE_ID(troupe, (troupe::start_training))
CAF_ADD_TYPE_ID(troupe, (troupe::training_summary))
CAF_ADD_TYPE_ID(troupe, (std::vector<troupe::batch_data>))
CAF_ADD_TYPE_ID(troupe, (std::vector<troupe::TensorHandle>))
CAF_END_TYPE_ID_BLOCK(troupe)
