// Completion sources (see completion_source.hpp).
#include "actors/completion_source.hpp"

namespace troupe {

void DrivenCompletionSource::watch(Readiness readiness, handle_ready_actor to,
                                   std::uint64_t token) {
  std::lock_guard lock(mutex_);
  watches_.push_back({std::move(readiness), std::move(to), token});
}

std::size_t DrivenCompletionSource::poll() {
  std::vector<Watch> done;
  {
    std::lock_guard lock(mutex_);
    std::erase_if(watches_, [&](Watch& w) {
      if (!w.readiness.ready()) return false;
      done.push_back(std::move(w));
      return true;
    });
  }
  for (auto& w : done) caf::anon_send(w.to, handle_ready{w.token});
  return done.size();
}

std::size_t DrivenCompletionSource::watching() const {
  std::lock_guard lock(mutex_);
  return watches_.size();
}

PollingCompletionSource::PollingCompletionSource(std::chrono::microseconds interval)
    : interval_(interval), thread_([this] { run(); }) {}

PollingCompletionSource::~PollingCompletionSource() {
  {
    std::lock_guard lock(mutex_);
    stop_ = true;
  }
  wake_.notify_all();
  thread_.join();
}

void PollingCompletionSource::watch(Readiness readiness, handle_ready_actor to,
                                    std::uint64_t token) {
  pending_.watch(std::move(readiness), std::move(to), token);
  {
    std::lock_guard lock(mutex_);
  }  // the poller is either before its check or asleep: no lost wake
  wake_.notify_all();
}

void PollingCompletionSource::run() {
  std::unique_lock lock(mutex_);
  while (!stop_) {
    if (pending_.watching() == 0) {
      wake_.wait(lock, [this] { return stop_ || pending_.watching() > 0; });
      continue;
    }
    lock.unlock();
    pending_.poll();
    std::this_thread::sleep_for(interval_);
    lock.lock();
  }
}

}  // namespace troupe
