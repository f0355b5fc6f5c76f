// One micro-batch's parameter gradients of a dense segment, kept apart and then added in
// micro-batch order.
//
// A replicated stage runs a segment's backward for several micro-batches at once on different
// threads, so they cannot all add into the parameters' gradients: each micro-batch's gradients go
// to fresh buffers, and the stage's owner adds them in micro-batch order. Floating-point addition
// is not associative, so every executor computes segment gradients this way, replicated or not —
// the sequential executor too — and all of them produce the same bits:
//   grad += g(m0); grad += g(m1); …  with each g(m) computed from zero.
// (MoE layers' gradients are not replicated and accumulate in place, in micro-batch order.)
#pragma once

#include <cstdint>
#include <vector>

#include "models/model.hpp"

namespace troupe {

// Runs model.backward_segment with the segment's parameter gradients written into fresh zeroed
// buffers instead of Parameter::grad, which it leaves untouched. Returns the gradient of the
// segment's input (as backward_segment) and fills `grads` in segment_parameters() order. The
// caller must be the only one touching this model's segment parameters' gradients meanwhile.
Tensor backward_segment_apart(Model& model, std::int64_t segment, const Batch& batch,
                              const Tensor& grad_output, SegmentCache& cache,
                              std::vector<Tensor>& grads);

// Parameter::grad += grads[i] for the segment's parameters, in order.
void add_segment_gradients(Model& model, std::int64_t segment, const std::vector<Tensor>& grads);

}  // namespace troupe
