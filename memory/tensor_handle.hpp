// TensorHandle: what actor messages carry instead of tensor bytes.
//
// A handle is a ref-counted pointer to a tensor plus its readiness: "done on the CPU" (the data is
// valid now) or, with the CUDA backend, an event recorded on the stream that produces it. Copying
// a handle copies one pointer; the bytes are shared. The consumer asks `ready()` before reading
// or, on GPU streams, waits on the event without blocking its thread.
#pragma once

#include <cstdint>
#include <memory>
#include <utility>

#include "memory/readiness.hpp"
#include "memory/tensor.hpp"

namespace troupe {

class TensorHandle {
 public:
  TensorHandle() = default;
  explicit TensorHandle(Tensor tensor, Readiness readiness = Readiness::done_on_cpu())
      : state_(std::make_shared<State>(State{std::move(tensor), readiness})) {}

  bool valid() const { return state_ != nullptr; }
  const Tensor& tensor() const { return state_->tensor; }
  bool ready() const { return state_ && state_->readiness.ready(); }
  const Readiness& readiness() const { return state_->readiness; }
  // Bytes of tensor data the handle refers to (what a trace reports for a message).
  std::size_t bytes() const { return state_ ? state_->tensor.nbytes() : 0; }
  long use_count() const { return state_.use_count(); }

 private:
  struct State {
    Tensor tensor;
    Readiness readiness;
  };
  std::shared_ptr<const State> state_;
};

}  // namespace troupe
