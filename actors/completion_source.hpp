// Completion sources: what turns "this handle's data is ready now" into a message to an actor.
//
// Actors never block a worker thread waiting for data (DESIGN.md principle 3). An actor that gets
// a handle whose Readiness is not ready yet asks a CompletionSource to watch it; the source sends
// the actor a `handle_ready` message once it is, and the actor resumes the deferred work
// (actors/readiness_gate.hpp). On the CPU every handle is born ready and no source is involved.
//   - PollingCompletionSource: one host thread polls the watched events (a CUDA event poller, as
//     OneFlow does; cheaper per hop than host callbacks, see the GPU notes in the design).
//   - DrivenCompletionSource: nothing happens until a test calls poll(), so actor protocols can be
//     tested step by step under CAF's deterministic test coordinator.
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <mutex>
#include <thread>
#include <vector>

#include <caf/all.hpp>

#include "actors/protocols.hpp"
#include "memory/readiness.hpp"

namespace troupe {

class CompletionSource {
 public:
  virtual ~CompletionSource() = default;
  // Sends handle_ready{token} to `to` once `readiness` is ready (at once if it already is). Any
  // actor that accepts handle_ready can be watched for, whatever else its interface holds.
  virtual void watch(Readiness readiness, handle_ready_actor to, std::uint64_t token) = 0;
};

// Watches from any thread; delivers on poll().
class DrivenCompletionSource final : public CompletionSource {
 public:
  void watch(Readiness readiness, handle_ready_actor to, std::uint64_t token) override;
  // Sends handle_ready for every watched readiness that has become ready; returns how many.
  std::size_t poll();
  std::size_t watching() const;

 private:
  struct Watch {
    Readiness readiness;
    handle_ready_actor to;
    std::uint64_t token;
  };
  mutable std::mutex mutex_;
  std::vector<Watch> watches_;
};

// A background thread that polls the watched events every `interval` while any are watched and
// sleeps otherwise.
class PollingCompletionSource final : public CompletionSource {
 public:
  explicit PollingCompletionSource(
      std::chrono::microseconds interval = std::chrono::microseconds(20));
  ~PollingCompletionSource() override;
  PollingCompletionSource(const PollingCompletionSource&) = delete;
  PollingCompletionSource& operator=(const PollingCompletionSource&) = delete;

  void watch(Readiness readiness, handle_ready_actor to, std::uint64_t token) override;

 private:
  void run();
  DrivenCompletionSource pending_;
  std::chrono::microseconds interval_;
  std::mutex mutex_;
  std::condition_variable wake_;
  bool stop_ = false;
  std::thread thread_;
};

}  // namespace troupe
