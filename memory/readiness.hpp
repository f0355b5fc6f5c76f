// Readiness: when the bytes behind a tensor handle (or a block about to be recycled) are valid.
//
// It is an interface so that every backend can say "done" its own way:
//   - the CPU backend: kernels have finished when the producing call returns, so CPU data is born
//     ready (no event at all, the common case, costs nothing);
//   - the CUDA backend: an event recorded on the producing stream (kernels/cuda), queried without
//     blocking; a GPU consumer makes its own stream wait on it instead of waiting on the host;
//   - tests and asynchronous host work: a ManualEvent that someone completes later.
// Nothing here blocks. Actors that need the data on the host ask `ready()`; when it is not, they
// wait for a completion *message* (actors/readiness_gate.hpp), never by blocking a worker.
#pragma once

#include <atomic>
#include <memory>
#include <string>

namespace troupe {

class ReadinessEvent {
 public:
  virtual ~ReadinessEvent() = default;
  // True once the producing work has completed; never blocks.
  virtual bool query() const = 0;
  // What the event stands for, for error messages and traces ("cuda event on stream 3").
  virtual std::string describe() const = 0;
};

// Completed by whoever produces the data (a test, a host thread): query() turns true after set().
class ManualEvent final : public ReadinessEvent {
 public:
  explicit ManualEvent(std::string what = "manual event") : what_(std::move(what)) {}
  void set() { done_.store(true, std::memory_order_release); }
  bool query() const override { return done_.load(std::memory_order_acquire); }
  std::string describe() const override { return what_; }

 private:
  std::string what_;
  std::atomic<bool> done_{false};
};

class Readiness {
 public:
  // Ready now: the CPU backend's state for everything it produces.
  static Readiness done_on_cpu() { return Readiness(); }
  static Readiness after(std::shared_ptr<const ReadinessEvent> event) {
    return Readiness(std::move(event));
  }

  bool ready() const { return event_ == nullptr || event_->query(); }
  // The event to wait on (null when born ready): a CUDA consumer casts it to its own event type.
  const std::shared_ptr<const ReadinessEvent>& event() const { return event_; }
  std::string describe() const { return event_ ? event_->describe() : "ready on the CPU"; }

 private:
  Readiness() = default;
  explicit Readiness(std::shared_ptr<const ReadinessEvent> event) : event_(std::move(event)) {}
  std::shared_ptr<const ReadinessEvent> event_;
};

}  // namespace troupe
