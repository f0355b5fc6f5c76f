// The one place where an actor checks that the handles a message brings are ready to read.
//
// A message whose handles are all ready runs at once (on the CPU, always). Otherwise its work is
// deferred: a CompletionSource watches the handles and sends the actor `handle_ready`, and the
// actor's handler for it calls resume(). Deferral is per sender and keeps order: once a message
// from a sender waits, every later message from that sender waits behind it, even one whose own
// handles are ready, because actors sum gradients in arrival order and the runtime promises
// micro-batch order (bit-identity with the sequential executor). Messages from other senders are
// not held up. A worker thread never blocks here.
#pragma once

#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <vector>

#include <caf/all.hpp>

#include "actors/completion_source.hpp"
#include "memory/tensor_handle.hpp"

namespace troupe {

// The process-wide polling source used when an actor was given none.
std::shared_ptr<CompletionSource> default_completion_source();

class ReadinessGate {
 public:
  void set_source(std::shared_ptr<CompletionSource> source) { source_ = std::move(source); }

  // Runs `work` now, or queues it behind the earlier deferred messages of the current sender until
  // every handle in `inputs` is ready. Invalid handles are ignored (optional inputs). `self` must
  // be a typed actor whose interface accepts handle_ready (a compile error otherwise).
  template <class... Sigs>
  void consume(caf::typed_event_based_actor<Sigs...>* self, std::vector<TensorHandle> inputs,
               std::function<void()> work) {
    consume(self, me(self), std::move(inputs), std::move(work));
  }
  // To be called from the actor's handle_ready handler: runs, per sender and in order, every
  // deferred message whose handles are now ready.
  template <class... Sigs>
  void resume(caf::typed_event_based_actor<Sigs...>* self) {
    resume(me(self));
  }
  // Messages waiting (all senders).
  std::size_t deferred() const;

 private:
  struct Deferred {
    std::vector<TensorHandle> inputs;
    std::function<void()> work;
    bool watched = false;
  };
  // The actor itself as the completion source's target; converting to handle_ready_actor checks
  // that its interface accepts handle_ready.
  template <class... Sigs>
  static handle_ready_actor me(caf::typed_event_based_actor<Sigs...>* self) {
    return caf::actor_cast<caf::typed_actor<Sigs...>>(self);
  }
  void consume(caf::local_actor* self, const handle_ready_actor& me,
               std::vector<TensorHandle> inputs, std::function<void()> work);
  void resume(const handle_ready_actor& me);
  static bool all_ready(const std::vector<TensorHandle>& inputs);
  void watch(const handle_ready_actor& me, Deferred& item);

  std::map<caf::actor_addr, std::deque<Deferred>> queues_;
  std::shared_ptr<CompletionSource> source_;
  std::uint64_t next_token_ = 0;
};

}  // namespace troupe
