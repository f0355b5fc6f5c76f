// CommRequest: the handle every asynchronous collective or point-to-point operation returns.
//
// It is a ReadinessEvent, so the tensors an operation writes can be handed on as
// Readiness::after(request) and query() never blocks. It finishes exactly once, either done or
// failed with a message (a dead peer, a size mismatch, a cancelled communicator).
//
// Actors must never block a worker on it: they register on_finish() with a callback that sends
// them a completion message; the callback runs on the backend's progress thread (or at once, on
// the caller's thread, when the request has already finished), so it must be short and must not
// block. wait() is for tests and for callers that are not actors.
#pragma once

#include <chrono>
#include <condition_variable>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "memory/readiness.hpp"

namespace troupe {

class CommRequest final : public ReadinessEvent {
 public:
  enum class State { pending, done, failed };
  using Callback = std::function<void(const CommRequest&)>;

  explicit CommRequest(std::string what);
  // A request that is already done (size-1 communicators, empty operations).
  static std::shared_ptr<CommRequest> finished(std::string what);

  // True once the operation has finished, done or failed; never blocks.
  bool query() const override;
  std::string describe() const override { return what_; }
  State state() const;
  bool failed() const { return state() == State::failed; }
  // Why it failed ("" unless failed), naming the operation.
  std::string error() const;

  // Blocks until the request finishes or the timeout passes; true when it finished.
  bool wait(std::chrono::milliseconds timeout) const;
  // Runs `callback` once when the request finishes (see the file comment for the thread).
  void on_finish(Callback callback);

  // For backends: the first call to either finishes the request, later calls are ignored.
  void complete();
  void fail(const std::string& reason);

 private:
  void finish(State state, std::string error);

  const std::string what_;
  mutable std::mutex mutex_;
  mutable std::condition_variable finished_;
  State state_ = State::pending;
  std::string error_;
  std::vector<Callback> callbacks_;
};

using CommRequestPtr = std::shared_ptr<CommRequest>;

}  // namespace troupe
