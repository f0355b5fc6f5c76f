// CommRequest's state machine: pending -> done | failed, once, with callbacks run outside the lock.
#include "comm/comm_request.hpp"

namespace troupe {

CommRequest::CommRequest(std::string what) : what_(std::move(what)) {}

std::shared_ptr<CommRequest> CommRequest::finished(std::string what) {
  auto request = std::make_shared<CommRequest>(std::move(what));
  request->complete();
  return request;
}

bool CommRequest::query() const {
  return state() != State::pending;
}

CommRequest::State CommRequest::state() const {
  std::lock_guard lock(mutex_);
  return state_;
}

std::string CommRequest::error() const {
  std::lock_guard lock(mutex_);
  return error_;
}

bool CommRequest::wait(std::chrono::milliseconds timeout) const {
  std::unique_lock lock(mutex_);
  return finished_.wait_for(lock, timeout, [this] { return state_ != State::pending; });
}

void CommRequest::on_finish(Callback callback) {
  {
    std::lock_guard lock(mutex_);
    if (state_ == State::pending) {
      callbacks_.push_back(std::move(callback));
      return;
    }
  }
  callback(*this);
}

void CommRequest::complete() {
  finish(State::done, {});
}

void CommRequest::fail(const std::string& reason) {
  finish(State::failed, what_ + ": " + reason);
}

void CommRequest::finish(State state, std::string error) {
  std::vector<Callback> callbacks;
  {
    std::lock_guard lock(mutex_);
    if (state_ != State::pending) return;
    state_ = state;
    error_ = std::move(error);
    callbacks.swap(callbacks_);
  }
  finished_.notify_all();
  // Outside the lock: a callback may query this request (or issue the next operation).
  for (auto& callback : callbacks) callback(*this);
}

}  // namespace troupe
