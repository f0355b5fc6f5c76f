// Deferring messages until their handles are ready (see readiness_gate.hpp).
#include "actors/readiness_gate.hpp"

namespace troupe {

std::shared_ptr<CompletionSource> default_completion_source() {
  static auto source = std::make_shared<PollingCompletionSource>();
  return source;
}

bool ReadinessGate::all_ready(const std::vector<TensorHandle>& inputs) {
  for (const auto& h : inputs)
    if (h.valid() && !h.ready()) return false;
  return true;
}

void ReadinessGate::watch(const handle_ready_actor& me, Deferred& item) {
  if (item.watched) return;
  if (!source_) source_ = default_completion_source();
  for (const auto& h : item.inputs)
    if (h.valid() && !h.ready()) source_->watch(h.readiness(), me, next_token_++);
  item.watched = true;
}

void ReadinessGate::consume(caf::local_actor* self, const handle_ready_actor& me,
                            std::vector<TensorHandle> inputs, std::function<void()> work) {
  const auto sender = caf::actor_cast<caf::actor_addr>(self->current_sender());
  auto queue = queues_.find(sender);
  const bool sender_waiting = queue != queues_.end() && !queue->second.empty();
  if (!sender_waiting && all_ready(inputs)) {
    work();
    return;
  }
  auto& q = queues_[sender];
  q.push_back(Deferred{std::move(inputs), std::move(work)});
  if (!all_ready(q.back().inputs)) watch(me, q.back());
}

void ReadinessGate::resume(const handle_ready_actor& me) {
  for (auto it = queues_.begin(); it != queues_.end();) {
    auto& q = it->second;
    while (!q.empty() && all_ready(q.front().inputs)) {
      auto work = std::move(q.front().work);
      q.pop_front();
      work();
    }
    if (q.empty()) {
      it = queues_.erase(it);
    } else {
      watch(me, q.front());
      ++it;
    }
  }
}

std::size_t ReadinessGate::deferred() const {
  std::size_t n = 0;
  for (const auto& [sender, q] : queues_) n += q.size();
  return n;
}

}  // namespace troupe
